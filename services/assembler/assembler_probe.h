// AssemblerProbe: every metric the assembler exports, registered once; names live in the .cpp.
// Every labelled series exists (at zero) from construction. When metrics are switched off
// (metrics::Enabled() false) every method does nothing. Thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "common/metrics/metrics.h"

namespace ddsplit::assembler {

enum class AssemblerReject : uint8_t { kMalformed, kInvalidArgument, kUnexpected, kCount };

// How a placement store that answered a read stood with the version read.
enum class UnhealthyFragment : uint8_t {
  kMissing,  // holds neither that version nor an older one
  kStale,    // holds only older versions
  kCorrupt,  // holds it, but it failed its checksum
  kCount
};

class AssemblerProbe {
 public:
  explicit AssemblerProbe(metrics::ProcessMetrics& process);

  metrics::OperationMetrics& get() { return get_; }
  metrics::OperationMetrics& head() { return head_; }
  metrics::OperationMetrics& multi_get() { return multi_get_; }
  metrics::OperationMetrics& list() { return list_; }
  metrics::OperationMetrics& stat() { return stat_; }
  void StageObserved(Stage stage, uint64_t queue_ns, uint64_t work_ns) {
    stages_.Observe(stage, queue_ns, work_ns);  // a no-op when metrics are off
  }
  void MessageRejected(AssemblerReject reason);
  void BusyRejection();
  void DegradedRead();
  void CorruptFragmentReported();
  void StaleReadRefused();
  void HedgedFetch();
  void FragmentReceived(uint64_t bytes);
  void RecordBytesSent(uint64_t bytes);
  void RecordChecksumMismatch();
  void ReplyUndeliverable();
  // A read found the record it answered lacking fragments on these many of its placement stores
  // (by state); stores that did not answer are not counted. Call once per read, only when the
  // total is positive.
  void RecordMissingFragments(const std::array<int, static_cast<size_t>(UnhealthyFragment::kCount)>&
                                  by_state);

  // Repair (repairer.h). A repair of one record finished: fragments rebuilt and acknowledged,
  // fragments that needed a rebuild and did not get one, bytes fetched to decode and written.
  void RepairFinished(bool read_repair, int rebuilt, int failed, uint64_t bytes_read,
                      uint64_t bytes_written);
  // The repair of a record was refused or failed as a whole (no version could be chosen, too
  // few fragments readable, ...).
  void RepairFailed();
  // A record assessed by a repair had `spare` healthy fragments beyond the k it needs (0..m;
  // negative counts as 0).
  void RepairAssessed(int spare);
  // A degraded read scheduled a repair of its key; `dropped` when the queue was full.
  void ReadRepairScheduled(bool dropped);
  void RepairQueueDepth(size_t depth);

 private:
  static constexpr size_t kSpareBuckets = 5;  // 0, 1, 2, 3, 4+
  std::array<prometheus::Counter*, kSpareBuckets> repair_assessed_{};
  prometheus::Counter* repair_records_ = nullptr;
  prometheus::Counter* read_repair_records_ = nullptr;
  prometheus::Counter* repair_fragments_ = nullptr;
  prometheus::Counter* repair_fragment_failures_ = nullptr;
  prometheus::Counter* repair_failures_ = nullptr;
  prometheus::Counter* repair_bytes_written_ = nullptr;
  prometheus::Counter* repair_bytes_read_ = nullptr;
  prometheus::Counter* read_repairs_scheduled_ = nullptr;
  prometheus::Counter* read_repairs_dropped_ = nullptr;
  prometheus::Gauge* repair_queue_ = nullptr;
  metrics::StageHistograms stages_;
  metrics::OperationMetrics get_;
  metrics::OperationMetrics head_;
  metrics::OperationMetrics multi_get_;
  metrics::OperationMetrics list_;
  metrics::OperationMetrics stat_;
  std::array<prometheus::Counter*, static_cast<size_t>(AssemblerReject::kCount)> rejected_{};
  std::array<prometheus::Counter*, static_cast<size_t>(UnhealthyFragment::kCount)> unhealthy_{};
  prometheus::Counter* busy_ = nullptr;
  prometheus::Counter* degraded_ = nullptr;
  prometheus::Counter* corrupt_ = nullptr;
  prometheus::Counter* stale_ = nullptr;
  prometheus::Counter* hedged_ = nullptr;
  prometheus::Counter* fragments_in_ = nullptr;
  prometheus::Counter* fragment_bytes_in_ = nullptr;
  prometheus::Counter* bytes_out_ = nullptr;
  prometheus::Counter* checksum_mismatch_ = nullptr;
  prometheus::Counter* undeliverable_ = nullptr;
  prometheus::Counter* records_missing_ = nullptr;
};

}  // namespace ddsplit::assembler
