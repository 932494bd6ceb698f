// Unit tests of the gateway's pure HTTP rules: targets, percent-decoding, ranges, ETags, error
// mapping, problem documents, cursors, base64 and Server-Timing.
#include "services/gateway/http_api.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

namespace ddsplit::gateway {
namespace {

TEST_CASE("targets route to records, the list, batchGet and ingest; keys are percent-decoded") {
  auto record = ParseTarget("/v1/records/photos%2Fcat%20one.jpg?x=1");
  REQUIRE(record.ok());
  CHECK(record->route == Route::kRecord);
  CHECK(record->key == "photos/cat one.jpg");
  CHECK(record->query == "x=1");

  auto slashes = ParseTarget("/v1/records/a//b/../c");
  REQUIRE(slashes.ok());
  CHECK(slashes->key == "a//b/../c");  // no path normalisation: keys are opaque

  auto plus = ParseTarget("/v1/records/a+b");
  REQUIRE(plus.ok());
  CHECK(plus->key == "a+b");  // '+' is literal in a path

  auto nul = ParseTarget("/v1/records/a%00b");
  REQUIRE(nul.ok());
  CHECK(nul->key == std::string("a\0b", 3));  // kept, so ValidateKey can refuse it

  CHECK(ParseTarget("/v1/records")->route == Route::kList);
  CHECK(ParseTarget("/v1/records?prefix=a")->route == Route::kList);
  CHECK(ParseTarget("/v1/records:batchGet")->route == Route::kBatchGet);
  CHECK(ParseTarget("/v1/records:ingest")->route == Route::kIngest);
  CHECK(ParseTarget("/v2/records/x")->route == Route::kNotFound);
  CHECK(ParseTarget("/")->route == Route::kNotFound);
  CHECK(ParseTarget("/v1/records/")->route == Route::kRecord);  // empty key: refused later

  for (const char* bad : {"/v1/records/a%", "/v1/records/a%2", "/v1/records/a%zz"}) {
    CAPTURE(bad);
    auto parsed = ParseTarget(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code() == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("query strings decode '+' and escapes") {
  auto query = ParseQuery("prefix=a%2Fb+c&limit=10&&flag&cursor=");
  REQUIRE(query.ok());
  REQUIRE(query->size() == 4);
  CHECK((*query)[0] == std::pair<std::string, std::string>{"prefix", "a/b c"});
  CHECK((*query)[1].second == "10");
  CHECK((*query)[2] == std::pair<std::string, std::string>{"flag", ""});
  CHECK((*query)[3] == std::pair<std::string, std::string>{"cursor", ""});
  CHECK_FALSE(ParseQuery("prefix=%G1").ok());
  CHECK(PercentEncodePath("a b/ü?") == "a%20b/%C3%BC%3F");
}

TEST_CASE("Range headers: single, open, suffix, multiple and malformed") {
  using Kind = ByteRangeRequest::Kind;
  CHECK(ParseRange("")->kind == Kind::kNone);

  auto first_byte = ParseRange("bytes=0-0");
  REQUIRE(first_byte.ok());
  CHECK(first_byte->kind == Kind::kFromTo);
  auto options = GetOptionsFor(*first_byte);
  REQUIRE(options.range);
  CHECK(options.range->first == 0);
  CHECK(options.range->second == 1);

  auto open = ParseRange("bytes=100-");
  REQUIRE(open.ok());
  CHECK(open->kind == Kind::kFrom);
  options = GetOptionsFor(*open);
  REQUIRE(options.range);
  CHECK(options.range->first == 100);
  CHECK(options.range->second >= (uint64_t{1} << 40));

  auto suffix = ParseRange("bytes=-500");
  REQUIRE(suffix.ok());
  CHECK(suffix->kind == Kind::kSuffix);
  options = GetOptionsFor(*suffix);
  CHECK_FALSE(options.range);
  CHECK(options.suffix_length == 500);

  CHECK(ParseRange("BYTES = 1-2").ok() == false);  // no spaces inside the unit
  CHECK(ParseRange("bytes=1-2, 5-6")->kind == Kind::kMultiple);
  CHECK_FALSE(GetOptionsFor(*ParseRange("bytes=1-2,5-6")).range);

  for (const char* bad : {"items=0-1", "bytes=", "bytes=abc", "bytes=5-2", "bytes=-", "bytes=1-2,",
                          "bytes=--1", "bytes=1-x", "bytes=99999999999999999999999-"}) {
    CAPTURE(bad);
    auto parsed = ParseRange(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code() == ErrorCode::kInvalidArgument);
  }
  auto everything = GetOptionsFor(*ParseRange("bytes=0-18446744073709551615"));
  REQUIRE(everything.range);
  CHECK(everything.range->first == 0);
  CHECK(everything.range->second == (uint64_t{1} << 62));
  // Huge but valid positions do not overflow.
  auto huge = ParseRange("bytes=18446744073709551614-18446744073709551615");
  REQUIRE(huge.ok());
  options = GetOptionsFor(*huge);
  REQUIRE(options.range);
  CHECK(options.range->first <= (uint64_t{1} << 62));

  CHECK(ContentRange(0, 1, 10) == "bytes 0-0/10");
  CHECK(ContentRange(9, 1, 10) == "bytes 9-9/10");
  CHECK(UnsatisfiedContentRange(10) == "bytes */10");
}

TEST_CASE("ETag lists: strong, weak, star, absent records") {
  Version v{0x18f00000001ULL, 42};
  const std::string etag = ETagOf(v);
  CHECK(etag ==
        "\"0000018f00000001"
        "0000002a\"");
  CHECK(ETagListMatches(etag, v, true, true));
  CHECK(ETagListMatches("\"x\", " + etag, v, true, true));
  CHECK(ETagListMatches("*", v, true, true));
  CHECK_FALSE(ETagListMatches("*", v, false, true));  // no record: even * fails
  CHECK_FALSE(ETagListMatches("\"other\"", v, true, false));
  CHECK(ETagListMatches("W/" + etag, v, true, /*strong=*/false));
  CHECK_FALSE(ETagListMatches("W/" + etag, v, true, /*strong=*/true));
  CHECK_FALSE(ETagListMatches(v.ToString(), v, true, false));  // unquoted is not an entity tag
}

TEST_CASE("error codes map to HTTP statuses; problem documents follow RFC 9457") {
  CHECK(HttpStatusFor(ErrorCode::kNotFound) == 404);
  CHECK(HttpStatusFor(ErrorCode::kInvalidArgument) == 400);
  CHECK(HttpStatusFor(ErrorCode::kMalformed) == 400);
  CHECK(HttpStatusFor(ErrorCode::kTooLarge) == 413);
  CHECK(HttpStatusFor(ErrorCode::kRangeNotSatisfiable) == 416);
  CHECK(HttpStatusFor(ErrorCode::kBusy) == 503);
  CHECK(HttpStatusFor(ErrorCode::kUnavailable) == 503);
  CHECK(HttpStatusFor(ErrorCode::kStale) == 503);
  CHECK(HttpStatusFor(ErrorCode::kQuorumFailed) == 503);
  CHECK(HttpStatusFor(ErrorCode::kDeadlineExceeded) == 504);
  CHECK(HttpStatusFor(ErrorCode::kCorrupt) == 500);
  CHECK(HttpStatusFor(ErrorCode::kInternal) == 500);
  CHECK(NeedsRetryAfter(503));
  CHECK_FALSE(NeedsRetryAfter(504));

  auto doc = nlohmann::json::parse(
      ProblemJson(404, "not_found", "no record \xff", "/v1/records/x", "req-1"));
  CHECK(doc["type"] == "urn:ddsplit:problem:not_found");
  CHECK(doc["title"] == "Not Found");
  CHECK(doc["status"] == 404);
  CHECK(doc["instance"] == "/v1/records/x");
  CHECK(doc["request_id"] == "req-1");
  CHECK(doc["code"] == "not_found");
  CHECK(doc["detail"].get<std::string>().rfind("no record ", 0) == 0);  // invalid UTF-8 replaced
}

TEST_CASE("cursors are opaque base64url tokens; base64 round-trips") {
  for (std::string native : {std::string(""), std::string("a"), std::string("ab"),
                             std::string("abc"), std::string("key/\xc3\xbc\x00\xff", 8)}) {
    std::string token = EncodeCursor(native);
    CHECK(token.find_first_of("+/=") == std::string::npos);
    auto back = DecodeCursor(token);
    REQUIRE(back.ok());
    CHECK(*back == native);
  }
  CHECK_FALSE(DecodeCursor("not a cursor!").ok());
  CHECK_FALSE(DecodeCursor("a").ok());
  CHECK_FALSE(DecodeCursor("ab+/").ok());

  std::string text = "hello, world";
  std::string encoded = Base64Encode(std::as_bytes(std::span(text.data(), text.size())));
  CHECK(encoded == "aGVsbG8sIHdvcmxk");
  auto decoded = Base64Decode(encoded);
  REQUIRE(decoded.ok());
  CHECK(std::string(reinterpret_cast<const char*>(decoded->data()), decoded->size()) == text);
  CHECK(Base64Encode(std::as_bytes(std::span("ab", 2))) == "YWI=");
  CHECK(Base64Decode("YWI=").ok());
  CHECK(Base64Decode("YWI").ok());
  CHECK_FALSE(Base64Decode("Y").ok());
  CHECK_FALSE(Base64Decode("YW*=").ok());
}

TEST_CASE("Server-Timing: the longest store stage and the sum of the coordinator's own") {
  ServerTiming timing;
  timing.gateway_ms = 2.5;
  timing.backend_ms = 2.0;
  std::vector<client::StageTime> stages = {
      {Stage::kReceive, 100'000, 50'000},  {Stage::kVerify, 0, 0},
      {Stage::kFetch, 0, 400'000},         {Stage::kStoreRead, 10'000, 290'000},
      {Stage::kReceive, 5'000'000, 1'000}, {Stage::kVerify, 0, 1'000},
      {Stage::kStoreRead, 0, 900'000},     {Stage::kReply, 0, 50'000},
  };
  AddStageTimes(stages, timing);
  CHECK(timing.has_stages);
  CHECK(timing.coordinator_ms == doctest::Approx(0.6));
  CHECK(timing.store_ms == doctest::Approx(0.9));
  CHECK(ServerTimingHeader(timing) ==
        "gateway;dur=2.500, backend;dur=2.000, coordinator;dur=0.600, store;dur=0.900");
  ServerTiming bare;
  bare.gateway_ms = 0.25;
  CHECK(ServerTimingHeader(bare) == "gateway;dur=0.250, backend;dur=0.000");
}

TEST_CASE("request ids, traceparent and header helpers") {
  CHECK(IsAcceptableRequestId("abc-123"));
  CHECK_FALSE(IsAcceptableRequestId(""));
  CHECK_FALSE(IsAcceptableRequestId("has space"));
  CHECK_FALSE(IsAcceptableRequestId(std::string(129, 'a')));
  CHECK(IsValidTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(IsValidTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  CHECK_FALSE(IsValidTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(IsValidTraceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  CHECK(EqualsIgnoreCase("Content-Type", "content-type"));
  CHECK(StartsWithIgnoreCase("X-DDSplit-Meta-Owner", kMetaHeaderPrefix));
  CHECK(ToLowerAscii("Owner-Name") == "owner-name");
  CHECK(ParseUint("123") == 123u);
  CHECK_FALSE(ParseUint("-1"));
  CHECK_FALSE(ParseUint("1x"));
  CHECK_FALSE(ParseUint(""));
}

}  // namespace
}  // namespace ddsplit::gateway
