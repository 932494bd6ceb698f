#include "tests/harness/harness.h"

#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ddsplit::testing {

std::span<const std::byte> AsBytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string AsString(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

TestCluster::TestCluster(cluster::ClusterOptions options) : dir_("ddsplit-system") {
  options.dir = dir_.path() / "cluster";
  if (options.log_level == "info") options.log_level = "warn";
  auto started = cluster::LocalCluster::Start(std::move(options));
  if (!started.ok()) throw std::runtime_error("cluster did not start: " + started.error().ToString());
  cluster_ = std::move(*started);
}

TestCluster::~TestCluster() {
  client_.reset();
  cluster_.reset();
}

std::unique_ptr<client::Client> TestCluster::NewClient(std::chrono::milliseconds timeout) {
  auto options = client::OptionsFromClusterFile(cluster_->cluster_json().string());
  if (!options.ok()) throw std::runtime_error(options.error().ToString());
  options->timeout = timeout;
  auto connected = client::Client::Connect(std::move(*options));
  if (!connected.ok()) throw std::runtime_error(connected.error().ToString());
  return std::move(*connected);
}

client::Client& TestCluster::client() {
  if (!client_) client_ = NewClient();
  return *client_;
}

Result<std::string> TestCluster::Metrics(Role role, int index) {
  httplib::Client http("127.0.0.1", cluster_->Info(role, index).admin_port);
  http.set_connection_timeout(5);
  http.set_read_timeout(10);
  auto response = http.Get("/metrics");
  if (!response) return Error(ErrorCode::kUnavailable, "admin port did not answer");
  if (response->status != 200) return Error(ErrorCode::kInternal, "/metrics answered " + std::to_string(response->status));
  return response->body;
}

bool TestCluster::WaitForSplittersConnected(std::chrono::milliseconds timeout) {
  const double stores = cluster_->Count(Role::kStore);
  return WaitFor(
      [&] {
        for (int i = 0; i < cluster_->Count(Role::kSplitter); ++i) {
          auto metrics = Metrics(Role::kSplitter, i);
          if (!metrics.ok() || MetricValue(*metrics, "ddsplit_splitter_stores_connected") != stores) return false;
        }
        return true;
      },
      timeout);
}

Result<int> TestCluster::AdminStatus(Role role, int index, const std::string& path) {
  httplib::Client http("127.0.0.1", cluster_->Info(role, index).admin_port);
  http.set_connection_timeout(5);
  auto response = http.Get(path);
  if (!response) return Error(ErrorCode::kUnavailable, "admin port did not answer");
  return response->status;
}

Status TestCluster::FlipStoredByte(int index, std::span<const std::byte> needle, size_t offset) {
  DDSPLIT_RETURN_IF_ERROR(cluster_->Terminate(Role::kStore, index));
  auto changed = FlipByteWhere(cluster_->Info(Role::kStore, index).data_dir, needle, offset);
  if (!changed.ok()) return std::move(changed).error();
  return cluster_->Restart(Role::kStore, index);
}

int TestCluster::StoreHoldingFragment(const std::string& key, int fragment) {
  auto stat = client().Stat(key);
  if (!stat.ok()) throw std::runtime_error("stat failed: " + stat.error().ToString());
  uint32_t store_id = stat->info.placement.at(static_cast<size_t>(fragment));
  for (int i = 0; i < cluster_->Count(Role::kStore); ++i) {
    if (cluster_->Info(Role::kStore, i).store_id == static_cast<int>(store_id)) return i;
  }
  throw std::runtime_error("no store with id " + std::to_string(store_id));
}

std::optional<double> MetricValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}



}  // namespace ddsplit::testing

namespace ddsplit::testing {

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(5);
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
}

bool WaitForAllStoresReachable(client::Client& client, const std::string& key,
                               std::chrono::milliseconds timeout) {
  return WaitFor(
      [&] {
        auto stat = client.Stat(key);
        if (!stat.ok()) return false;
        return std::none_of(stat->fragments.begin(), stat->fragments.end(), [](const auto& f) {
          return f.state == client::FragmentState::kUnreachable;
        });
      },
      timeout);
}

bool WaitForFullRedundancy(client::Client& client, const std::vector<std::string>& keys,
                           std::chrono::milliseconds timeout) {
  std::string lacking;  // the last key found lacking, with its fragments' states
  bool redundant = WaitFor(
      [&] {
        return std::all_of(keys.begin(), keys.end(), [&](const std::string& key) {
          auto stat = client.Stat(key);
          bool ok = stat.ok() && !stat->fragments.empty() &&
                    std::all_of(stat->fragments.begin(), stat->fragments.end(), [](const auto& f) {
                      return f.state == client::FragmentState::kOk;
                    });
          if (!ok) {
            lacking = key + ":";
            if (!stat.ok()) lacking += " " + stat.error().ToString();
            for (const auto& f : stat.ok() ? stat->fragments : decltype(stat->fragments){}) {
              lacking += " " + std::string(client::FragmentStateName(f.state));
            }
          }
          return ok;
        });
      },
      timeout);
  // Tests report only the boolean; say which record lacked what, for the failure's log.
  if (!redundant) std::fprintf(stderr, "not fully redundant: %s\n", lacking.c_str());
  return redundant;
}

}  // namespace ddsplit::testing
