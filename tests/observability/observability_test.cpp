// System tests of DDSplit's observability, against real processes: a local cluster and Debian's
// real Prometheus scraping every process's admin port. Every query of every panel of every
// dashboard must return data; the alert rules, loaded into that Prometheus, must evaluate
// without error (and the redundancy alert must fire after a corrupt fragment is read); every
// process's exposition must pass `promtool check metrics`; the stage histograms and the
// allocation and payload-copy counters must move with requests and stay still when idle; and
// DDSPLIT_METRICS=off must turn the probes into no-ops.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "common/metrics/metrics_test_util.h"
#include "tests/harness/harness.h"
#include "tests/observability/exposition.h"
#include "tests/observability/prometheus_server.h"

#ifndef DDSPLIT_SOURCE_DIR
#error "the build defines DDSPLIT_SOURCE_DIR"
#endif
#ifndef DDSPLIT_EXPECT_ALLOC_HOOK
#error "the build defines DDSPLIT_EXPECT_ALLOC_HOOK"
#endif

namespace ddsplit::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const std::filesystem::path kSource = DDSPLIT_SOURCE_DIR;
const std::filesystem::path kDashboards = kSource / "k8s/base/monitoring/dashboards";
const std::filesystem::path kRules = kSource / "k8s/base/monitoring/prometheusrule.yaml";

// ------------------------------------------------------------------------------ helpers

// One process to scrape: its job (as the Kubernetes PodMonitor names it) and admin port.
struct Target {
  std::string job;
  std::string name;
  int admin_port = 0;
  std::string address() const { return "127.0.0.1:" + std::to_string(admin_port); }
};

// Every process listed in cluster.json, with the job its role maps to.
std::vector<Target> TargetsOf(const std::filesystem::path& cluster_json) {
  std::ifstream in(cluster_json);
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<Target> targets;
  auto add = [&](const nlohmann::json& entry, const std::string& job) {
    if (entry.is_object() && entry.contains("admin_port")) {
      targets.push_back({job, entry.value("name", job), entry["admin_port"].get<int>()});
    }
  };
  const std::pair<const char*, const char*> roles[] = {
      {"stores", "fragstore"}, {"splitters", "splitter"}, {"assemblers", "assembler"},
      {"gateways", "gateway"}, {"gateway", "gateway"}};
  for (const auto& [field, job] : roles) {
    if (!doc.contains(field)) continue;
    if (doc[field].is_array()) {
      for (const auto& entry : doc[field]) add(entry, job);
    } else {
      add(doc[field], job);
    }
  }
  return targets;
}

std::string ScrapeConfig(const std::vector<Target>& targets) {
  std::map<std::string, std::vector<std::string>> by_job;
  for (const auto& t : targets) by_job[t.job].push_back(t.address());
  std::string config =
      "global:\n"
      "  scrape_interval: 1s\n"
      "  scrape_timeout: 900ms\n"
      "  evaluation_interval: 1s\n"
      "rule_files:\n"
      "  - rules.yml\n"
      "scrape_configs:\n";
  for (const auto& [job, addresses] : by_job) {
    config += "  - job_name: " + job + "\n    static_configs:\n      - targets:\n";
    for (const auto& address : addresses) config += "          - '" + address + "'\n";
  }
  return config;
}

// The PrometheusRule's spec as a plain rules file: the lines under "spec:", dedented.
std::string RulesFileOf(const std::filesystem::path& prometheus_rule) {
  std::ifstream in(prometheus_rule);
  std::string line;
  std::string out;
  bool in_spec = false;
  while (std::getline(in, line)) {
    if (!in_spec) {
      in_spec = line == "spec:";
      continue;
    }
    if (!line.empty() && line[0] != ' ' && line[0] != '#') break;  // the next top-level key
    out += (line.size() >= 2 ? line.substr(2) : std::string()) + "\n";
  }
  return out;
}

std::string Scrape(const Target& target) {
  httplib::Client http("127.0.0.1", target.admin_port);
  http.set_connection_timeout(5);
  http.set_read_timeout(10);
  auto response = http.Get("/metrics");
  REQUIRE_MESSAGE(response, "no answer from ", target.name, "'s admin port");
  REQUIRE(response->status == 200);
  return response->body;
}

struct Panel {
  std::string dashboard;
  std::string title;
  std::string expr;
};

