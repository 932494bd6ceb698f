// System test of the local-cluster launcher: real ddsplit-fragstore, -splitter and -assembler
// processes from DDSPLIT_BIN_DIR, on kernel-chosen ports in a temporary directory.
#include "tools/cluster/local_cluster.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace ddsplit::cluster {
namespace {

std::filesystem::path BinDir() {
  const char* dir = std::getenv("DDSPLIT_BIN_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "DDSPLIT_BIN_DIR is not set; run through ctest");
  return dir;
}

ClusterOptions SmallClusterOptions(const testing::TempDir& temp) {
  ClusterOptions options;
  options.dir = temp.path() / "cluster";
  options.bin_dir = BinDir();
  options.sync = "none";
  options.log_level = "warn";
  return options;
}

// The HTTP status of GET /healthz on an admin port, or -1 if nothing answered.
int HealthzStatus(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  auto response = client.Get("/healthz");
  return response ? response->status : -1;
}

// The state letter of /proc/PID/stat: 'R', 'S', 'T' (stopped) ...
char ProcessState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

bool Gone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

nlohmann::json ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::string ErrorText(const Status& status) { return status.ok() ? "" : status.error().ToString(); }

constexpr Role kRoles[] = {Role::kStore, Role::kSplitter, Role::kAssembler, Role::kGateway};

// The HTTP status of GET `path` on the gateway's API port, or -1 if nothing answered.
int GatewayStatus(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  auto response = client.Get(path.c_str());
  return response ? response->status : -1;
}

TEST_CASE(
    "a local cluster announces itself, survives kill/restart and stop/continue, and "
    "leaves no child behind") {
  testing::TempDir temp("local-cluster");
  std::vector<pid_t> pids;
  {
    auto started = LocalCluster::Start(SmallClusterOptions(temp));
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.error().ToString()));
    // Move-only: the processes follow the object.
    LocalCluster cluster = std::move(**started);
    started.value().reset();

    REQUIRE(cluster.Count(Role::kStore) == 6);
    REQUIRE(cluster.Count(Role::kSplitter) == 1);
    REQUIRE(cluster.Count(Role::kAssembler) == 1);
    CHECK(cluster.write_quorum() == 5);

    // cluster.json names every process with what it announced.
    nlohmann::json json = ReadJson(cluster.cluster_json());
    CHECK(json["k"] == 4);
    CHECK(json["m"] == 2);
    CHECK(json["write_quorum"] == 5);
    CHECK(json["log_dir"] == cluster.log_dir().string());
    REQUIRE(json["stores"].size() == 6);
    for (int i = 0; i < 6; ++i) {
      const ProcessInfo& info = cluster.Info(Role::kStore, i);
      const nlohmann::json& entry = json["stores"][static_cast<size_t>(i)];
      CHECK(entry["id"] == i);
      CHECK(info.store_id == i);
      CHECK(entry["ingest"] == info.ingest_endpoint);
      CHECK(entry["read"] == info.read_endpoint);
      CHECK(info.ingest_endpoint.rfind("tcp://127.0.0.1:", 0) == 0);
      CHECK(info.ingest_endpoint != "tcp://127.0.0.1:0");
      CHECK(info.read_endpoint.rfind("tcp://127.0.0.1:", 0) == 0);
      CHECK(entry["admin_port"] == info.admin_port);
      CHECK(entry["admin_url"] == "http://127.0.0.1:" + std::to_string(info.admin_port));
      CHECK(entry["pid"] == info.pid);
      CHECK(entry["data_dir"] == (cluster.dir() / ("store-" + std::to_string(i))).string());
      CHECK(std::filesystem::is_directory(info.data_dir));
    }
    for (const char* field : {"splitters", "assemblers"}) {
      REQUIRE(json[field].size() == 1);
      Role role = std::string(field) == "splitters" ? Role::kSplitter : Role::kAssembler;
      const ProcessInfo& info = cluster.Info(role, 0);
      CHECK(json[field][0]["endpoint"] == info.endpoint);
      CHECK(info.endpoint.rfind("tcp://127.0.0.1:", 0) == 0);
      CHECK(json[field][0]["admin_port"] == info.admin_port);
      CHECK(json[field][0]["pid"] == info.pid);
    }
    CHECK(cluster.Info(Role::kSplitter, 0).ack_endpoint.rfind("tcp://127.0.0.1:", 0) == 0);

    // The gateway: one, in cluster.json with its URL, answering HTTP.
    REQUIRE(cluster.Count(Role::kGateway) == 1);
    const ProcessInfo& gateway = cluster.Info(Role::kGateway, 0);
    CHECK(gateway.name == "gateway-0");
    CHECK(gateway.port > 0);
    CHECK(gateway.url == "http://127.0.0.1:" + std::to_string(gateway.port));
    REQUIRE(json.contains("gateway"));
    CHECK(json["gateway"]["url"] == gateway.url);
    CHECK(json["gateway"]["port"] == gateway.port);
    CHECK(json["gateway"]["admin_port"] == gateway.admin_port);
    CHECK(json["gateway"]["admin_url"] == gateway.admin_url);
    CHECK(json["gateway"]["pid"] == gateway.pid);
    CHECK(GatewayStatus(gateway.port, "/v1/records/no-such-key") == 404);

    // Every admin port answers; every log exists.
    for (Role role : kRoles) {
      for (int i = 0; i < cluster.Count(role); ++i) {
        const ProcessInfo& info = cluster.Info(role, i);
        INFO(info.name);
        CHECK(cluster.Running(role, i));
        CHECK(HealthzStatus(info.admin_port) == 200);
        CHECK(std::filesystem::exists(info.log_path));
        pids.push_back(info.pid);
      }
    }

    // Kill a store, then restart it on the same endpoints.
    const ProcessInfo before = cluster.Info(Role::kStore, 2);
    REQUIRE_MESSAGE(cluster.Kill(Role::kStore, 2).ok(), "kill");
    CHECK_FALSE(cluster.Running(Role::kStore, 2));
    CHECK(Gone(before.pid));
    CHECK(cluster.Info(Role::kStore, 2).last_exit == "signal 9 (SIGKILL)");
    CHECK(cluster.Kill(Role::kStore, 2).error().code() == ErrorCode::kUnavailable);
    Status restarted = cluster.Restart(Role::kStore, 2);
    REQUIRE_MESSAGE(restarted.ok(), ErrorText(restarted));
    const ProcessInfo& after = cluster.Info(Role::kStore, 2);
    CHECK(cluster.Running(Role::kStore, 2));
    CHECK(after.pid != before.pid);
    CHECK(after.ingest_endpoint == before.ingest_endpoint);
    CHECK(after.read_endpoint == before.read_endpoint);
    CHECK(after.admin_port == before.admin_port);
    CHECK(after.data_dir == before.data_dir);
    CHECK(HealthzStatus(after.admin_port) == 200);
    pids.push_back(after.pid);
    CHECK(ReadJson(cluster.cluster_json())["stores"][2]["pid"] == after.pid);
    CHECK(cluster.Restart(Role::kStore, 2).error().code() == ErrorCode::kInvalidArgument);

    // Freeze the splitter and let it go again.
    const pid_t splitter = cluster.Info(Role::kSplitter, 0).pid;
    REQUIRE(cluster.Stop(Role::kSplitter, 0).ok());
    CHECK(ProcessState(splitter) == 'T');
    CHECK(cluster.Running(Role::kSplitter, 0));
    CHECK(cluster.Stop(Role::kSplitter, 0).error().code() == ErrorCode::kInvalidArgument);
    REQUIRE(cluster.Continue(Role::kSplitter, 0).ok());
    CHECK(cluster.Continue(Role::kSplitter, 0).error().code() == ErrorCode::kInvalidArgument);
    CHECK(HealthzStatus(cluster.Info(Role::kSplitter, 0).admin_port) == 200);

    // A graceful stop of the assembler, then a restart.
    Status terminated = cluster.Terminate(Role::kAssembler, 0);
    CHECK_MESSAGE(terminated.ok(), ErrorText(terminated));
    CHECK(cluster.Info(Role::kAssembler, 0).last_exit == "exit status 0");
    CHECK_FALSE(cluster.Running(Role::kAssembler, 0));
    restarted = cluster.Restart(Role::kAssembler, 0);
    REQUIRE_MESSAGE(restarted.ok(), ErrorText(restarted));
    CHECK(HealthzStatus(cluster.Info(Role::kAssembler, 0).admin_port) == 200);
    pids.push_back(cluster.Info(Role::kAssembler, 0).pid);

    // Kill the gateway and restart it on the same port.
    const ProcessInfo gateway_before = cluster.Info(Role::kGateway, 0);
    REQUIRE(cluster.Kill(Role::kGateway, 0).ok());
    CHECK(GatewayStatus(gateway_before.port, "/v1/records/x") == -1);
    restarted = cluster.Restart(Role::kGateway, 0);
    REQUIRE_MESSAGE(restarted.ok(), ErrorText(restarted));
    CHECK(cluster.Info(Role::kGateway, 0).port == gateway_before.port);
    CHECK(cluster.Info(Role::kGateway, 0).pid != gateway_before.pid);
    CHECK(GatewayStatus(gateway_before.port, "/v1/records/x") == 404);
    CHECK(ReadJson(cluster.cluster_json())["gateway"]["pid"] ==
          cluster.Info(Role::kGateway, 0).pid);
    pids.push_back(cluster.Info(Role::kGateway, 0).pid);

    CHECK(cluster.Kill(Role::kStore, 6).error().code() == ErrorCode::kInvalidArgument);
    CHECK(cluster.Stop(Role::kSplitter, -1).error().code() == ErrorCode::kInvalidArgument);
    CHECK_FALSE(cluster.Running(Role::kAssembler, 1));
    // Nothing died behind the launcher's back.
    CHECK(cluster.ReapExited().empty());

    // A stopped process still goes down with the rest.
    REQUIRE(cluster.Stop(Role::kStore, 4).ok());
  }
  for (pid_t pid : pids) {
    INFO("pid " << pid);
    CHECK(Gone(pid));
  }
}

