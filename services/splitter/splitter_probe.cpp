#include "services/splitter/splitter_probe.h"

namespace ddsplit::splitter {
SplitterProbe::SplitterProbe(metrics::ProcessMetrics& process)
    : stages_(process.registry(), "splitter"),
      put_(process.registry(), "splitter", "put"),
      delete_(process.registry(), "splitter", "delete") {
  auto& registry = process.registry();
  auto& rejected = prometheus::BuildCounter()
                       .Name("ddsplit_splitter_rejected_messages_total")
                       .Help("Client messages refused before any store was contacted, by reason")
                       .Register(registry);
  const char* reject_labels[] = {"malformed", "invalid_argument", "too_large", "unexpected_message"};
  for (size_t i = 0; i < rejected_.size(); ++i) rejected_[i] = &rejected.Add({{"reason", reject_labels[i]}});
  auto& not_sent = prometheus::BuildCounter()
                       .Name("ddsplit_splitter_fragments_not_sent_total")
                       .Help("Fragments that could not be handed to their store's socket, by reason")
                       .Register(registry);
  const char* send_labels[] = {"not_connected_or_full", "unroutable"};
  for (size_t i = 0; i < not_sent_.size(); ++i) not_sent_[i] = &not_sent.Add({{"reason", send_labels[i]}});
  busy_ = &metrics::AddCounter(registry, "ddsplit_splitter_busy_rejections_total",
                         "Writes refused with BUSY because too many were in flight");
  quorum_failures_ = &metrics::AddCounter(registry, "ddsplit_splitter_quorum_failures_total",
                                    "Writes that did not reach their write quorum");
  fragments_sent_ = &metrics::AddCounter(registry, "ddsplit_splitter_fragments_sent_total",
                                   "Fragments handed to store sockets");
  bytes_out_ = &metrics::AddCounter(registry, "ddsplit_splitter_fragment_bytes_sent_total",
                              "Fragment payload bytes handed to store sockets");
  bytes_in_ = &metrics::AddCounter(registry, "ddsplit_splitter_record_bytes_received_total",
                             "Record payload bytes received from clients");
  undeliverable_ = &metrics::AddCounter(registry, "ddsplit_splitter_replies_undeliverable_total",
                                  "Replies dropped because the client had gone");
  late_acks_ = &metrics::AddCounter(registry, "ddsplit_splitter_late_acks_total",
                              "Acknowledgements that arrived after their write had finished");
}

void SplitterProbe::MessageRejected(SplitterReject reason) { rejected_[static_cast<size_t>(reason)]->Increment(); }
void SplitterProbe::BusyRejection() { busy_->Increment(); }
void SplitterProbe::QuorumFailure() { quorum_failures_->Increment(); }
void SplitterProbe::FragmentSent(uint64_t bytes) {
  fragments_sent_->Increment();
  bytes_out_->Increment(static_cast<double>(bytes));
}
void SplitterProbe::FragmentNotSent(SendFailure reason) { not_sent_[static_cast<size_t>(reason)]->Increment(); }
void SplitterProbe::RecordReceived(uint64_t bytes) { bytes_in_->Increment(static_cast<double>(bytes)); }
void SplitterProbe::ReplyUndeliverable() { undeliverable_->Increment(); }
void SplitterProbe::LateAck() { late_acks_->Increment(); }

}  // namespace ddsplit::splitter