std::vector<std::filesystem::path> DashboardFiles() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(kDashboards)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void CollectPanels(const nlohmann::json& panels, const std::string& dashboard,
                   std::vector<const nlohmann::json*>& out) {
  for (const auto& panel : panels) {
    if (panel.value("type", "") == "row") {
      if (panel.contains("panels")) CollectPanels(panel["panels"], dashboard, out);
      continue;
    }
    out.push_back(&panel);
  }
}

// Grafana's variables as the test evaluates them: $__rate_interval is 1m, every other variable
// (all multi-value, "All" meaning any value) is ".+".
std::string Substitute(std::string expr) {
  for (size_t at; (at = expr.find("$__rate_interval")) != std::string::npos;) {
    expr.replace(at, std::string("$__rate_interval").size(), "1m");
  }
  static const std::regex kVariable(R"(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)");
  return std::regex_replace(expr, kVariable, ".+");
}

std::vector<Panel> DashboardQueries() {
  std::vector<Panel> queries;
  for (const auto& file : DashboardFiles()) {
    std::ifstream in(file);
    const nlohmann::json dashboard = nlohmann::json::parse(in);
    std::vector<const nlohmann::json*> panels;
    CollectPanels(dashboard["panels"], file.filename().string(), panels);
    for (const auto* panel : panels) {
      for (const auto& target : (*panel)["targets"]) {
        queries.push_back({file.filename().string(), panel->value("title", "?"),
                           Substitute(target.value("expr", ""))});
      }
    }
  }
  return queries;
}

// Empty string when `data` (a /api/v1/query "data" object) has at least one number that is not
// NaN; otherwise why not.
std::string WhyNoData(const nlohmann::json& data) {
  const std::string type = data.value("resultType", "");
  std::vector<std::string> values;
  if (type == "vector") {
    for (const auto& sample : data["result"]) values.push_back(sample["value"][1].get<std::string>());
  } else if (type == "scalar") {
    values.push_back(data["result"][1].get<std::string>());
  } else {
    return "unexpected result type " + type;
  }
  if (values.empty()) return "no data";
  for (const auto& v : values) {
    if (v != "NaN") return "";
  }
  return "only NaN (" + std::to_string(values.size()) + " series)";
}

// Puts, gets (whole and ranged), heads, stats, multi-gets, lists, deletes and reads of deleted
// keys, over records of 100 B to 1 MiB.
void DriveMixedLoad(client::Client& c, int records) {
  const size_t sizes[] = {100, 5000, 64 << 10, 1 << 20};
  std::vector<std::string> keys;
  for (int i = 0; i < records; ++i) {
    const std::string key = "obs/k" + std::to_string(i);
    const auto value = RandomBytes(sizes[i % 4], 7000 + i);
    auto put = c.Put({key, value, "application/octet-stream", {{"i", std::to_string(i)}}});
    REQUIRE_MESSAGE(put.ok(), put.error().ToString());
    auto got = c.Get(key);
    REQUIRE_MESSAGE(got.ok(), got.error().ToString());
    CHECK(got->value.ToString() == AsString(value));
    if (i % 4 == 1) {
      client::GetOptions head;
      head.head_only = true;
      CHECK(c.Get(key, head).ok());
      client::GetOptions range;
      range.range = std::make_pair(uint64_t{10}, uint64_t{50});
      CHECK(c.Get(key, range).ok());
    }
    if (i % 8 == 0) CHECK(c.Stat(key).ok());
    keys.push_back(key);
  }
  auto multi = c.MultiGet(std::span(keys.data(), std::min<size_t>(keys.size(), 8)));
  CHECK(multi.ok());
  std::string cursor;
  for (int page = 0; page < 100; ++page) {
    auto listed = c.List("obs/", cursor, 7);
    REQUIRE(listed.ok());
    cursor = listed->next_cursor;
    if (cursor.empty()) break;
  }
  for (int i = 0; i < records; i += 5) CHECK(c.Delete(keys[i]).ok());
  CHECK(c.Get(keys[0]).error().code() == ErrorCode::kNotFound);
}

// Kill-free degraded read: the store holding data fragment 1 of `key` is paused (SIGSTOP) while
// the record is read, so the assembler rebuilds it from parity after the hedge delay.
void DegradedRead(TestCluster& tc, const std::string& key, std::span<const std::byte> value) {
  auto& c = tc.client();
  const int store = tc.StoreHoldingFragment(key, 1);
  REQUIRE(tc.cluster().Stop(Role::kStore, store).ok());
  auto got = c.Get(key);
  const bool ok = got.ok();
  REQUIRE(tc.cluster().Continue(Role::kStore, store).ok());
  REQUIRE_MESSAGE(ok, got.error().ToString());
  CHECK(got->degraded);
  CHECK(got->value.ToString() == AsString(value));
  REQUIRE(WaitForAllStoresReachable(c, key));
}

