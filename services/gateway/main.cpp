// ddsplit-gateway: the JSON/HTTP front door. Wires options, the HTTP server, the gateway and the
// admin port; SIGTERM stops accepting, drains requests in flight and exits 0.
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/metrics/admin_server.h"
#include "common/metrics/metrics.h"
#include "common/runtime/runtime.h"
#include "services/gateway/gateway.h"
#include "services/gateway/gateway_probe.h"
#include "services/gateway/http_server.h"

namespace {

// "a;b; c" → {"a", "b", "c"}.
std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    size_t first = item.find_first_not_of(" \t");
    size_t last = item.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
    start = end + 1;
  }
  return out;
}

// Waits until `fd` (the shutdown signal) becomes readable. Meanwhile, once the gateway has
// started no request for a second and has none in flight, gives the memory its threads used
// back to the system (glibc keeps freed memory in per-thread arenas otherwise).
void WaitForShutdown(int fd, ddsplit::gateway::Gateway& gateway) {
  constexpr int kTickMs = 500;
  constexpr int kIdleTicks = 2;
  uint64_t started = gateway.requests_started();
  int idle_ticks = 0;
  bool trimmed = true;  // nothing to give back at start-up
  for (;;) {
    pollfd item{fd, POLLIN, 0};
    int ready = ::poll(&item, 1, kTickMs);
    if (ready > 0) return;
    if (ready < 0 && errno != EINTR) return;
    uint64_t now_started = gateway.requests_started();
    if (now_started != started || gateway.requests_in_flight() > 0) {
      started = now_started;
      idle_ticks = 0;
      trimmed = false;
    } else if (!trimmed && ++idle_ticks >= kIdleTicks) {
      gateway.ReleaseIdleMemory();
      trimmed = true;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ddsplit;
  CLI::App app{
      "ddsplit-gateway: the JSON/HTTP API of DDSplit (PUT/GET/HEAD/DELETE /v1/records/KEY)"};
  gateway::HttpServerOptions http;
  gateway::GatewayOptions options;
  metrics::AdminOptions admin_options;
  std::vector<std::string> splitter_flags, assembler_flags;
  std::string splitter_list, assembler_list;
  int64_t request_timeout_ms = options.request_timeout.count();
  int64_t read_timeout_ms = http.read_timeout.count();
  int64_t idle_timeout_ms = http.idle_timeout.count();
  int64_t write_timeout_ms = http.write_timeout.count();
  int64_t drain_timeout_ms = 20000;
  std::string log_level = "info";
  int announce_fd = -1;
  bool check_config = false;

  app.add_option("--host", http.host, "HTTP listen address")
      ->envname("DDSPLIT_HTTP_HOST")
      ->capture_default_str();
  app.add_option("--port", http.port, "HTTP port (0: any free port)")
      ->envname("DDSPLIT_HTTP_PORT")
      ->capture_default_str();
  app.add_option("--admin-host", admin_options.host, "Admin HTTP host (/metrics /healthz /readyz)")
      ->envname("DDSPLIT_ADMIN_HOST")
      ->capture_default_str();
  app.add_option("--admin-port", admin_options.port, "Admin HTTP port (0: any)")
      ->envname("DDSPLIT_ADMIN_PORT")
      ->capture_default_str();
  app.add_option("--splitter", splitter_flags,
                 "A splitter endpoint (repeat; tcp://H:P or dns+tcp://NAME:P)");
  app.add_option("--splitters", splitter_list, "Splitter endpoints separated by ';'")
      ->envname("DDSPLIT_SPLITTERS");
  app.add_option("--assembler", assembler_flags, "An assembler endpoint (repeat)");
  app.add_option("--assemblers", assembler_list, "Assembler endpoints separated by ';'")
      ->envname("DDSPLIT_ASSEMBLERS");
  app.add_option("--max-record-bytes", options.max_record_bytes,
                 "Largest value a PUT may carry (413 beyond)")
      ->envname("DDSPLIT_MAX_RECORD_BYTES")
      ->capture_default_str();
  app.add_option("--threads", http.threads, "HTTP threads (each answers one request at a time)")
      ->envname("DDSPLIT_HTTP_THREADS")
      ->capture_default_str();
  app.add_option("--request-timeout-ms", request_timeout_ms,
                 "Deadline of each native request (504 beyond)")
      ->envname("DDSPLIT_REQUEST_TIMEOUT_MS")
      ->capture_default_str();
  app.add_option("--read-timeout-ms", read_timeout_ms,
                 "Longest a request head may take, and a request body may stall (then the "
                 "connection closes)")
      ->envname("DDSPLIT_HTTP_READ_TIMEOUT_MS")
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", idle_timeout_ms,
                 "Keep-alive: close a connection idle this long")
      ->envname("DDSPLIT_HTTP_IDLE_TIMEOUT_MS")
      ->capture_default_str();
  app.add_option("--write-timeout-ms", write_timeout_ms,
                 "Close a connection whose client stops reading this long")
      ->envname("DDSPLIT_HTTP_WRITE_TIMEOUT_MS")
      ->capture_default_str();
  app.add_option("--max-connections", http.max_connections,
                 "Open connections before new ones get 503")
      ->envname("DDSPLIT_HTTP_MAX_CONNECTIONS")
      ->capture_default_str();
  app.add_option("--drain-timeout-ms", drain_timeout_ms,
                 "On SIGTERM, how long requests in flight may finish")
      ->envname("DDSPLIT_DRAIN_TIMEOUT_MS")
      ->capture_default_str();
  app.add_option("--max-batch-bytes", options.max_batch_value_bytes,
                 "Value bytes one batchGet answer may carry")
      ->envname("DDSPLIT_HTTP_MAX_BATCH_BYTES")
      ->capture_default_str();
  app.add_option("--max-ingest-bytes", options.max_ingest_bytes, "Largest NDJSON ingest body")
      ->envname("DDSPLIT_HTTP_MAX_INGEST_BYTES")
      ->capture_default_str();
  app.add_option("--ingest-concurrency", options.ingest_concurrency,
                 "Puts in flight per ingest request")
      ->envname("DDSPLIT_HTTP_INGEST_CONCURRENCY")
      ->capture_default_str();
  app.add_option("--announce-fd", announce_fd,
                 "Write a JSON line with the bound ports to this fd when ready");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->envname("DDSPLIT_LOG_LEVEL")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_flag("--check-config", check_config,
               "Validate the configuration, print one JSON line describing the ports, exit");
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "ddsplit-gateway: %s\n", message.c_str());
    return 2;
  };
  options.splitters = splitter_flags;
  for (auto& endpoint : SplitList(splitter_list)) options.splitters.push_back(std::move(endpoint));
  options.assemblers = assembler_flags;
  for (auto& endpoint : SplitList(assembler_list))
    options.assemblers.push_back(std::move(endpoint));
  if (options.splitters.empty())
    return fail("no splitter: give --splitter or --splitters (DDSPLIT_SPLITTERS)");
  if (options.assemblers.empty())
    return fail("no assembler: give --assembler or --assemblers (DDSPLIT_ASSEMBLERS)");
  if (http.threads < 1 || http.threads > 1024) return fail("--threads must be between 1 and 1024");
  if (http.port < 0 || http.port > 65535) return fail("--port must be between 0 and 65535");
  if (admin_options.port < 0 || admin_options.port > 65535)
    return fail("--admin-port must be between 0 and 65535");
  for (int64_t ms : {request_timeout_ms, read_timeout_ms, idle_timeout_ms, write_timeout_ms}) {
    if (ms <= 0) return fail("timeouts must be positive");
  }
  if (drain_timeout_ms < 0) return fail("--drain-timeout-ms cannot be negative");
  if (options.max_record_bytes == 0) return fail("--max-record-bytes must be positive");
  if (http.max_connections < 1) return fail("--max-connections must be at least 1");
  if (options.ingest_concurrency < 1 || options.ingest_concurrency > 1024) {
    return fail("--ingest-concurrency must be between 1 and 1024");
  }
  options.request_timeout = std::chrono::milliseconds(request_timeout_ms);
  options.http_threads = http.threads;
  http.read_timeout = std::chrono::milliseconds(read_timeout_ms);
  http.idle_timeout = std::chrono::milliseconds(idle_timeout_ms);
  http.write_timeout = std::chrono::milliseconds(write_timeout_ms);

  for (const auto* endpoints : {&options.splitters, &options.assemblers}) {
    for (const auto& endpoint : *endpoints) {
      if (auto valid = client::ValidateEndpoint(endpoint); !valid.ok()) {
        return fail(valid.error().message());
      }
    }
  }
  // Checked without resolving or connecting: names resolve only inside the cluster.
  if (check_config) {
    nlohmann::ordered_json line = {{"service", "gateway"},
                                   {"admin_port", admin_options.port},
                                   {"admin_paths", {"/metrics", "/healthz", "/readyz"}},
                                   {"ports", {{"http", http.port}}},
                                   {"drain_timeout_ms", drain_timeout_ms}};
    std::printf("%s\n", line.dump().c_str());
    return 0;
  }

  zmq::context_t context(2);
  metrics::ProcessMetrics process_metrics("gateway");
  gateway::GatewayProbe probe(process_metrics);
  auto created = gateway::Gateway::Create(options, probe, context);
  if (!created.ok()) return fail(created.error().message());
  gateway::Gateway& service = **created;

  runtime::SetUpLogging("gateway", log_level);
  auto& shutdown = runtime::ShutdownSignal::Install();
  gateway::HttpServer server(
      http, [&service](gateway::HttpExchange& exchange) { service.Handle(exchange); }, &probe);
  auto port = server.Start();
  if (!port.ok()) {
    spdlog::critical("{}", port.error().ToString());
    return 1;
  }
  metrics::AdminServer admin(admin_options, process_metrics, [&]() -> Status {
    if (shutdown.requested()) return Error(ErrorCode::kUnavailable, "draining");
    return service.CheckReady();
  });
  auto admin_port = admin.Start();
  if (!admin_port.ok()) {
    spdlog::critical("{}", admin_port.error().ToString());
    return 1;
  }
  // A wildcard bind is reached through loopback from this host.
  std::string url_host =
      http.host == "0.0.0.0" || http.host == "::" || http.host.empty() ? "127.0.0.1" : http.host;
  if (url_host.find(':') != std::string::npos) url_host = "[" + url_host + "]";
  const std::string url = "http://" + url_host + ":" + std::to_string(*port);
  nlohmann::ordered_json announcement = {{"service", "gateway"},
                                         {"pid", getpid()},
                                         {"url", url},
                                         {"port", *port},
                                         {"admin_port", *admin_port}};
  if (auto announced = runtime::Announce(announce_fd, announcement.dump()); !announced.ok()) {
    spdlog::warn("{}", announced.error().ToString());
  }
  spdlog::info("gateway ready: {} admin {} threads {} splitters {} assemblers {}", url, *admin_port,
               http.threads, options.splitters.size(), options.assemblers.size());

  WaitForShutdown(shutdown.fd(), service);
  spdlog::info("gateway draining: {} connections open", server.connections());
  size_t left = server.Shutdown(std::chrono::milliseconds(drain_timeout_ms));
  if (left > 0) spdlog::warn("gateway: {} connections still busy after the drain time", left);
  admin.Stop();
  spdlog::info("gateway stopped");
  return 0;
}
