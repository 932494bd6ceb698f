// gateway_native_load: the native side of the gateway throughput comparison. Puts or gets
// fixed-size records through client.h with a fixed number of requests in flight (spread over
// --threads threads, one Client each, asynchronous calls) for a fixed time, then prints one JSON
// line:
// {"op","size","concurrency","threads","seconds","ops","errors","ops_per_second","mib_per_second"}.
//
//   gateway_native_load --cluster DIR/cluster.json --op put --size 1048576 --concurrency 64
//   --seconds 10
//
// Keys are bench/<size>/<n mod --keys>; `--op get` first writes every key once.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> errors{0};
};

// Keeps `in_flight` requests going until `end`, or until `max_ops` were issued (0: no limit).
void Run(const ddsplit::client::ClientOptions& options, bool put, size_t size, int in_flight,
         int keys, Clock::time_point end, uint64_t max_ops, Totals& totals, int thread) {
  auto connected = ddsplit::client::Client::Connect(options);
  if (!connected.ok()) {
    std::fprintf(stderr, "connect: %s\n", connected.error().ToString().c_str());
    return;
  }
  ddsplit::client::Client& client = **connected;
  std::vector<std::byte> value(size, std::byte{0x5a});
  uint64_t next = static_cast<uint64_t>(thread) * 1000003;
  uint64_t issued = 0;
  auto more = [&] { return Clock::now() < end && (max_ops == 0 || issued < max_ops); };
  int active = 0;
  std::vector<std::string> names(static_cast<size_t>(keys));
  for (int i = 0; i < keys; ++i)
    names[static_cast<size_t>(i)] = "bench/" + std::to_string(size) + "/" + std::to_string(i);
  std::function<void()> submit = [&] {
    const std::string& key = names[next++ % names.size()];
    ++active;
    ++issued;
    if (put) {
      ddsplit::client::PutArgs args;
      args.key = key;
      args.value = value;
      args.content_type = "application/octet-stream";
      client.PutAsync(args, [&](ddsplit::Result<ddsplit::client::PutResult> result) {
        --active;
        (result.ok() ? totals.ops : totals.errors).fetch_add(1);
        if (more()) submit();
      });
    } else {
      client.GetAsync(key, {}, [&](ddsplit::Result<ddsplit::client::GetResult> result) {
        --active;
        (result.ok() && result->value.size() == size ? totals.ops : totals.errors).fetch_add(1);
        if (more()) submit();
      });
    }
  };
  for (int i = 0; i < in_flight && more(); ++i) submit();
  while (active > 0) client.Poll(std::chrono::milliseconds(100));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Native put/get load through client.h, for comparison with the HTTP gateway"};
  std::string cluster;
  std::string op = "put";
  size_t size = 1024;
  int concurrency = 64;
  int threads = 2;
  int keys = 1000;
  double seconds = 10;
  app.add_option("--cluster", cluster, "cluster.json of the cluster")->required();
  app.add_option("--op", op, "put or get")->check(CLI::IsMember({"put", "get"}));
  app.add_option("--size", size, "Value size in bytes");
  app.add_option("--concurrency", concurrency, "Requests in flight in all");
  app.add_option("--threads", threads, "Client threads");
  app.add_option("--keys", keys, "Distinct keys");
  app.add_option("--seconds", seconds, "Duration");
  CLI11_PARSE(app, argc, argv);
  auto options = ddsplit::client::OptionsFromClusterFile(cluster);
  if (!options.ok()) {
    std::fprintf(stderr, "%s\n", options.error().ToString().c_str());
    return 2;
  }
  options->max_record_bytes = std::max<uint64_t>(options->max_record_bytes, size);
  if (op == "get") {
    Totals warm;
    Run(*options, true, size, std::min(concurrency, keys), keys,
        Clock::now() + std::chrono::hours(1), static_cast<uint64_t>(keys), warm, 0);
  }
  Totals totals;
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    int share = concurrency / threads + (t < concurrency % threads ? 1 : 0);
    workers.emplace_back(
        [&, t, share] { Run(*options, op == "put", size, share, keys, end, 0, totals, t); });
  }
  for (auto& worker : workers) worker.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double ops = static_cast<double>(totals.ops.load());
  std::printf(
      "{\"op\":\"%s\",\"size\":%zu,\"concurrency\":%d,\"threads\":%d,\"seconds\":%.2f,\"ops\":%.0f,"
      "\"errors\":%llu,\"ops_per_second\":%.1f,\"mib_per_second\":%.1f}\n",
      op.c_str(), size, concurrency, threads, elapsed, ops,
      static_cast<unsigned long long>(totals.errors.load()), ops / elapsed,
      ops * static_cast<double>(size) / elapsed / (1 << 20));
  return 0;
}
