// Record versions and the hybrid logical clock that issues them.
//
// A Version is (hlc, writer): totally ordered, newest wins. The HLC value packs wall-clock
// milliseconds in its upper 48 bits and a logical counter in the lower 16, so versions follow
// real time across splitters while staying strictly increasing within one.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/clock.h"

namespace ddsplit {

struct Version {
  uint64_t hlc = 0;
  uint32_t writer = 0;

  auto operator<=>(const Version&) const = default;
  bool IsZero() const { return hlc == 0 && writer == 0; }
  // 24 lower-case hex digits, "hlc(16)writer(8)": also the ETag text.
  std::string ToString() const;
  // Inverse of ToString; nullopt on anything else.
  static std::optional<Version> Parse(std::string_view text);
};

// Issues strictly increasing HLC values. Not thread-safe: one per splitter event loop.
class HybridLogicalClock {
 public:
  explicit HybridLogicalClock(const Clock& clock) : clock_(clock) {}
  // The next value: at least the wall clock, and greater than every value issued or observed.
  uint64_t Next();
  // Remember a value seen elsewhere (another writer's version) so Next() exceeds it.
  void Observe(uint64_t remote_hlc);

  static constexpr int kLogicalBits = 16;
  static uint64_t FromMillis(uint64_t ms) { return ms << kLogicalBits; }
  static uint64_t ToMillis(uint64_t hlc) { return hlc >> kLogicalBits; }

 private:
  const Clock& clock_;
  uint64_t last_ = 0;
};

}  // namespace ddsplit
