// Component test of the gateway's HTTP transport over real loopback sockets, with small handlers:
// keep-alive, pipelining, bodies read without buffering, 100-continue, malformed and oversized
// heads, stalled clients (head and body), the connection limit and the drain on shutdown.
#include "services/gateway/http_server.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "tests/support/raw_http_client.h"

namespace ddsplit::gateway {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ddsplit::testing::RawClient;

// Answers "METHOD TARGET BODYSIZE"; PUT reads its body in 1000-byte steps; /slow waits for
// `release`; /unanswered does not answer.
struct TestHandler {
  std::atomic<int> slow_started{0};
  std::atomic<bool> release{false};
  std::atomic<int> body_errors{0};

  void operator()(HttpExchange& ex) {
    std::string text = std::string(ex.method()) + " " + std::string(ex.target());
    if (ex.target() == "/slow") {
      ++slow_started;
      while (!release.load()) std::this_thread::sleep_for(1ms);
    }
    if (ex.target() == "/unanswered") return;
    if (ex.method() == "PUT") {
      uint64_t total = 0;
      std::vector<std::byte> chunk(1000);
      for (;;) {
        auto got = ex.ReadBody(chunk);
        if (!got.ok()) {
          ++body_errors;
          HttpResponseHead head;
          head.status = 408;
          head.content_length = 0;
          (void)ex.Respond(head, std::string_view());
          return;
        }
        if (*got == 0) break;
        total += *got;
      }
      text += " " + std::to_string(total);
    }
    HttpResponseHead head;
    head.status = 200;
    head.headers.emplace_back("Content-Type", "text/plain");
    head.content_length = text.size();
    head.omit_body = ex.method() == "HEAD";
    (void)ex.Respond(head, text);
  }
};

struct Fixture {
  explicit Fixture(HttpServerOptions options = {}) {
    if (options.threads == 16) options.threads = 4;
    server = std::make_unique<HttpServer>(
        options, [this](HttpExchange& ex) { handler(ex); }, nullptr);
    auto started = server->Start();
    REQUIRE(started.ok());
    port = *started;
  }
  TestHandler handler;
  std::unique_ptr<HttpServer> server;
  int port = 0;
};

TEST_CASE("keep-alive: many requests on one connection, HEAD without body, 500 when unanswered") {
  Fixture f;
  httplib::Client client("127.0.0.1", f.port);
  client.set_keep_alive(true);
  for (int i = 0; i < 20; ++i) {
    auto response = client.Get("/hello/" + std::to_string(i));
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->body == "GET /hello/" + std::to_string(i));
    CHECK(response->has_header("Date"));
  }
  CHECK(f.server->connections() == 1);
  auto head = client.Head("/x");
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->body.empty());
  CHECK(head->get_header_value("Content-Length") == "7");  // "HEAD /x"
  auto unanswered = client.Get("/unanswered");
  REQUIRE(unanswered);
  CHECK(unanswered->status == 500);
  CHECK(unanswered->get_header_value("Content-Type") == "application/problem+json");
}

