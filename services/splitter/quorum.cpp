#include "services/splitter/quorum.h"

namespace ddsplit::splitter {

QuorumTracker::Outcome QuorumTracker::Report(int index, bool ok) {
  if (index < 0 || index >= fragments_ || Reported(index)) return outcome();
  reported_ |= 1u << index;
  if (ok) {
    ++durable_;
  } else {
    ++failed_;
  }
  return outcome();
}

QuorumTracker::Outcome QuorumTracker::outcome() const {
  if (durable_ >= quorum_) return Outcome::kReached;
  if (fragments_ - failed_ < quorum_) return Outcome::kImpossible;
  return Outcome::kPending;
}

}  // namespace ddsplit::splitter
