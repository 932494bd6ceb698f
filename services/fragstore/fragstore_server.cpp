#include "services/fragstore/fragstore_server.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <thread>
#include <unordered_map>

#include "common/base/key.h"
#include "common/base/limits.h"
#include "common/codec/checksum.h"
#include "common/codec/stripe.h"
#include "common/metrics/queue_wait.h"
#include "common/transport/buffer_pool.h"
#include "common/transport/transport.h"
#include "common/wire/envelope.h"
#include "services/fragstore/write_validation.h"

namespace ddsplit::fragstore {
namespace {

using transport::Bytes;

constexpr auto kPollCap = std::chrono::milliseconds(200);
constexpr auto kStatsInterval = std::chrono::seconds(2);
constexpr auto kIdleTrimAfter = std::chrono::seconds(2);
constexpr auto kReclaimWhenIdleFor = std::chrono::seconds(1);
constexpr uint64_t kReclaimBytesPerPass = 16ull << 20;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

bool Readable(const zmq::pollitem_t& item) { return (item.revents & ZMQ_POLLIN) != 0; }

bool ValidAckEndpoint(std::string_view endpoint) {
  return endpoint.rfind("tcp://", 0) == 0 || endpoint.rfind("ipc://", 0) == 0 ||
         endpoint.rfind("inproc://", 0) == 0;
}

}  // namespace

struct FragstoreServer::Queued {
  zmq::message_t envelope;
  zmq::message_t payload;
  SteadyTime received;
  OpKind kind = OpKind::kWrite;
  bool decisions = false;          // VersionDecisions: one commit or abort op per entry
  int fragment_index = -1;
  std::optional<Error> rejection;  // a write refused by validation still gets an error ack
  // Where the time went before the commit queue (observability): carried back in the ack.
  uint64_t transit_ns = 0;         // sender's stamp -> ingest loop wake-up
  uint64_t receive_ns = 0;         // taking it off the socket
  uint64_t loop_ns = 0;            // waiting behind other messages of the same wake-up
  uint64_t verify_ns = 0;          // verification (fragment checksum included)
  wire::AlignedFrame aligned;      // the envelope at an aligned address, for FlatBuffers
  const wire::Envelope* Envelope() { return wire::GetEnvelope(aligned.Of(envelope).data()); }
};

FragstoreServer::FragstoreServer(ServerOptions options, FragmentStore& store,
                                 zmq::context_t& context, FragstoreProbe& probe)
    : options_(std::move(options)), store_(store), context_(context), probe_(probe) {}

FragstoreServer::~FragstoreServer() = default;

Status FragstoreServer::Bind() {
  transport::SocketOptions ingest_options;
  ingest_options.receive_hwm = 2000;
  ingest_options.max_message_bytes = static_cast<int64_t>(options_.max_fragment_bytes + (1 << 20));
  auto ingest = transport::MakeSocket(context_, zmq::socket_type::pull, ingest_options);
  if (!ingest.ok()) return std::move(ingest).error();
  ingest_ = std::move(*ingest);
  auto ingest_endpoint = transport::Bind(ingest_, options_.ingest_bind);
  if (!ingest_endpoint.ok()) return std::move(ingest_endpoint).error();
  ingest_endpoint_ = *ingest_endpoint;

  transport::SocketOptions read_options;
  read_options.router_mandatory = true;
  read_options.max_message_bytes = 1 << 20;
  auto reader = transport::MakeSocket(context_, zmq::socket_type::router, read_options);
  if (!reader.ok()) return std::move(reader).error();
  reader_ = std::move(*reader);
  auto read_endpoint = transport::Bind(reader_, options_.read_bind);
  if (!read_endpoint.ok()) return std::move(read_endpoint).error();
  read_endpoint_ = *read_endpoint;
  return OkStatus();
}

void FragstoreServer::Run(int stop_fd) {
  std::thread commit([this] { CommitLoop(); });
  std::thread read([this, stop_fd] { ReadLoop(stop_fd); });
  IngestLoop(stop_fd);
  {
    std::lock_guard lock(queue_mutex_);
    ingest_done_ = true;
  }
  queue_ready_.notify_all();
  commit.join();
  read.join();
}

// ------------------------------------------------------------------------------ ingest

void FragstoreServer::IngestLoop(int stop_fd) {
  std::vector<zmq::message_t> frames;
  wire::AlignedFrame aligned;
  zmq::pollitem_t items[] = {{ingest_.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, stop_fd, ZMQ_POLLIN, 0}};
  while (true) {
    try {
      zmq::poll(items, 2, kPollCap);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("ingest poll failed: {}", e.what());
      continue;
    }
    if (Readable(items[1])) return;
    if (!Readable(items[0])) continue;
    const uint64_t wake_ns = metrics::UnixNanos();
    const SteadyTime wake = std::chrono::steady_clock::now();
    // Drain what is waiting, a bounded number at a time so a stop is noticed promptly.
    for (int received = 0; received < 256; ++received) {
      bool overflow = false;
      const SteadyTime receive_start = std::chrono::steady_clock::now();
      auto got = transport::ReceiveMultipart(ingest_, frames, 2, overflow);
      if (!got.ok()) {
        spdlog::error("ingest receive failed: {}", got.error().ToString());
        break;
      }
      if (!*got) break;
      SteadyTime now = std::chrono::steady_clock::now();
      auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
      if (overflow || !envelope.ok()) {
        probe_.MessageRejected(RejectReason::kMalformed);
        continue;
      }
      Queued item;
      item.received = now;
      const wire::Envelope* env = *envelope;
      const metrics::QueueWait wait = metrics::SplitQueueWait(
          env->sent_at_ns(), wake_ns, wake_ns + ElapsedNanos(wake, receive_start));
      item.transit_ns = wait.transit_ns;
      item.loop_ns = wait.loop_ns;
      item.receive_ns = ElapsedNanos(receive_start, now);
      switch (env->body_type()) {
        case wire::Body::WriteFragment: {
          if (frames.size() != 2) {
            probe_.MessageRejected(RejectReason::kMalformed);
            continue;
          }
          const auto* write = env->body_as_WriteFragment();
          if (!ValidAckEndpoint(wire::View(write->ack_to()))) {
            probe_.MessageRejected(RejectReason::kMalformed);
            continue;
          }
          RejectReason reason{};
          auto index = CheckWriteFragment(*write, options_.store_id, Bytes(frames[1]),
                                          options_.max_fragment_bytes, reason);
          if (index.ok()) {
            item.fragment_index = *index;
          } else {
            probe_.MessageRejected(reason);
            item.rejection = std::move(index).error();
          }
          item.kind = OpKind::kWrite;
          break;
        }
        case wire::Body::CommitVersion:
        case wire::Body::AbortVersion: {
          auto key = env->body_type() == wire::Body::CommitVersion
                         ? wire::View(env->body_as_CommitVersion()->key())
                         : wire::View(env->body_as_AbortVersion()->key());
          if (frames.size() != 1 || !ValidateKey(key).ok()) {
            probe_.MessageRejected(RejectReason::kMalformed);
            continue;
          }
          item.kind = env->body_type() == wire::Body::CommitVersion ? OpKind::kCommit : OpKind::kAbort;
          break;
        }
        case wire::Body::VersionDecisions: {
          const auto* decisions = env->body_as_VersionDecisions()->decisions();
          bool valid = frames.size() == 1 && decisions->size() > 0 &&
                       decisions->size() <= kMaxDecisionsPerMessage;
          for (size_t d = 0; valid && d < decisions->size(); ++d) {
            valid = ValidateKey(wire::View(decisions->Get(d)->key())).ok();
          }
          if (!valid) {
            probe_.MessageRejected(RejectReason::kMalformed);
            continue;
          }
          item.kind = OpKind::kCommit;  // no acknowledgement, like CommitVersion
          item.decisions = true;
          break;
        }
        default:
          probe_.MessageRejected(RejectReason::kUnexpected);
          continue;
      }
      uint64_t bytes = frames.size() > 1 ? frames[1].size() : 0;
      item.verify_ns = ElapsedNanos(now, std::chrono::steady_clock::now());
      probe_.StageObserved(Stage::kReceive, item.transit_ns, item.receive_ns);
      probe_.StageObserved(Stage::kVerify, item.loop_ns, item.verify_ns);
      if (frames.size() > 1) probe_.FragmentReceived(bytes);
      if (item.kind == OpKind::kWrite) probe_.write().Started();  // finished by its ack
      item.envelope = std::move(frames[0]);
      if (frames.size() > 1) item.payload = std::move(frames[1]);
      std::unique_lock lock(queue_mutex_);
      // Back-pressure: wait for the commit thread to make room rather than queue without bound.
      queue_space_.wait(lock, [&] {
        return queued_bytes_ == 0 || queued_bytes_ + bytes <= options_.max_queued_bytes;
      });
      queued_bytes_ += bytes;
      queue_.push_back(std::move(item));
      lock.unlock();
      queue_ready_.notify_one();
    }
  }
}

// ------------------------------------------------------------------------------ commit

// State of the commit thread, reused across batches so steady-state commits do not allocate.
struct FragstoreServer::CommitScratch {
  std::vector<StoreOp> ops;
  std::vector<OpResult> results;
  std::vector<size_t> op_of_item;
  std::vector<std::byte> header_arena;
  std::vector<std::pair<size_t, size_t>> header_spans;
  flatbuffers::FlatBufferBuilder header_builder{512};
  wire::MessageWriter writer;
  // One PUSH socket per splitter acknowledgement endpoint.
  std::unordered_map<std::string, zmq::socket_t, StringHash, std::equal_to<>> ack_sockets;
};


void FragstoreServer::CommitLoop() {
  std::vector<Queued> batch;
  CommitScratch scratch;
  while (true) {
    uint64_t bytes = 0;
    {
      std::unique_lock lock(queue_mutex_);
      if (!queue_ready_.wait_for(lock, kReclaimWhenIdleFor,
                                 [&] { return !queue_.empty() || ingest_done_; })) {
        lock.unlock();
        ReclaimSegmentSpace();
        continue;
      }
      if (queue_.empty() && ingest_done_) return;
      const size_t taken = GroupCommitSize(queue_.size(), options_.group_commit,
                                           [&](size_t i) { return queue_[i].payload.size(); });
      for (size_t i = 0; i < taken; ++i) bytes += queue_[i].payload.size();
      if (taken == queue_.size()) {
        batch.swap(queue_);
      } else {
        auto end = queue_.begin() + static_cast<std::ptrdiff_t>(taken);
        std::move(queue_.begin(), end, std::back_inserter(batch));
        queue_.erase(queue_.begin(), end);
      }
    }
    CommitBatch(batch, scratch);
    batch.clear();
    {
      std::lock_guard lock(queue_mutex_);
      queued_bytes_ -= bytes;
    }
    queue_space_.notify_all();
  }
}

// With no writes waiting: moves the live fragments out of mostly-garbage segment files, a
// bounded amount at a time so a write arriving meanwhile waits little.
void FragstoreServer::ReclaimSegmentSpace() {
  auto moved = store_.ReclaimSegments(kReclaimBytesPerPass);
  if (!moved.ok()) {
    spdlog::warn("reclaiming segment space failed: {}", moved.error().ToString());
    return;
  }
  if (*moved > 0) probe_.SegmentBytesMoved(*moved);
}

void FragstoreServer::CommitBatch(std::vector<Queued>& batch, CommitScratch& scratch) {
  auto& [ops, results, op_of_item, header_arena, header_spans, header_builder, writer,
         ack_sockets] = scratch;

  ops.clear();
  op_of_item.assign(batch.size(), SIZE_MAX);
  header_arena.clear();
  header_spans.clear();
  uint64_t payload_bytes = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    Queued& item = batch[i];
    if (item.rejection) continue;
    const auto* env = item.Envelope();
    if (item.decisions) {
      for (const auto* decision : *env->body_as_VersionDecisions()->decisions()) {
        StoreOp op;
        op.kind = decision->commit() ? OpKind::kCommit : OpKind::kAbort;
        op.key = wire::View(decision->key());
        op.version = wire::FromWire(decision->version());
        header_spans.emplace_back(0, 0);
        ops.push_back(op);
      }
      continue;
    }
    StoreOp op;
    op.kind = item.kind;
    switch (item.kind) {
      case OpKind::kWrite: {
        const auto* write = env->body_as_WriteFragment();
        BuildFragmentHeader(header_builder, *write, item.fragment_index, item.payload.size());
        size_t offset = header_arena.size();
        auto* data = reinterpret_cast<const std::byte*>(header_builder.GetBufferPointer());
        header_arena.insert(header_arena.end(), data, data + header_builder.GetSize());
        header_spans.emplace_back(offset, header_builder.GetSize());
        op.key = wire::View(write->key());
        op.version = wire::FromWire(write->version());
        op.tombstone = write->tombstone();
        op.payload = Bytes(item.payload);
        payload_bytes += item.payload.size();
        break;
      }
      case OpKind::kCommit: {
        const auto* commit = env->body_as_CommitVersion();
        op.key = wire::View(commit->key());
        op.version = wire::FromWire(commit->version());
        header_spans.emplace_back(0, 0);
        break;
      }
      case OpKind::kAbort: {
        const auto* abort = env->body_as_AbortVersion();
        op.key = wire::View(abort->key());
        op.version = wire::FromWire(abort->version());
        header_spans.emplace_back(0, 0);
        break;
      }
    }
    op_of_item[i] = ops.size();
    ops.push_back(op);
  }
  // Headers live in one arena; point at them only now that it no longer grows.
  for (size_t o = 0; o < ops.size(); ++o) {
    if (ops[o].kind == OpKind::kWrite) {
      ops[o].header = std::span(header_arena).subspan(header_spans[o].first, header_spans[o].second);
    }
  }
  results.assign(ops.size(), OpResult{});
  SteadyTime start = std::chrono::steady_clock::now();
  Status applied = ops.empty() ? OkStatus() : store_.Apply(ops, results);
  SteadyTime done = std::chrono::steady_clock::now();
  uint64_t work_ns = ElapsedNanos(start, done);
  if (!ops.empty()) {
    if (applied.ok()) {
      probe_.BatchCommitted(ops.size(), payload_bytes, store_.syncs_wal());
      // Fragments go to segment files straight from the received frames: no user-space copy.
      // One stored inline in RocksDB is copied twice (write batch, memtable).
      for (size_t o = 0; o < ops.size(); ++o) {
        if (!results[o].stored_inline) continue;
        metrics::CountPayloadCopy(ops[o].payload.size());
        metrics::CountPayloadCopy(ops[o].payload.size());
      }
    } else {
      probe_.BatchFailed();
      spdlog::error("group commit of {} operations failed: {}", ops.size(), applied.error().ToString());
    }
  }

