// Fuzz target: the splitter's event loop (SplitterServer) — its client request decoding and put
// validation path, the encoding and fan-out, and its acknowledgement handling — with the fuzzer
// playing the client and seven fragment stores over inproc sockets. Requests are structured
// Put/Delete messages with fuzzed keys, attributes and values, other message types, or raw
// frames; the stores acknowledge each fragment as the input says (stored, refused, silent, with
// a wrong index, twice, or with garbage), and stray acks are injected.
//
// Properties: no crash; every request is answered exactly once with a verifiable envelope; every
// fragment the splitter sends is one a real store accepts (CheckWriteFragment) and carries the
// record's bytes (the data fragments concatenated are the value); an acknowledged Put reports the
// value's size and the version its fragments carried.
#include <stdlib.h>

#include <map>
#include <memory>
#include <set>

#include "common/base/clock.h"
#include "common/base/limits.h"
#include "common/codec/checksum.h"
#include "common/metrics/metrics.h"
#include "common/wire/envelope.h"
#include "fuzz/server_fixture.h"
#include "services/fragstore/write_validation.h"
#include "services/splitter/splitter_probe.h"
#include "services/splitter/splitter_server.h"

namespace ddsplit::fuzz {
namespace {

constexpr int kStores = 7;

struct Fixture {
  zmq::context_t context{1};
  metrics::ProcessMetrics metrics{"splitter"};
  splitter::SplitterProbe probe{metrics};
  std::vector<zmq::socket_t> stores;
  std::unique_ptr<splitter::SplitterServer> server;
  ServiceThread thread;
  zmq::socket_t client, acks;

