#include "client/client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>

#include "common/base/clock.h"
#include "common/base/key.h"
#include "common/base/limits.h"
#include "common/metrics/metrics.h"
#include "common/transport/transport.h"
#include "common/wire/envelope.h"

namespace ddsplit::client {
namespace {

using transport::Bytes;

constexpr auto kTimeoutScanInterval = std::chrono::milliseconds(5);
// A reply frame list is at most an envelope plus every MultiGet item's fragments.
constexpr size_t kMaxReplyFrames = 1 + kMaxMultiGetKeys * kMaxFragments;

std::vector<StageTime> TimingsOf(const wire::Envelope& envelope) {
  std::vector<StageTime> out;
  if (envelope.timings() == nullptr) return out;
  for (const auto* t : *envelope.timings()) {
    if (t->stage() >= kStageCount) continue;
    out.push_back({static_cast<Stage>(t->stage()), t->queue_ns(), t->work_ns()});
  }
  return out;
}

RecordInfo InfoOf(const wire::RecordInfo* info) {
  RecordInfo out;
  if (info == nullptr) return out;
  out.key = wire::View(info->key());
  out.version = wire::FromWire(info->version());
  out.size = info->size();
  out.checksum = info->checksum();
  out.content_type = wire::View(info->content_type());
  if (info->metadata() != nullptr) {
    for (const auto* entry : *info->metadata()) {
      out.metadata.emplace_back(wire::View(entry->name()), wire::View(entry->value()));
    }
  }
  out.k = info->k();
  out.m = info->m();
  if (info->placement() != nullptr) out.placement.assign(info->placement()->begin(), info->placement()->end());
  return out;
}

// Shared by the ZeroMQ free callback of a borrowed value and the request that sent it; the
// request completes only once ZeroMQ has released the caller's bytes.
struct ReleaseToken {
  std::atomic<int> references{2};
  std::atomic<bool> released{false};
  void Drop() {
    if (references.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  static void OnRelease(void*, void* hint) {
    auto* token = static_cast<ReleaseToken*>(hint);
    token->released.store(true, std::memory_order_release);
    token->Drop();
  }
};

}  // namespace

Status ValidateEndpoint(const std::string& endpoint) {
  constexpr std::string_view kDnsScheme = "dns+tcp://";
  if (endpoint.rfind(kDnsScheme, 0) == 0) {
    std::string_view rest = std::string_view(endpoint).substr(kDnsScheme.size());
    auto colon = rest.rfind(':');
    bool port_ok = colon != std::string_view::npos && colon > 0 && colon + 1 < rest.size() &&
                   rest.size() - colon - 1 <= 5 &&
                   std::all_of(rest.begin() + colon + 1, rest.end(),
                               [](char c) { return c >= '0' && c <= '9'; });
    if (port_ok && std::stoul(std::string(rest.substr(colon + 1))) <= 65535) return OkStatus();
    return Error(ErrorCode::kInvalidArgument, "expected dns+tcp://NAME:PORT, got " + endpoint);
  }
  for (std::string_view scheme : {"tcp://", "ipc://", "inproc://"}) {
    if (endpoint.rfind(scheme, 0) == 0 && endpoint.size() > scheme.size()) return OkStatus();
  }
  return Error(ErrorCode::kInvalidArgument,
               "expected tcp://HOST:PORT, dns+tcp://NAME:PORT, ipc:// or inproc://, got " + endpoint);
}

Result<std::vector<std::string>> ResolveEndpoint(const std::string& endpoint) {
  constexpr std::string_view kDnsScheme = "dns+tcp://";
  if (endpoint.rfind(kDnsScheme, 0) != 0) return std::vector<std::string>{endpoint};
  std::string rest = endpoint.substr(kDnsScheme.size());
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    return Error(ErrorCode::kInvalidArgument, "expected dns+tcp://NAME:PORT, got " + endpoint);
  }
  std::string host = rest.substr(0, colon);
  std::string port = rest.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return Error(ErrorCode::kUnavailable, "cannot resolve " + host + ": " + gai_strerror(rc));
  }
  std::vector<std::string> endpoints;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, text, sizeof text);
      endpoints.push_back("tcp://" + std::string(text) + ":" + port);
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, text, sizeof text);
      endpoints.push_back("tcp://[" + std::string(text) + "]:" + port);
    }
  }
  freeaddrinfo(found);
  std::sort(endpoints.begin(), endpoints.end());
  endpoints.erase(std::unique(endpoints.begin(), endpoints.end()), endpoints.end());
  return endpoints;
}

