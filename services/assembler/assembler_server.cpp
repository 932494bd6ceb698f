#include "services/assembler/assembler_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/base/key.h"
#include "common/base/limits.h"
#include "common/codec/checksum.h"
#include "common/metrics/queue_wait.h"
#include "common/transport/buffer_pool.h"
#include "common/transport/transport.h"
#include "services/assembler/list_merge.h"

namespace ddsplit::assembler {
namespace {

using transport::Bytes;

constexpr auto kPollCap = std::chrono::milliseconds(50);
constexpr auto kTimerScanInterval = std::chrono::milliseconds(5);
constexpr auto kIdleTrimAfter = std::chrono::seconds(2);
constexpr int kMaxReportsPerStore = 4;
constexpr uint64_t kRangedFlag = 1;
constexpr size_t kMaxListReplyBytes = kMaxEnvelopeBytes / 2;
constexpr size_t kMaxKeptEnvelopeBytes = 4096;  // per store of a read slot, between reads

bool Readable(const zmq::pollitem_t& item) { return (item.revents & ZMQ_POLLIN) != 0; }

// Counts, once per read, the placement stores that answered without a healthy fragment of
// version `v`: corrupt (held, failed its checksum), stale (only older versions) or missing.
// Stores that did not answer are not counted: they may only be slow.
template <typename StoreStates>
void CountUnhealthyFragments(AssemblerProbe& probe, StoreStates&& stores, Version v) {
  std::array<int, static_cast<size_t>(UnhealthyFragment::kCount)> by_state{};
  bool any = false;
  for (const auto& store : stores) {
    if (!store.answered || store.HoldsHealthy(v)) continue;
    UnhealthyFragment state = UnhealthyFragment::kMissing;
    bool older_only = store.report_count > 0;
    for (int i = 0; i < store.report_count; ++i) {
      if (store.reports[i].version == v) state = UnhealthyFragment::kCorrupt;
      if (!(store.reports[i].version < v)) older_only = false;
    }
    if (state != UnhealthyFragment::kCorrupt && older_only) state = UnhealthyFragment::kStale;
    ++by_state[static_cast<size_t>(state)];
    any = true;
  }
  if (any) probe.RecordMissingFragments(by_state);
}

uint64_t RequestId(uint32_t generation, uint32_t slot, uint64_t flags) {
  return (uint64_t{generation} << 32) | (flags << 24) | slot;
}

// A message holding bytes [offset, offset + length) of `message`, without copying.
zmq::message_t SliceOf(zmq::message_t&& message, uint64_t offset, uint64_t length) {
  if (offset == 0 && length == message.size()) return std::move(message);
  auto* shared = transport::SharedFrame::Adopt(std::move(message));
  zmq::message_t slice = shared->Slice(offset, length);
  shared->Release();
  return slice;
}

Status ValidatePrefix(std::string_view text, const char* what) {
  if (text.size() > kMaxKeyBytes || text.find('\0') != std::string_view::npos || !IsValidUtf8(text)) {
    return Error(ErrorCode::kInvalidArgument, std::string(what) + " must be UTF-8 without NUL, at most 1024 bytes");
  }
  return OkStatus();
}

}  // namespace

struct AssemblerServer::StoreState {
  size_t socket = SIZE_MAX;
  StoreId id;
  int outstanding = 0;     // requests sent and not yet answered
  bool answered = false;   // at least one reply with the store's versions
  bool failed = false;     // could not be asked, answered with an error, or timed out
  bool slow = false;       // past the hedge delay: its data fragment is no longer waited for
  bool deferred = false;   // not asked in round 1; asked only if the data stores do not suffice
  bool full_requested = false;
  int report_count = 0;
  std::array<VersionReport, kMaxReportsPerStore> reports{};
  std::array<const wire::FragmentHeader*, kMaxReportsPerStore> headers{};
  std::array<std::string_view, kMaxReportsPerStore> header_bytes{};
  // A copy of the latest reply kept (8-byte aligned; the reports and headers point into it).
  // Copied so the received frame, and the ZeroMQ receive buffer it may share with other
  // messages, is released at once instead of pinning that buffer until the read ends.
  // Capacity is reused from read to read.
  std::vector<uint64_t> envelope;
  const wire::Envelope* Envelope() const { return wire::GetEnvelope(envelope.data()); }
  void KeepEnvelope(std::span<const std::byte> bytes) {
    envelope.resize((bytes.size() + sizeof(uint64_t) - 1) / sizeof(uint64_t));
    std::memcpy(envelope.data(), bytes.data(), bytes.size());
  }
  zmq::message_t payload;
  bool has_payload = false;
  bool payload_ranged = false;
  Version payload_version;
  int payload_index = -1;

  void Reset() {
    socket = SIZE_MAX;
    outstanding = 0;
    answered = failed = slow = deferred = full_requested = has_payload = payload_ranged = false;
    report_count = 0;
    envelope.clear();
    // Listing replies can be large: do not keep their memory in every slot.
    if (envelope.capacity() * sizeof(uint64_t) > kMaxKeptEnvelopeBytes) envelope = {};
    payload = zmq::message_t();
    payload_index = -1;
  }
  const wire::FragmentHeader* HeaderOf(Version v) const {
    for (int i = 0; i < report_count; ++i) {
      if (reports[i].version == v) return headers[i];
    }
    return nullptr;
  }
  std::string_view HeaderBytesOf(Version v) const {
    for (int i = 0; i < report_count; ++i) {
      if (reports[i].version == v) return header_bytes[i];
    }
    return {};
  }
  bool HoldsHealthy(Version v) const {
    for (int i = 0; i < report_count; ++i) {
      if (reports[i].version == v && !reports[i].corrupt) return true;
    }
    return false;
  }
  bool HasPayloadOf(Version v) const { return has_payload && payload_version == v; }
  bool Settled() const { return answered || failed; }
};

struct AssemblerServer::MultiGetItem {
  std::string key;
  std::optional<Error> error;
  Version version;
  std::string header;  // FragmentHeader bytes of the version returned
  std::vector<zmq::message_t> frames;
};

struct AssemblerServer::Read {
  uint32_t slot = 0;  // this read's own position in slots_
  bool active = false;
  uint32_t generation = 0;
  ReadKind kind = ReadKind::kGet;
  zmq::message_t client;
  uint64_t request_id = 0;
  std::string key;
  bool ranged = false;
  codec::ByteSpan range;
  uint64_t suffix_length = 0;
  placement::PlacementSet placement;
  std::vector<StoreState> stores;  // by placement position (all stores for a listing)
  size_t store_count = 0;
  SteadyTime received{};
  SteadyTime fetch_started{};
  SteadyTime deadline{};
  SteadyTime hedge_at{};
  bool hedged = false;
  wire::Timings timings;
  // MultiGet: an item points at its parent; the parent owns the items.
  uint32_t parent = UINT32_MAX;
  uint32_t parent_generation = 0;
  size_t item_index = 0;
  std::vector<MultiGetItem> items;
  size_t items_pending = 0;
  uint64_t items_bytes = 0;
  // The latest store reply's time from the store's stamp until this loop took it up.
  uint64_t reply_wait_ns = 0;
  // Versions found unreadable after they were chosen: treated as corrupt for the rest of the read.
  std::array<Version, 4> excluded_versions{};
  int excluded_count = 0;
  // List
  std::string prefix;
  std::string cursor;
  uint32_t limit = 0;

