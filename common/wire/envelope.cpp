#include "common/wire/envelope.h"

#include <time.h>

#include <cstring>
#include <type_traits>

#include "common/base/key.h"
#include "common/base/limits.h"

namespace ddsplit::wire {

uint64_t SenderTimestampNanos() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(now.tv_nsec);
}

std::span<const std::byte> AlignedFrame::Of(std::span<const std::byte> bytes) {
  if (bytes.empty() || reinterpret_cast<uintptr_t>(bytes.data()) % alignof(uint64_t) == 0) return bytes;
  storage_.resize((bytes.size() + 7) / 8);
  std::memcpy(storage_.data(), bytes.data(), bytes.size());
  return {reinterpret_cast<const std::byte*>(storage_.data()), bytes.size()};
}

namespace {

template <typename Vector>
bool ElementsAligned(const Vector* vector) {
  constexpr size_t kAlign = alignof(std::remove_pointer_t<typename Vector::return_type>);
  // Builders do not align empty vectors (FlatBuffers 2.0 skips the padding for zero bytes).
  return vector == nullptr || vector->size() == 0 ||
         reinterpret_cast<uintptr_t>(vector->Data()) % kAlign == 0;
}

}  // namespace

Result<const Envelope*> ParseEnvelope(std::span<const std::byte> frame) {
  if (frame.size() > kMaxEnvelopeBytes) {
    return ddsplit::Error(ddsplit::ErrorCode::kTooLarge, "envelope frame larger than 256 KiB");
  }
  const auto* data = reinterpret_cast<const uint8_t*>(frame.data());
  flatbuffers::Verifier verifier(data, frame.size(),
                                 /*max_depth=*/32, /*max_tables=*/100000);
  if (!VerifyEnvelopeBuffer(verifier)) {
    return ddsplit::Error(ddsplit::ErrorCode::kMalformed, "envelope failed FlatBuffers verification");
  }
  const Envelope* envelope = GetEnvelope(data);
  if (envelope->body_type() == Body::NONE && envelope->error() == nullptr) {
    return ddsplit::Error(ddsplit::ErrorCode::kMalformed, "envelope has neither a body nor an error");
  }
  // A body type without its table would make every body_as_X() accessor return null.
  if (envelope->body_type() != Body::NONE && envelope->body() == nullptr) {
    return ddsplit::Error(ddsplit::ErrorCode::kMalformed, "envelope names a body type but has no body");
  }
  // The verifier checks a vector's length field but not that 8-byte elements are 8-aligned; a
  // builder always aligns them, so a misaligned one is a forged buffer (reading it is UB).
  if (!ElementsAligned(envelope->timings())) {
    return ddsplit::Error(ddsplit::ErrorCode::kMalformed, "envelope timings are misaligned");
  }
  if (const auto* write = envelope->body_as_WriteFragment();
      write != nullptr && !ElementsAligned(write->fragment_checksums())) {
    return ddsplit::Error(ddsplit::ErrorCode::kMalformed, "fragment checksums are misaligned");
  }
  return envelope;
}

Result<const FragmentHeader*> ParseFragmentHeader(std::span<const std::byte> bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  flatbuffers::Verifier verifier(data, bytes.size(), 16, 10000);
  if (!verifier.VerifyBuffer<FragmentHeader>(nullptr)) {
    return ddsplit::Error(ddsplit::ErrorCode::kMalformed, "fragment header failed verification");
  }
  return flatbuffers::GetRoot<FragmentHeader>(data);
}

ddsplit::Error FromWire(const wire::Error* error) {
  if (error == nullptr) return ddsplit::Error(ddsplit::ErrorCode::kInternal, "missing error");
  auto code = static_cast<uint16_t>(error->code());
  if (code == 0 || code > kMaxErrorCode) {
    return ddsplit::Error(ddsplit::ErrorCode::kInternal, std::string(View(error->message())));
  }
  return ddsplit::Error(static_cast<ddsplit::ErrorCode>(code), std::string(View(error->message())));
}

flatbuffers::Offset<wire::Error> ToWire(flatbuffers::FlatBufferBuilder& fbb,
                                        const ddsplit::Error& error) {
  auto message = fbb.CreateString(error.message());
  return CreateError(fbb, static_cast<wire::ErrorCode>(error.code()), message);
}

Status ValidateRecordAttributes(const flatbuffers::String* content_type,
                                const flatbuffers::Vector<flatbuffers::Offset<MetaEntry>>* metadata) {
  DDSPLIT_RETURN_IF_ERROR(ValidateContentType(View(content_type)));
  if (metadata == nullptr) return OkStatus();
  if (metadata->size() > kMaxMetadataEntries) {
    return ddsplit::Error(ddsplit::ErrorCode::kInvalidArgument, "more than 64 metadata entries");
  }
  size_t total = 0;
  for (const auto* entry : *metadata) {
    auto name = View(entry->name());
    auto value = View(entry->value());
    DDSPLIT_RETURN_IF_ERROR(ValidateMetadataEntry(name, value));
    total += name.size() + value.size();
  }
  if (total > kMaxMetadataBytes) {
    return ddsplit::Error(ddsplit::ErrorCode::kInvalidArgument, "metadata larger than 8 KiB");
  }
  return OkStatus();
}

void Timings::Add(Stage stage, uint64_t queue_ns, uint64_t work_ns) {
  if (count_ == items_.size()) return;
  items_[count_++] = StageTiming(static_cast<uint8_t>(stage), queue_ns, work_ns);
}

void Timings::AddFrom(const flatbuffers::Vector<const StageTiming*>* other) {
  // In place: ParseEnvelope refused envelopes whose timings are misaligned.
  if (other == nullptr) return;
  for (const auto* timing : *other) {
    if (count_ + kReservedForOwn >= items_.size()) return;
    if (timing->stage() >= kStageCount) continue;
    items_[count_++] = *timing;
  }
}

zmq::message_t MessageWriter::FinishError(uint64_t request_id, const ddsplit::Error& error,
                                            std::span<const StageTiming> timings) {
  Reset();
  auto error_offset = ToWire(fbb_, error);
  auto timing_offset = timings.empty() ? 0 : fbb_.CreateVectorOfStructs(timings.data(), timings.size());
  EnvelopeBuilder envelope(fbb_);
  envelope.add_request_id(request_id);
  envelope.add_error(error_offset);
  if (!timings.empty()) envelope.add_timings(timing_offset);
  envelope.add_sent_at_ns(SenderTimestampNanos());
  fbb_.Finish(envelope.Finish());
  return zmq::message_t(fbb_.GetBufferPointer(), fbb_.GetSize());
}

zmq::message_t MessageWriter::FinishRaw(uint64_t request_id, Body type,
                                          flatbuffers::Offset<void> body,
                                          std::span<const StageTiming> timings) {
  auto timing_offset = timings.empty() ? 0 : fbb_.CreateVectorOfStructs(timings.data(), timings.size());
  EnvelopeBuilder envelope(fbb_);
  envelope.add_request_id(request_id);
  envelope.add_body_type(type);
  envelope.add_body(body);
  if (!timings.empty()) envelope.add_timings(timing_offset);
  envelope.add_sent_at_ns(SenderTimestampNanos());
  fbb_.Finish(envelope.Finish());
  return zmq::message_t(fbb_.GetBufferPointer(), fbb_.GetSize());
}

}  // namespace ddsplit::wire
