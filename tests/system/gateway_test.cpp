// System tests of the HTTP gateway: a real local cluster (stores, splitter, assembler and
// ddsplit-gateway processes) driven through a real HTTP client (cpp-httplib) and raw sockets for
// what a well-behaved client will not send.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/harness.h"
#include "tests/support/raw_http_client.h"

namespace ddsplit::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxRecord = 65536;  // the gateway's --max-record-bytes in these tests

cluster::ClusterOptions GatewayClusterOptions(std::vector<std::string> extra = {}) {
  cluster::ClusterOptions options;
  options.sync = "none";
  options.extra_gateway_args = {"--max-record-bytes", std::to_string(kMaxRecord),
                                "--read-timeout-ms",  "500",
                                "--max-batch-bytes",  "5000",
                                "--threads",          "8"};
  options.extra_gateway_args.insert(options.extra_gateway_args.end(), extra.begin(), extra.end());
  return options;
}

// One cluster for the tests that do not damage it (started on first use, stopped at exit).
TestCluster& Shared() {
  static TestCluster cluster(GatewayClusterOptions());
  return cluster;
}

int GatewayPort(TestCluster& cluster) { return cluster.cluster().Info(Role::kGateway, 0).port; }

// The status of GET `path` on the gateway's admin port; -1 if it did not answer.
int AdminCode(TestCluster& cluster, const std::string& path) {
  auto status = cluster.AdminStatus(Role::kGateway, 0, path);
  return status.ok() ? *status : -1;
}

std::unique_ptr<httplib::Client> Http(TestCluster& cluster) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", GatewayPort(cluster));
  client->set_url_encode(false);  // the tests send exactly the escapes they mean
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);  // else each PUT's body waits ~40 ms for a delayed ACK
  client->set_connection_timeout(5);
  client->set_read_timeout(20);
  client->set_write_timeout(20);
  return client;
}

std::string RandomText(size_t size, uint64_t seed) { return AsString(RandomBytes(size, seed)); }

Json BodyJson(const httplib::Result& response) {
  REQUIRE(response);
  return Json::parse(response->body);
}

// Checks an RFC 9457 problem answer.
void CheckProblem(const httplib::Result& response, int status, const std::string& code = "") {
  REQUIRE(response);
  CHECK(response->status == status);
  CHECK(response->get_header_value("Content-Type") == "application/problem+json");
  CHECK_FALSE(response->get_header_value("X-Request-Id").empty());
  CHECK(response->get_header_value("Server-Timing").find("gateway;dur=") != std::string::npos);
  Json doc = Json::parse(response->body);
  CHECK(doc["status"] == status);
  CHECK(doc["type"].get<std::string>().rfind("urn:ddsplit:problem:", 0) == 0);
  CHECK(doc.contains("title"));
  CHECK(doc.contains("detail"));
  CHECK(doc["request_id"] == response->get_header_value("X-Request-Id"));
  if (!code.empty()) CHECK(doc["code"] == code);
}

// A GET on its own connection (Connection: close), for answers cpp-httplib's client mishandles
// (it waits for a body after 304, which has none). Returns the status line and headers.
std::string RawHead(int port, const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
  RawClient raw(port);
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  raw.Send(request + "\r\n");
  return raw.ReadUntilClosed(10s);
}

// ------------------------------------------------------------------------------ records

