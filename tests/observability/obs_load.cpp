// ddsplit-obs-load: a simple load on a fresh local cluster, for measuring what the metrics say
// per record (heap allocations, payload copies) and what the instrumentation costs.
//
//   ddsplit-obs-load [--size BYTES] [--records N] [--window W] [--metrics on|off]
//                    [--sync always|none] [--rounds R]
//   ddsplit-obs-load --micro
//
// Starts a cluster (6 stores, 4 + 2, one splitter, one assembler) from $DDSPLIT_BIN_DIR (or this
// binary's directory) in a temporary directory; with --metrics off every service runs with
// DDSPLIT_METRICS=off (through wrapper scripts, since the launcher passes no DDSPLIT_* variable).
// Then R rounds of: N puts of BYTES-byte records with W requests in flight, then N gets of them.
// Prints throughput per round and, with metrics on, per-record figures from each process's
// /metrics (allocations and copies, less what serving the scrape itself allocates), and
// always the CPU time of each group of processes per record (process_cpu_seconds_total).
// --micro instead times the instrumentation's primitives in this process, on and off (ns/call).
#include <sys/stat.h>

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/metrics/metrics.h"
#include "common/metrics/queue_wait.h"
#include "tests/observability/exposition.h"
#include "tests/support/temp_dir.h"
#include "tools/cluster/local_cluster.h"

namespace {

using namespace ddsplit;
using Clock = std::chrono::steady_clock;

struct Options {
  size_t size = 64 << 10;
  int records = 500;
  int window = 16;
  bool metrics = true;
  std::string sync = "always";
  int rounds = 1;
  bool micro = false;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "ddsplit-obs-load: %s\n", message.c_str());
  std::exit(1);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value after " + arg);
      return argv[++i];
    };
    if (arg == "--size") {
      o.size = std::stoull(next());
    } else if (arg == "--records") {
      o.records = std::stoi(next());
    } else if (arg == "--window") {
      o.window = std::stoi(next());
    } else if (arg == "--metrics") {
      const std::string v = next();
      if (v != "on" && v != "off") Die("--metrics takes on or off");
      o.metrics = v == "on";
    } else if (arg == "--sync") {
      o.sync = next();
    } else if (arg == "--micro") {
      o.micro = true;
    } else if (arg == "--rounds") {
      o.rounds = std::stoi(next());
    } else {
      Die("unknown argument " + arg + " (see the comment at the top of obs_load.cpp)");
    }
  }
  if (o.records <= 0 || o.window <= 0 || o.rounds <= 0) Die("counts must be positive");
  return o;
}

std::filesystem::path BinDir() {
  if (const char* env = std::getenv("DDSPLIT_BIN_DIR")) return env;
  auto dir = cluster::ExecutableDir();
  if (!dir.ok()) Die(dir.error().ToString());
  return *dir;
}

std::filesystem::path MetricsOffWrappers(const std::filesystem::path& real, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  for (const char* name : {"ddsplit-fragstore", "ddsplit-splitter", "ddsplit-assembler", "ddsplit-gateway"}) {
    if (!std::filesystem::exists(real / name)) continue;
    std::ofstream out(dir / name);
    out << "#!/bin/sh\nDDSPLIT_METRICS=off exec '" << (real / name).string() << "' \"$@\"\n";
    out.close();
    ::chmod((dir / name).c_str(), 0755);
  }
  return dir;
}

struct Sample {
  double cpu_seconds = 0;
  double allocations = 0;
  double allocated_bytes = 0;
  double copies = 0;
  double copied_bytes = 0;
};

Sample Scrape(int admin_port) {
  httplib::Client http("127.0.0.1", admin_port);
  http.set_read_timeout(10);
  auto response = http.Get("/metrics");
  if (!response || response->status != 200) Die("cannot scrape admin port " + std::to_string(admin_port));
  const std::string& text = response->body;
  return {testing::SumOfSamples(text, "process_cpu_seconds_total"),
          testing::SumOfSamples(text, "ddsplit_heap_allocations_total"),
          testing::SumOfSamples(text, "ddsplit_heap_allocated_bytes_total"),
          testing::SumOfSamples(text, "ddsplit_payload_copies_total"),
          testing::SumOfSamples(text, "ddsplit_payload_copied_bytes_total")};
}

struct Group {
  std::string name;
  std::vector<int> ports;
};

