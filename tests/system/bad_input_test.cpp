// Bad input to every service: malformed frames, wrong message types, invalid keys, oversized
// values. Each gets an error reply (where the socket can answer) and a counter bump; every
// service keeps serving and stored data does not change.
#include <doctest/doctest.h>

#include <zmq.hpp>

#include <sstream>

#include "common/transport/transport.h"
#include "common/wire/envelope.h"
#include "tests/harness/harness.h"

namespace ddsplit::testing {
namespace {

// A DEALER talking to one ROUTER endpoint, with answers awaited under a deadline.
class RawPeer {
 public:
  RawPeer(zmq::context_t& context, const std::string& endpoint) : socket_(context, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }
  void Send(std::vector<zmq::message_t> frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      socket_.send(frames[i], i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  // The error code of the next answer; fails the test if none comes within 10 s.
  ErrorCode NextError() {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(10000)) == 1);
    std::vector<zmq::message_t> frames;
    bool overflow = false;
    REQUIRE(*transport::ReceiveMultipart(socket_, frames, 8, overflow));
    wire::AlignedFrame aligned;
    auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
    REQUIRE(envelope.ok());
    REQUIRE((*envelope)->error() != nullptr);
    return wire::FromWire((*envelope)->error()).code();
  }

 private:
  zmq::socket_t socket_;
};

zmq::message_t Garbage(size_t size, uint64_t seed) {
  auto bytes = RandomBytes(size, seed);
  return zmq::message_t(bytes.data(), bytes.size());
}

zmq::message_t Envelope(const std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&, wire::Body&)>& body) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::Body type = wire::Body::NONE;
  auto offset = body(fbb, type);
  fbb.Finish(wire::CreateEnvelope(fbb, 9, type, offset));
  return zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize());
}

