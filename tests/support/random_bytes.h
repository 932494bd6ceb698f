// Deterministic pseudo-random bytes for tests: the same seed gives the same bytes everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace ddsplit::testing {

inline std::vector<std::byte> RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> bytes(size);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t word = rng();
    for (size_t j = 0; j < 8 && i + j < size; ++j) bytes[i + j] = std::byte(word >> (8 * j));
  }
  return bytes;
}

}  // namespace ddsplit::testing