  std::span<StoreState> active_stores() { return {stores.data(), store_count}; }
};

AssemblerServer::AssemblerServer(AssemblerOptions options, zmq::context_t& context,
                                 AssemblerProbe& probe, const Clock& clock)
    : options_(std::move(options)), context_(context), probe_(probe), clock_(clock) {}

AssemblerServer::~AssemblerServer() = default;

Result<std::unique_ptr<AssemblerServer>> AssemblerServer::Create(AssemblerOptions options,
                                                                 zmq::context_t& context,
                                                                 AssemblerProbe& probe,
                                                                 const Clock& clock) {
  std::unique_ptr<AssemblerServer> server(new AssemblerServer(std::move(options), context, probe, clock));
  DDSPLIT_RETURN_IF_ERROR(server->Start());
  return server;
}

Status AssemblerServer::Start() {
  DDSPLIT_RETURN_IF_ERROR(config::ValidateCodeShape(options_.shape));
  const int n = options_.shape.k + options_.shape.m;
  if (static_cast<int>(options_.stores.size()) < n) {
    return Error(ErrorCode::kInvalidArgument, "need at least k + m stores");
  }
  std::vector<placement::StoreInfo> infos;
  for (const auto& store : options_.stores) infos.push_back({store.id, store.zone});
  auto placement = placement::Placement::Create(std::move(infos));
  if (!placement.ok()) return std::move(placement).error();
  placement_ = std::make_unique<placement::Placement>(std::move(*placement));
  if (CodecFor(options_.shape.k, options_.shape.m) == nullptr) {
    return Error(ErrorCode::kInvalidArgument, "bad code shape");
  }

  transport::SocketOptions client_options;
  client_options.router_mandatory = true;
  client_options.max_message_bytes = 1 << 20;
  auto clients = transport::MakeSocket(context_, zmq::socket_type::router, client_options);
  if (!clients.ok()) return std::move(clients).error();
  clients_ = std::move(*clients);
  auto endpoint = transport::Bind(clients_, options_.client_bind);
  if (!endpoint.ok()) return std::move(endpoint).error();
  client_endpoint_ = *endpoint;

  for (size_t i = 0; i < options_.stores.size(); ++i) {
    transport::SocketOptions dealer_options;
    dealer_options.immediate = true;  // a store that is down fails its request at once
    dealer_options.send_hwm = 10000;
    dealer_options.receive_hwm = 10000;
    auto dealer = transport::MakeSocket(context_, zmq::socket_type::dealer, dealer_options);
    if (!dealer.ok()) return std::move(dealer).error();
    DDSPLIT_RETURN_IF_ERROR(transport::Connect(*dealer, options_.stores[i].read));
    store_sockets_.push_back(std::move(*dealer));
    store_index_[options_.stores[i].id.value()] = i;
  }
  for (size_t i = 0; i < options_.max_in_flight_reads; ++i) {
    auto read = std::make_unique<Read>();
    read->slot = static_cast<uint32_t>(i);
    read->stores.resize(static_cast<size_t>(n));
    read->timings = {};
    slots_.push_back(std::move(read));
  }
  for (size_t i = options_.max_in_flight_reads; i-- > 0;) free_slots_.push_back(static_cast<uint32_t>(i));
  RepairOptions repair;
  repair.stores = options_.stores;
  repair.shape = options_.shape;
  repair.ack_bind = options_.repair_ack_bind;
  repair.advertise_host = options_.advertise_host;
  repair.fetch_timeout = options_.read_timeout;
  repair.max_queued_read_repairs = options_.max_queued_read_repairs;
  auto repairer = RepairWorker::Start(std::move(repair), context_, probe_);
  if (!repairer.ok()) return std::move(repairer).error();
  repairer_ = std::move(*repairer);
  return OkStatus();
}

codec::ReedSolomon* AssemblerServer::CodecFor(int k, int m) {
  auto key = std::make_pair(k, m);
  auto it = codecs_.find(key);
  if (it != codecs_.end()) return it->second.get();
  auto created = codec::ReedSolomon::Create(k, m);
  if (!created.ok()) return nullptr;
  return codecs_.emplace(key, std::move(*created)).first->second.get();
}

metrics::OperationMetrics& AssemblerServer::OperationOf(ReadKind kind) {
  switch (kind) {
    case ReadKind::kHead: return probe_.head();
    case ReadKind::kStat: return probe_.stat();
    case ReadKind::kMultiGet: return probe_.multi_get();
    case ReadKind::kList: return probe_.list();
    case ReadKind::kGet:
    case ReadKind::kMultiGetItem: break;
  }
  return probe_.get();
}

// ------------------------------------------------------------------------------ loop

void AssemblerServer::Run(int stop_fd) {
  std::vector<zmq::message_t> frames;
  std::vector<zmq::pollitem_t> items;
  items.push_back({clients_.handle(), 0, ZMQ_POLLIN, 0});
  for (auto& socket : store_sockets_) items.push_back({socket.handle(), 0, ZMQ_POLLIN, 0});
  const size_t repair_item = items.size();
  items.push_back({repairer_->results_socket().handle(), 0, ZMQ_POLLIN, 0});
  items.push_back({nullptr, stop_fd, ZMQ_POLLIN, 0});
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
    if (!draining && Readable(items.back())) {
      draining = true;
      drain_deadline = now + options_.drain_timeout;
      spdlog::info("draining {} reads in flight", in_flight_);
    }
    bool active = false;
    for (size_t s = 0; s < store_sockets_.size(); ++s) {
      if (!Readable(items[s + 1])) continue;
      active = true;
      for (int i = 0; i < 256; ++i) {
        bool overflow = false;
        receive_started_ = clock_.Now();
        auto got = transport::ReceiveMultipart(store_sockets_[s], frames, 2, overflow);
        if (!got.ok() || !*got) break;
        if (overflow) continue;
        HandleStoreReply(s, frames);
      }
    }
    if (Readable(items[0])) {
      active = true;
      for (int i = 0; i < 64; ++i) {
        bool overflow = false;
        receive_started_ = clock_.Now();
        auto got = transport::ReceiveMultipart(clients_, frames, 2, overflow);
        if (!got.ok() || !*got) break;
        if (overflow) {
          probe_.MessageRejected(AssemblerReject::kMalformed);
          if (!frames.empty()) ReplyError(std::move(frames[0]), 0, Error(ErrorCode::kMalformed, "too many frames"));
          continue;
        }
        HandleClientMessage(frames, draining);
      }
    }
    if (Readable(items[repair_item])) ForwardRepairReplies();
    now = clock_.Now();
    if (now >= next_timer_scan_) {
      CheckTimers(now);
      next_timer_scan_ = now + kTimerScanInterval;
    }
    if (active || in_flight_ > 0) {
      last_activity = now;
      trimmed = false;
    } else if (!trimmed && now - last_activity > kIdleTrimAfter) {
      transport::BufferPool::Global().Trim();
      trimmed = true;
    }
    if (draining && (in_flight_ == 0 || now >= drain_deadline)) return;
  }
}

void AssemblerServer::SendToClient(zmq::message_t& client, zmq::message_t&& head,
                                   std::span<zmq::message_t> payload) {
  // A member vector, so the frame list's capacity is reused from answer to answer.
  reply_frames_.clear();
  reply_frames_.push_back(std::move(client));
  reply_frames_.push_back(std::move(head));
  for (auto& frame : payload) reply_frames_.push_back(std::move(frame));
  auto sent = transport::SendMultipart(clients_, reply_frames_);
  if (!sent.ok() || *sent != transport::SendOutcome::kSent) probe_.ReplyUndeliverable();
  reply_frames_.clear();  // unsent frames are not kept alive until the next answer
}

void AssemblerServer::ReplyError(zmq::message_t&& client, uint64_t request_id, const Error& error) {
  zmq::message_t id = std::move(client);
  SendToClient(id, writer_.FinishError(request_id, error));
}

