// Fuzz target: the erasure code's round-trip property, through the code the services run — the
// splitter's RecordEncoder (data fragments are slices of the record, parity in pooled buffers,
// a checksum per fragment) and ReedSolomon::Reconstruct as the assembler calls it — for fuzzed
// code shapes, record sizes, contents and loss patterns.
//
// Input: [k] [m] [size: 2 bytes] [big?] ([high size bits]) [loss mask: 4 bytes] [content seed...].
// Properties: decode(encode(x)) == x whenever at most m fragments are lost, including rebuilt
// parity; every fragment's checksum matches its bytes; with more than m lost, Reconstruct fails
// with an error (never returns wrong bytes or crashes).
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include <zmq.hpp>

#include "common/codec/checksum.h"
#include "common/codec/reed_solomon.h"
#include "common/codec/stripe.h"
#include "common/transport/transport.h"
#include "fuzz/fuzz_input.h"
#include "services/splitter/record_encoder.h"

namespace {

ddsplit::codec::ReedSolomon* CodecFor(int k, int m) {
  static std::map<std::pair<int, int>, std::unique_ptr<ddsplit::codec::ReedSolomon>> codecs;
  auto& slot = codecs[{k, m}];
  if (!slot) {
    auto created = ddsplit::codec::ReedSolomon::Create(k, m);
    if (!created.ok()) return nullptr;
    slot = std::move(*created);
  }
  return slot.get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddsplit;
  fuzz::FuzzInput in(data, size);
  int k = static_cast<int>(in.Range(1, 16));
  int m = static_cast<int>(in.Range(0, std::min(8, kMaxFragments - k)));
  // Mostly < 64 KiB (fast); one input in 16 up to 256 KiB.
  uint64_t record_size = in.Integral<uint16_t>();
  if ((in.Byte() & 0xF) == 0xF) record_size |= static_cast<uint64_t>(in.Byte() & 0x3) << 16;
  uint32_t loss_mask = in.Integral<uint32_t>();
  std::string_view seed = in.Rest();
  codec::ReedSolomon* rs = CodecFor(k, m);
  DDSPLIT_FUZZ_ASSERT(rs != nullptr);

  // Content: the seed bytes repeated with a position mix, so every size has varied bytes.
  zmq::message_t record(record_size);
  auto* bytes = static_cast<uint8_t*>(record.data());
  for (uint64_t i = 0; i < record_size; ++i) {
    uint8_t s = seed.empty() ? 0 : static_cast<uint8_t>(seed[i % seed.size()]);
    bytes[i] = static_cast<uint8_t>(s ^ (i * 131) ^ (i >> 8));
  }
  std::vector<uint8_t> original(bytes, bytes + record_size);

  splitter::RecordEncoder encoder(*rs);
  splitter::EncodedRecord encoded;
  encoder.Encode(std::move(record), encoded);
  const int n = k + m;
  DDSPLIT_FUZZ_ASSERT(encoded.count == n);
  codec::StripeLayout layout(record_size, k, m);
  DDSPLIT_FUZZ_ASSERT(encoded.record_checksum == codec::Checksum(std::as_bytes(std::span(original))));
  std::vector<std::vector<std::byte>> fragments(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto frame = transport::Bytes(encoded.fragments[i]);
    DDSPLIT_FUZZ_ASSERT(frame.size() == layout.StoredSize(i));
    DDSPLIT_FUZZ_ASSERT(encoded.checksums[i] == codec::Checksum(frame));
    if (i < k) {
      auto span = layout.DataSpan(i);
      DDSPLIT_FUZZ_ASSERT(span.length == 0 ||
                          std::memcmp(frame.data(), original.data() + span.offset, span.length) == 0);
    }
    fragments[i].assign(frame.begin(), frame.end());
  }
  for (auto& frame : encoded.fragments) frame = zmq::message_t();  // gives pooled parity back

  // Lose the fragments in the mask; rebuild each lost one from the rest.
  std::vector<codec::FragmentBytes> available;
  std::vector<int> lost;
  for (int i = 0; i < n; ++i) {
    if ((loss_mask >> i) & 1) {
      lost.push_back(i);
    } else {
      available.push_back({i, std::span<const std::byte>(fragments[i])});
    }
  }
  std::vector<std::vector<std::byte>> rebuilt(lost.size());
  std::vector<codec::FragmentOutput> outputs;
  for (size_t j = 0; j < lost.size(); ++j) {
    rebuilt[j].assign(layout.StoredSize(lost[j]), std::byte{0xAA});
    outputs.push_back({lost[j], std::span<std::byte>(rebuilt[j])});
  }
  auto status = rs->Reconstruct(available, layout.fragment_size(), outputs);
  if (static_cast<int>(lost.size()) > m) {
    DDSPLIT_FUZZ_ASSERT(!status.ok() || lost.empty());
    return 0;
  }
  DDSPLIT_FUZZ_ASSERT(status.ok());
  for (size_t j = 0; j < lost.size(); ++j) DDSPLIT_FUZZ_ASSERT(rebuilt[j] == fragments[lost[j]]);

  // The assembler's ranged read: only the data fragments that overlap the range.
  uint64_t range_offset = record_size == 0 ? 0 : (loss_mask >> 8) % record_size;
  codec::ByteSpan range{range_offset, (loss_mask >> 3) % (record_size + 1)};
  std::vector<uint8_t> assembled;
  for (int i = 0; i < k; ++i) {
    auto overlap = layout.OverlapInFragment(i, range);
    if (overlap.length == 0) continue;
    DDSPLIT_FUZZ_ASSERT(overlap.offset + overlap.length <= fragments[i].size());
    auto* start = reinterpret_cast<const uint8_t*>(fragments[i].data()) + overlap.offset;
    assembled.insert(assembled.end(), start, start + overlap.length);
  }
  uint64_t expected_length = std::min(range.length, record_size - std::min(range.offset, record_size));
  DDSPLIT_FUZZ_ASSERT(assembled.size() == expected_length);
  DDSPLIT_FUZZ_ASSERT(expected_length == 0 ||
                      std::memcmp(assembled.data(), original.data() + range.offset, expected_length) == 0);
  return 0;
}
