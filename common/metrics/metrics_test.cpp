#include "common/metrics/metrics.h"

#include <doctest/doctest.h>
#include <prometheus/metric_family.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/metrics/metrics_test_util.h"
#include "common/metrics/process_collector.h"

namespace ddsplit::metrics {
namespace {

using testing::SampleValue;

// The one series of `family_name` in `registry` whose labels include name=value.
const prometheus::ClientMetric* FindSeries(const std::vector<prometheus::MetricFamily>& families,
                                           const std::string& family_name, const std::string& label,
                                           const std::string& value) {
  for (const auto& family : families) {
    if (family.name != family_name) continue;
    for (const auto& metric : family.metric) {
      for (const auto& l : metric.label) {
        if (l.name == label && l.value == value) return &metric;
      }
    }
  }
  return nullptr;
}

size_t SeriesCount(const std::vector<prometheus::MetricFamily>& families,
                   const std::string& family_name) {
  for (const auto& family : families) {
    if (family.name == family_name) return family.metric.size();
  }
  return 0;
}

void CheckWithPromtool(const std::string& exposition) {
  const auto result = testing::PromtoolCheckMetrics(exposition);
  if (!result) {
    MESSAGE("promtool not on PATH; skipping the exposition lint");
    return;
  }
  INFO("promtool output: ", result->output);
  INFO("exposition:\n", exposition);
  CHECK(result->exit_code == 0);
}

TEST_CASE("ProcessMetrics exports build info and the process series") {
  ProcessMetrics metrics("splitter");
  CHECK(metrics.service() == "splitter");
  const std::string text = metrics.Serialize();

  CHECK(SampleValue(text, "ddsplit_build_info{service=\"splitter\",version=\"" DDSPLIT_VERSION
                          "\"}") == 1.0);
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds", "ddsplit_payload_copies_total",
                           "ddsplit_payload_copied_bytes_total", "ddsplit_build_info"}) {
    CAPTURE(name);
    CHECK(text.find(std::string("# HELP ") + name + " ") != std::string::npos);
  }
  CHECK(*SampleValue(text, "process_resident_memory_bytes") > 0);
  CHECK(*SampleValue(text, "process_virtual_memory_bytes") >=
        *SampleValue(text, "process_resident_memory_bytes"));
  CHECK(*SampleValue(text, "process_cpu_seconds_total") >= 0);
  CHECK(*SampleValue(text, "process_open_fds") >= 3);  // stdin, stdout, stderr at least
  CHECK(*SampleValue(text, "process_max_fds") >= *SampleValue(text, "process_open_fds"));
  CHECK(*SampleValue(text, "process_start_time_seconds") > 1.5e9);  // after 2017: a real epoch time
}

TEST_CASE("without the allocation hook the heap series are absent") {
  CHECK_FALSE(AllocationHookActive());
  CHECK(CurrentAllocationCounts().allocations == 0);
  CHECK(CurrentAllocationCounts().bytes == 0);
  const std::string text = ProcessMetrics("gateway").Serialize();
  CHECK(text.find("ddsplit_heap_allocations_total") == std::string::npos);
  CHECK(text.find("ddsplit_heap_allocated_bytes_total") == std::string::npos);
}

TEST_CASE("CountPayloadCopy is exported as process-wide counters") {
  ProcessMetrics metrics("assembler");
  const std::string before = metrics.Serialize();
  const PayloadCopyCounts counts_before = CurrentPayloadCopyCounts();
  CountPayloadCopy(100);
  CountPayloadCopy(4096);
  const std::string after = metrics.Serialize();

  CHECK(CurrentPayloadCopyCounts().copies == counts_before.copies + 2);
  CHECK(CurrentPayloadCopyCounts().bytes == counts_before.bytes + 4196);
  CHECK(*SampleValue(after, "ddsplit_payload_copies_total") -
            *SampleValue(before, "ddsplit_payload_copies_total") ==
        2);
  CHECK(*SampleValue(after, "ddsplit_payload_copied_bytes_total") -
            *SampleValue(before, "ddsplit_payload_copied_bytes_total") ==
        4196);
  CHECK(*SampleValue(after, "ddsplit_payload_copies_total") ==
        static_cast<double>(CurrentPayloadCopyCounts().copies));
}

