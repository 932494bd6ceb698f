// transport: the ZeroMQ layer — socket set-up with explicit limits, whole multipart receive,
// zero-copy sends of borrowed and pooled bytes, and the deadline-aware poll loop. ZeroMQ
// exceptions stop here and become Errors. Sockets are not thread-safe: use each from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/base/clock.h"
#include "common/base/result.h"

namespace ddsplit::transport {

struct SocketOptions {
  int linger_ms = 0;          // pending messages are dropped at close; every wait has a deadline
  int send_hwm = 1000;
  int receive_hwm = 1000;
  bool immediate = false;     // queue only to completed connections (a dead peer fails fast)
  bool router_mandatory = false;  // ROUTER: fail a send to an unknown peer instead of dropping it
  int64_t max_message_bytes = -1; // per frame; larger frames close the connection
  int reconnect_ivl_ms = 100;
  int reconnect_ivl_max_ms = 2000;
  int heartbeat_ivl_ms = 1000;    // detect dead peers on idle connections
  int heartbeat_timeout_ms = 3000;
};

// Creates a socket of `type` with `options` applied. ZeroMQ errors become kInternal.
Result<zmq::socket_t> MakeSocket(zmq::context_t& context, zmq::socket_type type,
                                 const SocketOptions& options);

// Binds and returns the endpoint actually bound: "tcp://host:0" and "tcp://host:*" pick a
// free port. A given port that is in use is tried again for up to 5 s (a process restarted on
// its port can find it still held: a peer reconnecting to it meanwhile may even have connected
// a socket to itself there, until ZeroMQ drops that connection). kUnavailable when the address
// cannot be bound.
Result<std::string> Bind(zmq::socket_t& socket, const std::string& endpoint);
Status Connect(zmq::socket_t& socket, const std::string& endpoint);

// The TCP port of a bind endpoint "tcp://HOST:PORT" (0 for "*" or 0: any free port), -1 for an
// endpoint without a port (ipc://, inproc://), nullopt when malformed. Parses only: services
// use it to check their configuration (--check-config) before binding anything.
std::optional<int> BindPort(std::string_view endpoint);
// BindPort for the value of flag --`flag`: kInvalidArgument naming the flag when malformed.
Result<int> CheckBindPort(std::string_view flag, std::string_view endpoint);

// Replaces the host of a bound tcp endpoint ("tcp://0.0.0.0:5000" + "10.0.0.7") so peers can
// reach it; an empty host leaves the endpoint unchanged.
std::string AdvertisedEndpoint(const std::string& bound, const std::string& host);

// Receives one whole multipart message without waiting. Returns false when none is waiting.
// At most `max_frames` frames are kept; the rest are read and dropped and `overflow` is set.
// `frames` is cleared first and its capacity reused.
Result<bool> ReceiveMultipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames,
                              size_t max_frames, bool& overflow);

enum class SendOutcome { kSent, kWouldBlock, kUnroutable };

// Sends `frames` as one multipart message without waiting. Frames are moved from on kSent and
// left intact otherwise. kWouldBlock: the high-water mark is reached or (with immediate) the
// peer is not connected. kUnroutable: a ROUTER_MANDATORY socket does not know the peer.
Result<SendOutcome> SendMultipart(zmq::socket_t& socket, std::span<zmq::message_t> frames);

// A message whose bytes belong to someone else. ZeroMQ calls `release(data, hint)` — from its
// own I/O thread — once it no longer needs them; until then the bytes must stay valid.
zmq::message_t BorrowedMessage(std::span<const std::byte> bytes,
                               void (*release)(void* data, void* hint), void* hint);

// A message holding a slice of a received message without copying: the received message is
// kept alive (reference-counted) until every slice taken from it has been released.
// SharedFrame objects are recycled through a process-wide free list (bounded), so adopting a
// message does not allocate on the hot path. Thread-safe: slices may be released on ZeroMQ's
// I/O threads while another thread adopts.
class SharedFrame {
 public:
  // Takes ownership of `message`; the returned handle holds one reference until Release().
  static SharedFrame* Adopt(zmq::message_t&& message);
  std::span<const std::byte> bytes() const;
  zmq::message_t Slice(size_t offset, size_t length);
  // Drops the reference held by the creator.
  void Release();

 private:
  SharedFrame() = default;
  static void ReleaseSlice(void* data, void* hint);
  zmq::message_t message_;
  std::atomic<int> references_{1};
};

// Milliseconds to wait in poll so as not to overshoot `deadline` (0 if it has passed), capped
// at `cap` so periodic work still runs.
long PollTimeoutMs(SteadyTime now, SteadyTime deadline, std::chrono::milliseconds cap);

// View of a frame's bytes.
inline std::span<const std::byte> Bytes(const zmq::message_t& message) {
  return {static_cast<const std::byte*>(message.data()), message.size()};
}

}  // namespace ddsplit::transport
