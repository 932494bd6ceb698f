// The admin HTTP port every DDSplit process serves: GET /metrics (Prometheus text format),
// GET /healthz (200 while the process runs), GET /readyz (200 when the readiness check passes,
// 503 with the reason otherwise). Any other path answers 404. Runs on its own thread; start and
// stop from one thread.
//
// Footprint: one accepting thread and two request threads. Each connection serves one request
// and is closed, so idle keep-alive connections cannot starve the health probes; when both
// request threads are busy a few accepted connections wait, then the accepting thread stops
// accepting and the kernel's listen backlog (5, fixed by httplib) holds the next ones; beyond
// that, clients retry their connect. Nothing here grows without bound.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
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

  // `metrics` must outlive the server. `ready` is called on an admin thread, never concurrently
  // with itself; it should answer quickly (probes time out) and must not throw. An empty `ready`
  // means always ready.
  AdminServer(AdminOptions options, ProcessMetrics& metrics, ReadinessCheck ready);
  ~AdminServer();  // stops the server
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and starts serving on a background thread. Returns the bound port. Errors:
  // kUnavailable when the address cannot be bound (port taken, bad host), kInternal when already
  // started. The socket listens when Start() returns, so a client may connect at once.
  Result<int> Start();
  // Stops accepting, finishes requests in progress and joins the threads. Idempotent; a stopped
  // server may be started again.
  void Stop();

 private:
  Status CheckReady();

  AdminOptions options_;
  ProcessMetrics& metrics_;
  ReadinessCheck ready_;
  std::mutex ready_mutex_;  // serialises calls of ready_
  std::unique_ptr<httplib::Server> server_;
  std::atomic<bool> listen_returned_{false};
  std::thread thread_;
};

}  // namespace ddsplit::metrics
