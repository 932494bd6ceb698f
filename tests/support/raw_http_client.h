// A raw HTTP/1.1 client socket on loopback, for tests that send what an HTTP library will not
// (pipelined, malformed or stalled requests) and read answers byte for byte. Test-only: fails
// the current doctest test case (REQUIRE) when it cannot connect or send.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace ddsplit::testing {

class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  ~RawClient() { ::close(fd_); }
  void Send(std::string_view bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // Everything received until `done(received)` holds, the peer closes, or `timeout` passes.
  std::string ReceiveUntil(const std::function<bool(const std::string&)>& done,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(received_) && !closed_) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      pollfd item{fd_, POLLIN, 0};
      if (::poll(&item, 1, static_cast<int>(left)) <= 0) continue;
      char chunk[65536];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      received_.append(chunk, static_cast<size_t>(n));
    }
    return received_;
  }
  // Waits for `count` complete answers (head plus Content-Length bytes each).
  std::string ReceiveAnswers(int count, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return ReceiveUntil([count](const std::string& text) { return CountAnswers(text) >= count; },
                        timeout);
  }
  // Everything received until the peer closes or `timeout` passes.
  std::string ReadUntilClosed(std::chrono::milliseconds timeout) {
    return ReceiveUntil([](const std::string&) { return false; }, timeout);
  }
  bool WaitClosed(std::chrono::milliseconds timeout) {
    ReceiveUntil([](const std::string&) { return false; }, timeout);
    return closed_;
  }
  bool closed() const { return closed_; }

  static int CountAnswers(const std::string& text) {
    int count = 0;
    size_t position = 0;
    for (;;) {
      size_t end = text.find("\r\n\r\n", position);
      if (end == std::string::npos) return count;
      std::string head = text.substr(position, end - position);
      size_t length = 0;
      size_t field = head.find("Content-Length: ");
      if (field != std::string::npos) length = std::stoul(head.substr(field + 16));
      if (head.rfind("HTTP/1.1 100", 0) == 0) length = 0;
      if (text.size() < end + 4 + length) return count;
      position = end + 4 + length;
      if (head.rfind("HTTP/1.1 100", 0) != 0) ++count;
    }
  }

 private:
  int fd_ = -1;
  std::string received_;
  bool closed_ = false;
};

}  // namespace ddsplit::testing
