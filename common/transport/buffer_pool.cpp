#include "common/transport/buffer_pool.h"

#include <bit>
#include <cstdlib>

#include <malloc.h>

namespace ddsplit::transport {

BufferPool& BufferPool::Global() {
  // Never destroyed: ZeroMQ may free pooled messages during static destruction.
  static BufferPool* pool = new BufferPool();
  return *pool;
}

BufferPool::BufferPool() {
  for (int i = 0; i < kClasses; ++i) {
    classes_[i].pool = this;
    classes_[i].capacity = size_t{1} << i;
  }
}

zmq::message_t BufferPool::Take(size_t size) {
  if (size < kMinPooled) return zmq::message_t(size);
  int index = std::bit_width(size - 1);
  SizeClass& size_class = classes_[index];
  void* buffer = nullptr;
  {
    std::lock_guard lock(size_class.mutex);
    if (!size_class.idle.empty()) {
      buffer = size_class.idle.back();
      size_class.idle.pop_back();
    }
  }
  if (buffer == nullptr) buffer = std::aligned_alloc(64, size_class.capacity);
  return zmq::message_t(buffer, size, &BufferPool::Release, &size_class);
}

void BufferPool::Release(void* data, void* hint) {
  auto* size_class = static_cast<SizeClass*>(hint);
  {
    std::lock_guard lock(size_class->mutex);
    if ((size_class->idle.size() + 1) * size_class->capacity <= kMaxIdleBytesPerClass) {
      size_class->idle.push_back(data);
      return;
    }
  }
  std::free(data);
}

void BufferPool::Trim() {
  for (auto& size_class : classes_) {
    std::vector<void*> idle;
    {
      std::lock_guard lock(size_class.mutex);
      idle.swap(size_class.idle);
    }
    for (void* buffer : idle) std::free(buffer);
  }
  // glibc keeps freed memory in its heaps (and, after large frees, raises its mmap threshold so
  // later large buffers come from the heap too): hand the free pages back to the system.
  malloc_trim(0);
}

size_t BufferPool::IdleBytes() const {
  size_t total = 0;
  for (const auto& size_class : classes_) {
    std::lock_guard lock(size_class.mutex);
    total += size_class.idle.size() * size_class.capacity;
  }
  return total;
}

}  // namespace ddsplit::transport
