#include "services/assembler/repairer.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "common/base/clock.h"
#include "common/base/key.h"
#include "common/codec/checksum.h"
#include "common/codec/reed_solomon.h"
#include "common/codec/stripe.h"
#include "common/placement/placement.h"
#include "common/transport/transport.h"
#include "common/wire/envelope.h"
#include "services/assembler/version_choice.h"

namespace ddsplit::assembler {
namespace {

using transport::Bytes;
constexpr auto kPollCap = std::chrono::milliseconds(50);
constexpr auto kConnectWait = std::chrono::milliseconds(2000);
constexpr auto kDownMemory = std::chrono::seconds(5);
constexpr size_t kMaxReportsPerStore = 4;  // as many as a read considers

// What one store said about the key.
struct StoreView {
  bool asked = false;
  bool answered = false;
  std::vector<VersionReport> reports;
  std::vector<uint64_t> checksums;   // parallel to reports: the fragment's checksum
  std::vector<std::string> headers;  // parallel to reports: FragmentHeader bytes
  bool HoldsHealthy(Version v, int index) const {
    for (const auto& r : reports) {
      if (r.version == v && !r.corrupt && r.fragment_index == index) return true;
    }
    return false;
  }
  bool Committed(Version v) const {
    for (const auto& r : reports) {
      if (r.version == v && r.committed) return true;
    }
    return false;
  }
};

// One request to one store and its answer.
struct Exchange {
  size_t socket = 0;
  zmq::message_t request;
  bool sent = false;
  bool answered = false;
  zmq::message_t envelope;
  zmq::message_t payload;
  bool has_payload = false;
};

// The attributes of the record's version, copied out of a FragmentHeader.
struct RecordHeader {
  int k = 0;
  int m = 0;
  uint64_t record_size = 0;
  uint64_t record_checksum = 0;
  bool has_content_type = false;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<uint32_t> placement;
};

}  // namespace

struct RepairWorker::Sockets {
  std::vector<zmq::socket_t> reads;               // DEALER per store, parallel to options.stores
  std::vector<SteadyTime> read_down_at;           // when a store's read socket was last unconnected
  std::vector<SteadyTime> ingest_down_at;         // same for its ingest socket
  std::vector<zmq::socket_t> ingest;              // PUSH per store
  zmq::socket_t acks;                             // PULL
  std::string ack_endpoint;                       // as advertised to the stores
  zmq::socket_t results;                          // worker's end of the inproc pair
  std::unordered_map<uint32_t, size_t> index_of;  // store id -> socket index
  std::unique_ptr<placement::Placement> placement;
  std::map<std::pair<int, int>, std::unique_ptr<codec::ReedSolomon>> codecs;
  uint64_t round = 0;
  uint64_t write_seq = 0;
  wire::MessageWriter writer;
  std::vector<zmq::message_t> frames;