std::vector<Sample> ScrapeAll(const std::vector<Group>& groups) {
  std::vector<Sample> out;
  for (const auto& g : groups) {
    Sample sum;
    for (int port : g.ports) {
      const Sample s = Scrape(port);
      sum.cpu_seconds += s.cpu_seconds;
      sum.allocations += s.allocations;
      sum.allocated_bytes += s.allocated_bytes;
      sum.copies += s.copies;
      sum.copied_bytes += s.copied_bytes;
    }
    out.push_back(sum);
  }
  return out;
}

// Runs `count` requests with at most `window` in flight; returns the seconds taken.
template <typename Submit>
double Pipelined(client::Client& c, int count, int window, Submit submit) {
  int submitted = 0;
  int done = 0;
  int failed = 0;
  const auto start = Clock::now();
  auto on_done = [&](bool ok) {
    ++done;
    if (!ok) ++failed;
  };
  while (done < count) {
    while (submitted < count && submitted - done < window) submit(submitted++, on_done);
    c.Poll(std::chrono::milliseconds(100));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (failed > 0) Die(std::to_string(failed) + " requests failed");
  return seconds;
}

void Report(const char* phase, const std::vector<Group>& groups, const std::vector<Sample>& before,
            const std::vector<Sample>& after, const std::vector<Sample>& scrape_cost, int records,
            size_t size, bool metrics_on) {
  for (size_t g = 0; g < groups.size(); ++g) {
    // CPU time (user + system, 10 ms ticks) of the processes over the phase, per record.
    const double cpu_us = (after[g].cpu_seconds - before[g].cpu_seconds) * 1e6 / records;
    if (!metrics_on) {
      std::printf("  %-4s %-10s cpu us/record %8.1f\n", phase, groups[g].name.c_str(), cpu_us);
      continue;
    }
    const double allocations = after[g].allocations - before[g].allocations - scrape_cost[g].allocations;
    const double allocated = after[g].allocated_bytes - before[g].allocated_bytes - scrape_cost[g].allocated_bytes;
    const double copies = after[g].copies - before[g].copies;
    const double copied = after[g].copied_bytes - before[g].copied_bytes;
    std::printf("  %-4s %-10s cpu us/record %8.1f  allocations/record %8.2f  heap bytes/record %10.0f  "
                "copies/record %5.2f  copied bytes/record %10.0f (%.2f x record)\n",
                phase, groups[g].name.c_str(), cpu_us, allocations / records, allocated / records,
                copies / records, copied / records, copied / records / static_cast<double>(size));
  }
}

// Nanoseconds per call of `body`, over `n` calls.
template <typename Body>
double NanosPerCall(int n, Body body) {
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) body(i);
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / n;
}

void* (*volatile call_malloc)(size_t) = &malloc;
void (*volatile call_free)(void*) = &free;