std::optional<uint32_t> AssemblerServer::TakeSlot() {
  if (free_slots_.empty()) return std::nullopt;
  uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  ++in_flight_;
  Read& read = *slots_[slot];
  read.active = true;
  read.parent = UINT32_MAX;
  read.hedged = false;
  read.ranged = false;
  read.suffix_length = 0;
  read.timings.Clear();
  read.items.clear();
  read.items_pending = 0;
  read.items_bytes = 0;
  read.reply_wait_ns = 0;
  read.excluded_count = 0;
  return slot;
}

void AssemblerServer::Release(uint32_t slot) {
  Read& read = *slots_[slot];
  for (auto& store : read.active_stores()) store.Reset();
  read.items.clear();
  read.client = zmq::message_t();
  read.active = false;
  ++read.generation;
  --in_flight_;
  free_slots_.push_back(slot);
}

// ------------------------------------------------------------------------------ requests

void AssemblerServer::HandleClientMessage(std::vector<zmq::message_t>& frames, bool draining) {
  SteadyTime received = clock_.Now();
  if (frames.size() != 2) {
    probe_.MessageRejected(AssemblerReject::kMalformed);
    if (frames.size() > 2) ReplyError(std::move(frames[0]), 0, Error(ErrorCode::kMalformed, "unexpected frames"));
    return;
  }
  auto envelope = wire::ParseEnvelope(aligned_request_.Of(frames[1]));
  if (!envelope.ok()) {
    probe_.MessageRejected(AssemblerReject::kMalformed);
    ReplyError(std::move(frames[0]), 0, envelope.error());
    return;
  }
  const wire::Envelope& env = **envelope;
  uint64_t request_id = env.request_id();
  {
    // Before verification: the request's time in transit, then behind other messages here.
    const metrics::QueueWait wait = metrics::SplitQueueWait(
        env.sent_at_ns(), wake_ns_, wake_ns_ + ElapsedNanos(wake_steady_, receive_started_));
    request_transit_ns_ = wait.transit_ns;
    request_loop_ns_ = wait.loop_ns;
    request_receive_ns_ = ElapsedNanos(receive_started_, received);
    probe_.StageObserved(Stage::kReceive, request_transit_ns_, request_receive_ns_);
  }
  if (draining) {
    ReplyError(std::move(frames[0]), request_id, Error(ErrorCode::kUnavailable, "assembler is shutting down"));
    return;
  }
  auto refuse = [&](const Error& error) {
    probe_.MessageRejected(AssemblerReject::kInvalidArgument);
    ReplyError(std::move(frames[0]), request_id, error);
  };
  switch (env.body_type()) {
    case wire::Body::GetRequest:
    case wire::Body::StatRequest: {
      const auto* get = env.body_as_GetRequest();
      std::string_view key = get ? wire::View(get->key()) : wire::View(env.body_as_StatRequest()->key());
      if (auto valid = ValidateKey(key); !valid.ok()) return refuse(valid.error());
      ReadKind kind = get == nullptr ? ReadKind::kStat : get->head_only() ? ReadKind::kHead : ReadKind::kGet;
      if (free_slots_.empty()) {
        probe_.BusyRejection();
        ReplyError(std::move(frames[0]), request_id, Error(ErrorCode::kBusy, "too many reads in flight"));
        return;
      }
      uint32_t slot = StartKeyRead(kind, key, received);
      Read& read = *slots_[slot];
      read.client = std::move(frames[0]);
      read.request_id = request_id;
      if (get != nullptr && get->range() != nullptr) {
        read.ranged = true;
        read.range = {get->range()->offset(), get->range()->length()};
      } else if (get != nullptr) {
        read.suffix_length = get->suffix_length();
      }
      SendFirstRound(read, kind == ReadKind::kGet, kind == ReadKind::kStat);
      Evaluate(slot, false);
      return;
    }
    case wire::Body::MultiGetRequest:
      StartMultiGet(std::move(frames[0]), request_id, *env.body_as_MultiGetRequest(), received);
      return;
    case wire::Body::ListRequest:
      StartList(std::move(frames[0]), request_id, *env.body_as_ListRequest(), received);
      return;
    case wire::Body::RepairRequest:
      return HandleRepairRequest(std::move(frames[0]), request_id, *env.body_as_RepairRequest());
    default:
      probe_.MessageRejected(AssemblerReject::kUnexpected);
      ReplyError(std::move(frames[0]), request_id,
                 Error(ErrorCode::kInvalidArgument, "the assembler serves Get, MultiGet, Head, Stat and List"));
  }
}

uint32_t AssemblerServer::StartKeyRead(ReadKind kind, std::string_view key, SteadyTime received) {
  uint32_t slot = *TakeSlot();
  Read& read = *slots_[slot];
  read.kind = kind;
  read.key.assign(key);
  read.received = received;
  read.fetch_started = clock_.Now();
  read.deadline = received + options_.read_timeout;
  read.hedge_at = received + options_.hedge_after;
  OperationOf(kind == ReadKind::kMultiGetItem ? ReadKind::kGet : kind).Started();
  const int n = options_.shape.k + options_.shape.m;
  auto placement = placement_->Place(key, n);
  read.placement = *placement;  // the store count was checked at start-up
  read.store_count = static_cast<size_t>(n);
  if (read.stores.size() < read.store_count) read.stores.resize(read.store_count);
  for (size_t pos = 0; pos < read.store_count; ++pos) {
    StoreState& store = read.stores[pos];
    store.Reset();
    store.id = read.placement.stores[pos];
    store.socket = store_index_.at(store.id.value());
  }
  read.timings.Add(Stage::kReceive, request_transit_ns_, request_receive_ns_);
  read.timings.Add(Stage::kVerify, request_loop_ns_, ElapsedNanos(received, read.fetch_started));
  if (kind != ReadKind::kMultiGetItem) {
    probe_.StageObserved(Stage::kVerify, request_loop_ns_, ElapsedNanos(received, read.fetch_started));
  }
  return slot;
}

void AssemblerServer::SendFirstRound(Read& read, bool wants_bytes, bool verify) {
  // Round 1 of a read of bytes asks only the k data stores, each for its data fragment (only
  // what a range needs) and its versions. The m others are asked only when the data stores do
  // not suffice (AskDeferredStores): a fragment is missing, corrupt or slower than the hedge
  // delay, or their versions leave the choice open. Version choice counts a store not asked as
  // one that has not answered, so the rule "never older than what may have been acknowledged"
  // holds as before. Head and Stat ask every store for versions. Every store of a kind gets a
  // copy of one frame: shared bytes, no allocation.
  const bool ranged = read.ranged || read.suffix_length > 0;
  const bool data_first = wants_bytes && !verify;
  zmq::message_t data_request;
  if (wants_bytes) data_request = BuildFetch(read, true, ranged, std::nullopt, verify);
  zmq::message_t versions_request;
  if (!data_first) versions_request = BuildFetch(read, false, false, std::nullopt, verify);
  for (size_t pos = 0; pos < read.store_count; ++pos) {
    const bool data = wants_bytes && static_cast<int>(pos) < options_.shape.k;
    if (data_first && !data) {
      read.stores[pos].deferred = true;
      continue;
    }
    SendFetch(read.stores[pos], data ? data_request : versions_request);
  }
}

