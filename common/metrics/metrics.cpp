#include "common/metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <atomic>
#include <cassert>
#include <cstdlib>
#include <iterator>
#include <utility>

#include "common/metrics/process_collector.h"

#ifndef DDSPLIT_VERSION
#error "DDSPLIT_VERSION must be defined by the build (the CMake project version)"
#endif

// Defined by alloc_hook.cpp (target ddsplit_alloc_hook). Weak, so it is null when the hook is not
// linked into the binary.
// NOLINTNEXTLINE(readability-identifier-naming): a C symbol
extern "C" __attribute__((weak)) void ddsplit_alloc_hook_counts(uint64_t* count, uint64_t* bytes);
// NOLINTNEXTLINE(readability-identifier-naming): a C symbol
extern "C" __attribute__((weak)) void ddsplit_alloc_hook_set_counting(bool on);

namespace ddsplit::metrics {

namespace internal {
constinit std::atomic<bool> enabled{true};
}  // namespace internal

namespace {

// DDSPLIT_METRICS=off|0|false switches instrumentation off for the whole process, read once
// during static initialisation (before main, so before any probe exists).
[[maybe_unused]] const bool kEnabledAtStart = [] {
  const char* value = std::getenv("DDSPLIT_METRICS");  // NOLINT(concurrency-mt-unsafe): pre-main
  const std::string_view text = value != nullptr ? value : "";
  const bool on = !(text == "off" || text == "0" || text == "false");
  SetEnabled(on);
  return on;
}();

constinit std::atomic<uint64_t> payload_copies{0};
constinit std::atomic<uint64_t> payload_copied_bytes{0};

double Seconds(uint64_t ns) { return static_cast<double>(ns) * 1e-9; }

std::string MetricName(std::string_view service, std::string_view suffix) {
  std::string name = "ddsplit_";
  name += service;
  name += '_';
  name += suffix;
  return name;
}

}  // namespace

ProcessMetrics::ProcessMetrics(std::string service)
    : service_(std::move(service)), registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("ddsplit_build_info")
      .Help("Build of this DDSplit process; the value is always 1.")
      .Register(*registry_)
      .Add({{"service", service_}, {"version", DDSPLIT_VERSION}})
      .Set(1);
  collectables_.push_back(std::make_shared<internal::ProcessCollector>());
  collectables_.push_back(std::make_shared<internal::RuntimeCountersCollector>());
}

ProcessMetrics::~ProcessMetrics() = default;

std::string ProcessMetrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (const auto& collectable : collectables_) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

void SetEnabled(bool enabled) {
  internal::enabled.store(enabled, std::memory_order_relaxed);
  if (ddsplit_alloc_hook_set_counting != nullptr) ddsplit_alloc_hook_set_counting(enabled);
}

void CountPayloadCopy(uint64_t bytes) {
  if (!Enabled()) return;
  payload_copies.fetch_add(1, std::memory_order_relaxed);
  payload_copied_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

PayloadCopyCounts CurrentPayloadCopyCounts() {
  return {payload_copies.load(std::memory_order_relaxed),
          payload_copied_bytes.load(std::memory_order_relaxed)};
}

AllocationCounts CurrentAllocationCounts() {
  AllocationCounts counts;
  if (AllocationHookActive()) ddsplit_alloc_hook_counts(&counts.allocations, &counts.bytes);
  return counts;
}

bool AllocationHookActive() { return ddsplit_alloc_hook_counts != nullptr; }

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  // Stage queue waits on one host are often tens of microseconds, hence the fine low end.
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,     0.1,     0.25,   0.5,     1.0,    2.5,   5.0,    10.0};
  return kBuckets;
}

const prometheus::Histogram::BucketBoundaries& SizeBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = [] {
    prometheus::Histogram::BucketBoundaries buckets;
    for (double edge = 64; edge <= 64.0 * 1024 * 1024; edge *= 4) buckets.push_back(edge);
    return buckets;
  }();
  return kBuckets;
}

StageHistograms::StageHistograms(prometheus::Registry& registry, std::string_view service)
    : StageHistograms(registry, service,
                      {Stage::kReceive, Stage::kVerify, Stage::kEncode, Stage::kFanOut,
                       Stage::kStoreCommit, Stage::kAck, Stage::kFetch, Stage::kDecode,
                       Stage::kReply, Stage::kStoreRead, Stage::kList}) {
  static_assert(kStageCount == 11, "list every stage above");
}

StageHistograms::StageHistograms(prometheus::Registry& registry, std::string_view service,
                                 std::initializer_list<Stage> stages) {
  auto& queue = prometheus::BuildHistogram()
                    .Name(MetricName(service, "stage_queue_seconds"))
                    .Help("Time a request waited before a processing stage began, by stage.")
                    .Register(registry);
  auto& work = prometheus::BuildHistogram()
                   .Name(MetricName(service, "stage_work_seconds"))
                   .Help("Time a processing stage worked on a request, by stage.")
                   .Register(registry);
  for (Stage s : stages) {
    const auto i = static_cast<size_t>(s);
    assert(i < queue_.size());
    if (i >= queue_.size()) continue;
    const std::string stage(StageName(s));
    queue_[i] = &queue.Add({{"stage", stage}}, LatencyBuckets());
    work_[i] = &work.Add({{"stage", stage}}, LatencyBuckets());
  }
}

void StageHistograms::Observe(Stage stage, uint64_t queue_ns, uint64_t work_ns) {
  if (!Enabled()) return;
  const auto i = static_cast<size_t>(stage);
  if (i >= queue_.size() || queue_[i] == nullptr) return;
  queue_[i]->Observe(Seconds(queue_ns));
  work_[i]->Observe(Seconds(work_ns));
}

OperationMetrics::OperationMetrics(prometheus::Registry& registry, std::string_view service,
                                   std::string_view operation) {
  const std::string op(operation);
  auto& requests = prometheus::BuildCounter()
                       .Name(MetricName(service, "requests_total"))
                       .Help("Requests finished, by operation and outcome.")
                       .Register(registry);
  for (uint16_t code = 0; code <= kMaxErrorCode; ++code) {
    const std::string outcome(ErrorCodeName(static_cast<ErrorCode>(code)));
    by_outcome_[code] = &requests.Add({{"operation", op}, {"outcome", outcome}});
  }
  duration_ = &prometheus::BuildHistogram()
                   .Name(MetricName(service, "request_duration_seconds"))
                   .Help("Time from receiving a request to answering it, by operation.")
                   .Register(registry)
                   .Add({{"operation", op}}, LatencyBuckets());
  in_flight_ = &prometheus::BuildGauge()
                    .Name(MetricName(service, "requests_in_flight"))
                    .Help("Requests started and not yet finished, by operation.")
                    .Register(registry)
                    .Add({{"operation", op}});
}

void OperationMetrics::Started() {
  if (!Enabled()) return;
  in_flight_->Increment();
}

void OperationMetrics::Finished(ErrorCode outcome, uint64_t duration_ns) {
  if (!Enabled()) return;
  auto code = static_cast<size_t>(outcome);
  // A code from a newer peer is counted as internal rather than dropped.
  if (code >= by_outcome_.size()) code = static_cast<size_t>(ErrorCode::kInternal);
  in_flight_->Decrement();
  by_outcome_[code]->Increment();
  duration_->Observe(Seconds(duration_ns));
}

prometheus::Counter& AddCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

prometheus::Gauge& AddGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace ddsplit::metrics
