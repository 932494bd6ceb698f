// fault_load: what reliability tests need besides a TestCluster — a background load that records
// every acknowledged write, a verifier that checks every acknowledged write against what the
// cluster returns, self-describing record values, helpers that damage a store's files, the
// resident memory of a process, and the printed seed every randomised test starts from.
//
// The load: each thread owns one client::Client and a disjoint set of keys, and runs blocking
// put / get / delete operations on them in a random mix until paused or stopped. Because one
// thread does everything to a key, a key's history is a plain sequence: each operation is
// acknowledged (with its version), or failed (its effect is unknown: it may or may not have
// happened). Every get the load does is judged at once against that history, and Verify()
// judges every key at the end. The rules (from the DESIGN's failure rules):
//   - a read returns the value of the last acknowledged write of the key or of a write issued
//     after it (those failed, so they may or may not have taken effect) — never an older one,
//     never bytes that are not exactly one written value (values carry their key, sequence
//     number and a hash of their body, so any mixed, truncated or flipped byte is seen);
//   - the version a read reports is never older than the last acknowledged write's;
//   - NotFound only when no acknowledged write exists, the last one is a delete, or a failed
//     delete followed it;
//   - other errors are "clear errors": allowed while stores are down, counted.
//
// Thread-safety: FaultLoad's methods are called from one thread (the test's); its load threads
// are internal. Pause() returns once every thread is between operations; Verify() and
// PickAckedRecord() need the load paused or stopped.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "client/client.h"
#include "common/base/result.h"
#include "common/base/version.h"

namespace ddsplit::testing {

// The seed of a randomised test: $DDSPLIT_SEED when set, else random. Printed (with `what`) so a
// failure can be replayed with DDSPLIT_SEED=<seed>.
uint64_t TestSeed(const char* what);

// An integer from the environment variable `name`, or `fallback` when unset or unreadable.
int64_t EnvInt(const char* name, int64_t fallback);

// ------------------------------------------------------------------------------ values

// A value that names itself: "DDSV" | key length (u16) | key | sequence (u64) | body length
// (u32) | XXH3 of the body (u64) | body, where the body is pseudo-random bytes derived from
// (key, sequence). `body_bytes` is the body's length.
std::vector<std::byte> MakeValue(std::string_view key, uint64_t sequence, size_t body_bytes);

// The sequence number of a value made by MakeValue for `key`, after checking every byte of it;
// kCorrupt naming the first problem otherwise (wrong key, bad header, body not as written).
Result<uint64_t> CheckValue(std::string_view key, std::span<const std::byte> bytes);

// ------------------------------------------------------------------------------ key history

// One operation the load did on a key.
struct KeyOp {
  enum class Kind : uint8_t { kPut, kDelete };
  Kind kind = Kind::kPut;
  uint64_t sequence = 0;    // puts: the value's sequence number
  bool acknowledged = false;
  Version version;          // when acknowledged
  ErrorCode error = ErrorCode::kOk;  // when not
  size_t body_bytes = 0;    // puts: the value's body length
};

// What one read of a key (blocking Get of the whole value) showed.
enum class ReadVerdict : uint8_t {
  kOk,          // a value the history allows, or NotFound where allowed
  kClearError,  // an error (unavailable, stale, deadline, busy...): allowed under faults
  kStale,       // an older value (or version) than the last acknowledged write: a violation
  kCorrupt,     // bytes that are not one whole written value of this key: a violation
  kLost,        // NotFound although an acknowledged put is the latest: a violation
};
std::string_view ReadVerdictName(ReadVerdict verdict);

// Judges `read` of `key` against its history (every operation complete when the read began).
// `detail` receives a one-line explanation for anything but kOk.
ReadVerdict JudgeRead(std::string_view key, std::span<const KeyOp> history,
                      const Result<client::GetResult>& read, std::string* detail);

// ------------------------------------------------------------------------------ load

struct LoadOptions {
  std::filesystem::path cluster_json;  // where the clients find the cluster
  int threads = 2;
  int keys_per_thread = 32;
  std::string key_prefix = "load/";
  int put_percent = 45;  // of operations; gets take get_percent, deletes the rest
  int get_percent = 40;
  size_t max_value_bytes = 96 * 1024;  // largest body; sizes spread from 0 up to this
  std::chrono::milliseconds request_timeout{6000};
  uint64_t seed = 1;
};

struct LoadStats {
  uint64_t puts_acked = 0, puts_failed = 0;
  uint64_t deletes_acked = 0, deletes_failed = 0;
  uint64_t gets_ok = 0, gets_not_found = 0, gets_failed = 0;
  uint64_t violations = 0;  // reads judged kStale, kCorrupt or kLost
  std::map<std::string, uint64_t> errors;  // error code name -> count, over all operations
};

// The result of judging every key once more at the end.
struct VerifyReport {
  std::vector<std::string> problem_keys;  // the keys of `problems`
  uint64_t keys = 0;
  uint64_t acked_puts_checked = 0;     // keys whose last acknowledged write is a put, read back
  uint64_t acked_deletes_checked = 0;  // keys whose last acknowledged write is a delete
  uint64_t unreadable = 0;             // still a clear error after every attempt
  uint64_t violations = 0;             // stale, corrupt or lost, together
  uint64_t stale = 0, corrupt = 0, lost = 0;
  std::vector<std::string> problems;   // one line each (capped)
  bool ok() const { return unreadable == 0 && violations == 0; }
};

// A key whose latest operation is an acknowledged put, and that put's value.
struct AckedRecord {
  std::string key;
  Version version;
  std::vector<std::byte> value;
};

class FaultLoad {
 public:
  explicit FaultLoad(LoadOptions options);
  ~FaultLoad();  // Stop()
  FaultLoad(const FaultLoad&) = delete;
  FaultLoad& operator=(const FaultLoad&) = delete;

