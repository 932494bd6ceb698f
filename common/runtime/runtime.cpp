#include "common/runtime/runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace ddsplit::runtime {
namespace {
ShutdownSignal* g_instance = nullptr;
}

ShutdownSignal& ShutdownSignal::Install() {
  static ShutdownSignal* instance = [] {
    auto* created = new ShutdownSignal();
    g_instance = created;
    struct sigaction action {};
    action.sa_handler = &ShutdownSignal::Handle;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    signal(SIGPIPE, SIG_IGN);
    return created;
  }();
  return *instance;
}

ShutdownSignal::ShutdownSignal() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "cannot create the shutdown pipe: %s\n", std::strerror(errno));
    std::abort();
  }
  read_fd_ = fds[0];
  write_fd_ = fds[1];
}

void ShutdownSignal::Handle(int /*signal*/) {
  if (g_instance == nullptr) return;
  int saved_errno = errno;
  g_instance->requested_.store(true, std::memory_order_relaxed);
  char byte = 1;
  (void)!write(g_instance->write_fd_, &byte, 1);
  errno = saved_errno;
}

void ShutdownSignal::Request() {
  requested_.store(true, std::memory_order_relaxed);
  char byte = 1;
  (void)!write(write_fd_, &byte, 1);
}

void SetUpLogging(std::string_view service, std::string_view level) {
  auto logger = spdlog::stderr_logger_mt(std::string(service));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n[%P]: %v");
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

Status Announce(int fd, std::string_view json_line) {
  if (fd < 0) return OkStatus();
  std::string line(json_line);
  line += '\n';
  size_t written = 0;
  while (written < line.size()) {
    ssize_t n = write(fd, line.data() + written, line.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return Error(ErrorCode::kInternal, std::string("announce failed: ") + std::strerror(errno));
    }
    written += static_cast<size_t>(n);
  }
  close(fd);
  return OkStatus();
}

}  // namespace ddsplit::runtime
