// metrics: what every process needs to export Prometheus metrics — a process-wide registry,
// the standard process_* and build-info series, heap-allocation and payload-copy counters,
// per-stage queue/work histograms and per-operation RED metrics. Component probes (one per
// service, in the service's folder) build on these; domain code never names a metric.
//
// Naming: ddsplit_<service>_<name>_<unit>, base units, counters end in _total, labels of low
// cardinality only. Thread-safety: everything here is safe to call from any thread.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <atomic>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/base/stage.h"

namespace ddsplit::metrics {

namespace internal {
extern std::atomic<bool> enabled;
}  // namespace internal

// Whether this process records metrics. True unless the environment variable DDSPLIT_METRICS is
// "off", "0" or "false" when the process starts. When false, every probe method, StageHistograms,
// OperationMetrics, CountPayloadCopy and the allocation hook's counting do nothing (a relaxed
// load and a branch each), and /metrics keeps serving the series at their start-up values: the
// switch exists to measure what the instrumentation costs. The timings carried back to clients in
// replies are not affected. Safe from any thread.
inline bool Enabled() { return internal::enabled.load(std::memory_order_relaxed); }
// Overrides the start-up setting (tests and benchmarks); also switches the allocation hook.
void SetEnabled(bool enabled);

// The registry every probe of a process registers with, plus the series every DDSplit process
// exports: ddsplit_build_info{version,service}, process_* read from /proc/self at scrape time,
// ddsplit_heap_allocations_total / ddsplit_heap_allocated_bytes_total (from the allocation
// hook; absent when the hook is not linked) and ddsplit_payload_copies_total /
// ddsplit_payload_copied_bytes_total (from CountPayloadCopy).
//
// `service` is the process's service name ("splitter", "fragstore", ...): lower-case letters,
// digits and underscores, since it also forms metric names. Any number of instances may exist
// (tests create several); the heap and copy counters they export are process-wide.
class ProcessMetrics {
 public:
  explicit ProcessMetrics(std::string service);
  ProcessMetrics(const ProcessMetrics&) = delete;
  ProcessMetrics& operator=(const ProcessMetrics&) = delete;
  ~ProcessMetrics();

  prometheus::Registry& registry() { return *registry_; }
  const std::string& service() const { return service_; }
  // The Prometheus text exposition (format 0.0.4) of everything registered. Reads /proc/self,
  // so it costs a few system calls; meant for scrapes, not hot paths.
  std::string Serialize() const;

 private:
  std::string service_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
};

// The content type of Serialize()'s output, for an HTTP answer.
inline constexpr std::string_view kTextExpositionContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Records that `bytes` of record payload were copied in user space. Call at every copy. Costs two
// relaxed atomic increments.
void CountPayloadCopy(uint64_t bytes);

struct PayloadCopyCounts {
  uint64_t copies = 0;
  uint64_t bytes = 0;
};
// Totals since start of what CountPayloadCopy recorded, for benchmarks and tests.
PayloadCopyCounts CurrentPayloadCopyCounts();

struct AllocationCounts {
  uint64_t allocations = 0;
  uint64_t bytes = 0;
};
// Totals since start from the global allocation hook (zero if it is not linked in). Counts every
// malloc-family call of the process, operator new included; `bytes` is the size requested (for
// realloc, the new size). Frees are not counted.
AllocationCounts CurrentAllocationCounts();
// True when the allocation hook library (CMake target ddsplit_alloc_hook) is linked into this
// binary. Always false in sanitizer builds, where the sanitizer owns malloc.
bool AllocationHookActive();

// A label-less counter or gauge registered under `name`, for probes.
prometheus::Counter& AddCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help);
prometheus::Gauge& AddGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help);

// The latency objectives (seconds) that alert rules and dashboards refer to: a read's p99 at most
// kReadLatencyObjective, a write's (which waits for a WAL fsync on a write quorum) at most
// kWriteLatencyObjective. LatencyBuckets() has an edge at each.
inline constexpr double kReadLatencyObjective = 0.1;
inline constexpr double kWriteLatencyObjective = 0.25;

// Latency buckets in seconds, 10 us to 10 s, with edges at the latency objectives above and at
// 1 ms, 10 ms, 100 ms and 1 s.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();
// Size buckets in bytes, powers of 4 from 64 B to 64 MiB.
const prometheus::Histogram::BucketBoundaries& SizeBuckets();

// Two histograms sharing a `stage` label: ddsplit_<service>_stage_queue_seconds (time a request
// waited before the stage began) and ddsplit_<service>_stage_work_seconds (time worked on it).
// The series of every stage given (all stages by default) exist from construction; observing a
// stage that was not given does nothing. Several instances for one service share the series
// (prometheus-cpp merges families of the same name).
class StageHistograms {
 public:
  StageHistograms(prometheus::Registry& registry, std::string_view service);
  StageHistograms(prometheus::Registry& registry, std::string_view service,
                  std::initializer_list<Stage> stages);
  void Observe(Stage stage, uint64_t queue_ns, uint64_t work_ns);

 private:
  std::array<prometheus::Histogram*, kStageCount> queue_{};
  std::array<prometheus::Histogram*, kStageCount> work_{};
};

// RED metrics for one operation of a service: ddsplit_<service>_requests_total{operation,outcome},
// ddsplit_<service>_request_duration_seconds{operation} and
// ddsplit_<service>_requests_in_flight{operation}. Outcome is an ErrorCode name ("ok", "busy",
// ...); every outcome's series exists from construction. Finished() must follow each Started().
class OperationMetrics {
 public:
  OperationMetrics(prometheus::Registry& registry, std::string_view service,
                   std::string_view operation);
  void Started();
  void Finished(ErrorCode outcome, uint64_t duration_ns);

 private:
  std::array<prometheus::Counter*, kMaxErrorCode + 1> by_outcome_{};
  prometheus::Histogram* duration_ = nullptr;
  prometheus::Gauge* in_flight_ = nullptr;
};

}  // namespace ddsplit::metrics
