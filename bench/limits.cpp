#include "bench/limits.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/codec/reed_solomon.h"
#include "common/codec/stripe.h"

namespace ddsplit::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Keeps the compiler from proving a buffer's contents unused and dropping the work.
void Clobber(void* pointer) { asm volatile("" : : "g"(pointer) : "memory"); }

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Bytes a large buffer is filled with: not zero pages, not trivially compressible.
void Fill(std::vector<std::byte>& buffer) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& b : buffer) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<std::byte>(x);
  }
}

// A peer thread that is told to stop and joined however the measuring side leaves.
class JoinOnExit {
 public:
  template <typename F>
  JoinOnExit(std::atomic<bool>& stop, F&& body) : stop_(stop), thread_(std::forward<F>(body)) {}
  ~JoinOnExit() { Join(); }
  void Join() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool>& stop_;
  std::thread thread_;
};

constexpr uint64_t kQueueBytes = 64ull << 20;  // PUSH/PULL high-water marks cover about this
constexpr auto kPeerTimeout = std::chrono::seconds(5);

}  // namespace

Throughput MeasureMemcpy(uint64_t block_bytes, std::chrono::milliseconds duration) {
  const uint64_t buffer_bytes = std::max<uint64_t>(64ull << 20, block_bytes);
  std::vector<std::byte> source(buffer_bytes), target(buffer_bytes);
  Fill(source);
  std::memset(target.data(), 1, target.size());  // fault the pages in before timing
  Throughput result;
  uint64_t offset = 0;
  auto start = Clock::now();
  auto end = start + duration;
  auto now = start;
  while (now < end) {
    // Check the clock every few MiB so the call overhead of small blocks is what is measured.
    for (uint64_t moved = 0; moved < (4ull << 20) || result.operations == 0; moved += block_bytes) {
      if (offset + block_bytes > buffer_bytes) offset = 0;
      std::memcpy(target.data() + offset, source.data() + offset, block_bytes);
      Clobber(target.data() + offset);
      offset += block_bytes;
      ++result.operations;
      result.bytes += block_bytes;
    }
    now = Clock::now();
  }
  result.seconds = Seconds(now - start);
  return result;
}

Result<Throughput> MeasureEncode(int k, int m, uint64_t record_bytes,
                                 std::chrono::milliseconds duration) {
  auto codec = codec::ReedSolomon::Create(k, m);
  if (!codec.ok()) return std::move(codec).error();
  codec::StripeLayout layout(record_bytes, k, m);
  std::vector<std::byte> record(record_bytes);
  Fill(record);
  std::vector<std::vector<std::byte>> parity_buffers(
      m, std::vector<std::byte>(layout.fragment_size()));
  std::vector<std::span<const std::byte>> data(k);
  for (int i = 0; i < k; ++i) {
    auto span = layout.DataSpan(i);
    data[i] = std::span<const std::byte>(record).subspan(span.offset, span.length);
  }
  std::vector<std::span<std::byte>> parity(m);
  for (int j = 0; j < m; ++j) parity[j] = parity_buffers[j];
  Throughput result;
  auto start = Clock::now();
  auto end = start + duration;
  auto now = start;
  while (now < end) {
    for (uint64_t done = 0; done < (4ull << 20) || result.operations == 0; done += record_bytes) {
      (*codec)->Encode(data, layout.fragment_size(), parity);
      if (m > 0) Clobber(parity[0].data());
      ++result.operations;
      result.bytes += record_bytes;
    }
    now = Clock::now();
  }
  result.seconds = Seconds(now - start);
  return result;
}