  codec::ReedSolomon* CodecFor(int k, int m) {
    auto it = codecs.find({k, m});
    if (it != codecs.end()) return it->second.get();
    auto created = codec::ReedSolomon::Create(k, m);
    if (!created.ok()) return nullptr;
    return codecs.emplace(std::make_pair(k, m), std::move(*created)).first->second.get();
  }
};

RepairWorker::RepairWorker(RepairOptions options, zmq::context_t& context, AssemblerProbe& probe)
    : options_(std::move(options)), context_(context), probe_(probe) {}

Result<std::unique_ptr<RepairWorker>> RepairWorker::Start(RepairOptions options,
                                                          zmq::context_t& context,
                                                          AssemblerProbe& probe) {
  std::unique_ptr<RepairWorker> worker(new RepairWorker(std::move(options), context, probe));
  DDSPLIT_RETURN_IF_ERROR(worker->Init());
  worker->thread_ = std::thread([w = worker.get()] { w->Loop(); });
  return worker;
}

RepairWorker::~RepairWorker() {
  {
    std::lock_guard lock(mutex_);  // so the worker cannot miss the wake-up
    stop_ = true;
  }
  ready_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status RepairWorker::Init() {
  auto s = std::make_unique<Sockets>();
  std::vector<placement::StoreInfo> infos;
  for (const auto& store : options_.stores) infos.push_back({store.id, store.zone});
  auto placement = placement::Placement::Create(std::move(infos));
  if (!placement.ok()) return std::move(placement).error();
  s->placement = std::make_unique<placement::Placement>(std::move(*placement));
  for (size_t i = 0; i < options_.stores.size(); ++i) {
    // No ZeroMQ heartbeats on the repair sockets: they sit idle most of the time, and every
    // exchange has its own deadline (a store that stopped answering is found out by it).
    transport::SocketOptions read_options;
    read_options.immediate = true;
    read_options.heartbeat_ivl_ms = 0;
    auto dealer = transport::MakeSocket(context_, zmq::socket_type::dealer, read_options);
    if (!dealer.ok()) return std::move(dealer).error();
    DDSPLIT_RETURN_IF_ERROR(transport::Connect(*dealer, options_.stores[i].read));
    s->reads.push_back(std::move(*dealer));
    transport::SocketOptions push_options;
    push_options.immediate = true;  // a store that is down fails the write at once
    push_options.send_hwm = 64;
    push_options.heartbeat_ivl_ms = 0;
    auto push = transport::MakeSocket(context_, zmq::socket_type::push, push_options);
    if (!push.ok()) return std::move(push).error();
    DDSPLIT_RETURN_IF_ERROR(transport::Connect(*push, options_.stores[i].ingest));
    s->ingest.push_back(std::move(*push));
    s->index_of[options_.stores[i].id.value()] = i;
    s->read_down_at.push_back(SteadyTime{});
    s->ingest_down_at.push_back(SteadyTime{});
  }
  transport::SocketOptions ack_options;
  ack_options.receive_hwm = 10000;
  ack_options.max_message_bytes = 1 << 16;
  ack_options.heartbeat_ivl_ms = 0;
  auto acks = transport::MakeSocket(context_, zmq::socket_type::pull, ack_options);
  if (!acks.ok()) return std::move(acks).error();
  s->acks = std::move(*acks);
  auto bound = transport::Bind(s->acks, options_.ack_bind);
  if (!bound.ok()) return std::move(bound).error();
  s->ack_endpoint = transport::AdvertisedEndpoint(*bound, options_.advertise_host);

  const std::string pair_endpoint =
      "inproc://ddsplit-repair-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  transport::SocketOptions pair_options;
  pair_options.send_hwm = 100000;
  pair_options.receive_hwm = 100000;
  pair_options.heartbeat_ivl_ms = 0;
  auto mine = transport::MakeSocket(context_, zmq::socket_type::pair, pair_options);
  if (!mine.ok()) return std::move(mine).error();
  results_ = std::move(*mine);
  auto pair_bound = transport::Bind(results_, pair_endpoint);
  if (!pair_bound.ok()) return std::move(pair_bound).error();
  auto theirs = transport::MakeSocket(context_, zmq::socket_type::pair, pair_options);
  if (!theirs.ok()) return std::move(theirs).error();
  s->results = std::move(*theirs);
  DDSPLIT_RETURN_IF_ERROR(transport::Connect(s->results, pair_endpoint));
  sockets_ = std::move(s);
  return OkStatus();
}

bool RepairWorker::SubmitClientRepair(zmq::message_t&& client, uint64_t request_id,
                                      std::string_view key, bool dry_run) {
  std::lock_guard lock(mutex_);
  if (client_jobs_ >= options_.max_queued_client_repairs) return false;
  Job job;
  job.key.assign(key);
  job.dry_run = dry_run;
  job.client = std::move(client);
  job.request_id = request_id;
  jobs_.push_back(std::move(job));
  ++client_jobs_;
  probe_.RepairQueueDepth(jobs_.size());
  ready_.notify_one();
  return true;
}

bool RepairWorker::SubmitReadRepair(std::string_view key) {
  std::lock_guard lock(mutex_);
  if (read_repair_keys_.contains(std::string(key))) return true;
  if (read_repair_keys_.size() >= options_.max_queued_read_repairs) return false;
  read_repair_keys_.emplace(key);
  Job job;
  job.key.assign(key);
  job.read_repair = true;
  jobs_.push_back(std::move(job));
  probe_.RepairQueueDepth(jobs_.size());
  ready_.notify_one();
  return true;
}

void RepairWorker::Loop() {
  while (true) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      probe_.RepairQueueDepth(jobs_.size());
    }
    auto outcome = Repair(job.key, job.dry_run);
    Finish(job, outcome);
  }
}

