#include <doctest/doctest.h>

#include <random>

#include "common/wire/envelope.h"

namespace ddsplit::wire {
namespace {

std::span<const std::byte> Span(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

TEST_CASE("an envelope round-trips with its body, request id and timings") {
  MessageWriter writer;
  auto& fbb = writer.fbb();
  auto key = fbb.CreateString("photos/cat.jpg");
  auto body = CreateGetRequest(fbb, key);
  Timings timings;
  timings.Add(Stage::kVerify, 10, 20);
  auto frame = writer.Finish(42, body, timings.view());
  auto parsed = ParseEnvelope(Span(frame));
  REQUIRE(parsed.ok());
  CHECK((*parsed)->request_id() == 42);
  REQUIRE((*parsed)->body_as_GetRequest() != nullptr);
  CHECK(View((*parsed)->body_as_GetRequest()->key()) == "photos/cat.jpg");
  REQUIRE((*parsed)->timings()->size() == 1);
  CHECK((*parsed)->timings()->Get(0)->work_ns() == 20);
}

TEST_CASE("error replies carry the code and message") {
  MessageWriter writer;
  auto frame = writer.FinishError(7, ddsplit::Error(ddsplit::ErrorCode::kBusy, "too many requests"));
  auto parsed = ParseEnvelope(Span(frame));
  REQUIRE(parsed.ok());
  auto error = FromWire((*parsed)->error());
  CHECK(error.code() == ddsplit::ErrorCode::kBusy);
  CHECK(error.message() == "too many requests");
}

TEST_CASE("garbage, truncation and empty envelopes are refused, never crash") {
  MessageWriter writer;
  auto key = writer.fbb().CreateString("k");
  auto frame = writer.Finish(1, CreateDeleteRequest(writer.fbb(), key));
  auto bytes = Span(frame);
  int refused = 0;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto result = ParseEnvelope(bytes.first(cut));
    if (!result.ok()) {
      ++refused;
      continue;
    }
    // Only trailing alignment padding can be cut without harm; then the content is intact.
    CHECK(bytes.size() - cut < 8);
    CHECK(View((*result)->body_as_DeleteRequest()->key()) == "k");
  }
  CHECK(refused > static_cast<int>(bytes.size()) - 8);
  std::mt19937 rng(1);
  std::vector<std::byte> noise(200);
  int noise_refused = 0;
  for (int round = 0; round < 2000; ++round) {
    for (auto& b : noise) b = std::byte(rng());
    noise_refused += ParseEnvelope(noise).ok() ? 0 : 1;
  }
  CHECK(noise_refused > 1990);
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(CreateEnvelope(fbb, 5));
  std::span<const std::byte> empty(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()),
                                   fbb.GetSize());
  CHECK(ParseEnvelope(empty).error().code() == ddsplit::ErrorCode::kMalformed);
}

TEST_CASE("a body type without its body is refused (regression: fuzzer-found null body)") {
  flatbuffers::FlatBufferBuilder fbb;
  EnvelopeBuilder envelope(fbb);
  envelope.add_request_id(3);
  envelope.add_body_type(Body::PutRequest);
  fbb.Finish(envelope.Finish());
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()),
                                   fbb.GetSize());
  auto parsed = ParseEnvelope(bytes);
  REQUIRE(!parsed.ok());
  CHECK(parsed.error().code() == ddsplit::ErrorCode::kMalformed);
  AlignedFrame aligned;
  CHECK(aligned.Of(std::span<const std::byte>()).empty());
}

TEST_CASE("a required field that is missing fails verification") {
  flatbuffers::FlatBufferBuilder fbb;
  // No key although the schema requires one (built by hand: the generated builder asserts).
  auto start = fbb.StartTable();
  auto body = flatbuffers::Offset<GetRequest>(fbb.EndTable(start));
  fbb.Finish(CreateEnvelope(fbb, 1, Body::GetRequest, body.Union()));
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()),
                                   fbb.GetSize());
  CHECK(!ParseEnvelope(bytes).ok());
}

TEST_CASE("record attributes: metadata totals and content type are checked") {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<MetaEntry>> entries;
  for (int i = 0; i < 65; ++i) {
    entries.push_back(CreateMetaEntry(fbb, fbb.CreateString("n" + std::to_string(i)),
                                      fbb.CreateString("v")));
  }
  auto too_many = fbb.CreateVectorOfSortedTables(&entries);
  auto ct = fbb.CreateString("text/plain");
  fbb.Finish(CreatePutRequest(fbb, fbb.CreateString("k"), ct, too_many));
  auto* put = flatbuffers::GetRoot<PutRequest>(fbb.GetBufferPointer());
  CHECK(!ValidateRecordAttributes(put->content_type(), put->metadata()).ok());
  CHECK(ValidateRecordAttributes(put->content_type(), nullptr).ok());
}

TEST_CASE("versions and errors convert both ways") {
  ddsplit::Version v{123456789, 42};
  auto w = ToWire(v);
  CHECK(FromWire(&w) == v);
  CHECK(FromWire(static_cast<const wire::Version*>(nullptr)).IsZero());
  CHECK(FromWire(static_cast<const wire::Error*>(nullptr)).code() == ddsplit::ErrorCode::kInternal);
}

}  // namespace
}  // namespace ddsplit::wire

namespace ddsplit::wire {
namespace {

TEST_CASE("every finished envelope carries the sender's timestamp") {
  MessageWriter writer;
  const uint64_t before = SenderTimestampNanos();
  auto& fbb = writer.fbb();
  auto body = CreateGetRequest(fbb, fbb.CreateString("k"));
  auto frame = writer.Finish(1, body);
  auto error = writer.FinishError(2, ddsplit::Error(ddsplit::ErrorCode::kBusy, "busy"));
  const uint64_t after = SenderTimestampNanos();
  for (const auto* message : {&frame, &error}) {
    auto parsed = ParseEnvelope(
        std::span<const std::byte>(static_cast<const std::byte*>(message->data()), message->size()));
    REQUIRE(parsed.ok());
    CHECK((*parsed)->sent_at_ns() >= before);
    CHECK((*parsed)->sent_at_ns() <= after);
  }
}

}  // namespace
}  // namespace ddsplit::wire

namespace ddsplit::wire {
namespace {

TEST_CASE("Timings from other hops leave room for the coordinator's own last stages") {
  MessageWriter writer;
  auto& fbb = writer.fbb();
  std::array<StageTiming, 2> store = {StageTiming(static_cast<uint8_t>(Stage::kReceive), 1, 2),
                                      StageTiming(static_cast<uint8_t>(Stage::kStoreRead), 3, 4)};
  auto frame = writer.Finish(1, CreateFetchReply(fbb), store);
  auto parsed = ParseEnvelope(
      std::span<const std::byte>(static_cast<const std::byte*>(frame.data()), frame.size()));
  REQUIRE(parsed.ok());
  Timings timings;
  for (int i = 0; i < 40; ++i) timings.AddFrom((*parsed)->timings());
  CHECK(timings.view().size() == Timings::kCapacity - Timings::kReservedForOwn);
  timings.Add(Stage::kFetch, 5, 6);
  timings.Add(Stage::kDecode, 0, 7);
  timings.Add(Stage::kReply, 0, 8);
  REQUIRE(timings.view().size() == Timings::kCapacity - 1);
  CHECK(timings.view().back().stage() == static_cast<uint8_t>(Stage::kReply));
  CHECK(timings.view().back().work_ns() == 8);
}

}  // namespace
}  // namespace ddsplit::wire