TEST_CASE("pipelined requests are answered in order; bodies of any size are read exactly") {
  Fixture f;
  RawClient raw(f.port);
  std::string body(100000, 'x');
  raw.Send("GET /a HTTP/1.1\r\nHost: t\r\n\r\nPUT /b HTTP/1.1\r\nHost: t\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body + "GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string answers = raw.ReceiveAnswers(3);
  REQUIRE(RawClient::CountAnswers(answers) == 3);
  size_t a = answers.find("GET /a");
  size_t b = answers.find("PUT /b 100000");
  size_t c = answers.find("GET /c");
  CHECK(a != std::string::npos);
  CHECK(b != std::string::npos);
  CHECK(c != std::string::npos);
  CHECK(a < b);
  CHECK(b < c);
  CHECK_FALSE(raw.closed());
}

TEST_CASE("Expect: 100-continue gets an interim answer before the body is read") {
  Fixture f;
  RawClient raw(f.port);
  raw.Send("PUT /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  std::string interim = raw.ReceiveUntil(
      [](const std::string& text) { return text.find("\r\n\r\n") != std::string::npos; });
  CHECK(interim.rfind("HTTP/1.1 100 Continue\r\n\r\n", 0) == 0);
  raw.Send("hello");
  std::string answer = raw.ReceiveAnswers(1);
  CHECK(answer.find("PUT /e 5") != std::string::npos);
}

TEST_CASE("malformed and oversized heads get 400 / 431 and the connection closes") {
  HttpServerOptions options;
  options.max_header_bytes = 2048;
  Fixture f(options);
  {
    RawClient raw(f.port);
    raw.Send("this is not http\r\n\r\n");
    std::string answer = raw.ReceiveAnswers(1);
    CHECK(answer.rfind("HTTP/1.1 400", 0) == 0);
    CHECK(raw.WaitClosed(5s));
  }
  {
    RawClient raw(f.port);
    raw.Send("GET / HTTP/1.1\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n");
    std::string answer = raw.ReceiveAnswers(1);
    CHECK(answer.rfind("HTTP/1.1 431", 0) == 0);
    CHECK(raw.WaitClosed(5s));
  }
  httplib::Client client("127.0.0.1", f.port);
  auto response = client.Get("/still-serving");
  REQUIRE(response);
  CHECK(response->status == 200);
}

TEST_CASE("a client that stalls in its head or body is cut off; others are served meanwhile") {
  HttpServerOptions options;
  options.read_timeout = 300ms;
  options.threads = 2;
  Fixture f(options);
  RawClient stalled_head(f.port);
  stalled_head.Send("GET /half HTTP/1.1\r\nHost: t\r\nX-Partial: ");
  RawClient stalled_body(f.port);
  stalled_body.Send("PUT /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
  // While both stall, other clients get answers.
  const auto start = Clock::now();
  httplib::Client client("127.0.0.1", f.port);
  for (int i = 0; i < 5; ++i) {
    auto response = client.Get("/other");
    REQUIRE(response);
    CHECK(response->status == 200);
  }
  CHECK(stalled_head.WaitClosed(5s));
  CHECK(stalled_body.WaitClosed(5s));
  auto elapsed = Clock::now() - start;
  CHECK(elapsed < 3s);
  CHECK(stalled_head.ReceiveUntil([](const std::string&) { return true; }).empty());
  // The body stall reached the handler as an error and was answered before the close.
  CHECK(f.handler.body_errors.load() == 1);
  CHECK(
      stalled_body.ReceiveUntil([](const std::string&) { return true; }).rfind("HTTP/1.1 408", 0) ==
      0);
}

TEST_CASE("idle keep-alive connections close after the idle timeout") {
  HttpServerOptions options;
  options.idle_timeout = 200ms;
  Fixture f(options);
  RawClient raw(f.port);
  raw.Send("GET /once HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(RawClient::CountAnswers(raw.ReceiveAnswers(1)) == 1);
  CHECK(raw.WaitClosed(5s));
}

TEST_CASE("beyond max_connections new connections get 503") {
  HttpServerOptions options;
  options.max_connections = 2;
  Fixture f(options);
  RawClient one(f.port);
  RawClient two(f.port);
  one.Send("GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
  two.Send("GET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(RawClient::CountAnswers(one.ReceiveAnswers(1)) == 1);
  CHECK(RawClient::CountAnswers(two.ReceiveAnswers(1)) == 1);
  RawClient three(f.port);
  std::string answer = three.ReceiveAnswers(1);
  CHECK(answer.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(answer.find("Retry-After: 1") != std::string::npos);
}

TEST_CASE("shutdown stops accepting, closes idle connections and drains requests in flight") {
  Fixture f;
  RawClient idle(f.port);
  idle.Send("GET /first HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(RawClient::CountAnswers(idle.ReceiveAnswers(1)) == 1);
  RawClient busy(f.port);
  busy.Send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  auto deadline = Clock::now() + 5s;
  while (f.handler.slow_started.load() == 0 && Clock::now() < deadline) std::this_thread::yield();
  REQUIRE(f.handler.slow_started.load() == 1);
  std::thread releaser([&] {
    // The drain must wait for the handler; release it once the idle connection is gone.
    idle.WaitClosed(5s);
    f.handler.release = true;
  });
  size_t left = f.server->Shutdown(5s);
  releaser.join();
  CHECK(left == 0);
  CHECK(idle.closed());
  std::string answer = busy.ReceiveAnswers(1);
  CHECK(answer.find("GET /slow") != std::string::npos);
  CHECK(answer.find("Connection: close") != std::string::npos);
  // No longer accepting.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(f.port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0);
  ::close(fd);
}

}  // namespace
}  // namespace ddsplit::gateway