TEST_CASE("PUT, GET, HEAD and DELETE a record with its content type, metadata and ETag") {
  auto http = Http(Shared());
  const std::string path = "/v1/records/greetings/hello%20world.txt";
  const std::string value = "hello, world";

  auto created =
      http->Put(path.c_str(), {{"X-DDSplit-Meta-Owner", "ann"}, {"x-ddsplit-meta-Tag", "a b"}},
                value, "text/plain; charset=utf-8");
  REQUIRE(created);
  CHECK(created->status == 201);
  Json doc = BodyJson(created);
  CHECK(doc["key"] == "greetings/hello world.txt");
  CHECK(doc["size"] == value.size());
  CHECK(doc["created"] == true);
  const std::string etag1 = created->get_header_value("ETag");
  CHECK(etag1 == doc["etag"]);
  CHECK(etag1 == "\"" + doc["version"].get<std::string>() + "\"");
  // (httplib decodes Location; the raw header is "/v1/records/greetings/hello%20world.txt".)
  CHECK(created->get_header_value("Location") == "/v1/records/greetings/hello world.txt");
  CHECK(created->get_header_value("X-Request-Id").size() == 16);
  // The write went through a coordinator and a store: every phase is reported.
  const std::string timing = created->get_header_value("Server-Timing");
  for (const char* phase : {"gateway;dur=", "backend;dur=", "coordinator;dur=", "store;dur="}) {
    CHECK_MESSAGE(timing.find(phase) != std::string::npos, timing);
  }

  auto replaced =
      http->Put(path.c_str(), {{"X-DDSplit-Meta-Owner", "bob"}}, value + "!", "text/plain");
  REQUIRE(replaced);
  CHECK(replaced->status == 200);
  CHECK(BodyJson(replaced)["created"] == false);
  const std::string etag2 = replaced->get_header_value("ETag");
  CHECK(etag2 != etag1);

  auto got = http->Get(path.c_str());
  REQUIRE(got);
  CHECK(got->status == 200);
  CHECK(got->body == value + "!");
  CHECK(got->get_header_value("Content-Type") == "text/plain");
  CHECK(got->get_header_value("Content-Length") == std::to_string(value.size() + 1));
  CHECK(got->get_header_value("ETag") == etag2);
  CHECK(got->get_header_value("X-DDSplit-Meta-owner") == "bob");
  CHECK_FALSE(got->has_header("X-DDSplit-Meta-tag"));  // replaced, not merged
  CHECK(got->get_header_value("Accept-Ranges") == "bytes");
  CHECK_FALSE(got->get_header_value("Last-Modified").empty());
  CHECK(got->get_header_value("Server-Timing").find("store;dur=") != std::string::npos);

  auto head = http->Head(path.c_str());
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->body.empty());
  CHECK(head->get_header_value("Content-Length") == std::to_string(value.size() + 1));
  CHECK(head->get_header_value("ETag") == etag2);
  CHECK(head->get_header_value("X-DDSplit-Meta-owner") == "bob");

  auto deleted = http->Delete(path.c_str());
  REQUIRE(deleted);
  CHECK(deleted->status == 204);
  CheckProblem(http->Get(path.c_str()), 404, "not_found");
  CheckProblem(http->Delete(path.c_str()), 404, "not_found");
  auto head_missing = http->Head(path.c_str());
  REQUIRE(head_missing);
  CHECK(head_missing->status == 404);
  CHECK(head_missing->body.empty());

  // Metadata names are stored lower-case; values round-trip exactly.
  auto meta =
      http->Put("/v1/records/meta/1", {{"X-DDSplit-Meta-Camel.Case_name", "Value with spaces, ü"}},
                "x", "application/octet-stream");
  REQUIRE(meta);
  CHECK(meta->status == 201);
  auto meta_get = http->Get("/v1/records/meta/1");
  REQUIRE(meta_get);
  CHECK(meta_get->get_header_value("X-DDSplit-Meta-camel.case_name") == "Value with spaces, ü");
  CheckProblem(
      http->Put("/v1/records/meta/2", {{"X-DDSplit-Meta-bad!name", "v"}}, "x", "text/plain"), 400,
      "invalid_argument");

  // An empty value is a record too.
  auto empty = http->Put("/v1/records/empty", "", "text/plain");
  REQUIRE(empty);
  CHECK(empty->status == 201);
  auto empty_get = http->Get("/v1/records/empty");
  REQUIRE(empty_get);
  CHECK(empty_get->status == 200);
  CHECK(empty_get->body.empty());
  // No content type given: served as application/octet-stream.
  RawClient raw(GatewayPort(Shared()));
  raw.Send(
      "PUT /v1/records/untyped HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: "
      "close\r\n\r\nabc");
  CHECK(raw.ReadUntilClosed(5s).rfind("HTTP/1.1 201", 0) == 0);
  auto untyped = http->Get("/v1/records/untyped");
  REQUIRE(untyped);
  CHECK(untyped->get_header_value("Content-Type") == "application/octet-stream");
}

