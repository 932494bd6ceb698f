#include <doctest/doctest.h>

#include <vector>

#include "services/fragstore/group_commit.h"

namespace ddsplit::fragstore {
namespace {

size_t SizeOf(const std::vector<uint64_t>& queue, GroupCommitLimits limits) {
  return GroupCommitSize(queue.size(), limits, [&](size_t i) { return queue[i]; });
}

TEST_CASE("a group commit takes everything queued within its limits") {
  CHECK(SizeOf({}, {}) == 0);
  CHECK(SizeOf({100, 0, 200}, {}) == 3);
  CHECK(SizeOf(std::vector<uint64_t>(2000, 10), {.max_operations = 1024}) == 1024);
}

TEST_CASE("a group commit stops before the fragment that would pass its byte limit") {
  GroupCommitLimits limits{.max_operations = 1024, .max_bytes = 1000};
  CHECK(SizeOf({400, 600, 1}, limits) == 2);     // exactly at the limit
  CHECK(SizeOf({400, 601, 1}, limits) == 1);
  CHECK(SizeOf({400, 0, 0, 601}, limits) == 3);  // commits and aborts carry no bytes
}

TEST_CASE("a fragment larger than the byte limit is committed alone") {
  GroupCommitLimits limits{.max_operations = 1024, .max_bytes = 1000};
  CHECK(SizeOf({5000, 1, 1}, limits) == 1);
  CHECK(SizeOf({1, 5000}, limits) == 1);
}

}  // namespace
}  // namespace ddsplit::fragstore
