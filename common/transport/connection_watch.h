// ConnectionWatch: whether a connecting socket (one peer, e.g. an immediate PUSH to one store)
// currently has a connection that finished its ZeroMQ handshake — the moment an immediate
// socket starts accepting messages. Built on the socket's monitor: ZeroMQ reports handshakes
// and disconnections on an inproc PAIR socket, which the owner polls (events()) and reads
// with Update(). Use from the thread that owns the watched socket.
#pragma once

#include <memory>
#include <utility>

#include <zmq.hpp>

#include "common/base/result.h"

namespace ddsplit::transport {

class ConnectionWatch {
 public:
  // Starts monitoring `watched`. Create before connecting so the first handshake is not missed.
  // Closing the watched socket ends the monitoring; the watch may outlive it. kInternal when
  // ZeroMQ refuses the monitor.
  static Result<std::unique_ptr<ConnectionWatch>> Create(zmq::context_t& context, zmq::socket_t& watched);
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  // Readable when events are waiting; poll it with the owner's other sockets.
  zmq::socket_t& events() { return events_; }
  // Reads every waiting event without blocking. Returns whether connected() changed.
  bool Update();
  bool connected() const { return connections_ > 0; }

 private:
  explicit ConnectionWatch(zmq::socket_t&& events) : events_(std::move(events)) {}
  zmq::socket_t events_;
  int connections_ = 0;
};

}  // namespace ddsplit::transport
