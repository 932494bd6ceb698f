// wire: reading and writing the FlatBuffers messages of schemas/wire.fbs — verification before
// any field is read, conversions between wire and domain types, and a reusable builder that
// produces ZeroMQ frames. Not thread-safe per MessageWriter; the free functions are pure.
#pragma once

#include <array>
#include <vector>
#include <span>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "common/base/result.h"
#include "common/base/stage.h"
#include "common/base/version.h"
#include "ddsplit/schemas/wire_generated.h"

namespace ddsplit::wire {

// The bytes of a received frame at an 8-byte-aligned address, as FlatBuffers requires: the
// frame itself when it is aligned, otherwise a copy held here (its storage is reused between
// calls, so only the latest result is valid). ZeroMQ delivers small frames at any alignment.
class AlignedFrame {
 public:
  std::span<const std::byte> Of(std::span<const std::byte> bytes);
  std::span<const std::byte> Of(const zmq::message_t& frame) {
    return Of(std::span<const std::byte>(static_cast<const std::byte*>(frame.data()), frame.size()));
  }

 private:
  std::vector<uint64_t> storage_;
};

// Verifies `frame` as an Envelope (size limit, FlatBuffers verifier, a body or an error) and
// returns it. kMalformed naming the problem otherwise; nothing in the frame is trusted before.
Result<const Envelope*> ParseEnvelope(std::span<const std::byte> frame);

// Verifies a store's fragment header bytes (from disk or a nested buffer) and returns it.
Result<const FragmentHeader*> ParseFragmentHeader(std::span<const std::byte> bytes);
inline Result<const FragmentHeader*> ParseFragmentHeader(const flatbuffers::Vector<uint8_t>* v) {
  if (v == nullptr) return ddsplit::Error(ddsplit::ErrorCode::kMalformed, "missing fragment header");
  return ParseFragmentHeader(std::as_bytes(std::span(v->data(), v->size())));
}

inline std::string_view View(const flatbuffers::String* s) {
  return s == nullptr ? std::string_view() : std::string_view(s->data(), s->size());
}

inline wire::Version ToWire(ddsplit::Version v) { return wire::Version(v.hlc, v.writer); }
inline ddsplit::Version FromWire(const wire::Version* v) {
  return v == nullptr ? ddsplit::Version{} : ddsplit::Version{v->hlc(), v->writer()};
}
inline ddsplit::Version FromWire(const wire::Version& v) { return {v.hlc(), v.writer()}; }

// An Error from its wire form; a missing or unknown code reads as kInternal.
ddsplit::Error FromWire(const wire::Error* error);
flatbuffers::Offset<wire::Error> ToWire(flatbuffers::FlatBufferBuilder& fbb,
                                        const ddsplit::Error& error);

// Validates a record's content type and metadata (entry rules and totals).
Status ValidateRecordAttributes(const flatbuffers::String* content_type,
                                const flatbuffers::Vector<flatbuffers::Offset<MetaEntry>>* metadata);

// Stage timings collected while serving one request; carried back in the reply. Holds up to
// kCapacity entries; what does not fit is dropped. AddFrom() leaves the last kReservedForOwn
// entries to Add(), so a coordinator's own final stages (fetch, decode, reply) survive a read
// that heard from many stores.
class Timings {
 public:
  static constexpr size_t kCapacity = 32;
  static constexpr size_t kReservedForOwn = 4;
  void Add(Stage stage, uint64_t queue_ns, uint64_t work_ns);
  // Adds the timings of another hop (e.g. a store's) under the stage it reported.
  void AddFrom(const flatbuffers::Vector<const StageTiming*>* other);
  std::span<const StageTiming> view() const { return {items_.data(), count_}; }
  void Clear() { count_ = 0; }

 private:
  std::array<StageTiming, kCapacity> items_{};
  size_t count_ = 0;
};

// Now on the scale of Envelope.sent_at_ns: nanoseconds since the Unix epoch (CLOCK_REALTIME).
uint64_t SenderTimestampNanos();

// Every envelope it finishes carries sent_at_ns = SenderTimestampNanos() at the Finish call.
class MessageWriter {
 public:
  MessageWriter() : fbb_(1024) {}
  // The builder for the body; call Reset() before building a new message's body.
  flatbuffers::FlatBufferBuilder& fbb() { return fbb_; }
  void Reset() { fbb_.Clear(); }

  // Finishes an envelope around `body` (built with fbb() since the last Reset) and returns it
  // as one frame. The builder's memory is kept for the next message.
  template <typename BodyT>
  zmq::message_t Finish(uint64_t request_id, flatbuffers::Offset<BodyT> body,
                        std::span<const StageTiming> timings = {}) {
    return FinishRaw(request_id, BodyTraits<BodyT>::enum_value, body.Union(), timings);
  }
  // An error reply: no body, just the code and message.
  zmq::message_t FinishError(uint64_t request_id, const ddsplit::Error& error,
                             std::span<const StageTiming> timings = {});

 private:
  zmq::message_t FinishRaw(uint64_t request_id, Body type, flatbuffers::Offset<void> body,
                           std::span<const StageTiming> timings);
  flatbuffers::FlatBufferBuilder fbb_;
};

}  // namespace ddsplit::wire
