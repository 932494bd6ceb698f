#include "common/metrics/admin_server.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/metrics.h"

namespace ddsplit::metrics {
namespace {

httplib::Result Fetch(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  return client.Get(path.c_str());
}

TEST_CASE("AdminServer serves /metrics, /healthz and /readyz over HTTP") {
  ProcessMetrics metrics("fragstore");
  std::atomic<bool> ready{false};
  AdminServer server({}, metrics, [&ready]() -> Status {
    if (ready.load()) return OkStatus();
    return Error(ErrorCode::kUnavailable, "store not open yet");
  });
  const Result<int> port = server.Start();
  REQUIRE(port.ok());
  CHECK(*port > 0);

  SUBCASE("/metrics is the text exposition") {
    const auto response = Fetch(*port, "/metrics");
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->get_header_value("Content-Type") == kTextExpositionContentType);
    CHECK(response->body.find("ddsplit_build_info{service=\"fragstore\"") != std::string::npos);
    CHECK(response->body.find("process_open_fds ") != std::string::npos);
  }

  SUBCASE("/healthz answers ok") {
    const auto response = Fetch(*port, "/healthz");
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->body == "ok");
  }

  SUBCASE("/readyz follows the readiness check") {
    auto response = Fetch(*port, "/readyz");
    REQUIRE(response);
    CHECK(response->status == 503);
    CHECK(response->body.find("store not open yet") != std::string::npos);

    ready = true;
    response = Fetch(*port, "/readyz");
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->body == "ready");

    ready = false;
    response = Fetch(*port, "/readyz");
    REQUIRE(response);
    CHECK(response->status == 503);
  }

  SUBCASE("an unknown path is 404") {
    const auto response = Fetch(*port, "/nope");
    REQUIRE(response);
    CHECK(response->status == 404);
  }

  SUBCASE("concurrent clients are all answered by the small pool") {
    // More clients than request threads, but not more than httplib's listen backlog of 5: past
    // that the kernel drops SYNs and the client retries after a second.
    constexpr int kClients = 4;
    constexpr int kRequestsEach = 10;
    std::atomic<int> answered{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i) {
      clients.emplace_back([&] {
        for (int r = 0; r < kRequestsEach; ++r) {
          const auto response = Fetch(*port, r % 2 == 0 ? "/metrics" : "/healthz");
          if (response && response->status == 200) ++answered;
        }
      });
    }
    for (auto& client : clients) client.join();
    CHECK(answered == kClients * kRequestsEach);
  }
}

TEST_CASE("AdminServer without a readiness check is ready") {
  ProcessMetrics metrics("gateway");
  AdminServer server({}, metrics, nullptr);
  const Result<int> port = server.Start();
  REQUIRE(port.ok());
  const auto response = Fetch(*port, "/readyz");
  REQUIRE(response);
  CHECK(response->status == 200);
}

TEST_CASE("AdminServer Stop is idempotent and closes the port") {
  ProcessMetrics metrics("splitter");
  AdminServer never_started({}, metrics, nullptr);
  never_started.Stop();

  AdminServer server({}, metrics, nullptr);
  const Result<int> port = server.Start();
  REQUIRE(port.ok());
  REQUIRE(Fetch(*port, "/healthz"));
  server.Stop();
  server.Stop();
  CHECK_FALSE(Fetch(*port, "/healthz"));

  SUBCASE("and a stopped server starts again") {
    const Result<int> again = server.Start();
    REQUIRE(again.ok());
    const auto response = Fetch(*again, "/healthz");
    REQUIRE(response);
    CHECK(response->status == 200);
  }
}

// Regression: httplib's stop() is a no-op until its accept loop has started, so a Stop() straight
// after Start() used to be able to hang forever in join.
TEST_CASE("AdminServer Stop straight after Start returns") {
  ProcessMetrics metrics("assembler");
  for (int i = 0; i < 50; ++i) {
    AdminServer server({}, metrics, nullptr);
    REQUIRE(server.Start().ok());
    server.Stop();
  }
}

TEST_CASE("AdminServer start errors") {
  ProcessMetrics metrics("splitter");
  AdminServer first({}, metrics, nullptr);
  const Result<int> port = first.Start();
  REQUIRE(port.ok());

  SUBCASE("starting twice") {
    const Result<int> again = first.Start();
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code() == ErrorCode::kInternal);
  }

  SUBCASE("a port in use") {
    AdminServer second({.host = "127.0.0.1", .port = *port}, metrics, nullptr);
    const Result<int> taken = second.Start();
    REQUIRE_FALSE(taken.ok());
    CHECK(taken.error().code() == ErrorCode::kUnavailable);
    CHECK(taken.error().message().find(std::to_string(*port)) != std::string::npos);
  }

  SUBCASE("an address this machine does not have") {
    AdminServer bad({.host = "192.0.2.1", .port = 0}, metrics, nullptr);  // TEST-NET-1
    const Result<int> result = bad.Start();
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code() == ErrorCode::kUnavailable);
  }
}

}  // namespace
}  // namespace ddsplit::metrics