std::string_view FragmentStateName(FragmentState state) {
  switch (state) {
    case FragmentState::kOk: return "ok";
    case FragmentState::kMissing: return "missing";
    case FragmentState::kStale: return "stale";
    case FragmentState::kCorrupt: return "corrupt";
    case FragmentState::kUnreachable: return "unreachable";
  }
  return "unknown";
}

uint64_t Value::size() const {
  uint64_t total = 0;
  for (const auto& frame : frames_) total += frame.size();
  return total;
}

std::string Value::ToString() const {
  std::string out(size(), '\0');
  CopyTo(std::as_writable_bytes(std::span(out.data(), out.size())));
  return out;
}

void Value::CopyTo(std::span<std::byte> out) const {
  size_t offset = 0;
  for (const auto& frame : frames_) {
    std::memcpy(out.data() + offset, frame.data(), frame.size());
    offset += frame.size();
  }
  metrics::CountPayloadCopy(offset);
}

Result<ClientOptions> OptionsFromClusterFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(ErrorCode::kInvalidArgument, "cannot read cluster file " + path);
  nlohmann::json json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return Error(ErrorCode::kInvalidArgument, path + " is not valid JSON");
  }
  ClientOptions options;
  for (const auto& [field, target] : {std::pair{"splitters", &options.splitters},
                                      std::pair{"assemblers", &options.assemblers}}) {
    if (!json.contains(field) || !json[field].is_array()) continue;
    for (const auto& entry : json[field]) {
      if (entry.is_object() && entry.contains("endpoint") && entry["endpoint"].is_string()) {
        target->push_back(entry["endpoint"].get<std::string>());
      }
    }
  }
  if (options.splitters.empty() || options.assemblers.empty()) {
    return Error(ErrorCode::kInvalidArgument, path + " lists no splitter or no assembler");
  }
  return options;
}

// ------------------------------------------------------------------------------ Impl

// Completes one request with its answer (or why there is none) and the answer's value frames.
using Handler = std::function<void(Result<const wire::Envelope*>, std::span<zmq::message_t>)>;

struct Client::Impl {

  struct Pending {
    bool active = false;
    uint32_t generation = 0;
    SteadyTime deadline{};
    Handler handler;
    ReleaseToken* release = nullptr;  // set while a borrowed value may still be in ZeroMQ
    // An answer that arrived before ZeroMQ released the value waits here.
    bool answered = false;
    std::optional<Error> answer_error;
    std::vector<zmq::message_t> answer_frames;
    // Frames not yet taken by ZeroMQ because no peer was connected yet: retried by Poll until
    // the deadline, so a client that has just connected does not fail its first requests.
    std::vector<zmq::message_t> unsent;
    zmq::socket_t* unsent_socket = nullptr;
  };

  ClientOptions options;
  std::unique_ptr<zmq::context_t> owned_context;
  zmq::context_t* context = nullptr;
  zmq::socket_t writes;
  zmq::socket_t reads;
  wire::MessageWriter writer;
  std::vector<zmq::message_t> frames;
  wire::AlignedFrame aligned;
  std::vector<Pending> slots;
  std::vector<uint32_t> free_slots;
  std::vector<std::function<void()>> ready;  // completions decided at submission
  std::vector<uint32_t> awaiting_release;
  std::vector<uint32_t> unsent;  // slots with frames waiting for a connected peer, in order
  size_t active = 0;
  SteadyTime next_timeout_scan{};

  // What each socket is connected to, per configured endpoint, so that names can be
  // re-resolved and the connections follow the addresses.
  struct Connections {
    zmq::socket_t* socket = nullptr;
    std::string configured;
    std::vector<std::string> connected;
  };
  std::vector<Connections> connections;
  SteadyTime next_resolve{};