TEST_CASE("conditional requests: If-None-Match gives 304, If-Match gives 412 on mismatch") {
  auto http = Http(Shared());
  const char* path = "/v1/records/conditional/a";
  auto put = http->Put(path, "v1", "text/plain");
  REQUIRE(put);
  const std::string etag = put->get_header_value("ETag");

  const int port = GatewayPort(Shared());
  std::string not_modified = RawHead(port, path, {{"If-None-Match", etag}});
  CHECK(not_modified.rfind("HTTP/1.1 304 Not Modified\r\n", 0) == 0);
  CHECK(not_modified.find("ETag: " + etag + "\r\n") != std::string::npos);
  CHECK(not_modified.find("X-Request-Id: ") != std::string::npos);
  CHECK(not_modified.find("Content-Length") == std::string::npos);
  CHECK(not_modified.substr(not_modified.find("\r\n\r\n") + 4).empty());  // no body
  CHECK(RawHead(port, path, {{"If-None-Match", "\"other\", " + etag}}).rfind("HTTP/1.1 304", 0) ==
        0);
  CHECK(RawHead(port, path, {{"If-None-Match", "W/" + etag}}).rfind("HTTP/1.1 304", 0) == 0);
  CHECK(RawHead(port, path, {{"If-None-Match", "*"}}).rfind("HTTP/1.1 304", 0) == 0);
  auto modified = http->Get(path, {{"If-None-Match", "\"000000000000000000000000\""}});
  REQUIRE(modified);
  CHECK(modified->status == 200);
  CHECK(modified->body == "v1");

  CheckProblem(http->Get(path, {{"If-Match", "\"000000000000000000000000\""}}), 412,
               "precondition_failed");
  CHECK(http->Get(path, {{"If-Match", etag}})->status == 200);
  CheckProblem(http->Get("/v1/records/conditional/none", {{"If-Match", "*"}}), 412);

  // Writes: If-None-Match: * creates only; If-Match replaces only the version named.
  CheckProblem(http->Put(path, {{"If-None-Match", "*"}}, "v2", "text/plain"), 412);
  CHECK(http->Put("/v1/records/conditional/new", {{"If-None-Match", "*"}}, "n", "text/plain")
            ->status == 201);
  CheckProblem(http->Put(path, {{"If-Match", "\"000000000000000000000000\""}}, "v2", "text/plain"),
               412);
  CHECK(http->Get(path)->body == "v1");
  auto replaced = http->Put(path, {{"If-Match", etag}}, "v2", "text/plain");
  REQUIRE(replaced);
  CHECK(replaced->status == 200);
  CheckProblem(http->Delete(path, {{"If-Match", etag}}), 412);  // etag is the old version now
  CHECK(http->Delete(path, {{"If-Match", replaced->get_header_value("ETag")}})->status == 204);
}

TEST_CASE("request ids are echoed or generated; traceparent is passed back") {
  auto http = Http(Shared());
  const std::string traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto echoed = http->Get("/v1/records/none",
                          {{"X-Request-Id", "my-request-42"}, {"traceparent", traceparent}});
  REQUIRE(echoed);
  CHECK(echoed->status == 404);
  CHECK(echoed->get_header_value("X-Request-Id") == "my-request-42");
  CHECK(echoed->get_header_value("traceparent") == traceparent);
  CHECK(Json::parse(echoed->body)["request_id"] == "my-request-42");
  auto generated = http->Get("/v1/records/none", {{"X-Request-Id", "bad id with spaces"}});
  REQUIRE(generated);
  CHECK(generated->get_header_value("X-Request-Id") != "bad id with spaces");
  CHECK(generated->get_header_value("X-Request-Id").size() == 16);
  CHECK_FALSE(generated->has_header("traceparent"));
}

TEST_CASE("bad keys, wrong methods and unknown paths get 400 / 405 / 404 problems") {
  auto http = Http(Shared());
  CheckProblem(http->Get("/v1/records/%FF%FE"), 400, "invalid_argument");           // not UTF-8
  CheckProblem(http->Put("/v1/records/%C0%AF", "x", "text/plain"), 400);            // overlong
  CheckProblem(http->Get("/v1/records/a%00b"), 400, "invalid_argument");            // NUL
  CheckProblem(http->Get("/v1/records/a%zzb"), 400, "invalid_argument");            // bad escape
  CheckProblem(http->Get("/v1/records/"), 400, "invalid_argument");                 // empty
  CheckProblem(http->Get(("/v1/records/" + std::string(1025, 'k')).c_str()), 400);  // too long
  CHECK(http->Get(("/v1/records/" + std::string(1024, 'k')).c_str())->status == 404);
  // Nothing was stored under any of those.
  auto list = http->Get("/v1/records?prefix=a");
  REQUIRE(list);
  const Json listed = BodyJson(list);
  for (const auto& entry : listed["records"]) CHECK(entry["key"] != "a");

  auto post = http->Post("/v1/records/x", "body", "text/plain");
  CheckProblem(post, 405, "method_not_allowed");
  CHECK(post->get_header_value("Allow") == "GET, HEAD, PUT, DELETE");
  CheckProblem(http->Delete("/v1/records"), 405);
  CheckProblem(http->Get("/v1/records:batchGet"), 405);
  CheckProblem(http->Get("/v1/nothing"), 404, "no_such_route");
  CheckProblem(http->Get("/"), 404);
}

