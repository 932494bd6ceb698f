// Merging the key listings of every store into one page of records: each key once, at its
// newest version that is committed somewhere or held by k stores, deleted keys left out, in
// key order, with a cursor that never skips a key. Pure; safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/version.h"

namespace ddsplit::assembler {

struct ListedVersion {
  Version version;
  bool committed = false;
  bool tombstone = false;
  uint64_t size = 0;
  std::string_view content_type;
};

struct ListedKey {
  std::string_view key;
  std::vector<ListedVersion> versions;
};

// One store's page: keys in order. `truncated`: the store has keys after the last one.
struct StoreListing {
  std::vector<ListedKey> keys;
  bool truncated = false;
};

struct MergedEntry {
  std::string_view key;
  Version version;
  uint64_t size = 0;
  std::string_view content_type;
};

struct MergedPage {
  std::vector<MergedEntry> entries;
  std::string next_cursor;  // empty when the listing is complete
};

// Merges the pages of the stores that answered. At most `limit` entries.
MergedPage MergeListings(std::span<const StoreListing> listings, int k, size_t limit);

}  // namespace ddsplit::assembler