  // Connects `entry` to the addresses it now stands for; returns false if it has none.
  bool Refresh(Connections& entry) {
    auto resolved = ResolveEndpoint(entry.configured);
    if (!resolved.ok()) return !entry.connected.empty();  // keep what works until it resolves
    for (const auto& endpoint : *resolved) {
      if (std::find(entry.connected.begin(), entry.connected.end(), endpoint) == entry.connected.end()) {
        if (transport::Connect(*entry.socket, endpoint).ok()) entry.connected.push_back(endpoint);
      }
    }
    for (auto it = entry.connected.begin(); it != entry.connected.end();) {
      if (std::find(resolved->begin(), resolved->end(), *it) != resolved->end()) {
        ++it;
        continue;
      }
      try {
        entry.socket->disconnect(*it);
      } catch (const zmq::error_t&) {
      }
      it = entry.connected.erase(it);
    }
    return !entry.connected.empty();
  }

  void RefreshNames(SteadyTime now) {
    bool all_connected = true;
    for (auto& entry : connections) {
      if (entry.configured.rfind("dns+tcp://", 0) == 0) all_connected &= Refresh(entry);
    }
    // A name with no address yet (pods still starting) is retried sooner.
    next_resolve = now + (all_connected ? options.dns_refresh : std::chrono::milliseconds(1000));
  }

  ~Impl() {
    // Close the sockets first so ZeroMQ drops queued messages and releases borrowed values.
    writes.close();
    reads.close();
    owned_context.reset();
    for (auto& pending : slots) {
      if (pending.release != nullptr) pending.release->Drop();
    }
  }

  uint64_t RequestId(uint32_t slot) const { return (uint64_t{slots[slot].generation} << 32) | slot; }

  // Completes `handler` with `error` at the next Poll (never inside the submitting call).
  void FailLater(Handler handler, Error error) {
    ready.push_back([h = std::move(handler), e = std::move(error)] { h(e, {}); });
  }

  // Reserves a slot and sends the request `build(fbb)` makes — followed by `value` as a borrowed
  // frame when given — or completes `handler` with the reason it could not.
  template <typename Build>
  void Submit(zmq::socket_t& socket, Handler handler, const std::span<const std::byte>* value,
              Build build) {
    auto slot = Reserve(handler);
    if (!slot) return;
    writer.Reset();
    std::array<zmq::message_t, 2> message;
    message[0] = writer.Finish(RequestId(*slot), build(writer.fbb()));
    if (value == nullptr) return Send(socket, *slot, std::span(message.data(), 1));
    auto* token = new ReleaseToken();
    slots[*slot].release = token;
    message[1] = transport::BorrowedMessage(*value, &ReleaseToken::OnRelease, token);
    Send(socket, *slot, message);
  }

  // Reserves a slot, or completes `handler` with kBusy.
  std::optional<uint32_t> Reserve(Handler& handler) {
    if (free_slots.empty()) {
      FailLater(std::move(handler), Error(ErrorCode::kBusy, "too many requests in flight on this client"));
      return std::nullopt;
    }
    uint32_t slot = free_slots.back();
    free_slots.pop_back();
    Pending& pending = slots[slot];
    pending.active = true;
    pending.deadline = std::chrono::steady_clock::now() + options.timeout;
    pending.handler = std::move(handler);
    pending.answered = false;
    pending.answer_error.reset();
    pending.answer_frames.clear();
    ++active;
    return slot;
  }

  void Complete(uint32_t slot, Result<const wire::Envelope*> envelope, std::span<zmq::message_t> payload) {
    Pending& pending = slots[slot];
    Handler handler = std::move(pending.handler);
    pending.unsent.clear();
    pending.unsent_socket = nullptr;
    if (pending.release != nullptr) {
      pending.release->Drop();
      pending.release = nullptr;
    }
    pending.active = false;
    ++pending.generation;
    --active;
    free_slots.push_back(slot);
    handler(std::move(envelope), payload);
  }

