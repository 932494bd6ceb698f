#include "services/assembler/assembler_probe.h"

#include <algorithm>
#include <iterator>
#include <string>

namespace ddsplit::assembler {
namespace {

using metrics::AddCounter;
using metrics::Enabled;

}  // namespace

AssemblerProbe::AssemblerProbe(metrics::ProcessMetrics& process)
    : stages_(process.registry(), "assembler",
              {Stage::kReceive, Stage::kVerify, Stage::kFetch, Stage::kDecode, Stage::kReply,
               Stage::kList}),
      get_(process.registry(), "assembler", "get"),
      head_(process.registry(), "assembler", "head"),
      multi_get_(process.registry(), "assembler", "multi_get"),
      list_(process.registry(), "assembler", "list"),
      stat_(process.registry(), "assembler", "stat") {
  auto& registry = process.registry();
  auto& rejected = prometheus::BuildCounter()
                       .Name("ddsplit_assembler_rejected_messages_total")
                       .Help("Client messages refused before any store was asked, by reason.")
                       .Register(registry);
  const char* labels[] = {"malformed", "invalid_argument", "unexpected_message"};
  static_assert(std::size(labels) == static_cast<size_t>(AssemblerReject::kCount));
  for (size_t i = 0; i < rejected_.size(); ++i) rejected_[i] = &rejected.Add({{"reason", labels[i]}});
  auto& unhealthy = prometheus::BuildCounter()
                        .Name("ddsplit_assembler_unhealthy_fragments_total")
                        .Help("Fragments of records read that a placement store lacked, by state "
                              "(missing, stale, corrupt).")
                        .Register(registry);
  const char* states[] = {"missing", "stale", "corrupt"};
  static_assert(std::size(states) == static_cast<size_t>(UnhealthyFragment::kCount));
  for (size_t i = 0; i < unhealthy_.size(); ++i) {
    unhealthy_[i] = &unhealthy.Add({{"state", states[i]}});
  }
  records_missing_ =
      &AddCounter(registry, "ddsplit_assembler_records_missing_fragments_total",
                  "Reads whose record lacked a healthy fragment on at least one placement store "
                  "(records without full redundancy, as far as reads can tell).");
  busy_ = &AddCounter(registry, "ddsplit_assembler_busy_rejections_total",
                      "Reads refused with BUSY because too many were in flight.");
  degraded_ = &AddCounter(registry, "ddsplit_assembler_degraded_reads_total",
                          "Reads that rebuilt at least one data fragment from parity.");
  corrupt_ = &AddCounter(registry, "ddsplit_assembler_corrupt_fragments_total",
                         "Fragments stores reported as failing their checksum.");
  stale_ = &AddCounter(registry, "ddsplit_assembler_stale_reads_refused_total",
                       "Reads refused because a newer acknowledged version was unreadable.");
  hedged_ = &AddCounter(registry, "ddsplit_assembler_hedged_fetches_total",
                        "Parity fragments fetched because a data fragment was slow or missing.");
  fragments_in_ = &AddCounter(registry, "ddsplit_assembler_fragments_received_total",
                              "Fragment payloads received from stores.");
  fragment_bytes_in_ = &AddCounter(registry, "ddsplit_assembler_fragment_bytes_received_total",
                                   "Fragment payload bytes received from stores.");
  bytes_out_ = &AddCounter(registry, "ddsplit_assembler_record_bytes_sent_total",
                           "Record bytes sent to clients.");
  checksum_mismatch_ = &AddCounter(registry, "ddsplit_assembler_record_checksum_mismatches_total",
                                   "Assembled records whose checksum did not match.");
  undeliverable_ = &AddCounter(registry, "ddsplit_assembler_replies_undeliverable_total",
                               "Replies dropped because the client had gone.");
  auto& assessed = prometheus::BuildCounter()
                       .Name("ddsplit_assembler_repair_records_assessed_total")
                       .Help("Records assessed by repairs (heal walk, read repair), by spare "
                             "fragments found healthy beyond the k needed (4 means 4 or more).")
                       .Register(registry);
  for (size_t i = 0; i < repair_assessed_.size(); ++i) {
    repair_assessed_[i] = &assessed.Add({{"spare", std::to_string(i)}});
  }
  repair_records_ = &AddCounter(registry, "ddsplit_assembler_repaired_records_total",
                                "Records with at least one fragment rebuilt by a repair.");
  read_repair_records_ = &AddCounter(registry, "ddsplit_assembler_read_repaired_records_total",
                                     "Records repaired because a degraded read scheduled it.");
  repair_fragments_ = &AddCounter(registry, "ddsplit_assembler_repaired_fragments_total",
                                  "Fragments rebuilt and acknowledged by their store.");
  repair_fragment_failures_ =
      &AddCounter(registry, "ddsplit_assembler_repair_fragment_failures_total",
                  "Fragments that needed a rebuild and did not get one (store unreachable, "
                  "write refused or unacknowledged).");
  repair_failures_ = &AddCounter(registry, "ddsplit_assembler_repair_failures_total",
                                 "Repairs that failed as a whole (no readable version).");
  repair_bytes_written_ = &AddCounter(registry, "ddsplit_assembler_repair_bytes_written_total",
                                      "Fragment bytes written to stores by repairs.");
  repair_bytes_read_ = &AddCounter(registry, "ddsplit_assembler_repair_bytes_read_total",
                                   "Fragment bytes fetched by repairs to decode.");
  read_repairs_scheduled_ = &AddCounter(registry, "ddsplit_assembler_read_repairs_scheduled_total",
                                        "Repairs queued because a read found a fragment missing, "
                                        "stale or corrupt.");
  read_repairs_dropped_ = &AddCounter(registry, "ddsplit_assembler_read_repairs_dropped_total",
                                      "Read repairs not queued because the queue was full.");
  repair_queue_ = &metrics::AddGauge(registry, "ddsplit_assembler_repair_queue_depth",
                                     "Repairs waiting for the repair thread.");
}

void AssemblerProbe::RepairFinished(bool read_repair, int rebuilt, int failed, uint64_t bytes_read,
                                    uint64_t bytes_written) {
  if (!Enabled()) return;
  if (rebuilt > 0) {
    repair_records_->Increment();
    if (read_repair) read_repair_records_->Increment();
  }
  repair_fragments_->Increment(rebuilt);
  repair_fragment_failures_->Increment(failed);
  repair_bytes_read_->Increment(static_cast<double>(bytes_read));
  repair_bytes_written_->Increment(static_cast<double>(bytes_written));
}
void AssemblerProbe::RepairFailed() {
  if (!Enabled()) return;
  repair_failures_->Increment();
}
void AssemblerProbe::RepairAssessed(int spare) {
  if (!Enabled()) return;
  size_t bucket = static_cast<size_t>(std::clamp<int>(spare, 0, kSpareBuckets - 1));
  repair_assessed_[bucket]->Increment();
}
void AssemblerProbe::ReadRepairScheduled(bool dropped) {
  if (!Enabled()) return;
  (dropped ? read_repairs_dropped_ : read_repairs_scheduled_)->Increment();
}
void AssemblerProbe::RepairQueueDepth(size_t depth) {
  if (!Enabled()) return;
  repair_queue_->Set(static_cast<double>(depth));
}

void AssemblerProbe::MessageRejected(AssemblerReject reason) {
  if (!Enabled()) return;
  rejected_[static_cast<size_t>(reason)]->Increment();
}
void AssemblerProbe::BusyRejection() {
  if (!Enabled()) return;
  busy_->Increment();
}
void AssemblerProbe::DegradedRead() {
  if (!Enabled()) return;
  degraded_->Increment();
}
void AssemblerProbe::CorruptFragmentReported() {
  if (!Enabled()) return;
  corrupt_->Increment();
}
void AssemblerProbe::StaleReadRefused() {
  if (!Enabled()) return;
  stale_->Increment();
}
void AssemblerProbe::HedgedFetch() {
  if (!Enabled()) return;
  hedged_->Increment();
}
void AssemblerProbe::FragmentReceived(uint64_t bytes) {
  if (!Enabled()) return;
  fragments_in_->Increment();
  fragment_bytes_in_->Increment(static_cast<double>(bytes));
}
void AssemblerProbe::RecordBytesSent(uint64_t bytes) {
  if (!Enabled()) return;
  bytes_out_->Increment(static_cast<double>(bytes));
}
void AssemblerProbe::RecordChecksumMismatch() {
  if (!Enabled()) return;
  checksum_mismatch_->Increment();
}
void AssemblerProbe::ReplyUndeliverable() {
  if (!Enabled()) return;
  undeliverable_->Increment();
}
void AssemblerProbe::RecordMissingFragments(
    const std::array<int, static_cast<size_t>(UnhealthyFragment::kCount)>& by_state) {
  if (!Enabled()) return;
  int total = 0;
  for (size_t i = 0; i < by_state.size(); ++i) {
    if (by_state[i] <= 0) continue;
    unhealthy_[i]->Increment(static_cast<double>(by_state[i]));
    total += by_state[i];
  }
  if (total > 0) records_missing_->Increment();
}

}  // namespace ddsplit::assembler
