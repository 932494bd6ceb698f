#include "bench/suite.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "bench/histogram.h"
#include "bench/limits.h"
#include "bench/load.h"
#include "bench/process_probe.h"
#include "client/client.h"
#include "common/metrics/metrics.h"
#include "tools/cluster/local_cluster.h"

namespace ddsplit::bench {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using cluster::Role;

constexpr uint64_t kKiB = 1024, kMiB = 1024 * 1024;
constexpr uint64_t kRoundTripBytes = 1024;
constexpr int kLimitRepeats = 3;
// The splitter gives pooled buffers back after 2 s without work (kIdleTrimAfter); idle memory
// is read after a little more than that.
constexpr auto kIdleSettle = std::chrono::milliseconds(3000);
constexpr uint64_t kIdleBudgetBytes = 32 * kMiB;  // splitter, assembler, gateway when idle
// A fragstore's memory is bounded by its configuration: the launcher's defaults are a 64 MiB
// block cache, 128 MiB of memtables and 256 MiB of received-but-uncommitted fragments; allow
// 64 MiB for code, RocksDB's own structures and ZeroMQ buffers.
constexpr uint64_t kStoreBudgetBytes = (64 + 128 + 256 + 64) * kMiB;

std::string Now() {
  std::time_t t = std::time(nullptr);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// One process of the cluster, as the benchmark reports it.
struct Proc {
  std::string name;  // "store-3"
  std::string role;  // "store", "splitter", "assembler"
  pid_t pid = 0;
  std::string admin_url;
  bool stopped = false;  // SIGSTOPped: not scraped (it cannot answer), /proc only
};

std::vector<Proc> ProcessesOf(cluster::LocalCluster& c) {
  std::vector<Proc> out;
  for (Role role : {Role::kGateway, Role::kSplitter, Role::kAssembler, Role::kStore}) {
    for (int i = 0; i < c.Count(role); ++i) {
      const auto& info = c.Info(role, i);
      out.push_back({info.name, std::string(cluster::RoleName(role)), info.pid, info.admin_url});
    }
  }
  return out;
}

// Every process's counters, and this process's own, at one moment.
struct Snapshot {
  std::vector<ProcessCounters> counters;
  std::vector<ProcUsage> usage;
  metrics::AllocationCounts self_allocations;
  metrics::PayloadCopyCounts self_copies;
  ProcUsage self_usage;
};

Result<Snapshot> TakeSnapshot(const std::vector<Proc>& procs) {
  Snapshot s;
  for (const auto& p : procs) {
    if (p.stopped) {
      s.counters.push_back(ProcessCounters{});
      s.usage.push_back(ReadProcUsage(p.pid).value_or(ProcUsage{}));
      continue;
    }
    auto counters = ScrapeCounters(p.admin_url);
    if (!counters.ok())
      return Error(counters.error().code(), p.name + ": " + counters.error().message());
    s.counters.push_back(*counters);
    s.usage.push_back(ReadProcUsage(p.pid).value_or(ProcUsage{}));
  }
  s.self_allocations = metrics::CurrentAllocationCounts();
  s.self_copies = metrics::CurrentPayloadCopyCounts();
  s.self_usage = ReadProcUsage(getpid()).value_or(ProcUsage{});
  return s;
}

double Delta(double after, double before) { return after < 0 || before < 0 ? -1 : after - before; }

// Per-record figures of one process over a run. `overhead` is what one scrape costs the process
// in allocations (the two scrapes around a run add about one scrape's worth inside the window).
json PerRecord(const ProcessCounters& before, const ProcessCounters& after, const ProcUsage& u0,
               const ProcUsage& u1, double overhead_allocations, double overhead_bytes,
               uint64_t records, uint64_t peak_resident) {
  double n = records > 0 ? static_cast<double>(records) : NAN;
  double allocations = Delta(after.heap_allocations, before.heap_allocations);
  double allocated = Delta(after.heap_allocated_bytes, before.heap_allocated_bytes);
  if (allocations >= 0) allocations = std::max(0.0, allocations - overhead_allocations);
  if (allocated >= 0) allocated = std::max(0.0, allocated - overhead_bytes);
  double copies = Delta(after.payload_copies, before.payload_copies);
  double copied = Delta(after.payload_copied_bytes, before.payload_copied_bytes);
  double cpu = u1.cpu_seconds - u0.cpu_seconds;
  auto per = [&](double v) -> json { return v < 0 || std::isnan(n) ? json(nullptr) : json(v / n); };
  return {{"allocations_per_record", per(allocations)},
          {"allocated_bytes_per_record", per(allocated)},
          {"payload_copies_per_record", per(copies)},
          {"payload_copied_bytes_per_record", per(copied)},
          {"cpu_seconds", cpu},
          {"cpu_us_per_record", std::isnan(n) ? json(nullptr) : json(cpu / n * 1e6)},
          {"peak_resident_bytes", peak_resident},
          {"resident_bytes_after", after.resident_bytes}};
}

std::string ReadFirstLine(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      auto colon = line.find(':');
      std::string value = colon == std::string::npos ? line : line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(value.begin());
      return value;
    }
  }
  return {};
}

