// placement: which stores hold a key's fragments. Rendezvous (highest random weight) hashing of
// the key over stable store ids: no catalog, and adding a store moves only the keys whose top-n
// set now includes it. Pure and immutable after construction; safe from any thread.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/limits.h"
#include "common/base/result.h"
#include "common/base/strong_id.h"

namespace ddsplit::placement {

struct StoreInfo {
  StoreId id;
  std::string zone;  // empty: no zone preference for this store
};

// Up to kMaxFragments store ids in fragment order.
struct PlacementSet {
  std::array<StoreId, kMaxFragments> stores{};
  int size = 0;
  std::span<const StoreId> view() const { return {stores.data(), static_cast<size_t>(size)}; }
  // Fragment index of `store` in this set, or -1.
  int IndexOf(StoreId store) const;
};

class Placement {
 public:
  // Store ids must be distinct (kInvalidArgument otherwise).
  static Result<Placement> Create(std::vector<StoreInfo> stores);

  // The n stores for `key`, best first: position i holds fragment i. Prefers stores in zones
  // not yet used, then fills from the rest by score. kUnavailable if fewer than n stores exist.
  Result<PlacementSet> Place(std::string_view key, int n) const;

  // Rendezvous weight of (key, store); exposed for tests.
  static uint64_t Score(std::string_view key, StoreId store);

  const std::vector<StoreInfo>& stores() const { return stores_; }

 private:
  explicit Placement(std::vector<StoreInfo> stores) : stores_(std::move(stores)) {}
  std::string_view ZoneOf(StoreId id) const;
  std::vector<StoreInfo> stores_;
};

}  // namespace ddsplit::placement
