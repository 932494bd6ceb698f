// runtime: process scaffolding every service's main uses — shutdown signals as a pollable file
// descriptor, logging set-up, and the one-line start-up announcement a launcher waits for.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace ddsplit::runtime {

// SIGINT and SIGTERM make fd() readable and requested() true; the first signal starts a
// graceful drain, the process decides when to exit. Install once, from main, before threads.
class ShutdownSignal {
 public:
  static ShutdownSignal& Install();
  int fd() const { return read_fd_; }
  bool requested() const { return requested_.load(std::memory_order_relaxed); }
  // Programmatic shutdown (tests, fatal conditions).
  void Request();

 private:
  ShutdownSignal();
  static void Handle(int signal);
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::atomic<bool> requested_{false};
};

// Logs go to stderr as "time level service: message"; level is trace|debug|info|warn|error.
void SetUpLogging(std::string_view service, std::string_view level);

// Writes `json_line` plus a newline to file descriptor `fd` and closes it, so a launcher that
// waits for readiness on a pipe learns the endpoints actually bound. Does nothing if fd < 0.
Status Announce(int fd, std::string_view json_line);

}  // namespace ddsplit::runtime