json Environment(const SuiteOptions& options) {
  json env;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  env["hostname"] = host;
  env["cpus"] = std::thread::hardware_concurrency();
  env["cpu_model"] = ReadFirstLine("/proc/cpuinfo", "model name");
  utsname u{};
  if (uname(&u) == 0) env["kernel"] = std::string(u.sysname) + " " + u.release;
  env["memory_total"] = ReadFirstLine("/proc/meminfo", "MemTotal");
  env["allocation_hook_in_bench"] = metrics::AllocationHookActive();
  for (const auto& [k, v] : options.labels) env[k] = v;
  return env;
}

// ------------------------------------------------------------------------------ limits

Result<json> MeasureLimits(const SuiteOptions& options, const std::vector<uint64_t>& sizes,
                           std::chrono::milliseconds duration) {
  json limits;
  limits["duration_ms"] = duration.count();
  limits["repeats"] = kLimitRepeats;
  limits["memcpy"] = json::array();
  limits["encode"] = json::array();
  limits["zmq_push_pull"] = json::array();
  for (uint64_t size : sizes) {
    if (options.status)
      options.status("limits: " + SizeName(size) + " (memcpy, encode, zmq push/pull)");
    // A limit is the best the machine did: each probe runs kLimitRepeats times and the fastest
    // counts (the others, slowed by other work on a shared machine, are kept for the record).
    Throughput copy, encode, zmq;
    json copy_all = json::array(), encode_all = json::array(), zmq_all = json::array();
    uint64_t fragment = (size + options.k - 1) / options.k;
    for (int repeat = 0; repeat < kLimitRepeats; ++repeat) {
      auto c = MeasureMemcpy(size, duration);
      auto e = MeasureEncode(options.k, options.m, size, duration);
      if (!e.ok()) return std::move(e).error();
      auto z = MeasureZmqPushPull(fragment, duration);
      if (!z.ok()) return std::move(z).error();
      copy_all.push_back(c.bytes_per_second());
      encode_all.push_back(e->bytes_per_second());
      zmq_all.push_back(z->bytes_per_second());
      if (c.bytes_per_second() > copy.bytes_per_second()) copy = c;
      if (e->bytes_per_second() > encode.bytes_per_second()) encode = *e;
      if (z->bytes_per_second() > zmq.bytes_per_second()) zmq = *z;
    }
    limits["memcpy"].push_back(
        {{"size", size}, {"bytes_per_s", copy.bytes_per_second()}, {"all", copy_all}});
    limits["encode"].push_back({{"record_size", size},
                                {"bytes_per_s", encode.bytes_per_second()},
                                {"records_per_s", encode.ops_per_second()},
                                {"all", encode_all}});
    limits["zmq_push_pull"].push_back({{"record_size", size},
                                       {"fragment_size", fragment},
                                       {"messages_per_s", zmq.ops_per_second()},
                                       {"bytes_per_s", zmq.bytes_per_second()},
                                       {"all", zmq_all}});
  }
  if (options.status) options.status("limits: zmq dealer/router round trip at 1 KiB");
  LatencyHistogram rtt;
  DDSPLIT_RETURN_IF_ERROR(MeasureZmqRoundTrip(kRoundTripBytes, duration * 2, rtt));
  limits["zmq_round_trip"] = {
      {"message_bytes", kRoundTripBytes},      {"round_trips", rtt.count()},
      {"p50_us", rtt.Percentile(50) / 1000.0}, {"p90_us", rtt.Percentile(90) / 1000.0},
      {"p99_us", rtt.Percentile(99) / 1000.0}, {"p999_us", rtt.Percentile(99.9) / 1000.0},
      {"max_us", rtt.max() / 1000.0}};
  return limits;
}

// Per entry the faster of two limit measurements; the round trip with the lower p99.
json BestLimits(const json& a, const json& b) {
  json best = a;
  for (const char* list : {"memcpy", "encode", "zmq_push_pull"}) {
    for (size_t i = 0; i < best[list].size() && i < b[list].size(); ++i) {
      if (b[list][i]["bytes_per_s"].get<double>() > best[list][i]["bytes_per_s"].get<double>()) {
        best[list][i] = b[list][i];
      }
    }
  }
  if (b["zmq_round_trip"]["p99_us"].get<double>() <
      best["zmq_round_trip"]["p99_us"].get<double>()) {
    best["zmq_round_trip"] = b["zmq_round_trip"];
  }
  best["note"] = "best of the measurements at the start and at the end (limits_start, limits_end)";
  return best;
}

// ------------------------------------------------------------------------------ one cluster

struct RunSpec {
  std::string mode;  // "put", "get", "degraded-get"
  uint64_t size = 0;
  int concurrency = 1;
  bool http = false;  // through the gateway instead of the native client
};

class ClusterRunner {
 public:
  ClusterRunner(const SuiteOptions& options, std::string sync, std::chrono::milliseconds warmup,
                std::chrono::milliseconds duration, bool http)
      : options_(options),
        sync_(std::move(sync)),
        warmup_(warmup),
        duration_(duration),
        http_(http) {}