int AssemblerServer::AskDeferredStores(Read& read, std::optional<Version> version, int limit) {
  int asked = 0;
  zmq::message_t request;  // one frame, a copy to each store asked
  for (auto& store : read.active_stores()) {
    if (asked == limit) break;
    if (!store.deferred) continue;
    store.deferred = false;
    store.full_requested = true;
    if (request.size() == 0) request = BuildFetch(read, true, false, version, false);
    if (SendFetch(store, request)) {
      ++asked;
      probe_.HedgedFetch();
    }
  }
  return asked;
}

bool AssemblerServer::SendFetch(StoreState& store, zmq::message_t& request) {
  zmq::message_t frame;
  frame.copy(request);
  auto sent = transport::SendMultipart(store_sockets_[store.socket], std::span(&frame, 1));
  if (!sent.ok() || *sent != transport::SendOutcome::kSent) {
    store.failed = true;
    return false;
  }
  ++store.outstanding;
  return true;
}

zmq::message_t AssemblerServer::BuildFetch(const Read& read, bool want_payload, bool ranged,
                                           std::optional<Version> version, bool verify) {
  writer_.Reset();
  auto& fbb = writer_.fbb();
  auto key = fbb.CreateString(read.key);
  wire::Version wire_version = version ? wire::ToWire(*version) : wire::Version();
  wire::ByteRange range(read.range.offset, read.range.length);
  wire::FetchRequestBuilder body(fbb);
  body.add_key(key);
  if (version) body.add_version(&wire_version);
  body.add_want_payload(want_payload);
  if (ranged && read.ranged) body.add_range(&range);
  if (ranged && !read.ranged) body.add_suffix_length(read.suffix_length);
  body.add_verify(verify);
  return writer_.Finish(RequestId(read.generation, read.slot, ranged ? kRangedFlag : 0), body.Finish());
}

void AssemblerServer::HandleStoreReply(size_t socket_index, std::vector<zmq::message_t>& frames) {
  auto envelope = wire::ParseEnvelope(aligned_reply_.Of(frames[0]));
  if (!envelope.ok()) {
    probe_.MessageRejected(AssemblerReject::kMalformed);
    return;
  }
  uint64_t id = (*envelope)->request_id();
  uint32_t slot = static_cast<uint32_t>(id & 0xFFFFFF);
  uint32_t generation = static_cast<uint32_t>(id >> 32);
  bool ranged = ((id >> 24) & kRangedFlag) != 0;
  if (slot >= slots_.size()) return;
  Read& read = *slots_[slot];
  if (!read.active || read.generation != generation) return;  // a late answer
  StoreState* store = nullptr;
  for (auto& candidate : read.active_stores()) {
    if (candidate.socket == socket_index) store = &candidate;
  }
  if (store == nullptr) return;
  if (store->outstanding > 0) --store->outstanding;
  read.reply_wait_ns = metrics::WaitSince(
      (*envelope)->sent_at_ns(), wake_ns_ + ElapsedNanos(wake_steady_, receive_started_));
  zmq::message_t payload = frames.size() == 2 ? std::move(frames[1]) : zmq::message_t();
  bool has_payload_frame = frames.size() == 2;
  const wire::Envelope* parsed = *envelope;  // valid while `frames` and aligned_reply_ are
  if (parsed->body_as_FetchReply() != nullptr || parsed->body_as_ListKeysReply() != nullptr) {
    // The store keeps this reply: its version reports will point into it. An error reply
    // leaves the store's earlier reply (and the reports into it) in place.
    store->KeepEnvelope(Bytes(frames[0]));
    parsed = store->Envelope();
  }
  const wire::Envelope& env = *parsed;

  if (read.kind == ReadKind::kList) {
    if (env.body_as_ListKeysReply() != nullptr) {
      store->answered = true;
    } else {
      store->failed = true;
    }
    FinishList(slot, false);
    return;
  }

  const auto* reply = env.body_as_FetchReply();
  if (reply == nullptr) {
    if (!store->answered) store->failed = true;
    Evaluate(slot, false);
    return;
  }
  store->answered = true;
  store->failed = false;
  store->report_count = 0;
  if (reply->versions() != nullptr) {
    for (const auto* held : *reply->versions()) {
      if (store->report_count == kMaxReportsPerStore) break;
      auto header = wire::ParseFragmentHeader(held->header());
      if (!header.ok()) continue;
      int i = store->report_count++;
      store->reports[i] = {wire::FromWire(held->version()), held->committed(), (*header)->tombstone(),
                           held->state() == wire::FragmentState::Corrupt, (*header)->index()};
      store->headers[i] = *header;
      store->header_bytes[i] = {reinterpret_cast<const char*>(held->header()->data()), held->header()->size()};
      for (int e = 0; e < read.excluded_count; ++e) {
        if (read.excluded_versions[e] == store->reports[i].version) store->reports[i].corrupt = true;
      }
    }
  }
  if (reply->payload_error() != nullptr && reply->payload_error()->code() == wire::ErrorCode::Corrupt) {
    probe_.CorruptFragmentReported();
  }
  if (reply->payload_version() != nullptr && has_payload_frame) {
    Version v = wire::FromWire(reply->payload_version());
    const wire::FragmentHeader* header = nullptr;
    for (int i = 0; i < store->report_count; ++i) {
      if (store->reports[i].version == v) header = store->headers[i];
    }
    if (header != nullptr) {
      store->payload = std::move(payload);
      store->has_payload = true;
      store->payload_ranged = ranged;
      store->payload_version = v;
      store->payload_index = header->index();
      probe_.FragmentReceived(store->payload.size());
    }
  }
  read.timings.AddFrom(env.timings());
  Evaluate(slot, false);
}

// ------------------------------------------------------------------------------ decisions

void AssemblerServer::Evaluate(uint32_t slot, bool final) {
  Read& read = *slots_[slot];
  if (!read.active) return;
  bool all_settled = true;
  std::array<StoreAnswer, kMaxFragments> answers;
  for (size_t pos = 0; pos < read.store_count; ++pos) {
    const StoreState& store = read.stores[pos];
    if (!store.answered && !store.failed) all_settled = false;
    answers[pos] = {store.answered, std::span(store.reports.data(), static_cast<size_t>(store.report_count))};
  }
  final = final || all_settled;
  int k = options_.shape.k;
  auto choice = ChooseVersion(std::span(answers.data(), read.store_count), k,
                              options_.shape.EffectiveQuorum(), final);
  int unanswered = 0;
  bool asked_settled = true;  // every store asked so far has answered or failed
  bool any_deferred = false;
  for (size_t pos = 0; pos < read.store_count; ++pos) {
    const StoreState& store = read.stores[pos];
    unanswered += store.answered ? 0 : 1;
    any_deferred |= store.deferred;
    if (!store.deferred && !store.Settled()) asked_settled = false;
  }
  switch (choice.kind) {
    case VersionChoice::Kind::kWait:
      // The data stores alone cannot decide: ask the others once they have all spoken (or the
      // hedge delay has passed with some silent).
      if (any_deferred && !final && (asked_settled || read.hedged)) {
        AskDeferredStores(read, std::nullopt, kMaxFragments);
      }
      return;
    case VersionChoice::Kind::kAbsent:
      // Stores that joined the cluster after a record was written hold nothing for it, so a
      // few empty answers prove little: say "absent" once every store has answered, or once
      // the hedge delay has passed with the rest silent.
      if (any_deferred && !final) {
        AskDeferredStores(read, std::nullopt, kMaxFragments);
        return;
      }
      if (!final && !read.hedged) return;
      return FinishWithError(slot, Error(ErrorCode::kNotFound, "no such key"));
    case VersionChoice::Kind::kFail:
      if (choice.error_code == ErrorCode::kStale) probe_.StaleReadRefused();
      return FinishWithError(slot, ChoiceError(choice, k, unanswered));
    case VersionChoice::Kind::kUse:
      break;
  }
  if (choice.tombstone) return FinishWithError(slot, Error(ErrorCode::kNotFound, "the key was deleted"));
  if (read.kind == ReadKind::kHead) {
    return ReplyRecord(slot, choice.version, {}, {}, false);
  }
  if (read.kind == ReadKind::kStat) {
    if (!all_settled && !final) return;
    return ReplyStat(slot, choice);
  }
  AssembleOrFetch(slot, choice, final);
}

