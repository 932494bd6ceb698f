// Which version of a key a read may return, from what the placement stores reported.
//
// A reader never mixes versions and never returns an older version than one that may have been
// acknowledged. A version may have been acknowledged if a store says it is committed, or if the
// stores holding it plus the stores that did not answer could make up the write quorum. The
// newest usable version wins — k healthy fragments for a record; for a tombstone one holder that
// is committed or k holders — unless a newer version may have been acknowledged: then the read
// waits for more answers, or fails with kStale when every store has answered.
// Pure functions; safe from any thread.
#pragma once

#include <span>

#include "common/base/limits.h"
#include "common/base/result.h"
#include "common/base/version.h"

namespace ddsplit::assembler {

// One version one store holds.
struct VersionReport {
  Version version;
  bool committed = false;
  bool tombstone = false;
  bool corrupt = false;      // the store could not verify this version's bytes
  int fragment_index = -1;
};

// Everything one store said about a key.
struct StoreAnswer {
  bool answered = false;
  std::span<const VersionReport> versions;
};

struct VersionChoice {
  enum class Kind : uint8_t {
    kUse,     // read `version` (or answer NotFound if it is a tombstone)
    kAbsent,  // no version of the key can have been acknowledged: NotFound
    kWait,    // more answers are needed to decide
    kFail,    // cannot be decided safely; `error` says why
  };
  Kind kind = Kind::kAbsent;
  Version version;
  bool tombstone = false;
  int healthy_holders = 0;
  ErrorCode error_code = ErrorCode::kOk;
  // Why a read fails; short. Owned by the caller's Error when needed.
  int blocking_holders = 0;
  Version blocking_version;
};

// `final` means no further answers will come (the deadline passed): kWait becomes kFail.
VersionChoice ChooseVersion(std::span<const StoreAnswer> answers, int k, int quorum, bool final);

// The error text for a kFail choice.
Error ChoiceError(const VersionChoice& choice, int k, int unanswered);

}  // namespace ddsplit::assembler
