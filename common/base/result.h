// Result<T>: the one error-or-value type used at every module boundary in DDSplit.
//
// An Error is a code plus a short human-readable message, never a payload, so Result<T> stays
// about the size of T. Codes share their numbering with the wire's ErrorCode so an error can
// cross a process boundary unchanged. Thread-safety: plain values.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <optional>
#include <variant>

namespace ddsplit {

enum class ErrorCode : uint16_t {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kMalformed = 3,
  kTooLarge = 4,
  kUnavailable = 5,
  kBusy = 6,
  kDeadlineExceeded = 7,
  kCorrupt = 8,
  kQuorumFailed = 9,
  kInternal = 10,
  kRangeNotSatisfiable = 11,
  kStale = 12,
};
inline constexpr uint16_t kMaxErrorCode = 12;

// Stable lower-case name of a code, for logs, metric labels and the CLI.
std::string_view ErrorCodeName(ErrorCode code);

class [[nodiscard]] Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {
    assert(code != ErrorCode::kOk);
  }

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not_found: no such key" style text for logs and the CLI.
  std::string ToString() const;

 private:
  ErrorCode code_;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(state_); }
  const T& value() const& { assert(ok()); return std::get<0>(state_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { assert(!ok()); return std::get<1>(state_); }
  Error&& error() && { assert(!ok()); return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Error> state_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::in_place, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const& { assert(!ok()); return *error_; }
  Error&& error() && { assert(!ok()); return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status OkStatus() { return {}; }

}  // namespace ddsplit

// Propagates an error from an expression returning Status or Result<T>.
#define DDSPLIT_RETURN_IF_ERROR(expr)                   \
  do {                                                  \
    auto ddsplit_status_ = (expr);                      \
    if (!ddsplit_status_.ok()) return std::move(ddsplit_status_).error(); \
  } while (0)
