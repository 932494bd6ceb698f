#include <doctest/doctest.h>

#include "services/splitter/quorum.h"

namespace ddsplit::splitter {
namespace {

using Outcome = QuorumTracker::Outcome;

TEST_CASE("the quorum is reached after q distinct durable fragments") {
  QuorumTracker tracker(6, 5);
  for (int i = 0; i < 4; ++i) CHECK(tracker.Report(i, true) == Outcome::kPending);
  CHECK(tracker.Report(2, true) == Outcome::kPending);  // a repeat counts once
  CHECK(tracker.Report(4, true) == Outcome::kReached);
  CHECK(tracker.durable() == 5);
}

TEST_CASE("the write fails as soon as the quorum is out of reach") {
  QuorumTracker tracker(6, 5);
  CHECK(tracker.Report(0, false) == Outcome::kPending);
  CHECK(tracker.Report(1, false) == Outcome::kImpossible);
  QuorumTracker lenient(6, 4);
  lenient.Report(0, false);
  lenient.Report(1, false);
  CHECK(lenient.outcome() == Outcome::kPending);
  for (int i = 2; i < 6; ++i) lenient.Report(i, true);
  CHECK(lenient.outcome() == Outcome::kReached);
}

TEST_CASE("out-of-range indices are ignored") {
  QuorumTracker tracker(3, 2);
  CHECK(tracker.Report(7, true) == Outcome::kPending);
  CHECK(tracker.Report(-1, false) == Outcome::kPending);
  CHECK(tracker.durable() == 0);
  CHECK(tracker.failed() == 0);
}

}  // namespace
}  // namespace ddsplit::splitter
