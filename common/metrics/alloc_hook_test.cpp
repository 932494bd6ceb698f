// Linked with ddsplit_alloc_hook. DDSPLIT_EXPECT_ALLOC_HOOK is 0 in sanitizer builds, where the
// hook compiles to nothing.
#include <doctest/doctest.h>
#include <malloc.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics/metrics.h"
#include "common/metrics/metrics_test_util.h"

#ifndef DDSPLIT_EXPECT_ALLOC_HOOK
#error "the build defines DDSPLIT_EXPECT_ALLOC_HOOK"
#endif

namespace ddsplit::metrics {
namespace {

// Called through volatile pointers so the compiler cannot elide or merge the calls.
void* (*volatile call_malloc)(size_t) = &malloc;
void (*volatile call_free)(void*) = &free;

// Taken during static initialisation, before main: the hook must already count.
const AllocationCounts counts_at_static_init = [] {
  call_free(call_malloc(100));
  return CurrentAllocationCounts();
}();

#if DDSPLIT_EXPECT_ALLOC_HOOK

void* (*volatile call_calloc)(size_t, size_t) = &calloc;
void* (*volatile call_realloc)(void*, size_t) = &realloc;
void* (*volatile call_aligned_alloc)(size_t, size_t) = &aligned_alloc;
int (*volatile call_posix_memalign)(void**, size_t, size_t) = &posix_memalign;
void* (*volatile call_memalign)(size_t, size_t) = &memalign;
void* (*volatile call_valloc)(size_t) = &valloc;

TEST_CASE("the allocation hook is active and counted from static initialisation on") {
  CHECK(AllocationHookActive());
  CHECK(counts_at_static_init.allocations > 0);
  CHECK(counts_at_static_init.bytes >= 100);
}

TEST_CASE("every new is counted") {
  constexpr size_t kAllocations = 1000;
  std::vector<std::unique_ptr<int64_t>> kept;
  kept.reserve(kAllocations);
  const AllocationCounts before = CurrentAllocationCounts();
  for (size_t i = 0; i < kAllocations; ++i) kept.push_back(std::make_unique<int64_t>(i));
  const AllocationCounts after = CurrentAllocationCounts();
  CHECK(after.allocations - before.allocations >= kAllocations);
  CHECK(after.bytes - before.bytes >= kAllocations * sizeof(int64_t));
  CHECK(*kept.back() == static_cast<int64_t>(kAllocations - 1));
}

TEST_CASE("each malloc-family function is counted with the bytes asked for") {
  struct Case {
    const char* name;
    size_t bytes;
    void* (*allocate)();
  };
  const Case cases[] = {
      {"malloc", 100, [] { return call_malloc(100); }},
      {"calloc", 80, [] { return call_calloc(10, 8); }},
      {"realloc of null", 32, [] { return call_realloc(nullptr, 32); }},
      {"aligned_alloc", 128, [] { return call_aligned_alloc(64, 128); }},
      {"posix_memalign", 256,
       [] {
         void* ptr = nullptr;
         return call_posix_memalign(&ptr, 64, 256) == 0 ? ptr : nullptr;
       }},
      {"memalign", 96, [] { return call_memalign(32, 96); }},
      {"valloc", 10, [] { return call_valloc(10); }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const AllocationCounts before = CurrentAllocationCounts();
    void* ptr = c.allocate();
    const AllocationCounts after = CurrentAllocationCounts();
    REQUIRE(ptr != nullptr);
    CHECK(after.allocations - before.allocations >= 1);
    CHECK(after.bytes - before.bytes >= c.bytes);
    call_free(ptr);
  }
}

TEST_CASE("the wrappers keep the allocator's semantics") {
  SUBCASE("realloc keeps the contents and realloc to zero frees") {
    auto* bytes = static_cast<char*>(call_malloc(4));
    REQUIRE(bytes != nullptr);
    bytes[0] = 'd';
    bytes[3] = 's';
    const AllocationCounts before = CurrentAllocationCounts();
    bytes = static_cast<char*>(call_realloc(bytes, 1 << 20));
    REQUIRE(bytes != nullptr);
    CHECK(CurrentAllocationCounts().bytes - before.bytes >= (1u << 20));
    CHECK(bytes[0] == 'd');
    CHECK(bytes[3] == 's');
    CHECK(malloc_usable_size(bytes) >= (1u << 20));
    CHECK(call_realloc(bytes, 0) == nullptr);
  }
  SUBCASE("posix_memalign rejects a bad alignment without touching errno") {
    void* ptr = nullptr;
    errno = 0;
    const int result = call_posix_memalign(&ptr, 3, 64);
    const int error = errno;  // read before CHECK, whose reporting may set errno
    CHECK(result == EINVAL);
    CHECK(ptr == nullptr);
    CHECK(error == 0);
  }
  SUBCASE("aligned pointers are aligned") {
    void* ptr = call_aligned_alloc(4096, 4096);
    REQUIRE(ptr != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(ptr) % 4096 == 0);
    call_free(ptr);
  }
  SUBCASE("calloc zeroes and refuses an overflowing size") {
    auto* words = static_cast<uint64_t*>(call_calloc(64, sizeof(uint64_t)));
    REQUIRE(words != nullptr);
    for (int i = 0; i < 64; ++i) CHECK(words[i] == 0);
    call_free(words);
    CHECK(call_calloc(SIZE_MAX / 2, 4) == nullptr);
  }
}

TEST_CASE("metrics switched off stop the hook counting; on again, it counts") {
  SetEnabled(false);
  const AllocationCounts before = CurrentAllocationCounts();
  call_free(call_malloc(100));
  const AllocationCounts off = CurrentAllocationCounts();
  SetEnabled(true);
  CHECK(off.allocations == before.allocations);
  call_free(call_malloc(100));
  CHECK(CurrentAllocationCounts().allocations > off.allocations);
}

TEST_CASE("the heap series are exported and pass promtool") {
  ProcessMetrics metrics("splitter");
  const std::string text = metrics.Serialize();
  const auto allocations = testing::SampleValue(text, "ddsplit_heap_allocations_total");
  const auto bytes = testing::SampleValue(text, "ddsplit_heap_allocated_bytes_total");
  REQUIRE(allocations.has_value());
  REQUIRE(bytes.has_value());
  CHECK(*allocations > 0);
  CHECK(*bytes >= *allocations);
  CHECK(text.find("# HELP ddsplit_heap_allocations_total ") != std::string::npos);
  CHECK(text.find("# HELP ddsplit_heap_allocated_bytes_total ") != std::string::npos);

  const auto lint = testing::PromtoolCheckMetrics(text);
  if (!lint) {
    MESSAGE("promtool not on PATH; skipping the exposition lint");
  } else {
    INFO("promtool output: ", lint->output);
    CHECK(lint->exit_code == 0);
  }
}

#else  // sanitizer build: the sanitizer owns malloc and the hook must be inert

TEST_CASE("under a sanitizer the allocation hook is inert") {
  CHECK_FALSE(AllocationHookActive());
  CHECK(counts_at_static_init.allocations == 0);
  const AllocationCounts before = CurrentAllocationCounts();
  void* ptr = call_malloc(64);
  call_free(ptr);
  CHECK(CurrentAllocationCounts().allocations == before.allocations);
  const std::string text = ProcessMetrics("splitter").Serialize();
  CHECK(text.find("ddsplit_heap_allocations_total") == std::string::npos);
}

#endif

}  // namespace
}  // namespace ddsplit::metrics
