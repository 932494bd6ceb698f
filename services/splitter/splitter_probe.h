// SplitterProbe: every metric the splitter exports, registered once; names live in the .cpp.
// Every labelled series exists (at zero) from construction. When metrics are switched off
// (metrics::Enabled() false) every method does nothing. Thread-safe.
#pragma once

#include <array>
#include <cstdint>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "common/metrics/metrics.h"

namespace ddsplit::splitter {

enum class SplitterReject : uint8_t { kMalformed, kInvalidArgument, kTooLarge, kUnexpected, kCount };
enum class SendFailure : uint8_t { kNotConnected, kUnroutable, kCount };

class SplitterProbe {
 public:
  explicit SplitterProbe(metrics::ProcessMetrics& process);

  metrics::OperationMetrics& put() { return put_; }
  metrics::OperationMetrics& del() { return delete_; }
  void StageObserved(Stage stage, uint64_t queue_ns, uint64_t work_ns) {
    stages_.Observe(stage, queue_ns, work_ns);  // a no-op when metrics are off
  }
  void MessageRejected(SplitterReject reason);
  void BusyRejection();
  void QuorumFailure();
  void FragmentSent(uint64_t bytes);
  void FragmentNotSent(SendFailure reason);
  void RecordReceived(uint64_t bytes);
  void ReplyUndeliverable();
  // An acknowledgement for a write already answered; `failed` when it reports a failed write
  // (then the record lacks that fragment).
  void LateAck(bool failed);
  // A write answered as successful although some of its fragments are known not to be stored.
  void WriteUnderReplicated();
  // How many placement stores the splitter has a working connection to.
  void StoresConnected(size_t count);

 private:
  metrics::StageHistograms stages_;
  metrics::OperationMetrics put_;
  metrics::OperationMetrics delete_;
  std::array<prometheus::Counter*, static_cast<size_t>(SplitterReject::kCount)> rejected_{};
  std::array<prometheus::Counter*, static_cast<size_t>(SendFailure::kCount)> not_sent_{};
  prometheus::Counter* busy_ = nullptr;
  prometheus::Counter* quorum_failures_ = nullptr;
  prometheus::Counter* fragments_sent_ = nullptr;
  prometheus::Counter* bytes_out_ = nullptr;
  prometheus::Counter* records_in_ = nullptr;
  prometheus::Counter* bytes_in_ = nullptr;
  prometheus::Counter* undeliverable_ = nullptr;
  prometheus::Counter* late_acks_ = nullptr;
  prometheus::Counter* late_failures_ = nullptr;
  prometheus::Counter* under_replicated_ = nullptr;
  prometheus::Gauge* stores_connected_ = nullptr;
};

}  // namespace ddsplit::splitter
