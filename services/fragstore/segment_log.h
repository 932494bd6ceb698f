// SegmentLog: the files that hold a fragment store's large fragments. The commit thread appends
// each group commit's fragments to the active segment with one pwritev straight from the
// received ZeroMQ frames (no user-space copy, and each byte goes through the page cache once);
// RocksDB keeps only a SegmentRef per fragment. A segment that nothing refers to any more (every
// fragment in it overwritten or deleted, or never referenced: appended by a batch that failed or
// was cut short by a crash) is deleted.
//
// Durability: Sync() (fdatasync) runs before the RocksDB write that publishes the references, so
// a reference never survives a crash that loses its bytes (with --sync=none neither is synced:
// damage after a machine crash is then caught by the fragment checksums on read).
//
// Files: <dir>/<16 hex digits>.seg, numbered upwards; a new one is started at every Open() and
// when the active one reaches segment_bytes.
//
// Thread-safety: Append, Sync and the live-byte accounting from one thread (the commit thread);
// Read and Stats from any thread.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace ddsplit::fragstore {

struct SegmentRef {
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct SegmentStats {
  uint64_t segments = 0;
  uint64_t file_bytes = 0;  // all segment files, garbage included
  uint64_t live_bytes = 0;  // referenced fragments
};

class SegmentLog {
 public:
  // Opens the segments under `dir` (creating it) for reading; the first Append() starts a new
  // segment, numbered above every existing one and every id passed to AddLive() (a reference
  // to a lost file must never point into a new one). Every segment starts with no live bytes:
  // the owner reports each reference it holds with AddLive() and then calls DropUnreferenced().
  // Without `durable`, Sync() does nothing.
  static Result<std::unique_ptr<SegmentLog>> Open(std::string dir, uint64_t segment_bytes,
                                                  bool durable);
  ~SegmentLog();
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;

  // Appends `payloads` in order; refs[i] receives where payloads[i] went. On error (disk full)
  // nothing is referenced and the space written, if any, is garbage.
  Status Append(std::span<const std::span<const std::byte>> payloads, std::span<SegmentRef> refs);
  // Makes everything appended so far durable.
  Status Sync();

  // Reads the fragment at `ref` into `out` (ref.length bytes). kNotFound if its segment was
  // deleted (the fragment was dropped meanwhile); kCorrupt if the file is too short.
  Status Read(const SegmentRef& ref, std::span<std::byte> out) const;

  // Live-byte accounting, once the RocksDB write that made the change has succeeded. A closed
  // segment whose live bytes fall to zero is deleted.
  void AddLive(const SegmentRef& ref);
  void RemoveLive(const SegmentRef& ref);
  // Deletes every closed segment without live bytes (after Open's references are counted).
  void DropUnreferenced();
  // When the references cannot all be counted: treats every byte of the existing segments as
  // live, so none is deleted before every fragment in it has been dropped (garbage stays).
  void KeepAll();

  // Closed segments whose live bytes are under `max_live_fraction` of their size, sparsest
  // first: worth moving their live fragments elsewhere so the files can go.
  std::vector<uint64_t> SparseSegments(double max_live_fraction) const;

  SegmentStats Stats() const;

 private:
  struct Segment;
  SegmentLog(std::string dir, uint64_t segment_bytes, bool durable);
  Status StartSegment();
  void DropIfDead(uint64_t id);
  std::shared_ptr<Segment> Find(uint64_t id) const;

  const std::string dir_;
  const uint64_t segment_bytes_;
  const bool durable_;
  mutable std::mutex mutex_;  // guards segments_ (the map; each Segment's fd is immutable)
  std::map<uint64_t, std::shared_ptr<Segment>> segments_;
  std::shared_ptr<Segment> active_;          // commit thread only; null until the first Append
  uint64_t next_id_ = 1;
  std::vector<std::shared_ptr<Segment>> unsynced_;  // appended to since the last Sync
  std::vector<iovec> iov_;  // Append's scratch, kept between group commits
};

}  // namespace ddsplit::fragstore