// ------------------------------------------------------------------------------ ranges

TEST_CASE(
    "Range: first byte, last byte, suffixes, open ends, beyond the end, multiple, malformed") {
  auto http = Http(Shared());
  const std::string value = RandomText(60000, 7);  // spans every data fragment
  const char* path = "/v1/records/ranges/r";
  REQUIRE(http->Put(path, value, "application/octet-stream")->status == 201);
  const std::string size = std::to_string(value.size());

  struct Case {
    std::string range;
    size_t offset;
    size_t length;
  };
  for (const Case& c : std::vector<Case>{{"bytes=0-0", 0, 1},
                                         {"bytes=59999-59999", 59999, 1},
                                         {"bytes=59999-70000", 59999, 1},
                                         {"bytes=-10", 59990, 10},
                                         {"bytes=-60000", 0, 60000},
                                         {"bytes=-99999", 0, 60000},
                                         {"bytes=59990-", 59990, 10},
                                         {"bytes=0-", 0, 60000},
                                         {"bytes=0-18446744073709551615", 0, 60000},
                                         {"bytes=14990-15010", 14990, 21},
                                         {"bytes=1000-40000", 1000, 39001}}) {
    CAPTURE(c.range);
    auto got = http->Get(path, {{"Range", c.range}});
    REQUIRE(got);
    CHECK(got->status == 206);
    CHECK(got->body == value.substr(c.offset, c.length));
    CHECK(got->get_header_value("Content-Range") == "bytes " + std::to_string(c.offset) + "-" +
                                                        std::to_string(c.offset + c.length - 1) +
                                                        "/" + size);
    CHECK(got->get_header_value("Content-Length") == std::to_string(c.length));
  }
  for (const char* range :
       {"bytes=60000-", "bytes=60000-60001", "bytes=100000-200000", "bytes=-0"}) {
    CAPTURE(range);
    auto got = http->Get(path, {{"Range", range}});
    CheckProblem(got, 416, "range_not_satisfiable");
    CHECK(got->get_header_value("Content-Range") == "bytes */" + size);
  }
  // Several ranges: answered with the whole record (RFC 9110 lets a server ignore Range).
  auto multiple = http->Get(path, {{"Range", "bytes=0-1,5-6"}});
  REQUIRE(multiple);
  CHECK(multiple->status == 200);
  CHECK(multiple->body == value);
  for (const char* range : {"bytes=abc", "items=0-1", "bytes=5-2", "bytes=", "bytes=1-2,"}) {
    CAPTURE(range);
    CheckProblem(http->Get(path, {{"Range", range}}), 400, "invalid_argument");
  }
  // If-Range with another version: the whole current record, 200.
  auto stale =
      http->Get(path, {{"Range", "bytes=0-9"}, {"If-Range", "\"000000000000000000000000\""}});
  REQUIRE(stale);
  CHECK(stale->status == 200);
  CHECK(stale->body == value);
  const std::string etag = http->Head(path)->get_header_value("ETag");
  auto fresh = http->Get(path, {{"Range", "bytes=0-9"}, {"If-Range", etag}});
  REQUIRE(fresh);
  CHECK(fresh->status == 206);
  CHECK(fresh->body == value.substr(0, 10));
  // An empty record has no satisfiable range.
  REQUIRE(http->Put("/v1/records/ranges/empty", "", "text/plain")->status == 201);
  auto empty = http->Get("/v1/records/ranges/empty", {{"Range", "bytes=0-0"}});
  CheckProblem(empty, 416);
  CHECK(empty->get_header_value("Content-Range") == "bytes */0");
}

// ------------------------------------------------------------------------------ list, batch,
// ingest