  // Starts the threads (each connects its own client). Errors: the client could not connect.
  Status Start();
  // Lets every thread finish its current operation and wait. Returns within about one request
  // timeout.
  void Pause();
  void Resume();
  // Ends the threads; idempotent.
  void Stop();

  LoadStats stats() const;
  // Descriptions of the violations seen by the load's own reads (capped).
  std::vector<std::string> violations() const;

  // Reads every key with `client` and judges it; a clear error is retried up to `attempts`
  // times, `pause` apart. The load must be paused or stopped.
  VerifyReport Verify(client::Client& client, int attempts = 5,
                      std::chrono::milliseconds pause = std::chrono::milliseconds(300));

  // A random key whose latest operation is an acknowledged put with a body of at least
  // `min_body_bytes`. The load must be paused or stopped.
  std::optional<AckedRecord> PickAckedRecord(std::mt19937_64& rng, size_t min_body_bytes);

  // The operations done on `key` so far (empty if the load does not own it). For diagnostics.
  std::vector<KeyOp> History(const std::string& key) const;

  const LoadOptions& options() const { return options_; }

 private:
  struct Worker;
  void Run(Worker& worker);
  bool WaitIfPaused();

  LoadOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool paused_ = false;
  bool stopping_ = false;
  int idle_ = 0;  // threads waiting while paused
  mutable std::mutex violations_mutex_;
  std::vector<std::string> violations_;
};

// ------------------------------------------------------------------------------ damage

// Flips one bit of the byte `offset` bytes into every occurrence of `needle` in every regular
// file under `dir`. Returns the files changed; kNotFound if no file holds the needle.
Result<std::vector<std::string>> FlipBytesEverywhere(const std::filesystem::path& dir,
                                                     std::span<const std::byte> needle,
                                                     size_t offset);

// Truncates every regular file under `dir` that holds `needle` at the needle's first
// occurrence (the needle and everything after it are lost). Returns the files changed;
// kNotFound if none holds it.
Result<std::vector<std::string>> TruncateWhere(const std::filesystem::path& dir,
                                               std::span<const std::byte> needle);

// Copies the directory tree `from` to `to` (replacing `to`). kInternal on failure.
Status CopyTree(const std::filesystem::path& from, const std::filesystem::path& to);

// ------------------------------------------------------------------------------ store contents

// One version a store holds for a key, as the store itself reports it (FetchRequest with verify).
struct StoreHeldVersion {
  Version version;
  bool committed = false;
  bool tombstone = false;
  bool corrupt = false;  // the newest version's bytes failed verification
  int fragment_index = -1;
};

// Asks the store whose read endpoint is `read_endpoint` what it holds for `key` (newest first),
// waiting up to `timeout`. kDeadlineExceeded when it does not answer.
Result<std::vector<StoreHeldVersion>> AskStore(const std::string& read_endpoint, const std::string& key,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(3));

// "v<version> c t x#<index>" per version (committed, tombstone, corrupt flags), for reports.
std::string DescribeHeld(const std::vector<StoreHeldVersion>& held);

// ------------------------------------------------------------------------------ processes

struct ProcessMemory {
  uint64_t resident_bytes = 0;       // VmRSS
  uint64_t peak_resident_bytes = 0;  // VmHWM: the largest resident size since the process began
};

// Reads /proc/PID/status. kNotFound if the process is gone.
Result<ProcessMemory> ReadProcessMemory(pid_t pid);

}  // namespace ddsplit::testing
