#include "services/assembler/list_merge.h"

#include <algorithm>
#include <optional>

namespace ddsplit::assembler {

MergedPage MergeListings(std::span<const StoreListing> listings, int k, size_t limit) {
  // Keys past the end of a truncated page may exist on that store but are not seen yet: only
  // keys up to the smallest such last key are complete.
  std::optional<std::string_view> bound;
  std::vector<const ListedKey*> all;
  for (const auto& listing : listings) {
    for (const auto& key : listing.keys) all.push_back(&key);
    if (listing.truncated && !listing.keys.empty()) {
      std::string_view last = listing.keys.back().key;
      if (!bound || last < *bound) bound = last;
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const ListedKey* a, const ListedKey* b) { return a->key < b->key; });

  MergedPage page;
  size_t i = 0;
  while (i < all.size()) {
    std::string_view key = all[i]->key;
    if (bound && key > *bound) break;
    size_t end = i;
    while (end < all.size() && all[end]->key == key) ++end;
    // Newest version that is committed somewhere or held by k stores.
    std::optional<ListedVersion> best;
    std::vector<std::pair<Version, int>> holders;
    for (size_t j = i; j < end; ++j) {
      for (const auto& v : all[j]->versions) {
        auto it = std::find_if(holders.begin(), holders.end(),
                               [&](const auto& h) { return h.first == v.version; });
        if (it == holders.end()) {
          holders.emplace_back(v.version, 1);
        } else {
          ++it->second;
        }
      }
    }
    for (size_t j = i; j < end; ++j) {
      for (const auto& v : all[j]->versions) {
        int count = std::find_if(holders.begin(), holders.end(),
                                 [&](const auto& h) { return h.first == v.version; })->second;
        bool established = v.committed || count >= k;
        if (!established) continue;
        if (!best || best->version < v.version) best = v;
        else if (best->version == v.version) best->tombstone |= v.tombstone;
      }
    }
    i = end;
    if (!best || best->tombstone) continue;
    page.entries.push_back({key, best->version, best->size, best->content_type});
    if (page.entries.size() == limit) {
      // More keys may follow: resume after this one.
      bool more = i < all.size() || bound.has_value();
      if (more) page.next_cursor = std::string(key);
      return page;
    }
  }
  if (bound) page.next_cursor = std::string(*bound);
  return page;
}

}  // namespace ddsplit::assembler