void RepairWorker::Finish(Job& job, const Result<RepairOutcome>& outcome) {
  if (outcome.ok()) {
    probe_.RepairFinished(job.read_repair, static_cast<int>(outcome->rebuilt.size()),
                          static_cast<int>(outcome->failed.size()), outcome->bytes_read,
                          job.dry_run ? 0 : outcome->bytes_written);
  } else if (outcome.error().code() != ErrorCode::kNotFound) {
    probe_.RepairFailed();
  }
  if (job.read_repair) {
    // Failures are counted (RepairFailed), not logged: a degraded cluster would flood the log.
    std::lock_guard lock(mutex_);
    read_repair_keys_.erase(job.key);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    --client_jobs_;
  }
  auto& writer = sockets_->writer;
  writer.Reset();
  zmq::message_t reply;
  if (!outcome.ok()) {
    reply = writer.FinishError(job.request_id, outcome.error());
  } else {
    auto& fbb = writer.fbb();
    auto rebuilt = fbb.CreateVector(outcome->rebuilt);
    auto failed = fbb.CreateVector(outcome->failed);
    auto version = wire::ToWire(outcome->version);
    wire::RepairReplyBuilder body(fbb);
    body.add_version(&version);
    body.add_outcome(static_cast<wire::RepairOutcome>(outcome->kind));
    body.add_fragments(static_cast<uint8_t>(outcome->fragments));
    body.add_k(static_cast<uint8_t>(outcome->k));
    body.add_healthy_before(static_cast<uint8_t>(outcome->healthy_before));
    body.add_rebuilt(rebuilt);
    body.add_failed(failed);
    body.add_bytes_written(outcome->bytes_written);
    body.add_bytes_read(outcome->bytes_read);
    reply = writer.Finish(job.request_id, body.Finish());
  }
  std::array<zmq::message_t, 2> frames{std::move(job.client), std::move(reply)};
  auto sent = transport::SendMultipart(sockets_->results, frames);
  if (!sent.ok() || *sent != transport::SendOutcome::kSent) probe_.ReplyUndeliverable();
}

namespace {

// Sends `frames` on `socket`, waiting until `deadline` for the peer to be connected (the sockets
// are "immediate": a store that restarted a moment ago is not connected yet).
bool SendWithin(zmq::socket_t& socket, std::span<zmq::message_t> frames, SteadyTime deadline,
                const std::atomic<bool>& stop) {
  while (true) {
    auto sent = transport::SendMultipart(socket, frames);
    if (!sent.ok() || *sent == transport::SendOutcome::kUnroutable) return false;
    if (*sent == transport::SendOutcome::kSent) return true;
    SteadyTime now = std::chrono::steady_clock::now();
    if (now >= deadline || stop) return false;
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLOUT, 0};
    try {
      zmq::poll(&item, 1,
                std::chrono::milliseconds(transport::PollTimeoutMs(now, deadline, kPollCap)));
    } catch (const zmq::error_t&) {
    }
  }
}

// Sends every request and collects one answer per exchange until all have answered, the
// deadline passes or `stop` is set. Answers of earlier rounds are ignored.
void RunExchanges(std::vector<zmq::socket_t>& sockets, std::vector<SteadyTime>& unreachable_at,
                  std::span<Exchange> exchanges, uint64_t round, SteadyTime deadline,
                  const std::atomic<bool>& stop, std::vector<zmq::message_t>& frames) {
  size_t waiting = 0;
  // A store not connected gets a moment to connect (it may have restarted a moment ago), unless
  // it was found unreachable recently.
  const SteadyTime start = std::chrono::steady_clock::now();
  const SteadyTime connect_deadline = std::min(deadline, start + kConnectWait);
  for (auto& e : exchanges) {
    const bool recently_down = start - unreachable_at[e.socket] < kDownMemory;
    e.sent = SendWithin(sockets[e.socket], std::span(&e.request, 1),
                        recently_down ? start : connect_deadline, stop);
    if (e.sent) {
      ++waiting;
    } else {
      unreachable_at[e.socket] = std::chrono::steady_clock::now();
    }
  }
  std::vector<zmq::pollitem_t> items;
  std::vector<size_t> socket_of;
  for (auto& e : exchanges) {
    if (!e.sent) continue;
    items.push_back({sockets[e.socket].handle(), 0, ZMQ_POLLIN, 0});
    socket_of.push_back(e.socket);
  }
  wire::AlignedFrame aligned;
  while (waiting > 0 && !stop) {
    SteadyTime now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    try {
      zmq::poll(items.data(), items.size(),
                std::chrono::milliseconds(transport::PollTimeoutMs(now, deadline, kPollCap)));
    } catch (const zmq::error_t&) {
      continue;
    }
    for (size_t p = 0; p < items.size(); ++p) {
      if ((items[p].revents & ZMQ_POLLIN) == 0) continue;
      while (true) {
        bool overflow = false;
        auto got = transport::ReceiveMultipart(sockets[socket_of[p]], frames, 2, overflow);
        if (!got.ok() || !*got) break;
        if (overflow || frames.empty()) continue;
        auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
        if (!envelope.ok() || ((*envelope)->request_id() >> 16) != round) continue;
        size_t socket = (*envelope)->request_id() & 0xFFFF;
        for (auto& e : exchanges) {
          if (e.socket != socket || !e.sent || e.answered) continue;
          e.answered = true;
          e.envelope = std::move(frames[0]);
          if (frames.size() == 2) {
            e.payload = std::move(frames[1]);
            e.has_payload = true;
          }
          --waiting;
          break;
        }
      }
    }
  }
}