TEST_CASE("list pages through a prefix with opaque cursors; limits are validated") {
  auto http = Http(Shared());
  std::set<std::string> expected;
  for (int i = 0; i < 25; ++i) {
    std::string key = "listing/item-" + std::to_string(100 + i);
    REQUIRE(
        http->Put(("/v1/records/" + key).c_str(), "v" + std::to_string(i), "text/plain")->status ==
        201);
    expected.insert(key);
  }
  REQUIRE(http->Put("/v1/records/listing-other", "x", "text/plain")->status == 201);
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    std::string path = "/v1/records?prefix=listing%2F&limit=10";
    if (!cursor.empty()) path += "&cursor=" + cursor;
    auto page = http->Get(path.c_str());
    REQUIRE(page);
    REQUIRE(page->status == 200);
    CHECK(page->get_header_value("Content-Type") == "application/json");
    Json doc = Json::parse(page->body);
    CHECK(doc["records"].size() <= 10);
    for (const auto& entry : doc["records"]) {
      seen.push_back(entry["key"]);
      CHECK(entry["size"] == (entry["key"].get<std::string>() >= "listing/item-110" ? 3 : 2));
      CHECK(entry["content_type"] == "text/plain");
      CHECK(entry["etag"] == "\"" + entry["version"].get<std::string>() + "\"");
    }
    cursor = doc["next_cursor"].is_null() ? "" : doc["next_cursor"].get<std::string>();
    CHECK(cursor.find_first_of("+/=") == std::string::npos);
    ++pages;
  } while (!cursor.empty() && pages < 10);
  CHECK(pages == 3);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::set<std::string>(seen.begin(), seen.end()) == expected);
  CHECK(seen.size() == expected.size());

  for (const char* bad : {"/v1/records?limit=0", "/v1/records?limit=1001", "/v1/records?limit=ten",
                          "/v1/records?cursor=%21%21%21", "/v1/records?prefix=%FF"}) {
    CAPTURE(bad);
    CheckProblem(http->Get(bad), 400);
  }
}

TEST_CASE("batchGet returns each value or its error, within count and size caps") {
  auto http = Http(Shared());
  REQUIRE(http->Put("/v1/records/batch/a", "alpha", "text/plain")->status == 201);
  REQUIRE(http->Put("/v1/records/batch/b", std::string(3000, 'b'), "application/octet-stream")
              ->status == 201);
  REQUIRE(http->Put("/v1/records/batch/c", std::string(3000, 'c'), "application/octet-stream")
              ->status == 201);
  Json request = {{"keys", {"batch/a", "batch/missing", "", "batch/b", "batch/c", "batch/a"}}};
  auto answer = http->Post("/v1/records:batchGet", request.dump(), "application/json");
  REQUIRE(answer);
  REQUIRE(answer->status == 200);
  Json records = Json::parse(answer->body)["records"];
  REQUIRE(records.size() == 6);
  CHECK(records[0]["key"] == "batch/a");
  CHECK(records[0]["value_base64"] == "YWxwaGE=");
  CHECK(records[0]["content_type"] == "text/plain");
  CHECK(records[0]["size"] == 5);
  CHECK(records[1]["error"]["status"] == 404);
  CHECK(records[1]["error"]["code"] == "not_found");
  CHECK(records[2]["error"]["status"] == 400);
  CHECK(records[3]["size"] == 3000);
  // --max-batch-bytes 5000: the third value would pass it; nothing after it is fetched.
  CHECK(records[4]["error"]["status"] == 413);
  CHECK(records[5]["error"]["status"] == 413);

  // More keys than one native MultiGet carries (16): every one answered, in order.
  Json many = {{"keys", Json::array()}};
  for (int i = 0; i < 40; ++i) {
    std::string key = "batch/many/" + std::to_string(i);
    REQUIRE(http->Put(("/v1/records/" + key).c_str(), std::to_string(i), "text/plain")->status ==
            201);
    many["keys"].push_back(key);
    if (i % 7 == 0) many["keys"].push_back("batch/many/missing");
  }
  auto many_answer = http->Post("/v1/records:batchGet", many.dump(), "application/json");
  REQUIRE(many_answer);
  Json many_records = Json::parse(many_answer->body)["records"];
  REQUIRE(many_records.size() == many["keys"].size());
  for (size_t i = 0; i < many_records.size(); ++i) {
    CHECK(many_records[i]["key"] == many["keys"][i]);
    CHECK(many_records[i].contains("error") == (many["keys"][i] == "batch/many/missing"));
  }

  CheckProblem(http->Post("/v1/records:batchGet", "{not json", "application/json"), 400);
  CheckProblem(http->Post("/v1/records:batchGet", R"({"keys": "a"})", "application/json"), 400);
  CheckProblem(http->Post("/v1/records:batchGet", R"({"keys": []})", "application/json"), 400);
  CheckProblem(http->Post("/v1/records:batchGet", R"({"keys": [1]})", "application/json"), 400);
  Json too_many = {{"keys", std::vector<std::string>(1001, "k")}};
  CheckProblem(http->Post("/v1/records:batchGet", too_many.dump(), "application/json"), 400);
}