void AssemblerServer::AssembleOrFetch(uint32_t slot, const VersionChoice& choice, bool final) {
  Read& read = *slots_[slot];
  const Version v = choice.version;
  const wire::FragmentHeader* header = nullptr;
  for (auto& store : read.active_stores()) {
    if (header == nullptr) header = store.HeaderOf(v);
  }
  const int k = header->k();
  const int m = header->m();
  const uint64_t size = header->record_size();
  codec::StripeLayout layout(size, k, m);

  codec::ByteSpan range{0, size};
  if (read.ranged) {
    if (read.range.offset >= size) {
      return FinishWithError(slot, Error(ErrorCode::kRangeNotSatisfiable,
                                         "range starts at or after the record's end (" +
                                             std::to_string(size) + " bytes)"));
    }
    range = {read.range.offset, std::min(read.range.length, size - read.range.offset)};
  } else if (read.suffix_length > 0) {
    if (size == 0) return FinishWithError(slot, Error(ErrorCode::kRangeNotSatisfiable, "the record is empty"));
    uint64_t suffix = std::min(read.suffix_length, size);
    range = {size - suffix, suffix};
  }

  // Which data fragments the answer needs, and which we already hold for version v.
  std::array<StoreState*, kMaxFragments> piece{};
  std::array<bool, kMaxFragments> needed{};
  bool missing = false;
  bool waiting_for_data = false;
  for (int i = 0; i < k; ++i) {
    needed[i] = layout.OverlapInFragment(i, range).length > 0;
    if (!needed[i]) continue;
    for (auto& store : read.active_stores()) {
      if (store.HasPayloadOf(v) && store.payload_index == i) piece[i] = &store;
    }
    if (piece[i] != nullptr) continue;
    missing = true;
    // The store placed at position i normally holds fragment i: wait for it unless it is
    // slow, failed or has already answered without it.
    if (static_cast<size_t>(i) < read.store_count) {
      const StoreState& expected = read.stores[i];
      if (expected.outstanding > 0 && !expected.slow && !expected.failed) waiting_for_data = true;
    }
  }
  SteadyTime now = clock_.Now();
  if (!missing) {
    auto& frames = answer_frames_;
    frames.clear();
    for (int i = 0; i < k; ++i) {
      if (!needed[i]) continue;
      StoreState& store = *piece[i];
      auto overlap = layout.OverlapInFragment(i, range);
      if (store.payload_ranged) {
        frames.push_back(std::move(store.payload));
      } else {
        frames.push_back(SliceOf(std::move(store.payload), overlap.offset, overlap.length));
      }
      store.has_payload = false;
    }
    // Queue: the deciding store reply's wait after its store sent it; work: the rest.
    const uint64_t fetch_ns = ElapsedNanos(read.fetch_started, now);
    const uint64_t fetch_queue_ns = std::min(read.reply_wait_ns, fetch_ns);
    read.timings.Add(Stage::kFetch, fetch_queue_ns, fetch_ns - fetch_queue_ns);
    probe_.StageObserved(Stage::kFetch, fetch_queue_ns, fetch_ns - fetch_queue_ns);
    ReplyRecord(slot, v, frames, range, false);
    frames.clear();
    return;
  }
  if (waiting_for_data && !final) return;

  // Degraded: rebuild from any k whole fragments of version v.
  std::array<StoreState*, kMaxFragments> whole{};
  int whole_count = 0;
  int requested = 0;
  for (auto& store : read.active_stores()) {
    if (store.HasPayloadOf(v) && !store.payload_ranged && store.payload_index >= 0 &&
        whole[store.payload_index] == nullptr) {
      whole[store.payload_index] = &store;
      ++whole_count;
    } else if (store.full_requested && store.outstanding > 0 && !store.failed) {
      ++requested;
    }
  }
  if (whole_count < k) {
    int need = k - whole_count - requested;
    if (need > 0) {
      // Ask holders of v for whole fragments, data fragments first.
      std::array<std::pair<int, StoreState*>, kMaxFragments> candidates;  // a key read: <= k + m
      size_t candidate_count = 0;
      for (auto& store : read.active_stores()) {
        if (store.failed || store.full_requested || !store.HoldsHealthy(v)) continue;
        if (store.HasPayloadOf(v) && !store.payload_ranged) continue;
        candidates[candidate_count++] = {store.HeaderOf(v)->index(), &store};
      }
      auto asked = std::span(candidates.data(), candidate_count);
      std::sort(asked.begin(), asked.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      zmq::message_t whole_request;  // one frame, a copy to each store asked
      for (auto& [index, store] : asked) {
        if (need == 0) break;
        store->full_requested = true;
        if (whole_request.size() == 0) whole_request = BuildFetch(read, true, false, v, false);
        if (SendFetch(*store, whole_request)) {
          --need;
          ++requested;
          if (store->slow || index >= k) probe_.HedgedFetch();
        }
      }
      // Then the stores round 1 left out: they normally hold the parity fragments of v.
      if (need > 0 && !final) requested += AskDeferredStores(read, v, need);
    }
    if (whole_count + requested < k) {
      // Fewer fragments of v turned out readable than its reports promised (a fragment found
      // corrupt or a fetch failed after v was chosen). Choose again without v for this read:
      // an older version is used only if v cannot have been acknowledged, else a clear error.
      if (read.excluded_count == static_cast<int>(read.excluded_versions.size())) {
        return FinishWithError(slot, Error(ErrorCode::kUnavailable,
                                           "only " + std::to_string(whole_count + requested) +
                                               " of the " + std::to_string(k) +
                                               " fragments needed for version " + v.ToString() +
                                               " are readable"));
      }
      read.excluded_versions[read.excluded_count++] = v;
      for (auto& store : read.active_stores()) {
        for (int i = 0; i < store.report_count; ++i) {
          if (store.reports[i].version == v) store.reports[i].corrupt = true;
        }
      }
      return Evaluate(slot, final);
    }
    return;  // wait for the whole fragments
  }

  SteadyTime decode_start = clock_.Now();
  codec::ReedSolomon* rs = CodecFor(k, m);
  if (rs == nullptr) return FinishWithError(slot, Error(ErrorCode::kCorrupt, "stored code shape is invalid"));
  std::array<codec::FragmentBytes, kMaxFragments> available;
  int available_count = 0;
  for (int i = 0; i < k + m; ++i) {
    if (whole[i] != nullptr) available[available_count++] = {i, Bytes(whole[i]->payload)};
  }
  std::array<zmq::message_t, kMaxFragments> rebuilt;
  std::array<codec::FragmentOutput, kMaxFragments> outputs;
  int output_count = 0;
  for (int i = 0; i < k; ++i) {
    if (!needed[i] || piece[i] != nullptr || whole[i] != nullptr) continue;
    rebuilt[i] = transport::BufferPool::Global().Take(layout.DataSpan(i).length);
    outputs[output_count++] = {i, {static_cast<std::byte*>(rebuilt[i].data()), rebuilt[i].size()}};
  }
  auto status = rs->Reconstruct(std::span(available.data(), available_count), layout.fragment_size(),
                                std::span(outputs.data(), output_count));
  if (!status.ok()) return FinishWithError(slot, status.error());
  auto& frames = answer_frames_;
  frames.clear();
  for (int i = 0; i < k; ++i) {
    if (!needed[i]) continue;
    auto overlap = layout.OverlapInFragment(i, range);
    if (piece[i] != nullptr && piece[i]->payload_ranged) {
      frames.push_back(std::move(piece[i]->payload));
      piece[i]->has_payload = false;
    } else if (whole[i] != nullptr) {
      frames.push_back(SliceOf(std::move(whole[i]->payload), overlap.offset, overlap.length));
      whole[i]->has_payload = false;
    } else if (piece[i] != nullptr) {
      frames.push_back(SliceOf(std::move(piece[i]->payload), overlap.offset, overlap.length));
      piece[i]->has_payload = false;
    } else {
      frames.push_back(SliceOf(std::move(rebuilt[i]), overlap.offset, overlap.length));
    }
  }
  SteadyTime decoded = clock_.Now();
  const uint64_t fetch_ns = ElapsedNanos(read.fetch_started, decode_start);
  const uint64_t fetch_queue_ns = std::min(read.reply_wait_ns, fetch_ns);
  read.timings.Add(Stage::kFetch, fetch_queue_ns, fetch_ns - fetch_queue_ns);
  read.timings.Add(Stage::kDecode, 0, ElapsedNanos(decode_start, decoded));
  probe_.StageObserved(Stage::kFetch, fetch_queue_ns, fetch_ns - fetch_queue_ns);
  probe_.StageObserved(Stage::kDecode, 0, ElapsedNanos(decode_start, decoded));
  probe_.DegradedRead();
  ReplyRecord(slot, v, frames, range, true);
  frames.clear();
}

// ------------------------------------------------------------------------------ replies

namespace {

flatbuffers::Offset<wire::RecordInfo> BuildRecordInfo(flatbuffers::FlatBufferBuilder& fbb,
                                                      std::string_view key, Version version,
                                                      const wire::FragmentHeader& header) {
  auto key_offset = fbb.CreateString(key);
  auto content_type = header.content_type() ? fbb.CreateString(header.content_type()) : 0;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::MetaEntry>>> metadata = 0;
  if (header.metadata() != nullptr && header.metadata()->size() > 0) {
    std::vector<flatbuffers::Offset<wire::MetaEntry>> entries;
    for (const auto* entry : *header.metadata()) {
      entries.push_back(wire::CreateMetaEntry(fbb, fbb.CreateString(entry->name()),
                                              fbb.CreateString(entry->value())));
    }
    metadata = fbb.CreateVector(entries);
  }
  auto placement = header.placement() ? fbb.CreateVector(header.placement()->data(), header.placement()->size()) : 0;
  auto wire_version = wire::ToWire(version);
  wire::RecordInfoBuilder info(fbb);
  info.add_key(key_offset);
  info.add_version(&wire_version);
  info.add_size(header.record_size());
  info.add_checksum(header.record_checksum());
  if (!content_type.IsNull()) info.add_content_type(content_type);
  if (!metadata.IsNull()) info.add_metadata(metadata);
  info.add_k(header.k());
  info.add_m(header.m());
  if (!placement.IsNull()) info.add_placement(placement);
  return info.Finish();
}

}  // namespace

void AssemblerServer::ReplyRecord(uint32_t slot, Version version, std::span<zmq::message_t> frames,
                                  codec::ByteSpan range, bool degraded) {
  Read& read = *slots_[slot];
  const wire::FragmentHeader* header = nullptr;
  for (auto& store : read.active_stores()) {
    if (header == nullptr) header = store.HeaderOf(version);
  }
  SteadyTime reply_start = clock_.Now();
  CountUnhealthyFragments(probe_, read.active_stores(), version);
  MaybeScheduleReadRepair(slot, version);
  bool whole_record = read.kind != ReadKind::kHead && !read.ranged && read.suffix_length == 0;
  if (whole_record) {
    // End-to-end check: the bytes about to be returned are the bytes that were written.
    codec::ChecksumBuilder checksum;
    for (const auto& frame : frames) checksum.Update(Bytes(frame));
    if (checksum.Finish() != header->record_checksum()) {
      probe_.RecordChecksumMismatch();
      return FinishWithError(slot, Error(ErrorCode::kCorrupt, "assembled record failed its checksum"));
    }
  }
  uint64_t bytes = 0;
  for (const auto& frame : frames) bytes += frame.size();
  if (read.kind == ReadKind::kMultiGetItem) {
    Read& parent = *slots_[read.parent];
    auto& item = parent.items[read.item_index];
    item.version = version;
    for (auto& store : read.active_stores()) {
      auto bytes = store.HeaderBytesOf(version);
      if (!bytes.empty()) {
        item.header.assign(bytes);
        break;
      }
    }
    return CompleteMultiGetItem(slot, std::nullopt, frames);
  }
  writer_.Reset();
  auto& fbb = writer_.fbb();
  auto info = BuildRecordInfo(fbb, read.key, version, *header);
  wire::ByteRange wire_range(range.offset, range.length);
  SteadyTime now = clock_.Now();
  read.timings.Add(Stage::kReply, 0, ElapsedNanos(reply_start, now));
  wire::GetReplyBuilder reply(fbb);
  reply.add_info(info);
  if (read.kind != ReadKind::kHead) reply.add_range(&wire_range);
  reply.add_payload_frames(static_cast<uint32_t>(frames.size()));
  reply.add_degraded(degraded);
  SendToClient(read.client, writer_.Finish(read.request_id, reply.Finish(), read.timings.view()),
               frames);
  probe_.RecordBytesSent(bytes);
  probe_.StageObserved(Stage::kReply, 0, ElapsedNanos(reply_start, clock_.Now()));
  OperationOf(read.kind).Finished(ErrorCode::kOk, ElapsedNanos(read.received, now));
  Release(slot);
}

void AssemblerServer::ReplyStat(uint32_t slot, const VersionChoice& choice) {
  Read& read = *slots_[slot];
  writer_.Reset();
  auto& fbb = writer_.fbb();
  const wire::FragmentHeader* header = nullptr;
  for (auto& store : read.active_stores()) {
    if (header == nullptr) header = store.HeaderOf(choice.version);
  }
  auto info = BuildRecordInfo(fbb, read.key, choice.version, *header);
  CountUnhealthyFragments(probe_, read.active_stores(), choice.version);
  std::vector<flatbuffers::Offset<wire::FragmentHealth>> fragments;
  for (size_t pos = 0; pos < read.store_count; ++pos) {
    const StoreState& store = read.stores[pos];
    wire::FragmentState state = wire::FragmentState::Unreachable;
    int index = static_cast<int>(pos);
    wire::Version newest;
    if (store.answered) {
      state = wire::FragmentState::Missing;
      if (store.report_count > 0) newest = wire::ToWire(store.reports[0].version);
      for (int i = 0; i < store.report_count; ++i) {
        const auto& report = store.reports[i];
        if (report.version == choice.version) {
          state = report.corrupt ? wire::FragmentState::Corrupt : wire::FragmentState::Ok;
          index = report.fragment_index;
        } else if (report.version < choice.version && state == wire::FragmentState::Missing) {
          state = wire::FragmentState::Stale;
        }
      }
    }
    fragments.push_back(wire::CreateFragmentHealth(fbb, store.id.value(), static_cast<uint8_t>(index),
                                                   state, store.report_count > 0 ? &newest : nullptr));
  }
  auto fragments_offset = fbb.CreateVector(fragments);
  SendToClient(read.client, writer_.Finish(read.request_id,
                                           wire::CreateStatReply(fbb, info, fragments_offset),
                                           read.timings.view()));
  OperationOf(read.kind).Finished(ErrorCode::kOk, ElapsedNanos(read.received, clock_.Now()));
  Release(slot);
}

void AssemblerServer::FinishWithError(uint32_t slot, const Error& error) {
  Read& read = *slots_[slot];
  if (read.kind == ReadKind::kMultiGetItem) return CompleteMultiGetItem(slot, error, {});
  OperationOf(read.kind).Finished(error.code(), ElapsedNanos(read.received, clock_.Now()));
  SendToClient(read.client, writer_.FinishError(read.request_id, error, read.timings.view()));
  Release(slot);
}

// ------------------------------------------------------------------------------ MultiGet

void AssemblerServer::StartMultiGet(zmq::message_t&& client, uint64_t request_id,
                                    const wire::MultiGetRequest& request, SteadyTime received) {
  size_t count = request.keys()->size();
  if (count == 0 || count > kMaxMultiGetKeys) {
    probe_.MessageRejected(AssemblerReject::kInvalidArgument);
    return ReplyError(std::move(client), request_id,
                      Error(ErrorCode::kInvalidArgument, "MultiGet takes 1 to 1000 keys"));
  }
  if (free_slots_.size() < 2) {
    probe_.BusyRejection();
    return ReplyError(std::move(client), request_id, Error(ErrorCode::kBusy, "too many reads in flight"));
  }
  uint32_t parent = *TakeSlot();
  Read& multi = *slots_[parent];
  multi.kind = ReadKind::kMultiGet;
  multi.client = std::move(client);
  multi.request_id = request_id;
  multi.received = received;
  multi.store_count = 0;
  multi.deadline = received + options_.read_timeout + std::chrono::seconds(1);
  probe_.multi_get().Started();
  multi.items.resize(count);
  multi.items_pending = count;
  const uint32_t parent_generation = multi.generation;
  for (size_t i = 0; i < count; ++i) {
    auto& item = multi.items[i];
    item.key.assign(wire::View(request.keys()->Get(i)));
    item.frames.clear();
    item.error.reset();
  }
  for (size_t i = 0; i < count; ++i) {
    Read& parent_read = *slots_[parent];
    if (!parent_read.active || parent_read.generation != parent_generation) return;  // answered already
    auto& item = parent_read.items[i];
    if (auto valid = ValidateKey(item.key); !valid.ok()) {
      item.error = valid.error();
    } else if (free_slots_.empty()) {
      probe_.BusyRejection();
      item.error = Error(ErrorCode::kBusy, "too many reads in flight");
    } else {
      uint32_t slot = StartKeyRead(ReadKind::kMultiGetItem, item.key, received);
      Read& read = *slots_[slot];
      read.parent = parent;
      read.parent_generation = parent_generation;
      read.item_index = i;
      read.request_id = request_id;
      SendFirstRound(read, true, false);
      Evaluate(slot, false);
      continue;
    }
    if (--parent_read.items_pending == 0) return ReplyMultiGet(parent);
  }
}

void AssemblerServer::CompleteMultiGetItem(uint32_t slot, std::optional<Error> error,
                                           std::span<zmq::message_t> frames) {
  Read& read = *slots_[slot];
  uint32_t parent = read.parent;
  size_t index = read.item_index;
  bool parent_alive = slots_[parent]->active && slots_[parent]->generation == read.parent_generation;
  probe_.get().Finished(error ? error->code() : ErrorCode::kOk, ElapsedNanos(read.received, clock_.Now()));
  Release(slot);
  if (!parent_alive) return;
  Read& multi = *slots_[parent];
  auto& item = multi.items[index];
  if (error) {
    item.error = std::move(error);
  } else {
    uint64_t bytes = 0;
    for (const auto& frame : frames) bytes += frame.size();
    if (multi.items_bytes + bytes > options_.max_multi_get_bytes) {
      item.error = Error(ErrorCode::kTooLarge, "MultiGet answer would exceed its size limit");
    } else {
      multi.items_bytes += bytes;
      item.frames.assign(std::make_move_iterator(frames.begin()),
                         std::make_move_iterator(frames.end()));
    }
  }
  if (--multi.items_pending == 0) ReplyMultiGet(parent);
}

void AssemblerServer::ReplyMultiGet(uint32_t parent) {
  Read& multi = *slots_[parent];
  writer_.Reset();
  auto& fbb = writer_.fbb();
  std::vector<flatbuffers::Offset<wire::MultiGetItem>> items;
  for (auto& item : multi.items) {
    if (item.error) {
      auto error = wire::ToWire(fbb, *item.error);
      wire::MultiGetItemBuilder builder(fbb);
      builder.add_error(error);
      items.push_back(builder.Finish());
      continue;
    }
    auto header = wire::ParseFragmentHeader(std::as_bytes(std::span(item.header.data(), item.header.size())));
    if (!header.ok()) {
      item.frames.clear();
      auto error = wire::ToWire(fbb, Error(ErrorCode::kInternal, "lost the record header"));
      wire::MultiGetItemBuilder builder(fbb);
      builder.add_error(error);
      items.push_back(builder.Finish());
      continue;
    }
    auto info = BuildRecordInfo(fbb, item.key, item.version, **header);
    items.push_back(wire::CreateMultiGetItem(fbb, info, 0, static_cast<uint32_t>(item.frames.size())));
  }
  auto items_offset = fbb.CreateVector(items);
  zmq::message_t head = writer_.Finish(multi.request_id, wire::CreateMultiGetReply(fbb, items_offset));
  std::vector<zmq::message_t> payload;
  uint64_t bytes = 0;
  for (auto& item : multi.items) {
    for (auto& frame : item.frames) {
      bytes += frame.size();
      payload.push_back(std::move(frame));
    }
  }
  SendToClient(multi.client, std::move(head), payload);
  probe_.RecordBytesSent(bytes);
  probe_.multi_get().Finished(ErrorCode::kOk, ElapsedNanos(multi.received, clock_.Now()));
  Release(parent);
}

// ------------------------------------------------------------------------------ List

void AssemblerServer::StartList(zmq::message_t&& client, uint64_t request_id,
                                const wire::ListRequest& request, SteadyTime received) {
  auto prefix = wire::View(request.prefix());
  auto cursor = wire::View(request.cursor());
  for (auto [text, what] : {std::pair{prefix, "prefix"}, std::pair{cursor, "cursor"}}) {
    if (auto valid = ValidatePrefix(text, what); !valid.ok()) {
      probe_.MessageRejected(AssemblerReject::kInvalidArgument);
      return ReplyError(std::move(client), request_id, valid.error());
    }
  }
  auto slot_taken = TakeSlot();
  if (!slot_taken) {
    probe_.BusyRejection();
    return ReplyError(std::move(client), request_id, Error(ErrorCode::kBusy, "too many reads in flight"));
  }
  uint32_t slot = *slot_taken;
  Read& read = *slots_[slot];
  read.kind = ReadKind::kList;
  read.client = std::move(client);
  read.request_id = request_id;
  read.received = received;
  read.fetch_started = clock_.Now();
  read.deadline = received + options_.read_timeout;
  read.timings.Add(Stage::kReceive, request_transit_ns_, request_receive_ns_);
  read.timings.Add(Stage::kVerify, request_loop_ns_, ElapsedNanos(received, read.fetch_started));
  probe_.StageObserved(Stage::kVerify, request_loop_ns_, ElapsedNanos(received, read.fetch_started));
  read.prefix.assign(prefix);
  read.cursor.assign(cursor);
  read.limit = std::clamp<uint32_t>(request.limit() == 0 ? kDefaultListLimit : request.limit(), 1, kMaxListLimit);
  probe_.list().Started();
  read.store_count = store_sockets_.size();
  if (read.stores.size() < read.store_count) read.stores.resize(read.store_count);
  writer_.Reset();
  auto& fbb = writer_.fbb();
  auto body = wire::CreateListKeysRequest(fbb, fbb.CreateString(read.prefix), fbb.CreateString(read.cursor), read.limit);
  zmq::message_t request_frame = writer_.Finish(RequestId(read.generation, slot, 0), body);
  for (size_t i = 0; i < read.store_count; ++i) {
    StoreState& store = read.stores[i];
    store.Reset();
    store.id = options_.stores[i].id;
    store.socket = i;
    zmq::message_t frame;
    frame.copy(request_frame);
    auto sent = transport::SendMultipart(store_sockets_[i], std::span(&frame, 1));
    if (sent.ok() && *sent == transport::SendOutcome::kSent) {
      ++store.outstanding;
    } else {
      store.failed = true;
    }
  }
  FinishList(slot, false);
}

void AssemblerServer::FinishList(uint32_t slot, bool final) {
  Read& read = *slots_[slot];
  size_t answered = 0;
  for (const auto& store : read.active_stores()) {
    if (!store.answered && !store.failed && !final) return;  // wait for every store
    if (store.answered) ++answered;
  }
  size_t needed = read.store_count - std::min<size_t>(read.store_count, static_cast<size_t>(options_.shape.m));
  if (answered < needed) {
    return FinishWithError(slot, Error(ErrorCode::kUnavailable,
                                       "only " + std::to_string(answered) + " of " +
                                           std::to_string(read.store_count) + " stores answered the listing"));
  }
  std::vector<StoreListing> listings;
  for (auto& store : read.active_stores()) {
    if (!store.answered) continue;
    const auto* reply = store.Envelope()->body_as_ListKeysReply();
    StoreListing listing;
    listing.truncated = reply->truncated();
    if (reply->entries() != nullptr) {
      for (const auto* entry : *reply->entries()) {
        ListedKey listed{wire::View(entry->key()), {}};
        if (entry->versions() != nullptr) {
          for (const auto* held : *entry->versions()) {
            auto header = wire::ParseFragmentHeader(held->header());
            if (!header.ok()) continue;
            listed.versions.push_back({wire::FromWire(held->version()), held->committed(),
                                       (*header)->tombstone(), (*header)->record_size(),
                                       wire::View((*header)->content_type())});
          }
        }
        listing.keys.push_back(std::move(listed));
      }
    }
    listings.push_back(std::move(listing));
  }
  SteadyTime merge_start = clock_.Now();
  MergedPage page = MergeListings(listings, options_.shape.k, read.limit);
  writer_.Reset();
  auto& fbb = writer_.fbb();
  std::vector<flatbuffers::Offset<wire::ListEntry>> entries;
  size_t bytes = 0;
  std::string next_cursor = page.next_cursor;
  for (const auto& entry : page.entries) {
    if (bytes > kMaxListReplyBytes) {
      next_cursor = std::string(page.entries[entries.size() - 1].key);  // resume after the last sent
      break;
    }
    auto version = wire::ToWire(entry.version);
    entries.push_back(wire::CreateListEntry(fbb, fbb.CreateString(entry.key), &version, entry.size,
                                            fbb.CreateString(entry.content_type)));
    bytes += entry.key.size() + entry.content_type.size() + 48;
  }
  auto entries_offset = fbb.CreateVector(entries);
  auto cursor_offset = fbb.CreateString(next_cursor);
  SteadyTime now = clock_.Now();
  const uint64_t fetch_ns = ElapsedNanos(read.fetch_started, merge_start);
  const uint64_t fetch_queue_ns = std::min(read.reply_wait_ns, fetch_ns);
  read.timings.Add(Stage::kFetch, fetch_queue_ns, fetch_ns - fetch_queue_ns);
  read.timings.Add(Stage::kList, 0, ElapsedNanos(merge_start, now));
  probe_.StageObserved(Stage::kFetch, fetch_queue_ns, fetch_ns - fetch_queue_ns);
  probe_.StageObserved(Stage::kList, 0, ElapsedNanos(merge_start, now));
  zmq::message_t body = writer_.Finish(read.request_id, wire::CreateListReply(fbb, entries_offset, cursor_offset),
                                       read.timings.view());
  SendToClient(read.client, std::move(body));
  probe_.list().Finished(ErrorCode::kOk, ElapsedNanos(read.received, now));
  Release(slot);
}

// ------------------------------------------------------------------------------ timers

void AssemblerServer::CheckTimers(SteadyTime now) {
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    Read& read = *slots_[slot];
    if (!read.active || read.kind == ReadKind::kMultiGet) continue;
    uint32_t generation = read.generation;
    if (now >= read.deadline) {
      for (auto& store : read.active_stores()) {
        if (store.outstanding > 0 || (!store.answered && !store.failed)) store.failed = true;
      }
      if (read.kind == ReadKind::kList) {
        FinishList(slot, true);
      } else {
        Evaluate(slot, true);
      }
      if (read.active && read.generation == generation) {
        FinishWithError(slot, Error(ErrorCode::kDeadlineExceeded, "stores did not answer in time"));
      }
      continue;
    }
    if (!read.hedged && now >= read.hedge_at &&
        (read.kind == ReadKind::kGet || read.kind == ReadKind::kMultiGetItem)) {
      read.hedged = true;
      bool any_slow = false;
      for (auto& store : read.active_stores()) {
        if (store.outstanding > 0) {
          store.slow = true;
          any_slow = true;
        }
      }
      bool any_deferred = false;
      for (const auto& store : read.active_stores()) any_deferred |= store.deferred;
      if (any_slow || any_deferred) Evaluate(slot, false);
    }
  }
}