zmq::message_t FetchMessage(wire::MessageWriter& writer, uint64_t request_id, std::string_view key,
                            std::optional<Version> version, bool want_payload, bool verify) {
  writer.Reset();
  auto& fbb = writer.fbb();
  auto key_offset = fbb.CreateString(key);
  wire::Version wire_version = version ? wire::ToWire(*version) : wire::Version();
  wire::FetchRequestBuilder body(fbb);
  body.add_key(key_offset);
  if (version) body.add_version(&wire_version);
  body.add_want_payload(want_payload);
  body.add_verify(verify);
  return writer.Finish(request_id, body.Finish());
}

// Fills `view` from a FetchReply; false when the answer is an error or not a FetchReply.
bool ParseVersions(const zmq::message_t& envelope, StoreView& view) {
  wire::AlignedFrame aligned;
  auto parsed = wire::ParseEnvelope(aligned.Of(envelope));
  if (!parsed.ok()) return false;
  const auto* reply = (*parsed)->body_as_FetchReply();
  if (reply == nullptr) return false;
  view.answered = true;
  view.reports.clear();
  view.headers.clear();
  view.checksums.clear();
  if (reply->versions() == nullptr) return true;
  for (const auto* held : *reply->versions()) {
    // Newest first; like a read, look at a few only (ChooseVersion's tally is bounded).
    if (view.reports.size() == kMaxReportsPerStore) break;
    auto header = wire::ParseFragmentHeader(held->header());
    if (!header.ok()) continue;
    view.reports.push_back({wire::FromWire(held->version()), held->committed(),
                            (*header)->tombstone(), held->state() == wire::FragmentState::Corrupt,
                            (*header)->index()});
    view.checksums.push_back((*header)->checksum());
    view.headers.emplace_back(reinterpret_cast<const char*>(held->header()->data()),
                              held->header()->size());
  }
  return true;
}

}  // namespace

