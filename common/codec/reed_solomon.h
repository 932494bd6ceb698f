// Systematic Reed-Solomon erasure coding over GF(2^8) with a Cauchy matrix, through ISA-L.
//
// Fragments 0..k-1 are the data itself (see StripeLayout), k..k+m-1 are parity. Any k of the
// k + m fragments rebuild every other one. Inputs shorter than the fragment size are treated
// as zero-padded, so data fragments can be unpadded slices of the record buffer; outputs may be
// shorter than the fragment size and then receive only their first bytes.
//
// Thread-safety: Encode is const and safe from any thread. Reconstruct is safe from any thread;
// it caches decode tables per loss pattern behind a mutex (bounded, least recently used goes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/base/result.h"

namespace ddsplit::codec {

// One available fragment handed to Reconstruct: its index and its stored bytes.
struct FragmentBytes {
  int index = 0;
  std::span<const std::byte> bytes;
};

// One fragment to rebuild and where its bytes go (at most fragment_size are written).
struct FragmentOutput {
  int index = 0;
  std::span<std::byte> bytes;
};

class ReedSolomon {
 public:
  // k >= 1, m >= 0, k + m <= kMaxFragments; kInvalidArgument otherwise.
  static Result<std::unique_ptr<ReedSolomon>> Create(int k, int m);
  ~ReedSolomon();
  ReedSolomon(const ReedSolomon&) = delete;
  ReedSolomon& operator=(const ReedSolomon&) = delete;

  int k() const { return k_; }
  int m() const { return m_; }

  // Computes the m parity fragments of `fragment_size` bytes each from the k data fragments.
  // data.size() == k with each span at most fragment_size; parity.size() == m, each span exactly
  // fragment_size. Never allocates.
  void Encode(std::span<const std::span<const std::byte>> data, uint64_t fragment_size,
              std::span<const std::span<std::byte>> parity) const;

  // Rebuilds the fragments in `wanted` from at least k distinct fragments in `available`
  // (extra ones are ignored). kInvalidArgument when fewer than k distinct valid indices are
  // given, an index is out of range, or an input is longer than fragment_size.
  Status Reconstruct(std::span<const FragmentBytes> available, uint64_t fragment_size,
                     std::span<const FragmentOutput> wanted);

  // Number of decode tables currently cached (for tests and metrics).
  size_t CachedDecodeTables() const;

 private:
  ReedSolomon(int k, int m);
  struct DecodeTables;
  // Tables turning the fragments in `sources_mask` (exactly k bits) into those in `wanted`.
  std::shared_ptr<const DecodeTables> TablesFor(uint32_t sources_mask,
                                                std::span<const int> wanted_indices);

  int k_;
  int m_;
  std::vector<unsigned char> encode_matrix_;  // (k+m) x k, first k rows the identity
  std::vector<unsigned char> encode_tables_;  // ISA-L expanded tables for the parity rows

  mutable std::mutex cache_mutex_;
  using CacheKey = uint64_t;  // sources mask in the low 32 bits, wanted mask in the high 32
  std::list<CacheKey> lru_;    // front: most recently used
  struct CacheEntry {
    std::shared_ptr<const DecodeTables> tables;
    std::list<CacheKey>::iterator lru_position;
  };
  std::unordered_map<CacheKey, CacheEntry> cache_;
  static constexpr size_t kMaxCachedTables = 512;
};

}  // namespace ddsplit::codec
