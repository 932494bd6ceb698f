#include "services/fragstore/write_validation.h"

#include "common/base/key.h"
#include "common/base/limits.h"
#include "common/codec/checksum.h"
#include "common/codec/stripe.h"

namespace ddsplit::fragstore {

Result<int> CheckWriteFragment(const wire::WriteFragment& write, StoreId self,
                               std::span<const std::byte> payload, uint64_t max_fragment_bytes,
                               RejectReason& reason) {
  auto fail = [&](RejectReason why, ErrorCode code, std::string message) {
    reason = why;
    return Error(code, std::move(message));
  };
  auto key_ok = ValidateKey(wire::View(write.key()));
  if (!key_ok.ok()) return fail(RejectReason::kInvalidKey, ErrorCode::kInvalidArgument, key_ok.error().message());
  auto attributes = wire::ValidateRecordAttributes(write.content_type(), write.metadata());
  if (!attributes.ok()) {
    return fail(RejectReason::kMalformed, ErrorCode::kInvalidArgument, attributes.error().message());
  }
  int k = write.k();
  int m = write.m();
  int n = k + m;
  if (k < 1 || n > kMaxFragments) {
    return fail(RejectReason::kBadShape, ErrorCode::kInvalidArgument, "bad code shape");
  }
  if (static_cast<int>(write.placement()->size()) != n ||
      static_cast<int>(write.fragment_checksums()->size()) != n) {
    return fail(RejectReason::kBadShape, ErrorCode::kInvalidArgument,
                "placement and checksum lists must have k + m entries");
  }
  int index = -1;
  for (int i = 0; i < n; ++i) {
    if (write.placement()->Get(i) != self.value()) continue;
    if (index >= 0) {
      return fail(RejectReason::kBadShape, ErrorCode::kInvalidArgument, "store placed twice");
    }
    index = i;
  }
  if (index < 0) {
    return fail(RejectReason::kNotPlaced, ErrorCode::kInvalidArgument,
                "this store is not in the fragment's placement");
  }
  if (payload.size() > max_fragment_bytes) {
    return fail(RejectReason::kTooLarge, ErrorCode::kTooLarge, "fragment larger than the limit");
  }
  uint64_t expected = write.tombstone() ? 0 : codec::StripeLayout(write.record_size(), k, m).StoredSize(index);
  if (write.tombstone() && write.record_size() != 0) {
    return fail(RejectReason::kSizeMismatch, ErrorCode::kInvalidArgument, "tombstone with a size");
  }
  if (payload.size() != expected) {
    return fail(RejectReason::kSizeMismatch, ErrorCode::kInvalidArgument,
                "fragment is " + std::to_string(payload.size()) + " bytes, expected " +
                    std::to_string(expected));
  }
  if (codec::Checksum(payload) != write.fragment_checksums()->Get(index)) {
    return fail(RejectReason::kChecksumMismatch, ErrorCode::kCorrupt,
                "fragment bytes do not match their checksum");
  }
  return index;
}

void BuildFragmentHeader(flatbuffers::FlatBufferBuilder& fbb, const wire::WriteFragment& write,
                         int index, uint64_t payload_size) {
  fbb.Clear();
  auto content_type = write.content_type() ? fbb.CreateString(write.content_type()) : 0;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::MetaEntry>>> metadata = 0;
  if (write.metadata() != nullptr && write.metadata()->size() > 0) {
    std::vector<flatbuffers::Offset<wire::MetaEntry>> entries;
    entries.reserve(write.metadata()->size());
    for (const auto* entry : *write.metadata()) {
      entries.push_back(wire::CreateMetaEntry(fbb, fbb.CreateString(entry->name()),
                                              fbb.CreateString(entry->value())));
    }
    metadata = fbb.CreateVector(entries);
  }
  auto placement = fbb.CreateVector(write.placement()->data(), write.placement()->size());
  wire::FragmentHeaderBuilder header(fbb);
  header.add_index(static_cast<uint8_t>(index));
  header.add_k(write.k());
  header.add_m(write.m());
  header.add_size(payload_size);
  header.add_record_size(write.record_size());
  header.add_record_checksum(write.record_checksum());
  header.add_checksum(write.fragment_checksums()->Get(index));
  header.add_tombstone(write.tombstone());
  if (!content_type.IsNull()) header.add_content_type(content_type);
  if (!metadata.IsNull()) header.add_metadata(metadata);
  header.add_placement(placement);
  fbb.Finish(header.Finish());
}

}  // namespace ddsplit::fragstore
