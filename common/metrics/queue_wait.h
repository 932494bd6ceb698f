// queue_wait: where a message's time went before its handling began, split into time in transit
// (the sender's stack, the network, ZeroMQ's pipes and I/O thread) and time waiting in the
// receiving event loop behind other messages. Pure functions over nanosecond timestamps on the
// CLOCK_REALTIME scale: the sender stamps Envelope.sent_at_ns when it builds a message, the
// receiver takes UnixNanos() when its poll wakes up and when it starts handling the message.
//
// Accuracy: exact (to the clock's resolution) when sender and receiver share a host; across hosts
// as good as their clock synchronisation (NTP typically keeps it well under a millisecond). A
// receiver whose clock is behind the sender's would see negative waits: every result is clamped
// at zero. The stamp is taken when the sender builds the message, so time the sender spent
// between building and sending counts as transit. Thread-safe (no state).
#pragma once

#include <cstdint>

namespace ddsplit::metrics {

// Nanoseconds since the Unix epoch, CLOCK_REALTIME (a vDSO call, about 20 ns).
uint64_t UnixNanos();

struct QueueWait {
  uint64_t transit_ns = 0;  // from the sender's stamp until the receiving loop could see it
  uint64_t loop_ns = 0;     // from then until the loop started handling it
};

// `sent_ns`: the sender's stamp, 0 when the sender did not set one (then transit is 0 and the
// loop wait starts at the wake-up). `wake_ns`: when the receiving loop's poll returned, before it
// started draining its sockets. `handle_ns`: when handling of this message began. A message that
// arrived while the loop was already draining (stamp after the wake-up) waited in the loop only
// from its stamp on.
QueueWait SplitQueueWait(uint64_t sent_ns, uint64_t wake_ns, uint64_t handle_ns);

// The whole wait from the sender's stamp to `handle_ns`, clamped at zero; 0 if `sent_ns` is 0.
inline uint64_t WaitSince(uint64_t sent_ns, uint64_t handle_ns) {
  return sent_ns != 0 && handle_ns > sent_ns ? handle_ns - sent_ns : 0;
}

}  // namespace ddsplit::metrics
