// Private to ddsplit_metrics: the collectors behind ProcessMetrics' scrape-time series, and the
// /proc parsers they use (exposed for tests). Thread-safety: Collect() may run on any thread.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ddsplit::metrics::internal {

// The fields of /proc/<pid>/stat that the process_* series need, in the kernel's units.
struct ProcStat {
  uint64_t user_ticks = 0;      // utime, field 14
  uint64_t system_ticks = 0;    // stime, field 15
  uint64_t start_ticks = 0;     // starttime since boot, field 22
  uint64_t virtual_bytes = 0;   // vsize, field 23
  uint64_t resident_pages = 0;  // rss, field 24
};

// Parses the text of /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses. Returns nullopt on text that does not have the expected fields.
std::optional<ProcStat> ParseProcStat(std::string_view text);
// The boot time in seconds since the epoch, from the "btime" line of /proc/stat's text.
std::optional<uint64_t> ParseBootTime(std::string_view text);

// The Prometheus client conventions' process collector, read from /proc/self at each Collect():
// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_start_time_seconds, process_open_fds, process_max_fds. A series whose source cannot be
// read is left out of that scrape.
class ProcessCollector final : public prometheus::Collectable {
 public:
  ProcessCollector();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double ticks_per_second_;
  double page_bytes_;
  std::optional<double> boot_time_seconds_;
};

// ddsplit_payload_copies_total and ddsplit_payload_copied_bytes_total always, and
// ddsplit_heap_allocations_total and ddsplit_heap_allocated_bytes_total when the allocation hook
// is linked.
class RuntimeCountersCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace ddsplit::metrics::internal
