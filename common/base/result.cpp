#include "common/base/result.h"

namespace ddsplit {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kMalformed: return "malformed";
    case ErrorCode::kTooLarge: return "too_large";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kBusy: return "busy";
    case ErrorCode::kDeadlineExceeded: return "deadline_exceeded";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kQuorumFailed: return "quorum_failed";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kRangeNotSatisfiable: return "range_not_satisfiable";
    case ErrorCode::kStale: return "stale";
  }
  return "unknown";
}

std::string Error::ToString() const {
  std::string text(ErrorCodeName(code_));
  if (!message_.empty()) {
    text += ": ";
    text += message_;
  }
  return text;
}

}  // namespace ddsplit
