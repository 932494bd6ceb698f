#include "services/splitter/splitter_server.h"

#include <algorithm>
#include <array>

#include <spdlog/spdlog.h>

#include "common/base/key.h"
#include "common/base/limits.h"
#include "common/metrics/queue_wait.h"
#include "common/transport/buffer_pool.h"
#include "common/transport/transport.h"

namespace ddsplit::splitter {
namespace {

using transport::Bytes;

constexpr auto kPollCap = std::chrono::milliseconds(50);
constexpr auto kExpiryScanInterval = std::chrono::milliseconds(20);
constexpr auto kIdleTrimAfter = std::chrono::seconds(2);

bool Readable(const zmq::pollitem_t& item) { return (item.revents & ZMQ_POLLIN) != 0; }

}  // namespace

struct SplitterServer::PendingWrite {
  bool active = false;
  uint32_t generation = 0;
  zmq::message_t client;  // ROUTER routing id of the requester
  uint64_t request_id = 0;
  std::string key;        // capacity reused from write to write
  Version version;
  bool tombstone = false;
  uint64_t size = 0;
  placement::PlacementSet placement;
  QuorumTracker tracker{0, 0};
  bool had_live_version = false;
  SteadyTime received{};
  SteadyTime sent{};
  SteadyTime deadline{};
  SteadyTime ack_handled{};  // when the deciding ack began to be received; zero if none
  uint64_t ack_wait_ns = 0;  // the deciding ack's time from its store's stamp to then
  wire::Timings timings;
  Error last_store_error{ErrorCode::kUnavailable, ""};
};

SplitterServer::SplitterServer(SplitterOptions options, zmq::context_t& context,
                               SplitterProbe& probe, const Clock& clock)
    : options_(std::move(options)), context_(context), probe_(probe), hlc_(clock), clock_(clock) {}

SplitterServer::~SplitterServer() = default;

Result<std::unique_ptr<SplitterServer>> SplitterServer::Create(SplitterOptions options,
                                                               zmq::context_t& context,
                                                               SplitterProbe& probe,
                                                               const Clock& clock) {
  std::unique_ptr<SplitterServer> server(new SplitterServer(std::move(options), context, probe, clock));
  DDSPLIT_RETURN_IF_ERROR(server->Start());
  return server;
}

Status SplitterServer::Start() {
  DDSPLIT_RETURN_IF_ERROR(config::ValidateCodeShape(options_.shape));
  const int n = options_.shape.k + options_.shape.m;
  if (static_cast<int>(options_.stores.size()) < n) {
    return Error(ErrorCode::kInvalidArgument, "need at least k + m = " + std::to_string(n) +
                                                  " stores, got " + std::to_string(options_.stores.size()));
  }
  auto codec = codec::ReedSolomon::Create(options_.shape.k, options_.shape.m);
  if (!codec.ok()) return std::move(codec).error();
  codec_ = std::move(*codec);
  encoder_ = std::make_unique<RecordEncoder>(*codec_);
  std::vector<placement::StoreInfo> infos;
  for (const auto& store : options_.stores) infos.push_back({store.id, store.zone});
  auto placement = placement::Placement::Create(std::move(infos));
  if (!placement.ok()) return std::move(placement).error();
  placement_ = std::make_unique<placement::Placement>(std::move(*placement));

  transport::SocketOptions client_options;
  client_options.router_mandatory = true;
  client_options.max_message_bytes = static_cast<int64_t>(options_.max_record_bytes + (1 << 20));
  auto clients = transport::MakeSocket(context_, zmq::socket_type::router, client_options);
  if (!clients.ok()) return std::move(clients).error();
  clients_ = std::move(*clients);
  auto client_endpoint = transport::Bind(clients_, options_.client_bind);
  if (!client_endpoint.ok()) return std::move(client_endpoint).error();
  client_endpoint_ = *client_endpoint;

  transport::SocketOptions ack_options;
  ack_options.receive_hwm = 100000;
  ack_options.max_message_bytes = 64 * 1024;
  auto acks = transport::MakeSocket(context_, zmq::socket_type::pull, ack_options);
  if (!acks.ok()) return std::move(acks).error();
  acks_ = std::move(*acks);
  auto ack_endpoint = transport::Bind(acks_, options_.ack_bind);
  if (!ack_endpoint.ok()) return std::move(ack_endpoint).error();
  ack_endpoint_ = *ack_endpoint;
  advertised_ack_endpoint_ = transport::AdvertisedEndpoint(ack_endpoint_, options_.advertise_host);

  for (size_t i = 0; i < options_.stores.size(); ++i) {
    transport::SocketOptions push_options;
    push_options.immediate = true;  // a store that is down fails its fragment at once
    push_options.send_hwm = 256;
    auto push = transport::MakeSocket(context_, zmq::socket_type::push, push_options);
    if (!push.ok()) return std::move(push).error();
    auto watch = transport::ConnectionWatch::Create(context_, *push);
    if (!watch.ok()) return std::move(watch).error();
    DDSPLIT_RETURN_IF_ERROR(transport::Connect(*push, options_.stores[i].ingest));
    store_sockets_.push_back(std::move(*push));
    store_watches_.push_back(std::move(*watch));
    store_index_[options_.stores[i].id.value()] = i;
  }
  decisions_by_store_.resize(options_.stores.size());

  slots_.resize(options_.max_in_flight_writes);
  for (size_t i = options_.max_in_flight_writes; i-- > 0;) free_slots_.push_back(static_cast<uint32_t>(i));
  return OkStatus();
}

size_t SplitterServer::WaitForStores(std::chrono::milliseconds timeout) {
  std::vector<zmq::pollitem_t> items;
  for (auto& watch : store_watches_) items.push_back({watch->events().handle(), 0, ZMQ_POLLIN, 0});
  SteadyTime deadline = clock_.Now() + timeout;
  UpdateStoreConnections();
  while (stores_connected() < store_watches_.size()) {
    SteadyTime now = clock_.Now();
    if (now >= deadline) break;
    try {
      zmq::poll(items.data(), items.size(),
                std::chrono::milliseconds(transport::PollTimeoutMs(now, deadline, kPollCap)));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("poll failed: {}", e.what());
    }
    UpdateStoreConnections();
  }
  return stores_connected();
}

void SplitterServer::UpdateStoreConnections() {
  bool changed = false;
  for (auto& watch : store_watches_) changed |= watch->Update();
  if (!changed) return;
  size_t connected = 0;
  for (size_t i = 0; i < store_watches_.size(); ++i) {
    if (store_watches_[i]->connected()) {
      ++connected;
    } else {
      spdlog::debug("store {} not connected", options_.stores[i].id.value());
    }
  }
  stores_connected_.store(connected, std::memory_order_relaxed);
  probe_.StoresConnected(connected);
}

void SplitterServer::Run(int stop_fd) {
  std::vector<zmq::message_t> frames;
  // Acks, clients, one connection watch per store, and last the stop fd (not polled while
  // draining).
  std::vector<zmq::pollitem_t> items = {{acks_.handle(), 0, ZMQ_POLLIN, 0},
                                        {clients_.handle(), 0, ZMQ_POLLIN, 0}};
  for (auto& watch : store_watches_) items.push_back({watch->events().handle(), 0, ZMQ_POLLIN, 0});
  items.push_back({nullptr, stop_fd, ZMQ_POLLIN, 0});
  const zmq::pollitem_t& stop_item = items.back();
  bool draining = false;
  SteadyTime drain_deadline{};
  SteadyTime last_activity = clock_.Now();
  bool trimmed = true;
  while (true) {
    try {
      zmq::poll(items.data(), draining ? items.size() - 1 : items.size(), kPollCap);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("poll failed: {}", e.what());
      continue;
    }
    SteadyTime now = clock_.Now();
    wake_ns_ = metrics::UnixNanos();
    wake_steady_ = now;
    if (!draining && Readable(stop_item)) {
      draining = true;
      drain_deadline = now + options_.drain_timeout;
      spdlog::info("draining {} writes in flight", in_flight_);
    }
    bool active = false;
    if (std::any_of(items.begin() + 2, items.end() - 1, Readable)) UpdateStoreConnections();
    if (Readable(items[0])) {
      active = true;
      for (int i = 0; i < 1024; ++i) {
        bool overflow = false;
        receive_started_ = clock_.Now();
        auto got = transport::ReceiveMultipart(acks_, frames, 1, overflow);
        if (!got.ok() || !*got) break;
        HandleAck(frames);
      }
    }
    if (Readable(items[1])) {
      active = true;
      for (int i = 0; i < 64; ++i) {
        bool overflow = false;
        receive_started_ = clock_.Now();
        auto got = transport::ReceiveMultipart(clients_, frames, 3, overflow);
        if (!got.ok() || !*got) break;
        if (overflow) {
          probe_.MessageRejected(SplitterReject::kMalformed);
          if (!frames.empty()) {
            ReplyError(std::move(frames[0]), 0, Error(ErrorCode::kMalformed, "too many frames"));
          }
          continue;
        }
        HandleClientMessage(frames, draining);
      }
    }
    now = clock_.Now();
    if (now >= next_expiry_scan_) {
      ExpireWrites(now);
      next_expiry_scan_ = now + kExpiryScanInterval;
    }
    SendDecisions();
    if (active || in_flight_ > 0) {
      last_activity = now;
      trimmed = false;
    } else if (!trimmed && now - last_activity > kIdleTrimAfter) {
      // Give pooled parity buffers back so an idle splitter stays small.
      transport::BufferPool::Global().Trim();
      trimmed = true;
    }
    if (draining) {
      if (in_flight_ == 0) return;
      if (now >= drain_deadline) {
        for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
          if (slots_[slot].active) Finish(slot, Error(ErrorCode::kUnavailable, "splitter shut down"));
        }
        SendDecisions();
        return;
      }
    }
  }
}

