// Reusable buffers for bytes a process produces itself (parity fragments, rebuilt data), handed
// to ZeroMQ zero-copy and returned to the pool when ZeroMQ frees the message. Keeps large
// per-record allocations (and their page faults) off the hot path.
//
// Thread-safety: Take() and the release path (on ZeroMQ's I/O threads) may run concurrently.
// The global pool lives for the whole process, so messages may outlive any one component.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <vector>

#include <zmq.hpp>

namespace ddsplit::transport {

class BufferPool {
 public:
  static BufferPool& Global();

  // A message of exactly `size` bytes with unspecified contents. Sizes below kMinPooled come
  // straight from ZeroMQ; larger ones are rounded up to a power of two and pooled.
  zmq::message_t Take(size_t size);

  // Bytes currently held idle by the pool (for metrics).
  size_t IdleBytes() const;

  // Frees every idle buffer and returns the C library's free memory to the system
  // (malloc_trim). Services call it when they have been idle for a while so an idle process
  // gives its memory back.
  void Trim();

  static constexpr size_t kMinPooled = 4096;
  // Idle bytes kept per size class; beyond this, released buffers are freed. Large enough for
  // the parity of a splitter's in-flight byte budget (512 MiB of records, m/k = 1/2), so a
  // steady load of large records reuses buffers instead of allocating; an idle service gives
  // everything back with Trim().
  static constexpr size_t kMaxIdleBytesPerClass = 256ull << 20;

 private:
  struct SizeClass {
    BufferPool* pool = nullptr;
    size_t capacity = 0;
    mutable std::mutex mutex;
    std::vector<void*> idle;
  };
  BufferPool();
  static void Release(void* data, void* hint);

  static constexpr int kClasses = 40;
  std::array<SizeClass, kClasses> classes_;
};

}  // namespace ddsplit::transport