  Result<json> Run(const std::vector<uint64_t>& sizes, const std::vector<int>& concurrency,
                   json& runs, uint64_t& errors_total) {
    auto dir = options_.out_dir / ("cluster-" + sync_);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    // However Run() returns, the cluster stops and then its data (up to a few GiB) goes, unless
    // asked to keep it.
    struct StopAndRemove {
      std::unique_ptr<cluster::LocalCluster>& cluster;
      std::filesystem::path dir;
      bool keep;
      ~StopAndRemove() {
        cluster.reset();  // stops and reaps every process
        std::error_code ignored;
        if (!keep) std::filesystem::remove_all(dir, ignored);
      }
    } cleanup{cluster_, dir, options_.keep_data};
    cluster::ClusterOptions copts;
    copts.dir = dir;
    copts.stores = options_.stores;
    copts.k = options_.k;
    copts.m = options_.m;
    copts.sync = sync_;
    copts.bin_dir = options_.bin_dir;
    copts.log_level = "warn";
    Say(options_, "cluster (sync=" + sync_ + "): starting in " + dir.string());
    auto started = cluster::LocalCluster::Start(copts);
    if (!started.ok()) return std::move(started).error();
    cluster_ = std::move(*started);
    procs_ = ProcessesOf(*cluster_);
    auto client_options = client::OptionsFromClusterFile(cluster_->cluster_json().string());
    if (!client_options.ok()) return std::move(client_options).error();
    client_options_ = *client_options;
    if (cluster_->Count(Role::kGateway) > 0) gateway_url_ = cluster_->Info(Role::kGateway, 0).url;
    DDSPLIT_RETURN_IF_ERROR(
        WaitAllStoresHealthy(client_options_, options_.stores, std::chrono::seconds(30)));

    json memory = json::object();
    std::vector<pid_t> pids;
    for (const auto& p : procs_) pids.push_back(p.pid);
    peaks_.assign(procs_.size(), 0);

    // Idle, then what one scrape costs each process (subtracted from every run).
    auto idle = TakeSnapshot(procs_);
    if (!idle.ok()) return std::move(idle).error();
    DDSPLIT_RETURN_IF_ERROR(CalibrateScrapes());

    sampler_ = std::make_unique<ResidentSampler>(pids);
    for (uint64_t size : sizes) {
      uint64_t keys = KeySpace(size);
      uint64_t written = keys;
      for (int c : concurrency) {
        auto r = OneRun({"put", size, c}, keys, runs, errors_total);
        if (!r.ok()) return std::move(r).error();
        written = std::min(written, *r);
      }
      if (written < keys) {
        Say(options_, "populating " + SizeName(size) + " keys " + std::to_string(written) + ".." +
                          std::to_string(keys - 1));
        LoadOptions populate = LoadFor({"put", size, 32}, keys);
        populate.first_key = written;
        // Not fatal: the gets that follow then report the missing keys as errors.
        if (Status s = Populate(client_options_, populate); !s.ok()) {
          Say(options_, "WARNING: " + s.error().ToString());
          populate_errors_.push_back(SizeName(size) + ": " + s.error().ToString());
        }
      }
      for (int c : concurrency) {
        auto r = OneRun({"get", size, c}, keys, runs, errors_total);
        if (!r.ok()) return std::move(r).error();
      }
      // The gateway against the native client, at the highest concurrency (its issue asks for
      // 1 KiB and 1 MiB); the keys exist now.
      if (http_ && !gateway_url_.empty() && (size == kKiB || size == kMiB)) {
        int top = *std::max_element(concurrency.begin(), concurrency.end());
        for (const char* mode : {"put", "get"}) {
          auto r = OneRun({mode, size, top, /*http=*/true}, keys, runs, errors_total);
          if (!r.ok()) return std::move(r).error();
        }
      }
    }
    // Degraded gets: stop stores once, read every size, continue them.
    for (int i = 0; i < options_.stopped_stores; ++i) {
      DDSPLIT_RETURN_IF_ERROR(cluster_->Stop(Role::kStore, i));
      SetStopped(cluster_->Info(Role::kStore, i).name, true);
    }
    Say(options_, "stopped " + std::to_string(options_.stopped_stores) +
                      " stores; waiting for degraded reads to settle");
    DDSPLIT_RETURN_IF_ERROR(WaitForFastReads(client_options_, KeyPrefix(sizes.front()),
                                             KeySpace(sizes.front()), std::chrono::seconds(20)));
    for (uint64_t size : sizes) {
      for (int c : concurrency) {
        auto r = OneRun({"degraded-get", size, c}, KeySpace(size), runs, errors_total);
        if (!r.ok()) return std::move(r).error();
      }
    }
    for (int i = 0; i < options_.stopped_stores; ++i) {
      DDSPLIT_RETURN_IF_ERROR(cluster_->Continue(Role::kStore, i));
      SetStopped(cluster_->Info(Role::kStore, i).name, false);
    }
    Say(options_, "stores continued; waiting until every store is reachable again");
    DDSPLIT_RETURN_IF_ERROR(
        WaitAllStoresHealthy(client_options_, options_.stores, std::chrono::seconds(30)));

    Say(options_, "letting the cluster go idle to read its memory");
    std::this_thread::sleep_for(kIdleSettle);  // a measurement interval, not synchronisation
    auto idle_end = TakeSnapshot(procs_);
    if (!idle_end.ok()) return std::move(idle_end).error();
    json processes = json::array();
    for (size_t i = 0; i < procs_.size(); ++i) {
      processes.push_back({{"name", procs_[i].name},
                           {"role", procs_[i].role},
                           {"idle_start_bytes", idle->counters[i].resident_bytes},
                           {"peak_bytes", peaks_[i]},
                           {"idle_end_bytes", idle_end->counters[i].resident_bytes},
                           {"scrape_overhead_allocations", overhead_allocations_[i]}});
    }
    memory["processes"] = processes;
    memory["populate_errors"] = populate_errors_;

    Status stopped = cluster_->StopAll();
    if (!stopped.ok()) memory["stop_error"] = stopped.error().ToString();
    return memory;
  }

