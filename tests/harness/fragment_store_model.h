// FragmentStoreModel: a plain in-memory reference model of the contract of
// fragstore::FragmentStore (services/fragstore/fragment_store.h), for the model test and the
// store fuzz target. It is deliberately simple — std::map of keys to versions — and states the
// expected behaviour of every operation in a few lines, so a disagreement with the real store
// names either a store bug or a contract the header does not state.
//
// What the model holds per key: the committed version (zero if none) and the versions held,
// each with its header bytes, tombstone flag and payload. The rules (from the store's header and
// implementation contract):
//   write  (v): had_live_version = the newest held version older than v exists and is not a
//               tombstone; if v < committed the write is obsolete and nothing changes; otherwise
//               v is held (a tombstone stores no payload).
//   commit (v): if v > committed: committed = v and every held version older than v is dropped.
//   abort  (v): if v > committed and v is held: v is dropped.
// ReadVersions lists held versions newest first; a version is "committed" when it is <= the
// committed version. List visits keys with at least one held version, in key order.
//
// Header-only; not thread-safe; a value type.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/version.h"
#include "services/fragstore/fragment_store.h"

namespace ddsplit::testing {

class FragmentStoreModel {
 public:
  struct HeldVersion {
    std::string header;
    bool tombstone = false;
    std::string payload;  // empty for tombstones
  };
  struct KeyState {
    Version committed;
    std::map<Version, HeldVersion, std::greater<>> versions;  // newest first
  };

  // Applies one operation; returns what the store must report for it.
  fragstore::OpResult Apply(const fragstore::StoreOp& op) {
    fragstore::OpResult result;
    KeyState& state = keys_[std::string(op.key)];
    switch (op.kind) {
      case fragstore::OpKind::kWrite: {
        auto older = state.versions.upper_bound(op.version);  // first version < op.version
        result.had_live_version = older != state.versions.end() && !older->second.tombstone;
        if (op.version < state.committed) {
          result.obsolete = true;
          break;
        }
        HeldVersion& held = state.versions[op.version];
        held.header.assign(reinterpret_cast<const char*>(op.header.data()), op.header.size());
        held.tombstone = op.tombstone;
        if (!op.tombstone) {
          held.payload.assign(reinterpret_cast<const char*>(op.payload.data()), op.payload.size());
        }
        break;
      }
      case fragstore::OpKind::kCommit: {
        if (!(state.committed < op.version)) break;
        state.committed = op.version;
        state.versions.erase(state.versions.upper_bound(op.version), state.versions.end());
        break;
      }
      case fragstore::OpKind::kAbort: {
        if (!(state.committed < op.version)) break;
        state.versions.erase(op.version);
        break;
      }
    }
    return result;
  }

  const KeyState* Find(std::string_view key) const {
    auto it = keys_.find(std::string(key));
    return it == keys_.end() ? nullptr : &it->second;
  }

  // What ReadVersions must return: (version, committed, header) newest first.
  struct ExpectedVersion {
    Version version;
    bool committed = false;
    const HeldVersion* held = nullptr;
  };
  std::vector<ExpectedVersion> Versions(std::string_view key) const {
    std::vector<ExpectedVersion> out;
    const KeyState* state = Find(key);
    if (state == nullptr) return out;
    for (const auto& [version, held] : state->versions) {
      bool committed = !state->committed.IsZero() && !(state->committed < version);
      out.push_back({version, committed, &held});
    }
    return out;
  }

  // The payload ReadPayload must return, or nullopt when it must answer kNotFound.
  std::optional<std::string_view> Payload(std::string_view key, Version version) const {
    const KeyState* state = Find(key);
    if (state == nullptr) return std::nullopt;
    auto it = state->versions.find(version);
    if (it == state->versions.end() || it->second.tombstone) return std::nullopt;
    return std::string_view(it->second.payload);
  }

  // Keys List must visit for (prefix, after): those with a held version, in order.
  std::vector<std::string> ListKeys(std::string_view prefix, std::string_view after) const {
    std::vector<std::string> out;
    for (const auto& [key, state] : keys_) {
      if (state.versions.empty()) continue;
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      if (!after.empty() && !(std::string_view(key) > after)) continue;
      out.push_back(key);
    }
    return out;
  }

  const std::map<std::string, KeyState>& keys() const { return keys_; }

 private:
  std::map<std::string, KeyState> keys_;
};

}  // namespace ddsplit::testing