TEST_CASE("StopAll stops every process cleanly and ReapExited reports a child that died") {
  testing::TempDir temp("local-cluster");
  auto started = LocalCluster::Start(SmallClusterOptions(temp));
  REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.error().ToString()));
  LocalCluster& cluster = **started;
  const pid_t store = cluster.Info(Role::kStore, 1).pid;
  // Killed from outside the launcher, as an OOM killer or an operator would.
  REQUIRE(kill(store, SIGKILL) == 0);
  // Wait until the kernel reports the death, without reaping: that is the launcher's job.
  siginfo_t info{};
  REQUIRE(waitid(P_PID, static_cast<id_t>(store), &info, WEXITED | WNOWAIT) == 0);
  std::vector<ExitedProcess> exited = cluster.ReapExited();
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].id == ProcessId{Role::kStore, 1});
  CHECK(exited[0].pid == store);
  CHECK(exited[0].status == "signal 9 (SIGKILL)");
  CHECK_FALSE(cluster.Running(Role::kStore, 1));
  CHECK(cluster.ReapExited().empty());

  Status stopped = cluster.StopAll();
  CHECK_MESSAGE(stopped.ok(), ErrorText(stopped));
  for (Role role : kRoles) {
    for (int i = 0; i < cluster.Count(role); ++i) {
      CHECK_FALSE(cluster.Running(role, i));
      CHECK(Gone(cluster.Info(role, i).pid));
      if (!(role == Role::kStore && i == 1)) {
        CHECK(cluster.Info(role, i).last_exit == "exit status 0");
      }
    }
  }
}

