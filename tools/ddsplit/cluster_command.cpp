#include "tools/ddsplit/cluster_command.h"

#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstring>  // sigabbrev_np
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "tools/cluster/local_cluster.h"

namespace ddsplit::cli {
namespace {

struct UpOptions {
  cluster::ClusterOptions cluster;
  int64_t start_timeout_ms = 30000;
};

// Prints `message` as "ddsplit: cluster up: FIRST LINE", any further lines (a log tail) below
// it, and leaves through CLI11 with exit status 1.
[[noreturn]] void Fail(std::string_view message) {
  size_t newline = message.find('\n');
  std::fprintf(stderr, "ddsplit: cluster up: %.*s\n",
               static_cast<int>(message.substr(0, newline).size()), message.data());
  if (newline != std::string_view::npos) {
    std::string_view rest = message.substr(newline + 1);
    std::fprintf(stderr, "%.*s\n", static_cast<int>(rest.size()), rest.data());
  }
  throw CLI::RuntimeError(1);
}

void NoOp(int /*signal*/) {}

// Blocks the signals `cluster up` waits for in this thread, for its lifetime. SIGCHLD gets a
// no-op handler so the kernel queues it (the default action may discard it). On destruction,
// drops whatever is still pending (a second Ctrl-C during the shutdown must not kill the
// process once unblocked) and restores the previous mask and SIGCHLD action.
class BlockedSignals {
 public:
  BlockedSignals() {
    sigemptyset(&set_);
    for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&set_, signal);
    pthread_sigmask(SIG_BLOCK, &set_, &previous_mask_);
    struct sigaction action {};
    action.sa_handler = &NoOp;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &action, &previous_chld_);
  }
  ~BlockedSignals() {
    const timespec zero{};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    sigaction(SIGCHLD, &previous_chld_, nullptr);
    pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;

  // Waits for the next of the blocked signals; returns its number.
  int Wait() const {
    for (;;) {
      int signal = sigwaitinfo(&set_, nullptr);
      if (signal > 0) return signal;
      if (errno != EINTR) {
        Fail("sigwaitinfo: " + std::error_code(errno, std::generic_category()).message());
      }
    }
  }

 private:
  sigset_t set_;
  sigset_t previous_mask_;
  struct sigaction previous_chld_ {};
};

const char* Plural(int count) { return count == 1 ? "" : "s"; }

void PrintSummary(const cluster::LocalCluster& cluster) {
  using cluster::Role;
  const cluster::ClusterOptions& options = cluster.options();
  std::printf(
      "ddsplit: cluster up in %s: %d store%s, %d splitter%s, %d assembler%s%s "
      "(k=%d m=%d write quorum %d, sync %s)\n",
      cluster.dir().c_str(), options.stores, Plural(options.stores), options.splitters,
      Plural(options.splitters), options.assemblers, Plural(options.assemblers),
      cluster.Count(Role::kGateway) > 0 ? ", 1 gateway" : "", options.k, options.m,
      cluster.write_quorum(), options.sync.c_str());
  for (int i = 0; i < cluster.Count(Role::kGateway); ++i) {
    const cluster::ProcessInfo& info = cluster.Info(Role::kGateway, i);
    std::printf("  %-12s %-24s admin %-24s pid %d\n", info.name.c_str(), info.url.c_str(),
                info.admin_url.c_str(), static_cast<int>(info.pid));
  }
  for (Role role : {Role::kSplitter, Role::kAssembler}) {
    for (int i = 0; i < cluster.Count(role); ++i) {
      const cluster::ProcessInfo& info = cluster.Info(role, i);
      std::printf("  %-12s %-24s admin %-24s pid %d\n", info.name.c_str(), info.endpoint.c_str(),
                  info.admin_url.c_str(), static_cast<int>(info.pid));
    }
  }
  for (int i = 0; i < cluster.Count(Role::kStore); ++i) {
    const cluster::ProcessInfo& info = cluster.Info(Role::kStore, i);
    std::printf("  %-12s ingest %s read %s admin %s pid %d\n", info.name.c_str(),
                info.ingest_endpoint.c_str(), info.read_endpoint.c_str(), info.admin_url.c_str(),
                static_cast<int>(info.pid));
  }
  std::printf("cluster file: %s\nlogs:         %s\n", cluster.cluster_json().c_str(),
              cluster.log_dir().c_str());
  std::printf("to use it from another shell:\n  export DDSPLIT_CLUSTER=%s\n",
              cluster.cluster_json().c_str());
  if (cluster.Count(Role::kGateway) > 0) {
    const std::string& url = cluster.Info(Role::kGateway, 0).url;
    std::printf(
        "HTTP API at %s; try:\n"
        "  curl -sS -X PUT -H 'Content-Type: text/plain' -H 'X-DDSplit-Meta-Owner: me' "
        "--data-binary 'hello, world' %s/v1/records/greetings/hello.txt\n"
        "  curl -sS -i %s/v1/records/greetings/hello.txt\n"
        "  curl -sS -H 'Range: bytes=0-4' %s/v1/records/greetings/hello.txt\n"
        "  curl -sS '%s/v1/records?prefix=greetings/'\n",
        url.c_str(), url.c_str(), url.c_str(), url.c_str(), url.c_str());
  }
  std::printf("running; Ctrl-C or SIGTERM stops the cluster\n");
  std::fflush(stdout);
}

void RunUp(UpOptions& up) {
  cluster::ClusterOptions options = up.cluster;
  options.start_timeout = std::chrono::milliseconds(up.start_timeout_ms);
  if (options.bin_dir.empty()) {
    auto exe_dir = cluster::ExecutableDir();
    if (!exe_dir.ok()) Fail(exe_dir.error().ToString());
    options.bin_dir = std::move(*exe_dir);
  }

  // Blocked before the children exist, so neither a Ctrl-C during start-up nor an early child
  // death is lost; children start with an empty mask.
  BlockedSignals signals;
  auto started = cluster::LocalCluster::Start(std::move(options));
  if (!started.ok()) Fail(started.error().ToString());
  cluster::LocalCluster& cluster = **started;
  PrintSummary(cluster);

  for (;;) {
    int signal = signals.Wait();
    if (signal != SIGCHLD) {
      std::fprintf(stderr, "ddsplit: SIG%s received, stopping the cluster\n", sigabbrev_np(signal));
      break;
    }
    for (const cluster::ExitedProcess& exited : cluster.ReapExited()) {
      const cluster::ProcessInfo& info = cluster.Info(exited.id.role, exited.id.index);
      std::fprintf(stderr, "ddsplit: %s (pid %d) exited unexpectedly with %s; see %s\n",
                   info.name.c_str(), static_cast<int>(exited.pid), exited.status.c_str(),
                   info.log_path.c_str());
    }
  }
  Status stopped = cluster.StopAll();
  if (stopped.ok()) {
    std::fprintf(stderr, "ddsplit: cluster stopped\n");
  } else {
    std::fprintf(stderr, "ddsplit: cluster stopped, but: %s\n", stopped.error().ToString().c_str());
  }
}

}  // namespace

