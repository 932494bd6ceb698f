#include <doctest/doctest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/transport/buffer_pool.h"
#include "common/transport/connection_watch.h"
#include "common/transport/transport.h"

namespace ddsplit::transport {
namespace {

struct ReleaseSignal {
  std::mutex mutex;
  std::condition_variable released;
  int count = 0;
  bool WaitFor(int expected) {
    std::unique_lock lock(mutex);
    return released.wait_for(lock, std::chrono::seconds(10), [&] { return count >= expected; });
  }
  static void Release(void*, void* hint) {
    auto* self = static_cast<ReleaseSignal*>(hint);
    std::lock_guard lock(self->mutex);
    ++self->count;
    self->released.notify_all();
  }
};

// Blocks (with a deadline) until a whole message arrives.
std::vector<zmq::message_t> ReceiveWithin(zmq::socket_t& socket, size_t max_frames,
                                          bool* overflow = nullptr) {
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(10000)) == 1);
  std::vector<zmq::message_t> frames;
  bool over = false;
  auto got = ReceiveMultipart(socket, frames, max_frames, over);
  REQUIRE(got.ok());
  REQUIRE(*got);
  if (overflow) *overflow = over;
  return frames;
}

TEST_CASE("bind on port 0 reports the real endpoint, and multipart messages arrive whole") {
  zmq::context_t context;
  auto pull = MakeSocket(context, zmq::socket_type::pull, {});
  auto push = MakeSocket(context, zmq::socket_type::push, {});
  REQUIRE(pull.ok());
  REQUIRE(push.ok());
  auto endpoint = Bind(*pull, "tcp://127.0.0.1:0");
  REQUIRE(endpoint.ok());
  CHECK(endpoint->rfind("tcp://127.0.0.1:", 0) == 0);
  CHECK(endpoint->find(":0") == std::string::npos);
  REQUIRE(Connect(*push, *endpoint).ok());

  ReleaseSignal signal;
  static const char kPayload[] = "borrowed bytes, sent without a copy";
  std::vector<zmq::message_t> frames;
  frames.emplace_back("head", 4);
  frames.push_back(BorrowedMessage(std::as_bytes(std::span(kPayload)), &ReleaseSignal::Release,
                                   &signal));
  auto sent = SendMultipart(*push, frames);
  REQUIRE(sent.ok());
  CHECK(*sent == SendOutcome::kSent);

  auto received = ReceiveWithin(*pull, 8);
  REQUIRE(received.size() == 2);
  CHECK(received[0].to_string() == "head");
  CHECK(std::memcmp(received[1].data(), kPayload, sizeof kPayload) == 0);
  CHECK(signal.WaitFor(1));
}

TEST_CASE("extra frames beyond the limit are dropped and reported") {
  zmq::context_t context;
  auto pull = MakeSocket(context, zmq::socket_type::pull, {});
  auto push = MakeSocket(context, zmq::socket_type::push, {});
  auto endpoint = Bind(*pull, "tcp://127.0.0.1:*");
  REQUIRE(Connect(*push, *endpoint).ok());
  std::vector<zmq::message_t> frames;
  for (int i = 0; i < 5; ++i) frames.emplace_back(std::to_string(i));
  REQUIRE(*SendMultipart(*push, frames) == SendOutcome::kSent);
  bool overflow = false;
  auto received = ReceiveWithin(*pull, 3, &overflow);
  CHECK(received.size() == 3);
  CHECK(overflow);
  // The socket is still in step: the next message is received whole.
  frames.clear();
  frames.emplace_back("next", 4);
  REQUIRE(*SendMultipart(*push, frames) == SendOutcome::kSent);
  auto next = ReceiveWithin(*pull, 3, &overflow);
  CHECK(!overflow);
  CHECK(next[0].to_string() == "next");
}

TEST_CASE("an immediate PUSH with no peer fails fast instead of queueing") {
  zmq::context_t context;
  SocketOptions options;
  options.immediate = true;
  auto push = MakeSocket(context, zmq::socket_type::push, options);
  REQUIRE(Connect(*push, "tcp://127.0.0.1:1").ok());  // nothing listens on port 1
  std::vector<zmq::message_t> frames;
  frames.emplace_back("x", 1);
  auto sent = SendMultipart(*push, frames);
  REQUIRE(sent.ok());
  CHECK(*sent == SendOutcome::kWouldBlock);
  CHECK(frames[0].size() == 1);  // left intact for the caller
}

// Waits (on the watch's events, with a deadline) until connected() becomes `expected`.
bool WatchReaches(ConnectionWatch& watch, bool expected) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (watch.connected() != expected) {
    zmq::pollitem_t item{watch.events().handle(), 0, ZMQ_POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || zmq::poll(&item, 1, left) == 0) return false;
    watch.Update();
  }
  return true;
}

TEST_CASE("a connection watch follows an immediate PUSH's peer coming and going") {
  zmq::context_t context;
  SocketOptions options;
  options.immediate = true;
  auto push = MakeSocket(context, zmq::socket_type::push, options);
  REQUIRE(push.ok());
  auto watch = ConnectionWatch::Create(context, *push);
  REQUIRE(watch.ok());
  CHECK(!(*watch)->connected());
  auto pull = MakeSocket(context, zmq::socket_type::pull, SocketOptions{});
  auto endpoint = Bind(*pull, "tcp://127.0.0.1:0");
  REQUIRE(endpoint.ok());
  REQUIRE(Connect(*push, *endpoint).ok());
  REQUIRE(WatchReaches(**watch, true));
  // Connected means an immediate send is accepted.
  std::vector<zmq::message_t> frames;
  frames.emplace_back("x", 1);
  CHECK(*SendMultipart(*push, frames) == SendOutcome::kSent);
  CHECK(ReceiveWithin(*pull, 1)[0].to_string() == "x");
  pull->close();
  CHECK(WatchReaches(**watch, false));
}

