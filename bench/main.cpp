// ddsplit-bench: the DDSplit benchmark.
//   load    closed-loop load (put, get, mixed, degraded-get, list) over the native client or,
//           with --http, the JSON gateway; prints records/s, MiB/s and latency percentiles
//   limits  this machine's memcpy, ISA-L encode and raw ZeroMQ limits, as JSON
//   suite   everything bench/run reports, into a results directory
//   check   validates a results.json;  summary  renders its markdown summary again
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/limits.h"
#include "bench/load.h"
#include "bench/suite.h"
#include "client/client.h"
#include "tools/cluster/local_cluster.h"

namespace {

using namespace ddsplit;
using namespace ddsplit::bench;
using json = nlohmann::json;

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "ddsplit-bench: %s\n", message.c_str());
  std::exit(1);
}

bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

// The live progress line: rewritten in place, only on a terminal.
void ShowProgress(const std::string& text) {
  if (!StderrIsTerminal()) return;
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
}

void ClearProgress() {
  if (StderrIsTerminal()) std::fprintf(stderr, "\r\033[K");
}

void ShowStatus(const std::string& text) {
  ClearProgress();
  std::fprintf(stderr, "ddsplit-bench: %s\n", text.c_str());
}

// "5s", "500ms", "2m", or a plain number of seconds.
std::chrono::milliseconds ParseDuration(const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  std::string unit = end != nullptr ? std::string(end) : std::string();
  if (end == text.c_str() || value < 0) Fail("bad duration '" + text + "'");
  double ms = unit == "ms"                    ? value
              : unit == "m"                   ? value * 60000
              : (unit.empty() || unit == "s") ? value * 1000
                                              : -1;
  if (ms < 0) Fail("bad duration unit in '" + text + "' (ms, s or m)");
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

uint64_t SizeOrFail(const std::string& text) {
  auto size = ParseSize(text);
  if (!size.ok()) Fail(size.error().message());
  return *size;
}

void WriteJson(const json& doc, const std::string& path) {
  if (path == "-") {
    std::cout << doc.dump(2) << std::endl;
    return;
  }
  std::ofstream out(path, std::ios::trunc);
  out << doc.dump(2) << "\n";
  if (!out) Fail("cannot write " + path);
}

// ------------------------------------------------------------------------------ load

struct LoadCommand {
  std::string cluster_file;
  std::string mode = "put";
  std::string size = "1KiB";
  int concurrency = 1;
  int threads = 1;
  std::string duration = "5s";
  std::string warmup = "500ms";
  uint64_t count = 0;
  uint64_t keys = 1024;
  std::string key_prefix = "bench/";
  double read_fraction = 0.5;
  uint32_t list_limit = 100;
  std::string http_url;
  std::string json_path;
  std::vector<int> stop_stores{0, 1};
  std::string sync = "always";
  bool no_populate = false;
  bool keep = false;
  std::string bin_dir;
};

void RunLoadCommand(const LoadCommand& cmd) {
  bool degraded = cmd.mode == "degraded-get";
  auto mode = ParseMode(degraded ? "get" : cmd.mode);
  if (!mode.ok()) Fail(mode.error().message());
  LoadOptions options;
  options.mode = *mode;
  options.record_bytes = SizeOrFail(cmd.size);
  options.concurrency = cmd.concurrency;
  options.threads = cmd.threads;
  options.duration = ParseDuration(cmd.duration);
  options.warmup = ParseDuration(cmd.warmup);
  options.count = cmd.count;
  options.key_space = cmd.keys;
  options.key_prefix = cmd.key_prefix;
  options.read_fraction = cmd.read_fraction;
  options.list_limit = cmd.list_limit;
  options.http_url = cmd.http_url;

  std::string cluster_file = cmd.cluster_file;
  if (cluster_file.empty() && (cmd.http_url.empty() || cmd.http_url == "cluster")) {
    if (const char* env = std::getenv("DDSPLIT_CLUSTER")) cluster_file = env;
  }
  if (degraded && !cluster_file.empty()) {
    Fail(
        "degraded-get stops stores, so it needs a cluster this command starts itself: drop "
        "--cluster (and unset DDSPLIT_CLUSTER)");
  }
  if (degraded && !cmd.http_url.empty()) Fail("degraded-get is for the native client only");
  const bool http_from_cluster = cmd.http_url == "cluster";

  // Without a cluster file (and not over HTTP), start a fresh local cluster for this run.
  std::unique_ptr<cluster::LocalCluster> own;
  std::filesystem::path own_dir;
  client::ClientOptions client_options;
  if (cmd.http_url.empty() || http_from_cluster) {
    if (cluster_file.empty()) {
      char pattern[] = "/tmp/ddsplit-bench-XXXXXX";
      if (mkdtemp(pattern) == nullptr) Fail("mkdtemp failed");
      own_dir = pattern;
      cluster::ClusterOptions copts;
      copts.dir = own_dir;
      copts.sync = cmd.sync;
      copts.bin_dir = cmd.bin_dir;
      copts.log_level = "warn";
      ShowStatus("starting a local cluster in " + own_dir.string() + " (sync=" + cmd.sync + ")");
      auto started = cluster::LocalCluster::Start(copts);
      if (!started.ok()) {
        std::error_code ignored;
        if (!cmd.keep) std::filesystem::remove_all(own_dir, ignored);
        Fail(started.error().ToString());
      }
      own = std::move(*started);
      cluster_file = own->cluster_json().string();
    }
    auto parsed = client::OptionsFromClusterFile(cluster_file);
    if (!parsed.ok()) Fail(parsed.error().message());
    client_options = *parsed;
    if (http_from_cluster) {
      std::ifstream in(cluster_file);
      json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (doc.is_discarded() || !doc.contains("gateway") || !doc["gateway"].contains("url")) {
        Fail(cluster_file + " names no gateway (gateway.url)");
      }
      options.http_url = doc["gateway"]["url"].get<std::string>();
    }
  }
  auto cleanup = [&] {
    if (own) {
      (void)own->StopAll();
      own.reset();
      std::error_code ec;
      if (!cmd.keep) std::filesystem::remove_all(own_dir, ec);
    }
  };

  if (!cmd.no_populate &&
      (options.mode == Mode::kGet || options.mode == Mode::kMixed || options.mode == Mode::kList)) {
    ShowStatus("writing " + std::to_string(options.key_space) + " keys of " +
               SizeName(options.record_bytes) + " to read");
    LoadOptions populate = options;
    populate.concurrency = std::max(options.concurrency, 8);
    if (Status s = Populate(client_options, populate); !s.ok()) {
      cleanup();
      Fail(s.error().ToString());
    }
  }
  if (degraded) {
    for (int store : cmd.stop_stores) {
      if (Status s = own->Stop(cluster::Role::kStore, store); !s.ok()) {
        cleanup();
        Fail("stopping store " + std::to_string(store) + ": " + s.error().ToString());
      }
    }
    ShowStatus(
        "stopped stores; waiting until the assembler skips them (their connections time out)");
    if (Status s = WaitForFastReads(client_options, options.key_prefix, options.key_space,
                                    std::chrono::seconds(20));
        !s.ok()) {
      for (int store : cmd.stop_stores) (void)own->Continue(cluster::Role::kStore, store);
      cleanup();
      Fail(s.error().ToString());
    }
  }

  std::string title =
      cmd.mode + " " + SizeName(options.record_bytes) + " c" + std::to_string(options.concurrency);
  auto result = RunLoad(client_options, options, [&](const Progress& p) {
    char line[200];
    std::snprintf(line, sizeof line, "%s: %s %llu ok %llu err %.1f rec/s %.2f MiB/s p99 %.2f ms",
                  title.c_str(), p.warming_up ? "warming up" : "measuring",
                  static_cast<unsigned long long>(p.ok), static_cast<unsigned long long>(p.errors),
                  p.seconds > 0 ? p.ok / p.seconds : 0.0,
                  p.seconds > 0 ? p.bytes / p.seconds / (1 << 20) : 0.0, p.p99_ns / 1e6);
    ShowProgress(line);
  });
  ClearProgress();
  if (degraded) {
    for (int store : cmd.stop_stores) (void)own->Continue(cluster::Role::kStore, store);
  }
  cleanup();
  if (!result.ok()) Fail(result.error().ToString());

  json doc = ToJson(*result);
  doc["mode"] = cmd.mode;
  doc["size"] = options.record_bytes;
  doc["concurrency"] = options.concurrency;
  doc["transport"] = options.http_url.empty() ? "native" : "http";
  const auto& l = doc["latency_us"];
  FILE* human = cmd.json_path == "-" ? stderr : stdout;
  std::fprintf(human,
               "%s: %llu records in %.2f s, %llu errors: %.1f records/s, %.2f MiB/s\n"
               "latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
               title.c_str(), static_cast<unsigned long long>(result->ok), result->seconds,
               static_cast<unsigned long long>(result->errors), result->records_per_second(),
               result->bytes_per_second() / (1 << 20), l["p50"].get<double>() / 1000,
               l["p90"].get<double>() / 1000, l["p99"].get<double>() / 1000,
               l["p999"].get<double>() / 1000, l["max"].get<double>() / 1000);
  if (degraded) {
    std::fprintf(human, "degraded answers: %llu of %llu\n",
                 static_cast<unsigned long long>(result->degraded),
                 static_cast<unsigned long long>(result->ok));
  }
  if (result->errors > 0) std::fprintf(human, "first error: %s\n", result->first_error.c_str());
  if (!cmd.json_path.empty()) WriteJson(doc, cmd.json_path);
  if (result->errors > 0 || result->ok == 0) std::exit(1);
}

// ------------------------------------------------------------------------------ limits

void RunLimitsCommand(const std::vector<std::string>& size_texts, int k, int m,
                      const std::string& duration_text) {
  auto duration = ParseDuration(duration_text);
  json doc;
  doc["k"] = k;
  doc["m"] = m;
  for (const auto& text : size_texts) {
    uint64_t size = SizeOrFail(text);
    uint64_t fragment = (size + k - 1) / k;
    ShowStatus("measuring " + SizeName(size));
    auto copy = MeasureMemcpy(size, duration);
    auto encode = MeasureEncode(k, m, size, duration);
    if (!encode.ok()) Fail(encode.error().ToString());
    auto zmq = MeasureZmqPushPull(fragment, duration);
    if (!zmq.ok()) Fail(zmq.error().ToString());
    doc["sizes"].push_back({{"record_size", size},
                            {"memcpy_bytes_per_s", copy.bytes_per_second()},
                            {"encode_bytes_per_s", encode->bytes_per_second()},
                            {"fragment_size", fragment},
                            {"zmq_messages_per_s", zmq->ops_per_second()},
                            {"zmq_bytes_per_s", zmq->bytes_per_second()}});
  }
  LatencyHistogram rtt;
  if (Status s = MeasureZmqRoundTrip(1024, duration, rtt); !s.ok()) Fail(s.error().ToString());
  doc["zmq_round_trip_1KiB_us"] = {{"p50", rtt.Percentile(50) / 1e3},
                                   {"p99", rtt.Percentile(99) / 1e3},
                                   {"p999", rtt.Percentile(99.9) / 1e3},
                                   {"count", rtt.count()}};
  std::cout << doc.dump(2) << std::endl;
}

// ------------------------------------------------------------------------------ suite

json ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail("cannot read " + path);
  json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) Fail(path + " is not valid JSON");
  return doc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddsplit-bench: DDSplit's benchmark, against this machine's own limits"};
  app.require_subcommand(1);

  LoadCommand load;
  auto* load_cmd =
      app.add_subcommand("load", "Closed-loop load against a cluster; prints rates and latency");
  load_cmd->add_option(
      "--cluster", load.cluster_file,
      "cluster.json of a running cluster (default: $DDSPLIT_CLUSTER, else start a local one)");
  load_cmd->add_option("--mode", load.mode, "put, get, mixed, degraded-get or list")
      ->capture_default_str();
  load_cmd->add_option("--size", load.size, "Record size (1KiB, 64KiB, 1MiB, 16MiB, bytes)")
      ->capture_default_str();
  load_cmd->add_option("-c,--concurrency", load.concurrency, "Requests kept in flight")
      ->capture_default_str();
  load_cmd->add_option("--threads", load.threads, "Client threads sharing the concurrency")
      ->capture_default_str();
  load_cmd->add_option("--duration", load.duration, "Measurement window (5s, 500ms)")
      ->capture_default_str();
  load_cmd->add_option("--warmup", load.warmup, "Load before the window, not counted")
      ->capture_default_str();
  load_cmd->add_option("--count", load.count, "Stop after this many requests instead (no warm-up)");
  load_cmd->add_option("--keys", load.keys, "Number of distinct keys used, round robin")
      ->capture_default_str();
  load_cmd->add_option("--key-prefix", load.key_prefix, "Keys are PREFIX + index")
      ->capture_default_str();
  load_cmd->add_option("--read-fraction", load.read_fraction, "mixed: share of gets")
      ->capture_default_str();
  load_cmd->add_option("--list-limit", load.list_limit, "list: entries per page")
      ->capture_default_str();
  load_cmd->add_option(
      "--http", load.http_url,
      "Load the JSON gateway at this URL instead (http://host:port; 'cluster': the "
      "cluster's gateway)");
  load_cmd->add_option("--json", load.json_path,
                       "Also write the result as JSON to FILE (- for stdout)");
  load_cmd
      ->add_option("--stop-stores", load.stop_stores, "degraded-get: indices of the stores to stop")
      ->capture_default_str();
  load_cmd->add_option("--sync", load.sync, "Own cluster: the stores' WAL sync (always or none)")
      ->check(CLI::IsMember({"always", "none"}))
      ->capture_default_str();
  load_cmd->add_flag("--no-populate", load.no_populate,
                     "get/mixed/list: do not write the keys first");
  load_cmd->add_flag("--keep", load.keep, "Own cluster: keep its directory");
  load_cmd->add_option("--bin-dir", load.bin_dir, "Own cluster: where the service binaries are");
  load_cmd->callback([&] { RunLoadCommand(load); });

  std::vector<std::string> limit_sizes{"1KiB", "64KiB", "1MiB", "16MiB"};
  int limit_k = 4, limit_m = 2;
  std::string limit_duration = "500ms";
  auto* limits_cmd = app.add_subcommand("limits", "Measure this machine's limits; prints JSON");
  limits_cmd->add_option("--sizes", limit_sizes, "Record sizes")->capture_default_str();
  limits_cmd->add_option("--k", limit_k, "Data fragments")->capture_default_str();
  limits_cmd->add_option("--m", limit_m, "Parity fragments")->capture_default_str();
  limits_cmd->add_option("--duration", limit_duration, "Per probe")->capture_default_str();
  limits_cmd->callback([&] { RunLimitsCommand(limit_sizes, limit_k, limit_m, limit_duration); });

  SuiteOptions suite;
  std::string out_dir, suite_duration, suite_warmup, bin_dir;
  std::vector<std::string> suite_sizes, labels;
  bool allow_errors = false;
  auto* suite_cmd = app.add_subcommand("suite", "Run the whole benchmark (what bench/run runs)");
  suite_cmd->add_option("--out", out_dir, "Results directory")->required();
  suite_cmd->add_flag("--quick", suite.quick,
                      "Smoke run for CI: 1 KiB and 1 MiB, sync=none, short windows");
  suite_cmd->add_option("--bin-dir", bin_dir,
                        "Where the service binaries are (default: next to this program)");
  suite_cmd->add_option("--sizes", suite_sizes, "Record sizes instead of the mode's");
  suite_cmd->add_option("--concurrency", suite.concurrency, "Concurrencies instead of 1 32");
  suite_cmd->add_option("--sync", suite.syncs, "Sync modes instead of the mode's (none, always)");
  suite_cmd->add_option("--duration", suite_duration, "Measurement window per run");
  suite_cmd->add_option("--warmup", suite_warmup, "Warm-up per run");
  suite_cmd->add_option("--label", labels, "KEY=VALUE recorded under environment (repeatable)");
  suite_cmd->add_flag("--keep-data", suite.keep_data, "Keep the clusters' directories");
  suite_cmd->add_flag(
      "--allow-errors", allow_errors,
      "--quick: exit 0 even if some requests failed (a full run always reports them "
      "and exits 0)");
  suite_cmd->callback([&] {
    suite.out_dir = out_dir;
    suite.bin_dir = bin_dir;
    for (const auto& s : suite_sizes) suite.sizes.push_back(SizeOrFail(s));
    if (!suite_duration.empty()) suite.duration = ParseDuration(suite_duration);
    if (!suite_warmup.empty()) suite.warmup = ParseDuration(suite_warmup);
    for (const auto& label : labels) {
      auto eq = label.find('=');
      if (eq == std::string::npos) Fail("--label takes KEY=VALUE");
      suite.labels[label.substr(0, eq)] = label.substr(eq + 1);
    }
    suite.status = ShowStatus;
    suite.progress = ShowProgress;
    auto doc = RunSuite(suite);
    ClearProgress();
    if (!doc.ok()) Fail("suite failed: " + doc.error().ToString());
    if (Status s = WriteOutputs(*doc, suite.out_dir); !s.ok()) Fail(s.error().ToString());
    if (Status s = ValidateResults(*doc); !s.ok()) Fail(s.error().ToString());
    ShowStatus("results in " + (std::filesystem::path(out_dir) / "results.json").string() +
               " and summary.md");
    uint64_t errors = (*doc)["errors_total"].get<uint64_t>();
    if (errors > 0) {
      ShowStatus("WARNING: " + std::to_string(errors) +
                 " requests failed during the runs (errors column of summary.md, first_error in "
                 "results.json)");
    }
    // The quick run is CI's smoke test: a run in which no request succeeded means nothing was
    // measured (a broken cluster or tool), and fails it. Sporadic failures on a busy machine are
    // reported above and do not.
    for (const auto& run : (*doc)["runs"]) {
      if (run["records"].get<uint64_t>() > 0) continue;
      ShowStatus("no request succeeded in " + run["mode"].get<std::string>() + " " +
                 run["size_name"].get<std::string>() + " c" + run["concurrency"].dump() +
                 " (sync " + run["sync"].get<std::string>() +
                 "): " + run.value("first_error", std::string()));
      if (suite.quick && !allow_errors) std::exit(1);
    }
  });

  std::string check_path;
  auto* check_cmd = app.add_subcommand("check", "Validate a results.json; exit 1 if malformed");
  check_cmd->add_option("file", check_path, "results.json")->required();
  check_cmd->callback([&] {
    if (Status s = ValidateResults(ReadJsonFile(check_path)); !s.ok()) Fail(s.error().message());
    std::printf("%s: ok\n", check_path.c_str());
  });

  std::string summary_path;
  auto* summary_cmd = app.add_subcommand("summary", "Print the markdown summary of a results.json");
  summary_cmd->add_option("file", summary_path, "results.json")->required();
  summary_cmd->callback([&] {
    json doc = ReadJsonFile(summary_path);
    if (Status s = ValidateResults(doc); !s.ok()) Fail(s.error().message());
    std::cout << RenderSummary(doc);
  });

  CLI11_PARSE(app, argc, argv);
  return 0;
}
