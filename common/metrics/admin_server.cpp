// cpp-httplib is Debian's compiled libcpp-httplib: its CPPHTTPLIB_* settings come from its
// pkg-config flags and must not be redefined here, so the thread pool and keep-alive limits are
// set at run time instead.
#include "common/metrics/admin_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <system_error>
#include <utility>
#include <vector>

#include "common/metrics/metrics.h"

namespace ddsplit::metrics {
namespace {

constexpr size_t kRequestThreads = 2;
constexpr size_t kMaxQueuedConnections = 8;
constexpr const char* kPlainText = "text/plain; charset=utf-8";

// httplib's own ThreadPool queues accepted connections without limit. This one makes the
// accepting thread wait while the queue is full, which leaves further clients in the kernel's
// listen backlog. enqueue() and shutdown() are both called from the accepting thread.
class BoundedThreadPool final : public httplib::TaskQueue {
 public:
  BoundedThreadPool(size_t threads, size_t max_queued) : max_queued_(max_queued) {
    workers_.reserve(threads);
    for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }

  void enqueue(std::function<void()> fn) override {
    {
      std::unique_lock lock(mutex_);
      has_space_.wait(lock, [this] { return jobs_.size() < max_queued_; });
      jobs_.push_back(std::move(fn));
    }
    has_job_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
    }
    has_job_.notify_all();
    for (auto& worker : workers_) worker.join();
    workers_.clear();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        has_job_.wait(lock, [this] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;  // shut down and drained
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      has_space_.notify_one();
      job();
    }
  }

  const size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable has_job_;
  std::condition_variable has_space_;
  std::deque<std::function<void()>> jobs_;
  bool shutdown_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

AdminServer::AdminServer(AdminOptions options, ProcessMetrics& metrics, ReadinessCheck ready)
    : options_(std::move(options)), metrics_(metrics), ready_(std::move(ready)) {}

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::CheckReady() {
  if (!ready_) return OkStatus();
  std::lock_guard lock(ready_mutex_);
  return ready_();
}

Result<int> AdminServer::Start() {
  if (server_) return Error(ErrorCode::kInternal, "admin server already started");
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] {
    return new BoundedThreadPool(kRequestThreads, kMaxQueuedConnections);
  };
  server->set_keep_alive_max_count(1);
  // httplib's default also sets SO_REUSEPORT, which lets a second process bind the same admin
  // port and silently take half the scrapes. Only SO_REUSEADDR is wanted (restart over TIME_WAIT).
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics_.Serialize(), std::string(kTextExpositionContentType));
  });
  server->Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok", kPlainText);
  });
  server->Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    const Status status = CheckReady();
    if (status.ok()) {
      response.set_content("ready", kPlainText);
    } else {
      response.status = 503;
      response.set_content(status.error().ToString(), kPlainText);
    }
  });

  int port = options_.port;
  errno = 0;
  const bool bound = port == 0 ? (port = server->bind_to_any_port(options_.host)) > 0
                               : server->bind_to_port(options_.host, port);
  if (!bound) {
    std::string message =
        "cannot bind admin port " + options_.host + ":" + std::to_string(options_.port);
    if (errno != 0) message += ": " + std::generic_category().message(errno);
    return Error(ErrorCode::kUnavailable, std::move(message));
  }

  server_ = std::move(server);
  listen_returned_.store(false, std::memory_order_relaxed);
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    listen_returned_.store(true, std::memory_order_release);
  });
  // httplib's stop() does nothing until listen_after_bind() has marked the server running, so
  // without this wait a Stop() right after Start() would leave the thread accepting forever.
  // listen_after_bind() sets the flag before anything that can block, so the wait is short.
  while (!server_->is_running() && !listen_returned_.load(std::memory_order_acquire)) {
    std::this_thread::yield();
  }
  return port;
}

void AdminServer::Stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace ddsplit::metrics
