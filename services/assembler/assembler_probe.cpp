#include "services/assembler/assembler_probe.h"

#include <iterator>

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
