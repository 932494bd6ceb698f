#include "services/assembler/assembler_probe.h"

namespace ddsplit::assembler {

AssemblerProbe::AssemblerProbe(metrics::ProcessMetrics& process)
    : stages_(process.registry(), "assembler"),
      get_(process.registry(), "assembler", "get"),
      head_(process.registry(), "assembler", "head"),
      multi_get_(process.registry(), "assembler", "multi_get"),
      list_(process.registry(), "assembler", "list"),
      stat_(process.registry(), "assembler", "stat") {
  auto& registry = process.registry();
  auto& rejected = prometheus::BuildCounter()
                       .Name("ddsplit_assembler_rejected_messages_total")
                       .Help("Client messages refused before any store was asked, by reason")
                       .Register(registry);
  const char* labels[] = {"malformed", "invalid_argument", "unexpected_message"};
  for (size_t i = 0; i < rejected_.size(); ++i) rejected_[i] = &rejected.Add({{"reason", labels[i]}});
  busy_ = &metrics::AddCounter(registry, "ddsplit_assembler_busy_rejections_total",
                               "Reads refused with BUSY because too many were in flight");
  degraded_ = &metrics::AddCounter(registry, "ddsplit_assembler_degraded_reads_total",
                                   "Reads that rebuilt at least one data fragment from parity");
  corrupt_ = &metrics::AddCounter(registry, "ddsplit_assembler_corrupt_fragments_total",
                                  "Fragments stores reported as failing their checksum");
  stale_ = &metrics::AddCounter(registry, "ddsplit_assembler_stale_reads_refused_total",
                                "Reads refused because a newer acknowledged version was unreadable");
  hedged_ = &metrics::AddCounter(registry, "ddsplit_assembler_hedged_fetches_total",
                                 "Parity fragments fetched because a data fragment was slow");
  fragments_in_ = &metrics::AddCounter(registry, "ddsplit_assembler_fragments_received_total",
                                       "Fragment payloads received from stores");
  fragment_bytes_in_ = &metrics::AddCounter(registry, "ddsplit_assembler_fragment_bytes_received_total",
                                            "Fragment payload bytes received from stores");
  bytes_out_ = &metrics::AddCounter(registry, "ddsplit_assembler_record_bytes_sent_total",
                                    "Record bytes sent to clients");
  checksum_mismatch_ = &metrics::AddCounter(registry, "ddsplit_assembler_record_checksum_mismatches_total",
                                            "Assembled records whose checksum did not match");
  undeliverable_ = &metrics::AddCounter(registry, "ddsplit_assembler_replies_undeliverable_total",
                                        "Replies dropped because the client had gone");
}

void AssemblerProbe::MessageRejected(AssemblerReject reason) { rejected_[static_cast<size_t>(reason)]->Increment(); }
void AssemblerProbe::BusyRejection() { busy_->Increment(); }
void AssemblerProbe::DegradedRead() { degraded_->Increment(); }
void AssemblerProbe::CorruptFragmentReported() { corrupt_->Increment(); }
void AssemblerProbe::StaleReadRefused() { stale_->Increment(); }
void AssemblerProbe::HedgedFetch() { hedged_->Increment(); }
void AssemblerProbe::FragmentReceived(uint64_t bytes) {
  fragments_in_->Increment();
  fragment_bytes_in_->Increment(static_cast<double>(bytes));
}
void AssemblerProbe::RecordBytesSent(uint64_t bytes) { bytes_out_->Increment(static_cast<double>(bytes)); }
void AssemblerProbe::RecordChecksumMismatch() { checksum_mismatch_->Increment(); }
void AssemblerProbe::ReplyUndeliverable() { undeliverable_->Increment(); }

}  // namespace ddsplit::assembler
