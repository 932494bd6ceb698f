// Writes the seed corpus of every fuzz target: fuzz_make_seeds DIR writes DIR/<target>/seed-*.
// The seeds are real messages (every wire body type, store replies with nested headers, stored
// fragment headers) and a few structured byte strings that drive the structured targets through
// their main paths. Run once to (re)create fuzz/corpus; the fuzzers grow the corpus from there.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/codec/checksum.h"
#include "common/wire/envelope.h"

namespace {

namespace fs = std::filesystem;
using namespace ddsplit;

void Write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string Bytes(const flatbuffers::FlatBufferBuilder& fbb) {
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

template <typename BodyT>
std::string Envelope(flatbuffers::FlatBufferBuilder& fbb, flatbuffers::Offset<BodyT> body) {
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_request_id(42);
  envelope.add_body_type(wire::BodyTraits<BodyT>::enum_value);
  envelope.add_body(body.Union());
  fbb.Finish(envelope.Finish());
  return Bytes(fbb);
}

std::string Header(flatbuffers::FlatBufferBuilder& fbb, bool tombstone) {
  auto content_type = fbb.CreateString("text/plain");
  auto name = fbb.CreateString("owner");
  auto value = fbb.CreateString("ann");
  std::vector<flatbuffers::Offset<wire::MetaEntry>> entries{wire::CreateMetaEntry(fbb, name, value)};
  auto metadata = fbb.CreateVector(entries);
  auto placement = fbb.CreateVector(std::vector<uint32_t>{3, 1, 0, 5, 2, 4});
  wire::FragmentHeaderBuilder header(fbb);
  header.add_index(1);
  header.add_k(4);
  header.add_m(2);
  header.add_size(tombstone ? 0 : 250);
  header.add_record_size(tombstone ? 0 : 1000);
  header.add_record_checksum(77);
  header.add_checksum(88);
  header.add_tombstone(tombstone);
  header.add_content_type(content_type);
  header.add_metadata(metadata);
  header.add_placement(placement);
  fbb.Finish(header.Finish());
  return Bytes(fbb);
}

// [store][len16][envelope][payload], as fuzz/targets/wire_envelope.cpp reads it.
std::string Framed(uint8_t store, const std::string& envelope, const std::string& payload = {}) {
  std::string out(1, static_cast<char>(store));
  out.push_back(static_cast<char>(envelope.size() & 0xff));
  out.push_back(static_cast<char>(envelope.size() >> 8));
  return out + envelope + payload;
}

std::vector<std::string> Envelopes(std::string& fragment_payload) {
  std::vector<std::string> out;
  using flatbuffers::FlatBufferBuilder;
  wire::Version version(7 << 16, 1);
  {
    FlatBufferBuilder fbb;
    auto key = fbb.CreateString("photos/cat.jpg");
    auto ct = fbb.CreateString("image/jpeg");
    auto name = fbb.CreateString("owner");
    auto value = fbb.CreateString("ann");
    std::vector<flatbuffers::Offset<wire::MetaEntry>> entries{wire::CreateMetaEntry(fbb, name, value)};
    out.push_back(Envelope(fbb, wire::CreatePutRequest(fbb, key, ct, fbb.CreateVector(entries))));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreatePutReply(fbb, &version, 1000, true)));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateDeleteRequest(fbb, fbb.CreateString("k"))));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateDeleteReply(fbb, &version, true)));
  }
  {
    FlatBufferBuilder fbb;
    wire::ByteRange range(10, 100);
    out.push_back(Envelope(fbb, wire::CreateGetRequest(fbb, fbb.CreateString("k"), &range, false, 0)));
  }
  {
    FlatBufferBuilder fbb;
    auto key = fbb.CreateString("k");
    auto ct = fbb.CreateString("text/plain");
    auto placement = fbb.CreateVector(std::vector<uint32_t>{0, 1, 2, 3, 4, 5});
    auto info = wire::CreateRecordInfo(fbb, key, &version, 1000, 5, ct, 0, 4, 2, placement);
    wire::ByteRange range(0, 1000);
    out.push_back(Envelope(fbb, wire::CreateGetReply(fbb, info, &range, 4, false)));
  }
  {
    FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<flatbuffers::String>> keys{fbb.CreateString("a"), fbb.CreateString("b")};
    out.push_back(Envelope(fbb, wire::CreateMultiGetRequest(fbb, fbb.CreateVector(keys))));
  }
  {
    FlatBufferBuilder fbb;
    auto error = wire::CreateError(fbb, wire::ErrorCode::NotFound, fbb.CreateString("no such key"));
    std::vector<flatbuffers::Offset<wire::MultiGetItem>> items{wire::CreateMultiGetItem(fbb, 0, error, 0)};
    out.push_back(Envelope(fbb, wire::CreateMultiGetReply(fbb, fbb.CreateVector(items))));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateListRequest(fbb, fbb.CreateString("a/"), fbb.CreateString("a/1"), 10)));
  }
  {
    FlatBufferBuilder fbb;
    auto key = fbb.CreateString("a/2");
    auto ct = fbb.CreateString("text/plain");
    std::vector<flatbuffers::Offset<wire::ListEntry>> entries{wire::CreateListEntry(fbb, key, &version, 5, ct)};
    out.push_back(Envelope(fbb, wire::CreateListReply(fbb, fbb.CreateVector(entries), fbb.CreateString("a/2"))));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateStatRequest(fbb, fbb.CreateString("k"))));
  }
  {
    FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::FragmentHealth>> health{
        wire::CreateFragmentHealth(fbb, 3, 0, wire::FragmentState::Corrupt, &version)};
    out.push_back(Envelope(fbb, wire::CreateStatReply(fbb, 0, fbb.CreateVector(health))));
  }
  {
    // A WriteFragment store 3 accepts: fragment 0 of a 1000-byte record, k=4 m=2.
    FlatBufferBuilder fbb;
    fragment_payload.assign(250, 'd');
    uint64_t checksum = codec::Checksum(std::as_bytes(std::span(fragment_payload.data(), fragment_payload.size())));
    auto ack_to = fbb.CreateString("inproc://fuzz-fragstore-acks");
    auto key = fbb.CreateString("photos/cat.jpg");
    auto ct = fbb.CreateString("image/jpeg");
    auto placement = fbb.CreateVector(std::vector<uint32_t>{3, 1, 0, 5, 2, 4});
    auto checksums = fbb.CreateVector(std::vector<uint64_t>{checksum, 0, 0, 0, 0, 0});
    wire::WriteFragmentBuilder write(fbb);
    write.add_write_id(9);
    write.add_ack_to(ack_to);
    write.add_key(key);
    write.add_version(&version);
    write.add_k(4);
    write.add_m(2);
    write.add_record_size(1000);
    write.add_content_type(ct);
    write.add_placement(placement);
    write.add_fragment_checksums(checksums);
    out.push_back(Envelope(fbb, write.Finish()));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateCommitVersion(fbb, fbb.CreateString("k"), &version)));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateAbortVersion(fbb, fbb.CreateString("k"), &version)));
  }
  {
    FlatBufferBuilder fbb;
    auto key = fbb.CreateString("k");
    std::vector<flatbuffers::Offset<wire::VersionDecision>> decisions{
        wire::CreateVersionDecision(fbb, key, &version, true),
        wire::CreateVersionDecision(fbb, fbb.CreateString("j"), &version, false)};
    out.push_back(Envelope(fbb, wire::CreateVersionDecisions(fbb, fbb.CreateVector(decisions))));
  }
  {
    FlatBufferBuilder fbb;
    auto error = wire::CreateError(fbb, wire::ErrorCode::Corrupt, fbb.CreateString("bad"));
    out.push_back(Envelope(fbb, wire::CreateFragmentAck(fbb, 9, 3, 0, true, error)));
  }
  {
    FlatBufferBuilder fbb;
    wire::ByteRange range(100, 50);
    out.push_back(Envelope(fbb, wire::CreateFetchRequest(fbb, fbb.CreateString("k"), &version, true, &range, true, 0)));
  }
  {
    FlatBufferBuilder header_fbb;
    std::string header = Header(header_fbb, false);
    FlatBufferBuilder fbb;
    fbb.ForceVectorAlignment(header.size(), 1, 8);
    auto header_offset = fbb.CreateVector(reinterpret_cast<const uint8_t*>(header.data()), header.size());
    std::vector<flatbuffers::Offset<wire::HeldVersion>> held{
        wire::CreateHeldVersion(fbb, &version, true, wire::FragmentState::Ok, header_offset)};
    auto versions = fbb.CreateVector(held);
    out.push_back(Envelope(fbb, wire::CreateFetchReply(fbb, 3, versions, &version, 0, 0)));
    FlatBufferBuilder list_fbb;
    list_fbb.ForceVectorAlignment(header.size(), 1, 8);
    auto list_header = list_fbb.CreateVector(reinterpret_cast<const uint8_t*>(header.data()), header.size());
    std::vector<flatbuffers::Offset<wire::HeldVersion>> list_held{
        wire::CreateHeldVersion(list_fbb, &version, false, wire::FragmentState::Ok, list_header)};
    auto list_versions = list_fbb.CreateVector(list_held);
    std::vector<flatbuffers::Offset<wire::KeyVersions>> entries{
        wire::CreateKeyVersions(list_fbb, list_fbb.CreateString("a/1"), list_versions)};
    out.push_back(Envelope(list_fbb, wire::CreateListKeysReply(list_fbb, 3, list_fbb.CreateVector(entries), true)));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateListKeysRequest(fbb, fbb.CreateString("a"), fbb.CreateString(""), 100)));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateStoreStatRequest(fbb)));
  }
  {
    FlatBufferBuilder fbb;
    out.push_back(Envelope(fbb, wire::CreateStoreStatReply(fbb, 3, 10, 1000)));
  }
  {
    // An error reply with timings.
    wire::MessageWriter writer;
    wire::StageTiming timing(1, 100, 200);
    auto frame = writer.FinishError(5, Error(ErrorCode::kBusy, "too many writes in flight"), std::span(&timing, 1));
    out.emplace_back(static_cast<const char*>(frame.data()), frame.size());
  }
  return out;
}