TEST_CASE("StageHistograms count observations per stage") {
  ProcessMetrics metrics("fragstore");
  StageHistograms stages(metrics.registry(), "fragstore");
  const std::string queue = "ddsplit_fragstore_stage_queue_seconds";
  const std::string work = "ddsplit_fragstore_stage_work_seconds";

  SUBCASE("every stage's series exists at zero from construction") {
    const auto families = metrics.registry().Collect();
    CHECK(SeriesCount(families, queue) == kStageCount);
    CHECK(SeriesCount(families, work) == kStageCount);
    for (int i = 0; i < kStageCount; ++i) {
      const std::string stage(StageName(static_cast<Stage>(i)));
      CAPTURE(stage);
      const auto* series = FindSeries(families, queue, "stage", stage);
      REQUIRE(series != nullptr);
      CHECK(series->histogram.sample_count == 0);
    }
    const std::string text = metrics.Serialize();
    CHECK(SampleValue(text, queue + "_count{stage=\"store_commit\"}") == 0.0);
  }

  SUBCASE("observations land in their stage, queue and work separately") {
    stages.Observe(Stage::kEncode, 2'000'000, 5'000'000);  // 2 ms queued, 5 ms worked
    stages.Observe(Stage::kEncode, 2'000'000, 5'000'000);
    stages.Observe(Stage::kReply, 0, 300'000'000);
    const auto families = metrics.registry().Collect();

    const auto* encode_queue = FindSeries(families, queue, "stage", "encode");
    const auto* encode_work = FindSeries(families, work, "stage", "encode");
    const auto* reply_work = FindSeries(families, work, "stage", "reply");
    const auto* fetch_work = FindSeries(families, work, "stage", "fetch");
    REQUIRE(encode_queue != nullptr);
    REQUIRE(encode_work != nullptr);
    REQUIRE(reply_work != nullptr);
    REQUIRE(fetch_work != nullptr);
    CHECK(encode_queue->histogram.sample_count == 2);
    CHECK(encode_queue->histogram.sample_sum == doctest::Approx(0.004));
    CHECK(encode_work->histogram.sample_sum == doctest::Approx(0.010));
    CHECK(reply_work->histogram.sample_count == 1);
    CHECK(fetch_work->histogram.sample_count == 0);

    // 2 ms falls between the 1 ms and 2.5 ms edges.
    for (const auto& bucket : encode_queue->histogram.bucket) {
      CAPTURE(bucket.upper_bound);
      CHECK(bucket.cumulative_count == (bucket.upper_bound >= 0.0025 ? 2u : 0u));
    }

    const std::string text = metrics.Serialize();
    CHECK(SampleValue(text, queue + "_count{stage=\"encode\"}") == 2.0);
    CHECK(SampleValue(text, work + "_count{stage=\"reply\"}") == 1.0);
  }

  SUBCASE("a second instance for the same service shares the series") {
    StageHistograms other(metrics.registry(), "fragstore");
    other.Observe(Stage::kStoreRead, 1000, 1000);
    stages.Observe(Stage::kStoreRead, 1000, 1000);
    const auto families = metrics.registry().Collect();
    CHECK(SeriesCount(families, work) == kStageCount);
    CHECK(FindSeries(families, work, "stage", "store_read")->histogram.sample_count == 2);
  }
}

TEST_CASE("StageHistograms limited to some stages export only those") {
  ProcessMetrics metrics("splitter");
  StageHistograms stages(metrics.registry(), "splitter", {Stage::kReceive, Stage::kEncode});
  stages.Observe(Stage::kEncode, 1000, 2000);
  stages.Observe(Stage::kDecode, 1000, 2000);  // not registered: ignored
  const auto families = metrics.registry().Collect();
  CHECK(SeriesCount(families, "ddsplit_splitter_stage_queue_seconds") == 2);
  CHECK(SeriesCount(families, "ddsplit_splitter_stage_work_seconds") == 2);
  CHECK(FindSeries(families, "ddsplit_splitter_stage_work_seconds", "stage", "encode")
            ->histogram.sample_count == 1);
  CHECK(FindSeries(families, "ddsplit_splitter_stage_work_seconds", "stage", "decode") == nullptr);
}

