// Part of the HTTP library comparison (run.sh in this folder); not built with the project.
#include <civetweb.h>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>
static int Handle(mg_connection* conn, void*) {
  const mg_request_info* ri = mg_get_request_info(conn);
  std::string s = std::string("request_uri=") + ri->request_uri + " raw=" + (ri->local_uri_raw ? ri->local_uri_raw : "(null)") + " local=" + ri->local_uri + "\n";
  mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", s.size(), s.c_str());
  return 200;
}
int main() {
  const char* options[] = {"listening_ports", "127.0.0.1:0", nullptr};
  mg_callbacks cb{};
  mg_context* ctx = mg_start(&cb, nullptr, options);
  mg_set_request_handler(ctx, "/", Handle, nullptr);
  mg_server_port ports[1]; mg_get_server_ports(ctx, 1, ports);
  printf("%d\n", ports[0].port); fflush(stdout); pause();
}
