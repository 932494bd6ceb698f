// Fuzz target: the assembler's decisions on what stores report — ChooseVersion on fuzzed
// version reports (as HandleStoreReply builds them: at most four versions per store, newest
// first, each distinct) and MergeListings on fuzzed store listings — checked against the rules
// in version_choice.h and list_merge.h.
//
// Input: [mode] then, for version choice: [k] [m] [quorum] [final] and per store [answered]
// [report count] and per report [version] [committed] [tombstone] [corrupt]; for listings: [k]
// [limit] and per store [truncated] [key count] and per key [key] [version count] [versions].
// Properties (version choice):
//   - final answers never wait;
//   - kUse picks a usable version (k healthy holders; a tombstone: committed or k holders);
//   - no version newer than the one used may have been acknowledged (committed somewhere, or
//     its holders plus the stores that did not answer reach the write quorum — also a version
//     no answered store holds, when the silent stores alone could make up the quorum);
//   - kAbsent only when nothing seen may have been acknowledged and fewer than a quorum of
//     stores are silent.
// Properties (listing): keys strictly increasing, at most `limit`, each at its newest version
// that is committed or held by k stores, deleted keys left out, and no key skipped before the
// cursor.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "services/assembler/list_merge.h"
#include "services/assembler/version_choice.h"

