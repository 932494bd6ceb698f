// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility> (GCC 12, C++20).
#include "services/gateway/http_server.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <ctime>
#include <future>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/metrics/metrics.h"
#include "services/gateway/gateway_probe.h"
#include "services/gateway/http_api.h"

namespace ddsplit::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

thread_local size_t t_thread_index = 0;

// Bytes asked of the socket per read while waiting for a request head.
constexpr size_t kReadChunk = 16 * 1024;
// After an answer that left a request body unread, the rest is read and dropped for at most this
// long / this much before closing, so the client sees the answer instead of a reset.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kMaxLingerBytes = size_t{4} << 20;
// Pause after a failed accept (for example out of file descriptors) before trying again.
constexpr auto kAcceptRetry = std::chrono::milliseconds(50);
// Most iovecs a single sendmsg takes on Linux.
constexpr size_t kMaxIov = IOV_MAX;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT_MAX));
}

// Waits until `fd` is ready for `events` or `timeout` has passed with no readiness.
Status WaitFd(int fd, short events, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    pollfd item{fd, events, 0};
    int ready = ::poll(&item, 1, RemainingMs(deadline));
    if (ready > 0) return OkStatus();  // readable, writable, or an error the next call reports
    if (ready == 0) {
      return Error(ErrorCode::kDeadlineExceeded,
                   "the client stalled for " + std::to_string(timeout.count()) + " ms");
    }
    if (errno != EINTR) return Error(ErrorCode::kUnavailable, "poll failed");
  }
}

// Writes every byte of `iov` (modified as it goes), waiting up to `stall` each time the socket
// buffer is full.
Status WriteAll(int fd, std::vector<iovec>& iov, std::chrono::milliseconds stall) {
  size_t first = 0;
  while (first < iov.size()) {
    msghdr message{};
    message.msg_iov = iov.data() + first;
    message.msg_iovlen = std::min(iov.size() - first, kMaxIov);
    ssize_t sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        DDSPLIT_RETURN_IF_ERROR(WaitFd(fd, POLLOUT, stall));
        continue;
      }
      return Error(ErrorCode::kUnavailable, "the client closed the connection");
    }
    auto left = static_cast<size_t>(sent);
    while (first < iov.size() && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return OkStatus();
}

// The Date header value, formatted once per second per thread.
const std::string& HttpDate() {
  thread_local std::time_t cached_second = 0;
  thread_local std::string cached;
  std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[64];
    size_t n = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    cached.assign(text, n);
    cached_second = now;
  }
  return cached;
}

