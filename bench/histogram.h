// LatencyHistogram: an HDR-style log-linear histogram of non-negative integer values (the
// benchmark records nanoseconds). Every power-of-two range is split into kSubBuckets linear
// sub-buckets, so a recorded value is kept with a relative error below 1 / kSubBuckets (0.8 %)
// at a fixed memory cost (about 18 KiB) and O(1) per Record(), with no allocation after
// construction. Values up to 2^kMaxExponent - 1 are kept (about 18 minutes in ns); larger ones
// are clamped to the top bucket and counted in clamped().
//
// Percentiles report the highest value equivalent to the bucket holding the percentile rank, as
// HdrHistogram does, so a reported p99 is never below the true one by more than the bucket width.
//
// Thread-safety: a plain value; one writer at a time. Merge() combines histograms recorded by
// different threads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ddsplit::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;  // 128 sub-buckets per doubling
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;
  static constexpr int kMaxExponent = 40;  // values below 2^40
  static constexpr uint64_t kMaxValue = (uint64_t{1} << kMaxExponent) - 1;

  LatencyHistogram();

  void Record(uint64_t value);
  void Merge(const LatencyHistogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  uint64_t clamped() const { return clamped_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // The value at percentile `p` in [0, 100]: the highest value equivalent to the bucket that
  // holds rank ceil(p / 100 * count) (at least 1). 0 when empty. p = 100 gives max().
  uint64_t Percentile(double p) const;

  // Bucket arithmetic, exposed for tests: the index a value falls in and the bucket's range.
  static size_t IndexOf(uint64_t value);
  static uint64_t LowestEquivalent(size_t index);
  static uint64_t HighestEquivalent(size_t index);
  static constexpr size_t kBuckets =
      static_cast<size_t>(kMaxExponent - kSubBucketBits + 2) * (kSubBuckets / 2);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t clamped_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace ddsplit::bench