 private:
  static void Say(const SuiteOptions& options, const std::string& text) {
    if (options.status) options.status(text);
  }

  void SetStopped(const std::string& name, bool stopped) {
    for (auto& p : procs_) {
      if (p.name == name) p.stopped = stopped;
    }
  }

  // Keys per size: enough for 32 writes in flight on distinct keys; about 64 MiB of records at
  // most, except that small records get up to 4096 keys.
  static uint64_t KeySpace(uint64_t size) {
    return std::clamp<uint64_t>((64 * kMiB) / std::max<uint64_t>(size, 1), 32, 4096);
  }
  static std::string KeyPrefix(uint64_t size) { return "bench/" + SizeName(size) + "/"; }

  LoadOptions LoadFor(const RunSpec& spec, uint64_t keys) const {
    LoadOptions o;
    o.mode = spec.mode == "put" ? Mode::kPut : Mode::kGet;
    o.record_bytes = spec.size;
    o.concurrency = spec.concurrency;
    o.warmup = warmup_;
    o.duration = duration_;
    o.key_prefix = KeyPrefix(spec.size);
    o.key_space = keys;
    if (spec.http) o.http_url = gateway_url_;
    return o;
  }

  Status CalibrateScrapes() {
    overhead_allocations_.assign(procs_.size(), 0);
    overhead_bytes_.assign(procs_.size(), 0);
    std::vector<std::vector<double>> samples(procs_.size()), bytes(procs_.size());
    auto previous = TakeSnapshot(procs_);
    if (!previous.ok()) return std::move(previous).error();
    for (int round = 0; round < 3; ++round) {
      auto next = TakeSnapshot(procs_);
      if (!next.ok()) return std::move(next).error();
      for (size_t i = 0; i < procs_.size(); ++i) {
        samples[i].push_back(
            Delta(next->counters[i].heap_allocations, previous->counters[i].heap_allocations));
        bytes[i].push_back(Delta(next->counters[i].heap_allocated_bytes,
                                 previous->counters[i].heap_allocated_bytes));
      }
      previous = std::move(next);
    }
    for (size_t i = 0; i < procs_.size(); ++i) {
      std::sort(samples[i].begin(), samples[i].end());
      std::sort(bytes[i].begin(), bytes[i].end());
      overhead_allocations_[i] = std::max(0.0, samples[i][1]);  // the median of three
      overhead_bytes_[i] = std::max(0.0, bytes[i][1]);
    }
    return OkStatus();
  }