int Micro() {
  constexpr int kCalls = 2'000'000;
  metrics::ProcessMetrics process("micro");
  metrics::StageHistograms stages(process.registry(), "micro");
  metrics::OperationMetrics operation(process.registry(), "micro", "put");
  auto& counter = metrics::AddCounter(process.registry(), "ddsplit_micro_things_total", "Things.");
  std::printf("instrumentation primitives, ns per call (%d calls; allocation hook %s)\n", kCalls,
              metrics::AllocationHookActive() ? "linked" : "absent");
  std::printf("  %-44s %8s %8s\n", "", "on", "off");
  struct Case {
    const char* name;
    std::function<void(int)> body;
  };
  volatile uint64_t sink = 0;
  const Case cases[] = {
      {"StageHistograms::Observe (queue + work)", [&](int i) { stages.Observe(Stage::kEncode, 1000 + i % 5000, 20000); }},
      {"OperationMetrics Started + Finished", [&](int i) { operation.Started(); operation.Finished(ErrorCode::kOk, 100000 + i % 1000); }},
      {"probe counter (Enabled() + Increment)", [&](int) { if (metrics::Enabled()) counter.Increment(); }},
      {"CountPayloadCopy", [&](int) { metrics::CountPayloadCopy(4096); }},
      {"UnixNanos (CLOCK_REALTIME)", [&](int) { sink = sink + metrics::UnixNanos(); }},
      {"steady_clock::now", [&](int) { sink = sink + Clock::now().time_since_epoch().count(); }},
      {"malloc(64) + free (allocation hook)", [&](int) { call_free(call_malloc(64)); }},
  };
  for (const auto& c : cases) {
    metrics::SetEnabled(true);
    const double on = NanosPerCall(kCalls, c.body);
    metrics::SetEnabled(false);
    const double off = NanosPerCall(kCalls, c.body);
    metrics::SetEnabled(true);
    std::printf("  %-44s %8.1f %8.1f\n", c.name, on, off);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  if (o.micro) return Micro();
  testing::TempDir dir("ddsplit-obs-load");
  cluster::ClusterOptions cluster_options;
  cluster_options.dir = dir.path() / "cluster";
  cluster_options.sync = o.sync;
  cluster_options.log_level = "warn";
  cluster_options.bin_dir = o.metrics ? BinDir() : MetricsOffWrappers(BinDir(), dir.path() / "bin");
  auto started = cluster::LocalCluster::Start(cluster_options);
  if (!started.ok()) Die(started.error().ToString());
  auto& cluster = **started;
  auto client_options = client::OptionsFromClusterFile(cluster.cluster_json().string());
  if (!client_options.ok()) Die(client_options.error().ToString());
  auto connected = client::Client::Connect(*client_options);
  if (!connected.ok()) Die(connected.error().ToString());
  auto& c = **connected;

  std::vector<Group> groups = {{"splitter", {}}, {"assembler", {}}, {"fragstores", {}}};
  for (int i = 0; i < cluster.Count(cluster::Role::kSplitter); ++i) {
    groups[0].ports.push_back(cluster.Info(cluster::Role::kSplitter, i).admin_port);
  }
  for (int i = 0; i < cluster.Count(cluster::Role::kAssembler); ++i) {
    groups[1].ports.push_back(cluster.Info(cluster::Role::kAssembler, i).admin_port);
  }
  for (int i = 0; i < cluster.Count(cluster::Role::kStore); ++i) {
    groups[2].ports.push_back(cluster.Info(cluster::Role::kStore, i).admin_port);
  }

  std::vector<std::byte> value(o.size);
  for (size_t i = 0; i < value.size(); ++i) value[i] = std::byte(i * 131 + 7);
  std::vector<std::string> keys;
  for (int i = 0; i < o.records; ++i) keys.push_back("load/" + std::to_string(i));

  auto puts = [&](int n) {
    return Pipelined(c, n, o.window, [&](int i, auto& on_done) {
      c.PutAsync({keys[i], value, "", {}}, [&](Result<client::PutResult> r) { on_done(r.ok()); });
    });
  };
  auto gets = [&](int n) {
    return Pipelined(c, n, o.window, [&](int i, auto& on_done) {
      c.GetAsync(keys[i], {}, [&](Result<client::GetResult> r) {
        on_done(r.ok() && r->value.size() == o.size);
      });
    });
  };
  // Warm-up: connections, pools, RocksDB's first memtables.
  puts(std::min(o.records, 50));
  gets(std::min(o.records, 50));

  std::printf("size %zu B, %d records, window %d, sync %s, metrics %s\n", o.size, o.records,
              o.window, o.sync.c_str(), o.metrics ? "on" : "off");
  const double mib = static_cast<double>(o.size) * o.records / (1 << 20);
  for (int round = 0; round < o.rounds; ++round) {
    std::vector<Sample> s0, s1, s2, s3;
    std::vector<Sample> scrape_cost(groups.size());
    s0 = ScrapeAll(groups);
    s1 = ScrapeAll(groups);  // back to back: what one scrape allocates
    for (size_t g = 0; g < groups.size(); ++g) {
      scrape_cost[g].allocations = s1[g].allocations - s0[g].allocations;
      scrape_cost[g].allocated_bytes = s1[g].allocated_bytes - s0[g].allocated_bytes;
    }
    const auto client_allocs_before = metrics::CurrentAllocationCounts();
    const double put_seconds = puts(o.records);
    const auto client_allocs_mid = metrics::CurrentAllocationCounts();
    s2 = ScrapeAll(groups);
    const auto client_allocs_mid2 = metrics::CurrentAllocationCounts();
    const double get_seconds = gets(o.records);
    const auto client_allocs_after = metrics::CurrentAllocationCounts();
    s3 = ScrapeAll(groups);
    std::printf("round %d: put %8.1f records/s %8.1f MiB/s | get %8.1f records/s %8.1f MiB/s\n",
                round, o.records / put_seconds, mib / put_seconds, o.records / get_seconds,
                mib / get_seconds);
    Report("put", groups, s1, s2, scrape_cost, o.records, o.size, o.metrics);
    Report("get", groups, s2, s3, scrape_cost, o.records, o.size, o.metrics);
    if (o.metrics) {
      if (metrics::AllocationHookActive()) {
        std::printf("  put  client     allocations/record %8.2f\n  get  client     allocations/record %8.2f\n",
                    static_cast<double>(client_allocs_mid.allocations - client_allocs_before.allocations) / o.records,
                    static_cast<double>(client_allocs_after.allocations - client_allocs_mid2.allocations) / o.records);
      }
    }
  }
  return 0;
}