TEST_CASE("a mandatory ROUTER reports an unknown peer") {
  zmq::context_t context;
  SocketOptions options;
  options.router_mandatory = true;
  auto router = MakeSocket(context, zmq::socket_type::router, options);
  REQUIRE(Bind(*router, "tcp://127.0.0.1:0").ok());
  std::vector<zmq::message_t> frames;
  frames.emplace_back("nobody", 6);
  frames.emplace_back("reply", 5);
  auto sent = SendMultipart(*router, frames);
  REQUIRE(sent.ok());
  CHECK(*sent == SendOutcome::kUnroutable);
}

TEST_CASE("slices of a shared frame reach the peer and keep the source alive") {
  zmq::context_t context;
  auto pull = MakeSocket(context, zmq::socket_type::pull, {});
  auto push = MakeSocket(context, zmq::socket_type::push, {});
  auto endpoint = Bind(*pull, "tcp://127.0.0.1:0");
  REQUIRE(Connect(*push, *endpoint).ok());
  std::string text(100000, 'a');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i % 26);
  SharedFrame* shared = SharedFrame::Adopt(zmq::message_t(text.data(), text.size()));
  std::vector<zmq::message_t> frames;
  frames.push_back(shared->Slice(10, 50000));
  frames.push_back(shared->Slice(60000, 40000));
  shared->Release();  // the slices alone keep it alive now
  REQUIRE(*SendMultipart(*push, frames) == SendOutcome::kSent);
  auto received = ReceiveWithin(*pull, 4);
  REQUIRE(received.size() == 2);
  CHECK(received[0].to_string() == text.substr(10, 50000));
  CHECK(received[1].to_string() == text.substr(60000, 40000));
}

TEST_CASE("pooled buffers are reused after ZeroMQ frees them, and trimmed on request") {
  auto& pool = BufferPool::Global();
  pool.Trim();
  {
    zmq::message_t first = pool.Take(100000);
    CHECK(first.size() == 100000);
  }
  CHECK(pool.IdleBytes() == 131072);
  void* reused = nullptr;
  {
    zmq::message_t second = pool.Take(70000);
    reused = second.data();
    CHECK(pool.IdleBytes() == 0);
  }
  zmq::message_t third = pool.Take(131072);
  CHECK(third.data() == reused);
  zmq::message_t small = pool.Take(100);
  CHECK(small.size() == 100);
  pool.Trim();
  CHECK(pool.IdleBytes() == 0);
}

TEST_CASE("poll timeouts respect the deadline and the cap") {
  SteadyTime now{};
  CHECK(PollTimeoutMs(now, now - std::chrono::milliseconds(5), std::chrono::milliseconds(100)) == 0);
  CHECK(PollTimeoutMs(now, now + std::chrono::milliseconds(5), std::chrono::milliseconds(100)) == 6);
  CHECK(PollTimeoutMs(now, now + std::chrono::seconds(5), std::chrono::milliseconds(100)) == 100);
  CHECK(AdvertisedEndpoint("tcp://0.0.0.0:5000", "10.0.0.7") == "tcp://10.0.0.7:5000");
  CHECK(AdvertisedEndpoint("tcp://0.0.0.0:5000", "") == "tcp://0.0.0.0:5000");
}

TEST_CASE("a given port still held by another socket is bound once it is free") {
  zmq::context_t context;
  auto holder = MakeSocket(context, zmq::socket_type::pull, {});
  REQUIRE(holder.ok());
  auto held = Bind(*holder, "tcp://127.0.0.1:0");
  REQUIRE(held.ok());
  auto second = MakeSocket(context, zmq::socket_type::pull, {});
  REQUIRE(second.ok());
  // The holder lets go while Bind is (very likely) already retrying.
  std::mutex mutex;
  std::condition_variable started;
  bool binding = false;
  std::thread releaser([&] {
    std::unique_lock lock(mutex);
    started.wait(lock, [&] { return binding; });
    holder->close();
  });
  {
    std::lock_guard lock(mutex);
    binding = true;
  }
  started.notify_one();
  auto bound = Bind(*second, *held);
  releaser.join();
  REQUIRE_MESSAGE(bound.ok(), bound.error().ToString());
  CHECK(*bound == *held);
}

TEST_CASE("BindPort reads the port of a bind endpoint and refuses malformed ones") {
  CHECK(BindPort("tcp://0.0.0.0:7100") == 7100);
  CHECK(BindPort("tcp://*:*") == 0);
  CHECK(BindPort("ipc:///tmp/x") == -1);
  CHECK(BindPort("inproc://x") == -1);
  for (const char* bad : {"tcp://0.0.0.0", "tcp://:7100", "tcp://h:70000", "tcp://h:7a", "udp://h:1", ""}) {
    CAPTURE(bad);
    CHECK(!BindPort(bad).has_value());
  }
}

}  // namespace
}  // namespace ddsplit::transport
