// process_probe: what the benchmark reads about the cluster's processes — the runtime counters
// of a process's /metrics (heap allocations, payload copies, resident memory, CPU time), and
// cheap /proc readings (CPU time, resident memory) sampled while load runs, plus the machine's
// load average.
//
// Thread-safety: the free functions are safe from any thread. ResidentSampler runs its own
// thread between Start() and Stop(); its methods are called from one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/base/result.h"

namespace ddsplit::bench {

// The series every DDSplit process exports that the benchmark uses. A counter the process does
// not export (no allocation hook linked) reads as -1.
struct ProcessCounters {
  double heap_allocations = -1;      // ddsplit_heap_allocations_total
  double heap_allocated_bytes = -1;  // ddsplit_heap_allocated_bytes_total
  double payload_copies = -1;        // ddsplit_payload_copies_total
  double payload_copied_bytes = -1;  // ddsplit_payload_copied_bytes_total
  double resident_bytes = -1;        // process_resident_memory_bytes
  double cpu_seconds = -1;           // process_cpu_seconds_total
};

// GET `admin_url`/metrics (e.g. "http://127.0.0.1:PORT") and picks out the counters.
// kUnavailable when the process does not answer within 5 s or answers non-200.
Result<ProcessCounters> ScrapeCounters(const std::string& admin_url);

// The sum over every series of metric `name` (any labels) in a Prometheus text exposition;
// nullopt when there is none. Exposed for tests.
std::optional<double> SumOfSeries(std::string_view exposition, std::string_view name);

struct ProcUsage {
  double cpu_seconds = 0;  // user + system, all threads
  uint64_t resident_bytes = 0;
};
// From /proc/<pid>/stat; nullopt if the process is gone.
std::optional<ProcUsage> ReadProcUsage(pid_t pid);

// Machine-wide CPU time from the first line of /proc/stat, in seconds: busy (user, nice, system,
// irq, softirq, steal) and all (busy plus idle and iowait).
struct MachineCpu {
  double busy_seconds = 0;
  double total_seconds = 0;
};
MachineCpu ReadMachineCpu();

// The 1-minute load average and the running/total task counts, as /proc/loadavg shows them.
std::string LoadAverageLine();
double LoadAverage1();

// Samples the resident memory of a set of processes every `interval` on a thread of its own
// and keeps each one's maximum.
class ResidentSampler {
 public:
  explicit ResidentSampler(std::vector<pid_t> pids,
                           std::chrono::milliseconds interval = std::chrono::milliseconds(100));
  ~ResidentSampler();
  ResidentSampler(const ResidentSampler&) = delete;
  ResidentSampler& operator=(const ResidentSampler&) = delete;

  void Start();
  // Stops the thread and returns the peak of each process (same order as the pids; 0 if never
  // read).
  std::vector<uint64_t> Stop();

 private:
  void Loop();
  std::vector<pid_t> pids_;
  std::chrono::milliseconds interval_;
  std::vector<uint64_t> peaks_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ddsplit::bench