  // Sends the request in `slot`, or keeps it to retry when no peer is connected yet.
  void Send(zmq::socket_t& socket, uint32_t slot, std::span<zmq::message_t> message) {
    Pending& pending = slots[slot];
    // Keep per-socket order: behind requests already waiting for this socket.
    bool queued_behind = std::any_of(unsent.begin(), unsent.end(), [&](uint32_t other) {
      return slots[other].unsent_socket == &socket;
    });
    if (!queued_behind) {
      auto sent = transport::SendMultipart(socket, message);
      if (sent.ok() && *sent == transport::SendOutcome::kSent) return;
      if (!sent.ok()) {
        Complete(slot, sent.error(), {});
        return;
      }
    }
    pending.unsent.clear();
    for (auto& frame : message) pending.unsent.push_back(std::move(frame));
    pending.unsent_socket = &socket;
    unsent.push_back(slot);
  }

  // Retries unsent requests in order; those past their deadline fail.
  void RetryUnsent(SteadyTime now) {
    size_t kept = 0;
    bool blocked[2] = {false, false};  // writes, reads: stop at the first that cannot go
    for (size_t i = 0; i < unsent.size(); ++i) {
      uint32_t slot = unsent[i];
      Pending& pending = slots[slot];
      bool& socket_blocked = blocked[pending.unsent_socket == &writes ? 0 : 1];
      bool sent = false;
      if (!socket_blocked) {
        auto outcome = transport::SendMultipart(*pending.unsent_socket, pending.unsent);
        sent = outcome.ok() && *outcome == transport::SendOutcome::kSent;
      }
      if (sent) {
        pending.unsent.clear();
        pending.unsent_socket = nullptr;
        continue;
      }
      if (now >= pending.deadline) {
        const char* what = pending.unsent_socket == &writes ? "splitter" : "assembler";
        pending.unsent.clear();  // releases a borrowed value: ZeroMQ never took it
        pending.unsent_socket = nullptr;
        Complete(slot, Error(ErrorCode::kUnavailable, std::string("no ") + what + " reachable"), {});
        continue;
      }
      socket_blocked = true;
      unsent[kept++] = slot;
    }
    unsent.resize(kept);
  }

  void Dispatch(std::vector<zmq::message_t>& received) {
    auto envelope = wire::ParseEnvelope(aligned.Of(received[0]));
    if (!envelope.ok()) return;  // not answerable: the request will time out
    uint64_t id = (*envelope)->request_id();
    uint32_t slot = static_cast<uint32_t>(id);
    if (slot >= slots.size()) return;
    Pending& pending = slots[slot];
    if (!pending.active || pending.generation != static_cast<uint32_t>(id >> 32) || pending.answered) return;
    if (pending.release != nullptr && !pending.release->released.load(std::memory_order_acquire)) {
      pending.answered = true;
      if ((*envelope)->error() != nullptr) {
        pending.answer_error = wire::FromWire((*envelope)->error());
      } else {
        pending.answer_frames = std::move(received);
      }
      awaiting_release.push_back(slot);
      return;
    }
    if ((*envelope)->error() != nullptr) {
      Complete(slot, wire::FromWire((*envelope)->error()), {});
      return;
    }
    Complete(slot, *envelope, std::span(received).subspan(1));
  }

  void ReleaseAnswered() {
    for (size_t i = 0; i < awaiting_release.size();) {
      uint32_t slot = awaiting_release[i];
      Pending& pending = slots[slot];
      if (!pending.active || !pending.answered) {
        awaiting_release[i] = awaiting_release.back();
        awaiting_release.pop_back();
        continue;
      }
      if (!pending.release->released.load(std::memory_order_acquire)) {
        ++i;
        continue;
      }
      awaiting_release[i] = awaiting_release.back();
      awaiting_release.pop_back();
      if (pending.answer_error) {
        Error error = std::move(*pending.answer_error);
        Complete(slot, std::move(error), {});
      } else {
        std::vector<zmq::message_t> answer = std::move(pending.answer_frames);
        Complete(slot, wire::GetEnvelope(aligned.Of(answer[0]).data()), std::span(answer).subspan(1));
      }
    }
  }

