#include "common/metrics/queue_wait.h"

#include <doctest/doctest.h>

namespace ddsplit::metrics {
namespace {

TEST_CASE("SplitQueueWait separates transit from waiting in the loop") {
  SUBCASE("sent before the wake-up: transit until the wake-up, then the loop") {
    const QueueWait wait = SplitQueueWait(1000, 1600, 1900);
    CHECK(wait.transit_ns == 600);
    CHECK(wait.loop_ns == 300);
  }
  SUBCASE("sent while the loop was draining: no transit before the stamp counts") {
    const QueueWait wait = SplitQueueWait(2000, 1600, 2500);
    CHECK(wait.transit_ns == 0);
    CHECK(wait.loop_ns == 500);
  }
  SUBCASE("no stamp: transit unknown (0), loop wait from the wake-up") {
    const QueueWait wait = SplitQueueWait(0, 1600, 1700);
    CHECK(wait.transit_ns == 0);
    CHECK(wait.loop_ns == 100);
  }
  SUBCASE("a sender clock ahead of ours never gives negative waits") {
    const QueueWait wait = SplitQueueWait(5000, 1600, 1700);
    CHECK(wait.transit_ns == 0);
    CHECK(wait.loop_ns == 0);
  }
}

TEST_CASE("WaitSince clamps and ignores missing stamps") {
  CHECK(WaitSince(100, 350) == 250);
  CHECK(WaitSince(400, 350) == 0);
  CHECK(WaitSince(0, 350) == 0);
}

TEST_CASE("UnixNanos is an epoch time in nanoseconds") {
  const uint64_t now = UnixNanos();
  CHECK(now > 1'500'000'000ull * 1'000'000'000ull);  // after 2017
  CHECK(now < 4'000'000'000ull * 1'000'000'000ull);  // before 2096: not microseconds or worse
}

}  // namespace
}  // namespace ddsplit::metrics