Result<RepairOutcome> RepairWorker::Repair(std::string_view key, bool dry_run) {
  DDSPLIT_RETURN_IF_ERROR(ValidateKey(key));
  Sockets& s = *sockets_;
  const int n = options_.shape.k + options_.shape.m;
  auto placed = s.placement->Place(key, n);
  if (!placed.ok()) return std::move(placed).error();
  std::unordered_map<uint32_t, StoreView> views;

  // Asks `ids` (not yet asked) for the versions they hold, verifying the newest one's bytes.
  auto ask_versions = [&](std::span<const uint32_t> ids) {
    std::vector<Exchange> exchanges;
    const uint64_t round = ++s.round;
    for (uint32_t id : ids) {
      auto& view = views[id];
      if (view.asked) continue;
      view.asked = true;
      auto found = s.index_of.find(id);
      if (found == s.index_of.end()) continue;  // not a store this assembler knows
      Exchange e;
      e.socket = found->second;
      e.request = FetchMessage(s.writer, (round << 16) | e.socket, key, std::nullopt, false, true);
      exchanges.push_back(std::move(e));
    }
    RunExchanges(s.reads, s.read_down_at, exchanges, round,
                 std::chrono::steady_clock::now() + options_.fetch_timeout, stop_, s.frames);
    for (auto& e : exchanges) {
      if (e.answered) ParseVersions(e.envelope, views[options_.stores[e.socket].id.value()]);
    }
  };

  std::vector<uint32_t> first_ids;
  for (StoreId id : placed->view()) first_ids.push_back(id.value());
  ask_versions(first_ids);

  std::vector<StoreAnswer> answers;
  int unanswered = 0;
  for (uint32_t id : first_ids) {
    const auto& view = views[id];
    answers.push_back({view.answered, std::span(view.reports)});
    if (!view.answered) ++unanswered;
  }
  const int quorum = options_.shape.EffectiveQuorum();
  auto choice = ChooseVersion(answers, options_.shape.k, quorum, true);
  switch (choice.kind) {
    case VersionChoice::Kind::kAbsent:
      return Error(ErrorCode::kNotFound, "no such key");
    case VersionChoice::Kind::kFail:
    case VersionChoice::Kind::kWait:
      return ChoiceError(choice, options_.shape.k, unanswered);
    case VersionChoice::Kind::kUse:
      break;
  }
  RepairOutcome outcome;
  outcome.version = choice.version;
  const Version v = choice.version;
  if (choice.tombstone) {
    // Never resurrect, and leave deletions to the splitter's own fan-out.
    outcome.kind = RepairOutcome::Kind::kDeleted;
    return outcome;
  }

  // The record's attributes, from any holder's header.
  RecordHeader record;
  bool have_header = false;
  for (uint32_t id : first_ids) {
    const auto& view = views[id];
    for (size_t r = 0; r < view.reports.size() && !have_header; ++r) {
      if (view.reports[r].version != v) continue;
      wire::AlignedFrame aligned;
      auto header = wire::ParseFragmentHeader(
          aligned.Of(std::as_bytes(std::span(view.headers[r].data(), view.headers[r].size()))));
      if (!header.ok() || (*header)->placement() == nullptr) continue;
      const auto& h = **header;
      record.k = h.k();
      record.m = h.m();
      record.record_size = h.record_size();
      record.record_checksum = h.record_checksum();
      record.has_content_type = h.content_type() != nullptr;
      record.content_type = wire::View(h.content_type());
      if (h.metadata() != nullptr) {
        for (const auto* entry : *h.metadata()) {
          record.metadata.emplace_back(wire::View(entry->name()), wire::View(entry->value()));
        }
      }
      record.placement.assign(h.placement()->begin(), h.placement()->end());
      have_header = true;
    }
  }
  const int rn = record.k + record.m;
  if (!have_header || record.k <= 0 || rn > kMaxFragments ||
      static_cast<int>(record.placement.size()) != rn) {
    return Error(ErrorCode::kCorrupt, "the chosen version's header is unreadable");
  }
  // Stores of the record's placement that the current placement does not name (the store list
  // changed since the write) are asked now.
  ask_versions(record.placement);

  outcome.fragments = rn;
  outcome.k = record.k;
  std::vector<bool> healthy(static_cast<size_t>(rn), false);
  std::vector<uint64_t> checksums(static_cast<size_t>(rn), 0);
  std::vector<int> need;
  bool committed = false;
  for (int i = 0; i < rn; ++i) {
    const auto& view = views[record.placement[i]];
    committed = committed || view.Committed(v);
    if (!view.answered) {
      outcome.failed.push_back(static_cast<uint8_t>(i));
    } else if (view.HoldsHealthy(v, i)) {
      healthy[i] = true;
      ++outcome.healthy_before;
      for (size_t r = 0; r < view.reports.size(); ++r) {
        if (view.reports[r].version == v) checksums[i] = view.checksums[r];
      }
    } else {
      need.push_back(i);
    }
  }
  if (need.empty()) {
    probe_.RepairAssessed(outcome.healthy_before - record.k);
    outcome.kind =
        outcome.failed.empty() ? RepairOutcome::Kind::kHealthy : RepairOutcome::Kind::kPartial;
    return outcome;
  }

  // Fetch k whole healthy fragments, data fragments first; a holder whose bytes turn out
  // corrupt joins the fragments to rebuild.
  codec::StripeLayout layout(record.record_size, record.k, record.m);
  std::vector<zmq::message_t> have(static_cast<size_t>(rn));
  std::vector<bool> have_it(static_cast<size_t>(rn), false);
  int have_count = 0;
  std::vector<int> candidates;
  for (int i = 0; i < rn; ++i) {
    if (healthy[i]) candidates.push_back(i);
  }
  size_t next_candidate = 0;
  while (have_count < record.k && next_candidate < candidates.size() && !stop_) {
    std::vector<Exchange> exchanges;
    std::vector<int> index_of_exchange;
    const uint64_t round = ++s.round;
    while (have_count + static_cast<int>(exchanges.size()) < record.k &&
           next_candidate < candidates.size()) {
      int i = candidates[next_candidate++];
      Exchange e;
      e.socket = s.index_of.at(record.placement[i]);
      e.request = FetchMessage(s.writer, (round << 16) | e.socket, key, v, true, false);
      exchanges.push_back(std::move(e));
      index_of_exchange.push_back(i);
    }
    RunExchanges(s.reads, s.read_down_at, exchanges, round,
                 std::chrono::steady_clock::now() + options_.fetch_timeout, stop_, s.frames);
    for (size_t x = 0; x < exchanges.size(); ++x) {
      auto& e = exchanges[x];
      int i = index_of_exchange[x];
      if (!e.answered) continue;
      bool good = e.has_payload && e.payload.size() == layout.StoredSize(i) &&
                  codec::Checksum(Bytes(e.payload)) == checksums[i];
      if (!good) {
        wire::AlignedFrame aligned;
        auto parsed = wire::ParseEnvelope(aligned.Of(e.envelope));
        const auto* reply = parsed.ok() ? (*parsed)->body_as_FetchReply() : nullptr;
        bool corrupt =
            e.has_payload || (reply != nullptr && reply->payload_error() != nullptr &&
                              reply->payload_error()->code() == wire::ErrorCode::Corrupt);
        if (corrupt) {
          healthy[i] = false;
          --outcome.healthy_before;
          need.push_back(i);
        }
        continue;
      }
      outcome.bytes_read += e.payload.size();
      have[i] = std::move(e.payload);
      have_it[i] = true;
      ++have_count;
    }
  }
  probe_.RepairAssessed(outcome.healthy_before - record.k);
  std::sort(need.begin(), need.end());
  if (dry_run) {
    outcome.kind = RepairOutcome::Kind::kWouldRepair;
    for (int i : need) outcome.rebuilt.push_back(static_cast<uint8_t>(i));
    return outcome;
  }
  if (have_count < record.k) {
    return Error(ErrorCode::kUnavailable,
                 "only " + std::to_string(have_count) + " of the " + std::to_string(record.k) +
                     " fragments needed for version " + v.ToString() + " are readable");
  }

  // Rebuild every fragment not fetched: the unhealthy ones to write, the rest to check the record
  // end to end and to know every fragment's checksum.
  codec::ReedSolomon* rs = s.CodecFor(record.k, record.m);
  if (rs == nullptr) return Error(ErrorCode::kCorrupt, "stored code shape is invalid");
  std::vector<zmq::message_t> rebuilt(static_cast<size_t>(rn));
  std::vector<codec::FragmentBytes> available;
  std::vector<codec::FragmentOutput> outputs;
  for (int i = 0; i < rn; ++i) {
    if (have_it[i]) {
      available.push_back({i, Bytes(have[i])});
    } else {
      rebuilt[i] = zmq::message_t(layout.StoredSize(i));
      outputs.push_back({i, {static_cast<std::byte*>(rebuilt[i].data()), rebuilt[i].size()}});
    }
  }
  DDSPLIT_RETURN_IF_ERROR(rs->Reconstruct(available, layout.fragment_size(), outputs));
  codec::ChecksumBuilder whole;
  for (int i = 0; i < record.k; ++i) whole.Update(Bytes(have_it[i] ? have[i] : rebuilt[i]));
  if (whole.Finish() != record.record_checksum) {
    return Error(ErrorCode::kCorrupt,
                 "the rebuilt record does not match its checksum; nothing written");
  }
  for (int i = 0; i < rn; ++i) {
    if (!have_it[i] && !healthy[i]) checksums[i] = codec::Checksum(Bytes(rebuilt[i]));
  }

  // Push each rebuilt fragment to its store, as the splitter would have.
  std::unordered_map<uint64_t, int> pending;  // write id -> fragment index
  for (int i : need) {
    const size_t socket = s.index_of.at(record.placement[i]);
    const uint64_t write_id = ++s.write_seq;
    s.writer.Reset();
    auto& fbb = s.writer.fbb();
    auto ack_to = fbb.CreateString(s.ack_endpoint);
    auto key_offset = fbb.CreateString(key);
    auto content_type = record.has_content_type ? fbb.CreateString(record.content_type) : 0;
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::MetaEntry>>> metadata = 0;
    if (!record.metadata.empty()) {
      std::vector<flatbuffers::Offset<wire::MetaEntry>> entries;
      for (const auto& [name, value] : record.metadata) {
        entries.push_back(
            wire::CreateMetaEntry(fbb, fbb.CreateString(name), fbb.CreateString(value)));
      }
      metadata = fbb.CreateVector(entries);
    }
    auto placement = fbb.CreateVector(record.placement);
    auto fragment_checksums = fbb.CreateVector(checksums);
    auto version = wire::ToWire(v);
    wire::WriteFragmentBuilder body(fbb);
    body.add_write_id(write_id);
    body.add_ack_to(ack_to);
    body.add_key(key_offset);
    body.add_version(&version);
    body.add_k(static_cast<uint8_t>(record.k));
    body.add_m(static_cast<uint8_t>(record.m));
    body.add_record_size(record.record_size);
    body.add_record_checksum(record.record_checksum);
    body.add_tombstone(false);
    if (!content_type.IsNull()) body.add_content_type(content_type);
    if (!metadata.IsNull()) body.add_metadata(metadata);
    body.add_placement(placement);
    body.add_fragment_checksums(fragment_checksums);
    std::array<zmq::message_t, 2> frames{s.writer.Finish(0, body.Finish()), std::move(rebuilt[i])};
    const uint64_t size = frames[1].size();
    const SteadyTime now = std::chrono::steady_clock::now();
    const bool recently_down = now - s.ingest_down_at[socket] < kDownMemory;
    if (!SendWithin(s.ingest[socket], frames, recently_down ? now : now + kConnectWait, stop_)) {
      s.ingest_down_at[socket] = std::chrono::steady_clock::now();
      outcome.failed.push_back(static_cast<uint8_t>(i));
      continue;
    }
    outcome.bytes_written += size;
    pending[write_id] = i;
    if (committed) {
      // The version is acknowledged: let the store know, so it drops what it held before.
      s.writer.Reset();
      auto commit_key = s.writer.fbb().CreateString(key);
      auto commit = wire::CreateCommitVersion(s.writer.fbb(), commit_key, &version);
      zmq::message_t frame = s.writer.Finish(0, commit);
      (void)transport::SendMultipart(s.ingest[socket], std::span(&frame, 1));
    }
  }

  // Wait for the stores' acknowledgements (sent after their durable commit).
  const SteadyTime deadline = std::chrono::steady_clock::now() + options_.write_timeout;
  wire::AlignedFrame aligned;
  zmq::pollitem_t item{s.acks.handle(), 0, ZMQ_POLLIN, 0};
  while (!pending.empty() && !stop_) {
    SteadyTime now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    try {
      zmq::poll(&item, 1,
                std::chrono::milliseconds(transport::PollTimeoutMs(now, deadline, kPollCap)));
    } catch (const zmq::error_t&) {
      continue;
    }
    while (true) {
      bool overflow = false;
      auto got = transport::ReceiveMultipart(s.acks, s.frames, 1, overflow);
      if (!got.ok() || !*got) break;
      if (overflow) continue;
      auto envelope = wire::ParseEnvelope(aligned.Of(s.frames[0]));
      if (!envelope.ok()) continue;
      const auto* ack = (*envelope)->body_as_FragmentAck();
      if (ack == nullptr) continue;
      auto found = pending.find(ack->write_id());
      if (found == pending.end()) continue;  // a late ack of an earlier repair
      int i = found->second;
      pending.erase(found);
      if (ack->error() != nullptr) {  // refused (counted as a failed fragment)
        outcome.failed.push_back(static_cast<uint8_t>(i));
        outcome.bytes_written -= layout.StoredSize(i);
      } else {
        outcome.rebuilt.push_back(static_cast<uint8_t>(i));
      }
    }
  }
  for (const auto& [write_id, i] : pending) {
    outcome.failed.push_back(static_cast<uint8_t>(i));
    outcome.bytes_written -= layout.StoredSize(i);
  }
  std::sort(outcome.rebuilt.begin(), outcome.rebuilt.end());
  std::sort(outcome.failed.begin(), outcome.failed.end());
  outcome.kind =
      outcome.failed.empty() ? RepairOutcome::Kind::kRepaired : RepairOutcome::Kind::kPartial;
  return outcome;
}

}  // namespace ddsplit::assembler
