// HttpServer: the gateway's HTTP/1.1 transport (Boost.Beast's parser on Boost.Asio), with
// keep-alive, pipelining and many concurrent connections. It knows nothing of DDSplit: a handler
// answers each request.
//
// Model. A pool of `threads` threads runs one io_context. Waiting for a request (an idle
// keep-alive connection, or a request head arriving slowly) is asynchronous and costs no thread;
// the head must arrive within read_timeout once its first byte has, and an idle connection is
// closed after idle_timeout. Once a head is parsed, the handler runs on the pool thread that
// parsed it and may block (it makes native client calls); it reads the body and writes its answer
// synchronously on that thread through HttpExchange, where every wait for the socket is bounded
// (read_timeout per stall while reading, write_timeout per stall while writing). So a client that
// sends half a request and stalls holds no thread while in the head, a thread for at most
// read_timeout while in the body, and is then disconnected; other connections are served
// meanwhile by the other threads.
//
// Bodies are never buffered by the transport: ReadBody copies what arrived with the head (at most
// a few KiB) into the caller's buffer and receives the rest straight into it; answers are written
// with one gather write of the head and the caller's body spans (no copy).
//
// Thread-safety: Start and Shutdown from one thread. The handler runs on pool threads, several at
// once; one HttpExchange is used only by the thread running its handler.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/result.h"

namespace ddsplit::gateway {

class GatewayProbe;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port; Start() returns the one bound
  int threads = 16;
  // The longest a request head may take once it has begun, and the longest a request body may
  // stall between two reads.
  std::chrono::milliseconds read_timeout{10000};
  // How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{60000};
  // The longest an answer may stall because the client does not read it.
  std::chrono::milliseconds write_timeout{30000};
  // Beyond this many open connections a new one gets 503 and is closed.
  size_t max_connections = 4096;
  size_t max_header_bytes = 16 * 1024;  // request line and header fields together
};

struct HttpHeader {
  std::string_view name;
  std::string_view value;
};

// The head of an answer. `content_length` is the body size announced (also for HEAD answers,
// which send no body); the transport adds Content-Length (except for 1xx/204/304), Date and,
// when the connection will close, Connection: close.
struct HttpResponseHead {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  uint64_t content_length = 0;
  bool omit_body = false;  // HEAD: announce content_length, send no body
};

// One request and its answer. Created by the server for each parsed head; valid only during the
// handler call.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  virtual std::string_view method() const = 0;
  virtual std::string_view target() const = 0;
  virtual std::span<const HttpHeader> headers() const = 0;
  // The first value of a header (names compare case-insensitively); empty if absent.
  std::string_view Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
  // The declared body length; nullopt when the request has none (no Content-Length).
  virtual std::optional<uint64_t> content_length() const = 0;
  // Transfer-Encoding: chunked (not supported for bodies: the handler answers 411).
  virtual bool chunked() const = 0;
  // Index of the pool thread running the handler, in [0, threads): for per-thread state.
  virtual size_t thread_index() const = 0;
  // When the request head was complete.
  virtual std::chrono::steady_clock::time_point started() const = 0;

  // Reads up to out.size() bytes of the body into `out`; 0 once the whole declared body has been
  // read. The first call answers "100 Continue" if the client expects it. Errors:
  // kDeadlineExceeded (the client stalled for read_timeout), kUnavailable (it closed the
  // connection). Any error makes the connection close after the answer.
  virtual Result<size_t> ReadBody(std::span<std::byte> out) = 0;
  // Reads exactly out.size() bytes of body (fails with kInvalidArgument if fewer remain).
  Status ReadBodyExactly(std::span<std::byte> out);
  virtual uint64_t body_remaining() const = 0;

  // Writes the answer: head, then the body spans in order (their sizes must add up to
  // head.content_length unless omit_body). Once only. Errors: kDeadlineExceeded,
  // kUnavailable; the connection is then closed.
  virtual Status Respond(const HttpResponseHead& head,
                         std::span<const std::span<const std::byte>> body) = 0;
  Status Respond(const HttpResponseHead& head, std::string_view body);
  virtual bool responded() const = 0;
  // The connection closes after this answer (also implied by an unread body).
  virtual void CloseAfterResponse() = 0;
};

// Called for every request; must answer through exchange.Respond (the server answers 500 if it
// does not, or if it throws).
using HttpHandler = std::function<void(HttpExchange& exchange)>;

class HttpServer {
 public:
  // `probe` (may be null) must outlive the server.
  HttpServer(HttpServerOptions options, HttpHandler handler, GatewayProbe* probe);
  ~HttpServer();  // Shutdown(0) if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the threads. Returns the bound port. Errors: kUnavailable when the
  // address cannot be bound, kInvalidArgument for bad options, kInternal if already started.
  Result<int> Start();
  // Stops accepting, closes idle connections, lets requests in progress finish (their answers
  // carry Connection: close) for up to `drain`, then closes everything and joins the threads.
  // Returns the number of connections that were still busy when the drain time ran out.
  size_t Shutdown(std::chrono::milliseconds drain);
  // Connections open now.
  size_t connections() const;
  int threads() const;

  struct Impl;  // defined in the .cpp (its connections need it)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddsplit::gateway
