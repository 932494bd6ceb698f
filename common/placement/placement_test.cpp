#include <doctest/doctest.h>

#include <map>
#include <set>

#include "common/placement/placement.h"

namespace ddsplit::placement {
namespace {

std::vector<StoreInfo> Stores(int count, int first_id = 0) {
  std::vector<StoreInfo> stores;
  for (int i = 0; i < count; ++i) stores.push_back({StoreId(first_id + i), ""});
  return stores;
}

TEST_CASE("placement picks n distinct stores, deterministically") {
  auto placement = Placement::Create(Stores(10));
  REQUIRE(placement.ok());
  for (int i = 0; i < 1000; ++i) {
    std::string key = "key-" + std::to_string(i);
    auto set = placement->Place(key, 6);
    REQUIRE(set.ok());
    std::set<StoreId> distinct(set->view().begin(), set->view().end());
    CHECK(distinct.size() == 6);
    auto again = placement->Place(key, 6);
    CHECK(std::equal(set->view().begin(), set->view().end(), again->view().begin()));
    CHECK(set->IndexOf(set->stores[3]) == 3);
  }
}

TEST_CASE("load is balanced within 10% across stores over 100k keys") {
  auto placement = Placement::Create(Stores(12));
  REQUIRE(placement.ok());
  std::map<StoreId, int> fragments;
  const int keys = 100000;
  for (int i = 0; i < keys; ++i) {
    auto set = placement->Place("user/" + std::to_string(i) + "/photo", 6);
    REQUIRE(set.ok());
    for (StoreId id : set->view()) ++fragments[id];
  }
  double expected = keys * 6.0 / 12.0;
  for (const auto& [id, count] : fragments) {
    const auto id_value = id.value();  // CAPTURE is a lambda: clang 14 cannot capture a binding
    CAPTURE(id_value);
    CHECK(count > expected * 0.9);
    CHECK(count < expected * 1.1);
  }
}

TEST_CASE("adding a store moves only keys whose top-n set now includes it") {
  auto before = Placement::Create(Stores(8));
  auto after_stores = Stores(8);
  after_stores.push_back({StoreId(100), ""});
  auto after = Placement::Create(after_stores);
  REQUIRE(before.ok());
  REQUIRE(after.ok());
  int moved = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string key = "k" + std::to_string(i);
    auto a = before->Place(key, 6);
    auto b = after->Place(key, 6);
    std::set<StoreId> set_a(a->view().begin(), a->view().end());
    std::set<StoreId> set_b(b->view().begin(), b->view().end());
    if (set_a == set_b) continue;
    ++moved;
    // The only change is that the new store replaced exactly one old one.
    CHECK(set_b.count(StoreId(100)) == 1);
    std::vector<StoreId> gone;
    std::set_difference(set_a.begin(), set_a.end(), set_b.begin(), set_b.end(),
                        std::back_inserter(gone));
    CHECK(gone.size() == 1);
  }
  // The new store should take about n/N = 6/9 of keys.
  CHECK(moved > 20000 * 0.55);
  CHECK(moved < 20000 * 0.78);
}

TEST_CASE("zones: distinct zones are preferred when there are enough") {
  std::vector<StoreInfo> stores;
  for (int i = 0; i < 9; ++i) stores.push_back({StoreId(i), "zone-" + std::to_string(i % 3)});
  auto placement = Placement::Create(stores);
  REQUIRE(placement.ok());
  for (int i = 0; i < 500; ++i) {
    auto set = placement->Place("z" + std::to_string(i), 3);
    std::set<int> zones;
    for (StoreId id : set->view()) zones.insert(static_cast<int>(id.value() % 3));
    CHECK(zones.size() == 3);
  }
}

TEST_CASE("too few stores and duplicate ids are errors") {
  auto placement = Placement::Create(Stores(4));
  REQUIRE(placement.ok());
  CHECK(placement->Place("x", 6).error().code() == ErrorCode::kUnavailable);
  CHECK(!Placement::Create({{StoreId(1), ""}, {StoreId(1), ""}}).ok());
}

}  // namespace
}  // namespace ddsplit::placement