TEST_CASE("NDJSON ingest stores the good lines and reports every bad one") {
  auto http = Http(Shared());
  std::string body =
      "{\"key\":\"ingest/1\",\"value\":{\"a\":1,\"b\":[true,null]}}\n"
      "{\"key\":\"ingest/2\",\"value_base64\":\"aGVsbG8=\",\"metadata\":{\"src\":\"ndjson\"}}\n"
      "this is not json\n"
      "{\"key\":\"ingest/3\"}\n"
      "{\"key\":\"\",\"value\":1}\n"
      "\n"
      "{\"key\":\"ingest/4\",\"value\":\"text\",\"content_type\":\"text/plain\"}\r\n"
      "[1,2]\n"
      "{\"key\":\"ingest/5\",\"value_base64\":\"###\"}\n"
      "{\"key\":\"ingest/6\",\"value\":null}";  // no final newline
  auto answer = http->Post("/v1/records:ingest", body, "application/x-ndjson");
  REQUIRE(answer);
  REQUIRE(answer->status == 200);
  Json doc = Json::parse(answer->body);
  CHECK(doc["lines"] == 9);
  CHECK(doc["stored"] == 4);
  CHECK(doc["failed"] == 5);
  std::map<int, Json> by_line;
  for (const auto& result : doc["results"]) by_line[result["line"].get<int>()] = result;
  REQUIRE(by_line.size() == 9);
  CHECK(by_line[1]["status"] == 201);
  CHECK(by_line[1]["key"] == "ingest/1");
  CHECK(by_line[2]["status"] == 201);
  for (int bad : {3, 4, 5, 7, 8}) {
    CAPTURE(bad);
    CHECK(by_line[bad]["status"] == 400);
    CHECK(by_line[bad].contains("error"));
  }
  CHECK(by_line[4]["key"] == "ingest/3");
  CHECK(by_line[6]["key"] == "ingest/4");
  CHECK(by_line[9]["key"] == "ingest/6");

  auto one = http->Get("/v1/records/ingest/1");
  REQUIRE(one);
  CHECK(one->body == R"({"a":1,"b":[true,null]})");
  CHECK(one->get_header_value("Content-Type") == "application/json");
  auto two = http->Get("/v1/records/ingest/2");
  CHECK(two->body == "hello");
  CHECK(two->get_header_value("X-DDSplit-Meta-src") == "ndjson");
  auto four = http->Get("/v1/records/ingest/4");
  CHECK(four->body == "\"text\"");
  CHECK(four->get_header_value("Content-Type") == "text/plain");
  CHECK(http->Get("/v1/records/ingest/6")->body == "null");
  CHECK(http->Get("/v1/records/ingest/3")->status == 404);

  // Many lines, more than the ingest concurrency, all stored.
  std::string many;
  for (int i = 0; i < 200; ++i) {
    many +=
        "{\"key\":\"ingest/many/" + std::to_string(i) + "\",\"value\":" + std::to_string(i) + "}\n";
  }
  auto bulk = http->Post("/v1/records:ingest", many, "application/x-ndjson");
  REQUIRE(bulk);
  Json bulk_doc = Json::parse(bulk->body);
  CHECK(bulk_doc["stored"] == 200);
  CHECK(http->Get("/v1/records/ingest/many/199")->body == "199");
}

// ------------------------------------------------------------------------------ limits

