// The files of a results document: results.json, summary.md and chart.dat (see suite.h).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "bench/load.h"
#include "bench/suite.h"

namespace ddsplit::bench {
namespace {

using json = nlohmann::json;
constexpr double kMiB = 1024.0 * 1024.0;

std::string Fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "–";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

// Three significant digits, without exponent notation for the ranges we print.
std::string Num(double v) {
  if (!std::isfinite(v)) return "–";
  double a = std::fabs(v);
  int decimals = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return Fixed(v, decimals);
}

std::string Num(const json& v) { return v.is_number() ? Num(v.get<double>()) : "–"; }

const json* Limit(const json& doc, const char* list, const char* field, uint64_t size) {
  for (const auto& l : doc["limits"][list]) {
    if (l[field] == size) return &l;
  }
  return nullptr;
}

double LimitRate(const json& doc, const char* list, const char* field, uint64_t size,
                 const char* what) {
  const json* l = Limit(doc, list, field, size);
  return l == nullptr ? NAN : (*l)[what].get<double>();
}

// Record throughput as a share of the raw ZeroMQ throughput for the record's fragments.
double VersusLimit(const json& doc, const json& run) {
  double k = doc["config"]["k"].get<double>();
  double n = k + doc["config"]["m"].get<double>();
  double zmq =
      LimitRate(doc, "zmq_push_pull", "record_size", run["size"].get<uint64_t>(), "bytes_per_s");
  double rate = run["bytes_per_s"].get<double>();
  return run["mode"] == "put" ? rate * n / k / zmq : rate / zmq;
}

const json* FindRun(const json& doc, const std::string& sync, const std::string& mode,
                    uint64_t size, int c) {
  for (const auto& r : doc["runs"]) {
    if (r.value("transport", std::string("native")) != "native") continue;
    if (r["sync"] == sync && r["mode"] == mode && r["size"] == size && r["concurrency"] == c)
      return &r;
  }
  return nullptr;
}

// Sum over the processes of one role of a per-record figure.
double RoleSum(const json& run, const std::string& role, const char* field) {
  double sum = 0;
  bool any = false;
  for (const auto& [name, p] : run["processes"].items()) {
    if (p["role"] == role && p[field].is_number()) {
      sum += p[field].get<double>();
      any = true;
    }
  }
  return any ? sum : NAN;
}

}  // namespace

std::string RenderSummary(const json& doc) {
  std::ostringstream md;
  const json& env = doc["environment"];
  const json& config = doc["config"];
  const int k = config["k"].get<int>(), m = config["m"].get<int>();
  md << "# DDSplit benchmark — " << doc.value("started_at", std::string("?"))
     << (doc.value("quick", false) ? " (quick mode)" : " (full run)") << "\n\n";
  md << "- Machine: " << env.value("cpu_model", std::string("?")) << ", " << env.value("cpus", 0)
     << " CPUs, " << env.value("memory_total", std::string("?")) << ", "
     << env.value("kernel", std::string("?")) << "\n";
  for (const char* label : {"git_commit", "git_dirty", "build_type"}) {
    if (env.contains(label)) md << "- " << label << ": " << env[label].get<std::string>() << "\n";
  }
  md << "- Load average (1/5/15 min, tasks): start `" << env.value("load_start", std::string())
     << "`, after the limits `" << env.value("load_after_limits", std::string()) << "`, end `"
     << env.value("load_end", std::string())
     << "` (each run's is in results.json). The machine is shared: prefer the ratios.\n";
  md << "- Cluster: " << config["stores"] << " stores, k+m = " << k << "+" << m << ", write quorum "
     << config["write_quorum"] << ", 1 splitter, 1 assembler, all on 127.0.0.1; degraded gets with "
     << config["stopped_stores_for_degraded"] << " stores stopped (SIGSTOP).\n";
  double others = 0;
  int counted = 0;
  for (const auto& r : doc["runs"]) {
    if (r.contains("cpu_cores")) {
      others += r["cpu_cores"]["others"].get<double>();
      ++counted;
    }
  }
  md << "- Each run: closed loop over the native client (one thread, async); warm-up of at least "
     << config["warmup_ms"] << " ms and until every unit of concurrency has completed a request, "
     << "then at least " << config["duration_ms"]
     << " ms and as many completions as the concurrency measured. MiB = 2^20 bytes. Wall time "
     << Fixed(doc.value("wall_seconds", 0.0), 0)
     << " s. Request errors in all runs: " << doc.value("errors_total", 0) << ".\n";
  if (counted > 0) {
    md << "- Other work on the machine during the runs: " << Num(others / counted)
       << " cores on average (column \"other cores\").\n";
  }
  md << "\n";

  md << "## Targets\n\n| target | sync | measured | target | met |\n|---|---|---:|---:|---|\n";
  for (const auto& t : doc["targets"]) {
    std::string met = t["met"].is_boolean() ? (t["met"].get<bool>() ? "yes" : "**no**")
                      : t["target"].is_null() && t["measured"].is_number() ? "reported only"
                                                                           : "not measured";
    std::string target =
        t["target"].is_number() ? t["comparison"].get<std::string>() + " " + Num(t["target"]) : "–";
    md << "| " << t["name"].get<std::string>() << " | " << t["sync"].get<std::string>() << " | "
       << Num(t["measured"]) << " | " << target << " | " << met << " |\n";
  }
  md << "\nFormulas: put wire efficiency = record B/s × (k+m)/k ÷ raw ZeroMQ B/s at the fragment "
        "size "
        "(record/k); get = record B/s ÷ raw ZeroMQ B/s; small puts = put ops/s × 2(k+m) ÷ raw "
        "ZeroMQ msg/s; "
        "latency = put p99 ÷ raw DEALER/ROUTER round-trip p99 at 1 KiB.\n\n";

  md << "## Machine limits (measured in the same run, at its start and its end; the best "
        "counts)\n\n"
     << "| record size | memcpy MiB/s | ISA-L encode " << k << "+" << m
     << " MiB/s (record bytes) | fragment | raw ZeroMQ PUSH/PULL msg/s | raw ZeroMQ MiB/s |\n"
     << "|---|---:|---:|---:|---:|---:|\n";
  for (const auto& z : doc["limits"]["zmq_push_pull"]) {
    uint64_t size = z["record_size"].get<uint64_t>();
    md << "| " << SizeName(size) << " | "
       << Num(LimitRate(doc, "memcpy", "size", size, "bytes_per_s") / kMiB) << " | "
       << Num(LimitRate(doc, "encode", "record_size", size, "bytes_per_s") / kMiB) << " | "
       << SizeName(z["fragment_size"].get<uint64_t>()) << " | " << Num(z["messages_per_s"]) << " | "
       << Num(z["bytes_per_s"].get<double>() / kMiB) << " |\n";
  }
  const json& rtt = doc["limits"]["zmq_round_trip"];
  md << "\nRaw ZeroMQ DEALER/ROUTER round trip, 1 KiB, one in flight: p50 " << Num(rtt["p50_us"])
     << " µs, p90 " << Num(rtt["p90_us"]) << " µs, p99 " << Num(rtt["p99_us"]) << " µs, p99.9 "
     << Num(rtt["p999_us"]) << " µs.\n\n";

  md << "## DDSplit\n\n"
     << "\"vs limit\": put = record B/s × (k+m)/k ÷ raw ZeroMQ B/s at the fragment size; "
        "get = record B/s ÷ the same. alloc/rec and copied B/rec: splitter for puts, assembler "
        "for gets (the coordinator of the request; the gateway for HTTP rows); CPU µs/rec: that "
        "coordinator / all stores / the benchmark client.\n\n"
     << "errors: failed requests over the whole run (warm-up and drain included). other cores: CPU "
        "the rest of the machine used during the run, in cores (of "
     << env.value("cpus", 0) << "): noise from other work.\n\n"
     << "| sync | mode | size | c | rec/s | MiB/s | vs limit | p50 ms | p90 ms | p99 ms "
        "| p99.9 ms | errors | alloc/rec | copied B/rec | CPU µs/rec coord/stores/client "
        "| other cores |\n"
     << "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n";
  for (const auto& r : doc["runs"]) {
    const json& l = r["latency_us"];
    std::string coordinator = r.value("transport", std::string("native")) == "http" ? "gateway"
                              : r["mode"] == "put"                                  ? "splitter"
                                                                                    : "assembler";
    std::string mode = r["mode"].get<std::string>();
    if (r.value("transport", std::string("native")) == "http") mode = "HTTP " + mode;
    md << "| " << r["sync"].get<std::string>() << " | " << mode << " | "
       << r["size_name"].get<std::string>() << " | " << r["concurrency"] << " | "
       << Num(r["records_per_s"]) << " | " << Num(r["bytes_per_s"].get<double>() / kMiB) << " | "
       << Num(VersusLimit(doc, r)) << " | " << Num(l["p50"].get<double>() / 1000) << " | "
       << Num(l["p90"].get<double>() / 1000) << " | " << Num(l["p99"].get<double>() / 1000) << " | "
       << Num(l["p999"].get<double>() / 1000) << " | "
       << r.value("errors_all", r["errors"].get<uint64_t>()) << " | "
       << Num(RoleSum(r, coordinator, "allocations_per_record")) << " | "
       << Num(RoleSum(r, coordinator, "payload_copied_bytes_per_record")) << " | "
       << Num(RoleSum(r, coordinator, "cpu_us_per_record")) << " / "
       << Num(RoleSum(r, "store", "cpu_us_per_record")) << " / "
       << Num(r["client"]["cpu_us_per_record"]) << " | "
       << (r.contains("cpu_cores") ? Num(r["cpu_cores"]["others"]) : std::string("–")) << " |\n";
  }

  md << "\n## Resident memory (MiB)\n\n| sync | process | idle at start | peak under load | idle "
        "after load |\n"
     << "|---|---|---:|---:|---:|\n";
  for (const auto& mem : doc["memory"]) {
    for (const auto& p : mem["processes"]) {
      md << "| " << mem["sync"].get<std::string>() << " | " << p["name"].get<std::string>() << " | "
         << Num(p["idle_start_bytes"].get<double>() / kMiB) << " | "
         << Num(p["peak_bytes"].get<double>() / kMiB) << " | "
         << Num(p["idle_end_bytes"].get<double>() / kMiB) << " |\n";
    }
  }
  if (doc.contains("gateway")) {
    md << "\nGateway: " << doc["gateway"].value("note", std::string()) << "\n";
  }
  return md.str();
}

Status WriteOutputs(const json& doc, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  auto write = [&](const std::string& name, const std::string& text) -> Status {
    std::ofstream out(dir / name, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return Error(ErrorCode::kInternal, "cannot write " + (dir / name).string());
    return OkStatus();
  };
  DDSPLIT_RETURN_IF_ERROR(write("results.json", doc.dump(2) + "\n"));
  DDSPLIT_RETURN_IF_ERROR(write("summary.md", RenderSummary(doc)));

  // chart.dat: one row per record size, MiB/s of record bytes, at the highest concurrency.
  int top = 1;
  for (const auto& c : doc["config"]["concurrency"]) top = std::max(top, c.get<int>());
  std::ostringstream dat;
  const double k = doc["config"]["k"].get<double>();
  const double n = k + doc["config"]["m"].get<double>();
  dat << "# size_bytes memcpy encode zmq_raw put_none get_none degraded_none put_always get_always"
         " zmq_put_limit (MiB/s of record bytes; concurrency "
      << top << ")\n";
  for (const auto& z : doc["limits"]["zmq_push_pull"]) {
    uint64_t size = z["record_size"].get<uint64_t>();
    auto rate = [&](const char* sync, const char* mode) {
      const json* r = FindRun(doc, sync, mode, size, top);
      return r == nullptr ? NAN : (*r)["bytes_per_s"].get<double>() / kMiB;
    };
    auto cell = [](double v) { return std::isfinite(v) ? Fixed(v, 3) : std::string("NaN"); };
    dat << size << " " << cell(LimitRate(doc, "memcpy", "size", size, "bytes_per_s") / kMiB) << " "
        << cell(LimitRate(doc, "encode", "record_size", size, "bytes_per_s") / kMiB) << " "
        << cell(z["bytes_per_s"].get<double>() / kMiB) << " " << cell(rate("none", "put")) << " "
        << cell(rate("none", "get")) << " " << cell(rate("none", "degraded-get")) << " "
        << cell(rate("always", "put")) << " " << cell(rate("always", "get")) << " "
        << cell(z["bytes_per_s"].get<double>() / kMiB * k / n) << "\n";
  }
  return write("chart.dat", dat.str());
}

}  // namespace ddsplit::bench
