// Unit tests of the benchmark's pure parts: the latency histogram, size parsing, metric
// exposition parsing and the results validator.
#include "bench/histogram.h"

#include <doctest/doctest.h>

#include <random>

#include "bench/load.h"
#include "bench/process_probe.h"
#include "bench/suite.h"

namespace ddsplit::bench {
namespace {

TEST_CASE("histogram buckets tile the value range without gaps and within 1/64 relative error") {
  size_t previous_index = 0;
  const uint64_t values[] = {0,   1,   127,  128,       129,
                             255, 256, 1000, 123456789, LatencyHistogram::kMaxValue};
  for (uint64_t v : values) {
    size_t index = LatencyHistogram::IndexOf(v);
    CHECK(index < LatencyHistogram::kBuckets);
    CHECK(LatencyHistogram::LowestEquivalent(index) <= v);
    CHECK(LatencyHistogram::HighestEquivalent(index) >= v);
    double width = static_cast<double>(LatencyHistogram::HighestEquivalent(index) -
                                       LatencyHistogram::LowestEquivalent(index) + 1);
    CHECK(width <= std::max(1.0, static_cast<double>(v) / 64.0));
    CHECK(index >= previous_index);
    previous_index = index;
  }
  for (size_t i = 1; i < LatencyHistogram::kBuckets; ++i) {
    CHECK_MESSAGE(
        LatencyHistogram::LowestEquivalent(i) == LatencyHistogram::HighestEquivalent(i - 1) + 1,
        "bucket ", i);
  }
}

TEST_CASE("histogram percentiles match the exact ones within the bucket precision") {
  std::mt19937_64 random(42);
  std::lognormal_distribution<double> latency(12.0, 1.0);  // around 160 us in ns
  std::vector<uint64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 100000; ++i) {
    auto v = static_cast<uint64_t>(latency(random));
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    uint64_t exact = values[static_cast<size_t>(std::ceil(p / 100 * values.size())) - 1];
    uint64_t reported = h.Percentile(p);
    CHECK(reported >= exact);
    CHECK(static_cast<double>(reported) <= static_cast<double>(exact) * (1 + 1.0 / 64) + 1);
  }
  CHECK(h.Percentile(100) == values.back());
  CHECK(h.min() == values.front());
  CHECK(h.count() == values.size());
}

TEST_CASE("histogram merge equals recording everything in one, and huge values are clamped") {
  LatencyHistogram a, b, all;
  for (uint64_t v = 1; v < 5000; v += 7) {
    (v % 2 ? a : b).Record(v * 1000);
    all.Record(v * 1000);
  }
  a.Merge(b);
  CHECK(a.count() == all.count());
  for (double p : {1.0, 50.0, 99.0, 99.9}) CHECK(a.Percentile(p) == all.Percentile(p));
  LatencyHistogram big;
  big.Record(UINT64_MAX);
  CHECK(big.clamped() == 1);
  CHECK(big.max() == LatencyHistogram::kMaxValue);
  LatencyHistogram empty;
  CHECK(empty.Percentile(99) == 0);
}

TEST_CASE("sizes parse with binary suffixes and print back") {
  CHECK(*ParseSize("1024") == 1024);
  CHECK(*ParseSize("1KiB") == 1024);
  CHECK(*ParseSize("64k") == 65536);
  CHECK(*ParseSize("16MiB") == 16ull << 20);
  CHECK(!ParseSize("12parsecs").ok());
  CHECK(!ParseSize("").ok());
  CHECK(SizeName(1024) == "1KiB");
  CHECK(SizeName(16ull << 20) == "16MiB");
  CHECK(SizeName(1000) == "1000B");
}

TEST_CASE("series are summed over labels, and longer names are not mistaken for the one asked") {
  std::string text =
      "# HELP ddsplit_heap_allocations_total x\n"
      "ddsplit_heap_allocations_total 1234\n"
      "ddsplit_heap_allocations_total_extra 5\n"
      "process_resident_memory_bytes 1.5e+07\n"
      "ddsplit_x_requests_total{operation=\"get\",outcome=\"ok\"} 3\n"
      "ddsplit_x_requests_total{operation=\"put\",outcome=\"ok\"} 4 1700000000\n";
  CHECK(*SumOfSeries(text, "ddsplit_heap_allocations_total") == 1234);
  CHECK(*SumOfSeries(text, "process_resident_memory_bytes") == 1.5e7);
  CHECK(*SumOfSeries(text, "ddsplit_x_requests_total") == 7);
  CHECK(!SumOfSeries(text, "ddsplit_absent_total").has_value());
}

TEST_CASE("the results validator names what is missing or empty") {
  CHECK(!ValidateResults(nlohmann::json::array()).ok());
  nlohmann::json doc = {{"schema", "ddsplit-bench/1"},
                        {"environment", {}},
                        {"config", {}},
                        {"limits", {}},
                        {"runs", nlohmann::json::array()},
                        {"memory", {}},
                        {"targets", nlohmann::json::array()}};
  auto status = ValidateResults(doc);
  REQUIRE(!status.ok());
  CHECK(status.error().message().find("memcpy") != std::string::npos);
}

}  // namespace
}  // namespace ddsplit::bench
