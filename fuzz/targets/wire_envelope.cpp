// Fuzz target: the wire decoding every service does on a received message — envelope size
// check, FlatBuffers verification, then each message's own checks as the services run them
// (keys, record attributes, CheckWriteFragment and the header a store builds from it, nested
// fragment headers in store replies, error and timing conversion, byte-range arithmetic).
//
// Input: [store id: 1 byte] [envelope length: 2 bytes LE] [envelope] [payload frame: the rest].
// Properties: nothing crashes or reads out of bounds; a WriteFragment a store accepts yields a
// header that verifies and describes it; verification is deterministic.
#include <cstdint>
#include <cstdlib>

#include "common/base/key.h"
#include "common/base/limits.h"
#include "common/codec/stripe.h"
#include "common/wire/envelope.h"
#include "fuzz/fuzz_input.h"
#include "services/fragstore/write_validation.h"

namespace ddsplit::fuzz {
namespace {

volatile uint64_t sink;

void Touch(std::string_view s) {
  if (!s.empty()) sink = sink + (static_cast<uint8_t>(s.front()) + static_cast<uint8_t>(s.back()));
}

void Touch(const flatbuffers::Vector<flatbuffers::Offset<wire::MetaEntry>>* metadata) {
  if (metadata == nullptr) return;
  for (const auto* entry : *metadata) {
    Touch(wire::View(entry->name()));
    Touch(wire::View(entry->value()));
  }
}

void Touch(const wire::RecordInfo* info) {
  if (info == nullptr) return;
  Touch(wire::View(info->key()));
  sink = sink + (wire::FromWire(info->version()).hlc + info->size() + info->checksum() + info->k() + info->m());
  Touch(wire::View(info->content_type()));
  Touch(info->metadata());
  if (info->placement() != nullptr) {
    for (uint32_t id : *info->placement()) sink = sink + (id);
  }
}

void CheckHeader(const flatbuffers::Vector<uint8_t>* nested) {
  // Nested headers may sit at any alignment inside a reply; the services parse them in place
  // (the store aligns them when it builds the reply). Copy to an aligned buffer as they would
  // see a well-formed one, and also parse in place to cover the verifier on odd offsets.
  if (nested == nullptr) return;
  wire::AlignedFrame aligned;
  auto bytes = aligned.Of(std::as_bytes(std::span(nested->data(), nested->size())));
  auto header = wire::ParseFragmentHeader(bytes);
  if (!header.ok()) return;
  const wire::FragmentHeader& h = **header;
  sink = sink + (h.index() + h.k() + h.m() + h.size() + h.record_size() + h.checksum() + h.tombstone());
  Touch(wire::View(h.content_type()));
  Touch(h.metadata());
  if (h.placement() != nullptr) {
    for (uint32_t id : *h.placement()) sink = sink + (id);
  }
  // What the store's ranged fetch computes from a header.
  if (h.k() > 0 && h.index() < h.k()) {
    codec::StripeLayout layout(h.record_size(), h.k(), h.m());
    auto overlap = layout.OverlapInFragment(h.index(), {h.size(), h.record_size()});
    DDSPLIT_FUZZ_ASSERT(overlap.length <= layout.fragment_size());
  }
}

void CheckWrite(const wire::WriteFragment& write, uint8_t store, std::span<const std::byte> payload) {
  fragstore::RejectReason reason{};
  auto index = fragstore::CheckWriteFragment(write, StoreId(store), payload, 1 << 20, reason);
  if (!index.ok()) {
    DDSPLIT_FUZZ_ASSERT(!index.error().message().empty());
    return;
  }
  // Accepted: the store builds and later parses this header; it must describe the write.
  DDSPLIT_FUZZ_ASSERT(*index >= 0 && *index < write.k() + write.m());
  DDSPLIT_FUZZ_ASSERT(write.placement()->Get(*index) == store);
  flatbuffers::FlatBufferBuilder fbb;
  fragstore::BuildFragmentHeader(fbb, write, *index, payload.size());
  auto header = wire::ParseFragmentHeader(
      std::span(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()));
  DDSPLIT_FUZZ_ASSERT(header.ok());
  DDSPLIT_FUZZ_ASSERT((*header)->index() == *index);
  DDSPLIT_FUZZ_ASSERT((*header)->k() == write.k() && (*header)->m() == write.m());
  DDSPLIT_FUZZ_ASSERT((*header)->size() == payload.size());
  DDSPLIT_FUZZ_ASSERT((*header)->tombstone() == write.tombstone());
  DDSPLIT_FUZZ_ASSERT((*header)->checksum() == write.fragment_checksums()->Get(*index));
}

void CheckBody(const wire::Envelope& env, uint8_t store, std::span<const std::byte> payload) {
  switch (env.body_type()) {
    case wire::Body::PutRequest: {
      const auto* put = env.body_as_PutRequest();
      (void)ValidateKey(wire::View(put->key()));
      (void)wire::ValidateRecordAttributes(put->content_type(), put->metadata());
      break;
    }
    case wire::Body::DeleteRequest:
      (void)ValidateKey(wire::View(env.body_as_DeleteRequest()->key()));
      break;
    case wire::Body::GetRequest: {
      const auto* get = env.body_as_GetRequest();
      (void)ValidateKey(wire::View(get->key()));
      if (get->range() != nullptr) {
        codec::ByteSpan range{get->range()->offset(), get->range()->length()};
        DDSPLIT_FUZZ_ASSERT(range.end() >= range.offset);
      }
      sink = sink + (get->head_only() + get->suffix_length());
      break;
    }
    case wire::Body::MultiGetRequest:
      for (const auto* key : *env.body_as_MultiGetRequest()->keys()) (void)ValidateKey(wire::View(key));
      break;
    case wire::Body::ListRequest: {
      const auto* list = env.body_as_ListRequest();
      sink = sink + (IsValidUtf8(wire::View(list->prefix())) + IsValidUtf8(wire::View(list->cursor())) + list->limit());
      break;
    }
    case wire::Body::StatRequest:
      (void)ValidateKey(wire::View(env.body_as_StatRequest()->key()));
      break;
    case wire::Body::PutReply:
      sink = sink + (wire::FromWire(env.body_as_PutReply()->version()).hlc + env.body_as_PutReply()->size());
      break;
    case wire::Body::DeleteReply:
      sink = sink + (wire::FromWire(env.body_as_DeleteReply()->version()).hlc);
      break;
    case wire::Body::GetReply:
      Touch(env.body_as_GetReply()->info());
      sink = sink + (env.body_as_GetReply()->payload_frames());
      break;
    case wire::Body::MultiGetReply:
      if (const auto* items = env.body_as_MultiGetReply()->items()) {
        for (const auto* item : *items) {
          Touch(item->info());
          if (item->error() != nullptr) Touch(wire::FromWire(item->error()).message());
        }
      }
      break;
    case wire::Body::ListReply:
      if (const auto* entries = env.body_as_ListReply()->entries()) {
        for (const auto* entry : *entries) {
          Touch(wire::View(entry->key()));
          Touch(wire::View(entry->content_type()));
          sink = sink + (wire::FromWire(entry->version()).hlc);
        }
      }
      Touch(wire::View(env.body_as_ListReply()->next_cursor()));
      break;
    case wire::Body::StatReply:
      Touch(env.body_as_StatReply()->info());
      if (const auto* fragments = env.body_as_StatReply()->fragments()) {
        for (const auto* f : *fragments) sink = sink + (f->store_id() + static_cast<uint8_t>(f->state()));
      }
      break;
    case wire::Body::WriteFragment:
      CheckWrite(*env.body_as_WriteFragment(), store, payload);
      break;
    case wire::Body::CommitVersion:
      (void)ValidateKey(wire::View(env.body_as_CommitVersion()->key()));
      sink = sink + (wire::FromWire(env.body_as_CommitVersion()->version()).hlc);
      break;
    case wire::Body::AbortVersion:
      (void)ValidateKey(wire::View(env.body_as_AbortVersion()->key()));
      break;
    case wire::Body::VersionDecisions:
      for (const auto* decision : *env.body_as_VersionDecisions()->decisions()) {
        (void)ValidateKey(wire::View(decision->key()));
        sink = sink + (wire::FromWire(decision->version()).hlc + decision->commit());
      }
      break;
    case wire::Body::FragmentAck: {
      const auto* ack = env.body_as_FragmentAck();
      sink = sink + (ack->write_id() + ack->store_id() + ack->fragment_index());
      if (ack->error() != nullptr) Touch(wire::FromWire(ack->error()).message());
      break;
    }
    case wire::Body::FetchRequest: {
      const auto* fetch = env.body_as_FetchRequest();
      (void)ValidateKey(wire::View(fetch->key()));
      sink = sink + (wire::FromWire(fetch->version()).hlc + fetch->want_payload() + fetch->verify());
      break;
    }
    case wire::Body::FetchReply: {
      const auto* reply = env.body_as_FetchReply();
      if (reply->versions() != nullptr) {
        for (const auto* held : *reply->versions()) {
          sink = sink + (wire::FromWire(held->version()).hlc + held->committed());
          CheckHeader(held->header());
        }
      }
      if (reply->payload_error() != nullptr) Touch(wire::FromWire(reply->payload_error()).message());
      break;
    }
    case wire::Body::ListKeysRequest:
      Touch(wire::View(env.body_as_ListKeysRequest()->prefix()));
      break;
    case wire::Body::ListKeysReply:
      if (const auto* entries = env.body_as_ListKeysReply()->entries()) {
        for (const auto* entry : *entries) {
          Touch(wire::View(entry->key()));
          if (entry->versions() == nullptr) continue;
          for (const auto* held : *entry->versions()) CheckHeader(held->header());
        }
      }
      break;
    case wire::Body::StoreStatRequest:
      break;
    case wire::Body::StoreStatReply:
      sink = sink + (env.body_as_StoreStatReply()->fragments());
      break;
    case wire::Body::RepairRequest:
      (void)ValidateKey(wire::View(env.body_as_RepairRequest()->key()));
      break;
    case wire::Body::RepairReply: {
      const auto* reply = env.body_as_RepairReply();
      for (const auto* indexes : {reply->rebuilt(), reply->failed()}) {
        if (indexes == nullptr) continue;
        for (uint8_t index : *indexes) sink = sink + index;
      }
      break;
    }
    case wire::Body::NONE:
      break;
  }
}

}  // namespace
}  // namespace ddsplit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddsplit;
  fuzz::FuzzInput in(data, size);
  uint8_t store = in.Byte() & 7;
  size_t length = in.Integral<uint16_t>();
  std::string_view frame = in.Take(length);
  std::string_view payload = in.Rest();
  wire::AlignedFrame aligned;
  auto bytes = aligned.Of(fuzz::AsBytes(frame));
  auto envelope = wire::ParseEnvelope(bytes);
  // Verification is a pure function of the bytes.
  DDSPLIT_FUZZ_ASSERT(envelope.ok() == wire::ParseEnvelope(bytes).ok());
  if (!envelope.ok()) {
    DDSPLIT_FUZZ_ASSERT(envelope.error().code() == ErrorCode::kMalformed ||
                envelope.error().code() == ErrorCode::kTooLarge);
    return 0;
  }
  const wire::Envelope& env = **envelope;
  if (env.error() != nullptr) {
    Error error = wire::FromWire(env.error());
    DDSPLIT_FUZZ_ASSERT(error.code() != ErrorCode::kOk);
  }
  wire::Timings timings;
  timings.AddFrom(env.timings());
  DDSPLIT_FUZZ_ASSERT(timings.view().size() <= 24);
  fuzz::CheckBody(env, store, fuzz::AsBytes(payload));
  return 0;
}
