// The client library against a real cluster: endpoints given by DNS name.
#include <doctest/doctest.h>

#include <algorithm>

#include "tests/harness/harness.h"

namespace ddsplit::testing {
namespace {

std::string PortOf(const std::string& endpoint) { return endpoint.substr(endpoint.rfind(':') + 1); }

TEST_CASE("dns+tcp endpoints resolve to every address of the name") {
  auto resolved = client::ResolveEndpoint("dns+tcp://localhost:7100");
  REQUIRE(resolved.ok());
  CHECK(std::find(resolved->begin(), resolved->end(), "tcp://127.0.0.1:7100") != resolved->end());
  CHECK(client::ResolveEndpoint("tcp://10.1.2.3:9")->front() == "tcp://10.1.2.3:9");
  CHECK(client::ResolveEndpoint("dns+tcp://localhost").error().code() == ErrorCode::kInvalidArgument);
  CHECK(client::ResolveEndpoint("dns+tcp://:7100").error().code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("endpoint syntax is checked without resolving the name") {
  CHECK(client::ValidateEndpoint("dns+tcp://splitter.does-not-resolve.invalid:7200").ok());
  CHECK(client::ValidateEndpoint("tcp://10.1.2.3:9").ok());
  for (const char* bad : {"dns+tcp://splitter", "dns+tcp://:7200", "dns+tcp://s:72x0",
                          "dns+tcp://s:99999", "http://s:80", "tcp://", ""}) {
    CAPTURE(bad);
    auto valid = client::ValidateEndpoint(bad);
    REQUIRE(!valid.ok());
    CHECK(valid.error().code() == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("a client that names its splitters and assemblers by DNS reads and writes") {
  TestCluster tc;
  client::ClientOptions options;
  options.splitters = {"dns+tcp://localhost:" + PortOf(tc.cluster().Info(Role::kSplitter, 0).endpoint)};
  options.assemblers = {"dns+tcp://localhost:" + PortOf(tc.cluster().Info(Role::kAssembler, 0).endpoint)};
  auto connected = client::Client::Connect(options);
  REQUIRE(connected.ok());
  auto value = RandomBytes(70000, 5);
  auto put = (*connected)->Put({"by-name", value, "", {}});
  REQUIRE_MESSAGE(put.ok(), put.error().ToString());
  auto got = (*connected)->Get("by-name");
  REQUIRE(got.ok());
  CHECK(got->value.ToString() == AsString(value));
}

}  // namespace
}  // namespace ddsplit::testing
