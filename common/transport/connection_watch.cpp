#include "common/transport/connection_watch.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>

namespace ddsplit::transport {

namespace {
constexpr int kWatchedEvents = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED;
}

Result<std::unique_ptr<ConnectionWatch>> ConnectionWatch::Create(zmq::context_t& context,
                                                                 zmq::socket_t& watched) {
  static std::atomic<uint64_t> next_id{0};
  std::string address = "inproc://ddsplit-connection-watch-" + std::to_string(next_id++);
  if (zmq_socket_monitor(watched.handle(), address.c_str(), kWatchedEvents) != 0) {
    return Error(ErrorCode::kInternal,
                 std::string("cannot monitor socket: ") + zmq_strerror(zmq_errno()));
  }
  try {
    zmq::socket_t events(context, zmq::socket_type::pair);
    events.set(zmq::sockopt::linger, 0);
    events.connect(address);
    return std::unique_ptr<ConnectionWatch>(new ConnectionWatch(std::move(events)));
  } catch (const zmq::error_t& e) {
    zmq_socket_monitor(watched.handle(), nullptr, 0);
    return Error(ErrorCode::kInternal, std::string("cannot read socket monitor: ") + e.what());
  }
}

bool ConnectionWatch::Update() {
  bool was_connected = connected();
  try {
    while (true) {
      // Each event is two frames: 16-bit event id + 32-bit value, then the peer's endpoint.
      zmq::message_t header;
      if (!events_.recv(header, zmq::recv_flags::dontwait)) break;
      zmq::message_t endpoint;
      if (header.more()) (void)events_.recv(endpoint, zmq::recv_flags::none);
      if (header.size() < sizeof(uint16_t)) continue;
      uint16_t event = 0;
      std::memcpy(&event, header.data(), sizeof event);
      if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        ++connections_;
      } else if (event == ZMQ_EVENT_DISCONNECTED && connections_ > 0) {
        --connections_;
      }
    }
  } catch (const zmq::error_t&) {
    // The monitor went away (context shutting down): keep the last known state.
  }
  return connected() != was_connected;
}

}  // namespace ddsplit::transport