  void ExpireRequests(SteadyTime now) {
    for (uint32_t slot = 0; slot < slots.size(); ++slot) {
      Pending& pending = slots[slot];
      if (!pending.active || pending.answered || pending.unsent_socket != nullptr ||
          now < pending.deadline) {
        continue;
      }
      if (pending.release != nullptr && !pending.release->released.load(std::memory_order_acquire)) {
        continue;  // ZeroMQ still holds the caller's bytes; they are released on send or drop
      }
      Complete(slot, Error(ErrorCode::kDeadlineExceeded, "no answer within the client timeout"), {});
    }
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Connect(ClientOptions options, zmq::context_t* context) {
  if (options.splitters.empty() || options.assemblers.empty()) {
    return Error(ErrorCode::kInvalidArgument, "a client needs at least one splitter and one assembler");
  }
  auto impl = std::make_unique<Impl>();
  if (context == nullptr) {
    impl->owned_context = std::make_unique<zmq::context_t>(1);
    context = impl->owned_context.get();
  }
  impl->context = context;
  transport::SocketOptions socket_options;
  socket_options.immediate = true;  // no splitter connected: fail at once, do not queue
  socket_options.send_hwm = 100000;
  socket_options.receive_hwm = 100000;
  for (auto [socket, endpoints] : {std::pair{&impl->writes, &options.splitters},
                                   std::pair{&impl->reads, &options.assemblers}}) {
    auto created = transport::MakeSocket(*context, zmq::socket_type::dealer, socket_options);
    if (!created.ok()) return std::move(created).error();
    *socket = std::move(*created);
    for (const auto& endpoint : *endpoints) {
      Impl::Connections entry{socket, endpoint, {}};
      if (endpoint.rfind("dns+tcp://", 0) == 0) {
        auto valid = ResolveEndpoint(endpoint);
        if (!valid.ok() && valid.error().code() == ErrorCode::kInvalidArgument) return std::move(valid).error();
        impl->Refresh(entry);
      } else {
        DDSPLIT_RETURN_IF_ERROR(transport::Connect(*socket, endpoint));
        entry.connected.push_back(endpoint);
      }
      impl->connections.push_back(std::move(entry));
    }
  }
  impl->slots.resize(options.max_in_flight);
  for (size_t i = options.max_in_flight; i-- > 0;) impl->free_slots.push_back(static_cast<uint32_t>(i));
  impl->options = std::move(options);
  impl->RefreshNames(std::chrono::steady_clock::now());
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

size_t Client::in_flight() const { return impl_->active; }

size_t Client::Poll(std::chrono::milliseconds wait) {
  Impl& impl = *impl_;
  size_t before = impl.active + impl.ready.size();
  auto ready = std::move(impl.ready);
  impl.ready.clear();
  for (auto& completion : ready) completion();
  SteadyTime now = std::chrono::steady_clock::now();
  if (ready.empty() && impl.active > 0) {
    SteadyTime until = now + wait;
    if (!impl.awaiting_release.empty()) until = std::min(until, now + std::chrono::milliseconds(1));
    for (const auto& pending : impl.slots) {
      if (pending.active && pending.deadline < until) until = pending.deadline;
    }
    short out = impl.unsent.empty() ? 0 : ZMQ_POLLOUT;
    zmq::pollitem_t items[] = {{impl.writes.handle(), 0, static_cast<short>(ZMQ_POLLIN | out), 0},
                               {impl.reads.handle(), 0, static_cast<short>(ZMQ_POLLIN | out), 0}};
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(transport::PollTimeoutMs(now, until, wait)));
    } catch (const zmq::error_t&) {
    }
  }
  for (zmq::socket_t* socket : {&impl.writes, &impl.reads}) {
    while (true) {
      bool overflow = false;
      auto got = transport::ReceiveMultipart(*socket, impl.frames, kMaxReplyFrames, overflow);
      if (!got.ok() || !*got) break;
      if (overflow || impl.frames.empty()) continue;
      impl.Dispatch(impl.frames);
    }
  }
  impl.ReleaseAnswered();
  now = std::chrono::steady_clock::now();
  if (now >= impl.next_resolve) impl.RefreshNames(now);
  if (!impl.unsent.empty()) impl.RetryUnsent(now);
  if (now >= impl.next_timeout_scan) {
    impl.ExpireRequests(now);
    impl.next_timeout_scan = now + kTimeoutScanInterval;
  }
  size_t after = impl.active + impl.ready.size();
  return before > after ? before - after : 0;
}

// ------------------------------------------------------------------------------ requests

// Builds the handler of a request whose answer carries a `Body`: an error answer is passed on,
// an answer of another type is kMalformed, and `decode` turns the body into the result.
template <typename Body, typename T, typename Decode>
Handler Expect(Callback<T> done, const char* what, Decode decode) {
  return [done = std::move(done), what, decode](Result<const wire::Envelope*> envelope,
                                                std::span<zmq::message_t> frames) {
    if (!envelope.ok()) return done(std::move(envelope).error());
    const Body* body = (*envelope)->template body_as<Body>();
    if (body == nullptr) {
      return done(Error(ErrorCode::kMalformed, std::string("unexpected answer to ") + what));
    }
    done(decode(*body, **envelope, frames));
  };
}

void Client::PutAsync(const PutArgs& args, Callback<PutResult> done) {
  auto handler = Expect<wire::PutReply>(
      std::move(done), "Put", [](const wire::PutReply& reply, const wire::Envelope& envelope, auto) {
        return Result<PutResult>(PutResult{wire::FromWire(reply.version()), reply.size(),
                                           reply.created(), TimingsOf(envelope)});
      });
  Status valid = ValidateKey(args.key);
  if (valid.ok() && args.value.size() > impl_->options.max_record_bytes) {
    valid = Error(ErrorCode::kTooLarge, "value of " + std::to_string(args.value.size()) +
                                            " bytes exceeds the limit of " +
                                            std::to_string(impl_->options.max_record_bytes));
  }
  if (!valid.ok()) return impl_->FailLater(std::move(handler), valid.error());
  impl_->Submit(impl_->writes, std::move(handler), &args.value, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto key = fbb.CreateString(args.key);
    auto content_type = args.content_type.empty() ? 0 : fbb.CreateString(args.content_type);
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::MetaEntry>>> metadata = 0;
    if (!args.metadata.empty()) {
      std::vector<flatbuffers::Offset<wire::MetaEntry>> entries;
      for (const auto& [name, value] : args.metadata) {
        entries.push_back(wire::CreateMetaEntry(fbb, fbb.CreateString(name), fbb.CreateString(value)));
      }
      metadata = fbb.CreateVectorOfSortedTables(&entries);
    }
    return wire::CreatePutRequest(fbb, key, content_type, metadata);
  });
}