std::string RandomBytes(std::mt19937_64& rng, size_t size) {
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

// An envelope that names a body type but carries no body (verifies: union values are optional).
std::string Bodyless(wire::Body type) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_request_id(7);
  envelope.add_body_type(type);
  fbb.Finish(envelope.Finish());
  return Bytes(fbb);
}

std::string Little16(size_t n) { return {static_cast<char>(n & 0xff), static_cast<char>(n >> 8)}; }

// Regression inputs written by hand for bugs found by the fuzzers (see the file names).
void WriteRegressions(const fs::path& root) {
  for (auto [type, name] : {std::pair{wire::Body::WriteFragment, "write-fragment"},
                            std::pair{wire::Body::PutRequest, "put-request"},
                            std::pair{wire::Body::GetRequest, "get-request"}}) {
    Write(root / "wire_envelope", std::string("bodyless-") + name, Framed(3, Bodyless(type)));
  }
  // The same envelopes sent raw to each service (the input layouts of the server targets).
  std::string put = Bodyless(wire::Body::PutRequest);
  Write(root / "splitter_server", "bodyless-put-request", std::string("\x00\x07\x00", 3) + Little16(put.size()) + put);
  std::string del = Bodyless(wire::Body::DeleteRequest);
  Write(root / "splitter_server", "bodyless-delete-request", std::string("\x00\x07\x00", 3) + Little16(del.size()) + del);
  std::string get = Bodyless(wire::Body::GetRequest);
  Write(root / "assembler_server", "bodyless-get-request", std::string("\x00\x09\x00", 3) + Little16(get.size()) + get);
  std::string list = Bodyless(wire::Body::ListRequest);
  Write(root / "assembler_server", "bodyless-list-request", std::string("\x00\x09\x00", 3) + Little16(list.size()) + list);
  std::string write = Bodyless(wire::Body::WriteFragment);
  Write(root / "fragstore_server", "bodyless-write-fragment",
        std::string("\x05\x00\x01", 3) + Little16(write.size()) + write + std::string("\x00\x00", 2));
  std::string commit = Bodyless(wire::Body::CommitVersion);
  Write(root / "fragstore_server", "bodyless-commit-version", std::string("\x05\x00\x00", 3) + Little16(commit.size()) + commit);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--regressions") {
    WriteRegressions(argv[2]);
    std::printf("regression inputs written under %s\n", argv[2]);
    return 0;
  }
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR | fuzz_make_seeds --regressions REGRESSIONS_DIR\n");
    return 2;
  }
  fs::path root(argv[1]);
  std::string payload;
  auto envelopes = Envelopes(payload);
  int n = 0;
  for (const auto& envelope : envelopes) {
    Write(root / "wire_envelope", "seed-" + std::to_string(n++), Framed(3, envelope, payload));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::string prefix(24, '\0');
    Write(root / "fragment_header", "seed-0", prefix + Header(fbb, false));
    flatbuffers::FlatBufferBuilder fbb2;
    Write(root / "fragment_header", "seed-1", std::string("\x10\0\0\0\0\0\0\0\x20\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24) + Header(fbb2, true));
  }
  // Structured targets: their inputs are choices, so varied bytes are good seeds.
  std::mt19937_64 rng(20240601);
  for (const char* target : {"codec_roundtrip", "assembler_logic", "fragment_store_ops", "fragstore_server",
                             "splitter_server", "assembler_server"}) {
    for (int i = 0; i < 6; ++i) {
      size_t size = 16 + static_cast<size_t>(i) * 40;
      Write(root / target, "seed-" + std::to_string(i), RandomBytes(rng, size));
    }
  }
  // codec: every shape edge once — k=1 m=0, k=16 m=8, a large record.
  Write(root / "codec_roundtrip", "seed-shape-0", std::string("\x00\x00\x10\x00\x00\x00\x00\x00\x00xy", 11));
  Write(root / "codec_roundtrip", "seed-shape-1", std::string("\x0f\x08\xff\xff\x03\x03\x00\x00\x00" "abc", 12));
  // Servers: an input of zeros is the "sane" path of each (a valid write / get, honest stores).
  Write(root / "fragstore_server", "seed-sane", std::string(64, '\0'));
  Write(root / "splitter_server", "seed-sane", std::string(64, '\0'));
  Write(root / "assembler_server", "seed-sane", std::string(64, '\x03'));
  // Gateway: the pure API rules, one seed per selector.
  const std::pair<int, const char*> api[] = {
      {0, "/v1/records/photos%2Fcat.jpg?x=1&y=%20"}, {1, "a%2Fb+c%ZZ"}, {2, "bytes=0-99"}, {2, "bytes=-5"},
      {2, "bytes=10-,20-30"}, {3, "W/\"0000018f00000000000000aa\", *"}, {4, "list/00007"}, {5, "aGVsbG8gd29ybGQ="},
      {6, "bad key \xff\xfe"}, {7, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}};
  int a = 0;
  for (const auto& [selector, text] : api) {
    Write(root / "gateway_http_api", "seed-" + std::to_string(a++), std::string(1, static_cast<char>(selector)) + text);
  }
  // Gateway requests: [method byte, pick] [prefix pick] [target len][target] [header count]
  // ([name marker, pick] [value len][value])... [length mode] [body].
  auto request = [](int method, int prefix, std::string target, std::vector<std::pair<int, std::string>> headers,
                    int length_mode, std::string body) {
    std::string out;
    out += '\0';
    out += static_cast<char>(method);
    out += static_cast<char>(prefix);
    out += static_cast<char>(target.size());
    out += target;
    out += static_cast<char>(headers.size());
    for (const auto& [name, value] : headers) {
      out += '\0';
      out += static_cast<char>(name);
      out += static_cast<char>(value.size());
      out += value;
    }
    out += static_cast<char>(length_mode);
    return out + body;
  };
  const std::string gateway_seeds[] = {
      request(0, 0, "photos%2Fcat.jpg", {{0, "bytes=2-5"}, {5, "req-42"}}, 0, ""),
      request(1, 0, "photos/cat.jpg", {{4, "image/jpeg"}, {7, "ann"}}, 1, "the value bytes"),
      request(2, 0, "k", {{2, "*"}}, 0, ""),
      request(3, 0, "k", {{1, "\"0000018f00000000000000aa\""}}, 0, ""),
      request(0, 1, "?prefix=a%2F&limit=2&cursor=YQ", {}, 0, ""),
      request(4, 2, "", {{4, "application/json"}}, 1, "{\"keys\":[\"a\",\"missing1\",\"err\"]}"),
      request(4, 3, "", {{4, "application/x-ndjson"}}, 1,
              "{\"key\":\"a\",\"value\":{\"x\":1}}\n{\"key\":\"b\",\"value_base64\":\"aGk=\"}\nnot json\n"),
      request(0, 4, "", {}, 0, ""),
      request(1, 6, "", {}, 2, "short"),
  };
  int g = 0;
  for (const auto& seed : gateway_seeds) Write(root / "gateway_requests", "seed-" + std::to_string(g++), seed);
  std::printf("seeds written under %s\n", root.c_str());
  return 0;
}
