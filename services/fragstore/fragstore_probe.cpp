#include "services/fragstore/fragstore_probe.h"

#include "services/fragstore/fragment_store.h"

namespace ddsplit::fragstore {
namespace {

const char* ReasonLabel(RejectReason reason) {
  switch (reason) {
    case RejectReason::kMalformed: return "malformed";
    case RejectReason::kInvalidKey: return "invalid_key";
    case RejectReason::kBadShape: return "bad_shape";
    case RejectReason::kNotPlaced: return "not_placed";
    case RejectReason::kSizeMismatch: return "size_mismatch";
    case RejectReason::kChecksumMismatch: return "checksum_mismatch";
    case RejectReason::kTooLarge: return "too_large";
    case RejectReason::kUnexpected: return "unexpected_message";
    case RejectReason::kCount: break;
  }
  return "unknown";
}

}  // namespace

FragstoreProbe::FragstoreProbe(metrics::ProcessMetrics& process)
    : stages_(process.registry(), "fragstore"),
      fetch_(process.registry(), "fragstore", "fetch"),
      list_(process.registry(), "fragstore", "list"),
      write_(process.registry(), "fragstore", "write") {
  auto& registry = process.registry();
  auto& rejected = prometheus::BuildCounter()
                       .Name("ddsplit_fragstore_rejected_messages_total")
                       .Help("Messages refused before touching stored data, by reason")
                       .Register(registry);
  for (size_t i = 0; i < rejected_.size(); ++i) {
    rejected_[i] = &rejected.Add({{"reason", ReasonLabel(static_cast<RejectReason>(i))}});
  }
  batches_ = &metrics::AddCounter(registry, "ddsplit_fragstore_commit_batches_total",
                            "Group commits written to RocksDB");
  wal_syncs_ = &metrics::AddCounter(registry, "ddsplit_fragstore_wal_syncs_total",
                              "Group commits that synced the write-ahead log");
  batch_operations_ = &prometheus::BuildHistogram()
                           .Name("ddsplit_fragstore_commit_batch_operations")
                           .Help("Operations per group commit")
                           .Register(registry)
                           .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
  fragments_stored_ = &metrics::AddCounter(registry, "ddsplit_fragstore_fragments_stored_total",
                                     "Fragments durably stored");
  bytes_stored_ = &metrics::AddCounter(registry, "ddsplit_fragstore_stored_bytes_total",
                                 "Fragment payload bytes durably stored");
  fragments_served_ = &metrics::AddCounter(registry, "ddsplit_fragstore_fragments_served_total",
                                     "Fragment payloads sent to readers");
  bytes_served_ = &metrics::AddCounter(registry, "ddsplit_fragstore_served_bytes_total",
                                 "Fragment payload bytes sent to readers");
  corrupt_ = &metrics::AddCounter(registry, "ddsplit_fragstore_corrupt_fragments_total",
                            "Stored fragments that failed their checksum when read");
  acks_dropped_ = &metrics::AddCounter(registry, "ddsplit_fragstore_acks_dropped_total",
                                 "Acknowledgements that could not be delivered to a splitter");
  estimated_keys_ = &metrics::AddGauge(registry, "ddsplit_fragstore_estimated_entries",
                                 "RocksDB's estimate of metadata entries held");
  live_data_bytes_ = &metrics::AddGauge(registry, "ddsplit_fragstore_live_data_bytes",
                                  "Bytes in live SST and blob files");
  memtable_bytes_ = &metrics::AddGauge(registry, "ddsplit_fragstore_memtable_bytes",
                                 "Bytes held in RocksDB memtables");
  block_cache_bytes_ = &metrics::AddGauge(registry, "ddsplit_fragstore_block_cache_bytes",
                                    "Bytes used by the RocksDB block cache");
}

void FragstoreProbe::MessageRejected(RejectReason reason) {
  rejected_[static_cast<size_t>(reason)]->Increment();
}

void FragstoreProbe::BatchCommitted(size_t operations, uint64_t payload_bytes, bool synced) {
  (void)payload_bytes;
  batches_->Increment();
  if (synced) wal_syncs_->Increment();
  batch_operations_->Observe(static_cast<double>(operations));
}

void FragstoreProbe::FragmentStored(uint64_t bytes) {
  fragments_stored_->Increment();
  bytes_stored_->Increment(static_cast<double>(bytes));
}

void FragstoreProbe::FragmentServed(uint64_t bytes) {
  fragments_served_->Increment();
  bytes_served_->Increment(static_cast<double>(bytes));
}

void FragstoreProbe::CorruptFragmentDetected() { corrupt_->Increment(); }
void FragstoreProbe::AckDropped() { acks_dropped_->Increment(); }

void FragstoreProbe::StageObserved(Stage stage, uint64_t queue_ns, uint64_t work_ns) {
  stages_.Observe(stage, queue_ns, work_ns);
}

void FragstoreProbe::StorageStats(const StoreStats& stats) {
  estimated_keys_->Set(static_cast<double>(stats.estimated_keys));
  live_data_bytes_->Set(static_cast<double>(stats.live_data_bytes));
  memtable_bytes_->Set(static_cast<double>(stats.memtable_bytes));
  block_cache_bytes_->Set(static_cast<double>(stats.block_cache_bytes));
}

}  // namespace ddsplit::fragstore