  for (size_t i = 0; i < batch.size(); ++i) {
    Queued& item = batch[i];
    if (item.kind != OpKind::kWrite) continue;
    const auto* write = item.Envelope()->body_as_WriteFragment();
    uint64_t queue_ns = ElapsedNanos(item.received, start);
    probe_.StageObserved(Stage::kStoreCommit, queue_ns, work_ns);
    const SteadyTime ack_start = std::chrono::steady_clock::now();
    std::optional<Error> error = item.rejection;
    if (!error && !applied.ok()) error = applied.error();
    size_t op = op_of_item[i];
    if (!error) probe_.FragmentStored(item.payload.size());
    probe_.write().Finished(error ? error->code() : ErrorCode::kOk, ElapsedNanos(item.received, done));

    auto& fbb = writer.fbb();
    writer.Reset();
    auto error_offset = error ? wire::ToWire(fbb, *error) : 0;
    wire::FragmentAckBuilder ack(fbb);
    ack.add_write_id(write->write_id());
    ack.add_store_id(options_.store_id.value());
    ack.add_fragment_index(static_cast<uint8_t>(std::max(item.fragment_index, 0)));
    ack.add_had_live_version(!error && op != SIZE_MAX && results[op].had_live_version);
    if (error) ack.add_error(error_offset);
    const std::array<wire::StageTiming, 3> timings = {
        wire::StageTiming(static_cast<uint8_t>(Stage::kReceive), item.transit_ns, item.receive_ns),
        wire::StageTiming(static_cast<uint8_t>(Stage::kVerify), item.loop_ns, item.verify_ns),
        wire::StageTiming(static_cast<uint8_t>(Stage::kStoreCommit), queue_ns, work_ns)};
    zmq::message_t frame = writer.Finish(0, ack.Finish(), timings);

    std::string_view ack_to = wire::View(write->ack_to());
    auto socket = ack_sockets.find(ack_to);
    if (socket == ack_sockets.end()) {
      if (ack_sockets.size() >= 256) ack_sockets.clear();  // splitters come and go
      transport::SocketOptions options;
      options.send_hwm = 10000;
      auto created = transport::MakeSocket(context_, zmq::socket_type::push, options);
      if (!created.ok() || !transport::Connect(*created, std::string(ack_to)).ok()) {
        probe_.AckDropped();
        continue;
      }
      socket = ack_sockets.emplace(std::string(ack_to), std::move(*created)).first;
    }
    auto sent = transport::SendMultipart(socket->second, std::span(&frame, 1));
    if (!sent.ok() || *sent != transport::SendOutcome::kSent) probe_.AckDropped();
    // The ack waited behind the acks of earlier writes of the batch.
    probe_.StageObserved(Stage::kReply, ElapsedNanos(done, ack_start),
                         ElapsedNanos(ack_start, std::chrono::steady_clock::now()));
  }
}

