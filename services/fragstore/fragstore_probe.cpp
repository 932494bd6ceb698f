#include "services/fragstore/fragstore_probe.h"

#include "services/fragstore/fragment_store.h"

namespace ddsplit::fragstore {
namespace {

using metrics::AddCounter;
using metrics::AddGauge;
using metrics::Enabled;

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

double D(uint64_t value) { return static_cast<double>(value); }

}  // namespace

FragstoreProbe::FragstoreProbe(metrics::ProcessMetrics& process)
    : stages_(process.registry(), "fragstore",
              {Stage::kReceive, Stage::kVerify, Stage::kStoreCommit, Stage::kReply,
               Stage::kStoreRead, Stage::kList}),
      fetch_(process.registry(), "fragstore", "fetch"),
      list_(process.registry(), "fragstore", "list"),
      write_(process.registry(), "fragstore", "write") {
  auto& registry = process.registry();
  auto& rejected = prometheus::BuildCounter()
                       .Name("ddsplit_fragstore_rejected_messages_total")
                       .Help("Messages refused before touching stored data, by reason.")
                       .Register(registry);
  for (size_t i = 0; i < rejected_.size(); ++i) {
    rejected_[i] = &rejected.Add({{"reason", ReasonLabel(static_cast<RejectReason>(i))}});
  }
  fragments_received_ = &AddCounter(registry, "ddsplit_fragstore_fragments_received_total",
                                    "Fragments received on the ingest socket.");
  bytes_received_ = &AddCounter(registry, "ddsplit_fragstore_received_bytes_total",
                                "Fragment payload bytes received on the ingest socket.");
  batches_ = &AddCounter(registry, "ddsplit_fragstore_commit_batches_total",
                         "Group commits written to RocksDB.");
  batch_failures_ = &AddCounter(registry, "ddsplit_fragstore_commit_failures_total",
                                "Group commits RocksDB refused (every write in them failed).");
  wal_syncs_ = &AddCounter(registry, "ddsplit_fragstore_wal_syncs_total",
                           "Group commits that synced the write-ahead log.");
  batch_operations_ = &prometheus::BuildHistogram()
                           .Name("ddsplit_fragstore_commit_batch_operations")
                           .Help("Operations (writes, commits, aborts) per group commit.")
                           .Register(registry)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
  batch_bytes_ = &prometheus::BuildHistogram()
                      .Name("ddsplit_fragstore_commit_batch_bytes")
                      .Help("Fragment payload bytes per group commit.")
                      .Register(registry)
                      .Add({}, metrics::SizeBuckets());
  fragments_stored_ = &AddCounter(registry, "ddsplit_fragstore_fragments_stored_total",
                                  "Fragments durably stored.");
  bytes_stored_ = &AddCounter(registry, "ddsplit_fragstore_stored_bytes_total",
                              "Fragment payload bytes durably stored.");
  fragments_served_ = &AddCounter(registry, "ddsplit_fragstore_fragments_served_total",
                                  "Fragment payloads sent to readers.");
  bytes_served_ = &AddCounter(registry, "ddsplit_fragstore_served_bytes_total",
                              "Fragment payload bytes sent to readers.");
  corrupt_ = &AddCounter(registry, "ddsplit_fragstore_corrupt_fragments_total",
                         "Stored fragments that failed their checksum when read.");
  acks_dropped_ = &AddCounter(registry, "ddsplit_fragstore_acks_dropped_total",
                              "Acknowledgements that could not be delivered to a splitter.");
  scrub_bytes_ = &AddCounter(registry, "ddsplit_fragstore_scrub_bytes_verified_total",
                             "Fragment bytes the scrub verified against their checksum "
                             "(rate() of it: how much was verified recently).");
  scrub_corrupt_ = &AddCounter(registry, "ddsplit_fragstore_scrub_corrupt_fragments_total",
                               "Fragments the scrub found failing their checksum or unreadable.");
  scrub_passes_ = &AddCounter(registry, "ddsplit_fragstore_scrub_passes_total",
                              "Complete scrub passes over every fragment of the store.");
  estimated_keys_ = &AddGauge(registry, "ddsplit_fragstore_estimated_entries",
                              "RocksDB's estimate of metadata entries held.");
  live_data_bytes_ = &AddGauge(registry, "ddsplit_fragstore_live_data_bytes",
                               "Bytes in live SST files plus the fragments in segment files.");
  blob_bytes_ = &AddGauge(registry, "ddsplit_fragstore_blob_file_bytes",
                          "Bytes in all segment files (large fragments), garbage not yet "
                          "reclaimed included.");
  memtable_bytes_ = &AddGauge(registry, "ddsplit_fragstore_memtable_bytes",
                              "Bytes held in RocksDB memtables.");
  block_cache_bytes_ = &AddGauge(registry, "ddsplit_fragstore_block_cache_bytes",
                                 "Bytes used by the RocksDB block cache.");
  pending_compaction_bytes_ =
      &AddGauge(registry, "ddsplit_fragstore_pending_compaction_bytes",
                "RocksDB's estimate of bytes compaction must rewrite to settle.");
  running_compactions_ = &AddGauge(registry, "ddsplit_fragstore_running_compactions",
                                   "Compactions running now.");
  write_stopped_ = &AddGauge(registry, "ddsplit_fragstore_write_stopped",
                             "1 while RocksDB has stopped writes (a stall), else 0.");
  background_errors_ = &AddGauge(registry, "ddsplit_fragstore_background_errors",
                                 "RocksDB background errors since the store opened.");
  segment_files_ = &AddGauge(registry, "ddsplit_fragstore_segment_files",
                             "Segment files (large fragments) on disk.");
  segment_bytes_moved_ = &AddCounter(
      registry, "ddsplit_fragstore_segment_moved_bytes_total",
      "Fragment bytes moved out of segment files that were mostly garbage, so the files could go.");
  compaction_corruptions_ = &AddGauge(
      registry, "ddsplit_fragstore_compaction_corruptions",
      "Corrupt data met by RocksDB compactions since the store opened. Tolerated: writes go on, "
      "the damaged fragment reads as corrupt until read repair, scrub or heal rewrites it.");
  filesystem_size_ = &AddGauge(registry, "ddsplit_fragstore_filesystem_size_bytes",
                               "Size of the file system holding the store's data directory.");
  filesystem_avail_ =
      &AddGauge(registry, "ddsplit_fragstore_filesystem_avail_bytes",
                "Bytes available to the store on the file system holding its data directory.");
}

void FragstoreProbe::MessageRejected(RejectReason reason) {
  if (!Enabled()) return;
  rejected_[static_cast<size_t>(reason)]->Increment();
}

void FragstoreProbe::FragmentReceived(uint64_t bytes) {
  if (!Enabled()) return;
  fragments_received_->Increment();
  bytes_received_->Increment(D(bytes));
}

void FragstoreProbe::BatchCommitted(size_t operations, uint64_t payload_bytes, bool synced) {
  if (!Enabled()) return;
  batches_->Increment();
  if (synced) wal_syncs_->Increment();
  batch_operations_->Observe(D(operations));
  batch_bytes_->Observe(D(payload_bytes));
}

void FragstoreProbe::BatchFailed() {
  if (!Enabled()) return;
  batch_failures_->Increment();
}

void FragstoreProbe::FragmentStored(uint64_t bytes) {
  if (!Enabled()) return;
  fragments_stored_->Increment();
  bytes_stored_->Increment(D(bytes));
}

void FragstoreProbe::FragmentServed(uint64_t bytes) {
  if (!Enabled()) return;
  fragments_served_->Increment();
  bytes_served_->Increment(D(bytes));
}

void FragstoreProbe::CorruptFragmentDetected() {
  if (!Enabled()) return;
  corrupt_->Increment();
}

void FragstoreProbe::SegmentBytesMoved(uint64_t bytes) {
  if (!Enabled()) return;
  segment_bytes_moved_->Increment(static_cast<double>(bytes));
}

void FragstoreProbe::ScrubVerified(uint64_t bytes) {
  if (!Enabled()) return;
  scrub_bytes_->Increment(static_cast<double>(bytes));
}
void FragstoreProbe::ScrubCorrupt() {
  if (!Enabled()) return;
  scrub_corrupt_->Increment();
}
void FragstoreProbe::ScrubPassCompleted() {
  if (!Enabled()) return;
  scrub_passes_->Increment();
}
void FragstoreProbe::AckDropped() {
  if (!Enabled()) return;
  acks_dropped_->Increment();
}

void FragstoreProbe::StageObserved(Stage stage, uint64_t queue_ns, uint64_t work_ns) {
  stages_.Observe(stage, queue_ns, work_ns);  // a no-op when metrics are off
}

void FragstoreProbe::StorageStats(const StoreStats& stats) {
  if (!Enabled()) return;
  estimated_keys_->Set(D(stats.estimated_keys));
  live_data_bytes_->Set(D(stats.live_data_bytes));
  blob_bytes_->Set(D(stats.blob_bytes));
  segment_files_->Set(D(stats.segments));
  memtable_bytes_->Set(D(stats.memtable_bytes));
  block_cache_bytes_->Set(D(stats.block_cache_bytes));
  pending_compaction_bytes_->Set(D(stats.pending_compaction_bytes));
  running_compactions_->Set(D(stats.running_compactions));
  write_stopped_->Set(stats.write_stopped ? 1 : 0);
  background_errors_->Set(D(stats.background_errors));
  compaction_corruptions_->Set(D(stats.compaction_corruptions));
  filesystem_size_->Set(D(stats.filesystem_size_bytes));
  filesystem_avail_->Set(D(stats.filesystem_avail_bytes));
}

}  // namespace ddsplit::fragstore