// Header values come from handlers; a CR or LF would split the answer.
void AppendHeaderValue(std::string& out, std::string_view value) {
  for (char c : value) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

std::string StatusLine(int status) {
  std::string line = "HTTP/1.1 " + std::to_string(status) + " ";
  line += ReasonPhrase(status);
  line += "\r\n";
  return line;
}

// A complete short answer for transport-level refusals (bad head, timeout, over capacity).
std::string CannedAnswer(int status, std::string_view code, std::string_view detail) {
  std::string body = ProblemJson(status, code, detail, "", "");
  std::string out = StatusLine(status);
  out += "Content-Type: ";
  out += kProblemContentType;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (status == 503) out += "Retry-After: 1\r\n";
  out += "Date: " + HttpDate() + "\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

// Best effort, never blocks: the answer fits in an empty socket buffer.
void SendCanned(int fd, const std::string& answer) {
  (void)!::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

// ------------------------------------------------------------------------------ exchange helpers

std::string_view HttpExchange::Header(std::string_view name) const {
  for (const HttpHeader& header : headers()) {
    if (EqualsIgnoreCase(header.name, name)) return header.value;
  }
  return {};
}

bool HttpExchange::HasHeader(std::string_view name) const {
  for (const HttpHeader& header : headers()) {
    if (EqualsIgnoreCase(header.name, name)) return true;
  }
  return false;
}

Status HttpExchange::ReadBodyExactly(std::span<std::byte> out) {
  if (out.size() > body_remaining()) {
    return Error(ErrorCode::kInvalidArgument, "the request body is shorter than asked for");
  }
  size_t done = 0;
  while (done < out.size()) {
    auto got = ReadBody(out.subspan(done));
    if (!got.ok()) return std::move(got).error();
    if (*got == 0) return Error(ErrorCode::kUnavailable, "the request body ended early");
    done += *got;
  }
  return OkStatus();
}

Status HttpExchange::Respond(const HttpResponseHead& head, std::string_view body) {
  std::span<const std::byte> part = std::as_bytes(std::span(body.data(), body.size()));
  return Respond(head, std::span(&part, 1));
}

// ------------------------------------------------------------------------------ server state

struct Session;

struct HttpServer::Impl {
  Impl(HttpServerOptions options_in, HttpHandler handler_in, GatewayProbe* probe_in)
      : options(std::move(options_in)), handler(std::move(handler_in)), probe(probe_in) {}

  HttpServerOptions options;
  HttpHandler handler;
  GatewayProbe* probe;
  std::atomic<bool> draining{false};
  // Declared before io: pending handlers hold sessions, whose destructors use these when io is
  // destroyed.
  mutable std::mutex mutex;
  std::condition_variable sessions_changed;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;

  asio::io_context io;
  std::optional<tcp::acceptor> acceptor;  // used on its own strand only
  std::optional<asio::steady_timer> accept_retry;
  std::vector<std::thread> threads;
  bool started = false;
  bool stopped = false;

  void Accept();
  void OnAccepted(tcp::socket socket);
};

// One connection. Lives as long as an asynchronous operation or a running handler holds it.
// Everything it does runs on its strand, one step at a time.
struct Session : std::enable_shared_from_this<Session> {
  Session(HttpServer::Impl& server_in, tcp::socket socket)
      : server(server_in),
        stream(std::move(socket)),
        buffer(server_in.options.max_header_bytes + 4 * kReadChunk) {}

  ~Session() {
    if (server.probe != nullptr) server.probe->ConnectionEnded(end);
    {
      std::lock_guard lock(server.mutex);
      server.sessions.erase(this);
    }
    server.sessions_changed.notify_all();
  }

  int fd() { return stream.socket().native_handle(); }

  void Begin() {
    beast::error_code ec;
    stream.socket().set_option(tcp::no_delay(true), ec);
    stream.socket().non_blocking(true, ec);
    NextRequest();
  }

  void NextRequest() {
    if (server.draining.load()) return Close();
    if (buffer.size() == 0) {
      // Idle: wait for the first byte of the next request for up to idle_timeout.
      buffer.shrink_to_fit();
      stream.expires_after(server.options.idle_timeout);
      stream.async_read_some(buffer.prepare(kReadChunk),
                             [self = shared_from_this()](beast::error_code ec, size_t n) {
                               self->buffer.commit(n);
                               if (ec) return self->Close();
                               self->ReadHead();
                             });
      return;
    }
    ReadHead();
  }

  void ReadHead() {
    parser.emplace();
    parser->header_limit(static_cast<uint32_t>(server.options.max_header_bytes));
    // Body sizes are the handler's business (it answers 413 before reading); the parser never
    // reads a body here. (Not boost::none: Boost 1.74 compares the length with the optional
    // limit, and any length is greater than an empty optional.)
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    stream.expires_after(server.options.read_timeout);
    http::async_read_header(
        stream, buffer, *parser,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec);
  void Linger();
  void Close() {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
  }

  HttpServer::Impl& server;
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::optional<http::request_parser<http::empty_body>> parser;
  ConnectionEnd end = ConnectionEnd::kClosed;
  size_t lingered = 0;
};

// The exchange of one parsed request on `session`, used on the handler's thread.
class SessionExchange final : public HttpExchange {
 public:
  explicit SessionExchange(Session& session)
      : session_(session), request_(session.parser->get()), started_(Clock::now()) {
    for (const auto& field : request_) {
      headers_.push_back({std::string_view(field.name_string().data(), field.name_string().size()),
                          std::string_view(field.value().data(), field.value().size())});
    }
    auto length = session.parser->content_length();
    if (length) {
      content_length_ = *length;
      remaining_ = *length;
    }
    expects_continue_ =
        request_.version() >= 11 && EqualsIgnoreCase(Header("Expect"), "100-continue");
  }

  using HttpExchange::Respond;

  std::string_view method() const override {
    auto text = request_.method_string();
    return {text.data(), text.size()};
  }
  std::string_view target() const override {
    auto text = request_.target();
    return {text.data(), text.size()};
  }
  std::span<const HttpHeader> headers() const override { return headers_; }
  std::optional<uint64_t> content_length() const override { return content_length_; }
  bool chunked() const override { return session_.parser->chunked(); }
  size_t thread_index() const override { return t_thread_index; }
  Clock::time_point started() const override { return started_; }
  uint64_t body_remaining() const override { return remaining_; }
  bool responded() const override { return responded_; }
  void CloseAfterResponse() override { close_ = true; }
  bool failed() const { return failed_; }
  bool abandoned() const { return abandoned_; }
  bool close_requested() const { return close_; }

  Result<size_t> ReadBody(std::span<std::byte> out) override {
    if (remaining_ == 0 || out.empty()) return size_t{0};
    if (failed_ || abandoned_) return Error(ErrorCode::kUnavailable, "the connection has failed");
    if (expects_continue_ && !continue_sent_) {
      continue_sent_ = true;
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      std::vector<iovec> iov{{const_cast<char*>(kContinue), sizeof kContinue - 1}};
      if (auto sent = WriteAll(session_.fd(), iov, session_.server.options.write_timeout);
          !sent.ok()) {
        failed_ = true;
        return std::move(sent).error();
      }
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), remaining_));
    // Bytes that arrived with the head are in the session's buffer: the one copy of them.
    if (session_.buffer.size() > 0) {
      size_t n = asio::buffer_copy(asio::buffer(out.data(), want), session_.buffer.data());
      session_.buffer.consume(n);
      remaining_ -= n;
      metrics::CountPayloadCopy(n);
      return n;
    }
    for (;;) {
      ssize_t got = ::recv(session_.fd(), out.data(), want, 0);
      if (got > 0) {
        remaining_ -= static_cast<uint64_t>(got);
        return static_cast<size_t>(got);
      }
      if (got == 0) {
        failed_ = true;
        return Error(ErrorCode::kUnavailable, "the client closed the connection in the body");
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        failed_ = true;
        return Error(ErrorCode::kUnavailable, "the connection failed while reading the body");
      }
      if (auto ready = WaitFd(session_.fd(), POLLIN, session_.server.options.read_timeout);
          !ready.ok()) {
        if (ready.error().code() == ErrorCode::kDeadlineExceeded) {
          // The client stalled: it may still read an answer, then the connection closes
          // without waiting for the rest of the body.
          session_.end = ConnectionEnd::kReadTimeout;
          abandoned_ = true;
          close_ = true;
        } else {
          failed_ = true;
        }
        return std::move(ready).error();
      }
    }
  }

  Status Respond(const HttpResponseHead& head,
                 std::span<const std::span<const std::byte>> body) override {
    if (responded_) return Error(ErrorCode::kInternal, "answered twice");
    responded_ = true;
    if (failed_) return Error(ErrorCode::kUnavailable, "the connection has failed");
    // An unread body cannot be skipped cheaply on a kept connection: close after the answer.
    if (remaining_ > 0 || session_.server.draining.load() || !session_.parser->keep_alive()) {
      close_ = true;
    }
    std::string text = StatusLine(head.status);
    for (const auto& [name, value] : head.headers) {
      text += name;
      text += ": ";
      AppendHeaderValue(text, value);
      text += "\r\n";
    }
    const bool bodiless = head.status < 200 || head.status == 204 || head.status == 304;
    if (!bodiless) text += "Content-Length: " + std::to_string(head.content_length) + "\r\n";
    text += "Date: ";
    text += HttpDate();
    text += "\r\n";
    if (close_) {
      text += "Connection: close\r\n";
    } else if (request_.version() < 11) {
      text += "Connection: keep-alive\r\n";
    }
    text += "\r\n";
    std::vector<iovec> iov;
    iov.reserve(body.size() + 1);
    iov.push_back({text.data(), text.size()});
    if (!bodiless && !head.omit_body) {
      for (const auto& part : body) {
        if (!part.empty()) {
          iov.push_back({const_cast<std::byte*>(part.data()), part.size()});
          response_body_bytes_ += part.size();
        }
      }
    }
    Status written = WriteAll(session_.fd(), iov, session_.server.options.write_timeout);
    if (!written.ok()) {
      failed_ = true;
      close_ = true;
    }
    return written;
  }

 private:
  Session& session_;
  const http::request<http::empty_body>& request_;
  Clock::time_point started_;
  std::vector<HttpHeader> headers_;
  std::optional<uint64_t> content_length_;
  uint64_t remaining_ = 0;
  bool expects_continue_ = false;
  bool continue_sent_ = false;
  bool responded_ = false;
  bool failed_ = false;
  bool abandoned_ = false;  // the body stalled: close without lingering
  bool close_ = false;
  uint64_t response_body_bytes_ = 0;
};

void Session::OnHead(beast::error_code ec) {
  stream.expires_never();
  if (ec) {
    if (ec == beast::error::timeout) {
      // tcp_stream has already closed the socket: no 408 can be sent.
      end = ConnectionEnd::kReadTimeout;
    } else if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      end = ConnectionEnd::kBadRequest;
      SendCanned(fd(),
                 CannedAnswer(431, "header_too_large",
                              "the request line and headers exceed " +
                                  std::to_string(server.options.max_header_bytes) + " bytes"));
    } else if (ec != http::error::end_of_stream && ec != asio::error::eof &&
               ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
               ec != asio::error::bad_descriptor) {
      end = ConnectionEnd::kBadRequest;
      SendCanned(fd(), CannedAnswer(400, "bad_request", "malformed HTTP request: " + ec.message()));
    }
    return Close();
  }
  SessionExchange exchange(*this);
  try {
    server.handler(exchange);
  } catch (const std::exception& e) {
    spdlog::error("gateway: handler threw: {}", e.what());
  } catch (...) {
    spdlog::error("gateway: handler threw an unknown exception");
  }
  if (!exchange.responded()) {
    exchange.CloseAfterResponse();
    std::string body = ProblemJson(500, "internal", "the request was not answered", "", "");
    HttpResponseHead head;
    head.status = 500;
    head.headers.emplace_back("Content-Type", std::string(kProblemContentType));
    head.content_length = body.size();
    (void)exchange.Respond(head, body);
  }
  if (exchange.failed()) return Close();
  if (exchange.close_requested()) {
    if (exchange.body_remaining() > 0 && !exchange.abandoned()) return Linger();
    return Close();
  }
  NextRequest();
}

void Session::Linger() {
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.expires_after(kLingerTime);
  buffer.clear();
  stream.async_read_some(buffer.prepare(kReadChunk),
                         [self = shared_from_this()](beast::error_code ec, size_t n) {
                           self->lingered += n;
                           if (ec || self->lingered >= kMaxLingerBytes) return self->Close();
                           self->Linger();
                         });
}

void HttpServer::Impl::Accept() {
  acceptor->async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      spdlog::warn("gateway: accept failed: {}", ec.message());
      accept_retry->expires_after(kAcceptRetry);
      accept_retry->async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && acceptor->is_open()) Accept();
      });
      return;
    }
    OnAccepted(std::move(socket));
    Accept();
  });
}