// A stored fragment with a flipped byte: the store is stopped cleanly so the bytes reach its
// files, one bit of data fragment 0 is flipped on disk, and the store restarted.
void CorruptFragment(TestCluster& tc, const std::string& key, std::span<const std::byte> value) {
  REQUIRE(WaitForFullRedundancy(tc.client(), {key}));  // fragment 0 is on its store's disk
  const int store = tc.StoreHoldingFragment(key, 0);
  auto flipped = tc.FlipStoredByte(store, value.subspan(1000, 64), 7);
  REQUIRE_MESSAGE(flipped.ok(), flipped.error().ToString());
  REQUIRE(WaitForAllStoresReachable(tc.client(), key));
}

// ------------------------------------------------------------------------------ dashboards

TEST_CASE("dashboards follow the conventions: uid, id null, datasource variable, units, rate intervals") {
  const auto files = DashboardFiles();
  REQUIRE(files.size() == 4);
  std::set<std::string> uids;
  for (const auto& file : files) {
    CAPTURE(file.filename().string());
    std::ifstream in(file);
    const nlohmann::json d = nlohmann::json::parse(in);
    REQUIRE(d.contains("uid"));
    CHECK(d["uid"].get<std::string>() == file.stem().string());  // stable: the file's name
    CHECK(uids.insert(d["uid"].get<std::string>()).second);
    CHECK(d["id"].is_null());
    CHECK(d["schemaVersion"].is_number_integer());
    bool has_datasource_variable = false;
    for (const auto& variable : d["templating"]["list"]) {
      if (variable["name"] == "datasource" && variable["type"] == "datasource" &&
          variable["query"] == "prometheus") {
        has_datasource_variable = true;
      }
      if (variable.contains("datasource")) CHECK(variable["datasource"]["uid"] == "${datasource}");
    }
    CHECK(has_datasource_variable);
    std::vector<const nlohmann::json*> panels;
    CollectPanels(d["panels"], file.filename().string(), panels);
    CHECK(panels.size() >= 8);
    std::set<int> ids;
    for (const auto* panel : panels) {
      CAPTURE(panel->value("title", "?"));
      CHECK(ids.insert((*panel)["id"].get<int>()).second);
      CHECK((*panel)["datasource"]["uid"] == "${datasource}");
      CHECK(!(*panel)["fieldConfig"]["defaults"].value("unit", "").empty());
      CHECK(!panel->value("description", "").empty());
      REQUIRE(!(*panel)["targets"].empty());
      for (const auto& target : (*panel)["targets"]) {
        const std::string expr = target["expr"];
        CAPTURE(expr);
        CHECK(target["datasource"]["uid"] == "${datasource}");
        // Every range selector is a rate window and uses Grafana's rate interval.
        static const std::regex kRange(R"(\[([^\]]*)\])");
        for (std::sregex_iterator it(expr.begin(), expr.end(), kRange), end; it != end; ++it) {
          CHECK((*it)[1].str() == "$__rate_interval");
        }
        CHECK(expr.find("{{") == std::string::npos);
      }
    }
  }
  // No hard-coded data source anywhere: every "uid" of a datasource object is the variable.
  for (const auto& file : files) {
    std::ifstream in(file);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    static const std::regex kDatasourceUid(R"re("datasource":\s*\{[^}]*"uid":\s*"([^"]*)")re");
    for (std::sregex_iterator it(text.begin(), text.end(), kDatasourceUid), end; it != end; ++it) {
      CHECK((*it)[1].str() == "${datasource}");
    }
  }
}

// ------------------------------------------------------------------------------ real Prometheus

TEST_CASE("a real Prometheus scraping a loaded cluster answers every dashboard query with data") {
  TestCluster tc;
  auto& c = tc.client();
  TempDir prometheus_dir("ddsplit-prometheus");

  // A corrupt fragment first (it restarts a store), so the load that follows reads it.
  const auto victim = RandomBytes(256 * 1024, 4242);
  REQUIRE(c.Put({"obs/victim", victim, "application/octet-stream", {}}).ok());
  CorruptFragment(tc, "obs/victim", victim);

  const auto targets = TargetsOf(tc.cluster().cluster_json());
  REQUIRE(targets.size() >= 8);
  auto started = PrometheusServer::Start(prometheus_dir.path(), ScrapeConfig(targets), RulesFileOf(kRules));
  REQUIRE_MESSAGE(started.ok(), started.error().ToString());
  PrometheusServer& prometheus = **started;
  MESSAGE("prometheus pid ", prometheus.pid(), " on port ", prometheus.port());

  // Every target is being scraped before the load starts, so rates see its beginning.
  REQUIRE_MESSAGE(WaitFor([&] {
                    auto up = prometheus.Query("count(up == 1)");
                    return up.ok() && !(*up)["result"].empty() &&
                           (*up)["result"][0]["value"][1] == std::to_string(targets.size());
                  }, seconds(30)),
                  "not every process is scraped:\n", prometheus.LogTail());

  DriveMixedLoad(c, 40);
  {
    auto got = c.Get("obs/victim");  // the corrupt fragment: rebuilt from parity, reported
    REQUIRE_MESSAGE(got.ok(), got.error().ToString());
    CHECK(got->degraded);
    CHECK(got->value.ToString() == AsString(victim));
  }
  const auto big = RandomBytes(1 << 20, 99);
  REQUIRE(c.Put({"obs/degraded", big, "application/octet-stream", {}}).ok());
  DegradedRead(tc, "obs/degraded", big);
  DriveMixedLoad(c, 8);  // recent traffic for the rate windows

  // Wait until Prometheus holds each process's final request count (read from the process).
  for (const auto& target : targets) {
    if (target.job == "gateway") continue;  // its metrics belong to the gateway's own tests
    const std::string family = "ddsplit_" + target.job + "_requests_total";
    CAPTURE(target.name);
    CHECK(SumOfSamples(Scrape(target), family) > 0);
    const std::string query = "sum(" + family + "{instance=\"" + target.address() + "\"})";
    // Re-read the process each time: the last requests' stragglers may still be counted.
    CHECK_MESSAGE(WaitFor([&] {
                    const double expected = SumOfSamples(Scrape(target), family);
                    auto result = prometheus.Query(query);
                    return result.ok() && !(*result)["result"].empty() &&
                           std::stod((*result)["result"][0]["value"][1].get<std::string>()) == expected;
                  }, seconds(30)),
                  "Prometheus did not scrape ", target.name, "'s latest counts");
  }

  // Every query of every panel of every dashboard.
  const auto queries = DashboardQueries();
  REQUIRE(queries.size() >= 60);
  int checked = 0;
  for (const auto& q : queries) {
    if (!DDSPLIT_EXPECT_ALLOC_HOOK && q.expr.find("ddsplit_heap_") != std::string::npos) {
      continue;  // sanitizer build: no allocation hook, so no heap series
    }
    auto result = prometheus.Query(q.expr);
    INFO(q.dashboard, " / ", q.title, ": ", q.expr);
    REQUIRE_MESSAGE(result.ok(), result.error().ToString());
    const std::string why = WhyNoData(*result);
    CHECK_MESSAGE(why.empty(), why);
    ++checked;
  }
  MESSAGE(checked, " dashboard queries answered with data");

  // The alert rules, loaded into this Prometheus, evaluate without error, and the corrupt
  // fragment read above makes the redundancy alert fire.
  CHECK_MESSAGE(WaitFor([&] {
                  auto rules = prometheus.Api("rules");
                  if (!rules.ok() || (*rules)["status"] != "success") return false;
                  int evaluated = 0;
                  for (const auto& group : (*rules)["data"]["groups"]) {
                    for (const auto& rule : group["rules"]) {
                      if (rule.value("health", "") != "ok") return false;
                      ++evaluated;
                    }
                  }
                  return evaluated == 10;
                }, seconds(30)),
                "the alert rules did not all evaluate healthily:\n", [&] {
                  auto rules = prometheus.Api("rules");
                  return rules.ok() ? rules->dump(1) : rules.error().ToString();
                }());
  CHECK_MESSAGE(WaitFor([&] {
                  auto alerts = prometheus.Api("alerts");
                  if (!alerts.ok()) return false;
                  for (const auto& alert : (*alerts)["data"]["alerts"]) {
                    if (alert["labels"]["alertname"] == "DDSplitRecordsWithoutFullRedundancy" &&
                        alert["state"] == "firing") {
                      return true;
                    }
                  }
                  return false;
                }, seconds(30)),
                "DDSplitRecordsWithoutFullRedundancy did not fire after a corrupt fragment was read");

  // promtool check metrics is clean on every process's exposition.
  for (const auto& target : targets) {
    CAPTURE(target.name);
    const auto lint = metrics::testing::PromtoolCheckMetrics(Scrape(target));
    REQUIRE_MESSAGE(lint.has_value(), "promtool is not installed");
    INFO("promtool output: ", lint->output);
    CHECK(lint->exit_code == 0);
  }
}

// ------------------------------------------------------------------------------ flow and idle

// What the counters of one process say at one moment.
struct Counters {
  double stage_observations = 0;  // every stage histogram's count, queue and work
  double allocations = 0;
  double copies = 0;
  double copied_bytes = 0;
  double stored_bytes = 0;        // fragstores only
  double in_flight = 0;           // every operation's requests_in_flight gauge
  std::string text;
};

Counters Read(const Target& target) {
  Counters c;
  c.text = Scrape(target);
  c.stage_observations = SumOfSamples(c.text, "ddsplit_" + target.job + "_stage_queue_seconds_count") +
                         SumOfSamples(c.text, "ddsplit_" + target.job + "_stage_work_seconds_count");
  c.allocations = SumOfSamples(c.text, "ddsplit_heap_allocations_total");
  c.copies = SumOfSamples(c.text, "ddsplit_payload_copies_total");
  c.copied_bytes = SumOfSamples(c.text, "ddsplit_payload_copied_bytes_total");
  c.stored_bytes = SumOfSamples(c.text, "ddsplit_fragstore_stored_bytes_total");
  c.in_flight = SumOfSamples(c.text, "ddsplit_" + target.job + "_requests_in_flight");
  return c;
}

std::vector<Counters> ReadAll(const std::vector<Target>& targets) {
  std::vector<Counters> all;
  for (const auto& t : targets) all.push_back(Read(t));
  return all;
}

std::vector<Target> CoreTargets(TestCluster& tc) {
  std::vector<Target> targets;
  for (const auto& t : TargetsOf(tc.cluster().cluster_json())) {
    if (t.job != "gateway") targets.push_back(t);
  }
  return targets;
}

void PutsAndGets(client::Client& c, int count, size_t size, int seed) {
  for (int i = 0; i < count; ++i) {
    const std::string key = "flow/" + std::to_string(seed) + "/" + std::to_string(i);
    const auto value = RandomBytes(size, seed + i);
    auto put = c.Put({key, value, "", {}});
    REQUIRE_MESSAGE(put.ok(), put.error().ToString());
    auto got = c.Get(key);
    REQUIRE_MESSAGE(got.ok(), got.error().ToString());
    CHECK(got->value.size() == size);
  }
}

// Idle: nothing but the scrapes themselves happens. The stage histograms and payload copies must
// not move at all; the allocation counter moves by what serving a scrape allocates, so the
// allocations over an idle window must not exceed those of two back-to-back scrapes by more than
// a small slack (the stores read RocksDB's statistics every 2 s).
void CheckIdle(const std::vector<Target>& targets, const char* when) {
  INFO(when);
  // A request's reply can precede its last side effects (the stores' commit messages, the
  // slowest store's answer): wait until two reads in a row agree before watching for stillness.
  auto settled = [](const std::vector<Counters>& a, const std::vector<Counters>& b) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].stage_observations != b[i].stage_observations || a[i].copies != b[i].copies ||
          a[i].in_flight != b[i].in_flight) {
        return false;
      }
    }
    return true;
  };
  std::vector<Counters> last = ReadAll(targets);
  auto last_change = std::chrono::steady_clock::now();
  REQUIRE(WaitFor([&] {
    auto now = ReadAll(targets);
    if (!settled(last, now)) last_change = std::chrono::steady_clock::now();
    last = std::move(now);
    return std::chrono::steady_clock::now() - last_change >= milliseconds(500);
  }, seconds(20)));
  const auto first = ReadAll(targets);
  const auto second = ReadAll(targets);
  // Observation window (not synchronisation): long enough for every periodic task of the loops
  // (poll caps of 50-200 ms, expiry scans, the stores' 2 s statistics refresh) to run.
  std::this_thread::sleep_for(milliseconds(2500));
  const auto third = ReadAll(targets);
  for (size_t i = 0; i < targets.size(); ++i) {
    CAPTURE(targets[i].name);
    CHECK(third[i].stage_observations == first[i].stage_observations);
    CHECK(third[i].copies == first[i].copies);
    CHECK(third[i].copied_bytes == first[i].copied_bytes);
    CHECK(third[i].in_flight == 0);  // every Started() was Finished()
    if (DDSPLIT_EXPECT_ALLOC_HOOK) {
      const double per_scrape = second[i].allocations - first[i].allocations;
      const double over_window = third[i].allocations - second[i].allocations;
      CAPTURE(per_scrape);
      CAPTURE(over_window);
      CHECK(over_window <= per_scrape + 200);
    }
  }
}

