// Fuzz target: a fragment store's record decoding — the FragmentHeader bytes a store keeps for
// every fragment (read back from RocksDB at any alignment, possibly damaged on disk), and what
// the store and the assembler compute from a header that verifies: the tombstone flag, the
// stripe layout and the slice of the fragment a ranged fetch returns.
//
// Input: [range offset: 8 bytes] [range length: 8 bytes] [suffix: 8 bytes] [header bytes].
// Properties: no crash; the slice a ranged fetch computes always lies inside the fragment.
#include <algorithm>
#include <cstdint>

#include "common/codec/stripe.h"
#include "common/wire/envelope.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddsplit;
  fuzz::FuzzInput in(data, size);
  uint64_t offset = in.Integral<uint64_t>();
  uint64_t length = in.Integral<uint64_t>();
  uint64_t suffix_length = in.Integral<uint64_t>();
  std::string_view stored = in.Rest();
  wire::AlignedFrame aligned;  // RocksDB hands values back at any alignment
  auto header = wire::ParseFragmentHeader(aligned.Of(fuzz::AsBytes(stored)));
  if (!header.ok()) return 0;
  const wire::FragmentHeader& h = **header;
  volatile uint64_t sink = h.checksum() + h.record_checksum() + h.tombstone();
  if (h.content_type() != nullptr) sink = sink + (h.content_type()->size());
  if (h.metadata() != nullptr) {
    for (const auto* entry : *h.metadata()) sink = sink + (wire::View(entry->name()).size() + wire::View(entry->value()).size());
  }
  if (h.placement() != nullptr) {
    for (uint32_t id : *h.placement()) sink = sink + (id);
  }
  (void)sink;
  // The store's ranged fetch (fragstore_server.cpp): only for data fragments.
  int index = h.index();
  if (index < h.k()) {
    uint64_t record_size = h.record_size();
    codec::ByteSpan range{offset, length};
    if (length == 0 && suffix_length > 0) {
      uint64_t suffix = std::min(suffix_length, record_size);
      range = {record_size - suffix, suffix};
    }
    codec::StripeLayout layout(record_size, h.k(), h.m());
    auto overlap = layout.OverlapInFragment(index, range);
    uint64_t stored_size = h.size();
    uint64_t begin = std::min<uint64_t>(overlap.offset, stored_size);
    uint64_t count = std::min<uint64_t>(overlap.length, stored_size - begin);
    DDSPLIT_FUZZ_ASSERT(begin + count <= stored_size);
    DDSPLIT_FUZZ_ASSERT(overlap.length <= layout.fragment_size());
    auto span = layout.DataSpan(index);
    DDSPLIT_FUZZ_ASSERT(span.offset + span.length <= record_size);
  }
  return 0;
}
