// How the commit thread sizes a group commit. Header-only, pure: unit-tested on its own.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ddsplit::fragstore {

struct GroupCommitLimits {
  size_t max_operations = 1024;
  // Fragment bytes per group commit, beyond its first operation: RocksDB copies a batch's
  // payloads into its WriteBatch, so an unbounded batch would hold the whole ingest queue twice.
  uint64_t max_bytes = 16ull << 20;
};

// The number of queued operations, oldest first, the next group commit takes: as many as the
// limits allow, and always at least one when `queued` > 0 (a fragment larger than max_bytes is
// committed alone). `payload_bytes(i)` is the fragment size of queued operation i.
template <typename PayloadBytes>
size_t GroupCommitSize(size_t queued, const GroupCommitLimits& limits, PayloadBytes payload_bytes) {
  size_t taken = 0;
  uint64_t bytes = 0;
  while (taken < queued && taken < limits.max_operations) {
    const uint64_t next = payload_bytes(taken);
    if (taken > 0 && bytes + next > limits.max_bytes) break;
    bytes += next;
    ++taken;
  }
  return taken > 0 || queued == 0 ? taken : 1;
}

}  // namespace ddsplit::fragstore