void SplitterServer::ReplyError(zmq::message_t&& client, uint64_t request_id, const Error& error) {
  SendToClient(std::move(client), writer_.FinishError(request_id, error));
}

void SplitterServer::SendToClient(zmq::message_t&& client, zmq::message_t&& body) {
  std::array<zmq::message_t, 2> reply{std::move(client), std::move(body)};
  auto sent = transport::SendMultipart(clients_, reply);
  if (!sent.ok() || *sent != transport::SendOutcome::kSent) probe_.ReplyUndeliverable();
}

void SplitterServer::HandleClientMessage(std::vector<zmq::message_t>& frames, bool draining) {
  SteadyTime received = clock_.Now();
  if (frames.size() < 2) {
    probe_.MessageRejected(SplitterReject::kMalformed);
    return;  // not even a routing id and a body: nobody to answer
  }
  auto envelope = wire::ParseEnvelope(aligned_request_.Of(frames[1]));
  if (!envelope.ok()) {
    probe_.MessageRejected(envelope.error().code() == ErrorCode::kTooLarge ? SplitterReject::kTooLarge
                                                                           : SplitterReject::kMalformed);
    ReplyError(std::move(frames[0]), 0, envelope.error());
    return;
  }
  const wire::Envelope& env = **envelope;
  uint64_t request_id = env.request_id();
  auto type = env.body_type();
  if (type != wire::Body::PutRequest && type != wire::Body::DeleteRequest) {
    probe_.MessageRejected(SplitterReject::kUnexpected);
    ReplyError(std::move(frames[0]), request_id,
               Error(ErrorCode::kInvalidArgument, "the splitter serves only Put and Delete"));
    return;
  }
  if ((type == wire::Body::DeleteRequest && frames.size() != 2) ||
      (type == wire::Body::PutRequest && frames.size() > 3)) {
    probe_.MessageRejected(SplitterReject::kMalformed);
    ReplyError(std::move(frames[0]), request_id, Error(ErrorCode::kMalformed, "unexpected frames"));
    return;
  }
  if (draining) {
    ReplyError(std::move(frames[0]), request_id, Error(ErrorCode::kUnavailable, "splitter is shutting down"));
    return;
  }
  StartWrite(std::move(frames[0]), request_id, env, frames.size() == 3 ? &frames[2] : nullptr, received);
}

