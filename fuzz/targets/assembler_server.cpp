// Fuzz target: the assembler's event loop (AssemblerServer) — client request decoding, the
// decoding of every store reply (FetchReply and ListKeysReply with their nested fragment
// headers and payload frames), version choice, hedging, decoding from parity, MultiGet and List
// — with the fuzzer playing the client and seven fragment stores over inproc sockets.
//
// Each store answers each request it gets as the input says: honestly (as a real store holding
// some versions of the key would: the right fragment bytes of a deterministic "true" record per
// (key, version), possibly only some versions, possibly marked corrupt), with an error, not at
// all, or dishonestly (fuzzed header fields such as k, m, index and sizes, fuzzed payload
// lengths, raw bytes, wrong request ids).
//
// Properties: no crash; every client request is answered exactly once with a verifiable
// envelope; when every store that answered a read was honest, a record returned is exactly the
// true record of the version it names (the requested range of it).
#include <stdlib.h>

#include <map>
#include <memory>
#include <set>

#include "common/base/clock.h"
#include "common/codec/checksum.h"
#include "common/codec/reed_solomon.h"
#include "common/codec/stripe.h"
#include "common/metrics/metrics.h"
#include "common/placement/placement.h"
#include "common/wire/envelope.h"
#include "fuzz/server_fixture.h"
#include "services/assembler/assembler_probe.h"
#include "services/assembler/assembler_server.h"

namespace ddsplit::fuzz {
namespace {

constexpr int kStores = 7;
constexpr int kK = 4;
constexpr int kM = 2;

struct Fixture {
  zmq::context_t context{1};
  metrics::ProcessMetrics metrics{"assembler"};
  assembler::AssemblerProbe probe{metrics};
  std::vector<zmq::socket_t> stores;
  std::unique_ptr<assembler::AssemblerServer> server;
  std::unique_ptr<placement::Placement> placement;
  std::unique_ptr<codec::ReedSolomon> codec;
  ServiceThread thread;
  zmq::socket_t client;