// ------------------------------------------------------------------------------ repair

void AssemblerServer::HandleRepairRequest(zmq::message_t&& client, uint64_t request_id,
                                          const wire::RepairRequest& request) {
  std::string_view key = wire::View(request.key());
  if (auto valid = ValidateKey(key); !valid.ok()) {
    probe_.MessageRejected(AssemblerReject::kInvalidArgument);
    return ReplyError(std::move(client), request_id, valid.error());
  }
  zmq::message_t id = std::move(client);
  if (!repairer_->SubmitClientRepair(std::move(id), request_id, key, request.dry_run())) {
    probe_.BusyRejection();
    // SubmitClientRepair leaves `id` untouched when it refuses.
    ReplyError(std::move(id), request_id, Error(ErrorCode::kBusy, "too many repairs queued"));
  }
}

void AssemblerServer::ForwardRepairReplies() {
  for (int i = 0; i < 64; ++i) {
    bool overflow = false;
    auto got =
        transport::ReceiveMultipart(repairer_->results_socket(), repair_frames_, 2, overflow);
    if (!got.ok() || !*got) return;
    if (overflow || repair_frames_.size() != 2) continue;
    SendToClient(repair_frames_[0], std::move(repair_frames_[1]));
  }
}

void AssemblerServer::MaybeScheduleReadRepair(uint32_t slot, Version version) {
  if (!options_.read_repair) return;
  Read& read = *slots_[slot];
  bool unhealthy = false;
  for (const auto& store : read.active_stores()) {
    if (store.answered && !store.HoldsHealthy(version)) unhealthy = true;
  }
  if (!unhealthy) return;
  probe_.ReadRepairScheduled(!repairer_->SubmitReadRepair(read.key));
}

}  // namespace ddsplit::assembler