TEST_CASE("with metrics switched off, observations and copies are not recorded") {
  ProcessMetrics metrics("assembler");
  StageHistograms stages(metrics.registry(), "assembler");
  OperationMetrics get(metrics.registry(), "assembler", "get");
  REQUIRE(Enabled());
  const PayloadCopyCounts copies_before = CurrentPayloadCopyCounts();
  SetEnabled(false);
  stages.Observe(Stage::kFetch, 1000, 1000);
  get.Started();
  get.Finished(ErrorCode::kOk, 1000);
  CountPayloadCopy(4096);
  const PayloadCopyCounts copies_off = CurrentPayloadCopyCounts();
  SetEnabled(true);
  CHECK(copies_off.copies == copies_before.copies);
  const std::string text = metrics.Serialize();
  CHECK(SampleValue(text, "ddsplit_assembler_stage_work_seconds_count{stage=\"fetch\"}") == 0.0);
  CHECK(SampleValue(text, "ddsplit_assembler_requests_total{operation=\"get\",outcome=\"ok\"}") ==
        0.0);
  CHECK(SampleValue(text, "ddsplit_assembler_requests_in_flight{operation=\"get\"}") == 0.0);
  stages.Observe(Stage::kFetch, 1000, 1000);  // on again: recorded
  CHECK(SampleValue(metrics.Serialize(),
                    "ddsplit_assembler_stage_work_seconds_count{stage=\"fetch\"}") == 1.0);
}

TEST_CASE("OperationMetrics records requests by operation and outcome") {
  ProcessMetrics metrics("gateway");
  OperationMetrics put(metrics.registry(), "gateway", "put");
  OperationMetrics get(metrics.registry(), "gateway", "get");
  const std::string requests = "ddsplit_gateway_requests_total";

  SUBCASE("every outcome's series exists at zero from construction") {
    const std::string text = metrics.Serialize();
    for (uint16_t code = 0; code <= kMaxErrorCode; ++code) {
      const std::string outcome(ErrorCodeName(static_cast<ErrorCode>(code)));
      CAPTURE(outcome);
      CHECK(SampleValue(text, requests + "{operation=\"put\",outcome=\"" + outcome + "\"}") == 0.0);
      CHECK(SampleValue(text, requests + "{operation=\"get\",outcome=\"" + outcome + "\"}") == 0.0);
    }
    CHECK(SampleValue(text, "ddsplit_gateway_requests_in_flight{operation=\"put\"}") == 0.0);
    CHECK(SampleValue(text, "ddsplit_gateway_request_duration_seconds_count{operation=\"put\"}") ==
          0.0);
  }

  SUBCASE("started and finished requests") {
    put.Started();
    put.Started();
    get.Started();
    std::string text = metrics.Serialize();
    CHECK(SampleValue(text, "ddsplit_gateway_requests_in_flight{operation=\"put\"}") == 2.0);
    CHECK(SampleValue(text, "ddsplit_gateway_requests_in_flight{operation=\"get\"}") == 1.0);

    put.Finished(ErrorCode::kOk, 1'500'000);
    put.Finished(ErrorCode::kBusy, 20'000'000);
    text = metrics.Serialize();
    CHECK(SampleValue(text, "ddsplit_gateway_requests_in_flight{operation=\"put\"}") == 0.0);
    CHECK(SampleValue(text, requests + "{operation=\"put\",outcome=\"ok\"}") == 1.0);
    CHECK(SampleValue(text, requests + "{operation=\"put\",outcome=\"busy\"}") == 1.0);
    CHECK(SampleValue(text, requests + "{operation=\"get\",outcome=\"ok\"}") == 0.0);
    CHECK(SampleValue(text, "ddsplit_gateway_request_duration_seconds_count{operation=\"put\"}") ==
          2.0);
    CHECK(*SampleValue(text, "ddsplit_gateway_request_duration_seconds_sum{operation=\"put\"}") ==
          doctest::Approx(0.0215));
  }

  SUBCASE("an unknown outcome code counts as internal") {
    get.Started();
    get.Finished(static_cast<ErrorCode>(kMaxErrorCode + 7), 1000);
    const std::string text = metrics.Serialize();
    CHECK(SampleValue(text, requests + "{operation=\"get\",outcome=\"internal\"}") == 1.0);
  }
}

