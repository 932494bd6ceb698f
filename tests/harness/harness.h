// harness: what system tests need around a real local cluster — a cluster in a temporary
// directory with a connected client, random payloads, metric scraping over real HTTP, and
// byte flips in a store's files. Every process is stopped when the TestCluster is destroyed,
// also when a test fails (children also die with the test process). Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "client/client.h"
#include "tests/support/file_damage.h"  // FlipByteWhere
#include "tests/support/random_bytes.h"
#include "tests/support/temp_dir.h"
#include "tools/cluster/local_cluster.h"

namespace ddsplit::testing {

using cluster::Role;

std::span<const std::byte> AsBytes(const std::string& s);
std::string AsString(std::span<const std::byte> bytes);

class TestCluster {
 public:
  // Starts a cluster in a fresh temporary directory; throws std::runtime_error on failure.
  explicit TestCluster(cluster::ClusterOptions options = {});
  ~TestCluster();

  cluster::LocalCluster& cluster() { return *cluster_; }
  // A client connected to every splitter and assembler, created on first use.
  client::Client& client();
  std::unique_ptr<client::Client> NewClient(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // GET /metrics of a process over HTTP.
  Result<std::string> Metrics(Role role, int index);
  // GET `path` of a process's admin port; returns the status code.
  Result<int> AdminStatus(Role role, int index, const std::string& path);

  // Damages a store's data on disk: stops store `index` cleanly (so its data reaches its files),
  // flips one bit of the byte at `offset` within the first match of `needle` in its files
  // (FlipByteWhere, tests/support/file_damage.h), and restarts it. Errors: as FlipByteWhere, or the stop/restart's.
  Status FlipStoredByte(int index, std::span<const std::byte> needle, size_t offset);

  // Waits until every splitter reports a finished handshake with every store
  // (ddsplit_splitter_stores_connected). After a store restarts, the assembler may reach it
  // before the splitters have reconnected (their backoff reaches 2 s), and a splitter drops the
  // fragments of a store it is not connected to: writes in that window lack one fragment until
  // a repair. Tests that expect new writes to be fully redundant wait for this first.
  bool WaitForSplittersConnected(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  // Index (in the cluster's store list) of the store holding fragment `fragment` of `key`.
  int StoreHoldingFragment(const std::string& key, int fragment);

  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::unique_ptr<cluster::LocalCluster> cluster_;
  std::unique_ptr<client::Client> client_;
};

// The value of the sample `series` (a metric name with its exact label set as printed, e.g.
// `ddsplit_fragstore_rejected_messages_total{reason="malformed"}`) in a Prometheus text
// exposition; nullopt if absent.
std::optional<double> MetricValue(const std::string& exposition, const std::string& series);

}  // namespace ddsplit::testing

namespace ddsplit::testing {

// Re-checks `condition` until it holds or `timeout` passes; returns whether it held. Waits a
// little between checks (the conditions are network round trips that settle on their own).
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// Waits until the assembler answers Stat for `key` with no store Unreachable (it has
// reconnected to every store after restarts).
bool WaitForAllStoresReachable(client::Client& client, const std::string& key,
                               std::chrono::milliseconds timeout = std::chrono::seconds(15));

// Waits until Stat reports every fragment of every key healthy on its store. A write is
// acknowledged at its write quorum (k + 1 by default), so the last fragments may still be in
// flight; only a fully redundant record survives the loss of any m stores.
bool WaitForFullRedundancy(client::Client& client, const std::vector<std::string>& keys,
                           std::chrono::milliseconds timeout = std::chrono::seconds(15));

}  // namespace ddsplit::testing