TEST_CASE("stage histograms, allocation and copy counters move with requests and stay still when idle") {
  TestCluster tc;
  auto& c = tc.client();
  const auto targets = CoreTargets(tc);
  PutsAndGets(c, 5, 64 << 10, 1);  // warm up: connections, pools, caches
  REQUIRE(WaitForAllStoresReachable(c, "flow/1/0"));

  CheckIdle(targets, "idle after warm-up");

  const auto before = ReadAll(targets);
  constexpr int kRecords = 20;
  PutsAndGets(c, kRecords, 64 << 10, 100);
  const auto after = ReadAll(targets);
  double stores_stored = 0;
  double stores_copied = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const auto& t = targets[i];
    CAPTURE(t.name);
    const double observed = after[i].stage_observations - before[i].stage_observations;
    if (t.job == "splitter" || t.job == "assembler") {
      // At least receive, verify and one more stage, queue and work, per request.
      CHECK(observed >= kRecords * 2 * 3);
      if (DDSPLIT_EXPECT_ALLOC_HOOK) {
        CHECK(after[i].allocations - before[i].allocations >= kRecords);
      } else {
        CHECK_FALSE(HasSamples(after[i].text, "ddsplit_heap_allocations_total"));
      }
      // The splitter and assembler hot paths copy no payload.
      CHECK(after[i].copies == before[i].copies);
    }
    if (t.job == "fragstore") {
      CHECK(observed > 0);
      stores_stored += after[i].stored_bytes - before[i].stored_bytes;
      stores_copied += after[i].copied_bytes - before[i].copied_bytes;
    }
  }
  // Fragments go to segment files straight from the received frames and are read back with
  // pread: the stores copy none of their bytes in user space (fragments kept inline in RocksDB,
  // StoreOptions::segment_min_bytes, would count two copies each).
  CHECK(stores_stored > 0);
  CHECK(stores_copied == 0);

  CheckIdle(targets, "idle after traffic");
}

