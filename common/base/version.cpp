#include "common/base/version.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace ddsplit {

std::string Version::ToString() const {
  char text[32];
  std::snprintf(text, sizeof text, "%016llx%08x", static_cast<unsigned long long>(hlc), writer);
  return text;
}

std::optional<Version> Version::Parse(std::string_view text) {
  if (text.size() != 24) return std::nullopt;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  Version v;
  std::from_chars(text.data(), text.data() + 16, v.hlc, 16);
  std::from_chars(text.data() + 16, text.data() + 24, v.writer, 16);
  return v;
}

uint64_t HybridLogicalClock::Next() {
  uint64_t wall = FromMillis(clock_.UnixMillis());
  last_ = std::max(wall, last_ + 1);
  return last_;
}

void HybridLogicalClock::Observe(uint64_t remote_hlc) { last_ = std::max(last_, remote_hlc); }

}  // namespace ddsplit
