// Reading a Prometheus text exposition in the observability tests.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace ddsplit::testing {

// The sum of every sample of metric `name` (any labels) in `exposition`; 0 when there is none.
// `name` is matched exactly: "x_count" does not match "x_count_total".
inline double SumOfSamples(const std::string& exposition, std::string_view name) {
  std::istringstream lines(exposition);
  std::string line;
  double sum = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) continue;
    if (line.size() <= name.size() || (line[name.size()] != '{' && line[name.size()] != ' ')) continue;
    const size_t value = line.rfind(' ');
    sum += std::stod(line.substr(value + 1));
  }
  return sum;
}

// Whether `exposition` has at least one sample of metric `name`.
inline bool HasSamples(const std::string& exposition, std::string_view name) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.compare(0, name.size(), name) == 0 && line.size() > name.size() &&
        (line[name.size()] == '{' || line[name.size()] == ' ')) {
      return true;
    }
  }
  return false;
}

}  // namespace ddsplit::testing