void SplitterServer::StartWrite(zmq::message_t&& client, uint64_t request_id,
                                const wire::Envelope& envelope, zmq::message_t* value,
                                SteadyTime received) {
  const bool tombstone = envelope.body_type() == wire::Body::DeleteRequest;
  auto& operation = tombstone ? probe_.del() : probe_.put();
  operation.Started();
  const auto* put = envelope.body_as_PutRequest();
  std::string_view key = tombstone ? wire::View(envelope.body_as_DeleteRequest()->key())
                                   : wire::View(put->key());
  uint64_t size = value != nullptr ? value->size() : 0;
  auto refuse = [&](SplitterReject reason, Error error) {
    if (reason != SplitterReject::kCount) probe_.MessageRejected(reason);
    operation.Finished(error.code(), ElapsedNanos(received, clock_.Now()));
    ReplyError(std::move(client), request_id, error);
  };
  if (auto valid = ValidateKey(key); !valid.ok()) {
    return refuse(SplitterReject::kInvalidArgument, valid.error());
  }
  if (!tombstone) {
    if (auto valid = wire::ValidateRecordAttributes(put->content_type(), put->metadata()); !valid.ok()) {
      return refuse(SplitterReject::kInvalidArgument, valid.error());
    }
    if (size > options_.max_record_bytes) {
      return refuse(SplitterReject::kTooLarge,
                    Error(ErrorCode::kTooLarge, "record of " + std::to_string(size) +
                                                    " bytes exceeds the limit of " +
                                                    std::to_string(options_.max_record_bytes)));
    }
  }
  if (free_slots_.empty() || (in_flight_ > 0 && in_flight_bytes_ + size > options_.max_in_flight_bytes)) {
    probe_.BusyRejection();
    return refuse(SplitterReject::kCount, Error(ErrorCode::kBusy, "too many writes in flight"));
  }
  const int n = options_.shape.k + options_.shape.m;
  auto placement = placement_->Place(key, n);
  if (!placement.ok()) return refuse(SplitterReject::kCount, placement.error());
  if (value != nullptr) probe_.RecordReceived(size);
  SteadyTime verified = clock_.Now();

  uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  PendingWrite& write = slots_[slot];
  write.active = true;
  write.client = std::move(client);
  write.request_id = request_id;
  write.key.assign(key);
  write.version = {hlc_.Next(), options_.writer_id};
  write.tombstone = tombstone;
  write.size = size;
  write.placement = *placement;
  write.tracker = QuorumTracker(n, options_.shape.EffectiveQuorum());
  write.had_live_version = false;
  write.received = received;
  write.deadline = received + options_.write_timeout;
  write.ack_handled = {};
  write.ack_wait_ns = 0;
  // Before verification: the request's time in transit, then behind other messages in this loop.
  const metrics::QueueWait wait = metrics::SplitQueueWait(
      envelope.sent_at_ns(), wake_ns_, wake_ns_ + ElapsedNanos(wake_steady_, receive_started_));
  const uint64_t receive_ns = ElapsedNanos(receive_started_, received);
  write.timings.Clear();
  write.timings.Add(Stage::kReceive, wait.transit_ns, receive_ns);
  write.timings.Add(Stage::kVerify, wait.loop_ns, ElapsedNanos(received, verified));
  probe_.StageObserved(Stage::kReceive, wait.transit_ns, receive_ns);
  ++in_flight_;
  in_flight_bytes_ += size;
  uint64_t write_id = (uint64_t{write.generation} << 32) | slot;

  if (tombstone || value == nullptr) {
    if (tombstone) {
      encoder_->EncodeTombstone(encoded_);
    } else {
      encoder_->Encode(zmq::message_t(), encoded_);
    }
  } else {
    encoder_->Encode(std::move(*value), encoded_);
  }
  SteadyTime encoded = clock_.Now();
  write.timings.Add(Stage::kEncode, 0, ElapsedNanos(verified, encoded));
  probe_.StageObserved(Stage::kVerify, wait.loop_ns, ElapsedNanos(received, verified));
  probe_.StageObserved(Stage::kEncode, 0, ElapsedNanos(verified, encoded));

  writer_.Reset();
  auto& fbb = writer_.fbb();
  auto ack_to = fbb.CreateString(advertised_ack_endpoint_);
  auto key_offset = fbb.CreateString(key);
  flatbuffers::Offset<flatbuffers::String> content_type = 0;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::MetaEntry>>> metadata = 0;
  if (!tombstone && put->content_type() != nullptr) content_type = fbb.CreateString(put->content_type());
  if (!tombstone && put->metadata() != nullptr && put->metadata()->size() > 0) {
    std::array<flatbuffers::Offset<wire::MetaEntry>, kMaxMetadataEntries> entries;
    size_t count = 0;
    for (const auto* entry : *put->metadata()) {
      entries[count++] = wire::CreateMetaEntry(fbb, fbb.CreateString(entry->name()),
                                               fbb.CreateString(entry->value()));
    }
    metadata = fbb.CreateVectorOfSortedTables(entries.data(), count);
  }
  std::array<uint32_t, kMaxFragments> store_ids{};
  for (int i = 0; i < n; ++i) store_ids[i] = write.placement.stores[i].value();
  auto placement_offset = fbb.CreateVector(store_ids.data(), n);
  auto checksums_offset = fbb.CreateVector(encoded_.checksums.data(), n);
  auto version = wire::ToWire(write.version);
  wire::WriteFragmentBuilder body(fbb);
  body.add_write_id(write_id);
  body.add_ack_to(ack_to);
  body.add_key(key_offset);
  body.add_version(&version);
  body.add_k(static_cast<uint8_t>(options_.shape.k));
  body.add_m(static_cast<uint8_t>(options_.shape.m));
  body.add_record_size(size);
  body.add_record_checksum(encoded_.record_checksum);
  body.add_tombstone(tombstone);
  if (!content_type.IsNull()) body.add_content_type(content_type);
  if (!metadata.IsNull()) body.add_metadata(metadata);
  body.add_placement(placement_offset);
  body.add_fragment_checksums(checksums_offset);
  zmq::message_t header = writer_.Finish(0, body.Finish());

  for (int i = 0; i < n; ++i) {
    std::array<zmq::message_t, 2> frames;
    frames[0].copy(header);  // shares the bytes; no copy, no allocation
    frames[1] = std::move(encoded_.fragments[i]);
    auto& socket = store_sockets_[store_index_[write.placement.stores[i].value()]];
    uint64_t fragment_bytes = frames[1].size();
    auto sent = transport::SendMultipart(socket, frames);
    if (sent.ok() && *sent == transport::SendOutcome::kSent) {
      probe_.FragmentSent(fragment_bytes);
    } else {
      probe_.FragmentNotSent(SendFailure::kNotConnected);
      write.tracker.Report(i, false);
    }
  }
  write.sent = clock_.Now();
  write.timings.Add(Stage::kFanOut, 0, ElapsedNanos(encoded, write.sent));
  probe_.StageObserved(Stage::kFanOut, 0, ElapsedNanos(encoded, write.sent));
  if (write.tracker.outcome() == QuorumTracker::Outcome::kImpossible) {
    Finish(slot, Error(ErrorCode::kUnavailable,
                       "only " + std::to_string(n - write.tracker.failed()) + " of " +
                           std::to_string(n) + " stores reachable; the write needs " +
                           std::to_string(write.tracker.quorum())));
  }
}

