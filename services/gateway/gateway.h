// Gateway: the JSON/HTTP API of DDSplit (version 1) on top of the native client library. It
// adapts each HTTP request to native calls and their results back to HTTP; the transport is
// HttpServer, the pure rules (ranges, ETags, errors, cursors, timing) are in http_api.h.
//
//   PUT    /v1/records/{key}        store (201 created / 200 replaced), body = raw value
//   GET    /v1/records/{key}        the value; Range → 206 / 416; If-None-Match → 304
//   HEAD   /v1/records/{key}        the same headers, no body
//   DELETE /v1/records/{key}        204, or 404 when there is no such record
//   GET    /v1/records?prefix=&limit=&cursor=     one page of keys
//   POST   /v1/records:batchGet     {"keys": [...]} → every value (base64) or its error
//   POST   /v1/records:ingest       NDJSON lines {key, value | value_base64, content_type?}
//
// Every answer carries X-Request-Id and Server-Timing; errors are RFC 9457 problem documents.
// Native calls go through one client::Client per HTTP thread (a Client is single-threaded),
// all created by Create() and handed to the threads as they start.
//
// Thread-safety: Handle() is called concurrently from the HTTP threads (each with its own
// thread_index); CheckReady() from the admin server's thread (never concurrently with itself).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "client/client.h"
#include "common/base/limits.h"
#include "common/base/result.h"
#include "services/gateway/gateway_probe.h"
#include "services/gateway/http_server.h"

namespace ddsplit::gateway {

struct GatewayOptions {
  std::vector<std::string> splitters;  // client endpoints, passed through to the client library
  std::vector<std::string> assemblers;
  std::chrono::milliseconds request_timeout{10000};  // per native request
  uint64_t max_record_bytes = kDefaultMaxRecordBytes;
  // Total value bytes one batchGet answer may carry; items past it answer 413.
  uint64_t max_batch_value_bytes = uint64_t{16} << 20;
  // Largest JSON request body (batchGet).
  uint64_t max_json_body_bytes = uint64_t{1} << 20;
  // Largest NDJSON ingest body (streamed: memory use is bounded by the line length and the
  // concurrency, not by this).
  uint64_t max_ingest_bytes = uint64_t{1} << 30;
  size_t max_ingest_lines = 100000;
  int ingest_concurrency = 16;  // puts in flight per ingest request
  int http_threads = 16;        // must equal the HttpServer's thread count
};

class Gateway {
 public:
  // Checks the options and the endpoints (by connecting a client for readiness checks). Errors:
  // kInvalidArgument. `probe` and `context` must outlive the gateway.
  static Result<std::unique_ptr<Gateway>> Create(GatewayOptions options, GatewayProbe& probe,
                                                 zmq::context_t& context);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Answers one HTTP request (the HttpServer's handler).
  void Handle(HttpExchange& exchange);

  // OK when a splitter and an assembler have answered within the last two seconds, either real
  // traffic or a probe this call sends (a write the splitter refuses without storing anything —
  // an invalid content type — and a head read of a key nobody writes). Probe results are cached
  // for one second. Errors: kUnavailable naming what did not answer.
  Status CheckReady();

  const GatewayOptions& options() const { return options_; }

  // Requests begun since start, and those not yet answered: main() watches them to give memory
  // back once the gateway is idle.
  uint64_t requests_started() const { return requests_started_.load(std::memory_order_relaxed); }
  int requests_in_flight() const { return requests_in_flight_.load(std::memory_order_relaxed); }
  // Frees the buffers threads keep between requests (those not in use) and returns the C
  // library's free memory to the system. For when the gateway is idle; thread-safe.
  void ReleaseIdleMemory();

 private:
  struct ThreadState;
  struct Context;
  Gateway(GatewayOptions options, GatewayProbe& probe, zmq::context_t& context);

  client::Client* ClientFor(Context& ctx);
  void NoteAnswer(bool write, ErrorCode code);

  void HandleRecord(Context& ctx);
  void PutRecord(Context& ctx);
  void GetRecord(Context& ctx, bool head_only);
  void DeleteRecord(Context& ctx);
  void ListRecords(Context& ctx);
  void BatchGet(Context& ctx);
  void Ingest(Context& ctx);

  GatewayOptions options_;
  GatewayProbe& probe_;
  zmq::context_t& context_;
  std::vector<std::unique_ptr<ThreadState>> threads_;
  std::atomic<uint64_t> requests_started_{0};
  std::atomic<int> requests_in_flight_{0};

  // Readiness: when each side last answered (steady clock, ns), and the probing client.
  std::atomic<int64_t> splitter_answered_ns_{0};
  std::atomic<int64_t> assembler_answered_ns_{0};
  std::unique_ptr<client::Client> readiness_client_;
  int64_t last_probe_ns_ = 0;
  Status last_probe_ = OkStatus();
};

}  // namespace ddsplit::gateway