void Client::DeleteAsync(std::string_view key, Callback<DeleteResult> done) {
  auto handler = Expect<wire::DeleteReply>(
      std::move(done), "Delete", [](const wire::DeleteReply& reply, const wire::Envelope&, auto) {
        return Result<DeleteResult>(DeleteResult{wire::FromWire(reply.version()), reply.existed()});
      });
  if (auto valid = ValidateKey(key); !valid.ok()) return impl_->FailLater(std::move(handler), valid.error());
  impl_->Submit(impl_->writes, std::move(handler), nullptr, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateDeleteRequest(fbb, fbb.CreateString(key));
  });
}

void Client::GetAsync(std::string_view key, const GetOptions& options, Callback<GetResult> done) {
  auto handler = Expect<wire::GetReply>(
      std::move(done), "Get",
      [](const wire::GetReply& reply, const wire::Envelope& envelope, std::span<zmq::message_t> frames) {
        if (reply.payload_frames() != frames.size()) {
          return Result<GetResult>(Error(ErrorCode::kMalformed, "answer frames do not match the announced count"));
        }
        GetResult result;
        result.info = InfoOf(reply.info());
        std::vector<zmq::message_t> value;
        value.reserve(frames.size());
        for (auto& frame : frames) value.push_back(std::move(frame));
        result.value = Value(std::move(value));
        result.range_offset = reply.range() != nullptr ? reply.range()->offset() : 0;
        result.degraded = reply.degraded();
        result.timings = TimingsOf(envelope);
        return Result<GetResult>(std::move(result));
      });
  if (auto valid = ValidateKey(key); !valid.ok()) return impl_->FailLater(std::move(handler), valid.error());
  impl_->Submit(impl_->reads, std::move(handler), nullptr, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto key_offset = fbb.CreateString(key);
    wire::ByteRange range(options.range ? options.range->first : 0, options.range ? options.range->second : 0);
    wire::GetRequestBuilder body(fbb);
    body.add_key(key_offset);
    if (options.range) body.add_range(&range);
    body.add_head_only(options.head_only);
    body.add_suffix_length(options.suffix_length);
    return body.Finish();
  });
}

