#include "services/splitter/splitter_probe.h"

#include <iterator>

namespace ddsplit::splitter {
namespace {

using metrics::AddCounter;
using metrics::AddGauge;
using metrics::Enabled;

}  // namespace

SplitterProbe::SplitterProbe(metrics::ProcessMetrics& process)
    : stages_(process.registry(), "splitter",
              {Stage::kReceive, Stage::kVerify, Stage::kEncode, Stage::kFanOut, Stage::kAck,
               Stage::kReply}),
      put_(process.registry(), "splitter", "put"),
      delete_(process.registry(), "splitter", "delete") {
  auto& registry = process.registry();
  auto& rejected = prometheus::BuildCounter()
                       .Name("ddsplit_splitter_rejected_messages_total")
                       .Help("Client messages refused before any store was contacted, by reason.")
                       .Register(registry);
  const char* reject_labels[] = {"malformed", "invalid_argument", "too_large",
                                 "unexpected_message"};
  static_assert(std::size(reject_labels) == static_cast<size_t>(SplitterReject::kCount));
  for (size_t i = 0; i < rejected_.size(); ++i) {
    rejected_[i] = &rejected.Add({{"reason", reject_labels[i]}});
  }
  auto& not_sent = prometheus::BuildCounter()
                       .Name("ddsplit_splitter_fragments_not_sent_total")
                       .Help("Fragments that could not be handed to their store's socket, by "
                             "reason.")
                       .Register(registry);
  const char* send_labels[] = {"not_connected_or_full", "unroutable"};
  static_assert(std::size(send_labels) == static_cast<size_t>(SendFailure::kCount));
  for (size_t i = 0; i < not_sent_.size(); ++i) {
    not_sent_[i] = &not_sent.Add({{"reason", send_labels[i]}});
  }
  busy_ = &AddCounter(registry, "ddsplit_splitter_busy_rejections_total",
                      "Writes refused with BUSY because too many were in flight.");
  quorum_failures_ = &AddCounter(registry, "ddsplit_splitter_quorum_failures_total",
                                 "Writes that did not reach their write quorum.");
  fragments_sent_ = &AddCounter(registry, "ddsplit_splitter_fragments_sent_total",
                                "Fragments handed to store sockets.");
  bytes_out_ = &AddCounter(registry, "ddsplit_splitter_fragment_bytes_sent_total",
                           "Fragment payload bytes handed to store sockets.");
  records_in_ = &AddCounter(registry, "ddsplit_splitter_records_received_total",
                            "Records (Put requests with a value) received from clients.");
  bytes_in_ = &AddCounter(registry, "ddsplit_splitter_record_bytes_received_total",
                          "Record payload bytes received from clients.");
  undeliverable_ = &AddCounter(registry, "ddsplit_splitter_replies_undeliverable_total",
                               "Replies dropped because the client had gone.");
  late_acks_ = &AddCounter(registry, "ddsplit_splitter_late_acks_total",
                           "Acknowledgements that arrived after their write had been answered.");
  late_failures_ =
      &AddCounter(registry, "ddsplit_splitter_late_fragment_failures_total",
                  "Late acknowledgements reporting a failed fragment write (the record lacks "
                  "that fragment).");
  under_replicated_ =
      &AddCounter(registry, "ddsplit_splitter_writes_under_replicated_total",
                  "Writes answered as successful although at least one of their fragments is "
                  "known not to be stored (records without full redundancy).");
  stores_connected_ = &AddGauge(registry, "ddsplit_splitter_stores_connected",
                                "Stores this splitter has a working connection to (ZeroMQ "
                                "handshake done); a store not connected misses its fragments.");
}

void SplitterProbe::MessageRejected(SplitterReject reason) {
  if (!Enabled()) return;
  rejected_[static_cast<size_t>(reason)]->Increment();
}
void SplitterProbe::BusyRejection() {
  if (!Enabled()) return;
  busy_->Increment();
}
void SplitterProbe::QuorumFailure() {
  if (!Enabled()) return;
  quorum_failures_->Increment();
}
void SplitterProbe::FragmentSent(uint64_t bytes) {
  if (!Enabled()) return;
  fragments_sent_->Increment();
  bytes_out_->Increment(static_cast<double>(bytes));
}
void SplitterProbe::FragmentNotSent(SendFailure reason) {
  if (!Enabled()) return;
  not_sent_[static_cast<size_t>(reason)]->Increment();
}
void SplitterProbe::RecordReceived(uint64_t bytes) {
  if (!Enabled()) return;
  records_in_->Increment();
  bytes_in_->Increment(static_cast<double>(bytes));
}
void SplitterProbe::ReplyUndeliverable() {
  if (!Enabled()) return;
  undeliverable_->Increment();
}
void SplitterProbe::LateAck(bool failed) {
  if (!Enabled()) return;
  late_acks_->Increment();
  if (failed) late_failures_->Increment();
}
void SplitterProbe::WriteUnderReplicated() {
  if (!Enabled()) return;
  under_replicated_->Increment();
}

void SplitterProbe::StoresConnected(size_t count) {
  if (!Enabled()) return;
  stores_connected_->Set(static_cast<double>(count));
}

}  // namespace ddsplit::splitter
