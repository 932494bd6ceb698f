#include "common/codec/reed_solomon.h"

#include <isa-l/erasure_code.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#include "common/base/limits.h"

namespace ddsplit::codec {
namespace {

// Coding runs over chunks so the k inputs and m outputs of one call stay in cache.
constexpr uint64_t kChunk = 64 * 1024;
alignas(64) const std::byte kZeros[kChunk] = {};

using PointerArray = std::array<unsigned char*, kMaxFragments>;

// Visits [0, fragment_size) in pieces within which every input is either wholly present or
// wholly past its end (then read as zeros), so no input needs padding or copying.
template <typename Visit>
void ForEachPiece(uint64_t fragment_size, std::span<const uint64_t> input_sizes,
                  std::span<const uint64_t> output_sizes, Visit visit) {
  uint64_t begin = 0;
  while (begin < fragment_size) {
    uint64_t end = std::min(fragment_size, begin + kChunk);
    for (uint64_t size : input_sizes) {
      if (size > begin && size < end) end = size;
    }
    for (uint64_t size : output_sizes) {
      if (size > begin && size < end) end = size;
    }
    visit(begin, end - begin);
    begin = end;
  }
}

}  // namespace

struct ReedSolomon::DecodeTables {
  std::array<int, kMaxFragments> sources{};  // fragment indices, ascending, k of them
  int wanted_count = 0;
  std::vector<unsigned char> tables;  // wanted_count rows of k * 32 bytes
};

Result<std::unique_ptr<ReedSolomon>> ReedSolomon::Create(int k, int m) {
  if (k < 1 || m < 0 || k + m > kMaxFragments) {
    return Error(ErrorCode::kInvalidArgument, "k must be >= 1, m >= 0 and k + m <= 32");
  }
  return std::unique_ptr<ReedSolomon>(new ReedSolomon(k, m));
}

ReedSolomon::ReedSolomon(int k, int m)
    : k_(k), m_(m), encode_matrix_(static_cast<size_t>((k + m) * k)),
      encode_tables_(static_cast<size_t>(std::max(m, 1) * k * 32)) {
  gf_gen_cauchy1_matrix(encode_matrix_.data(), k + m, k);
  if (m > 0) ec_init_tables(k, m, &encode_matrix_[static_cast<size_t>(k * k)], encode_tables_.data());
}

ReedSolomon::~ReedSolomon() = default;

void ReedSolomon::Encode(std::span<const std::span<const std::byte>> data, uint64_t fragment_size,
                         std::span<const std::span<std::byte>> parity) const {
  if (m_ == 0 || fragment_size == 0) return;
  std::array<uint64_t, kMaxFragments> input_sizes{};
  for (int i = 0; i < k_; ++i) input_sizes[i] = data[i].size();
  PointerArray in{};
  PointerArray out{};
  ForEachPiece(fragment_size, std::span(input_sizes.data(), k_), {},
               [&](uint64_t offset, uint64_t length) {
                 for (int i = 0; i < k_; ++i) {
                   const std::byte* base = data[i].size() > offset ? data[i].data() + offset : kZeros;
                   in[i] = reinterpret_cast<unsigned char*>(const_cast<std::byte*>(base));
                 }
                 for (int j = 0; j < m_; ++j) {
                   out[j] = reinterpret_cast<unsigned char*>(parity[j].data() + offset);
                 }
                 ec_encode_data(static_cast<int>(length), k_, m_,
                                const_cast<unsigned char*>(encode_tables_.data()), in.data(),
                                out.data());
               });
}

std::shared_ptr<const ReedSolomon::DecodeTables> ReedSolomon::TablesFor(
    uint32_t sources_mask, std::span<const int> wanted_indices) {
  uint32_t wanted_mask = 0;
  for (int w : wanted_indices) wanted_mask |= 1u << w;
  CacheKey key = (static_cast<uint64_t>(wanted_mask) << 32) | sources_mask;
  {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru_position);
      return it->second.tables;
    }
  }

  auto tables = std::make_shared<DecodeTables>();
  int count = 0;
  for (int i = 0; i < k_ + m_; ++i) {
    if (sources_mask & (1u << i)) tables->sources[count++] = i;
  }
  // Rows of the encode matrix for the sources, inverted, map source fragments back to data.
  std::vector<unsigned char> source_rows(static_cast<size_t>(k_ * k_));
  std::vector<unsigned char> inverse(static_cast<size_t>(k_ * k_));
  for (int r = 0; r < k_; ++r) {
    std::memcpy(&source_rows[r * k_], &encode_matrix_[tables->sources[r] * k_], k_);
  }
  int rc = gf_invert_matrix(source_rows.data(), inverse.data(), k_);
  // A Cauchy-derived generator has every k x k submatrix invertible.
  assert(rc == 0);
  (void)rc;

  tables->wanted_count = static_cast<int>(wanted_indices.size());
  std::vector<unsigned char> decode_matrix(wanted_indices.size() * k_);
  for (size_t w = 0; w < wanted_indices.size(); ++w) {
    int index = wanted_indices[w];
    for (int c = 0; c < k_; ++c) {
      if (index < k_) {
        decode_matrix[w * k_ + c] = inverse[index * k_ + c];
      } else {
        unsigned char sum = 0;
        for (int j = 0; j < k_; ++j) {
          sum ^= gf_mul(encode_matrix_[index * k_ + j], inverse[j * k_ + c]);
        }
        decode_matrix[w * k_ + c] = sum;
      }
    }
  }
  tables->tables.resize(wanted_indices.size() * k_ * 32);
  ec_init_tables(k_, tables->wanted_count, decode_matrix.data(), tables->tables.data());

  std::lock_guard lock(cache_mutex_);
  if (auto it = cache_.find(key); it != cache_.end()) return it->second.tables;
  if (cache_.size() >= kMaxCachedTables) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(key);
  cache_.emplace(key, CacheEntry{tables, lru_.begin()});
  return tables;
}

