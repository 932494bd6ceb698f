// limits: what this machine can do at best, measured in the same run as DDSplit so the
// benchmark reports ratios rather than absolute times: memcpy bandwidth, ISA-L encode speed,
// raw ZeroMQ tcp loopback throughput (PUSH/PULL) and raw DEALER/ROUTER round-trip latency.
//
// Each probe runs for about `duration`, allocates its buffers up front, and runs its ZeroMQ
// peers on two threads of this process with one context (and I/O thread) each, as two DDSplit
// processes would. Not meant to be called concurrently with one another (they would share the
// CPUs they measure). Errors (a socket that cannot be bound, a peer that never answers): kInternal
// or kDeadlineExceeded with the reason.
#pragma once

#include <chrono>
#include <cstdint>

#include "bench/histogram.h"
#include "common/base/result.h"

namespace ddsplit::bench {

struct Throughput {
  uint64_t operations = 0;  // copies, encodes or messages completed in the window
  uint64_t bytes = 0;       // bytes moved (copied, encoded as record bytes, received)
  double seconds = 0;
  double ops_per_second() const { return seconds > 0 ? operations / seconds : 0; }
  double bytes_per_second() const { return seconds > 0 ? bytes / seconds : 0; }
};

// Copies blocks of `block_bytes` between buffers of at least 64 MiB (so large blocks run out of
// cache, as record payloads do) for `duration`.
Throughput MeasureMemcpy(uint64_t block_bytes, std::chrono::milliseconds duration);

// Encodes records of `record_bytes` with common/codec ReedSolomon k+m (parity into fixed
// buffers, as the splitter does) for `duration`; bytes are record bytes.
Result<Throughput> MeasureEncode(int k, int m, uint64_t record_bytes,
                                 std::chrono::milliseconds duration);

// Raw ZeroMQ PUSH -> PULL over tcp://127.0.0.1, one-frame messages of `message_bytes` sent
// zero-copy from one buffer; counts what the PULL side receives during `duration` (after a
// short warm-up). The high-water mark is bounded to about 64 MiB of queued messages.
Result<Throughput> MeasureZmqPushPull(uint64_t message_bytes, std::chrono::milliseconds duration);

// Raw ZeroMQ DEALER -> ROUTER -> DEALER round trips over tcp://127.0.0.1, one in flight, with
// `message_bytes` each way; records every round trip's nanoseconds in `histogram`.
Status MeasureZmqRoundTrip(uint64_t message_bytes, std::chrono::milliseconds duration,
                           LatencyHistogram& histogram);

}  // namespace ddsplit::bench
