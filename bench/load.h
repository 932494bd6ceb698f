// load: closed-loop load against a DDSplit cluster — a fixed number of requests always in
// flight, each completion immediately replaced by a new request — over the native client
// library or, over HTTP, against the JSON gateway (PUT/GET /v1/records/{key}).
//
// Native: `threads` client threads (default 1), each with its own Client and ZeroMQ context,
// share the concurrency; a thread keeps its share in flight with the async API and Poll(), so a
// single thread drives 32 requests without context switches (the best use of a small machine
// that also runs the cluster). Every Put borrows one shared, read-only random buffer: the
// generator itself copies no payload. HTTP: one thread and one keep-alive connection per unit of
// concurrency (cpp-httplib is blocking).
//
// Latency is measured per request from submission to completion callback and recorded in an
// HDR-style histogram; throughput counts requests that completed successfully inside the
// measurement window, divided by the window. The window opens after the warm-up once every unit
// of concurrency has completed a request (steady state, even when one request takes seconds)
// and closes after `duration` once at least `concurrency` requests completed in it (the warm-up
// is capped at warmup + 2 x duration, the window at 3 x duration). Requests still in flight then
// are awaited, not counted.
//
// Thread-safety: RunLoad blocks the calling thread; `progress` is called from it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/histogram.h"
#include "client/client.h"
#include "common/base/result.h"
#include "common/base/stage.h"

namespace ddsplit::bench {

// Sums of the per-stage queue and work times the services report in their replies, over the
// successful requests of the window (native client only).
struct StageTotals {
  std::array<uint64_t, kStageCount> queue_ns{};
  std::array<uint64_t, kStageCount> work_ns{};
  std::array<uint64_t, kStageCount> count{};
  void Add(const std::vector<client::StageTime>& timings);
  void Merge(const StageTotals& other);
};

enum class Mode { kPut, kGet, kMixed, kList };

// "put", "get", "mixed", "list"; parsing accepts those ("degraded-get" is a get with stores
// stopped, arranged by the caller).
std::string_view ModeName(Mode mode);
Result<Mode> ParseMode(std::string_view text);

struct LoadOptions {
  Mode mode = Mode::kPut;
  uint64_t record_bytes = 1024;
  int concurrency = 1;
  int threads = 1;                           // native client threads
  std::chrono::milliseconds warmup{500};     // run, but do not count
  std::chrono::milliseconds duration{5000};  // measurement window (when count == 0)
  uint64_t count = 0;                        // > 0: stop after this many requests
  std::string key_prefix = "bench/";         // keys are KEY_PREFIX + index
  uint64_t key_space = 1024;                 // keys first_key .. key_space-1 are
  uint64_t first_key = 0;                    // used in order, round robin
  double read_fraction = 0.5;                // kMixed: share of gets
  uint32_t list_limit = 100;                 // kList: entries per page
  bool verify_size = true;                   // a get of the wrong size is an error
  std::chrono::milliseconds request_timeout{30000};
  std::string http_url;  // non-empty: HTTP mode against a gateway
};

struct LoadResult {
  uint64_t ok = 0;            // successful requests in the window
  uint64_t errors = 0;        // failed requests in the window
  uint64_t bytes = 0;         // record bytes of the successful requests
  uint64_t degraded = 0;      // gets answered by decoding (native only)
  double seconds = 0;         // the window
  uint64_t keys_written = 0;  // puts: highest key index written + 1 (over warm-up and window)
  // Every request that completed during the whole run — warm-up, window and the drain after it —
  // for per-record costs computed from counters read before and after the run.
  uint64_t ok_all = 0;
  uint64_t errors_all = 0;
  std::map<std::string, uint64_t> errors_by_code;  // error code name -> count
  std::string first_error;                         // text of the first error seen, for the report
  LatencyHistogram latency;                        // ns, successful requests in the window
  StageTotals stages;                              // what the services say the time went to

  double records_per_second() const { return seconds > 0 ? ok / seconds : 0; }
  double bytes_per_second() const { return seconds > 0 ? bytes / seconds : 0; }
};

// Counts so far, for a progress line.
struct Progress {
  uint64_t ok = 0;
  uint64_t errors = 0;
  uint64_t bytes = 0;
  double seconds = 0;  // since the start of the window (negative during warm-up)
  bool warming_up = true;
  uint64_t p99_ns = 0;
};

// Runs the load described by `options` against the cluster reachable with `client_options`
// (ignored in HTTP mode). Errors: kInvalidArgument for inconsistent options; kUnavailable when
// the first requests cannot reach the cluster at all. Request failures during the run are not
// errors of RunLoad: they are counted in the result.
Result<LoadResult> RunLoad(const client::ClientOptions& client_options, const LoadOptions& options,
                           const std::function<void(const Progress&)>& progress = {});

// Writes keys options.first_key .. options.key_space-1 once each, for get runs that need data,
// with at most options.concurrency requests and about 64 MiB in flight. Tries the whole range
// up to three times; kUnavailable with the last error if every attempt had a failed request.
Status Populate(const client::ClientOptions& client_options, const LoadOptions& options);

// Waits until a put reaches every store and the assembler sees every store (after start-up, and
// after stopped stores continue). kDeadlineExceeded with the last state seen otherwise.
Status WaitAllStoresHealthy(const client::ClientOptions& options, int stores,
                            std::chrono::milliseconds timeout);

// After stores are stopped, the assembler first waits out its hedge delay for them (250 ms by
// default); once their connections time out (ZeroMQ heartbeats, about 3 s) it skips them at
// once. Waits for that steady state: 20 consecutive gets of keys PREFIX0..PREFIX(keys-1)
// answered within 50 ms each. kDeadlineExceeded otherwise.
Status WaitForFastReads(const client::ClientOptions& options, const std::string& prefix,
                        uint64_t keys, std::chrono::milliseconds timeout);

// The result as JSON: records, errors (in the window), records_all, errors_all, seconds,
// records_per_s, mib_per_s, latency_us {p50, p90, p99, p999, max, mean}, degraded, errors_by_code,
// first_error.
nlohmann::json ToJson(const LoadResult& result);

// Deterministic incompressible bytes for record payloads.
std::vector<std::byte> PayloadBytes(uint64_t size, uint64_t seed);

// "1KiB", "64KiB", "1MiB", "16MiB", plain byte counts otherwise.
std::string SizeName(uint64_t bytes);
// Parses "1024", "1K", "1KiB", "64k", "1M", "16MiB", "1G".
Result<uint64_t> ParseSize(std::string_view text);

}  // namespace ddsplit::bench