void HttpServer::Impl::OnAccepted(tcp::socket socket) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mutex);
    if (sessions.size() >= options.max_connections) {
      if (probe != nullptr) probe->ConnectionEnded(ConnectionEnd::kRejected);
      SendCanned(socket.native_handle(),
                 CannedAnswer(503, "too_many_connections",
                              "the gateway has " + std::to_string(sessions.size()) +
                                  " connections open; retry later"));
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
    session = std::make_shared<Session>(*this, std::move(socket));
    sessions.emplace(session.get(), session);
  }
  if (probe != nullptr) probe->ConnectionOpened();
  // Start on the session's strand.
  asio::dispatch(session->stream.get_executor(), [session] { session->Begin(); });
}

// ------------------------------------------------------------------------------ HttpServer

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler, GatewayProbe* probe)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), probe)) {}

HttpServer::~HttpServer() { Shutdown(std::chrono::milliseconds(0)); }

Result<int> HttpServer::Start() {
  Impl& impl = *impl_;
  if (impl.started) return Error(ErrorCode::kInternal, "HTTP server already started");
  const HttpServerOptions& o = impl.options;
  if (o.threads < 1 || o.threads > 1024) {
    return Error(ErrorCode::kInvalidArgument, "threads must be between 1 and 1024");
  }
  if (o.read_timeout.count() <= 0 || o.idle_timeout.count() <= 0 || o.write_timeout.count() <= 0) {
    return Error(ErrorCode::kInvalidArgument, "timeouts must be positive");
  }
  if (o.port < 0 || o.port > 65535) return Error(ErrorCode::kInvalidArgument, "bad port");
  if (o.max_connections < 1)
    return Error(ErrorCode::kInvalidArgument, "max connections must be >= 1");
  beast::error_code ec;
  tcp::resolver resolver(impl.io);
  auto endpoints = resolver.resolve(o.host, std::to_string(o.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return Error(ErrorCode::kUnavailable,
                 "cannot resolve HTTP host '" + o.host + "': " + ec.message());
  }
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  impl.acceptor.emplace(asio::make_strand(impl.io));
  impl.accept_retry.emplace(impl.acceptor->get_executor());
  impl.acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor->bind(endpoint, ec);
  if (!ec) impl.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    impl.acceptor.reset();
    return Error(ErrorCode::kUnavailable,
                 "cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " + ec.message());
  }
  const int port = impl.acceptor->local_endpoint().port();
  impl.started = true;
  impl.Accept();
  for (int i = 0; i < o.threads; ++i) {
    impl.threads.emplace_back([&impl, i] {
      t_thread_index = static_cast<size_t>(i);
      for (;;) {
        try {
          impl.io.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("gateway: HTTP thread {}: {}", i, e.what());
        }
      }
    });
  }
  return port;
}