  // Runs one load and appends its record to `runs`; returns the keys the run wrote.
  Result<uint64_t> OneRun(const RunSpec& spec, uint64_t keys, json& runs, uint64_t& errors_total) {
    LoadOptions load = LoadFor(spec, keys);
    std::string title = "sync=" + sync_ + " " + (spec.http ? "http " : "") + spec.mode + " " +
                        SizeName(spec.size) + " c" + std::to_string(spec.concurrency);
    Say(options_, title);
    std::string load_before = LoadAverageLine();
    auto before = TakeSnapshot(procs_);
    MachineCpu machine_before = ReadMachineCpu();
    if (!before.ok()) return std::move(before).error();
    sampler_->Start();
    auto wall_start = Clock::now();
    auto result = RunLoad(client_options_, load, [&](const Progress& p) {
      if (!options_.progress) return;
      char line[200];
      double mib = p.seconds > 0 ? p.bytes / p.seconds / kMiB : 0;
      std::snprintf(line, sizeof line, "%s: %s %llu ok %llu err %.1f rec/s %.1f MiB/s p99 %.2f ms",
                    title.c_str(), p.warming_up ? "warming up" : "measuring",
                    static_cast<unsigned long long>(p.ok),
                    static_cast<unsigned long long>(p.errors),
                    p.seconds > 0 ? p.ok / p.seconds : 0.0, mib, p.p99_ns / 1e6);
      options_.progress(line);
    });
    auto wall = Seconds(Clock::now() - wall_start);
    auto peaks = sampler_->Stop();
    MachineCpu machine_after = ReadMachineCpu();
    if (!result.ok()) return std::move(result).error();
    auto after = TakeSnapshot(procs_);
    if (!after.ok()) return std::move(after).error();

    json run = ToJson(*result);
    run["sync"] = sync_;
    run["transport"] = spec.http ? "http" : "native";
    run["mode"] = spec.mode;
    run["size"] = spec.size;
    run["size_name"] = SizeName(spec.size);
    run["concurrency"] = spec.concurrency;
    run["key_space"] = keys;
    run["wall_seconds"] = wall;
    run["load_before"] = load_before;
    run["load_after"] = LoadAverageLine();
    json processes = json::object();
    for (size_t i = 0; i < procs_.size(); ++i) {
      peaks_[i] = std::max(peaks_[i], peaks[i]);
      processes[procs_[i].name] =
          PerRecord(before->counters[i], after->counters[i], before->usage[i], after->usage[i],
                    overhead_allocations_[i], overhead_bytes_[i], result->ok_all, peaks[i]);
      processes[procs_[i].name]["role"] = procs_[i].role;
    }
    run["processes"] = processes;
    // How busy the machine was, and how much of that was not this benchmark: other engineers'
    // builds compete for the same cores (the load average counts our own processes too).
    double ours = after->self_usage.cpu_seconds - before->self_usage.cpu_seconds;
    for (size_t i = 0; i < procs_.size(); ++i)
      ours += after->usage[i].cpu_seconds - before->usage[i].cpu_seconds;
    double busy = machine_after.busy_seconds - machine_before.busy_seconds;
    run["cpu_cores"] = {{"machine_busy", wall > 0 ? busy / wall : 0.0},
                        {"benchmark", wall > 0 ? ours / wall : 0.0},
                        {"others", wall > 0 ? std::max(0.0, busy - ours) / wall : 0.0},
                        {"machine", static_cast<double>(std::thread::hardware_concurrency())}};
    double n = result->ok_all > 0 ? static_cast<double>(result->ok_all) : NAN;
    auto per = [&](double v) -> json { return std::isnan(n) ? json(nullptr) : json(v / n); };
    run["client"] = {
        {"allocations_per_record",
         metrics::AllocationHookActive()
             ? per(static_cast<double>(after->self_allocations.allocations -
                                       before->self_allocations.allocations))
             : json(nullptr)},
        {"payload_copied_bytes_per_record",
         per(static_cast<double>(after->self_copies.bytes - before->self_copies.bytes))},
        {"cpu_us_per_record",
         per((after->self_usage.cpu_seconds - before->self_usage.cpu_seconds) * 1e6)}};
    errors_total += result->errors_all;  // warm-up and drain included: any failure counts
    runs.push_back(std::move(run));
    // After a failed put, some key below the highest written may be missing: rewrite them all.
    return result->errors_all > 0 ? 0 : result->keys_written;
  }

  const SuiteOptions& options_;
  std::string sync_;
  std::chrono::milliseconds warmup_, duration_;
  bool http_ = false;
  std::string gateway_url_;
  std::unique_ptr<cluster::LocalCluster> cluster_;
  std::vector<Proc> procs_;
  client::ClientOptions client_options_;
  std::vector<double> overhead_allocations_, overhead_bytes_;
  std::vector<uint64_t> peaks_;
  std::vector<std::string> populate_errors_;
  std::unique_ptr<ResidentSampler> sampler_;
};

// ------------------------------------------------------------------------------ targets

const json* FindRun(const json& runs, const std::string& sync, const std::string& mode,
                    uint64_t size, int concurrency, const std::string& transport = "native") {
  for (const auto& r : runs) {
    if (r["sync"] == sync && r["mode"] == mode && r["size"] == size &&
        r["concurrency"] == concurrency &&
        r.value("transport", std::string("native")) == transport) {
      return &r;
    }
  }
  return nullptr;
}

const json* FindLimit(const json& list, const char* size_field, uint64_t size) {
  for (const auto& l : list) {
    if (l[size_field] == size) return &l;
  }
  return nullptr;
}

json Target(std::string name, std::string sync, std::optional<double> measured, double target,
            bool at_most, std::string formula) {
  json t{{"name", std::move(name)},
         {"sync", std::move(sync)},
         {"target", std::isfinite(target) ? json(target) : json(nullptr)},
         {"comparison", at_most ? "<=" : ">="},
         {"formula", std::move(formula)}};
  if (measured && std::isfinite(*measured) && !std::isfinite(target)) {
    t["measured"] = *measured;
    t["met"] = nullptr;  // reported only: no target
  } else if (measured && std::isfinite(*measured)) {
    t["measured"] = *measured;
    t["met"] = at_most ? *measured <= target : *measured >= target;
  } else {
    t["measured"] = nullptr;
    t["met"] = nullptr;  // not measured in this run
  }
  return t;
}

