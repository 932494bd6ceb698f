// Fuzz target: the fragment store's network side (FragstoreServer: ingest, commit and read
// threads over a real FragmentStore on RocksDB), fed fuzzed messages on both of its sockets —
// structured WriteFragment / CommitVersion / AbortVersion / VersionDecisions on the PULL socket
// with fuzzed fields
// (code shape, placement, checksums, sizes, attributes, keys), raw frames, and Fetch /
// ListKeys / StoreStat requests (structured with fuzzed ranges and versions, or raw) on the
// ROUTER socket.
//
// Properties: no crash; every read request is answered with a verifiable envelope; a fetched
// payload never exceeds its fragment; every structured WriteFragment is acknowledged exactly once
// (stored, or refused with an error) — checked by waiting for a final sentinel write's ack.
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "common/codec/checksum.h"
#include "common/codec/stripe.h"
#include "common/metrics/metrics.h"
#include "common/wire/envelope.h"
#include "fuzz/server_fixture.h"
#include "services/fragstore/fragment_store.h"
#include "services/fragstore/fragstore_probe.h"
#include "services/fragstore/fragstore_server.h"

namespace ddsplit::fuzz {
namespace {

constexpr uint32_t kSelf = 3;
constexpr const char* kAckEndpoint = "inproc://fuzz-fragstore-acks";

struct Fixture {
  std::string dir;
  zmq::context_t context{1};
  metrics::ProcessMetrics metrics{"fragstore"};
  fragstore::FragstoreProbe probe{metrics};
  std::unique_ptr<fragstore::FragmentStore> store;
  std::unique_ptr<fragstore::FragstoreServer> server;
  ServiceThread thread;
  zmq::socket_t ingest, reader, acks;
  uint64_t inputs = 0;

