#include "bench/process_probe.h"

#include <fcntl.h>
#include <httplib.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ddsplit::bench {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<double> SumOfSeries(std::string_view exposition, std::string_view name) {
  std::optional<double> sum;
  size_t position = 0;
  while (position < exposition.size()) {
    size_t end = exposition.find('\n', position);
    if (end == std::string_view::npos) end = exposition.size();
    std::string_view line = exposition.substr(position, end - position);
    position = end + 1;
    if (line.empty() || line[0] == '#' || line.substr(0, name.size()) != name) continue;
    std::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != ' ' && rest[0] != '{')) continue;  // a longer name
    if (rest[0] == '{') {
      size_t close = rest.rfind('}');
      if (close == std::string_view::npos) continue;
      rest = rest.substr(close + 1);
    }
    while (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
    size_t space = rest.find(' ');  // an optional timestamp follows
    std::string value(rest.substr(0, space));
    char* parsed_end = nullptr;
    double v = std::strtod(value.c_str(), &parsed_end);
    if (parsed_end == value.c_str()) continue;
    sum = sum.value_or(0) + v;
  }
  return sum;
}

Result<ProcessCounters> ScrapeCounters(const std::string& admin_url) {
  httplib::Client http(admin_url);
  http.set_connection_timeout(5, 0);
  http.set_read_timeout(5, 0);
  auto answer = http.Get("/metrics");
  if (!answer) {
    return Error(ErrorCode::kUnavailable,
                 admin_url + "/metrics: " + httplib::to_string(answer.error()));
  }
  if (answer->status != 200) {
    return Error(ErrorCode::kUnavailable,
                 admin_url + "/metrics: status " + std::to_string(answer->status));
  }
  const std::string& text = answer->body;
  ProcessCounters c;
  auto pick = [&](std::string_view name, double& out) {
    if (auto v = SumOfSeries(text, name)) out = *v;
  };
  pick("ddsplit_heap_allocations_total", c.heap_allocations);
  pick("ddsplit_heap_allocated_bytes_total", c.heap_allocated_bytes);
  pick("ddsplit_payload_copies_total", c.payload_copies);
  pick("ddsplit_payload_copied_bytes_total", c.payload_copied_bytes);
  pick("process_resident_memory_bytes", c.resident_bytes);
  pick("process_cpu_seconds_total", c.cpu_seconds);
  return c;
}

std::optional<ProcUsage> ReadProcUsage(pid_t pid) {
  // No allocation: the sampler runs in the measuring process while load is counted.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char text[1024];
  ssize_t got = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (got <= 0) return std::nullopt;
  text[got] = '\0';
  const char* close = std::strrchr(text, ')');  // the command name may hold spaces and ')'
  if (close == nullptr) return std::nullopt;
  // Fields from 3 (state) on; utime and stime are 14 and 15, rss is 24.
  const char* p = close + 1;
  uint64_t utime = 0, stime = 0, rss = 0;
  for (int index = 3; index <= 24; ++index) {
    while (*p == ' ') ++p;
    if (*p == '\0') return std::nullopt;
    const char* end = p;
    while (*end != ' ' && *end != '\0') ++end;
    if (index == 14 || index == 15 || index == 24) {
      uint64_t value = 0;
      std::from_chars(p, end, value);
      (index == 14 ? utime : index == 15 ? stime : rss) = value;
    }
    p = end;
  }
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return ProcUsage{static_cast<double>(utime + stime) / ticks, rss * page};
}

MachineCpu ReadMachineCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  double busy = static_cast<double>(user + nice + system + irq + softirq + steal) / ticks;
  return {busy, busy + static_cast<double>(idle + iowait) / ticks};
}

std::string LoadAverageLine() {
  std::string text = ReadFile("/proc/loadavg");
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

double LoadAverage1() { return std::strtod(LoadAverageLine().c_str(), nullptr); }

ResidentSampler::ResidentSampler(std::vector<pid_t> pids, std::chrono::milliseconds interval)
    : pids_(std::move(pids)), interval_(interval), peaks_(pids_.size(), 0) {}

ResidentSampler::~ResidentSampler() { (void)Stop(); }

void ResidentSampler::Start() {
  std::fill(peaks_.begin(), peaks_.end(), 0);
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

std::vector<uint64_t> ResidentSampler::Stop() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  std::lock_guard lock(mutex_);
  return peaks_;
}

void ResidentSampler::Loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (auto usage = ReadProcUsage(pids_[i]))
        peaks_[i] = std::max(peaks_[i], usage->resident_bytes);
    }
    wake_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

}  // namespace ddsplit::bench
