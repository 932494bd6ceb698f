#include "services/assembler/version_choice.h"

#include <algorithm>
#include <array>

namespace ddsplit::assembler {
namespace {

struct Tally {
  Version version;
  int holders = 0;          // stores that hold it, healthy or not
  int healthy_holders = 0;
  bool committed = false;
  bool tombstone = false;
};

constexpr size_t kMaxTallies = kMaxFragments * 4;

}  // namespace

VersionChoice ChooseVersion(std::span<const StoreAnswer> answers, int k, int quorum, bool final) {
  std::array<Tally, kMaxTallies> tallies;
  size_t count = 0;
  int unanswered = 0;
  for (const auto& answer : answers) {
    if (!answer.answered) {
      ++unanswered;
      continue;
    }
    for (const auto& report : answer.versions) {
      auto* tally = std::find_if(tallies.begin(), tallies.begin() + count,
                                 [&](const Tally& t) { return t.version == report.version; });
      if (tally == tallies.begin() + count) {
        if (count == kMaxTallies) continue;
        tally = &tallies[count++];
        tally->version = report.version;
      }
      ++tally->holders;
      if (!report.corrupt) ++tally->healthy_holders;
      tally->committed |= report.committed;
      tally->tombstone |= report.tombstone;
    }
  }
  std::sort(tallies.begin(), tallies.begin() + count,
            [](const Tally& a, const Tally& b) { return b.version < a.version; });

  VersionChoice choice;
  const Tally* blocking = nullptr;
  auto blocked = [&](const Tally& tally) {
    choice.blocking_version = tally.version;
    choice.blocking_holders = tally.healthy_holders;
    if (unanswered > 0 && !final) {
      choice.kind = VersionChoice::Kind::kWait;
    } else {
      choice.kind = VersionChoice::Kind::kFail;
      choice.error_code = ErrorCode::kStale;
    }
    return choice;
  };
  for (size_t i = 0; i < count; ++i) {
    const Tally& tally = tallies[i];
    bool usable = tally.tombstone
                      ? tally.healthy_holders >= 1 && (tally.committed || tally.healthy_holders >= k)
                      : tally.healthy_holders >= k;
    if (usable) {
      if (blocking != nullptr) return blocked(*blocking);
      // A newer version no answer mentions could still have been acknowledged if the silent
      // stores alone could make up its write quorum: wait for them rather than answer old data.
      if (unanswered >= quorum) {
        choice.kind = final ? VersionChoice::Kind::kFail : VersionChoice::Kind::kWait;
        choice.error_code = ErrorCode::kUnavailable;
        return choice;
      }
      choice.kind = VersionChoice::Kind::kUse;
      choice.version = tally.version;
      choice.tombstone = tally.tombstone;
      choice.healthy_holders = tally.healthy_holders;
      return choice;
    }
    bool maybe_acknowledged = tally.committed || tally.holders + unanswered >= quorum;
    if (maybe_acknowledged && blocking == nullptr) blocking = &tally;
  }
  if (blocking != nullptr) {
    auto result = blocked(*blocking);
    if (result.kind == VersionChoice::Kind::kFail) result.error_code = ErrorCode::kUnavailable;
    return result;
  }
  // No version seen can have been acknowledged; one could still hide on unanswered stores.
  if (unanswered >= quorum) {
    choice.kind = final ? VersionChoice::Kind::kFail : VersionChoice::Kind::kWait;
    choice.error_code = ErrorCode::kUnavailable;
    return choice;
  }
  choice.kind = VersionChoice::Kind::kAbsent;
  return choice;
}

Error ChoiceError(const VersionChoice& choice, int k, int unanswered) {
  std::string message;
  if (choice.blocking_version.IsZero()) {
    message = std::to_string(unanswered) + " stores did not answer; the key cannot be resolved";
  } else {
    message = "version " + choice.blocking_version.ToString() + " may be acknowledged but only " +
              std::to_string(choice.blocking_holders) + " of the " + std::to_string(k) +
              " fragments needed are readable";
    if (unanswered > 0) message += " (" + std::to_string(unanswered) + " stores did not answer)";
  }
  return Error(choice.error_code == ErrorCode::kOk ? ErrorCode::kUnavailable : choice.error_code,
               message);
}

}  // namespace ddsplit::assembler
