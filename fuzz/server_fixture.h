// Helpers for fuzz targets that run a real service event loop in-process: the service runs on
// its own thread over inproc:// sockets of one ZeroMQ context, the target plays its peers
// (clients, stores, splitters) from the fuzzer's thread. The service is started on the first
// input and stopped by an atexit handler (signal its stop fd, join the thread), so a run ends
// cleanly and LeakSanitizer sees only real leaks. Not thread-safe: use from the fuzzer thread.
#pragma once

#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "common/transport/transport.h"
#include "fuzz/fuzz_input.h"

namespace ddsplit::fuzz {

// A service thread with a stop pipe.
class ServiceThread {
 public:
  ServiceThread() { DDSPLIT_FUZZ_ASSERT(pipe(fds_) == 0); }
  // `run` receives the stop fd and returns when it becomes readable.
  void Start(std::function<void(int)> run) {
    thread_ = std::thread([this, run = std::move(run)] { run(fds_[0]); });
  }
  void Stop() {
    if (!thread_.joinable()) return;
    char c = 1;
    DDSPLIT_FUZZ_ASSERT(write(fds_[1], &c, 1) == 1);
    thread_.join();
  }
  ~ServiceThread() {
    Stop();
    close(fds_[0]);
    close(fds_[1]);
  }

 private:
  int fds_[2] = {-1, -1};
  std::thread thread_;
};

// The fixture of a target, created on the first input and destroyed at exit (which stops its
// service thread before the process's statics go away).
template <typename Fixture>
Fixture& FixtureOnce() {
  static Fixture* fixture = nullptr;
  if (fixture == nullptr) {
    fixture = new Fixture;
    std::atexit([] {
      delete fixture;
      fixture = nullptr;
    });
  }
  return *fixture;
}

inline zmq::socket_t MakePeerSocket(zmq::context_t& context, zmq::socket_type type) {
  transport::SocketOptions options;
  options.send_hwm = 100000;
  options.receive_hwm = 100000;
  auto socket = transport::MakeSocket(context, type, options);
  DDSPLIT_FUZZ_ASSERT(socket.ok());
  return std::move(*socket);
}

inline zmq::message_t Frame(std::string_view bytes) { return zmq::message_t(bytes.data(), bytes.size()); }

inline zmq::message_t Frame(const flatbuffers::FlatBufferBuilder& fbb) {
  return zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize());
}

// Sends a multipart message; the peers here always have room (inproc, large HWM).
inline void Send(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
  auto sent = transport::SendMultipart(socket, frames);
  DDSPLIT_FUZZ_ASSERT(sent.ok());
}

// Receives one whole message from any of `sockets` (returns its index), waiting up to `timeout`.
// -1 on timeout.
inline int ReceiveAny(std::span<zmq::socket_t*> sockets, std::vector<zmq::message_t>& frames,
                      std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<zmq::pollitem_t> items;
  for (auto* socket : sockets) items.push_back({socket->handle(), 0, ZMQ_POLLIN, 0});
  while (true) {
    for (size_t i = 0; i < sockets.size(); ++i) {
      bool overflow = false;
      auto got = transport::ReceiveMultipart(*sockets[i], frames, 64, overflow);
      DDSPLIT_FUZZ_ASSERT(got.ok());
      if (*got) return static_cast<int>(i);
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return -1;
    try {
      zmq::poll(items.data(), items.size(),
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
    } catch (const zmq::error_t& e) {
      DDSPLIT_FUZZ_ASSERT(e.num() == EINTR);  // libFuzzer's timers interrupt system calls
    }
  }
}

// Receives and drops everything waiting on `socket`.
inline void Drain(zmq::socket_t& socket) {
  std::vector<zmq::message_t> frames;
  bool overflow = false;
  while (true) {
    auto got = transport::ReceiveMultipart(socket, frames, 64, overflow);
    if (!got.ok() || !*got) return;
  }
}

// Where targets put their scratch files (RocksDB directories): $DDSPLIT_FUZZ_TMP when set (run-all
// points it at its own work directory, removed at the end even after crashes), else the
// system's temporary directory.
inline std::filesystem::path ScratchRoot() {
  const char* dir = std::getenv("DDSPLIT_FUZZ_TMP");
  return dir != nullptr && *dir != '\0' ? std::filesystem::path(dir) : std::filesystem::temp_directory_path();
}

// How long a target waits for an answer the service owes before calling it lost.
inline constexpr std::chrono::milliseconds kAnswerDeadline{5000};

}  // namespace ddsplit::fuzz