void AddClusterCommands(CLI::App& app) {
  CLI::App* cluster = app.add_subcommand("cluster", "Run a local DDSplit cluster");
  cluster->require_subcommand(1);
  CLI::App* up = cluster->add_subcommand(
      "up",
      "Start stores, splitters, assemblers and the HTTP gateway on 127.0.0.1, write "
      "DIR/cluster.json and run in the foreground until Ctrl-C or SIGTERM");
  // Owned by the callback, which CLI11 keeps as long as the app.
  auto options = std::make_shared<UpOptions>();
  cluster::ClusterOptions& c = options->cluster;
  up->add_option("--dir", c.dir, "Directory for data, logs and cluster.json")->required();
  up->add_option("--stores", c.stores, "Number of fragment stores")->capture_default_str();
  up->add_option("--k", c.k, "Data fragments per record")->capture_default_str();
  up->add_option("--m", c.m, "Parity fragments per record")->capture_default_str();
  up->add_option("--write-quorum", c.write_quorum, "Durable fragments per write (0: k+1)")
      ->capture_default_str();
  up->add_option("--sync", c.sync, "Stores' WAL sync per group commit")
      ->check(CLI::IsMember({"always", "none"}))
      ->capture_default_str();
  up->add_option("--bin-dir", c.bin_dir,
                 "Where the ddsplit-* service binaries are (default: this program's directory)");
  up->add_option("--splitters", c.splitters, "Number of splitters")->capture_default_str();
  up->add_option("--assemblers", c.assemblers, "Number of assemblers")->capture_default_str();
  up->add_flag("--gateway,!--no-gateway", c.gateway,
               "Start the HTTP gateway (ddsplit-gateway) in front of them (default: yes)");
  up->add_option("--log-level", c.log_level, "Services' log level: trace|debug|info|warn|error")
      ->capture_default_str();
  up->add_option("--start-timeout-ms", options->start_timeout_ms,
                 "Give up if the cluster is not up within this time")
      ->capture_default_str();
  up->callback([options] { RunUp(*options); });
}

}  // namespace ddsplit::cli