void Client::MultiGetAsync(std::span<const std::string> keys, Callback<std::vector<MultiGetItem>> done) {
  std::vector<std::string> requested(keys.begin(), keys.end());
  auto handler = Expect<wire::MultiGetReply>(
      std::move(done), "MultiGet",
      [requested](const wire::MultiGetReply& reply, const wire::Envelope&, std::span<zmq::message_t> frames) {
        using Items = std::vector<MultiGetItem>;
        if (reply.items() == nullptr || reply.items()->size() != requested.size()) {
          return Result<Items>(Error(ErrorCode::kMalformed, "MultiGet answer has the wrong item count"));
        }
        Items items(requested.size());
        size_t next = 0;
        for (size_t i = 0; i < requested.size(); ++i) {
          const auto* item = reply.items()->Get(i);
          items[i].key = requested[i];
          if (item->error() != nullptr) {
            items[i].result = wire::FromWire(item->error());
            continue;
          }
          if (next + item->payload_frames() > frames.size()) {
            return Result<Items>(Error(ErrorCode::kMalformed, "MultiGet answer is missing frames"));
          }
          GetResult result;
          result.info = InfoOf(item->info());
          std::vector<zmq::message_t> value;
          for (uint32_t f = 0; f < item->payload_frames(); ++f) value.push_back(std::move(frames[next++]));
          result.value = Value(std::move(value));
          items[i].result = std::move(result);
        }
        return Result<Items>(std::move(items));
      });
  if (keys.empty() || keys.size() > kMaxMultiGetKeys) {
    return impl_->FailLater(std::move(handler),
                            Error(ErrorCode::kInvalidArgument, "MultiGet takes 1 to 1000 keys"));
  }
  impl_->Submit(impl_->reads, std::move(handler), nullptr, [&](flatbuffers::FlatBufferBuilder& fbb) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> key_offsets;
    for (const auto& key : keys) key_offsets.push_back(fbb.CreateString(key));
    return wire::CreateMultiGetRequest(fbb, fbb.CreateVector(key_offsets));
  });
}

void Client::ListAsync(std::string_view prefix, std::string_view cursor, uint32_t limit,
                       Callback<ListPage> done) {
  auto handler = Expect<wire::ListReply>(
      std::move(done), "List", [](const wire::ListReply& reply, const wire::Envelope&, auto) {
        ListPage page;
        if (reply.entries() != nullptr) {
          for (const auto* entry : *reply.entries()) {
            page.entries.push_back({std::string(wire::View(entry->key())), wire::FromWire(entry->version()),
                                    entry->size(), std::string(wire::View(entry->content_type()))});
          }
        }
        page.next_cursor = wire::View(reply.next_cursor());
        return Result<ListPage>(std::move(page));
      });
  impl_->Submit(impl_->reads, std::move(handler), nullptr, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateListRequest(fbb, fbb.CreateString(prefix), fbb.CreateString(cursor), limit);
  });
}