  Fixture() {
    assembler::AssemblerOptions options;
    options.client_bind = "inproc://fuzz-assembler-clients";
    std::vector<placement::StoreInfo> infos;
    for (int i = 0; i < kStores; ++i) {
      std::string read = "inproc://fuzz-assembler-store-" + std::to_string(i);
      stores.push_back(MakePeerSocket(context, zmq::socket_type::router));
      stores.back().bind(read);
      options.stores.push_back({StoreId(static_cast<uint32_t>(i)), "inproc://unused-" + std::to_string(i), read, ""});
      infos.push_back({StoreId(static_cast<uint32_t>(i)), ""});
    }
    options.shape = {kK, kM, 0};
    options.read_timeout = std::chrono::milliseconds(50);
    options.hedge_after = std::chrono::milliseconds(20);
    options.max_in_flight_reads = 8;
    options.max_multi_get_bytes = 64 * 1024;
    options.drain_timeout = std::chrono::milliseconds(200);
    auto created = assembler::AssemblerServer::Create(options, context, probe, SystemClock::Instance());
    DDSPLIT_FUZZ_ASSERT(created.ok());
    server = std::move(*created);
    auto placed = placement::Placement::Create(infos);
    DDSPLIT_FUZZ_ASSERT(placed.ok());
    placement = std::make_unique<placement::Placement>(std::move(*placed));
    auto rs = codec::ReedSolomon::Create(kK, kM);
    DDSPLIT_FUZZ_ASSERT(rs.ok());
    codec = std::move(*rs);
    client = MakePeerSocket(context, zmq::socket_type::dealer);
    client.connect(server->client_endpoint());
    thread.Start([this](int stop_fd) { server->Run(stop_fd); });
  }
  ~Fixture() {
    thread.Stop();
    client.close();
    for (auto& s : stores) s.close();
    server.reset();
  }
};

Fixture& Get() { return FixtureOnce<Fixture>(); }

Version FuzzVersion(FuzzInput& in) {
  uint8_t v = in.Byte();
  return {static_cast<uint64_t>((v >> 2) % 6 + 1) << 16, v & 3u};
}
bool IsTombstone(Version v) { return v.writer == 3; }

// The true record of (key, version) and its k + m fragments.
struct Truth {
  std::string record;
  std::vector<std::string> fragments;
  uint64_t checksum = 0;
};

const Truth& TruthOf(const std::string& key, Version v) {
  static std::map<std::pair<std::string, Version>, Truth> cache;
  auto id = std::make_pair(key, v);
  auto it = cache.find(id);
  if (it != cache.end()) return it->second;
  if (cache.size() > 4096) cache.clear();
  Truth truth;
  uint64_t h = codec::Checksum(AsBytes(key)) ^ (v.hlc * 31 + v.writer);
  size_t size = h % 5 == 0 ? (h >> 8) % 70000 : (h >> 8) % 3000;
  truth.record.resize(size);
  for (size_t i = 0; i < size; ++i) truth.record[i] = static_cast<char>((h >> (i % 48)) + i * 7);
  truth.checksum = codec::Checksum(AsBytes(truth.record));
  codec::StripeLayout layout(size, kK, kM);
  truth.fragments.resize(kK + kM);
  std::vector<std::span<const std::byte>> data;
  for (int i = 0; i < kK; ++i) {
    auto span = layout.DataSpan(i);
    truth.fragments[i] = truth.record.substr(span.offset, span.length);
  }
  for (int i = 0; i < kK; ++i) data.push_back(AsBytes(truth.fragments[i]));
  std::vector<std::span<std::byte>> parity;
  for (int i = kK; i < kK + kM; ++i) {
    truth.fragments[i].assign(layout.fragment_size(), '\0');
    parity.push_back(std::as_writable_bytes(std::span(truth.fragments[i].data(), truth.fragments[i].size())));
  }
  Get().codec->Encode(data, layout.fragment_size(), parity);
  return cache.emplace(id, std::move(truth)).first->second;
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> HeaderVector(flatbuffers::FlatBufferBuilder& fbb,
                                                               const std::string& bytes) {
  fbb.ForceVectorAlignment(bytes.size(), sizeof(uint8_t), alignof(uint64_t));
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// The header a real store would keep for fragment `index` of (key, version); bent when
// `honest` is false.
std::string HeaderBytes(FuzzInput& in, const std::string& key, Version v, int index, bool honest) {
  if (!honest && in.Byte() < 30) return std::string(in.Bytes(80));  // raw bytes
  const Truth& truth = TruthOf(key, v);
  bool tombstone = IsTombstone(v);
  codec::StripeLayout layout(tombstone ? 0 : truth.record.size(), kK, kM);
  flatbuffers::FlatBufferBuilder fbb;
  auto content_type = fbb.CreateString(honest ? std::string_view("text/plain") : in.Bytes(20));
  std::vector<uint32_t> ids;
  auto placed = Get().placement->Place(key, kK + kM);
  for (int i = 0; i < kK + kM; ++i) ids.push_back(placed->stores[i].value());
  auto placement = fbb.CreateVector(ids);
  wire::FragmentHeaderBuilder header(fbb);
  uint8_t bend = honest ? 0 : in.Byte();
  header.add_index(static_cast<uint8_t>(bend == 1 ? in.Byte() : index));
  header.add_k(static_cast<uint8_t>(bend == 2 ? in.Byte() : kK));
  header.add_m(static_cast<uint8_t>(bend == 3 ? in.Byte() : kM));
  header.add_size(bend == 4 ? in.Integral<uint32_t>() : tombstone ? 0 : layout.StoredSize(index));
  header.add_record_size(bend == 5 ? in.Integral<uint64_t>() : tombstone ? 0 : truth.record.size());
  header.add_record_checksum(tombstone ? 0 : truth.checksum);
  header.add_checksum(tombstone ? 0 : codec::Checksum(AsBytes(truth.fragments[index])));
  header.add_tombstone(bend == 6 ? !tombstone : tombstone);
  header.add_content_type(content_type);
  header.add_placement(placement);
  fbb.Finish(header.Finish());
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

// Answers one request that reached store `store`. Returns false when the answer was dishonest.
bool AnswerStore(FuzzInput& in, Fixture& f, int store, std::vector<zmq::message_t>& frames) {
  DDSPLIT_FUZZ_ASSERT(frames.size() == 2);
  wire::AlignedFrame aligned;
  auto envelope = wire::ParseEnvelope(aligned.Of(frames[1]));
  DDSPLIT_FUZZ_ASSERT(envelope.ok());  // the assembler sends only well-formed requests
  uint64_t request_id = (*envelope)->request_id();
  std::vector<zmq::message_t> reply;
  reply.push_back(std::move(frames[0]));
  // Silence costs the read timeout, so it is rare: a zero byte, then one value in 16.
  uint8_t behaviour = in.empty() ? 3 : in.Byte();
  if (behaviour == 0) return true;  // silent
  behaviour %= 16;
  if (behaviour == 0) behaviour = 2;
  bool honest = behaviour < 12;
  if (behaviour == 12) {            // raw bytes
    reply.push_back(Frame(in.Bytes(300)));
    if (in.Bool()) reply.push_back(Frame(in.Bytes(300)));
    Send(f.stores[store], reply);
    return false;
  }
  wire::MessageWriter writer;
  if (behaviour == 1) {
    reply.push_back(writer.FinishError(request_id, Error(ErrorCode::kInternal, "store failed")));
    Send(f.stores[store], reply);
    return true;
  }
  if (behaviour == 13) request_id = in.Integral<uint64_t>();  // a wrong id
  auto& fbb = writer.fbb();
  if (const auto* list = (*envelope)->body_as_ListKeysRequest()) {
    static const char* kKeys[] = {"a", "a/1", "a/2", "b", "b/x", "c"};
    std::string prefix(wire::View(list->prefix()));
    std::string cursor(wire::View(list->cursor()));
    std::vector<flatbuffers::Offset<wire::KeyVersions>> entries;
    int count = static_cast<int>(in.Range(0, 6));
    int position = 0;
    for (int i = 0; i < count; ++i) {
      position += static_cast<int>(in.Range(honest ? 1 : 0, 2));
      if (position >= 6) break;
      std::string key = honest ? kKeys[position] : kKeys[in.Range(0, 5)];
      if (honest && (key.compare(0, prefix.size(), prefix) != 0 || key <= cursor)) continue;
      std::vector<flatbuffers::Offset<wire::HeldVersion>> held;
      Version v = FuzzVersion(in);
      auto header = HeaderVector(fbb, HeaderBytes(in, key, v, store % (kK + kM), honest));
      auto wv = wire::ToWire(v);
      held.push_back(wire::CreateHeldVersion(fbb, &wv, in.Bool(), wire::FragmentState::Ok, header));
      auto key_offset = fbb.CreateString(key);
      entries.push_back(wire::CreateKeyVersions(fbb, key_offset, fbb.CreateVector(held)));
    }
    auto entries_offset = fbb.CreateVector(entries);
    reply.push_back(writer.Finish(request_id, wire::CreateListKeysReply(fbb, store, entries_offset, in.Bool())));
    Send(f.stores[store], reply);
    return honest;
  }
  const auto* fetch = (*envelope)->body_as_FetchRequest();
  DDSPLIT_FUZZ_ASSERT(fetch != nullptr);
  std::string key(wire::View(fetch->key()));
  auto placed = f.placement->Place(key, kK + kM);
  int index = placed->IndexOf(StoreId(static_cast<uint32_t>(store)));
  DDSPLIT_FUZZ_ASSERT(index >= 0);  // the assembler asks only the key's placement stores
  // The versions this store holds: distinct, newest first.
  std::set<Version, std::greater<>> versions;
  int count = static_cast<int>(in.Range(0, honest ? 3 : 6));
  for (int i = 0; i < count; ++i) versions.insert(FuzzVersion(in));
  std::vector<flatbuffers::Offset<wire::HeldVersion>> held;
  std::optional<Version> target;
  if (fetch->version() != nullptr) {
    if (versions.count(wire::FromWire(fetch->version()))) target = wire::FromWire(fetch->version());
  } else if (!versions.empty()) {
    target = *versions.begin();
  }
  bool corrupt = honest && target && in.Byte() < 20;
  for (Version v : versions) {
    auto header = HeaderVector(fbb, HeaderBytes(in, key, v, index, honest || in.Bool()));
    auto wv = wire::ToWire(v);
    auto state = corrupt && v == *target ? wire::FragmentState::Corrupt : wire::FragmentState::Ok;
    if (!honest && in.Byte() == 3) state = static_cast<wire::FragmentState>(in.Byte());
    held.push_back(wire::CreateHeldVersion(fbb, &wv, in.Bool(), state, header));
  }
  auto held_offset = fbb.CreateVector(held);
  zmq::message_t payload;
  bool has_payload = false;
  uint64_t payload_offset = 0;
  flatbuffers::Offset<wire::Error> payload_error = 0;
  if ((fetch->want_payload() || fetch->verify()) && !target) {
    payload_error = wire::ToWire(fbb, Error(ErrorCode::kNotFound, "version not held"));
  } else if (corrupt) {
    payload_error = wire::ToWire(fbb, Error(ErrorCode::kCorrupt, "fragment failed its checksum"));
  } else if (fetch->want_payload() && target && !IsTombstone(*target)) {
    const Truth& truth = TruthOf(key, *target);
    std::string_view bytes = truth.fragments[index];
    bool ranged = fetch->range() != nullptr || fetch->suffix_length() > 0;
    if (ranged && index < kK) {
      uint64_t size = truth.record.size();
      codec::ByteSpan range;
      if (fetch->range() != nullptr) {
        range = {fetch->range()->offset(), fetch->range()->length()};
      } else {
        uint64_t suffix = std::min(fetch->suffix_length(), size);
        range = {size - suffix, suffix};
      }
      auto overlap = codec::StripeLayout(size, kK, kM).OverlapInFragment(index, range);
      payload_offset = std::min<uint64_t>(overlap.offset, bytes.size());
      bytes = bytes.substr(payload_offset, overlap.length);
    }
    std::string dishonest;
    if (!honest && in.Bool()) {
      dishonest = std::string(in.Bytes(9000));
      bytes = dishonest;
    }
    payload = Frame(bytes);
    has_payload = true;
  }
  wire::FetchReplyBuilder body(fbb);
  body.add_store_id(behaviour == 14 ? in.Byte() : store);
  body.add_versions(held_offset);
  wire::Version payload_version = target ? wire::ToWire(*target) : wire::Version();
  if (!honest && in.Byte() == 5) payload_version = wire::ToWire(FuzzVersion(in));
  if (has_payload) {
    body.add_payload_version(&payload_version);
    body.add_payload_offset(payload_offset);
  }
  if (!payload_error.IsNull()) body.add_payload_error(payload_error);
  reply.push_back(writer.Finish(request_id, body.Finish()));
  if (has_payload) reply.push_back(std::move(payload));
  if (!honest && in.Byte() == 9) reply.push_back(Frame("one frame too many"));
  Send(f.stores[store], reply);
  return honest;
}

struct Request {
  bool structured = false;
  bool get = false;
  std::string key;
  std::optional<std::pair<uint64_t, uint64_t>> range;
  uint64_t suffix = 0;
};

std::vector<zmq::message_t> BuildRequest(FuzzInput& in, uint64_t request_id, Request& request) {
  std::vector<zmq::message_t> frames;
  uint8_t kind = in.Byte() % 10;
  if (kind == 9) {
    int count = static_cast<int>(in.Range(1, 3));
    for (int i = 0; i < count; ++i) frames.push_back(Frame(in.Bytes(300)));
    return frames;
  }
  static const char* kKeys[] = {"a", "a/1", "b", "b/x", "c"};
  uint8_t key_choice = in.Byte();
  request.key = key_choice < 230 ? kKeys[key_choice % 5] : std::string(in.Bytes(20));
  flatbuffers::FlatBufferBuilder fbb;
  auto key = fbb.CreateString(request.key);
  flatbuffers::Offset<void> body;
  wire::Body type;
  if (kind <= 4) {
    wire::ByteRange range(in.Range(0, 80000), in.Bool() ? UINT64_MAX : in.Range(0, 80000));
    uint8_t flags = in.Byte();
    wire::GetRequestBuilder get(fbb);
    get.add_key(key);
    if (flags & 1) {
      get.add_range(&range);
      request.range = std::make_pair(range.offset(), range.length());
    }
    if (flags & 2) get.add_head_only(true);
    if (flags & 4) {
      request.suffix = in.Range(0, 80000);
      get.add_suffix_length(request.suffix);
    }
    body = get.Finish().Union();
    type = wire::Body::GetRequest;
    request.get = (flags & 2) == 0;
  } else if (kind == 5) {
    body = wire::CreateStatRequest(fbb, key).Union();
    type = wire::Body::StatRequest;
  } else if (kind == 6) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> keys;
    int count = static_cast<int>(in.Range(0, 5));
    for (int i = 0; i < count; ++i) keys.push_back(fbb.CreateString(in.Byte() < 240 ? kKeys[in.Byte() % 5] : std::string(in.Bytes(10))));
    body = wire::CreateMultiGetRequest(fbb, fbb.CreateVector(keys)).Union();
    type = wire::Body::MultiGetRequest;
  } else if (kind == 7) {
    auto prefix = fbb.CreateString(in.Bytes(3));
    auto cursor = fbb.CreateString(in.Bool() ? std::string_view() : in.Bytes(4));
    body = wire::CreateListRequest(fbb, prefix, cursor, static_cast<uint32_t>(in.Range(0, 2000))).Union();
    type = wire::Body::ListRequest;
  } else {
    body = wire::CreateDeleteRequest(fbb, key).Union();
    type = wire::Body::DeleteRequest;
  }
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_request_id(request_id);
  envelope.add_body_type(type);
  envelope.add_body(body);
  fbb.Finish(envelope.Finish());
  request.structured = true;
  frames.push_back(Frame(fbb));
  return frames;
}

}  // namespace
}  // namespace ddsplit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddsplit;
  using namespace ddsplit::fuzz;
  Fixture& f = Get();
  FuzzInput in(data, size);
  Drain(f.client);
  for (auto& s : f.stores) Drain(s);
  std::vector<zmq::message_t> frames;
  int count = static_cast<int>(in.Range(1, 3));
  std::vector<Request> requests(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    auto message = BuildRequest(in, 500 + static_cast<uint64_t>(i), requests[i]);
    Send(f.client, message);
  }
  bool all_honest = true;
  int answered = 0;
  std::set<uint64_t> answered_ids;
  std::vector<zmq::socket_t*> sockets{&f.client};
  for (auto& s : f.stores) sockets.push_back(&s);
  while (answered < count) {
    int got = ReceiveAny(sockets, frames, kAnswerDeadline);
    DDSPLIT_FUZZ_ASSERT(got >= 0);  // every request is answered within the deadline
    if (got > 0) {
      all_honest &= AnswerStore(in, f, got - 1, frames);
      continue;
    }
    ++answered;
    DDSPLIT_FUZZ_ASSERT(!frames.empty());
    wire::AlignedFrame aligned;
    auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
    DDSPLIT_FUZZ_ASSERT(envelope.ok());
    uint64_t id = (*envelope)->request_id();
    if (id < 500 || id >= 500 + static_cast<uint64_t>(count)) continue;
    DDSPLIT_FUZZ_ASSERT(answered_ids.insert(id).second);
    const Request& request = requests[id - 500];
    const auto* reply = (*envelope)->body_as_GetReply();
    if (reply == nullptr || !request.get || !all_honest || reply->info() == nullptr) continue;
    // Honest stores: the bytes are the true record of the version returned (the range of it).
    Version v = wire::FromWire(reply->info()->version());
    const Truth& truth = TruthOf(request.key, v);
    DDSPLIT_FUZZ_ASSERT(reply->info()->size() == truth.record.size());
    std::string got_bytes;
    for (size_t i = 1; i < frames.size(); ++i) {
      got_bytes.append(static_cast<const char*>(frames[i].data()), frames[i].size());
    }
    DDSPLIT_FUZZ_ASSERT(reply->payload_frames() == frames.size() - 1);
    uint64_t offset = reply->range() != nullptr ? reply->range()->offset() : 0;
    DDSPLIT_FUZZ_ASSERT(offset + got_bytes.size() <= truth.record.size());
    DDSPLIT_FUZZ_ASSERT(truth.record.compare(offset, got_bytes.size(), got_bytes) == 0);
    if (!request.range && request.suffix == 0) DDSPLIT_FUZZ_ASSERT(got_bytes.size() == truth.record.size());
  }
  return 0;
}