json Targets(const json& doc, const SuiteOptions& options, const std::vector<std::string>& syncs,
             const std::vector<int>& concurrency) {
  const json& runs = doc["runs"];
  const json& limits = doc["limits"];
  const double k = options.k, n = options.k + options.m;
  const int top = *std::max_element(concurrency.begin(), concurrency.end());
  json out = json::array();
  auto zmq = [&](uint64_t size) { return FindLimit(limits["zmq_push_pull"], "record_size", size); };
  auto rate = [&](const std::string& sync, const std::string& mode, uint64_t size,
                  const char* field, int c) -> std::optional<double> {
    const json* r = FindRun(runs, sync, mode, size, c);
    if (r == nullptr || (*r)["records"].get<uint64_t>() == 0) return std::nullopt;
    return (*r)[field].get<double>();
  };
  for (const auto& sync : syncs) {
    std::string c = " (c" + std::to_string(top) + ")";
    const json* z = zmq(kMiB);
    auto put = rate(sync, "put", kMiB, "bytes_per_s", top);
    auto get = rate(sync, "get", kMiB, "bytes_per_s", top);
    auto degraded = rate(sync, "degraded-get", kMiB, "bytes_per_s", top);
    double zb = z ? (*z)["bytes_per_s"].get<double>() : NAN;
    out.push_back(Target("put wire efficiency, 1 MiB" + c, sync,
                         put ? std::optional(*put * n / k / zb) : std::nullopt, 0.5, false,
                         "put record B/s x (k+m)/k / raw ZeroMQ B/s at the fragment size"));
    out.push_back(Target("get efficiency, 1 MiB" + c, sync,
                         get ? std::optional(*get / zb) : std::nullopt, 0.8, false,
                         "get record B/s / raw ZeroMQ B/s at the fragment size"));
    out.push_back(Target("degraded get efficiency, 1 MiB" + c, sync,
                         degraded ? std::optional(*degraded / zb) : std::nullopt, 0.6, false,
                         "degraded get record B/s / raw ZeroMQ B/s at the fragment size"));
    const json* zs = zmq(kKiB);
    auto small = rate(sync, "put", kKiB, "records_per_s", top);
    double zm = zs ? (*zs)["messages_per_s"].get<double>() : NAN;
    out.push_back(Target("small put message efficiency, 1 KiB" + c, sync,
                         small ? std::optional(*small * 2 * n / zm) : std::nullopt, 0.3, false,
                         "put ops/s x 2(k+m) / raw ZeroMQ msg/s at the fragment size"));
    const json* r1 = FindRun(runs, sync, "put", kKiB, 1);
    std::optional<double> latency;
    if (r1 != nullptr && (*r1)["records"].get<uint64_t>() > 0) {
      latency = (*r1)["latency_us"]["p99"].get<double>() /
                limits["zmq_round_trip"]["p99_us"].get<double>();
    }
    out.push_back(Target("put p99 latency, 1 KiB c1, vs raw DEALER/ROUTER p99", sync, latency, 3.0,
                         true, "put p99 / raw round-trip p99 at 1 KiB"));

    // Copies per hop and allocations per record over every run of this sync mode.
    std::optional<double> copies_splitter, copies_assembler, copies_store, allocs_splitter,
        allocs_assembler;
    auto keep_max = [](std::optional<double>& slot, const json& v) {
      if (!v.is_number()) return;
      slot = std::max(slot.value_or(0.0), v.get<double>());
    };
    for (const auto& r : runs) {
      if (r["sync"] != sync || r["records"].get<uint64_t>() == 0) continue;
      if (r.value("transport", std::string("native")) != "native") continue;
      double size = r["size"].get<double>();
      bool put_run = r["mode"] == "put";
      for (const auto& [name, p] : r["processes"].items()) {
        const json& copied = p["payload_copied_bytes_per_record"];
        if (p["role"] == "splitter" && put_run) {
          if (copied.is_number()) keep_max(copies_splitter, copied.get<double>() / size);
          keep_max(allocs_splitter, p["allocations_per_record"]);
        } else if (p["role"] == "assembler" && !put_run) {
          if (copied.is_number()) keep_max(copies_assembler, copied.get<double>() / size);
          keep_max(allocs_assembler, p["allocations_per_record"]);
        } else if (p["role"] == "store" && copied.is_number()) {
          // A store sees one fragment per record, about size / k bytes.
          keep_max(copies_store, copied.get<double>() / (size / k));
        }
      }
    }
    out.push_back(Target("splitter payload copies per hop (max over put runs)", sync,
                         copies_splitter, 1.0, true,
                         "payload bytes copied per record / record bytes"));
    out.push_back(Target("assembler payload copies per hop (max over get runs)", sync,
                         copies_assembler, 1.0, true,
                         "payload bytes copied per record / record bytes"));
    out.push_back(Target("fragstore payload copies per hop (max over runs)", sync, copies_store,
                         1.0, true,
                         "payload bytes copied per record by one store / fragment bytes"));
    out.push_back(Target("splitter heap allocations per record (max over put runs)", sync,
                         allocs_splitter, 8.0, true,
                         "allocation counter delta / records, one scrape's cost removed"));
    out.push_back(Target("assembler heap allocations per record (max over get runs)", sync,
                         allocs_assembler, 8.0, true,
                         "allocation counter delta / records, one scrape's cost removed"));

    for (uint64_t size : {kKiB, kMiB}) {
      for (const char* mode : {"put", "get"}) {
        const json* native = FindRun(runs, sync, mode, size, top);
        const json* http = FindRun(runs, sync, mode, size, top, "http");
        if (http == nullptr) continue;
        std::optional<double> ratio;
        if (native != nullptr && (*native)["records_per_s"].get<double>() > 0) {
          ratio = (*http)["records_per_s"].get<double>() / (*native)["records_per_s"].get<double>();
        }
        out.push_back(Target(std::string("gateway ") + mode + " vs native, " + SizeName(size) + c,
                             sync, ratio, size == kMiB ? 0.7 : NAN, false,
                             "HTTP records/s / native records/s (gateway issue: >= 0.7 at 1 MiB; "
                             "1 KiB reported only)"));
      }
    }

    const json* memory = nullptr;
    for (const auto& m : doc["memory"]) {
      if (m["sync"] == sync) memory = &m;
    }
    std::optional<double> idle_splitter, idle_assembler, idle_gateway, store_peak;
    if (memory != nullptr) {
      for (const auto& p : (*memory)["processes"]) {
        double idle =
            std::max(p["idle_start_bytes"].get<double>(), p["idle_end_bytes"].get<double>());
        if (p["role"] == "splitter")
          idle_splitter = std::max(idle_splitter.value_or(0), idle / kMiB);
        if (p["role"] == "assembler")
          idle_assembler = std::max(idle_assembler.value_or(0), idle / kMiB);
        if (p["role"] == "gateway") idle_gateway = std::max(idle_gateway.value_or(0), idle / kMiB);
        if (p["role"] == "store")
          store_peak = std::max(store_peak.value_or(0), p["peak_bytes"].get<double>() / kMiB);
      }
    }
    out.push_back(Target("splitter resident MiB when idle (start and after load)", sync,
                         idle_splitter, kIdleBudgetBytes / kMiB, true,
                         "process_resident_memory_bytes, idle"));
    out.push_back(Target("assembler resident MiB when idle (start and after load)", sync,
                         idle_assembler, kIdleBudgetBytes / kMiB, true,
                         "process_resident_memory_bytes, idle"));
    bool gateway_loaded = false;  // the gateway's idle memory says little if it never worked
    for (const auto& r : runs) {
      gateway_loaded |= r["sync"] == sync && r.value("transport", std::string()) == "http";
    }
    if (gateway_loaded) {
      out.push_back(Target("gateway resident MiB when idle (start and after load)", sync,
                           idle_gateway, kIdleBudgetBytes / kMiB, true,
                           "process_resident_memory_bytes, idle"));
    }
    out.push_back(Target("fragstore peak resident MiB under load vs its configured memory", sync,
                         store_peak, kStoreBudgetBytes / kMiB, true,
                         "peak RSS <= block cache 64 + memtables 128 + ingest queue 256 + 64 MiB"));
  }
  return out;
}

}  // namespace