TEST_CASE("bodies over the limit get 413 before the body is read; no length gets 411") {
  auto http = Http(Shared());
  CheckProblem(
      http->Put("/v1/records/big", std::string(kMaxRecord + 1, 'x'), "application/octet-stream"),
      413, "too_large");
  CHECK(http->Get("/v1/records/big")->status == 404);
  auto at_limit =
      http->Put("/v1/records/big", std::string(kMaxRecord, 'x'), "application/octet-stream");
  REQUIRE(at_limit);
  CHECK(at_limit->status == 201);

  // A terabyte announced and nothing sent: the answer comes at once, without the body.
  {
    RawClient raw(GatewayPort(Shared()));
    const auto start = Clock::now();
    raw.Send("PUT /v1/records/huge HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000000\r\n\r\n");
    std::string answer = raw.ReadUntilClosed(10s);
    CHECK(answer.rfind("HTTP/1.1 413", 0) == 0);
    CHECK(answer.find("Connection: close") != std::string::npos);
    CHECK(Clock::now() - start < 5s);
  }
  {
    RawClient raw(GatewayPort(Shared()));
    raw.Send(
        "PUT /v1/records/chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
        "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    CHECK(raw.ReadUntilClosed(10s).rfind("HTTP/1.1 411", 0) == 0);
  }
  {
    RawClient raw(GatewayPort(Shared()));
    raw.Send("PUT /v1/records/nolength HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    CHECK(raw.ReadUntilClosed(10s).rfind("HTTP/1.1 411", 0) == 0);
  }
  CHECK(http->Get("/v1/records/chunked")->status == 404);
  CHECK(http->Get("/v1/records/nolength")->status == 404);
}

TEST_CASE("a client that sends half a request and stalls is cut off; others are served") {
  TestCluster& cluster = Shared();
  RawClient stalled_head(GatewayPort(cluster));
  stalled_head.Send("GET /v1/records/x HTTP/1.1\r\nHost: t\r\nX-Half");
  RawClient stalled_body(GatewayPort(cluster));
  stalled_body.Send(
      "PUT /v1/records/stalled HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789");
  const auto start = Clock::now();
  auto http = Http(cluster);
  for (int i = 0; i < 10; ++i) {
    auto response =
        http->Put(("/v1/records/while-stalled/" + std::to_string(i)).c_str(), "v", "text/plain");
    REQUIRE(response);
    CHECK(response->status == 201);
  }
  // --read-timeout-ms 500: both are closed soon after.
  stalled_head.ReadUntilClosed(10s);
  std::string body_answer = stalled_body.ReadUntilClosed(10s);
  CHECK(stalled_head.closed());
  CHECK(stalled_body.closed());
  CHECK(Clock::now() - start < 5s);
  CHECK(body_answer.rfind("HTTP/1.1 408", 0) == 0);
  CHECK(http->Get("/v1/records/stalled")->status == 404);
}

TEST_CASE("many concurrent keep-alive connections") {
  TestCluster& cluster = Shared();
  constexpr int kClients = 32;
  constexpr int kRequests = 10;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", GatewayPort(cluster));
      client.set_keep_alive(true);
      client.set_read_timeout(30);
      for (int r = 0; r < kRequests; ++r) {
        std::string path = "/v1/records/concurrent/" + std::to_string(c) + "/" + std::to_string(r);
        std::string value =
            RandomText(1000 + static_cast<size_t>(r), static_cast<uint64_t>(c * 100 + r));
        auto put = client.Put(path.c_str(), value, "application/octet-stream");
        if (!put || put->status != 201) continue;
        auto get = client.Get(path.c_str());
        if (get && get->status == 200 && get->body == value) ++ok;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(ok.load() == kClients * kRequests);
}

TEST_CASE("metrics: RED per route, Server-Timing phases, and payload copies at most once") {
  TestCluster& cluster = Shared();
  auto http = Http(cluster);
  const std::string value = RandomText(50000, 11);
  auto copied_bytes = [&] {
    auto text = cluster.Metrics(Role::kGateway, 0);
    REQUIRE(text.ok());
    return MetricValue(*text, "ddsplit_payload_copied_bytes_total").value_or(0);
  };
  double before = copied_bytes();
  REQUIRE(http->Put("/v1/records/copies", value, "application/octet-stream")->status == 201);
  double after_put = copied_bytes();
  // At most the bytes that arrived with the request head were copied, never the value twice.
  CHECK(after_put - before <= static_cast<double>(value.size()));
  auto got = http->Get("/v1/records/copies");
  REQUIRE(got);
  CHECK(got->body == value);
  CHECK(copied_bytes() == after_put);  // GET streams the frames: no copy

  auto text = cluster.Metrics(Role::kGateway, 0);
  REQUIRE(text.ok());
  CHECK(MetricValue(*text,
                    R"(ddsplit_gateway_http_requests_total{route="put_record",status_class="2xx"})")
            .value_or(0) >= 1);
  CHECK(MetricValue(*text,
                    R"(ddsplit_gateway_http_requests_total{route="get_record",status_class="2xx"})")
            .value_or(0) >= 1);
  CHECK(MetricValue(*text,
                    R"(ddsplit_gateway_http_requests_total{route="ingest",status_class="5xx"})")
            .has_value());
  CHECK(MetricValue(*text, R"(ddsplit_gateway_server_timing_seconds_count{phase="store"})")
            .value_or(0) >= 2);
  CHECK(MetricValue(*text, R"(ddsplit_gateway_requests_total{operation="put",outcome="ok"})")
            .value_or(0) >= 1);
  CHECK(MetricValue(*text, "ddsplit_gateway_http_requests_in_flight").has_value());
  CHECK(MetricValue(*text, "ddsplit_gateway_http_connections_open").value_or(0) >= 1);
  CHECK(AdminCode(cluster, "/healthz") == 200);
  CHECK(WaitFor([&] { return AdminCode(cluster, "/readyz") == 200; }, 10s));
}

// ------------------------------------------------------------------------------ backend failures

TEST_CASE("backend failures: 503 + Retry-After without a splitter, 504 when the assembler hangs") {
  TestCluster cluster(GatewayClusterOptions({"--request-timeout-ms", "1000"}));
  auto http = Http(cluster);
  REQUIRE(http->Put("/v1/records/failures/a", "a", "text/plain")->status == 201);
  CHECK(WaitFor([&] { return AdminCode(cluster, "/readyz") == 200; }, 10s));

  REQUIRE(cluster.cluster().Kill(Role::kSplitter, 0).ok());
  std::optional<httplib::Result> put;
  CHECK(WaitFor(
      [&] {
        put.emplace(http->Put("/v1/records/failures/b", "b", "text/plain"));
        return *put && (*put)->status == 503;
      },
      20s));
  REQUIRE(put);
  CheckProblem(*put, 503, "unavailable");
  CHECK((*put)->get_header_value("Retry-After") == "1");
  // Not ready without a splitter; reads still work.
  CHECK(WaitFor([&] { return AdminCode(cluster, "/readyz") == 503; }, 15s));
  CHECK(http->Get("/v1/records/failures/a")->body == "a");
  REQUIRE(cluster.cluster().Restart(Role::kSplitter, 0).ok());
  CHECK(WaitFor([&] { return AdminCode(cluster, "/readyz") == 200; }, 15s));
  CHECK(WaitFor(
      [&] { return http->Put("/v1/records/failures/b", "b", "text/plain")->status == 201; }, 15s));

  REQUIRE(cluster.cluster().Stop(Role::kAssembler, 0).ok());
  auto hung = http->Get("/v1/records/failures/a");
  CheckProblem(hung, 504, "deadline_exceeded");
  REQUIRE(cluster.cluster().Continue(Role::kAssembler, 0).ok());
  CHECK(WaitFor([&] { return http->Get("/v1/records/failures/a")->status == 200; }, 15s));

  // SIGTERM: the gateway drains and exits 0.
  Status terminated = cluster.cluster().Terminate(Role::kGateway, 0);
  CHECK_MESSAGE(terminated.ok(), (terminated.ok() ? "" : terminated.error().ToString()));
}

TEST_CASE("overload through the gateway: 503 with Retry-After, then back to normal") {
  // 32 HTTP clients through 8 gateway threads against a splitter that takes 2 writes at a
  // time: the excess must come back as 503 + Retry-After, never as another failure, and the
  // gateway must serve normally afterwards.
  auto options = GatewayClusterOptions();
  options.extra_splitter_args = {"--max-in-flight", "2"};
  TestCluster cluster(options);
  const std::string value(60000, 'v');
  std::atomic<int> ok{0}, busy{0}, other{0}, busy_without_retry_after{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 32; ++t) {
    senders.emplace_back([&, t] {
      httplib::Client client("127.0.0.1", GatewayPort(cluster));
      client.set_read_timeout(std::chrono::seconds(30));
      for (int i = 0; i < 15; ++i) {
        auto path = "/v1/records/flood/" + std::to_string(t) + "/" + std::to_string(i);
        auto answer = client.Put(path, value, "application/octet-stream");
        if (!answer) {
          ++other;
        } else if (answer->status == 200 || answer->status == 201) {
          ++ok;
        } else if (answer->status == 503) {
          ++busy;
          if (answer->get_header_value("Retry-After").empty()) ++busy_without_retry_after;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& sender : senders) sender.join();
  CAPTURE(ok.load());
  CAPTURE(busy.load());
  CHECK(busy > 0);
  CHECK(ok > 0);
  CHECK(other == 0);
  CHECK(busy_without_retry_after == 0);
  auto client = Http(cluster);
  for (int i = 0; i < 5; ++i) {
    auto answer = client->Put("/v1/records/after-flood/" + std::to_string(i), value,
                              "application/octet-stream");
    REQUIRE(answer);
    CHECK(answer->status == 201);
  }
}

}  // namespace
}  // namespace ddsplit::testing

