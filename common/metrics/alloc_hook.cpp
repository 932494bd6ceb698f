// The allocation hook (CMake target ddsplit_alloc_hook): linked into an executable, it replaces
// the C allocation functions with thin wrappers that count each allocation and the bytes asked
// for, then forward to glibc's own allocator (__libc_malloc and friends). glibc documents this
// kind of replacement ("Replacing malloc" in its manual); because every wrapper forwards to the
// same allocator, a function left unwrapped only goes uncounted, it can never pair a pointer
// with the wrong free. Hence no malloc_usable_size wrapper: glibc's works on these pointers.
//
// Interface to metrics.cpp, which declares both weak so AllocationHookActive() is false when this
// object is not linked:
//   extern "C" void ddsplit_alloc_hook_counts(uint64_t* count, uint64_t* bytes);
//   extern "C" void ddsplit_alloc_hook_set_counting(bool on);  // metrics::SetEnabled()
//
// Runs before main and inside static initialisers, so it uses only constant-initialised relaxed
// atomics and never allocates. Compiled out under sanitizers, which own malloc.

// CMake defines DDSPLIT_ALLOC_HOOK_DISABLED in sanitizer builds; the compiler checks below catch
// sanitizer flags that arrive some other way.
#ifndef DDSPLIT_ALLOC_HOOK_DISABLED
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DDSPLIT_ALLOC_HOOK_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define DDSPLIT_ALLOC_HOOK_DISABLED 1
#endif
#endif
#endif

#ifndef DDSPLIT_ALLOC_HOOK_DISABLED

#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

// glibc's allocator under its own names; declared here because no public header does.
// NOLINTBEGIN(bugprone-reserved-identifier,readability-identifier-naming)
extern "C" {
void* __libc_malloc(size_t size);
void __libc_free(void* ptr);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* ptr, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
void* __libc_valloc(size_t size);
void* __libc_pvalloc(size_t size);
}
// NOLINTEND(bugprone-reserved-identifier,readability-identifier-naming)

namespace {

constinit std::atomic<uint64_t> allocation_count{0};
constinit std::atomic<uint64_t> allocated_bytes{0};
constinit std::atomic<bool> counting{true};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

inline void Count(size_t bytes) {
  if (!counting.load(std::memory_order_relaxed)) return;
  allocation_count.fetch_add(1, std::memory_order_relaxed);
  allocated_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

}  // namespace

extern "C" {

// NOLINTNEXTLINE(readability-identifier-naming): a C symbol
__attribute__((visibility("default"))) void ddsplit_alloc_hook_counts(uint64_t* count,
                                                                      uint64_t* bytes) {
  *count = allocation_count.load(std::memory_order_relaxed);
  *bytes = allocated_bytes.load(std::memory_order_relaxed);
}

// NOLINTNEXTLINE(readability-identifier-naming): a C symbol
__attribute__((visibility("default"))) void ddsplit_alloc_hook_set_counting(bool on) {
  counting.store(on, std::memory_order_relaxed);
}

// The noexcept matches glibc's __THROW on the declarations in <stdlib.h> and <malloc.h>.

void* malloc(size_t size) noexcept {
  Count(size);
  return __libc_malloc(size);
}

void free(void* ptr) noexcept { __libc_free(ptr); }

void* calloc(size_t count, size_t size) noexcept {
  size_t bytes = 0;
  if (!__builtin_mul_overflow(count, size, &bytes)) Count(bytes);
  return __libc_calloc(count, size);
}

// realloc(p, 0) frees; anything else may allocate and copy, so it counts as an allocation.
void* realloc(void* ptr, size_t size) noexcept {
  if (ptr == nullptr || size != 0) Count(size);
  return __libc_realloc(ptr, size);
}

void* reallocarray(void* ptr, size_t count, size_t size) noexcept {
  size_t bytes = 0;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(ptr, bytes);
}

void* aligned_alloc(size_t alignment, size_t size) noexcept {
  Count(size);
  return __libc_memalign(alignment, size);
}

void* memalign(size_t alignment, size_t size) noexcept {
  Count(size);
  return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  if (alignment == 0 || alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) {
    return EINVAL;
  }
  Count(size);
  const int saved_errno = errno;  // posix_memalign reports through its result, not errno
  void* ptr = __libc_memalign(alignment, size);
  errno = saved_errno;
  if (ptr == nullptr) return ENOMEM;
  *out = ptr;
  return 0;
}

void* valloc(size_t size) noexcept {
  Count(size);
  return __libc_valloc(size);
}

void* pvalloc(size_t size) noexcept {
  Count(size);
  return __libc_pvalloc(size);
}

}  // extern "C"

#endif  // DDSPLIT_ALLOC_HOOK_DISABLED
