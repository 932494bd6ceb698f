// ddsplit-splitter: the write coordinator. Wires options, sockets and the admin port.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <random>

#include "common/metrics/admin_server.h"
#include "common/metrics/metrics.h"
#include "common/runtime/runtime.h"
#include "common/transport/transport.h"
#include "services/splitter/splitter_probe.h"
#include "services/splitter/splitter_server.h"

int main(int argc, char** argv) {
  using namespace ddsplit;
  CLI::App app{"ddsplit-splitter: erasure-codes records and writes their fragments to stores"};
  splitter::SplitterOptions options;
  metrics::AdminOptions admin_options;
  std::vector<std::string> store_specs;
  std::string store_list;
  std::string store_template;
  int store_count = 0;
  std::string log_level = "info";
  int announce_fd = -1;
  int64_t writer_id = -1;
  int64_t write_timeout_ms = options.write_timeout.count();
  int64_t connect_wait_ms = 5000;
  bool check_config = false;

  app.add_option("--client-bind", options.client_bind, "ROUTER endpoint for clients")
      ->envname("DDSPLIT_CLIENT_BIND")->capture_default_str();
  app.add_option("--ack-bind", options.ack_bind, "PULL endpoint for store acknowledgements")
      ->envname("DDSPLIT_ACK_BIND")->capture_default_str();
  app.add_option("--advertise-host", options.advertise_host,
                 "Host the stores use to reach the ack endpoint (default: as bound)")
      ->envname("DDSPLIT_ADVERTISE_HOST");
  app.add_option("--store", store_specs, "A store: ID=INGEST,READ[,zone=Z] (repeat per store)");
  app.add_option("--stores", store_list, "Stores separated by ';'")->envname("DDSPLIT_STORES");
  app.add_option("--store-template", store_template, "Store spec with {id}, for --store-count stores")
      ->envname("DDSPLIT_STORE_TEMPLATE");
  app.add_option("--store-count", store_count, "Number of stores for --store-template")
      ->envname("DDSPLIT_STORE_COUNT");
  app.add_option("--k", options.shape.k, "Data fragments per record")->envname("DDSPLIT_K")->capture_default_str();
  app.add_option("--m", options.shape.m, "Parity fragments per record")->envname("DDSPLIT_M")->capture_default_str();
  app.add_option("--write-quorum", options.shape.write_quorum, "Durable fragments before a write is acknowledged (0: k+1)")
      ->envname("DDSPLIT_WRITE_QUORUM")->capture_default_str();
  app.add_option("--writer-id", writer_id, "Id in this splitter's versions (default: random)")
      ->envname("DDSPLIT_WRITER_ID");
  app.add_option("--max-record-bytes", options.max_record_bytes, "Largest record accepted")
      ->envname("DDSPLIT_MAX_RECORD_BYTES")->capture_default_str();
  app.add_option("--write-timeout-ms", write_timeout_ms, "Deadline for reaching the write quorum")
      ->envname("DDSPLIT_WRITE_TIMEOUT_MS")->capture_default_str();
  app.add_option("--connect-wait-ms", connect_wait_ms,
                 "At start-up, wait up to this long for a connection to every store before "
                 "announcing (writes made meanwhile would miss the unconnected stores)")
      ->envname("DDSPLIT_CONNECT_WAIT_MS")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-in-flight", options.max_in_flight_writes, "Writes in flight before answering BUSY")
      ->envname("DDSPLIT_MAX_IN_FLIGHT")->capture_default_str();
  app.add_option("--max-in-flight-bytes", options.max_in_flight_bytes, "Record bytes in flight before answering BUSY")
      ->envname("DDSPLIT_MAX_IN_FLIGHT_BYTES")->capture_default_str();
  app.add_option("--admin-host", admin_options.host, "Admin HTTP host")->envname("DDSPLIT_ADMIN_HOST")->capture_default_str();
  app.add_option("--admin-port", admin_options.port, "Admin HTTP port (0: any)")->envname("DDSPLIT_ADMIN_PORT")->capture_default_str();
  app.add_option("--announce-fd", announce_fd, "Write a JSON line with the bound endpoints to this fd when ready");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")->envname("DDSPLIT_LOG_LEVEL")->capture_default_str();
  app.add_flag("--check-config", check_config, "Validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);

  auto stores = config::ResolveStores(store_specs, store_list, store_template, store_count);
  if (!stores.ok()) {
    std::fprintf(stderr, "ddsplit-splitter: %s\n", stores.error().message().c_str());
    return 2;
  }
  options.stores = std::move(*stores);
  if (auto shape = config::ValidateCodeShape(options.shape); !shape.ok()) {
    std::fprintf(stderr, "ddsplit-splitter: %s\n", shape.error().message().c_str());
    return 2;
  }
  if (static_cast<int>(options.stores.size()) < options.shape.k + options.shape.m) {
    std::fprintf(stderr, "ddsplit-splitter: %zu stores cannot hold k + m = %d fragments\n",
                 options.stores.size(), options.shape.k + options.shape.m);
    return 2;
  }
  options.write_timeout = std::chrono::milliseconds(write_timeout_ms);
  options.writer_id = writer_id >= 0 ? static_cast<uint32_t>(writer_id) : std::random_device{}();
  if (check_config) {
    auto port_json = [](int port) {
      return port < 0 ? nlohmann::json(nullptr) : nlohmann::json(port);
    };
    // One JSON line on stdout: what this configuration would serve and use (deployment checks
    // compare it with the Kubernetes manifests). Nothing is bound or connected.
    auto client_port = transport::CheckBindPort("client-bind", options.client_bind);
    auto ack_port = transport::CheckBindPort("ack-bind", options.ack_bind);
    for (const auto* port : {&client_port, &ack_port}) {
      if (!port->ok()) {
        std::fprintf(stderr, "ddsplit-splitter: %s\n", port->error().message().c_str());
        return 2;
      }
    }
    if (admin_options.port < 0 || admin_options.port > 65535 || admin_options.host.empty()) {
      std::fprintf(stderr,
                   "ddsplit-splitter: --admin-host must be set and --admin-port be 0..65535\n");
      return 2;
    }
    nlohmann::json stores = nlohmann::json::array();
    for (const auto& store : options.stores) {
      stores.push_back({{"id", store.id.value()},
                        {"ingest", store.ingest},
                        {"read", store.read},
                        {"zone", store.zone}});
    }
    nlohmann::json config = {
        {"service", "splitter"},
        {"admin_port", admin_options.port},
        {"admin_paths", {"/metrics", "/healthz", "/readyz"}},
        {"ports", {{"client", port_json(*client_port)}, {"ack", port_json(*ack_port)}}},
        {"advertised_ack_endpoint",
         transport::AdvertisedEndpoint(options.ack_bind, options.advertise_host)},
        {"k", options.shape.k},
        {"m", options.shape.m},
        {"write_quorum", options.shape.EffectiveQuorum()},
        {"drain_timeout_ms", options.drain_timeout.count()},
        {"connect_wait_ms", connect_wait_ms},
        {"stores", stores}};
    std::printf("%s\n", config.dump().c_str());
    return 0;
  }

  runtime::SetUpLogging("splitter", log_level);
  auto& shutdown = runtime::ShutdownSignal::Install();
  metrics::ProcessMetrics process_metrics("splitter");
  splitter::SplitterProbe probe(process_metrics);
  zmq::context_t context(1);
  auto server = splitter::SplitterServer::Create(options, context, probe, SystemClock::Instance());
  if (!server.ok()) {
    spdlog::critical("{}", server.error().ToString());
    return 1;
  }
  const size_t quorum = static_cast<size_t>(options.shape.EffectiveQuorum());
  const size_t store_count_total = options.stores.size();
  splitter::SplitterServer& splitter = **server;
  metrics::AdminServer admin(admin_options, process_metrics, [&]() -> Status {
    if (shutdown.requested()) return Error(ErrorCode::kUnavailable, "draining");
    // Ready while a write can still reach its quorum.
    if (size_t connected = splitter.stores_connected(); connected < quorum) {
      return Error(ErrorCode::kUnavailable,
                   "connected to " + std::to_string(connected) + " of " +
                       std::to_string(store_count_total) + " stores; writes need " +
                       std::to_string(quorum));
    }
    return OkStatus();
  });
  auto admin_port = admin.Start();
  if (!admin_port.ok()) {
    spdlog::critical("{}", admin_port.error().ToString());
    return 1;
  }
  size_t connected = splitter.WaitForStores(std::chrono::milliseconds(connect_wait_ms));
  if (connected < store_count_total) {
    spdlog::warn("connected to {} of {} stores after {} ms; writes miss the others until they "
                 "connect", connected, store_count_total, connect_wait_ms);
  }
  nlohmann::json announcement = {{"service", "splitter"},
                                 {"pid", getpid()},
                                 {"endpoint", (*server)->client_endpoint()},
                                 {"ack_endpoint", (*server)->ack_endpoint()},
                                 {"admin_port", *admin_port},
                                 {"writer_id", options.writer_id}};
  if (auto announced = runtime::Announce(announce_fd, announcement.dump()); !announced.ok()) {
    spdlog::warn("{}", announced.error().ToString());
  }
  spdlog::info("splitter ready: clients {} acks {} admin {} k={} m={} quorum={}",
               (*server)->client_endpoint(), (*server)->ack_endpoint(), *admin_port,
               options.shape.k, options.shape.m, options.shape.EffectiveQuorum());
  (*server)->Run(shutdown.fd());
  admin.Stop();
  return 0;
}