void Client::StatAsync(std::string_view key, Callback<StatResult> done) {
  auto handler = Expect<wire::StatReply>(
      std::move(done), "Stat", [](const wire::StatReply& reply, const wire::Envelope&, auto) {
        StatResult result;
        result.info = InfoOf(reply.info());
        if (reply.fragments() != nullptr) {
          for (const auto* fragment : *reply.fragments()) {
            result.fragments.push_back({fragment->store_id(), fragment->fragment_index(),
                                        static_cast<FragmentState>(fragment->state()),
                                        wire::FromWire(fragment->newest())});
          }
        }
        return Result<StatResult>(std::move(result));
      });
  if (auto valid = ValidateKey(key); !valid.ok()) return impl_->FailLater(std::move(handler), valid.error());
  impl_->Submit(impl_->reads, std::move(handler), nullptr, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateStatRequest(fbb, fbb.CreateString(key));
  });
}

std::string_view RepairKindName(RepairKind kind) {
  switch (kind) {
    case RepairKind::kHealthy: return "healthy";
    case RepairKind::kRepaired: return "repaired";
    case RepairKind::kPartial: return "partial";
    case RepairKind::kDeleted: return "deleted";
    case RepairKind::kWouldRepair: return "would-repair";
  }
  return "unknown";
}

void Client::RepairAsync(std::string_view key, bool dry_run, Callback<RepairResult> done) {
  auto handler = Expect<wire::RepairReply>(
      std::move(done), "Repair", [](const wire::RepairReply& reply, const wire::Envelope&, auto) {
        RepairResult result;
        result.kind = static_cast<RepairKind>(std::min<uint8_t>(
            static_cast<uint8_t>(reply.outcome()), static_cast<uint8_t>(RepairKind::kWouldRepair)));
        result.version = wire::FromWire(reply.version());
        result.fragments = reply.fragments();
        result.k = reply.k();
        result.healthy_before = reply.healthy_before();
        if (reply.rebuilt() != nullptr) {
          result.rebuilt.assign(reply.rebuilt()->begin(), reply.rebuilt()->end());
        }
        if (reply.failed() != nullptr) {
          result.failed.assign(reply.failed()->begin(), reply.failed()->end());
        }
        result.bytes_written = reply.bytes_written();
        result.bytes_read = reply.bytes_read();
        return Result<RepairResult>(std::move(result));
      });
  if (auto valid = ValidateKey(key); !valid.ok()) return impl_->FailLater(std::move(handler), valid.error());
  impl_->Submit(impl_->reads, std::move(handler), nullptr, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateRepairRequest(fbb, fbb.CreateString(key), dry_run);
  });
}

// ------------------------------------------------------------------------------ blocking

namespace {

template <typename T, typename Submit>
Result<T> Wait(Client& client, Submit submit) {
  std::optional<Result<T>> outcome;
  submit([&outcome](Result<T> result) { outcome.emplace(std::move(result)); });
  while (!outcome) client.Poll(std::chrono::milliseconds(100));
  return std::move(*outcome);
}

}  // namespace

Result<PutResult> Client::Put(const PutArgs& args) {
  return Wait<PutResult>(*this, [&](auto cb) { PutAsync(args, std::move(cb)); });
}
Result<DeleteResult> Client::Delete(std::string_view key) {
  return Wait<DeleteResult>(*this, [&](auto cb) { DeleteAsync(key, std::move(cb)); });
}
Result<GetResult> Client::Get(std::string_view key, const GetOptions& options) {
  return Wait<GetResult>(*this, [&](auto cb) { GetAsync(key, options, std::move(cb)); });
}
Result<std::vector<MultiGetItem>> Client::MultiGet(std::span<const std::string> keys) {
  return Wait<std::vector<MultiGetItem>>(*this, [&](auto cb) { MultiGetAsync(keys, std::move(cb)); });
}
Result<ListPage> Client::List(std::string_view prefix, std::string_view cursor, uint32_t limit) {
  return Wait<ListPage>(*this, [&](auto cb) { ListAsync(prefix, cursor, limit, std::move(cb)); });
}
Result<StatResult> Client::Stat(std::string_view key) {
  return Wait<StatResult>(*this, [&](auto cb) { StatAsync(key, std::move(cb)); });
}
Result<RepairResult> Client::Repair(std::string_view key, bool dry_run) {
  return Wait<RepairResult>(*this, [&](auto cb) { RepairAsync(key, dry_run, std::move(cb)); });
}

}  // namespace ddsplit::client