Result<Throughput> MeasureZmqPushPull(uint64_t message_bytes, std::chrono::milliseconds duration) {
  // Declared before the sockets: ZeroMQ may read it until the sockets are closed.
  std::vector<std::byte> payload(std::max<uint64_t>(message_bytes, 1));
  Fill(payload);
  try {
    zmq::context_t receiver_context(1), sender_context(1);
    zmq::socket_t pull(receiver_context, zmq::socket_type::pull);
    zmq::socket_t push(sender_context, zmq::socket_type::push);
    int hwm = static_cast<int>(
        std::clamp<uint64_t>(kQueueBytes / std::max<uint64_t>(message_bytes, 1), 4, 1000));
    for (zmq::socket_t* socket : {&pull, &push}) {
      socket->set(zmq::sockopt::linger, 0);
      socket->set(zmq::sockopt::sndhwm, hwm);
      socket->set(zmq::sockopt::rcvhwm, hwm);
    }
    pull.set(zmq::sockopt::rcvtimeo,
             static_cast<int>(std::chrono::milliseconds(kPeerTimeout).count()));
    pull.bind("tcp://127.0.0.1:*");
    push.connect(pull.get(zmq::sockopt::last_endpoint));

    std::atomic<bool> stop{false};
    JoinOnExit sender(stop, [&] {
      zmq::pollitem_t item{push.handle(), 0, ZMQ_POLLOUT, 0};
      while (!stop.load(std::memory_order_relaxed)) {
        // Zero-copy from one constant buffer, as the splitter sends slices of a record.
        zmq::message_t message(payload.data(), message_bytes, nullptr, nullptr);
        auto sent = push.send(message, zmq::send_flags::dontwait);
        if (!sent) zmq::poll(&item, 1, std::chrono::milliseconds(10));
      }
    });

    Throughput result;
    std::string failure;
    zmq::message_t message;
    // Warm up (connection, buffers) for a tenth of the window, then count.
    auto warm_until = Clock::now() + duration / 10;
    bool warmed = false;
    Clock::time_point start{}, end{}, now{};
    while (true) {
      auto got = pull.recv(message, zmq::recv_flags::none);
      now = Clock::now();
      if (!got) {
        failure = "no message from the PUSH peer within 5 s";
        break;
      }
      if (!warmed) {
        if (now < warm_until) continue;
        warmed = true;
        start = now;
        end = start + duration;
        continue;
      }
      ++result.operations;
      result.bytes += message.size();
      if (now >= end) break;
    }
    sender.Join();
    if (!failure.empty()) return Error(ErrorCode::kDeadlineExceeded, failure);
    result.seconds = Seconds(now - start);
    return result;
  } catch (const zmq::error_t& e) {
    return Error(ErrorCode::kInternal, std::string("zmq: ") + e.what());
  }
}

Status MeasureZmqRoundTrip(uint64_t message_bytes, std::chrono::milliseconds duration,
                           LatencyHistogram& histogram) {
  try {
    zmq::context_t server_context(1), client_context(1);
    zmq::socket_t router(server_context, zmq::socket_type::router);
    zmq::socket_t dealer(client_context, zmq::socket_type::dealer);
    for (zmq::socket_t* socket : {&router, &dealer}) socket->set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::rcvtimeo, 200);
    dealer.set(zmq::sockopt::rcvtimeo,
               static_cast<int>(std::chrono::milliseconds(kPeerTimeout).count()));
    router.bind("tcp://127.0.0.1:*");
    dealer.connect(router.get(zmq::sockopt::last_endpoint));

    std::atomic<bool> stop{false};
    JoinOnExit server(stop, [&] {
      zmq::message_t id, body;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!router.recv(id, zmq::recv_flags::none)) continue;
        if (!router.recv(body, zmq::recv_flags::none)) continue;
        router.send(id, zmq::send_flags::sndmore);
        router.send(body, zmq::send_flags::none);  // echo: the same bytes back
      }
    });

    std::vector<std::byte> payload(message_bytes);
    Fill(payload);
    std::string failure;
    zmq::message_t reply;
    auto warm_until = Clock::now() + duration / 10;
    auto end = warm_until + duration;
    while (true) {
      auto begin = Clock::now();
      if (begin >= end) break;
      dealer.send(zmq::buffer(payload.data(), payload.size()), zmq::send_flags::none);
      if (!dealer.recv(reply, zmq::recv_flags::none)) {
        failure = "no echo from the ROUTER peer within 5 s";
        break;
      }
      auto finished = Clock::now();
      if (begin >= warm_until) {
        histogram.Record(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(finished - begin).count()));
      }
    }
    server.Join();
    if (!failure.empty()) return Error(ErrorCode::kDeadlineExceeded, failure);
    return OkStatus();
  } catch (const zmq::error_t& e) {
    return Error(ErrorCode::kInternal, std::string("zmq: ") + e.what());
  }
}

}  // namespace ddsplit::bench
