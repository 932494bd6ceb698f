// Part of the HTTP library comparison (run.sh in this folder); not built with the project.
// Hello server on cpp-httplib: GET /small (13 B), GET /big (1 MiB), PUT /put (body read, 200).
#include <httplib.h>
#include <cstdio>
#include <cstdlib>
#include <string>
int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 64;
  static std::string big(1 << 20, 'x');
  httplib::Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_keep_alive_max_count(1000000);
  server.set_keep_alive_timeout(30);
  server.set_tcp_nodelay(true);
  server.Get("/small", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("Hello, world!", "text/plain");
  });
  server.Get("/big", [](const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(big.size(), "application/octet-stream",
        [](size_t off, size_t len, httplib::DataSink& sink) { return sink.write(big.data() + off, len); });
  });
  server.Put("/put", [](const httplib::Request&, httplib::Response& res, const httplib::ContentReader& reader) {
    size_t n = 0;
    reader([&](const char*, size_t len) { n += len; return true; });
    res.set_content(std::to_string(n), "text/plain");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  printf("%d\n", port); fflush(stdout);
  server.listen_after_bind();
}
