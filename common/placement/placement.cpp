#include "common/placement/placement.h"

#include <algorithm>
#include <unordered_set>
#include <vector>

#include <xxhash.h>

namespace ddsplit::placement {

int PlacementSet::IndexOf(StoreId store) const {
  for (int i = 0; i < size; ++i) {
    if (stores[i] == store) return i;
  }
  return -1;
}

Result<Placement> Placement::Create(std::vector<StoreInfo> stores) {
  std::unordered_set<StoreId> seen;
  for (const auto& store : stores) {
    if (!seen.insert(store.id).second) {
      return Error(ErrorCode::kInvalidArgument,
                   "store id " + std::to_string(store.id.value()) + " listed twice");
    }
  }
  return Placement(std::move(stores));
}

std::string_view Placement::ZoneOf(StoreId id) const {
  for (const auto& store : stores_) {
    if (store.id == id) return store.zone;
  }
  return {};
}

uint64_t Placement::Score(std::string_view key, StoreId store) {
  // The store id seeds the hash so each store ranks keys independently.
  return XXH3_64bits_withSeed(key.data(), key.size(),
                              0x9E3779B97F4A7C15ull * (uint64_t{store.value()} + 1));
}

Result<PlacementSet> Placement::Place(std::string_view key, int n) const {
  if (n < 1 || n > kMaxFragments) return Error(ErrorCode::kInvalidArgument, "bad placement size");
  if (static_cast<int>(stores_.size()) < n) {
    return Error(ErrorCode::kUnavailable, "need " + std::to_string(n) + " stores, have " +
                                              std::to_string(stores_.size()));
  }
  struct Ranked {
    uint64_t score;
    size_t store;
    bool taken;
  };
  // Placement runs once per request: keep it off the heap for clusters up to kStackStores.
  constexpr size_t kStackStores = 128;
  std::array<Ranked, kStackStores> stack_ranked;
  std::vector<Ranked> heap_ranked;
  std::span<Ranked> ranked;
  if (stores_.size() <= kStackStores) {
    ranked = std::span(stack_ranked.data(), stores_.size());
  } else {
    heap_ranked.resize(stores_.size());
    ranked = heap_ranked;
  }
  for (size_t i = 0; i < stores_.size(); ++i) ranked[i] = {Score(key, stores_[i].id), i, false};
  std::sort(ranked.begin(), ranked.end(), [&](const Ranked& a, const Ranked& b) {
    if (a.score != b.score) return a.score > b.score;
    return stores_[a.store].id < stores_[b.store].id;
  });

  PlacementSet set;
  // First pass: best store of each not-yet-used zone; stores without a zone always qualify.
  for (auto& candidate : ranked) {
    if (set.size == n) break;
    const auto& zone = stores_[candidate.store].zone;
    if (!zone.empty()) {
      bool zone_used = false;
      for (int i = 0; i < set.size && !zone_used; ++i) {
        zone_used = ZoneOf(set.stores[i]) == zone;
      }
      if (zone_used) continue;
    }
    candidate.taken = true;
    set.stores[set.size++] = stores_[candidate.store].id;
  }
  for (auto& candidate : ranked) {
    if (set.size == n) break;
    if (!candidate.taken) set.stores[set.size++] = stores_[candidate.store].id;
  }
  return set;
}

}  // namespace ddsplit::placement