  Fixture() {
    splitter::SplitterOptions options;
    options.client_bind = "inproc://fuzz-splitter-clients";
    options.ack_bind = "inproc://fuzz-splitter-acks";
    for (int i = 0; i < kStores; ++i) {
      std::string ingest = "inproc://fuzz-splitter-store-" + std::to_string(i);
      stores.push_back(MakePeerSocket(context, zmq::socket_type::pull));
      stores.back().bind(ingest);
      options.stores.push_back({StoreId(static_cast<uint32_t>(i)), ingest, "inproc://unused-" + std::to_string(i), ""});
    }
    options.writer_id = 7;
    options.max_record_bytes = 256 * 1024;
    options.write_timeout = std::chrono::milliseconds(100);
    options.max_in_flight_writes = 3;
    options.max_in_flight_bytes = 300 * 1024;
    options.drain_timeout = std::chrono::milliseconds(200);
    auto created = splitter::SplitterServer::Create(options, context, probe, SystemClock::Instance());
    DDSPLIT_FUZZ_ASSERT(created.ok());
    server = std::move(*created);
    client = MakePeerSocket(context, zmq::socket_type::dealer);
    client.connect(server->client_endpoint());
    acks = MakePeerSocket(context, zmq::socket_type::push);
    acks.connect(server->ack_endpoint());
    thread.Start([this](int stop_fd) { server->Run(stop_fd); });
  }
  ~Fixture() {
    thread.Stop();
    client.close();
    acks.close();
    for (auto& s : stores) s.close();
    server.reset();
  }
};

Fixture& Get() { return FixtureOnce<Fixture>(); }

// A request this input sent, and what is known about its write.
struct Request {
  bool structured = false;
  bool put = false;
  std::string key;
  std::string value;
  // Fragments seen for the write, by index, and the version they carried.
  std::map<int, std::string> fragments;
  std::optional<Version> version;
  int k = 0;
};

std::vector<zmq::message_t> BuildRequest(FuzzInput& in, uint64_t request_id, Request& request) {
  std::vector<zmq::message_t> frames;
  uint8_t kind = in.Byte() % 8;
  if (kind == 7) {  // raw frames
    int count = static_cast<int>(in.Range(1, 4));
    for (int i = 0; i < count; ++i) frames.push_back(Frame(in.Bytes(400)));
    return frames;
  }
  static const char* kKeys[] = {"a", "b/c", "\xc3\xa9t\xc3\xa9", "x"};
  uint8_t key_choice = in.Byte();
  request.key = key_choice < 220 ? kKeys[key_choice % 4] : std::string(in.Bytes(key_choice == 255 ? 1100 : 30));
  flatbuffers::FlatBufferBuilder fbb;
  auto key = fbb.CreateString(request.key);
  flatbuffers::Offset<void> body;
  wire::Body type;
  if (kind <= 4) {
    bool sane = kind <= 2;
    auto content_type = fbb.CreateString(sane ? std::string_view("application/octet-stream") : in.Bytes(300));
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::MetaEntry>>> metadata = 0;
    if (!sane || in.Bool()) {
      std::vector<flatbuffers::Offset<wire::MetaEntry>> entries;
      int count = static_cast<int>(in.Range(0, sane ? 3 : 70));
      for (int i = 0; i < count; ++i) {
        auto name = fbb.CreateString(sane ? "owner" + std::to_string(i) : std::string(in.Bytes(12)));
        auto value = fbb.CreateString(in.Bytes(sane ? 20 : 400));
        entries.push_back(wire::CreateMetaEntry(fbb, name, value));
      }
      metadata = fbb.CreateVector(entries);
    }
    wire::PutRequestBuilder put(fbb);
    put.add_key(key);
    put.add_content_type(content_type);
    if (!metadata.IsNull()) put.add_metadata(metadata);
    body = put.Finish().Union();
    type = wire::Body::PutRequest;
    request.put = true;
    size_t size = in.Byte() < 40 ? in.Range(0, 300 * 1024) : in.Range(0, 5000);
    request.value.resize(size);
    uint8_t seed = in.Byte();
    for (size_t i = 0; i < size; ++i) request.value[i] = static_cast<char>(seed + i * 13 + (i >> 9));
  } else if (kind <= 5) {
    body = wire::CreateDeleteRequest(fbb, key).Union();
    type = wire::Body::DeleteRequest;
  } else {
    body = wire::CreateGetRequest(fbb, key).Union();
    type = wire::Body::GetRequest;
  }
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_request_id(request_id);
  envelope.add_body_type(type);
  envelope.add_body(body);
  fbb.Finish(envelope.Finish());
  request.structured = true;
  frames.push_back(Frame(fbb));
  if (request.put && (!request.value.empty() || in.Bool())) frames.push_back(Frame(request.value));
  if (in.Byte() == 0xEE) frames.push_back(Frame("extra"));  // too many frames
  return frames;
}

zmq::message_t Ack(uint64_t write_id, uint32_t store, int index, const std::optional<Error>& error) {
  flatbuffers::FlatBufferBuilder fbb;
  auto error_offset = error ? wire::ToWire(fbb, *error) : 0;
  wire::FragmentAckBuilder ack(fbb);
  ack.add_write_id(write_id);
  ack.add_store_id(store);
  ack.add_fragment_index(static_cast<uint8_t>(index));
  ack.add_had_live_version(index % 2 == 0);
  if (error) ack.add_error(error_offset);
  auto body = ack.Finish();
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_body_type(wire::Body::FragmentAck);
  envelope.add_body(body.Union());
  fbb.Finish(envelope.Finish());
  return Frame(fbb);
}

// A fragment or control message reached store `store`; answer as the input says.
void HandleStoreMessage(FuzzInput& in, Fixture& f, int store, std::vector<zmq::message_t>& frames,
                        std::map<std::string, Request*>& by_key) {
  wire::AlignedFrame aligned;
  auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
  DDSPLIT_FUZZ_ASSERT(envelope.ok());
  const wire::Envelope& env = **envelope;
  if (env.body_type() == wire::Body::VersionDecisions) {
    DDSPLIT_FUZZ_ASSERT(frames.size() == 1);
    const auto* decisions = env.body_as_VersionDecisions()->decisions();
    DDSPLIT_FUZZ_ASSERT(decisions->size() > 0 && decisions->size() <= kMaxDecisionsPerMessage);
    return;
  }
  if (env.body_type() == wire::Body::CommitVersion || env.body_type() == wire::Body::AbortVersion) {
    DDSPLIT_FUZZ_ASSERT(frames.size() == 1);
    return;
  }
  DDSPLIT_FUZZ_ASSERT(env.body_type() == wire::Body::WriteFragment);
  DDSPLIT_FUZZ_ASSERT(frames.size() == 2);
  const auto* write = env.body_as_WriteFragment();
  auto payload = transport::Bytes(frames[1]);
  fragstore::RejectReason reason{};
  auto index = fragstore::CheckWriteFragment(*write, StoreId(static_cast<uint32_t>(store)), payload,
                                             1 << 20, reason);
  if (!index.ok()) std::fprintf(stderr, "store %d refuses: %s\n", store, index.error().ToString().c_str());
  DDSPLIT_FUZZ_ASSERT(index.ok());  // the splitter never sends a fragment a store refuses
  auto found = by_key.find(std::string(wire::View(write->key())));
  if (found != by_key.end()) {
    Request& request = *found->second;
    Version v = wire::FromWire(write->version());
    if (!request.version || *request.version < v) {
      request.version = v;
      request.fragments.clear();
    }
    if (*request.version == v) {
      request.k = write->k();
      request.fragments[*index] = std::string(static_cast<const char*>(frames[1].data()), frames[1].size());
    }
  }
  uint8_t behaviour = in.empty() ? 0 : in.Byte() % 8;
  zmq::message_t ack;
  switch (behaviour) {
    case 0:
    case 1:
    case 2:
      ack = Ack(write->write_id(), static_cast<uint32_t>(store), *index, std::nullopt);
      break;
    case 3:
      ack = Ack(write->write_id(), static_cast<uint32_t>(store), *index, Error(ErrorCode::kInternal, "disk full"));
      break;
    case 4:
      return;  // silent
    case 5:
      ack = Ack(write->write_id(), static_cast<uint32_t>(store), (*index + 1) % 40, std::nullopt);
      break;
    case 6: {
      std::vector<zmq::message_t> twice;
      twice.push_back(Ack(write->write_id(), static_cast<uint32_t>(store), *index, std::nullopt));
      Send(f.acks, twice);
      ack = Ack(write->write_id(), static_cast<uint32_t>(store), *index, std::nullopt);
      break;
    }
    default:
      ack = Frame(in.Bytes(64));
      break;
  }
  std::vector<zmq::message_t> out;
  out.push_back(std::move(ack));
  Send(f.acks, out);
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
  for (int batch = 0; batch < 4 && !in.empty(); ++batch) {
    int count = static_cast<int>(in.Range(1, 4));
    std::vector<Request> requests(static_cast<size_t>(count));
    std::map<std::string, Request*> by_key;  // the latest structured write of each key
    for (int i = 0; i < count; ++i) {
      auto message = BuildRequest(in, 1000 + static_cast<uint64_t>(i), requests[i]);
      if (requests[i].structured && !requests[i].key.empty()) by_key[requests[i].key] = &requests[i];
      Send(f.client, message);
    }
    if (in.Byte() == 0x5A) {  // a stray ack for some slot
      std::vector<zmq::message_t> stray;
      stray.push_back(Ack(in.Integral<uint64_t>() & 0x3'0000'0003ull, in.Byte() % 8, in.Byte() % 8, std::nullopt));
      Send(f.acks, stray);
    }
    int answered = 0;
    std::set<uint64_t> answered_ids;
    std::vector<zmq::socket_t*> sockets{&f.client};
    for (auto& s : f.stores) sockets.push_back(&s);
    while (answered < count) {
      int got = ReceiveAny(sockets, frames, kAnswerDeadline);
      DDSPLIT_FUZZ_ASSERT(got >= 0);  // every request is answered within the deadline
      if (got > 0) {
        HandleStoreMessage(in, f, got - 1, frames, by_key);
        continue;
      }
      ++answered;
      DDSPLIT_FUZZ_ASSERT(frames.size() == 1);
      wire::AlignedFrame aligned;
      auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
      DDSPLIT_FUZZ_ASSERT(envelope.ok());
      uint64_t id = (*envelope)->request_id();
      if (id < 1000 || id >= 1000 + static_cast<uint64_t>(count)) continue;  // a raw request's
      DDSPLIT_FUZZ_ASSERT(answered_ids.insert(id).second);                      // answered once
      Request& request = requests[id - 1000];
      const auto* put = (*envelope)->body_as_PutReply();
      if (put == nullptr || by_key[request.key] != &request) continue;
      // An acknowledged Put: its size, its version, and the bytes its data fragments carried.
      DDSPLIT_FUZZ_ASSERT(request.put);
      DDSPLIT_FUZZ_ASSERT(put->size() == request.value.size());
      DDSPLIT_FUZZ_ASSERT(request.version && wire::FromWire(put->version()) == *request.version);
      bool all_data = true;
      std::string assembled;
      for (int i = 0; i < request.k; ++i) {
        auto fragment = request.fragments.find(i);
        if (fragment == request.fragments.end()) {
          all_data = false;
          break;
        }
        assembled += fragment->second;
      }
      if (all_data) DDSPLIT_FUZZ_ASSERT(assembled == request.value);
    }
  }
  return 0;
}
