// The admin HTTP port every DDSplit process serves: GET /metrics (Prometheus text format),
// GET /healthz (200 while the process runs), GET /readyz (200 when the readiness check passes,
// 503 with the reason otherwise). Runs on its own thread; start and stop from one thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/base/result.h"

namespace httplib {
class Server;
}

namespace ddsplit::metrics {

class ProcessMetrics;

struct AdminOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port; Start() returns the one bound
};

class AdminServer {
 public:
  // Returns OkStatus() when ready to take traffic, or an Error saying why not.
  using ReadinessCheck = std::function<Status()>;

  // `metrics` must outlive the server. `ready` is called on the admin thread.
  AdminServer(AdminOptions options, ProcessMetrics& metrics, ReadinessCheck ready);
  ~AdminServer();  // stops the server
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and starts serving on a background thread. Returns the bound port.
  Result<int> Start();
  void Stop();

 private:
  AdminOptions options_;
  ProcessMetrics& metrics_;
  ReadinessCheck ready_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace ddsplit::metrics
