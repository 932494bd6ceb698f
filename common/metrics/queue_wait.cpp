#include "common/metrics/queue_wait.h"

#include <time.h>

#include <algorithm>

namespace ddsplit::metrics {

uint64_t UnixNanos() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(now.tv_nsec);
}

QueueWait SplitQueueWait(uint64_t sent_ns, uint64_t wake_ns, uint64_t handle_ns) {
  QueueWait wait;
  // The earliest moment the loop could have seen the message.
  const uint64_t visible = sent_ns == 0 ? wake_ns : std::max(sent_ns, wake_ns);
  if (sent_ns != 0 && visible > sent_ns) wait.transit_ns = visible - sent_ns;
  if (handle_ns > visible) wait.loop_ns = handle_ns - visible;
  return wait;
}

}  // namespace ddsplit::metrics
