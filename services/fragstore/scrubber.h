// Scrubber: verifies the fragments a store holds against their checksums in the background, at
// a set rate, so silent corruption is found before a read or a heal needs the fragment. It walks
// every key in order (a few keys per RocksDB iterator, so it holds no snapshot for long), reads
// each version's bytes and compares length and XXH3 checksum with the stored header; then starts
// over after a pause. Findings are metrics (bytes verified, corrupt fragments, passes); the
// rebuild itself is the assembler's repair (a heal or a read finds the fragment corrupt too).
//
// Thread-safety: one internal thread; Start() and the destructor from the owner's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "services/fragstore/fragment_store.h"
#include "services/fragstore/fragstore_probe.h"

namespace ddsplit::fragstore {

struct ScrubOptions {
  uint64_t bytes_per_second = 0;                // 0: no scrubbing
  std::chrono::milliseconds pass_pause{60000};  // between the end of a pass and the next
  uint32_t keys_per_batch = 64;
};

class Scrubber {
 public:
  Scrubber(const FragmentStore& store, FragstoreProbe& probe, ScrubOptions options);
  ~Scrubber();  // stops the thread
  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;

  void Start();

 private:
  void Loop();
  // Waits `d` unless stopped first; false when stopped.
  bool Pause(std::chrono::steady_clock::duration d);

  const FragmentStore& store_;
  FragstoreProbe& probe_;
  ScrubOptions options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ddsplit::fragstore
