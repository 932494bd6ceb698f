// suite: the whole benchmark behind bench/run, in one process and one run —
//  1. the machine's limits (memcpy, ISA-L encode for k+m, raw ZeroMQ PUSH/PULL at each fragment
//     size, raw DEALER/ROUTER round trip at 1 KiB);
//  2. for each store sync mode, a fresh LocalCluster: put, get and degraded get (stores
//     stopped with SIGSTOP) at each record size and concurrency, with every process's heap
//     allocations, payload copies and CPU time per record (from /metrics and /proc), and its
//     resident memory idle, under load and idle again;
//  3. the ratios of the targets, each reported as measured with whether it is met.
// Everything goes into one JSON document (see WriteOutputs for the files).
//
// Not thread-safe; runs on the calling thread (plus short-lived measuring threads). The
// clusters are stopped and reaped whatever happens (LocalCluster's destructor).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace ddsplit::bench {

struct SuiteOptions {
  std::filesystem::path out_dir;   // results; created if missing
  std::filesystem::path bin_dir;   // service binaries (empty: next to this program)
  bool quick = false;              // CI smoke run: fewer sizes, one sync mode, short
  std::vector<uint64_t> sizes;     // empty: the mode's default
  std::vector<int> concurrency;    // empty: {1, 32}
  std::vector<std::string> syncs;  // empty: quick {"none"}, full {"none", "always"}
  int k = 4;
  int m = 2;
  int stores = 6;
  int stopped_stores = 2;                       // for degraded gets (at most m)
  std::chrono::milliseconds warmup{0};          // 0: the mode's default
  std::chrono::milliseconds duration{0};        // 0: the mode's default
  std::chrono::milliseconds limit_duration{0};  // per limit probe; 0: the mode's default
  bool keep_data = false;                       // keep the clusters' directories
  std::map<std::string, std::string> labels;    // recorded under "environment" (git commit ...)
  // Called with a one-line description of each step and, for load runs, live progress text.
  std::function<void(const std::string&)> status;
  std::function<void(const std::string&)> progress;
};

// Runs the suite. Returns the results document even when some runs saw request errors (they
// are in it, and "errors_total" counts them); fails only when the suite cannot run at all (a
// cluster that does not start, a limit probe that breaks).
Result<nlohmann::json> RunSuite(const SuiteOptions& options);

// Checks that `doc` has the shape RunSuite produces (every section, numbers where numbers
// belong, at least one run with results). kMalformed naming the first problem.
Status ValidateResults(const nlohmann::json& doc);

// Writes into `dir`: results.json (the document), summary.md (tables of limits, runs, memory
// and targets), chart.dat (per record size: the limits and DDSplit's throughput, for
// chart.gp). Errors: kInternal when a file cannot be written.
Status WriteOutputs(const nlohmann::json& doc, const std::filesystem::path& dir);

// The markdown summary of a results document.
std::string RenderSummary(const nlohmann::json& doc);

}  // namespace ddsplit::bench
