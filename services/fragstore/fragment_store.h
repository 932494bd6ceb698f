// FragmentStore: a fragment store's durable state: one RocksDB database plus the segment files
// that hold large fragments (SegmentLog). The only code in DDSplit that talks to RocksDB.
//
// For every key the store keeps the fragments of one or more versions and the newest version it
// knows to be committed (acknowledged by a write quorum somewhere). A fragment of a version
// older than the committed one is obsolete; committing a version drops the older ones. So an
// overwrite in progress never removes the version readers are using.
//
// Layout: column family "default" holds small entries — the committed version at
// key+"\0\0" and each version's FragmentHeader at key+"\0\1"+inverted version (newest sorts
// first); column family "fragments" holds, at key+"\0"+inverted version, either the fragment's
// bytes (fragments under segment_min_bytes) or where in the segment files they are. Keys never
// contain NUL, so a key's entries sort together and in key order. Large fragments are written
// once, from the caller's buffers, to a segment file; RocksDB's write-ahead log and memtables
// see only their 25-byte location.
//
// Thread-safety: Apply() from one thread at a time (the commit thread); reads from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/base/result.h"
#include "common/base/version.h"
#include "services/fragstore/segment_log.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class PinnableSlice;
class Cache;
class WriteBufferManager;
}  // namespace rocksdb

namespace ddsplit::fragstore {

struct StoreOptions {
  std::string data_dir;
  bool sync = true;                        // fsync the WAL before Apply() returns
  uint64_t block_cache_bytes = 64ull << 20;
  uint64_t memtable_bytes = 128ull << 20;  // all memtables together (payloads wait here until flush)
  // Fragments this large go to segment files, smaller ones inline into RocksDB (two user-space
  // copies: write batch, memtable). Measured: even 256-byte fragments are no slower in segments.
  uint64_t segment_min_bytes = 1;
  uint64_t segment_bytes = 256ull << 20;   // a segment file is closed at about this size
};

enum class OpKind : uint8_t { kWrite, kCommit, kAbort };

// One operation of a group commit. Spans must stay valid during Apply().
struct StoreOp {
  OpKind kind = OpKind::kWrite;
  std::string_view key;
  Version version;
  bool tombstone = false;                  // kWrite
  std::span<const std::byte> header;       // kWrite: FragmentHeader bytes
  std::span<const std::byte> payload;      // kWrite
};

struct OpResult {
  bool had_live_version = false;  // kWrite: an older non-tombstone version was held
  bool obsolete = false;          // kWrite: older than the committed version, dropped
  // kWrite: the bytes went into RocksDB itself (under StoreOptions::segment_min_bytes), which
  // copies them twice in user space (write batch, memtable), not into a segment file.
  bool stored_inline = false;
};

// One version held for a key.
struct HeldVersion {
  Version version;
  bool committed = false;
  std::string header;  // FragmentHeader bytes
};

// Reusable result of ReadVersions(); keeps its capacity between calls.
struct KeyVersions {
  std::vector<HeldVersion> versions;  // newest first
  size_t count = 0;
  std::span<const HeldVersion> view() const { return {versions.data(), count}; }
};

// Fragment bytes read from the store, held until this object is destroyed: a small fragment
// pinned in (or copied from) RocksDB, a large one read from its segment file into a buffer.
class PinnedPayload {
 public:
  // The bytes of `slice` after its first `skip` bytes.
  PinnedPayload(std::unique_ptr<rocksdb::PinnableSlice> slice, size_t skip);
  // The bytes of `buffer` (from transport::BufferPool: reused, not allocated per read).
  explicit PinnedPayload(zmq::message_t buffer);
  ~PinnedPayload();
  PinnedPayload(PinnedPayload&&) noexcept;
  PinnedPayload& operator=(PinnedPayload&&) noexcept;
  std::span<const std::byte> bytes() const;
  // True when RocksDB copied the bytes into this object (a user-space payload copy) rather than
  // pinning memory it already held. A segment read is the kernel's copy: false.
  bool copied() const;

