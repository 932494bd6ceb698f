#include "common/transport/transport.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <new>
#include <thread>

namespace ddsplit::transport {

Result<zmq::socket_t> MakeSocket(zmq::context_t& context, zmq::socket_type type,
                                 const SocketOptions& options) {
  try {
    zmq::socket_t socket(context, type);
    socket.set(zmq::sockopt::linger, options.linger_ms);
    socket.set(zmq::sockopt::sndhwm, options.send_hwm);
    socket.set(zmq::sockopt::rcvhwm, options.receive_hwm);
    socket.set(zmq::sockopt::reconnect_ivl, options.reconnect_ivl_ms);
    socket.set(zmq::sockopt::reconnect_ivl_max, options.reconnect_ivl_max_ms);
    socket.set(zmq::sockopt::heartbeat_ivl, options.heartbeat_ivl_ms);
    socket.set(zmq::sockopt::heartbeat_timeout, options.heartbeat_timeout_ms);
    if (options.max_message_bytes > 0) {
      socket.set(zmq::sockopt::maxmsgsize, options.max_message_bytes);
    }
    if (options.immediate) socket.set(zmq::sockopt::immediate, true);
    if (options.router_mandatory) socket.set(zmq::sockopt::router_mandatory, true);
    return socket;
  } catch (const zmq::error_t& e) {
    return Error(ErrorCode::kInternal, std::string("socket set-up failed: ") + e.what());
  }
}

Result<std::string> Bind(zmq::socket_t& socket, const std::string& endpoint) {
  std::string actual = endpoint;
  if (actual.size() > 2 && actual.compare(actual.size() - 2, 2, ":0") == 0) {
    actual.replace(actual.size() - 1, 1, "*");
  }
  const bool any_port = actual.ends_with(":*");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    try {
      socket.bind(actual);
      return socket.get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      if (e.num() != EADDRINUSE || any_port || std::chrono::steady_clock::now() >= give_up) {
        return Error(ErrorCode::kUnavailable, "cannot bind " + endpoint + ": " + e.what());
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::optional<int> BindPort(std::string_view endpoint) {
  if (endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://")) return -1;
  constexpr std::string_view kTcp = "tcp://";
  auto colon = endpoint.rfind(':');
  if (!endpoint.starts_with(kTcp) || colon == std::string_view::npos || colon <= kTcp.size()) {
    return std::nullopt;
  }
  std::string_view digits = endpoint.substr(colon + 1);
  if (digits == "*") return 0;
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  int port = std::stoi(std::string(digits));
  if (port > 65535) return std::nullopt;
  return port;
}

Result<int> CheckBindPort(std::string_view flag, std::string_view endpoint) {
  if (auto port = BindPort(endpoint)) return *port;
  return Error(ErrorCode::kInvalidArgument,
               "--" + std::string(flag) +
                   " must be tcp://HOST:PORT, ipc://PATH or inproc://NAME, got '" +
                   std::string(endpoint) + "'");
}

Status Connect(zmq::socket_t& socket, const std::string& endpoint) {
  try {
    socket.connect(endpoint);
    return OkStatus();
  } catch (const zmq::error_t& e) {
    return Error(ErrorCode::kInvalidArgument, "cannot connect to " + endpoint + ": " + e.what());
  }
}

std::string AdvertisedEndpoint(const std::string& bound, const std::string& host) {
  if (host.empty()) return bound;
  auto scheme_end = bound.find("://");
  auto colon = bound.rfind(':');
  if (scheme_end == std::string::npos || colon == std::string::npos || colon < scheme_end + 3) {
    return bound;
  }
  return bound.substr(0, scheme_end + 3) + host + bound.substr(colon);
}

Result<bool> ReceiveMultipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames,
                              size_t max_frames, bool& overflow) {
  frames.clear();
  overflow = false;
  try {
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) return false;
    while (true) {
      bool more = frame.more();
      if (frames.size() < max_frames) {
        frames.push_back(std::move(frame));
      } else {
        overflow = true;
      }
      if (!more) break;
      // The remaining frames of a multipart message are already queued: this never waits.
      frame = zmq::message_t();
      (void)socket.recv(frame, zmq::recv_flags::none);
    }
    return true;
  } catch (const zmq::error_t& e) {
    return Error(ErrorCode::kInternal, std::string("receive failed: ") + e.what());
  }
}

Result<SendOutcome> SendMultipart(zmq::socket_t& socket, std::span<zmq::message_t> frames) {
  try {
    for (size_t i = 0; i < frames.size(); ++i) {
      auto flags = zmq::send_flags::dontwait;
      if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
      if (!socket.send(frames[i], flags)) {
        // ZeroMQ accepts a multipart message atomically at its first frame.
        return SendOutcome::kWouldBlock;
      }
    }
    return SendOutcome::kSent;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return SendOutcome::kUnroutable;
    return Error(ErrorCode::kInternal, std::string("send failed: ") + e.what());
  }
}

zmq::message_t BorrowedMessage(std::span<const std::byte> bytes,
                               void (*release)(void* data, void* hint), void* hint) {
  return zmq::message_t(const_cast<std::byte*>(bytes.data()), bytes.size(), release, hint);
}

namespace {

// Idle SharedFrame objects. Never destroyed: ZeroMQ may release slices during static
// destruction. Bounded so a burst does not pin memory for ever.
class SharedFrameFreeList {
 public:
  static constexpr size_t kMaxIdle = 4096;
  static SharedFrameFreeList& Get() {
    static auto* list = new SharedFrameFreeList();
    return *list;
  }
  void* Take() {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) return nullptr;
    void* object = idle_.back();
    idle_.pop_back();
    return object;
  }
  // False when the list is full: the caller frees the object.
  bool Put(void* object) {
    std::lock_guard lock(mutex_);
    if (idle_.size() >= kMaxIdle) return false;
    idle_.push_back(object);
    return true;
  }

 private:
  SharedFrameFreeList() { idle_.reserve(256); }
  std::mutex mutex_;
  std::vector<void*> idle_;
};

}  // namespace

SharedFrame* SharedFrame::Adopt(zmq::message_t&& message) {
  void* memory = SharedFrameFreeList::Get().Take();
  auto* frame = memory != nullptr ? new (memory) SharedFrame() : new SharedFrame();
  frame->message_ = std::move(message);
  return frame;
}

std::span<const std::byte> SharedFrame::bytes() const { return Bytes(message_); }

zmq::message_t SharedFrame::Slice(size_t offset, size_t length) {
  references_.fetch_add(1, std::memory_order_relaxed);
  return BorrowedMessage(bytes().subspan(offset, length), &SharedFrame::ReleaseSlice, this);
}

void SharedFrame::ReleaseSlice(void* /*data*/, void* hint) {
  static_cast<SharedFrame*>(hint)->Release();
}

void SharedFrame::Release() {
  if (references_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // Last reference: free the message now, keep the object's memory for the next Adopt().
  this->~SharedFrame();
  if (!SharedFrameFreeList::Get().Put(this)) ::operator delete(this);
}

long PollTimeoutMs(SteadyTime now, SteadyTime deadline, std::chrono::milliseconds cap) {
  if (deadline <= now) return 0;
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
              std::chrono::milliseconds(1);
  return static_cast<long>(std::min(wait, cap).count());
}

}  // namespace ddsplit::transport