TEST_CASE("malformed and unexpected messages get an error reply and every service keeps serving") {
  cluster::ClusterOptions options;
  options.extra_splitter_args = {"--max-record-bytes", "1048576"};
  TestCluster tc(options);
  auto& c = tc.client();
  auto original = RandomBytes(5000, 1);
  REQUIRE(c.Put({"kept", original, "", {}}).ok());
  zmq::context_t context;

  SUBCASE("splitter") {
    RawPeer peer(context, tc.cluster().Info(Role::kSplitter, 0).endpoint);
    std::vector<zmq::message_t> garbage;
    garbage.push_back(Garbage(100, 2));
    peer.Send(std::move(garbage));
    CHECK(peer.NextError() == ErrorCode::kMalformed);

    std::vector<zmq::message_t> wrong_type;
    wrong_type.push_back(Envelope([](auto& fbb, wire::Body& type) {
      type = wire::Body::GetRequest;
      return wire::CreateGetRequest(fbb, fbb.CreateString("kept")).Union();
    }));
    peer.Send(std::move(wrong_type));
    CHECK(peer.NextError() == ErrorCode::kInvalidArgument);

    std::vector<zmq::message_t> bad_key;
    bad_key.push_back(Envelope([](auto& fbb, wire::Body& type) {
      type = wire::Body::PutRequest;
      return wire::CreatePutRequest(fbb, fbb.CreateString(std::string("a\0b", 3))).Union();
    }));
    bad_key.push_back(zmq::message_t("x", 1));
    peer.Send(std::move(bad_key));
    CHECK(peer.NextError() == ErrorCode::kInvalidArgument);

    std::vector<zmq::message_t> too_large;
    too_large.push_back(Envelope([](auto& fbb, wire::Body& type) {
      type = wire::Body::PutRequest;
      return wire::CreatePutRequest(fbb, fbb.CreateString("kept")).Union();
    }));
    too_large.push_back(Garbage((1 << 20) + 1, 3));
    peer.Send(std::move(too_large));
    CHECK(peer.NextError() == ErrorCode::kTooLarge);

    auto metrics = tc.Metrics(Role::kSplitter, 0);
    REQUIRE(metrics.ok());
    CHECK(MetricValue(*metrics, R"(ddsplit_splitter_rejected_messages_total{reason="malformed"})").value_or(0) >= 1);
    CHECK(MetricValue(*metrics, R"(ddsplit_splitter_rejected_messages_total{reason="too_large"})").value_or(0) >= 1);
  }

  SUBCASE("assembler") {
    RawPeer peer(context, tc.cluster().Info(Role::kAssembler, 0).endpoint);
    std::vector<zmq::message_t> garbage;
    garbage.push_back(Garbage(64, 4));
    peer.Send(std::move(garbage));
    CHECK(peer.NextError() == ErrorCode::kMalformed);

    std::vector<zmq::message_t> extra_frames;
    extra_frames.push_back(Garbage(10, 5));
    extra_frames.push_back(Garbage(10, 6));
    peer.Send(std::move(extra_frames));
    CHECK(peer.NextError() == ErrorCode::kMalformed);

    std::vector<zmq::message_t> wrong_type;
    wrong_type.push_back(Envelope([](auto& fbb, wire::Body& type) {
      type = wire::Body::DeleteRequest;
      return wire::CreateDeleteRequest(fbb, fbb.CreateString("kept")).Union();
    }));
    peer.Send(std::move(wrong_type));
    CHECK(peer.NextError() == ErrorCode::kInvalidArgument);

    std::vector<zmq::message_t> bad_list;
    bad_list.push_back(Envelope([](auto& fbb, wire::Body& type) {
      type = wire::Body::ListRequest;
      return wire::CreateListRequest(fbb, fbb.CreateString("\xff\xfe")).Union();
    }));
    peer.Send(std::move(bad_list));
    CHECK(peer.NextError() == ErrorCode::kInvalidArgument);
  }

  SUBCASE("fragstore read and ingest ports") {
    const auto& store = tc.cluster().Info(Role::kStore, 0);
    RawPeer peer(context, store.read_endpoint);
    std::vector<zmq::message_t> garbage;
    garbage.push_back(Garbage(300, 7));
    peer.Send(std::move(garbage));
    CHECK(peer.NextError() == ErrorCode::kMalformed);

    zmq::socket_t push(context, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 1000);
    push.connect(store.ingest_endpoint);
    push.send(Garbage(500, 8), zmq::send_flags::none);
    // A well-formed write whose fragment does not match its checksum.
    push.send(Envelope([](auto& fbb, wire::Body& type) {
                type = wire::Body::WriteFragment;
                std::vector<uint32_t> placement{0, 1, 2, 3, 4, 5};
                std::vector<uint64_t> checksums(6, 12345);
                wire::Version version(1, 1);
                return wire::CreateWriteFragment(fbb, 1, fbb.CreateString("tcp://127.0.0.1:1"),
                                                 fbb.CreateString("kept"), &version, 4, 2, 16, 0, false, 0, 0,
                                                 fbb.CreateVector(placement), fbb.CreateVector(checksums))
                    .Union();
              }),
              zmq::send_flags::sndmore);
    push.send(zmq::message_t("abcd", 4), zmq::send_flags::none);
    auto rejected = [&] {
      auto text = tc.Metrics(Role::kStore, 0);
      std::string lines;
      std::istringstream in(text.ok() ? *text : "");
      for (std::string line; std::getline(in, line);) {
        if (line.find("rejected") != std::string::npos && line[0] != '#') lines += line + "\n";
      }
      return lines;
    };
    INFO("rejections: " << rejected());
    REQUIRE(WaitFor(
        [&] {
          auto metrics = tc.Metrics(Role::kStore, 0);
          return metrics.ok() &&
                 MetricValue(*metrics, R"(ddsplit_fragstore_rejected_messages_total{reason="malformed"})").value_or(0) >= 1 &&
                 MetricValue(*metrics, R"(ddsplit_fragstore_rejected_messages_total{reason="checksum_mismatch"})").value_or(0) >= 1;
        },
        std::chrono::seconds(10)));
  }

  // Nothing stored changed, and every service still serves.
  auto got = c.Get("kept");
  REQUIRE(got.ok());
  CHECK(got->value.ToString() == AsString(original));
  CHECK(got->info.version == c.Stat("kept")->info.version);
  auto fresh = RandomBytes(3000, 9);
  REQUIRE(c.Put({"after", fresh, "", {}}).ok());
  CHECK(c.Get("after")->value.ToString() == AsString(fresh));
}

}  // namespace
}  // namespace ddsplit::testing