Status ReedSolomon::Reconstruct(std::span<const FragmentBytes> available, uint64_t fragment_size,
                                std::span<const FragmentOutput> wanted) {
  const int n = k_ + m_;
  // Pick the k lowest distinct indices: data fragments first, which keeps the tables simple.
  std::array<const FragmentBytes*, kMaxFragments> by_index{};
  for (const auto& fragment : available) {
    if (fragment.index < 0 || fragment.index >= n) {
      return Error(ErrorCode::kInvalidArgument, "fragment index out of range");
    }
    if (fragment.bytes.size() > fragment_size) {
      return Error(ErrorCode::kInvalidArgument, "fragment longer than the fragment size");
    }
    if (by_index[fragment.index] == nullptr) by_index[fragment.index] = &fragment;
  }
  uint32_t sources_mask = 0;
  int sources = 0;
  for (int i = 0; i < n && sources < k_; ++i) {
    if (by_index[i] != nullptr) {
      sources_mask |= 1u << i;
      ++sources;
    }
  }
  if (sources < k_) {
    return Error(ErrorCode::kInvalidArgument, "fewer than k distinct fragments to rebuild from");
  }
  if (wanted.empty() || fragment_size == 0) return OkStatus();

  // Outputs in ascending index order, matching the decode table rows.
  std::array<const FragmentOutput*, kMaxFragments> outputs{};
  std::array<int, kMaxFragments> wanted_indices{};
  int wanted_count = 0;
  uint32_t seen = 0;
  for (const auto& output : wanted) {
    if (output.index < 0 || output.index >= n) {
      return Error(ErrorCode::kInvalidArgument, "wanted fragment index out of range");
    }
    if (seen & (1u << output.index)) {
      return Error(ErrorCode::kInvalidArgument, "fragment wanted twice");
    }
    seen |= 1u << output.index;
  }
  for (int i = 0; i < n; ++i) {
    if (!(seen & (1u << i))) continue;
    for (const auto& output : wanted) {
      if (output.index == i) outputs[wanted_count] = &output;
    }
    wanted_indices[wanted_count++] = i;
  }

  auto tables = TablesFor(sources_mask, std::span(wanted_indices.data(), wanted_count));

  std::array<uint64_t, kMaxFragments> input_sizes{};
  std::array<uint64_t, kMaxFragments> output_sizes{};
  for (int s = 0; s < k_; ++s) input_sizes[s] = by_index[tables->sources[s]]->bytes.size();
  for (int w = 0; w < wanted_count; ++w) {
    output_sizes[w] = std::min<uint64_t>(outputs[w]->bytes.size(), fragment_size);
  }

  PointerArray in{};
  PointerArray out{};
  ForEachPiece(
      fragment_size, std::span(input_sizes.data(), k_), std::span(output_sizes.data(), wanted_count),
      [&](uint64_t offset, uint64_t length) {
        for (int s = 0; s < k_; ++s) {
          const auto& bytes = by_index[tables->sources[s]]->bytes;
          const std::byte* base = bytes.size() > offset ? bytes.data() + offset : kZeros;
          in[s] = reinterpret_cast<unsigned char*>(const_cast<std::byte*>(base));
        }
        int active = 0;
        for (int w = 0; w < wanted_count; ++w) {
          if (output_sizes[w] > offset) ++active;
        }
        if (active == 0) return;
        if (active == wanted_count) {
          for (int w = 0; w < wanted_count; ++w) {
            out[w] = reinterpret_cast<unsigned char*>(outputs[w]->bytes.data() + offset);
          }
          ec_encode_data(static_cast<int>(length), k_, wanted_count,
                         const_cast<unsigned char*>(tables->tables.data()), in.data(), out.data());
          return;
        }
        // Some outputs are already full: compute the others one table row at a time.
        for (int w = 0; w < wanted_count; ++w) {
          if (output_sizes[w] <= offset) continue;
          out[0] = reinterpret_cast<unsigned char*>(outputs[w]->bytes.data() + offset);
          ec_encode_data(static_cast<int>(length), k_, 1,
                         const_cast<unsigned char*>(&tables->tables[static_cast<size_t>(w) * k_ * 32]),
                         in.data(), out.data());
        }
      });
  return OkStatus();
}

size_t ReedSolomon::CachedDecodeTables() const {
  std::lock_guard lock(cache_mutex_);
  return cache_.size();
}

}  // namespace ddsplit::codec