TEST_CASE("a process that exits before announcing fails Start with the end of its log") {
  testing::TempDir temp("local-cluster");
  ClusterOptions options = SmallClusterOptions(temp);
  options.stores = 4;
  options.k = 2;
  options.m = 1;
  options.extra_store_args = {"--no-such-flag"};
  auto started = LocalCluster::Start(options);
  REQUIRE_FALSE(started.ok());
  const Error& error = started.error();
  CHECK(error.code() == ErrorCode::kUnavailable);
  CHECK(error.message().find("before announcing") != std::string::npos);
  CHECK(error.message().find("store-") != std::string::npos);
  CHECK_MESSAGE(error.message().find("--no-such-flag") != std::string::npos, error.message());
}

TEST_CASE("invalid options are rejected before anything starts") {
  testing::TempDir temp("local-cluster");
  ClusterOptions options = SmallClusterOptions(temp);
  SUBCASE("too few stores for k + m") { options.stores = 5; }
  SUBCASE("quorum below k") { options.write_quorum = 3; }
  SUBCASE("unknown sync mode") { options.sync = "sometimes"; }
  SUBCASE("binaries missing") { options.bin_dir = temp.path() / "nowhere"; }
  SUBCASE("no directory") { options.dir.clear(); }
  SUBCASE("a gateway without an assembler") { options.assemblers = 0; }
  auto started = LocalCluster::Start(options);
  REQUIRE_FALSE(started.ok());
  CHECK(started.error().code() == ErrorCode::kInvalidArgument);
  CHECK_FALSE(std::filesystem::exists(temp.path() / "cluster" / "cluster.json"));
}

}  // namespace
}  // namespace ddsplit::cluster

namespace ddsplit::cluster {
namespace {

TEST_CASE("without a gateway, cluster.json has no gateway entry") {
  testing::TempDir temp("local-cluster");
  ClusterOptions options = SmallClusterOptions(temp);
  options.gateway = false;
  auto started = LocalCluster::Start(options);
  REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.error().ToString()));
  CHECK((*started)->Count(Role::kGateway) == 0);
  CHECK_FALSE(ReadJson((*started)->cluster_json()).contains("gateway"));
}

}  // namespace
}  // namespace ddsplit::cluster
