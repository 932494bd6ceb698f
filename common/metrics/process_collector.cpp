#include "common/metrics/process_collector.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <utility>

#include "common/metrics/metrics.h"

namespace ddsplit::metrics::internal {
namespace {

std::optional<std::string> ReadProcFile(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  std::array<char, 4096> buffer;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buffer.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

// Splits on single spaces and newlines; /proc/<pid>/stat uses exactly one space between fields.
std::vector<std::string_view> SplitFields(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find_first_of(" \n", begin);
    if (end == std::string_view::npos) end = text.size();
    if (end > begin) fields.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return fields;
}

std::optional<uint64_t> ParseUnsigned(std::string_view text) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Entries of /proc/self/fd, less the descriptor used to read it.
std::optional<uint64_t> CountOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  uint64_t count = 0;
  while (const dirent* entry = ::readdir(dir)) {  // NOLINT(concurrency-mt-unsafe): own DIR
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count > 0 ? count - 1 : 0;
}

prometheus::MetricFamily OneSample(std::string name, std::string help, prometheus::MetricType type,
                                   double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

constexpr auto kCounter = prometheus::MetricType::Counter;
constexpr auto kGauge = prometheus::MetricType::Gauge;

}  // namespace

std::optional<ProcStat> ParseProcStat(std::string_view text) {
  const size_t comm_end = text.rfind(')');
  if (comm_end == std::string_view::npos) return std::nullopt;
  const std::vector<std::string_view> fields = SplitFields(text.substr(comm_end + 1));
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  constexpr size_t kUser = 14 - 3, kSystem = 15 - 3, kStart = 22 - 3, kVirtual = 23 - 3,
                   kResident = 24 - 3;
  if (fields.size() <= kResident) return std::nullopt;
  const auto user = ParseUnsigned(fields[kUser]);
  const auto system = ParseUnsigned(fields[kSystem]);
  const auto start = ParseUnsigned(fields[kStart]);
  const auto virtual_bytes = ParseUnsigned(fields[kVirtual]);
  const auto resident = ParseUnsigned(fields[kResident]);
  if (!user || !system || !start || !virtual_bytes || !resident) return std::nullopt;
  return ProcStat{*user, *system, *start, *virtual_bytes, *resident};
}

std::optional<uint64_t> ParseBootTime(std::string_view text) {
  constexpr std::string_view kKey = "btime ";
  size_t line = 0;
  while (line < text.size()) {
    size_t end = text.find('\n', line);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view row = text.substr(line, end - line);
    if (row.substr(0, kKey.size()) == kKey) return ParseUnsigned(row.substr(kKey.size()));
    line = end + 1;
  }
  return std::nullopt;
}

ProcessCollector::ProcessCollector()
    : ticks_per_second_(static_cast<double>(::sysconf(_SC_CLK_TCK))),
      page_bytes_(static_cast<double>(::sysconf(_SC_PAGESIZE))) {
  if (const auto stat = ReadProcFile("/proc/stat")) {
    if (const auto boot = ParseBootTime(*stat)) boot_time_seconds_ = static_cast<double>(*boot);
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const auto text = ReadProcFile("/proc/self/stat");
  const auto stat = text ? ParseProcStat(*text) : std::nullopt;
  if (stat && ticks_per_second_ > 0) {
    families.push_back(OneSample(
        "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", kCounter,
        static_cast<double>(stat->user_ticks + stat->system_ticks) / ticks_per_second_));
  }
  if (stat) {
    families.push_back(OneSample("process_resident_memory_bytes", "Resident memory size in bytes.",
                                 kGauge, static_cast<double>(stat->resident_pages) * page_bytes_));
    families.push_back(OneSample("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                 kGauge, static_cast<double>(stat->virtual_bytes)));
  }
  if (stat && boot_time_seconds_ && ticks_per_second_ > 0) {
    families.push_back(OneSample(
        "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        kGauge, *boot_time_seconds_ + static_cast<double>(stat->start_ticks) / ticks_per_second_));
  }
  if (const auto open_fds = CountOpenFds()) {
    families.push_back(OneSample("process_open_fds", "Number of open file descriptors.", kGauge,
                                 static_cast<double>(*open_fds)));
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    families.push_back(OneSample("process_max_fds", "Maximum number of open file descriptors.",
                                 kGauge, static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

std::vector<prometheus::MetricFamily> RuntimeCountersCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const PayloadCopyCounts copies = CurrentPayloadCopyCounts();
  families.push_back(OneSample("ddsplit_payload_copies_total",
                               "Copies of record payload made in user space.", kCounter,
                               static_cast<double>(copies.copies)));
  families.push_back(OneSample("ddsplit_payload_copied_bytes_total",
                               "Bytes of record payload copied in user space.", kCounter,
                               static_cast<double>(copies.bytes)));
  if (AllocationHookActive()) {
    const AllocationCounts heap = CurrentAllocationCounts();
    families.push_back(OneSample("ddsplit_heap_allocations_total",
                                 "Heap allocations made by the process (malloc family and "
                                 "operator new).",
                                 kCounter, static_cast<double>(heap.allocations)));
    families.push_back(OneSample("ddsplit_heap_allocated_bytes_total",
                                 "Bytes requested from the heap by the process.", kCounter,
                                 static_cast<double>(heap.bytes)));
  }
  return families;
}

}  // namespace ddsplit::metrics::internal