void SplitterServer::HandleAck(std::vector<zmq::message_t>& frames) {
  auto envelope = wire::ParseEnvelope(aligned_ack_.Of(frames[0]));
  if (!envelope.ok() || (*envelope)->body_as_FragmentAck() == nullptr) {
    probe_.MessageRejected(SplitterReject::kMalformed);
    return;
  }
  const auto* ack = (*envelope)->body_as_FragmentAck();
  uint32_t slot = static_cast<uint32_t>(ack->write_id());
  uint32_t generation = static_cast<uint32_t>(ack->write_id() >> 32);
  if (slot >= slots_.size() || !slots_[slot].active || slots_[slot].generation != generation) {
    probe_.LateAck(ack->error() != nullptr);
    return;
  }
  PendingWrite& write = slots_[slot];
  int index = ack->fragment_index();
  if (index >= write.placement.size || write.placement.stores[index].value() != ack->store_id()) {
    probe_.MessageRejected(SplitterReject::kMalformed);
    return;
  }
  bool ok = ack->error() == nullptr;
  if (ok) {
    write.had_live_version |= ack->had_live_version();
  } else {
    write.last_store_error = wire::FromWire(ack->error());
  }
  auto outcome = write.tracker.Report(index, ok);
  if (outcome != QuorumTracker::Outcome::kPending) {
    // This ack decided the write: its time from the store's stamp until this loop took it up is
    // the ack stage's queue wait.
    write.ack_handled = receive_started_;
    write.ack_wait_ns = metrics::WaitSince(
        (*envelope)->sent_at_ns(), wake_ns_ + ElapsedNanos(wake_steady_, receive_started_));
  }
  if (outcome == QuorumTracker::Outcome::kReached) {
    // The store whose commit completed the quorum is the one the client waited for: its stages
    // (receive, verify, store_commit) go into the reply.
    write.timings.AddFrom((*envelope)->timings());
    Finish(slot, std::nullopt);
  } else if (outcome == QuorumTracker::Outcome::kImpossible) {
    probe_.QuorumFailure();
    Finish(slot, Error(ErrorCode::kQuorumFailed,
                       std::to_string(write.tracker.failed()) + " of " +
                           std::to_string(write.tracker.fragments()) +
                           " stores failed the write; last: " + write.last_store_error.ToString()));
  }
}

