// QuorumTracker: the outcome of one write as its fragments' acknowledgements arrive. Succeeds
// once `quorum` distinct fragments are durable; fails as soon as so many have failed that the
// quorum can no longer be reached. Pure value type; not thread-safe.
#pragma once

#include <cstdint>

#include "common/base/result.h"

namespace ddsplit::splitter {

class QuorumTracker {
 public:
  enum class Outcome : uint8_t { kPending, kReached, kImpossible };

  QuorumTracker(int fragments, int quorum) : fragments_(fragments), quorum_(quorum) {}

  // Records fragment `index` as durable (ok) or failed; repeated reports of one index count
  // once. Returns the outcome after this report.
  Outcome Report(int index, bool ok);

  Outcome outcome() const;
  int durable() const { return durable_; }
  int failed() const { return failed_; }
  int fragments() const { return fragments_; }
  int quorum() const { return quorum_; }
  bool Reported(int index) const { return (reported_ & (1u << index)) != 0; }

 private:
  int fragments_;
  int quorum_;
  int durable_ = 0;
  int failed_ = 0;
  uint32_t reported_ = 0;
};

}  // namespace ddsplit::splitter