Result<json> RunSuite(const SuiteOptions& in) {
  SuiteOptions options = in;
  auto started_at = Now();
  auto start = Clock::now();
  if (options.bin_dir.empty()) {
    auto exe = cluster::ExecutableDir();
    if (!exe.ok()) return std::move(exe).error();
    options.bin_dir = *exe;
  }
  if (options.stopped_stores > options.m) {
    return Error(ErrorCode::kInvalidArgument, "cannot stop more stores than m for degraded gets");
  }
  std::vector<uint64_t> sizes = options.sizes;
  if (sizes.empty()) {
    sizes = options.quick ? std::vector<uint64_t>{kKiB, kMiB}
                          : std::vector<uint64_t>{kKiB, 64 * kKiB, kMiB, 16 * kMiB};
  }
  std::vector<int> concurrency =
      options.concurrency.empty() ? std::vector<int>{1, 32} : options.concurrency;
  std::vector<std::string> syncs = options.syncs;
  if (syncs.empty())
    syncs = options.quick ? std::vector<std::string>{"none"}
                          : std::vector<std::string>{"none", "always"};
  auto warmup = options.warmup.count() > 0 ? options.warmup
                                           : std::chrono::milliseconds(options.quick ? 200 : 500);
  auto duration = options.duration.count() > 0
                      ? options.duration
                      : std::chrono::milliseconds(options.quick ? 600 : 3000);
  auto limit_duration = options.limit_duration.count() > 0
                            ? options.limit_duration
                            : std::chrono::milliseconds(options.quick ? 100 : 500);
  std::filesystem::create_directories(options.out_dir);

  json doc;
  doc["schema"] = "ddsplit-bench/1";
  doc["started_at"] = started_at;
  doc["quick"] = options.quick;
  doc["environment"] = Environment(options);
  doc["environment"]["load_start"] = LoadAverageLine();
  doc["config"] = {{"k", options.k},
                   {"m", options.m},
                   {"stores", options.stores},
                   {"write_quorum",
                    options.k + 1 > options.k + options.m ? options.k + options.m : options.k + 1},
                   {"sizes", sizes},
                   {"concurrency", concurrency},
                   {"syncs", syncs},
                   {"stopped_stores_for_degraded", options.stopped_stores},
                   {"warmup_ms", warmup.count()},
                   {"duration_ms", duration.count()},
                   {"mib", kMiB}};

  auto limits = MeasureLimits(options, sizes, limit_duration);
  if (!limits.ok()) return std::move(limits).error();
  doc["limits"] = *limits;
  doc["environment"]["load_after_limits"] = LoadAverageLine();

  json runs = json::array();
  json memory = json::array();
  uint64_t errors_total = 0;
  for (const auto& sync : syncs) {
    // The gateway is measured once, on the first cluster.
    ClusterRunner runner(options, sync, warmup, duration, /*http=*/&sync == &syncs.front());
    auto m = runner.Run(sizes, concurrency, runs, errors_total);
    if (!m.ok()) return std::move(m).error();
    (*m)["sync"] = sync;
    memory.push_back(std::move(*m));
  }
  // The limits again at the end: other work on the machine comes and goes, and a limit is the
  // best the machine did in this run. Both measurements are kept.
  auto end_limits = MeasureLimits(options, sizes, limit_duration);
  if (!end_limits.ok()) return std::move(end_limits).error();
  doc["limits_start"] = doc["limits"];
  doc["limits_end"] = *end_limits;
  doc["limits"] = BestLimits(doc["limits_start"], doc["limits_end"]);
  doc["runs"] = runs;
  doc["memory"] = memory;
  doc["errors_total"] = errors_total;
  bool gateway_runs = false;
  for (const auto& r : runs) gateway_runs |= r.value("transport", std::string()) == "http";
  doc["gateway"] = {
      {"measured", gateway_runs},
      {"note", gateway_runs
                   ? "HTTP put/get through ddsplit-gateway (cpp-httplib client, one keep-alive "
                     "connection and thread per unit of concurrency), first sync mode only"
                   : "no gateway in the local cluster: not measured"}};
  doc["targets"] = Targets(doc, options, syncs, concurrency);
  doc["environment"]["load_end"] = LoadAverageLine();
  doc["finished_at"] = Now();
  doc["wall_seconds"] = Seconds(Clock::now() - start);
  return doc;
}