namespace ddsplit::fuzz {
namespace {

Version FuzzVersion(FuzzInput& in) {
  uint8_t b = in.Byte();
  return {static_cast<uint64_t>((b >> 2) + 1) << 16, static_cast<uint32_t>(b & 3)};
}

// Whether a version is a delete is a property of the version (every store agrees on it).
bool IsTombstone(Version v) { return v.writer == 3; }

void CheckChoice(FuzzInput& in) {
  using assembler::VersionChoice;
  int k = static_cast<int>(in.Range(1, 8));
  int m = static_cast<int>(in.Range(0, 4));
  int n = k + m;
  int quorum = static_cast<int>(in.Range(k, n));
  bool final = in.Bool();
  std::vector<std::vector<assembler::VersionReport>> reports(static_cast<size_t>(n));
  std::vector<assembler::StoreAnswer> answers(static_cast<size_t>(n));
  for (int s = 0; s < n; ++s) {
    answers[s].answered = in.Bool();
    if (!answers[s].answered) continue;
    int count = static_cast<int>(in.Range(0, 4));
    std::set<Version, std::greater<>> versions;
    for (int r = 0; r < count; ++r) versions.insert(FuzzVersion(in));
    for (Version v : versions) {
      uint8_t flags = in.Byte();
      reports[s].push_back({v, (flags & 1) != 0, IsTombstone(v), (flags & 4) != 0, s});
    }
    answers[s].versions = reports[s];
  }
  auto choice = assembler::ChooseVersion(answers, k, quorum, final);

  // Reference tallies.
  struct Tally {
    int holders = 0, healthy = 0;
    bool committed = false, tombstone = false;
  };
  std::map<Version, Tally, std::greater<>> tallies;
  int unanswered = 0;
  for (const auto& answer : answers) {
    if (!answer.answered) {
      ++unanswered;
      continue;
    }
    for (const auto& r : answer.versions) {
      Tally& t = tallies[r.version];
      ++t.holders;
      t.healthy += r.corrupt ? 0 : 1;
      t.committed |= r.committed;
      t.tombstone |= r.tombstone;
    }
  }
  auto usable = [&](const Tally& t) {
    return t.tombstone ? t.healthy >= 1 && (t.committed || t.healthy >= k) : t.healthy >= k;
  };
  auto maybe_acknowledged = [&](const Tally& t) { return t.committed || t.holders + unanswered >= quorum; };

  if (final) DDSPLIT_FUZZ_ASSERT(choice.kind != VersionChoice::Kind::kWait);
  switch (choice.kind) {
    case VersionChoice::Kind::kUse: {
      auto it = tallies.find(choice.version);
      DDSPLIT_FUZZ_ASSERT(it != tallies.end());
      DDSPLIT_FUZZ_ASSERT(usable(it->second));
      DDSPLIT_FUZZ_ASSERT(choice.tombstone == it->second.tombstone);
      for (const auto& [version, tally] : tallies) {
        if (!(choice.version < version)) break;
        DDSPLIT_FUZZ_ASSERT(!maybe_acknowledged(tally));  // a newer version may be acknowledged
      }
      // A newer version no answered store holds may have been acknowledged when the stores that
      // did not answer could make up a write quorum by themselves.
      DDSPLIT_FUZZ_ASSERT(unanswered < quorum);
      break;
    }
    case VersionChoice::Kind::kAbsent:
      for (const auto& [version, tally] : tallies) DDSPLIT_FUZZ_ASSERT(!maybe_acknowledged(tally) && !usable(tally));
      DDSPLIT_FUZZ_ASSERT(unanswered < quorum);
      break;
    case VersionChoice::Kind::kFail: {
      DDSPLIT_FUZZ_ASSERT(choice.error_code != ErrorCode::kOk);
      Error error = assembler::ChoiceError(choice, k, unanswered);
      DDSPLIT_FUZZ_ASSERT(!error.message().empty());
      break;
    }
    case VersionChoice::Kind::kWait:
      DDSPLIT_FUZZ_ASSERT(unanswered > 0);
      break;
  }
}

void CheckListing(FuzzInput& in) {
  int k = static_cast<int>(in.Range(1, 6));
  size_t limit = in.Range(1, 12);
  int stores = static_cast<int>(in.Range(1, 8));
  static const char* kKeys[] = {"a", "a\x01", "a/b", "ab", "b", "b/1", "b/2", "c", "d", "e/x", "f", "zz"};
  std::vector<assembler::StoreListing> listings(static_cast<size_t>(stores));
  for (auto& listing : listings) {
    listing.truncated = in.Bool();
    std::set<std::string_view> keys;  // views of the static key texts
    int count = static_cast<int>(in.Range(0, 6));
    for (int i = 0; i < count; ++i) keys.insert(in.Pick(kKeys));
    for (std::string_view key : keys) {
      assembler::ListedKey listed{key, {}};
      std::set<Version, std::greater<>> versions;
      int vc = static_cast<int>(in.Range(1, 3));
      for (int v = 0; v < vc; ++v) versions.insert(FuzzVersion(in));
      for (Version v : versions) {
        uint8_t flags = in.Byte();
        listed.versions.push_back({v, (flags & 1) != 0, IsTombstone(v), flags, ""});
      }
      listing.keys.push_back(std::move(listed));
    }
  }
  auto page = assembler::MergeListings(listings, k, limit);

  // Reference: every key's newest established version; the bound of truncated pages.
  std::map<std::string, std::map<Version, std::pair<int, bool>, std::greater<>>> seen;  // holders, committed
  std::map<std::string, std::map<Version, bool>> tombstones;
  std::optional<std::string> bound;
  for (const auto& listing : listings) {
    for (const auto& key : listing.keys) {
      for (const auto& v : key.versions) {
        auto& entry = seen[std::string(key.key)][v.version];
        ++entry.first;
        entry.second |= v.committed;
        tombstones[std::string(key.key)][v.version] |= v.tombstone;
      }
    }
    if (listing.truncated && !listing.keys.empty()) {
      std::string last(listing.keys.back().key);
      if (!bound || last < *bound) bound = last;
    }
  }
  std::vector<std::pair<std::string, Version>> expected;
  for (const auto& [key, versions] : seen) {
    if (bound && key > *bound) break;
    for (const auto& [version, holders] : versions) {
      if (!(holders.second || holders.first >= k)) continue;
      if (!tombstones[key][version]) expected.emplace_back(key, version);
      break;
    }
  }
  DDSPLIT_FUZZ_ASSERT(page.entries.size() <= limit);
  DDSPLIT_FUZZ_ASSERT(page.entries.size() == std::min(limit, expected.size()));
  for (size_t i = 0; i < page.entries.size(); ++i) {
    DDSPLIT_FUZZ_ASSERT(page.entries[i].key == expected[i].first);
    DDSPLIT_FUZZ_ASSERT(page.entries[i].version == expected[i].second);
  }
  // The cursor resumes after the last key returned, never past a key not returned.
  if (expected.size() > limit) {
    DDSPLIT_FUZZ_ASSERT(page.next_cursor == std::string(page.entries.back().key));
  } else if (bound) {
    DDSPLIT_FUZZ_ASSERT(!page.next_cursor.empty());
  }
  if (!page.next_cursor.empty() && !page.entries.empty()) {
    DDSPLIT_FUZZ_ASSERT(page.next_cursor >= page.entries.back().key);
  }
}

}  // namespace
}  // namespace ddsplit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ddsplit::fuzz::FuzzInput in(data, size);
  if (in.Bool()) {
    ddsplit::fuzz::CheckChoice(in);
  } else {
    ddsplit::fuzz::CheckListing(in);
  }
  return 0;
}
