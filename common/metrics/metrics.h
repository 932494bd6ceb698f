// metrics: what every process needs to export Prometheus metrics — a process-wide registry,
// the standard process_* and build-info series, heap-allocation and payload-copy counters,
// per-stage queue/work histograms and per-operation RED metrics. Component probes (one per
// service, in the service's folder) build on these; domain code never names a metric.
//
// Naming: ddsplit_<service>_<name>_<unit>, base units, counters end in _total, labels of low
// cardinality only. Thread-safety: everything here is safe to call from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "common/base/result.h"
#include "common/base/stage.h"

namespace ddsplit::metrics {

// The registry every probe of a process registers with, plus the series every DDSplit process
// exports: ddsplit_build_info{version,service}, process_* read from /proc/self at scrape time,
// ddsplit_heap_allocations_total / ddsplit_heap_allocated_bytes_total (from the allocation
// hook; absent when the hook is not linked) and ddsplit_payload_copies_total /
// ddsplit_payload_copied_bytes_total (from CountPayloadCopy).
class ProcessMetrics {
 public:
  explicit ProcessMetrics(std::string service);
  ProcessMetrics(const ProcessMetrics&) = delete;
  ProcessMetrics& operator=(const ProcessMetrics&) = delete;
  ~ProcessMetrics();

  prometheus::Registry& registry() { return *registry_; }
  const std::string& service() const { return service_; }
  // The Prometheus text exposition (format 0.0.4) of everything registered.
  std::string Serialize() const;

 private:
  std::string service_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
};

// Records that `bytes` of record payload were copied in user space. Call at every copy.
void CountPayloadCopy(uint64_t bytes);

struct AllocationCounts {
  uint64_t allocations = 0;
  uint64_t bytes = 0;
};
// Totals since start from the global allocation hook (zero if it is not linked in).
AllocationCounts CurrentAllocationCounts();
// True when the allocation hook library is linked into this binary.
bool AllocationHookActive();

// Latency buckets in seconds with edges at the latency objectives (1 ms, 10 ms, 100 ms, 1 s).
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();
// Size buckets in bytes, powers of 4 from 64 B to 64 MiB.
const prometheus::Histogram::BucketBoundaries& SizeBuckets();

// Two histograms sharing a `stage` label: ddsplit_<service>_stage_queue_seconds (time a request
// waited before the stage began) and ddsplit_<service>_stage_work_seconds (time worked on it).
// Every stage's series exists from construction.
class StageHistograms {
 public:
  StageHistograms(prometheus::Registry& registry, std::string_view service);
  void Observe(Stage stage, uint64_t queue_ns, uint64_t work_ns);

 private:
  std::array<prometheus::Histogram*, kStageCount> queue_{};
  std::array<prometheus::Histogram*, kStageCount> work_{};
};

// RED metrics for one operation of a service: ddsplit_<service>_requests_total{operation,outcome},
// ddsplit_<service>_request_duration_seconds{operation} and
// ddsplit_<service>_requests_in_flight{operation}. Outcome is an ErrorCode name ("ok", "busy",
// ...); every outcome's series exists from construction.
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