// ------------------------------------------------------------------------------ metrics off

// A directory of wrappers that run the real service binaries with DDSPLIT_METRICS=off (the
// cluster launcher passes no DDSPLIT_* variable through, so it is set in the wrapper).
std::filesystem::path MetricsOffBinDir(const std::filesystem::path& dir) {
  const char* real = std::getenv("DDSPLIT_BIN_DIR");
  REQUIRE(real != nullptr);
  std::filesystem::create_directories(dir);
  for (const char* name : {"ddsplit-fragstore", "ddsplit-splitter", "ddsplit-assembler", "ddsplit-gateway"}) {
    const auto binary = std::filesystem::path(real) / name;
    if (!std::filesystem::exists(binary)) continue;
    const auto wrapper = dir / name;
    std::ofstream out(wrapper);
    out << "#!/bin/sh\nDDSPLIT_METRICS=off exec '" << binary.string() << "' \"$@\"\n";
    out.close();
    REQUIRE(::chmod(wrapper.c_str(), 0755) == 0);
  }
  return dir;
}

TEST_CASE("with DDSPLIT_METRICS=off the probes record nothing and /metrics still answers") {
  TempDir wrappers("ddsplit-metrics-off");
  cluster::ClusterOptions options;
  options.bin_dir = MetricsOffBinDir(wrappers.path() / "bin");
  TestCluster tc(options);
  auto& c = tc.client();
  const auto targets = CoreTargets(tc);
  const auto before = ReadAll(targets);
  PutsAndGets(c, 5, 64 << 10, 7);
  const auto after = ReadAll(targets);
  for (size_t i = 0; i < targets.size(); ++i) {
    CAPTURE(targets[i].name);
    CHECK(after[i].stage_observations == 0);
    CHECK(SumOfSamples(after[i].text, "ddsplit_" + targets[i].job + "_requests_total") == 0);
    CHECK(after[i].copies == 0);
    CHECK(after[i].allocations == before[i].allocations);  // the hook stopped counting
    CHECK(HasSamples(after[i].text, "process_resident_memory_bytes"));
    CHECK(HasSamples(after[i].text, "ddsplit_build_info"));
  }
}

}  // namespace
}  // namespace ddsplit::testing
