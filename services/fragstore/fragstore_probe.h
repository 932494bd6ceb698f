// FragstoreProbe: every metric a fragment store exports, registered once. Server code calls the
// intent-named methods; metric names appear only in fragstore_probe.cpp. Every labelled series
// exists (at zero) from construction. When metrics are switched off (metrics::Enabled() false)
// every method does nothing. Thread-safe.
#pragma once

#include <array>
#include <cstdint>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include "common/metrics/metrics.h"

namespace ddsplit::fragstore {

struct StoreStats;

enum class RejectReason : uint8_t {
  kMalformed,       // failed verification or unexpected frames
  kInvalidKey,
  kBadShape,        // k, m, placement or checksum list inconsistent
  kNotPlaced,       // this store is not in the fragment's placement
  kSizeMismatch,
  kChecksumMismatch,
  kTooLarge,
  kUnexpected,      // a message type this socket does not serve
  kCount
};

class FragstoreProbe {
 public:
  explicit FragstoreProbe(metrics::ProcessMetrics& process);

  void MessageRejected(RejectReason reason);
  // A fragment (and its payload bytes) arrived on the ingest socket.
  void FragmentReceived(uint64_t bytes);
  // One group commit of `operations` operations carrying `payload_bytes`; `synced` when the WAL
  // was synced for it.
  void BatchCommitted(size_t operations, uint64_t payload_bytes, bool synced);
  void BatchFailed();
  void FragmentStored(uint64_t bytes);
  void FragmentServed(uint64_t bytes);
  void CorruptFragmentDetected();
  void AckDropped();
  void StageObserved(Stage stage, uint64_t queue_ns, uint64_t work_ns);
  metrics::OperationMetrics& fetch() { return fetch_; }
  metrics::OperationMetrics& list() { return list_; }
  metrics::OperationMetrics& write() { return write_; }
  // Scrub (scrubber.h): fragment bytes verified against their checksum, fragments found corrupt
  // (or unreadable), complete passes over the store.
  void ScrubVerified(uint64_t bytes);
  void ScrubCorrupt();
  void ScrubPassCompleted();
  // Fragment bytes moved out of sparse segment files (FragmentStore::ReclaimSegments).
  void SegmentBytesMoved(uint64_t bytes);
  // Storage figures, refreshed periodically by the server.
  void StorageStats(const StoreStats& stats);

 private:
  std::array<prometheus::Counter*, static_cast<size_t>(RejectReason::kCount)> rejected_{};
  prometheus::Counter* fragments_received_ = nullptr;
  prometheus::Counter* bytes_received_ = nullptr;
  prometheus::Counter* batches_ = nullptr;
  prometheus::Counter* batch_failures_ = nullptr;
  prometheus::Counter* wal_syncs_ = nullptr;
  prometheus::Histogram* batch_operations_ = nullptr;
  prometheus::Histogram* batch_bytes_ = nullptr;
  prometheus::Counter* fragments_stored_ = nullptr;
  prometheus::Counter* bytes_stored_ = nullptr;
  prometheus::Counter* fragments_served_ = nullptr;
  prometheus::Counter* bytes_served_ = nullptr;
  prometheus::Counter* corrupt_ = nullptr;
  prometheus::Counter* acks_dropped_ = nullptr;
  prometheus::Counter* scrub_bytes_ = nullptr;
  prometheus::Counter* scrub_corrupt_ = nullptr;
  prometheus::Counter* scrub_passes_ = nullptr;
  metrics::StageHistograms stages_;
  metrics::OperationMetrics fetch_;
  metrics::OperationMetrics list_;
  metrics::OperationMetrics write_;
  prometheus::Gauge* estimated_keys_ = nullptr;
  prometheus::Gauge* live_data_bytes_ = nullptr;
  prometheus::Gauge* blob_bytes_ = nullptr;
  prometheus::Gauge* segment_files_ = nullptr;
  prometheus::Counter* segment_bytes_moved_ = nullptr;
  prometheus::Gauge* memtable_bytes_ = nullptr;
  prometheus::Gauge* block_cache_bytes_ = nullptr;
  prometheus::Gauge* pending_compaction_bytes_ = nullptr;
  prometheus::Gauge* running_compactions_ = nullptr;
  prometheus::Gauge* write_stopped_ = nullptr;
  prometheus::Gauge* background_errors_ = nullptr;
  prometheus::Gauge* compaction_corruptions_ = nullptr;
  prometheus::Gauge* filesystem_size_ = nullptr;
  prometheus::Gauge* filesystem_avail_ = nullptr;
};

}  // namespace ddsplit::fragstore
