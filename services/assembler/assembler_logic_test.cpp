#include <doctest/doctest.h>

#include <vector>

#include "services/assembler/list_merge.h"
#include "services/assembler/version_choice.h"

namespace ddsplit::assembler {
namespace {

using Kind = VersionChoice::Kind;
const Version v1{100, 1}, v2{200, 1};

struct Scenario {
  std::vector<std::vector<VersionReport>> reports;
  std::vector<bool> answered;
  VersionChoice Choose(bool final = false) {
    std::vector<StoreAnswer> answers;
    for (size_t i = 0; i < reports.size(); ++i) answers.push_back({answered[i], reports[i]});
    return ChooseVersion(answers, 4, 5, final);
  }
};

Scenario AllHold(std::vector<VersionReport> each, int stores = 6) {
  Scenario s;
  for (int i = 0; i < stores; ++i) {
    s.reports.push_back(each);
    s.answered.push_back(true);
  }
  return s;
}

TEST_CASE("a committed version on every store is used") {
  auto s = AllHold({{v1, true, false, false, 0}});
  auto choice = s.Choose();
  CHECK(choice.kind == Kind::kUse);
  CHECK(choice.version == v1);
}

TEST_CASE("two stores down: four healthy fragments still read") {
  auto s = AllHold({{v1, true, false, false, 0}});
  s.answered[0] = s.answered[3] = false;
  CHECK(s.Choose().kind == Kind::kUse);
}

TEST_CASE("an in-flight write on a few stores does not hide the older version") {
  auto s = AllHold({{v1, true, false, false, 0}});
  s.reports[0].insert(s.reports[0].begin(), {v2, false, false, false, 0});
  s.reports[1].insert(s.reports[1].begin(), {v2, false, false, false, 1});
  auto choice = s.Choose();
  CHECK(choice.kind == Kind::kUse);
  CHECK(choice.version == v1);
}

TEST_CASE("a newer version that may be acknowledged blocks older ones") {
  // V2 reached 5 stores (acknowledged) but two of them are down and one never got it.
  auto s = AllHold({{v2, false, false, false, 0}, {v1, true, false, false, 0}});
  s.reports[5] = {{v1, true, false, false, 5}};
  s.answered[0] = s.answered[1] = false;
  CHECK(s.Choose().kind == Kind::kWait);
  auto final = s.Choose(true);
  CHECK(final.kind == Kind::kFail);
  CHECK(final.error_code == ErrorCode::kStale);
  CHECK(ChoiceError(final, 4, 2).message().find("may be acknowledged") != std::string::npos);
}

TEST_CASE("an old tombstone is not trusted while the silent stores could hold a newer write") {
  // Found by the thrash test: one store answered with a tombstone it kept from before a newer
  // put that the five other stores acknowledged but had not answered about yet.
  auto s = AllHold({{v2, true, false, false, 0}});
  s.reports[3] = {{v1, true, true, false, 3}};
  for (int i : {0, 1, 2, 4, 5}) s.answered[i] = false;
  CHECK(s.Choose().kind == Kind::kWait);
  auto final = s.Choose(true);
  CHECK(final.kind == Kind::kFail);
  CHECK(final.error_code == ErrorCode::kUnavailable);
  for (int i : {0, 1, 2, 4, 5}) s.answered[i] = true;
  auto choice = s.Choose();
  CHECK(choice.kind == Kind::kUse);
  CHECK(choice.version == v2);
}

TEST_CASE("a committed flag anywhere marks the version acknowledged") {
  auto s = AllHold({{v1, true, false, false, 0}});
  s.reports[0].insert(s.reports[0].begin(), {v2, true, false, false, 0});
  auto choice = s.Choose(true);
  CHECK(choice.kind == Kind::kFail);
}

TEST_CASE("corrupt fragments do not count toward k") {
  auto s = AllHold({{v1, true, false, false, 0}});
  s.reports[0][0].corrupt = true;
  s.reports[1][0].corrupt = true;
  CHECK(s.Choose().kind == Kind::kUse);
  s.reports[2][0].corrupt = true;
  auto choice = s.Choose(true);
  CHECK(choice.kind == Kind::kFail);
  CHECK(choice.error_code == ErrorCode::kUnavailable);
}

TEST_CASE("tombstones: one committed holder is enough") {
  auto s = AllHold({});
  s.reports[2] = {{v2, true, true, false, 2}};
  auto choice = s.Choose();
  CHECK(choice.kind == Kind::kUse);
  CHECK(choice.tombstone);
}

TEST_CASE("nothing anywhere is absent, unless too many stores are silent") {
  auto s = AllHold({});
  CHECK(s.Choose().kind == Kind::kAbsent);
  for (int i = 0; i < 5; ++i) s.answered[i] = false;
  CHECK(s.Choose().kind == Kind::kWait);
  CHECK(s.Choose(true).kind == Kind::kFail);
  s.answered[0] = true;
  CHECK(s.Choose().kind == Kind::kAbsent);  // 4 silent stores cannot hold a 5-store quorum
}

StoreListing Listing(std::vector<std::string_view> keys, bool truncated, Version v = v1,
                     bool committed = true) {
  StoreListing listing;
  listing.truncated = truncated;
  for (auto key : keys) listing.keys.push_back({key, {{v, committed, false, 10, "text/plain"}}});
  return listing;
}

TEST_CASE("listings merge each key once and page without skipping") {
  std::vector<StoreListing> listings{Listing({"a", "b", "d"}, false), Listing({"a", "c"}, false),
                                     Listing({"b", "c", "d"}, false)};
  auto page = MergeListings(listings, 4, 10);
  REQUIRE(page.entries.size() == 4);
  CHECK(page.entries[0].key == "a");
  CHECK(page.entries[3].key == "d");
  CHECK(page.next_cursor.empty());

  auto limited = MergeListings(listings, 4, 2);
  REQUIRE(limited.entries.size() == 2);
  CHECK(limited.next_cursor == "b");

  // A truncated store bounds what is complete.
  std::vector<StoreListing> partial{Listing({"a", "b"}, true), Listing({"a", "c", "e"}, false)};
  auto bounded = MergeListings(partial, 4, 10);
  REQUIRE(bounded.entries.size() == 2);
  CHECK(bounded.entries[1].key == "b");
  CHECK(bounded.next_cursor == "b");
}

TEST_CASE("listings skip deleted keys and versions not yet established") {
  StoreListing deleted;
  deleted.keys.push_back({"gone", {{v2, true, true, 0, ""}, {v1, true, false, 5, ""}}});
  StoreListing in_flight = Listing({"new"}, false, v2, false);
  std::vector<StoreListing> listings{deleted, in_flight};
  auto page = MergeListings(listings, 4, 10);
  CHECK(page.entries.empty());
}

}  // namespace
}  // namespace ddsplit::assembler