size_t HttpServer::Shutdown(std::chrono::milliseconds drain) {
  Impl& impl = *impl_;
  if (!impl.started || impl.stopped) return 0;
  impl.stopped = true;
  impl.draining.store(true);
  // Stop accepting, on the acceptor's strand.
  std::promise<void> closed;
  asio::post(impl.acceptor->get_executor(), [&impl, &closed] {
    beast::error_code ignored;
    impl.acceptor->close(ignored);
    impl.accept_retry->cancel();
    closed.set_value();
  });
  closed.get_future().wait();
  // Close every connection that waits for a request; busy ones close after their answer.
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(impl.mutex);
    for (auto& [raw, weak] : impl.sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  for (auto& session : live) {
    asio::post(session->stream.get_executor(), [session] { session->Close(); });
  }
  live.clear();
  size_t left = 0;
  {
    std::unique_lock lock(impl.mutex);
    impl.sessions_changed.wait_for(lock, drain, [&impl] { return impl.sessions.empty(); });
    left = impl.sessions.size();
  }
  impl.io.stop();
  for (auto& thread : impl.threads) thread.join();
  impl.threads.clear();
  return left;
}

size_t HttpServer::connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->sessions.size();
}

int HttpServer::threads() const { return impl_->options.threads; }

}  // namespace ddsplit::gateway
