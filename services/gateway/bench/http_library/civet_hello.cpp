// Part of the HTTP library comparison (run.sh in this folder); not built with the project.
// Hello server on civetweb: same three routes.
#include <civetweb.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
static std::string big(1 << 20, 'x');
static int Handle(mg_connection* conn, void*) {
  const mg_request_info* ri = mg_get_request_info(conn);
  if (strcmp(ri->local_uri, "/small") == 0) {
    mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!");
    return 200;
  }
  if (strcmp(ri->local_uri, "/big") == 0) {
    mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n", big.size());
    mg_write(conn, big.data(), big.size());
    return 200;
  }
  char buf[65536]; long long n = 0; int r;
  while ((r = mg_read(conn, buf, sizeof buf)) > 0) n += r;
  std::string s = std::to_string(n);
  mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s", s.size(), s.c_str());
  return 200;
}
int main(int argc, char** argv) {
  std::string threads = argc > 1 ? argv[1] : "64";
  const char* options[] = {"listening_ports", "127.0.0.1:0", "num_threads", threads.c_str(),
                           "enable_keep_alive", "yes", "keep_alive_timeout_ms", "30000", "tcp_nodelay", "1", nullptr};
  mg_init_library(0);
  mg_callbacks cb{};
  mg_context* ctx = mg_start(&cb, nullptr, options);
  mg_set_request_handler(ctx, "/", Handle, nullptr);
  mg_server_port ports[1];
  mg_get_server_ports(ctx, 1, ports);
  printf("%d\n", ports[0].port); fflush(stdout);
  pause();
}
