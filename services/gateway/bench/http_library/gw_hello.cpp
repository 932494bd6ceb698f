// Part of the HTTP library comparison (run.sh in this folder); not built with the project.
// Hello server on the gateway's own transport (HttpServer): same three routes as the others.
#include <cstdio>
#include <string>
#include <unistd.h>
#include "services/gateway/http_server.h"
using namespace ddsplit::gateway;
static std::string big(1 << 20, 'x');
int main(int argc, char** argv) {
  HttpServerOptions options;
  options.threads = argc > 1 ? atoi(argv[1]) : 16;
  HttpServer server(options, [](HttpExchange& ex) {
    HttpResponseHead head;
    if (ex.target() == "/big") {
      head.content_length = big.size();
      (void)ex.Respond(head, big);
      return;
    }
    std::string text = "Hello, world!";
    if (ex.method() == "PUT") {
      static thread_local std::vector<std::byte> buffer;
      buffer.resize(ex.body_remaining());
      (void)ex.ReadBodyExactly(buffer);
      text = std::to_string(buffer.size());
    }
    head.headers.emplace_back("Content-Type", "text/plain");
    head.content_length = text.size();
    (void)ex.Respond(head, text);
  }, nullptr);
  auto port = server.Start();
  printf("%d\n", *port); fflush(stdout);
  pause();
}
