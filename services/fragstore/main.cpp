// ddsplit-fragstore: one fragment store. Wires options, RocksDB, sockets and the admin port.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "common/metrics/admin_server.h"
#include "common/metrics/metrics.h"
#include "common/runtime/runtime.h"
#include "common/transport/transport.h"
#include "services/fragstore/fragment_store.h"
#include "services/fragstore/fragstore_probe.h"
#include "services/fragstore/fragstore_server.h"
#include "services/fragstore/scrubber.h"

namespace {

// "auto" takes the ordinal at the end of the host name, as a StatefulSet pod "fragstore-3" has.
std::optional<uint32_t> ResolveStoreId(const std::string& text) {
  std::string source = text;
  if (text == "auto") {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) return std::nullopt;
    source = host;
    auto dash = source.rfind('-');
    if (dash == std::string::npos) return std::nullopt;
    source = source.substr(dash + 1);
  }
  if (source.empty() || source.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return static_cast<uint32_t>(std::stoul(source));
}

// The store holds a descriptor per segment file (256 MiB each: 4,096 for 1 TiB) besides
// RocksDB's: take the hard limit rather than the usual soft 1,024.
void RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) spdlog::warn("cannot raise the descriptor limit");
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ddsplit;
  CLI::App app{"ddsplit-fragstore: keeps erasure-coded fragments (segment files + RocksDB) and serves them"};
  std::string store_id_text;
  fragstore::StoreOptions store_options;
  fragstore::ServerOptions server_options;
  metrics::AdminOptions admin_options;
  std::string sync = "always";
  std::string log_level = "info";
  int announce_fd = -1;
  uint64_t block_cache_mb = 64;
  uint64_t memtable_mb = 128;
  uint64_t max_record_bytes = 64ull << 20;
  bool check_config = false;
  fragstore::ScrubOptions scrub_options;
  int64_t scrub_pause_s = 60;

  app.add_option("--store-id", store_id_text, "Stable store id, or 'auto' for the host name's ordinal")
      ->envname("DDSPLIT_STORE_ID")->required();
  app.add_option("--data-dir", store_options.data_dir, "RocksDB directory")
      ->envname("DDSPLIT_DATA_DIR")->required();
  app.add_option("--ingest-bind", server_options.ingest_bind, "PULL endpoint for fragments")
      ->envname("DDSPLIT_INGEST_BIND")->capture_default_str();
  app.add_option("--read-bind", server_options.read_bind, "ROUTER endpoint for reads")
      ->envname("DDSPLIT_READ_BIND")->capture_default_str();
  app.add_option("--admin-host", admin_options.host, "Admin HTTP host")
      ->envname("DDSPLIT_ADMIN_HOST")->capture_default_str();
  app.add_option("--admin-port", admin_options.port, "Admin HTTP port (0: any)")
      ->envname("DDSPLIT_ADMIN_PORT")->capture_default_str();
  app.add_option("--sync", sync, "WAL sync per group commit: always or none")
      ->envname("DDSPLIT_SYNC")->check(CLI::IsMember({"always", "none"}))->capture_default_str();
  app.add_option("--block-cache-mb", block_cache_mb, "RocksDB block cache size")
      ->envname("DDSPLIT_BLOCK_CACHE_MB")->capture_default_str();
  app.add_option("--memtable-mb", memtable_mb, "Memory for all RocksDB memtables")
      ->envname("DDSPLIT_MEMTABLE_MB")->capture_default_str();
  app.add_option("--max-record-bytes", max_record_bytes, "Largest record accepted")
      ->envname("DDSPLIT_MAX_RECORD_BYTES")->capture_default_str();
  app.add_option("--scrub-bytes-per-second", scrub_options.bytes_per_second,
                 "Verify stored fragments' checksums in the background at this rate (0: off)")
      ->envname("DDSPLIT_SCRUB_BYTES_PER_SECOND")->capture_default_str();
  app.add_option("--scrub-pause-seconds", scrub_pause_s, "Pause between two scrub passes")
      ->envname("DDSPLIT_SCRUB_PAUSE_SECONDS")->capture_default_str();
  app.add_option("--announce-fd", announce_fd, "Write a JSON line with the bound endpoints to this fd when ready");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->envname("DDSPLIT_LOG_LEVEL")->capture_default_str();
  app.add_flag("--check-config", check_config, "Validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);

  auto store_id = ResolveStoreId(store_id_text);
  if (!store_id) {
    std::fprintf(stderr, "ddsplit-fragstore: --store-id must be a number or 'auto' on a host named NAME-N\n");
    return 2;
  }
  server_options.store_id = StoreId(*store_id);
  store_options.sync = sync == "always";
  store_options.block_cache_bytes = block_cache_mb << 20;
  store_options.memtable_bytes = memtable_mb << 20;
  server_options.max_fragment_bytes = max_record_bytes + 64;
  if (check_config) {
    // One JSON line on stdout: what this configuration would serve (deployment checks compare it
    // with the Kubernetes manifests). Nothing is opened or bound.
    auto ingest_port = transport::CheckBindPort("ingest-bind", server_options.ingest_bind);
    auto read_port = transport::CheckBindPort("read-bind", server_options.read_bind);
    for (const auto* port : {&ingest_port, &read_port}) {
      if (!port->ok()) {
        std::fprintf(stderr, "ddsplit-fragstore: %s\n", port->error().message().c_str());
        return 2;
      }
    }
    if (admin_options.port < 0 || admin_options.port > 65535 || admin_options.host.empty()) {
      std::fprintf(stderr,
                   "ddsplit-fragstore: --admin-host must be set and --admin-port be 0..65535\n");
      return 2;
    }
    auto port_json = [](int port) {
      return port < 0 ? nlohmann::json(nullptr) : nlohmann::json(port);
    };
    nlohmann::json config = {
        {"service", "fragstore"},
        {"admin_port", admin_options.port},
        {"admin_paths", {"/metrics", "/healthz", "/readyz"}},
        {"ports", {{"ingest", port_json(*ingest_port)}, {"read", port_json(*read_port)}}},
        {"store_id", *store_id},
        {"data_dir", store_options.data_dir},
        {"sync", sync}};
    std::printf("%s\n", config.dump().c_str());
    return 0;
  }

  runtime::SetUpLogging("fragstore", log_level);
  auto& shutdown = runtime::ShutdownSignal::Install();
  metrics::ProcessMetrics process_metrics("fragstore");
  fragstore::FragstoreProbe probe(process_metrics);

  RaiseDescriptorLimit();
  auto store = fragstore::FragmentStore::Open(store_options);
  if (!store.ok()) {
    spdlog::critical("{}", store.error().ToString());
    return 1;
  }
  zmq::context_t context(2);
  fragstore::FragstoreServer server(server_options, **store, context, probe);
  if (auto bound = server.Bind(); !bound.ok()) {
    spdlog::critical("{}", bound.error().ToString());
    return 1;
  }
  metrics::AdminServer admin(admin_options, process_metrics, [&shutdown]() -> Status {
    if (shutdown.requested()) return Error(ErrorCode::kUnavailable, "draining");
    return OkStatus();
  });
  auto admin_port = admin.Start();
  if (!admin_port.ok()) {
    spdlog::critical("{}", admin_port.error().ToString());
    return 1;
  }
  nlohmann::json announcement = {{"service", "fragstore"},
                                 {"pid", getpid()},
                                 {"store_id", *store_id},
                                 {"ingest", server.ingest_endpoint()},
                                 {"read", server.read_endpoint()},
                                 {"admin_port", *admin_port},
                                 {"data_dir", store_options.data_dir}};
  if (auto announced = runtime::Announce(announce_fd, announcement.dump()); !announced.ok()) {
    spdlog::warn("{}", announced.error().ToString());
  }
  spdlog::info("store {} ready: ingest {} read {} admin {} sync={}", *store_id,
               server.ingest_endpoint(), server.read_endpoint(), *admin_port, sync);

  scrub_options.pass_pause = std::chrono::seconds(std::max<int64_t>(0, scrub_pause_s));
  fragstore::Scrubber scrubber(**store, probe, scrub_options);
  scrubber.Start();
  server.Run(shutdown.fd());

  spdlog::info("draining done, flushing");
  if (auto flushed = (*store)->Flush(); !flushed.ok()) spdlog::warn("{}", flushed.error().ToString());
  admin.Stop();
  return 0;
}
