#include <doctest/doctest.h>

#include <string>

#include "common/base/key.h"
#include "common/base/result.h"
#include "common/base/version.h"

namespace ddsplit {
namespace {

TEST_CASE("keys: length, NUL and UTF-8 rules") {
  CHECK(ValidateKey("a").ok());
  CHECK(ValidateKey(std::string(1024, 'x')).ok());
  CHECK(ValidateKey("caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80").ok());
  CHECK(ValidateKey("").error().code() == ErrorCode::kInvalidArgument);
  CHECK(!ValidateKey(std::string(1025, 'x')).ok());
  CHECK(!ValidateKey(std::string("a\0b", 3)).ok());
  SUBCASE("malformed UTF-8 is refused") {
    CHECK(!ValidateKey("\xff").ok());
    CHECK(!ValidateKey("\xc3").ok());               // truncated
    CHECK(!ValidateKey("\xc0\xaf").ok());           // overlong '/'
    CHECK(!ValidateKey("\xed\xa0\x80").ok());       // surrogate
    CHECK(!ValidateKey("\xf4\x90\x80\x80").ok());   // beyond U+10FFFF
    CHECK(!ValidateKey("ab\x80").ok());             // stray continuation
  }
}

TEST_CASE("metadata and content type rules") {
  CHECK(ValidateMetadataEntry("owner", "alice").ok());
  CHECK(!ValidateMetadataEntry("", "x").ok());
  CHECK(!ValidateMetadataEntry("bad name", "x").ok());
  CHECK(!ValidateMetadataEntry("n", "line\nbreak").ok());
  CHECK(ValidateContentType("application/json; charset=utf-8").ok());
  CHECK(!ValidateContentType("text/\x01").ok());
}

TEST_CASE("versions order by clock then writer and round-trip through text") {
  Version a{100, 1}, b{100, 2}, c{101, 0};
  CHECK(a < b);
  CHECK(b < c);
  auto text = b.ToString();
  CHECK(text.size() == 24);
  auto parsed = Version::Parse(text);
  REQUIRE(parsed.has_value());
  CHECK(*parsed == b);
  CHECK(!Version::Parse("xyz").has_value());
  CHECK(!Version::Parse(std::string(24, 'G')).has_value());
}

TEST_CASE("hybrid logical clock never goes backwards") {
  ManualClock clock(1000);
  HybridLogicalClock hlc(clock);
  uint64_t first = hlc.Next();
  CHECK(HybridLogicalClock::ToMillis(first) == 1000);
  uint64_t second = hlc.Next();
  CHECK(second > first);
  clock.SetUnixMillis(500);  // wall clock jumps back
  CHECK(hlc.Next() > second);
  hlc.Observe(HybridLogicalClock::FromMillis(5000));
  CHECK(HybridLogicalClock::ToMillis(hlc.Next()) == 5000);
  clock.SetUnixMillis(9000);
  CHECK(HybridLogicalClock::ToMillis(hlc.Next()) == 9000);
}

TEST_CASE("results carry a value or a small error") {
  Result<int> good = 7;
  CHECK(good.ok());
  CHECK(*good == 7);
  Result<int> bad = Error(ErrorCode::kNotFound, "no such key");
  CHECK(!bad.ok());
  CHECK(bad.error().ToString() == "not_found: no such key");
  static_assert(sizeof(Error) <= 48, "errors stay small");
}

}  // namespace
}  // namespace ddsplit