// ------------------------------------------------------------------------------ read

void FragstoreServer::ReadLoop(int stop_fd) {
  std::vector<zmq::message_t> frames;
  wire::AlignedFrame aligned;
  wire::MessageWriter writer;
  KeyVersions versions;
  std::vector<flatbuffers::Offset<wire::HeldVersion>> held;
  zmq::pollitem_t items[] = {{reader_.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, stop_fd, ZMQ_POLLIN, 0}};
  SteadyTime next_stats{};
  SteadyTime last_read = std::chrono::steady_clock::now();
  bool trimmed = true;

  auto add_versions = [&](flatbuffers::FlatBufferBuilder& fbb, const KeyVersions& kv,
                          std::optional<Version> corrupt) {
    held.clear();
    for (const auto& v : kv.view()) {
      // Nested FlatBuffers need their own alignment inside the reply.
      fbb.ForceVectorAlignment(v.header.size(), sizeof(uint8_t), alignof(uint64_t));
      auto header = fbb.CreateVector(reinterpret_cast<const uint8_t*>(v.header.data()), v.header.size());
      auto wire_version = wire::ToWire(v.version);
      auto state = corrupt && *corrupt == v.version ? wire::FragmentState::Corrupt : wire::FragmentState::Ok;
      held.push_back(wire::CreateHeldVersion(fbb, &wire_version, v.committed, state, header));
    }
    return fbb.CreateVector(held);
  };

  while (true) {
    SteadyTime now = std::chrono::steady_clock::now();
    if (now >= next_stats) {
      probe_.StorageStats(store_.Stats());
      next_stats = now + kStatsInterval;
    }
    try {
      zmq::poll(items, 2, kPollCap);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("read poll failed: {}", e.what());
      continue;
    }
    if (Readable(items[1])) return;
    if (!Readable(items[0])) {
      if (!trimmed && std::chrono::steady_clock::now() - last_read > kIdleTrimAfter) {
        // Give the buffers large reads used back so an idle store stays small.
        transport::BufferPool::Global().Trim();
        trimmed = true;
      }
      continue;
    }
    const uint64_t wake_ns = metrics::UnixNanos();
    const SteadyTime wake = std::chrono::steady_clock::now();
    last_read = wake;
    trimmed = false;
    for (int handled = 0; handled < 64; ++handled) {
      bool overflow = false;
      const SteadyTime receive_start = std::chrono::steady_clock::now();
      auto got = transport::ReceiveMultipart(reader_, frames, 3, overflow);
      if (!got.ok() || !*got) break;
      SteadyTime start = std::chrono::steady_clock::now();
      const uint64_t receive_ns = ElapsedNanos(receive_start, start);
      if (frames.size() < 2) {
        probe_.MessageRejected(RejectReason::kMalformed);
        continue;
      }
      std::array<zmq::message_t, 3> reply;
      size_t reply_frames = 2;
      reply[0] = std::move(frames[0]);  // the requester's routing id
      auto envelope = wire::ParseEnvelope(aligned.Of(frames[1]));
      if (overflow || frames.size() != 2 || !envelope.ok()) {
        probe_.MessageRejected(RejectReason::kMalformed);
        reply[1] = writer.FinishError(0, envelope.ok() ? Error(ErrorCode::kMalformed, "unexpected frames")
                                                       : envelope.error());
        (void)transport::SendMultipart(reader_, std::span(reply.data(), 2));
        continue;
      }
      const wire::Envelope* env = *envelope;
      uint64_t request_id = env->request_id();
      const metrics::QueueWait wait = metrics::SplitQueueWait(
          env->sent_at_ns(), wake_ns, wake_ns + ElapsedNanos(wake, receive_start));
      probe_.StageObserved(Stage::kReceive, wait.transit_ns, receive_ns);
      writer.Reset();
      auto& fbb = writer.fbb();

      if (const auto* fetch = env->body_as_FetchRequest()) {
        probe_.fetch().Started();
        std::string_view key = wire::View(fetch->key());
        Status read = ValidateKey(key);
        if (read.ok()) read = store_.ReadVersions(key, versions);
        if (!read.ok()) {
          reply[1] = writer.FinishError(request_id, read.error());
          probe_.fetch().Finished(read.error().code(), ElapsedNanos(start, std::chrono::steady_clock::now()));
        } else {
          // The version whose bytes are wanted: the one asked for, else the newest held.
          const HeldVersion* target = nullptr;
          for (const auto& v : versions.view()) {
            if (fetch->version() == nullptr || wire::FromWire(fetch->version()) == v.version) {
              target = &v;
              break;
            }
          }
          std::optional<Error> payload_error;
          std::optional<Version> corrupt;
          zmq::message_t payload_frame;
          bool have_payload = false;
          uint64_t payload_offset = 0;
          if ((fetch->want_payload() || fetch->verify()) && target == nullptr) {
            payload_error = Error(ErrorCode::kNotFound, "version not held");
          } else if ((fetch->want_payload() || fetch->verify()) && target != nullptr) {
            auto header = wire::ParseFragmentHeader(
                std::as_bytes(std::span(target->header.data(), target->header.size())));
            if (!header.ok()) {
              payload_error = Error(ErrorCode::kCorrupt, "stored header unreadable");
              corrupt = target->version;
            } else if (!(*header)->tombstone()) {
              auto bytes = store_.ReadPayload(key, target->version);
              if (!bytes.ok()) {
                payload_error = bytes.error();
                if (bytes.error().code() == ErrorCode::kCorrupt) corrupt = target->version;
              } else if (bytes->bytes().size() != (*header)->size() ||
                         codec::Checksum(bytes->bytes()) != (*header)->checksum()) {
                payload_error = Error(ErrorCode::kCorrupt, "fragment failed its checksum");
                corrupt = target->version;
              } else if (fetch->want_payload()) {
                // The bytes are taken from the holder only once they are in it: a small
                // fragment's bytes live inside its (moved) buffer.
                auto* holder = new PinnedPayload(std::move(*bytes));
                auto span = holder->bytes();
                int index = (*header)->index();
                bool ranged = fetch->range() != nullptr || fetch->suffix_length() > 0;
                if (ranged && index < (*header)->k()) {
                  uint64_t record_size = (*header)->record_size();
                  codec::ByteSpan range;
                  if (fetch->range() != nullptr) {
                    range = {fetch->range()->offset(), fetch->range()->length()};
                  } else {
                    uint64_t suffix = std::min(fetch->suffix_length(), record_size);
                    range = {record_size - suffix, suffix};
                  }
                  codec::StripeLayout layout(record_size, (*header)->k(), (*header)->m());
                  auto overlap = layout.OverlapInFragment(index, range);
                  payload_offset = overlap.offset;
                  span = span.subspan(std::min<uint64_t>(overlap.offset, span.size()),
                                      std::min<uint64_t>(overlap.length, span.size() - std::min<uint64_t>(overlap.offset, span.size())));
                }
                if (holder->copied()) metrics::CountPayloadCopy(holder->bytes().size());
                payload_frame = transport::BorrowedMessage(
                    span, [](void*, void* hint) { delete static_cast<PinnedPayload*>(hint); }, holder);
                have_payload = true;
                probe_.FragmentServed(span.size());
              }
            }
            if (corrupt) probe_.CorruptFragmentDetected();
          }
          auto held_offset = add_versions(fbb, versions, corrupt);
          auto error_offset = payload_error ? wire::ToWire(fbb, *payload_error) : 0;
          wire::FetchReplyBuilder body(fbb);
          body.add_store_id(options_.store_id.value());
          body.add_versions(held_offset);
          if (have_payload) {
            auto v = wire::ToWire(target->version);
            body.add_payload_version(&v);
            body.add_payload_offset(payload_offset);
          }
          if (payload_error) body.add_payload_error(error_offset);
          SteadyTime done = std::chrono::steady_clock::now();
          const std::array<wire::StageTiming, 2> timings = {
              wire::StageTiming(static_cast<uint8_t>(Stage::kReceive), wait.transit_ns, receive_ns),
              wire::StageTiming(static_cast<uint8_t>(Stage::kStoreRead), wait.loop_ns,
                                ElapsedNanos(start, done))};
          reply[1] = writer.Finish(request_id, body.Finish(), timings);
          if (have_payload) {
            reply[2] = std::move(payload_frame);
            reply_frames = 3;
          }
          probe_.StageObserved(Stage::kStoreRead, wait.loop_ns, ElapsedNanos(start, done));
          probe_.fetch().Finished(payload_error ? payload_error->code() : ErrorCode::kOk,
                                  ElapsedNanos(start, done));
        }
      } else if (const auto* list = env->body_as_ListKeysRequest()) {
        probe_.list().Started();
        uint32_t limit = std::clamp<uint32_t>(list->limit() == 0 ? kDefaultListLimit : list->limit(), 1, kMaxListLimit);
        std::vector<flatbuffers::Offset<wire::KeyVersions>> entries;
        size_t approx_bytes = 0;
        constexpr size_t kMaxReplyBytes = kMaxEnvelopeBytes / 2;
        auto more = store_.List(wire::View(list->prefix()), wire::View(list->cursor()),
                                [&](std::string_view key, const KeyVersions& kv) {
                                  auto key_offset = fbb.CreateString(key);
                                  auto held_offset = add_versions(fbb, kv, std::nullopt);
                                  entries.push_back(wire::CreateKeyVersions(fbb, key_offset, held_offset));
                                  approx_bytes += key.size() + 64;
                                  for (const auto& v : kv.view()) approx_bytes += v.header.size() + 32;
                                  return entries.size() < limit && approx_bytes < kMaxReplyBytes;
                                });
        if (!more.ok()) {
          reply[1] = writer.FinishError(request_id, more.error());
          probe_.list().Finished(more.error().code(), ElapsedNanos(start, std::chrono::steady_clock::now()));
        } else {
          auto entries_offset = fbb.CreateVector(entries);
          reply[1] = writer.Finish(request_id, wire::CreateListKeysReply(fbb, options_.store_id.value(),
                                                                         entries_offset, *more));
          probe_.StageObserved(Stage::kList, wait.loop_ns, ElapsedNanos(start, std::chrono::steady_clock::now()));
          probe_.list().Finished(ErrorCode::kOk, ElapsedNanos(start, std::chrono::steady_clock::now()));
        }
      } else if (env->body_as_StoreStatRequest() != nullptr) {
        StoreStats stats = store_.Stats();
        reply[1] = writer.Finish(request_id, wire::CreateStoreStatReply(fbb, options_.store_id.value(),
                                                                        stats.estimated_keys,
                                                                        stats.live_data_bytes));
      } else {
        probe_.MessageRejected(RejectReason::kUnexpected);
        reply[1] = writer.FinishError(request_id, Error(ErrorCode::kInvalidArgument,
                                                        "fragstore read port does not serve this message"));
      }
      const SteadyTime reply_start = std::chrono::steady_clock::now();
      (void)transport::SendMultipart(reader_, std::span(reply.data(), reply_frames));
      probe_.StageObserved(Stage::kReply, 0, ElapsedNanos(reply_start, std::chrono::steady_clock::now()));
    }
  }
}

}  // namespace ddsplit::fragstore