void SplitterServer::Finish(uint32_t slot, std::optional<Error> error) {
  PendingWrite& write = slots_[slot];
  SteadyTime now = clock_.Now();
  // Decided by an ack: its wait, then the decision. Otherwise (no store reachable, deadline):
  // the whole time since the fan-out, as work.
  const bool by_ack = write.ack_handled != SteadyTime{};
  const uint64_t ack_queue_ns = by_ack ? write.ack_wait_ns : 0;
  const uint64_t ack_work_ns = ElapsedNanos(by_ack ? write.ack_handled : write.sent, now);
  write.timings.Add(Stage::kAck, ack_queue_ns, ack_work_ns);
  probe_.StageObserved(Stage::kAck, ack_queue_ns, ack_work_ns);
  if (!error && write.tracker.failed() > 0) probe_.WriteUnderReplicated();
  auto& operation = write.tombstone ? probe_.del() : probe_.put();
  operation.Finished(error ? error->code() : ErrorCode::kOk, ElapsedNanos(write.received, now));
  QueueDecision(write, !error.has_value());
  if (error) {
    ReplyError(std::move(write.client), write.request_id, *error);
  } else {
    writer_.Reset();
    auto& fbb = writer_.fbb();
    auto version = wire::ToWire(write.version);
    zmq::message_t body;
    if (write.tombstone) {
      body = writer_.Finish(write.request_id, wire::CreateDeleteReply(fbb, &version, write.had_live_version),
                            write.timings.view());
    } else {
      body = writer_.Finish(write.request_id,
                            wire::CreatePutReply(fbb, &version, write.size, !write.had_live_version),
                            write.timings.view());
    }
    SendToClient(std::move(write.client), std::move(body));
  }
  probe_.StageObserved(Stage::kReply, 0, ElapsedNanos(now, clock_.Now()));
  write.active = false;
  ++write.generation;
  --in_flight_;
  in_flight_bytes_ -= write.size;
  free_slots_.push_back(slot);
}