  Fixture() {
    std::string pattern = (ScratchRoot() / "ddsplit-fuzz-fragstore-XXXXXX").string();
    DDSPLIT_FUZZ_ASSERT(mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    auto opened = fragstore::FragmentStore::Open({.data_dir = dir, .sync = false});
    DDSPLIT_FUZZ_ASSERT(opened.ok());
    store = std::move(*opened);
    fragstore::ServerOptions options;
    options.store_id = StoreId(kSelf);
    options.ingest_bind = "inproc://fuzz-fragstore-ingest";
    options.read_bind = "inproc://fuzz-fragstore-read";
    options.max_fragment_bytes = 1 << 20;
    server = std::make_unique<fragstore::FragstoreServer>(options, *store, context, probe);
    DDSPLIT_FUZZ_ASSERT(server->Bind().ok());
    acks = MakePeerSocket(context, zmq::socket_type::pull);
    acks.bind(kAckEndpoint);
    ingest = MakePeerSocket(context, zmq::socket_type::push);
    ingest.connect(server->ingest_endpoint());
    reader = MakePeerSocket(context, zmq::socket_type::dealer);
    reader.connect(server->read_endpoint());
    thread.Start([this](int stop_fd) { server->Run(stop_fd); });
  }
  ~Fixture() {
    thread.Stop();
    ingest.close();
    reader.close();
    acks.close();
    server.reset();
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Fixture& Get() { return FixtureOnce<Fixture>(); }

std::string FuzzKey(FuzzInput& in, const std::string& ns) {
  static const char* kSuffixes[] = {"a", "a/b", "b", "\xc3\xa9", "k"};
  uint8_t choice = in.Byte();
  if (choice < 200) return ns + kSuffixes[choice % 5];
  if (choice < 250) return std::string(in.Bytes(40));  // anything, valid or not
  return std::string(1100, 'x');                       // too long
}

Version FuzzVersion(FuzzInput& in) {
  uint8_t v = in.Byte();
  return {static_cast<uint64_t>(v >> 2) + 1, v & 3u};
}

// A WriteFragment as a splitter would send it, with fields the input may bend.
std::vector<zmq::message_t> WriteMessage(FuzzInput& in, const std::string& key, uint64_t write_id,
                                         bool sane) {
  int k = sane ? 4 : static_cast<int>(in.Range(0, 40));
  int m = sane ? 2 : static_cast<int>(in.Range(0, 8));
  bool tombstone = !sane && in.Byte() > 220;
  uint64_t record_size = sane ? in.Range(0, 3000) : in.Range(0, 1 << 22);
  int n = std::max(0, k + m);
  std::vector<uint32_t> placement;
  for (int i = 0; i < n; ++i) placement.push_back(static_cast<uint32_t>(i + 10));  // never kSelf
  int self_at = n > 0 ? static_cast<int>(in.Range(0, n - 1)) : 0;
  if (n > 0) placement[self_at] = kSelf;
  if (!sane) {
    uint8_t bend = in.Byte();
    if (bend == 1 && n > 1) placement[(self_at + 1) % n] = kSelf;  // placed twice
    if (bend == 2 && n > 0) placement[self_at] = 99;                // not placed
    if (bend == 3) placement.push_back(kSelf);                      // wrong length
  }
  codec::StripeLayout layout(record_size, std::max(k, 1), m);
  uint64_t fragment_size = tombstone ? 0 : layout.StoredSize(self_at);
  if (!sane && in.Byte() == 7) fragment_size = in.Range(0, 5000);
  fragment_size = std::min<uint64_t>(fragment_size, 1 << 21);
  std::string payload(fragment_size, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + write_id);
  std::vector<uint64_t> checksums(placement.size(), 0);
  if (self_at < static_cast<int>(checksums.size())) {
    checksums[self_at] = codec::Checksum(AsBytes(payload));
    if (!sane && in.Byte() == 9) checksums[self_at] ^= 1;
  }
  flatbuffers::FlatBufferBuilder fbb;
  auto ack_to = fbb.CreateString(kAckEndpoint);
  auto key_offset = fbb.CreateString(key);
  auto content_type = fbb.CreateString(sane ? std::string_view("text/plain") : in.Bytes(20));
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::MetaEntry>>> metadata = 0;
  if (!sane && in.Bool()) {
    std::vector<flatbuffers::Offset<wire::MetaEntry>> entries;
    int count = static_cast<int>(in.Range(0, 70));
    for (int i = 0; i < count; ++i) {
      auto name = fbb.CreateString(in.Bytes(10));
      auto value = fbb.CreateString(in.Bytes(300));
      entries.push_back(wire::CreateMetaEntry(fbb, name, value));
    }
    metadata = fbb.CreateVector(entries);
  }
  auto placement_offset = fbb.CreateVector(placement);
  auto checksums_offset = fbb.CreateVector(checksums);
  Version v = FuzzVersion(in);
  wire::Version version(v.hlc, v.writer);
  wire::WriteFragmentBuilder body(fbb);
  body.add_write_id(write_id);
  body.add_ack_to(ack_to);
  body.add_key(key_offset);
  body.add_version(&version);
  body.add_k(static_cast<uint8_t>(k));
  body.add_m(static_cast<uint8_t>(m));
  body.add_record_size(tombstone && in.Bool() ? 5 : tombstone ? 0 : record_size);
  body.add_record_checksum(0);
  body.add_tombstone(tombstone);
  body.add_content_type(content_type);
  if (!metadata.IsNull()) body.add_metadata(metadata);
  body.add_placement(placement_offset);
  body.add_fragment_checksums(checksums_offset);
  auto body_offset = body.Finish();
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_body_type(wire::Body::WriteFragment);
  envelope.add_body(body_offset.Union());
  fbb.Finish(envelope.Finish());
  std::vector<zmq::message_t> frames;
  frames.push_back(Frame(fbb));
  frames.push_back(Frame(payload));
  return frames;
}

// A single CommitVersion / AbortVersion (as the repairer sends), or a splitter's batched
// VersionDecisions: this key's decision, then up to two more for fuzzed versions of it.
std::vector<zmq::message_t> ControlMessage(FuzzInput& in, const std::string& key, bool commit) {
  flatbuffers::FlatBufferBuilder fbb;
  auto key_offset = fbb.CreateString(key);
  Version v = FuzzVersion(in);
  wire::Version version(v.hlc, v.writer);
  flatbuffers::Offset<void> body;
  wire::Body type;
  if (in.Bool()) {
    std::vector<flatbuffers::Offset<wire::VersionDecision>> decisions{
        wire::CreateVersionDecision(fbb, key_offset, &version, commit)};
    for (int more = in.Byte() % 3; more > 0; --more) {
      Version other = FuzzVersion(in);
      wire::Version other_version(other.hlc, other.writer);
      decisions.push_back(wire::CreateVersionDecision(fbb, key_offset, &other_version, in.Bool()));
    }
    body = wire::CreateVersionDecisions(fbb, fbb.CreateVector(decisions)).Union();
    type = wire::Body::VersionDecisions;
  } else if (commit) {
    body = wire::CreateCommitVersion(fbb, key_offset, &version).Union();
    type = wire::Body::CommitVersion;
  } else {
    body = wire::CreateAbortVersion(fbb, key_offset, &version).Union();
    type = wire::Body::AbortVersion;
  }
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_body_type(type);
  envelope.add_body(body);
  fbb.Finish(envelope.Finish());
  std::vector<zmq::message_t> frames;
  frames.push_back(Frame(fbb));
  return frames;
}

std::vector<zmq::message_t> ReadRequest(FuzzInput& in, const std::string& key, const std::string& ns) {
  flatbuffers::FlatBufferBuilder fbb;
  flatbuffers::Offset<void> body;
  wire::Body type;
  uint8_t kind = in.Byte() % 4;
  if (kind <= 1) {
    auto key_offset = fbb.CreateString(key);
    Version v = FuzzVersion(in);
    wire::Version version(v.hlc, v.writer);
    wire::ByteRange range(in.Integral<uint64_t>() % 8000, in.Bool() ? UINT64_MAX : in.Range(0, 9000));
    uint8_t flags = in.Byte();
    wire::FetchRequestBuilder fetch(fbb);
    fetch.add_key(key_offset);
    if (flags & 1) fetch.add_version(&version);
    fetch.add_want_payload((flags & 2) != 0);
    if (flags & 4) fetch.add_range(&range);
    fetch.add_verify((flags & 8) != 0);
    if (flags & 16) fetch.add_suffix_length(in.Bool() ? UINT64_MAX : in.Range(0, 5000));
    body = fetch.Finish().Union();
    type = wire::Body::FetchRequest;
  } else if (kind == 2) {
    auto prefix = fbb.CreateString(in.Bool() ? ns : std::string(in.Bytes(8)));
    auto cursor = fbb.CreateString(in.Bool() ? std::string() : key);
    body = wire::CreateListKeysRequest(fbb, prefix, cursor, static_cast<uint32_t>(in.Range(0, 2000))).Union();
    type = wire::Body::ListKeysRequest;
  } else {
    body = wire::CreateStoreStatRequest(fbb).Union();
    type = wire::Body::StoreStatRequest;
  }
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_request_id(in.Integral<uint64_t>());
  envelope.add_body_type(type);
  envelope.add_body(body);
  fbb.Finish(envelope.Finish());
  std::vector<zmq::message_t> frames;
  frames.push_back(Frame(fbb));
  return frames;
}

// Raw frames for the ingest socket. A WriteFragment whose ack endpoint is not in-process is
// not sent: the store would open connections to wherever the bytes point.
bool SafeForIngest(const std::vector<zmq::message_t>& frames) {
  if (frames.empty()) return true;
  wire::AlignedFrame aligned;
  auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
  if (!envelope.ok() || (*envelope)->body_type() != wire::Body::WriteFragment) return true;
  const auto* write = (*envelope)->body_as_WriteFragment();
  if (write == nullptr) return true;  // a body type without a body: the store must cope
  // Raw writes use ids below 65536, so their acks never pass for a structured write's.
  return wire::View(write->ack_to()) == kAckEndpoint && write->write_id() < 65536;
}

void CheckReadReply(std::vector<zmq::message_t>& frames) {
  DDSPLIT_FUZZ_ASSERT(frames.size() >= 1 && frames.size() <= 2);
  wire::AlignedFrame aligned;
  auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
  DDSPLIT_FUZZ_ASSERT(envelope.ok());
  const auto* reply = (*envelope)->body_as_FetchReply();
  if (frames.size() == 2) {
    DDSPLIT_FUZZ_ASSERT(reply != nullptr && reply->payload_version() != nullptr);
    const wire::FragmentHeader* header = nullptr;
    for (const auto* held : *reply->versions()) {
      if (wire::FromWire(held->version()) == wire::FromWire(reply->payload_version())) {
        auto parsed = wire::ParseFragmentHeader(held->header());
        DDSPLIT_FUZZ_ASSERT(parsed.ok());
        header = *parsed;
      }
    }
    DDSPLIT_FUZZ_ASSERT(header != nullptr);
    // (An empty overlap may report an offset past the fragment's end; only bytes must fit.)
    if (frames[1].size() > 0) DDSPLIT_FUZZ_ASSERT(reply->payload_offset() + frames[1].size() <= header->size());
  }
}

}  // namespace
}  // namespace ddsplit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddsplit;
  using namespace ddsplit::fuzz;
  Fixture& f = Get();
  FuzzInput in(data, size);
  const std::string ns = "in" + std::to_string(f.inputs++) + "/";
  Drain(f.acks);
  Drain(f.reader);
  std::set<uint64_t> writes;
  uint64_t next_write_id = (f.inputs << 16);
  std::vector<zmq::message_t> frames;
  for (int step = 0; step < 12 && !in.empty(); ++step) {
    uint8_t action = in.Byte() % 10;
    std::string key = FuzzKey(in, ns);
    if (action <= 2) {
      uint64_t id = next_write_id++;
      auto message = WriteMessage(in, key, id, action == 0);
      Send(f.ingest, message);
      writes.insert(id);
    } else if (action <= 4) {
      auto message = ControlMessage(in, key, action == 3);
      Send(f.ingest, message);
    } else if (action == 5) {
      std::vector<zmq::message_t> message;
      int count = static_cast<int>(in.Range(1, 3));
      for (int i = 0; i < count; ++i) message.push_back(Frame(in.Bytes(600)));
      if (SafeForIngest(message)) Send(f.ingest, message);
    } else {
      std::vector<zmq::message_t> message;
      if (action == 6) {
        int count = static_cast<int>(in.Range(1, 4));
        for (int i = 0; i < count; ++i) message.push_back(Frame(in.Bytes(600)));
      } else {
        message = ReadRequest(in, key, ns);
      }
      Send(f.reader, message);
      zmq::socket_t* sockets[] = {&f.reader};
      int got = ReceiveAny(sockets, frames, kAnswerDeadline);
      DDSPLIT_FUZZ_ASSERT(got == 0);  // every read request is answered
      CheckReadReply(frames);
    }
  }
  // A sentinel write: once its ack arrives, everything sent before it has been committed and
  // acknowledged.
  uint64_t sentinel = next_write_id++;
  FuzzInput none(nullptr, 0);
  auto message = WriteMessage(none, ns + "sentinel", sentinel, true);
  Send(f.ingest, message);
  std::set<uint64_t> acked;
  while (true) {
    zmq::socket_t* sockets[] = {&f.acks};
    int got = ReceiveAny(sockets, frames, kAnswerDeadline);
    DDSPLIT_FUZZ_ASSERT(got == 0);  // the sentinel is acknowledged
    wire::AlignedFrame aligned;
    auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
    DDSPLIT_FUZZ_ASSERT(envelope.ok());
    const auto* ack = (*envelope)->body_as_FragmentAck();
    DDSPLIT_FUZZ_ASSERT(ack != nullptr);
    DDSPLIT_FUZZ_ASSERT(ack->store_id() == kSelf);
    if (ack->write_id() == sentinel) {
      if (ack->error() != nullptr) std::fprintf(stderr, "sentinel refused: %s\n", wire::FromWire(ack->error()).ToString().c_str());
      DDSPLIT_FUZZ_ASSERT(ack->error() == nullptr);
      break;
    }
    if (writes.count(ack->write_id())) DDSPLIT_FUZZ_ASSERT(acked.insert(ack->write_id()).second);
  }
  DDSPLIT_FUZZ_ASSERT(acked == writes);  // each structured write acknowledged exactly once
  return 0;
}
