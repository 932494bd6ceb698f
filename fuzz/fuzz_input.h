// FuzzInput: reads structured values from a fuzzer's byte string, front to back, so a target
// can turn one input into a message with chosen fields (a small FuzzedDataProvider that also
// builds with gcc for the replay tests). Reads past the end return zeros / empty values, so
// every input is usable. Not thread-safe; borrows the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

// A property every input must keep; aborts (a crash the fuzzer saves) when it does not.
#define DDSPLIT_FUZZ_ASSERT(cond)                                                         \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "fuzz property failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace ddsplit::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(data == nullptr ? 0 : size) {}

  bool empty() const { return offset_ >= size_; }
  size_t remaining() const { return size_ - offset_; }

  uint8_t Byte() { return offset_ < size_ ? data_[offset_++] : 0; }
  bool Bool() { return (Byte() & 1) != 0; }
  template <typename T>
  T Integral() {
    T value{};
    size_t n = std::min(sizeof(T), remaining());
    if (n > 0) std::memcpy(&value, data_ + offset_, n);
    offset_ += n;
    return value;
  }
  // A value in [lo, hi] (inclusive); uniform enough for fuzzing.
  uint64_t Range(uint64_t lo, uint64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = hi - lo;
    uint64_t raw = span < 0x100 ? Byte() : span < 0x10000 ? Integral<uint16_t>() : Integral<uint64_t>();
    return lo + (span == UINT64_MAX ? raw : raw % (span + 1));
  }
  // Up to `max` bytes, length chosen by the input.
  std::string_view Bytes(size_t max) {
    size_t wanted = Range(0, max);  // consumes bytes: before remaining() is read
    size_t n = std::min(wanted, remaining());
    std::string_view out(reinterpret_cast<const char*>(data_ + offset_), n);
    offset_ += n;
    return out;
  }
  // Exactly `n` bytes (fewer if the input ends).
  std::string_view Take(size_t n) {
    n = std::min(n, remaining());
    std::string_view out(reinterpret_cast<const char*>(data_ + offset_), n);
    offset_ += n;
    return out;
  }
  std::string_view Rest() { return Take(remaining()); }
  template <typename T, size_t N>
  const T& Pick(const T (&options)[N]) {
    return options[Range(0, N - 1)];
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
};

inline std::span<const std::byte> AsBytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

}  // namespace ddsplit::fuzz
