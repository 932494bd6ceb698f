#include "bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace ddsplit::bench {
namespace {

constexpr uint64_t kHalf = LatencyHistogram::kSubBuckets / 2;

// The power-of-two range a bucket index lies in: 0 for the first kSubBuckets linear buckets.
int ExponentOf(size_t index) {
  return index < LatencyHistogram::kSubBuckets ? 0 : static_cast<int>(index / kHalf) - 1;
}

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

size_t LatencyHistogram::IndexOf(uint64_t value) {
  if (value < kSubBuckets) return static_cast<size_t>(value);
  // The top bit of value is at position msb >= kSubBucketBits; keep kSubBucketBits bits of it.
  int msb = 63 - std::countl_zero(value);
  int exponent = msb - (kSubBucketBits - 1);
  return static_cast<size_t>(exponent) * kHalf + static_cast<size_t>(value >> exponent);
}

uint64_t LatencyHistogram::LowestEquivalent(size_t index) {
  int exponent = ExponentOf(index);
  uint64_t sub = index - static_cast<uint64_t>(exponent) * kHalf;
  return sub << exponent;
}

uint64_t LatencyHistogram::HighestEquivalent(size_t index) {
  int exponent = ExponentOf(index);
  uint64_t sub = index - static_cast<uint64_t>(exponent) * kHalf;
  return ((sub + 1) << exponent) - 1;
}

void LatencyHistogram::Record(uint64_t value) {
  if (value > kMaxValue) {
    value = kMaxValue;
    ++clamped_;
  }
  ++counts_[IndexOf(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  clamped_ += other.clamped_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = clamped_ = sum_ = max_ = 0;
  min_ = UINT64_MAX;
}

uint64_t LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  if (p >= 100.0) return max_;
  p = std::max(p, 0.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    // Never report beyond what was recorded: the top bucket may be wider than max().
    if (seen >= rank) return std::min(HighestEquivalent(i), max_);
  }
  return max_;
}

}  // namespace ddsplit::bench