// ------------------------------------------------------------------------------ validation

Status ValidateResults(const json& doc) {
  auto fail = [](const std::string& what) {
    return Error(ErrorCode::kMalformed, "results: " + what);
  };
  if (!doc.is_object()) return fail("not a JSON object");
  for (const char* field :
       {"schema", "environment", "config", "limits", "runs", "memory", "targets"}) {
    if (!doc.contains(field)) return fail(std::string("missing \"") + field + "\"");
  }
  if (doc["schema"] != "ddsplit-bench/1") return fail("unknown schema");
  const json& limits = doc["limits"];
  for (const char* list : {"memcpy", "encode", "zmq_push_pull"}) {
    if (!limits.contains(list) || !limits[list].is_array() || limits[list].empty()) {
      return fail(std::string("limits.") + list + " missing or empty");
    }
    for (const auto& l : limits[list]) {
      if (!l.contains("bytes_per_s") || !l["bytes_per_s"].is_number() ||
          l["bytes_per_s"].get<double>() <= 0) {
        return fail(std::string("limits.") + list + " has a non-positive or missing bytes_per_s");
      }
    }
  }
  if (!limits.contains("zmq_round_trip") || !limits["zmq_round_trip"]["p99_us"].is_number()) {
    return fail("limits.zmq_round_trip.p99_us missing");
  }
  if (!doc["runs"].is_array() || doc["runs"].empty()) return fail("no runs");
  for (const auto& r : doc["runs"]) {
    for (const char* field :
         {"records", "errors", "seconds", "records_per_s", "bytes_per_s", "size", "concurrency"}) {
      if (!r.contains(field) || !r[field].is_number()) {
        return fail(std::string("a run lacks the number \"") + field + "\"");
      }
    }
    for (const char* field : {"mode", "sync"}) {
      if (!r.contains(field) || !r[field].is_string())
        return fail(std::string("a run lacks \"") + field + "\"");
    }
    // A run whose every request failed is a result (the errors are reported); a run with
    // neither successes nor failures means the tool did not run it.
    if (r["records"].get<uint64_t>() == 0 && r.value("errors_all", uint64_t{0}) == 0) {
      return fail("run " + r["mode"].get<std::string>() + " " + r["size"].dump() + " c" +
                  r["concurrency"].dump() + " (sync " + r["sync"].get<std::string>() +
                  ") completed no request and saw no error");
    }
    for (const char* p : {"p50", "p90", "p99", "p999"}) {
      if (!r["latency_us"].contains(p) || !r["latency_us"][p].is_number()) {
        return fail(std::string("a run lacks latency_us.") + p);
      }
    }
    if (!r.contains("processes") || !r["processes"].is_object() || r["processes"].empty()) {
      return fail("a run lacks per-process figures");
    }
  }
  if (!doc["targets"].is_array() || doc["targets"].empty()) return fail("no targets");
  for (const auto& t : doc["targets"]) {
    if (!t.contains("name") || !t.contains("measured") || !t.contains("met")) {
      return fail("a target lacks name, measured or met");
    }
  }
  return OkStatus();
}

}  // namespace ddsplit::bench