void SplitterServer::QueueDecision(const PendingWrite& write, bool commit) {
  const auto index = static_cast<uint32_t>(decisions_.size());
  decisions_.push_back({decision_keys_.size(), write.key.size(), write.version, commit});
  decision_keys_.append(write.key);
  for (int i = 0; i < write.placement.size; ++i) {
    decisions_by_store_[store_index_.at(write.placement.stores[i].value())].push_back(index);
  }
}

void SplitterServer::SendDecisions() {
  if (decisions_.empty()) return;
  std::array<flatbuffers::Offset<wire::VersionDecision>, kMaxDecisionsPerMessage> entries;
  for (size_t store = 0; store < store_sockets_.size(); ++store) {
    auto& pending = decisions_by_store_[store];
    if (pending.empty()) continue;
    for (size_t begin = 0; begin < pending.size(); begin += kMaxDecisionsPerMessage) {
      const size_t count = std::min(kMaxDecisionsPerMessage, pending.size() - begin);
      writer_.Reset();
      auto& fbb = writer_.fbb();
      for (size_t i = 0; i < count; ++i) {
        const Decision& decision = decisions_[pending[begin + i]];
        auto key = fbb.CreateString(decision_keys_.data() + decision.key_offset, decision.key_size);
        auto version = wire::ToWire(decision.version);
        entries[i] = wire::CreateVersionDecision(fbb, key, &version, decision.commit);
      }
      auto list = fbb.CreateVector(entries.data(), count);
      zmq::message_t message = writer_.Finish(0, wire::CreateVersionDecisions(fbb, list));
      // Usually every store has the same decisions (each write went to all of them): the other
      // stores get a copy of this frame, which shares its bytes, instead of their own.
      const bool whole = begin == 0 && count == pending.size();
      for (size_t other = store + 1; whole && other < store_sockets_.size(); ++other) {
        if (decisions_by_store_[other] != pending) continue;
        zmq::message_t shared;
        shared.copy(message);
        (void)transport::SendMultipart(store_sockets_[other], std::span(&shared, 1));
        decisions_by_store_[other].clear();
      }
      (void)transport::SendMultipart(store_sockets_[store], std::span(&message, 1));
    }
    pending.clear();
  }
  decisions_.clear();
  decision_keys_.clear();
}

void SplitterServer::ExpireWrites(SteadyTime now) {
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    PendingWrite& write = slots_[slot];
    if (!write.active || now < write.deadline) continue;
    probe_.QuorumFailure();
    Finish(slot, Error(ErrorCode::kDeadlineExceeded,
                       "write quorum not reached in time: " + std::to_string(write.tracker.durable()) +
                           " of " + std::to_string(write.tracker.quorum()) + " needed fragments durable"));
  }
}

}  // namespace ddsplit::splitter