TEST_CASE("bucket helpers") {
  SUBCASE("latency buckets have edges at the objectives and ascend from 10us to 10s") {
    const auto& buckets = LatencyBuckets();
    for (double objective :
         {0.001, 0.01, 0.1, 1.0, kReadLatencyObjective, kWriteLatencyObjective}) {
      CAPTURE(objective);
      CHECK(std::find(buckets.begin(), buckets.end(), objective) != buckets.end());
    }
    CHECK(buckets.front() == 0.00001);
    CHECK(buckets.back() == 10.0);
    CHECK(std::adjacent_find(buckets.begin(), buckets.end(), std::greater_equal<>()) ==
          buckets.end());
  }
  SUBCASE("size buckets are powers of 4 from 64 B to 64 MiB") {
    const auto& buckets = SizeBuckets();
    REQUIRE(buckets.size() == 11);
    CHECK(buckets.front() == 64);
    CHECK(buckets.back() == 64.0 * 1024 * 1024);
    for (size_t i = 1; i < buckets.size(); ++i) CHECK(buckets[i] == buckets[i - 1] * 4);
  }
}

TEST_CASE("ParseProcStat reads the fields the process series need") {
  // Fields 1..24 of /proc/<pid>/stat (then more); the command name holds spaces and ')'.
  const std::string stat =
      "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
      "250 125 0 0 20 0 3 0 98765 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0\n";
  const auto parsed = internal::ParseProcStat(stat);
  REQUIRE(parsed.has_value());
  CHECK(parsed->user_ticks == 250);
  CHECK(parsed->system_ticks == 125);
  CHECK(parsed->start_ticks == 98765);
  CHECK(parsed->virtual_bytes == 123456789);
  CHECK(parsed->resident_pages == 2048);

  CHECK_FALSE(internal::ParseProcStat("").has_value());
  CHECK_FALSE(internal::ParseProcStat("12 (short) S 1 2 3").has_value());
  CHECK_FALSE(internal::ParseProcStat("no parenthesis at all").has_value());
  CHECK_FALSE(
      internal::ParseProcStat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 zz 1 0 0 20 0 1 0 5 6 7").has_value());
}

TEST_CASE("ParseBootTime finds the btime line") {
  CHECK(internal::ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n") ==
        1700000000u);
  CHECK_FALSE(internal::ParseBootTime("cpu  1 2 3\n").has_value());
  CHECK_FALSE(internal::ParseBootTime("btime soon\n").has_value());
}

TEST_CASE("the exposition passes promtool check metrics") {
  ProcessMetrics metrics("splitter");
  StageHistograms stages(metrics.registry(), "splitter");
  OperationMetrics put(metrics.registry(), "splitter", "put");
  stages.Observe(Stage::kFanOut, 1000, 2000);
  put.Started();
  put.Finished(ErrorCode::kQuorumFailed, 3'000'000);
  auto& sizes = prometheus::BuildHistogram()
                    .Name("ddsplit_splitter_record_size_bytes")
                    .Help("Size of records written.")
                    .Register(metrics.registry())
                    .Add({}, SizeBuckets());
  sizes.Observe(1000);
  CountPayloadCopy(10);
  CheckWithPromtool(metrics.Serialize());
}

}  // namespace
}  // namespace ddsplit::metrics
