// Part of the HTTP library comparison (run.sh in this folder); not built with the project.
// Hello server on Boost.Beast: async accept and header reads on an io_context run by N threads;
// PUT bodies are read straight from the socket into one buffer; GET /big is written with one
// gather write. TCP_NODELAY on.
#include <utility>
#include <optional>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>
namespace beast = boost::beast; namespace http = beast::http; namespace asio = boost::asio;
using tcp = asio::ip::tcp;
static std::string big(1 << 20, 'x');
struct Session : std::enable_shared_from_this<Session> {
  beast::tcp_stream stream; beast::flat_buffer buffer{65536};
  std::optional<http::request_parser<http::empty_body>> parser;
  std::string head; std::vector<char> body;
  explicit Session(tcp::socket s) : stream(std::move(s)) { stream.socket().set_option(tcp::no_delay(true)); }
  void Read() {
    parser.emplace();
    http::async_read_header(stream, buffer, *parser, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) { self->stream.socket().shutdown(tcp::socket::shutdown_send, ec); return; }
      self->OnHeader();
    });
  }
  void OnHeader() {
    auto& req = parser->get();
    size_t len = parser->content_length().value_or(0);
    if (len > 0) {
      body.resize(len);
      size_t have = std::min(len, buffer.size());
      asio::buffer_copy(asio::buffer(body.data(), have), buffer.data());
      buffer.consume(have);
      asio::async_read(stream, asio::buffer(body.data() + have, len - have),
                       [self = shared_from_this()](beast::error_code ec, size_t) { if (!ec) self->Respond(); });
      return;
    }
    Respond();
  }
  void Respond() {
    auto target = parser->get().target();
    std::vector<asio::const_buffer> out;
    if (target == "/big") {
      head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n";
      out = {asio::buffer(head), asio::buffer(big)};
    } else {
      std::string text = target == "/small" ? std::string("Hello, world!") : std::to_string(body.size());
      head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text;
      out = {asio::buffer(head)};
    }
    asio::async_write(stream, out, [self = shared_from_this()](beast::error_code ec, size_t) { if (!ec) self->Read(); });
  }
};
void Accept(tcp::acceptor& a, asio::io_context& io) {
  a.async_accept(asio::make_strand(io), [&a, &io](beast::error_code ec, tcp::socket s) {
    if (!ec) std::make_shared<Session>(std::move(s))->Read();
    Accept(a, io);
  });
}
int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  asio::io_context io(threads);
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  printf("%d\n", acc.local_endpoint().port()); fflush(stdout);
  Accept(acc, io);
  std::vector<std::thread> ts;
  for (int i = 1; i < threads; ++i) ts.emplace_back([&] { io.run(); });
  io.run();
}
