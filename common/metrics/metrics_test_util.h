// Test-only helpers for the metrics tests: read a sample out of a text exposition, and lint an
// exposition with `promtool check metrics` when promtool is installed.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace ddsplit::metrics::testing {

// The value of the sample whose line starts with `series` (name plus labels exactly as
// serialised, e.g. `ddsplit_build_info{service="x",version="1"}`), or nullopt if absent.
inline std::optional<double> SampleValue(std::string_view exposition, std::string_view series) {
  size_t line = 0;
  while (line < exposition.size()) {
    size_t end = exposition.find('\n', line);
    if (end == std::string_view::npos) end = exposition.size();
    const std::string_view row = exposition.substr(line, end - line);
    if (row.size() > series.size() && row.substr(0, series.size()) == series &&
        row[series.size()] == ' ') {
      return std::strtod(std::string(row.substr(series.size() + 1)).c_str(), nullptr);
    }
    line = end + 1;
  }
  return std::nullopt;
}

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

// Runs `promtool check metrics` over `exposition`. Returns nullopt when promtool is not on PATH.
inline std::optional<PromtoolResult> PromtoolCheckMetrics(const std::string& exposition) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return std::nullopt;
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/ddsplit_metrics_XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) return PromtoolResult{-1, "cannot create a temporary file"};
  const bool written =
      ::write(fd, exposition.data(), exposition.size()) == static_cast<ssize_t>(exposition.size());
  ::close(fd);
  PromtoolResult result;
  if (written) {
    const std::string command = "promtool check metrics < '" + path + "' 2>&1";
    if (FILE* pipe = ::popen(command.c_str(), "r")) {
      std::array<char, 512> buffer;
      size_t n = 0;
      while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
        result.output.append(buffer.data(), n);
      }
      const int status = ::pclose(pipe);
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
  } else {
    result.output = "cannot write the temporary file";
  }
  ::unlink(path.c_str());
  return result;
}

}  // namespace ddsplit::metrics::testing
