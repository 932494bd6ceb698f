// Time sources. Code that needs the time takes a Clock so tests can inject it; deadlines are
// points on the monotonic clock. Thread-safety: SystemClock is safe from any thread;
// ManualClock is for single-threaded tests.
#pragma once

#include <chrono>
#include <cstdint>

namespace ddsplit {

using SteadyTime = std::chrono::steady_clock::time_point;
using Deadline = SteadyTime;
using Nanos = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch (may jump; used only for version clocks).
  virtual uint64_t UnixMillis() const = 0;
  virtual SteadyTime Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  uint64_t UnixMillis() const override;
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  static const SystemClock& Instance();
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t unix_millis = 1'700'000'000'000ull) : unix_millis_(unix_millis) {}
  uint64_t UnixMillis() const override { return unix_millis_; }
  SteadyTime Now() const override { return steady_; }
  void AdvanceMillis(uint64_t ms) {
    unix_millis_ += ms;
    steady_ += std::chrono::milliseconds(ms);
  }
  void SetUnixMillis(uint64_t ms) { unix_millis_ = ms; }

 private:
  uint64_t unix_millis_;
  SteadyTime steady_{};
};

// Nanoseconds between two steady time points, clamped at zero.
inline uint64_t ElapsedNanos(SteadyTime from, SteadyTime to) {
  auto d = std::chrono::duration_cast<Nanos>(to - from).count();
  return d > 0 ? static_cast<uint64_t>(d) : 0;
}

}  // namespace ddsplit