 private:
  std::unique_ptr<rocksdb::PinnableSlice> slice_;
  size_t skip_ = 0;
  // Not a cached span: a small ZeroMQ message keeps its bytes inside itself, so they move with it.
  zmq::message_t buffer_;
};

struct StoreStats {
  uint64_t estimated_keys = 0;
  uint64_t live_data_bytes = 0;  // SST files plus the fragments in segment files
  uint64_t memtable_bytes = 0;
  uint64_t block_cache_bytes = 0;
  // For the metrics (observability): RocksDB's health figures and the data directory's file
  // system (statvfs; zero when it cannot be read).
  uint64_t blob_bytes = 0;                // all segment files, garbage included
  uint64_t segments = 0;                  // segment files
  uint64_t pending_compaction_bytes = 0;  // estimate
  uint64_t running_compactions = 0;
  bool write_stopped = false;             // RocksDB stopped writes (stall)
  uint64_t background_errors = 0;         // accumulated since open
  uint64_t compaction_corruptions = 0;    // corrupt data met by compactions since open, tolerated
  uint64_t filesystem_size_bytes = 0;
  uint64_t filesystem_avail_bytes = 0;    // available to this (unprivileged) process
};

class FragmentStore {
 public:
  // Opens (creating if missing) the database under options.data_dir. Failing to open is
  // kUnavailable with RocksDB's reason.
  static Result<std::unique_ptr<FragmentStore>> Open(const StoreOptions& options);
  ~FragmentStore();
  FragmentStore(const FragmentStore&) = delete;
  FragmentStore& operator=(const FragmentStore&) = delete;

  // Applies `ops` in order as one atomic RocksDB write: one WAL append, one sync when
  // options.sync. Fills results[i] for ops[i]. On error nothing was applied.
  Status Apply(std::span<const StoreOp> ops, std::span<OpResult> results);

  // Every version held for `key`, newest first.
  Status ReadVersions(std::string_view key, KeyVersions& out) const;

  // The fragment bytes of (key, version); kNotFound if absent, kCorrupt if RocksDB's own
  // checksums fail or the segment file is too short. The bytes are not checked against the
  // fragment's checksum (in its header): callers do that.
  Result<PinnedPayload> ReadPayload(std::string_view key, Version version) const;

  // Visits keys that start with `prefix` and sort after `after` (all keys if empty), in order,
  // with their versions. The visitor returns false to stop. Returns true when more keys remain.
  using KeyVisitor = std::function<bool(std::string_view key, const KeyVersions& versions)>;
  Result<bool> List(std::string_view prefix, std::string_view after, const KeyVisitor& visit) const;

  StoreStats Stats() const;
  // Whether Apply() syncs the write-ahead log (StoreOptions::sync), for the metrics.
  bool syncs_wal() const { return options_.sync; }
  // Flushes memtables so the next start need not replay the WAL (used at clean shutdown).
  Status Flush();
  // Compacts everything now (reclaims the space of dropped small fragments and entries) and
  // reclaims every sparse segment (ReclaimSegments). Slow; maintenance.
  Status CompactAll();
  // A segment file goes as soon as nothing refers to it. This moves the live fragments of
  // closed segments that are mostly garbage (under half their bytes live) into the active
  // segment, at most about `max_bytes` of them per call, so those files can go. Returns the
  // fragment bytes moved. Like Apply(): from the commit thread only.
  Result<uint64_t> ReclaimSegments(uint64_t max_bytes);

 private:
  struct KeyState;
  struct ApplyState;
  FragmentStore();
  Status LoadKeyState(std::string_view key, KeyState& state) const;
  Status ApplyToBatch(std::span<const StoreOp> ops, std::span<OpResult> results);
  Status CountSegmentReferences();

  class CompactionCorruptionTolerance;

  StoreOptions options_;
  std::shared_ptr<CompactionCorruptionTolerance> corruption_tolerance_;  // before db_: outlives it
  std::unique_ptr<rocksdb::DB> db_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers_;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;     // owned by db_
  rocksdb::ColumnFamilyHandle* payload_ = nullptr;  // "fragments", owned by db_
  std::unique_ptr<SegmentLog> segments_;
  std::unique_ptr<ApplyState> apply_;  // used by Apply() only
};

}  // namespace ddsplit::fragstore
