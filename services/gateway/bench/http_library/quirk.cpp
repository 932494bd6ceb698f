// Part of the HTTP library comparison (run.sh in this folder); not built with the project.
#include <httplib.h>
#include <cstdio>
#include <string>
int main() {
  static std::string data(1000, 'a');
  for (int i = 0; i < 1000; ++i) data[i] = 'a' + i % 26;
  httplib::Server s;
  s.Get("/r", [](const httplib::Request& req, httplib::Response& res) {
    // Pretend we fetched only bytes 100..199.
    res.status = 206;
    res.set_header("Content-Range", "bytes 100-199/1000");
    res.set_content_provider(100, "application/octet-stream",
      [](size_t off, size_t len, httplib::DataSink& sink) { return sink.write(data.data() + 100 + off, len); });
  });
  s.Get("/e", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 416;
    res.set_content("{\"problem\":1}", "application/problem+json");
  });
  s.Put("/p", [](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    res.status = 413; res.set_header("Connection", "close");
    res.set_content("too big", "text/plain");
  });
  s.Put("/q", [](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    size_t n = 0; bool ok = reader([&](const char*, size_t l) { n += l; return true; });
    res.set_content(std::to_string(n) + (ok ? " ok" : " fail") + " cl=" + req.get_header_value("Content-Length"), "text/plain");
  });
  int port = s.bind_to_any_port("127.0.0.1"); printf("%d\n", port); fflush(stdout);
  s.listen_after_bind();
}
