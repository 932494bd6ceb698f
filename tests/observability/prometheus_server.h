// PrometheusServer: Debian's real `prometheus` binary run for a test on 127.0.0.1 with a
// kernel-chosen port (found through /proc: the listening socket the process holds), its TSDB in
// a directory the caller owns, and queried over its HTTP API. The process is stopped by its pid
// (SIGTERM, then SIGKILL after a grace period) when the object is destroyed, also when a test
// fails; it also dies with the thread that started it (PR_SET_PDEATHSIG). Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/base/result.h"

namespace ddsplit::testing {

class PrometheusServer {
 public:
  // Writes `config_yaml` to DIR/prometheus.yml (and `rules_yaml`, if not empty, to
  // DIR/rules.yml, which the config may name), starts prometheus with its storage under
  // DIR/data and its log in DIR/prometheus.log, and waits up to `timeout` for /-/ready.
  // kUnavailable if the binary is missing or the server does not come up (with the log's tail).
  static Result<std::unique_ptr<PrometheusServer>> Start(
      const std::filesystem::path& dir, const std::string& config_yaml,
      const std::string& rules_yaml = {},
      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~PrometheusServer();
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  // GET /api/v1/PATH?QUERY_STRING; the parsed JSON body whatever the status (Prometheus answers
  // errors as JSON too). kUnavailable when there is no answer or the body is not JSON.
  Result<nlohmann::json> Api(const std::string& path_and_query);
  // An instant query at the server's current time; the "data" object of a successful answer,
  // else an error with Prometheus's message.
  Result<nlohmann::json> Query(const std::string& promql);
  // The last lines of the server's log.
  std::string LogTail() const;

 private:
  PrometheusServer(std::filesystem::path dir, pid_t pid) : dir_(std::move(dir)), pid_(pid) {}
  void Stop();

  std::filesystem::path dir_;
  pid_t pid_ = 0;
  int port_ = 0;
};

// Percent-encodes `text` for a URL query value.
std::string UrlEncode(const std::string& text);

}  // namespace ddsplit::testing
