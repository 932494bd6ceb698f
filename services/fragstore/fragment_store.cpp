#include "services/fragstore/fragment_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <set>
#include <unordered_map>

#include "common/transport/buffer_pool.h"
#include "common/wire/envelope.h"

namespace ddsplit::fragstore {
namespace {

constexpr char kGroupEnd = '\0';
constexpr char kCommitTag = '\0';
constexpr char kHeaderTag = '\1';
constexpr const char* kPayloadFamily = "fragments";
// Before segment files, fragment bytes lived in this family (RocksDB blob files).
constexpr const char* kOldPayloadFamily = "payload";
// A "fragments" value is a tag, then the fragment's bytes or its place in the segment files.
constexpr char kInlineTag = 'i';
constexpr char kSegmentTag = 's';
constexpr size_t kSegmentValueBytes = 1 + 3 * sizeof(uint64_t);

void AppendInvertedBigEndian(std::string& out, uint64_t value, int bytes) {
  value = ~value;
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(value >> (8 * i)));
}

uint64_t ReadInvertedBigEndian(std::string_view in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | static_cast<uint8_t>(in[i]);
  uint64_t mask = bytes == 8 ? ~uint64_t{0} : ((uint64_t{1} << (8 * bytes)) - 1);
  return ~value & mask;
}

constexpr size_t kVersionBytes = 12;
// Key states Apply() keeps between group commits: a few hundred bytes each, so ~4 MiB at most.
constexpr size_t kMaxCachedKeyStates = 16384;

void AppendVersion(std::string& out, Version v) {
  AppendInvertedBigEndian(out, v.hlc, 8);
  AppendInvertedBigEndian(out, v.writer, 4);
}

Version ParseVersion(std::string_view in) {
  return {ReadInvertedBigEndian(in, 8), static_cast<uint32_t>(ReadInvertedBigEndian(in.substr(8), 4))};
}

void CommitKey(std::string& out, std::string_view key) {
  out.assign(key);
  out.push_back(kGroupEnd);
  out.push_back(kCommitTag);
}

void HeaderKey(std::string& out, std::string_view key, Version v) {
  out.assign(key);
  out.push_back(kGroupEnd);
  out.push_back(kHeaderTag);
  AppendVersion(out, v);
}

void PayloadKey(std::string& out, std::string_view key, Version v) {
  out.assign(key);
  out.push_back(kGroupEnd);
  AppendVersion(out, v);
}

void AppendLittleEndian(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

uint64_t ReadLittleEndian(std::string_view in) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(in[i]);
  return value;
}

void EncodeSegmentRef(std::string& out, const SegmentRef& ref) {
  out.assign(1, kSegmentTag);
  AppendLittleEndian(out, ref.segment);
  AppendLittleEndian(out, ref.offset);
  AppendLittleEndian(out, ref.length);
}

// The place a "fragments" value points at; nullopt for a fragment stored inline (or a value
// that is neither: ReadPayload reports that one as corrupt).
std::optional<SegmentRef> DecodeSegmentRef(std::string_view value) {
  if (value.size() != kSegmentValueBytes || value[0] != kSegmentTag) return std::nullopt;
  return SegmentRef{ReadLittleEndian(value.substr(1)), ReadLittleEndian(value.substr(9)),
                    ReadLittleEndian(value.substr(17))};
}

rocksdb::Slice AsSlice(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

Error FromRocks(const rocksdb::Status& status, std::string_view what) {
  ErrorCode code = status.IsCorruption() ? ErrorCode::kCorrupt
                   : status.IsNotFound() ? ErrorCode::kNotFound
                                         : ErrorCode::kInternal;
  return Error(code, std::string(what) + ": " + status.ToString());
}

bool IsTombstone(std::string_view header) {
  wire::AlignedFrame aligned;  // RocksDB values come at any alignment
  auto parsed = wire::ParseFragmentHeader(aligned.Of(std::as_bytes(std::span(header.data(), header.size()))));
  return parsed.ok() && (*parsed)->tombstone();
}

}  // namespace

// RocksDB stops all writes after any background error. A compaction that meets corrupt data (a
// flipped bit in a blob file that blob garbage collection must move, a damaged SST block) would
// so turn one bad fragment into a store that accepts nothing until restarted, and fails again at
// the next compaction. DDSplit has redundancy for exactly this: the damaged fragment reads as
// corrupt (checksums are verified on every read), read repair, scrub and heal rewrite it, and
// the rewrite lets compaction drop the damaged copy. So corruption met by a compaction is
// counted and logged, and writes go on; RocksDB retries the compaction (after a pause) until the
// fragment has been rewritten. Every other background error (WAL, flush, disk full) still stops
// writes: those mean new writes would not be durable.
class FragmentStore::CompactionCorruptionTolerance : public rocksdb::EventListener {
 public:
  explicit CompactionCorruptionTolerance(std::string data_dir) : data_dir_(std::move(data_dir)) {}
  const char* Name() const override { return "ddsplit.CompactionCorruptionTolerance"; }

  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* error) override {
    if (reason != rocksdb::BackgroundErrorReason::kCompaction || !error->IsCorruption()) return;
    uint64_t seen = ++tolerated_;
    if ((seen & (seen - 1)) == 0) {  // 1st, 2nd, 4th, 8th ...: RocksDB retries about once a second
      spdlog::warn("store {}: compaction met corrupt data ({} times so far); writes go on, the "
                   "damaged fragment reads as corrupt until repaired: {}",
                   data_dir_, seen, error->ToString());
    }
    *error = rocksdb::Status::OK();
  }
  uint64_t tolerated() const { return tolerated_.load(std::memory_order_relaxed); }

 private:
  std::string data_dir_;
  std::atomic<uint64_t> tolerated_{0};
};

struct FragmentStore::KeyState {
  struct Entry {
    Version version;
    bool tombstone = false;
    // Where the fragment's bytes are, once looked up or written by this process: in a segment
    // (`segment` set) or inline in RocksDB.
    bool location_known = false;
    std::optional<SegmentRef> segment;
  };
  Version committed;
  std::vector<Entry> versions;  // newest first
};

PinnedPayload::PinnedPayload(std::unique_ptr<rocksdb::PinnableSlice> slice, size_t skip)
    : slice_(std::move(slice)), skip_(skip) {}
PinnedPayload::PinnedPayload(zmq::message_t buffer) : buffer_(std::move(buffer)) {}
std::span<const std::byte> PinnedPayload::bytes() const {
  if (slice_) return std::as_bytes(std::span(slice_->data(), slice_->size())).subspan(skip_);
  return {static_cast<const std::byte*>(buffer_.data()), buffer_.size()};
}
PinnedPayload::~PinnedPayload() = default;
PinnedPayload::PinnedPayload(PinnedPayload&&) noexcept = default;
PinnedPayload& PinnedPayload::operator=(PinnedPayload&&) noexcept = default;
bool PinnedPayload::copied() const { return slice_ && !slice_->IsPinned(); }

Result<std::unique_ptr<FragmentStore>> FragmentStore::Open(const StoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return Error(ErrorCode::kUnavailable, "cannot create " + options.data_dir + ": " + ec.message());
  }
  std::unique_ptr<FragmentStore> store(new FragmentStore());
  store->options_ = options;
  store->cache_ = rocksdb::NewLRUCache(options.block_cache_bytes);
  store->write_buffers_ = std::make_shared<rocksdb::WriteBufferManager>(options.memtable_bytes);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.write_buffer_manager = store->write_buffers_;
  db_options.max_background_jobs = 2;
  db_options.max_open_files = 512;
  db_options.max_total_wal_size = options.memtable_bytes * 2;
  db_options.keep_log_file_num = 3;
  store->corruption_tolerance_ = std::make_shared<CompactionCorruptionTolerance>(options.data_dir);
  db_options.listeners.push_back(store->corruption_tolerance_);

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = store->cache_;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;

  rocksdb::ColumnFamilyOptions meta_options;
  meta_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  meta_options.write_buffer_size = 16ull << 20;

  rocksdb::ColumnFamilyOptions payload_options;
  payload_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  payload_options.compression = rocksdb::kNoCompression;  // erasure-coded bytes rarely compress
  payload_options.write_buffer_size = 64ull << 20;

  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, options.data_dir, &existing).ok() &&
      std::find(existing.begin(), existing.end(), kOldPayloadFamily) != existing.end()) {
    return Error(ErrorCode::kUnavailable,
                 options.data_dir + " holds fragments in the older format (RocksDB blob files), "
                 "which this version does not read: start the store on an empty directory and "
                 "let `ddsplit heal` rebuild its fragments");
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> families{
      {rocksdb::kDefaultColumnFamilyName, meta_options}, {kPayloadFamily, payload_options}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  auto status = rocksdb::DB::Open(db_options, options.data_dir, families, &handles, &db);
  if (!status.ok()) {
    return Error(ErrorCode::kUnavailable, "cannot open RocksDB at " + options.data_dir + ": " +
                                              status.ToString());
  }
  store->db_.reset(db);
  store->meta_ = handles[0];
  store->payload_ = handles[1];
  auto segments = SegmentLog::Open(options.data_dir + "/segments", options.segment_bytes, options.sync);
  if (!segments.ok()) return std::move(segments).error();
  store->segments_ = std::move(*segments);
  DDSPLIT_RETURN_IF_ERROR(store->CountSegmentReferences());
  return store;
}

// Tells the segment log what RocksDB refers to, so it knows the live bytes of every segment and
// drops the ones nothing refers to (written by a batch that never reached RocksDB).
Status FragmentStore::CountSegmentReferences() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), payload_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (auto ref = DecodeSegmentRef(it->value().ToStringView())) segments_->AddLive(*ref);
  }
  if (!it->status().ok()) {
    // A damaged block must not keep the store from starting (its fragments are repaired like
    // any other damage), but without every reference no segment may be deleted.
    spdlog::error("store {}: cannot count the segment files' references ({}); keeping every "
                  "segment file until the next start", options_.data_dir, it->status().ToString());
    segments_->KeepAll();
    return OkStatus();
  }
  segments_->DropUnreferenced();
  return OkStatus();
}

FragmentStore::~FragmentStore() {
  if (db_) {
    db_->DestroyColumnFamilyHandle(meta_);
    db_->DestroyColumnFamilyHandle(payload_);
    (void)db_->Close();
  }
}

Status FragmentStore::LoadKeyState(std::string_view key, KeyState& state) const {
  state.committed = {};
  state.versions.clear();
  std::string lower(key);
  lower.push_back(kGroupEnd);
  std::string upper(key);
  upper.push_back(kGroupEnd);
  upper.push_back(kHeaderTag + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, meta_));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    std::string_view internal = it->key().ToStringView();
    char tag = internal[key.size() + 1];
    std::string_view value = it->value().ToStringView();
    if (tag == kCommitTag && value.size() == kVersionBytes) {
      state.committed = ParseVersion(value);
    } else if (tag == kHeaderTag && internal.size() == key.size() + 2 + kVersionBytes) {
      state.versions.push_back({ParseVersion(internal.substr(key.size() + 2)), IsTombstone(value)});
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading key state");
  return OkStatus();
}

// Apply()'s state between group commits. The key states of recently written keys are exact
// because Apply() is the only writer; they spare an iterator per operation, which on an
// overwritten key steps over every deleted entry still in the memtables and L0.
struct FragmentStore::ApplyState {
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  std::unordered_map<std::string, KeyState, KeyHash, std::equal_to<>> key_states;
  rocksdb::WriteBatch batch;
  std::string scratch;
  std::string value;
  // Large fragments of this batch: their bytes, their op and where they went.
  std::vector<std::span<const std::byte>> appended;
  std::vector<size_t> appended_ops;
  std::vector<SegmentRef> appended_refs;
  std::vector<std::optional<SegmentRef>> segment_of_op;
  // Segment references this batch adds and drops, counted once it is written.
  std::vector<SegmentRef> added;
  std::vector<SegmentRef> dropped;
  std::set<uint64_t> stuck_segments;  // see ReclaimSegments
};

FragmentStore::FragmentStore() : apply_(std::make_unique<ApplyState>()) {}

Status FragmentStore::Apply(std::span<const StoreOp> ops, std::span<OpResult> results) {
  auto& key_states = apply_->key_states;
  rocksdb::WriteBatch& batch = apply_->batch;
  if (key_states.size() > kMaxCachedKeyStates) key_states.clear();
  batch.Clear();
  // Large fragments go to the segment files first (made durable there before RocksDB refers
  // to them), then their locations go through RocksDB with everything else.
  auto& segment_of_op = apply_->segment_of_op;
  segment_of_op.assign(ops.size(), std::nullopt);
  apply_->appended.clear();
  apply_->appended_ops.clear();
  for (size_t i = 0; i < ops.size(); ++i) {
    const StoreOp& op = ops[i];
    if (op.kind != OpKind::kWrite || op.tombstone || op.payload.size() < options_.segment_min_bytes) {
      continue;
    }
    apply_->appended.push_back(op.payload);
    apply_->appended_ops.push_back(i);
  }
  if (!apply_->appended.empty()) {
    apply_->appended_refs.resize(apply_->appended.size());
    DDSPLIT_RETURN_IF_ERROR(segments_->Append(apply_->appended, apply_->appended_refs));
    DDSPLIT_RETURN_IF_ERROR(segments_->Sync());
    for (size_t j = 0; j < apply_->appended_ops.size(); ++j) {
      segment_of_op[apply_->appended_ops[j]] = apply_->appended_refs[j];
    }
  }
  apply_->added.clear();
  apply_->dropped.clear();
  Status applied = ApplyToBatch(ops, results);
  if (applied.ok() && batch.Count() > 0) {
    rocksdb::WriteOptions write;
    write.sync = options_.sync;
    auto status = db_->Write(write, &batch);
    if (!status.ok()) applied = FromRocks(status, "group commit");
  }
  if (applied.ok()) {
    // Additions first: a segment must not look dead halfway through.
    for (const SegmentRef& ref : apply_->added) segments_->AddLive(ref);
    for (const SegmentRef& ref : apply_->dropped) segments_->RemoveLive(ref);
  }
  // The cached states already show this batch's effects: wrong if it was not written.
  if (!applied.ok()) key_states.clear();
  // Clear() keeps the buffer: keep a small one for the next batch, not one of payload size.
  if (batch.GetDataSize() > (1u << 20)) apply_->batch = rocksdb::WriteBatch();
  return applied;
}

// Adds the writes `ops` need to the batch and updates the key states as if they were written.
Status FragmentStore::ApplyToBatch(std::span<const StoreOp> ops, std::span<OpResult> results) {
  auto& key_states = apply_->key_states;
  rocksdb::WriteBatch& batch = apply_->batch;
  std::string& scratch = apply_->scratch;
  std::string& value = apply_->value;
  // Counts the segment reference of a fragment this batch drops (looking it up if needed).
  auto drop_location = [&](std::string_view key, KeyState::Entry& entry) -> Status {
    if (!entry.location_known) {
      PayloadKey(scratch, key, entry.version);
      rocksdb::PinnableSlice stored;
      auto status = db_->Get(rocksdb::ReadOptions(), payload_, scratch, &stored);
      if (status.ok()) {
        entry.segment = DecodeSegmentRef(stored.ToStringView());
      } else if (status.IsCorruption()) {
        // The entry is damaged: dropping or repairing it must still work. If it pointed into a
        // segment, that space stays taken until the next start recounts the references.
        spdlog::warn("store {}: location of a dropped fragment unreadable: {}", options_.data_dir,
                     status.ToString());
      } else if (!status.IsNotFound()) {
        return FromRocks(status, "reading a fragment's location");
      }
      entry.location_known = true;
    }
    if (entry.segment) apply_->dropped.push_back(*entry.segment);
    entry.segment.reset();
    return OkStatus();
  };
  for (size_t i = 0; i < ops.size(); ++i) {
    const StoreOp& op = ops[i];
    OpResult& result = results[i];
    result = {};
    auto found = key_states.find(op.key);
    if (found == key_states.end()) {
      KeyState loaded;
      DDSPLIT_RETURN_IF_ERROR(LoadKeyState(op.key, loaded));
      found = key_states.emplace(std::string(op.key), std::move(loaded)).first;
    }
    KeyState& state = found->second;
    auto& versions = state.versions;
    auto remove_version = [&](KeyState::Entry& entry) -> Status {
      DDSPLIT_RETURN_IF_ERROR(drop_location(op.key, entry));
      HeaderKey(scratch, op.key, entry.version);
      batch.Delete(meta_, scratch);
      PayloadKey(scratch, op.key, entry.version);
      batch.Delete(payload_, scratch);
      return OkStatus();
    };
    switch (op.kind) {
      case OpKind::kWrite: {
        auto older = std::find_if(versions.begin(), versions.end(),
                                  [&](const KeyState::Entry& e) { return e.version < op.version; });
        result.had_live_version = older != versions.end() && !older->tombstone;
        if (op.version < state.committed) {
          result.obsolete = true;
          break;
        }
        auto same = std::find_if(versions.begin(), versions.end(),
                                 [&](const KeyState::Entry& e) { return e.version == op.version; });
        // Rewriting a version it holds (a repair): the old copy's segment space is dropped.
        if (same != versions.end()) DDSPLIT_RETURN_IF_ERROR(drop_location(op.key, *same));
        HeaderKey(scratch, op.key, op.version);
        batch.Put(meta_, scratch, AsSlice(op.header));
        std::optional<SegmentRef> segment;
        if (!op.tombstone) {
          PayloadKey(scratch, op.key, op.version);
          segment = apply_->segment_of_op[i];
          if (segment) {
            EncodeSegmentRef(value, *segment);
            batch.Put(payload_, scratch, value);
            apply_->added.push_back(*segment);
          } else {
            const char tag = kInlineTag;
            rocksdb::Slice parts[] = {{&tag, 1}, AsSlice(op.payload)};
            rocksdb::Slice key_part(scratch);
            batch.Put(payload_, rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(parts, 2));
            result.stored_inline = true;
          }
        }
        KeyState::Entry written{op.version, op.tombstone, true, segment};
        if (same == versions.end()) {
          versions.insert(older, written);
        } else {
          *same = written;
        }
        break;
      }
      case OpKind::kCommit: {
        if (!(state.committed < op.version)) break;
        state.committed = op.version;
        CommitKey(scratch, op.key);
        std::string encoded;
        AppendVersion(encoded, op.version);
        batch.Put(meta_, scratch, encoded);
        for (auto& entry : versions) {
          if (entry.version < op.version) DDSPLIT_RETURN_IF_ERROR(remove_version(entry));
        }
        std::erase_if(versions, [&](const KeyState::Entry& e) { return e.version < op.version; });
        break;
      }
      case OpKind::kAbort: {
        if (!(state.committed < op.version)) break;
        auto same = std::find_if(versions.begin(), versions.end(),
                                 [&](const KeyState::Entry& e) { return e.version == op.version; });
        if (same == versions.end()) break;
        DDSPLIT_RETURN_IF_ERROR(remove_version(*same));
        versions.erase(same);
        break;
      }
    }
  }
  return OkStatus();
}

Status FragmentStore::ReadVersions(std::string_view key, KeyVersions& out) const {
  out.count = 0;
  std::string lower(key);
  lower.push_back(kGroupEnd);
  std::string upper(key);
  upper.push_back(kGroupEnd);
  upper.push_back(kHeaderTag + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, meta_));
  Version committed;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    std::string_view internal = it->key().ToStringView();
    char tag = internal[key.size() + 1];
    if (tag == kCommitTag && it->value().size() == kVersionBytes) {
      committed = ParseVersion(it->value().ToStringView());
      continue;
    }
    if (tag != kHeaderTag || internal.size() != key.size() + 2 + kVersionBytes) continue;
    if (out.count == out.versions.size()) out.versions.emplace_back();
    HeldVersion& held = out.versions[out.count++];
    held.version = ParseVersion(internal.substr(key.size() + 2));
    held.header.assign(it->value().data(), it->value().size());
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading versions");
  for (size_t i = 0; i < out.count; ++i) {
    out.versions[i].committed = !committed.IsZero() && !(committed < out.versions[i].version);
  }
  return OkStatus();
}

Result<PinnedPayload> FragmentStore::ReadPayload(std::string_view key, Version version) const {
  std::string internal;
  PayloadKey(internal, key, version);
  auto slice = std::make_unique<rocksdb::PinnableSlice>();
  rocksdb::ReadOptions read;
  read.verify_checksums = true;
  auto status = db_->Get(read, payload_, internal, slice.get());
  if (!status.ok()) return FromRocks(status, "reading fragment");
  // A fragment moved by ReclaimSegments between the lookup and the read is looked up again.
  for (int attempt = 0;; ++attempt) {
    const std::string_view value = slice->ToStringView();
    if (!value.empty() && value[0] == kInlineTag) return PinnedPayload(std::move(slice), 1);
    auto ref = DecodeSegmentRef(value);
    if (!ref) return Error(ErrorCode::kCorrupt, "fragment entry unreadable");
    zmq::message_t buffer = transport::BufferPool::Global().Take(ref->length);
    auto read_status = segments_->Read(*ref, std::span(static_cast<std::byte*>(buffer.data()), ref->length));
    if (read_status.ok()) return PinnedPayload(std::move(buffer));
    if (read_status.error().code() != ErrorCode::kNotFound || attempt > 0) return read_status.error();
    slice->Reset();
    status = db_->Get(read, payload_, internal, slice.get());
    if (!status.ok()) return FromRocks(status, "reading fragment");
  }
}

Result<bool> FragmentStore::List(std::string_view prefix, std::string_view after,
                                 const KeyVisitor& visit) const {
  // Internal keys are the key, kGroupEnd (NUL), a tag and a version, and no key holds a NUL:
  // a prefix with one matches no key (but would match the tail of internal keys), and keys sort
  // after `after` exactly when they sort after its part before the first NUL.
  if (prefix.find(kGroupEnd) != std::string_view::npos) return false;
  after = after.substr(0, after.find(kGroupEnd));
  std::string start(prefix);
  if (!after.empty()) {
    std::string past_after(after);
    past_after.push_back('\x01');  // after every entry of `after` itself
    if (past_after > start) start = std::move(past_after);
  }
  rocksdb::ReadOptions read;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, meta_));
  KeyVersions versions;
  std::string current;
  Version committed;
  bool have_current = false;
  auto flush = [&]() -> bool {
    for (size_t i = 0; i < versions.count; ++i) {
      versions.versions[i].committed = !committed.IsZero() && !(committed < versions.versions[i].version);
    }
    return visit(current, versions);
  };
  it->Seek(start);
  for (; it->Valid(); it->Next()) {
    std::string_view internal = it->key().ToStringView();
    if (internal.substr(0, prefix.size()) != prefix) break;
    size_t end = internal.find(kGroupEnd);
    if (end == std::string_view::npos || end + 1 >= internal.size()) continue;
    std::string_view key = internal.substr(0, end);
    if (!have_current || key != current) {
      if (have_current && versions.count > 0 && !flush()) return true;
      current.assign(key);
      have_current = true;
      versions.count = 0;
      committed = {};
    }
    char tag = internal[end + 1];
    if (tag == kCommitTag && it->value().size() == kVersionBytes) {
      committed = ParseVersion(it->value().ToStringView());
    } else if (tag == kHeaderTag && internal.size() == end + 2 + kVersionBytes) {
      if (versions.count == versions.versions.size()) versions.versions.emplace_back();
      HeldVersion& held = versions.versions[versions.count++];
      held.version = ParseVersion(internal.substr(end + 2));
      held.header.assign(it->value().data(), it->value().size());
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing keys");
  if (have_current && versions.count > 0) flush();
  return false;
}

StoreStats FragmentStore::Stats() const {
  StoreStats stats;
  uint64_t value = 0;
  if (db_->GetIntProperty(meta_, "rocksdb.estimate-num-keys", &value)) stats.estimated_keys = value;
  for (auto* family : {meta_, payload_}) {
    if (db_->GetIntProperty(family, "rocksdb.live-sst-files-size", &value)) stats.live_data_bytes += value;
    if (db_->GetIntProperty(family, "rocksdb.cur-size-all-mem-tables", &value)) stats.memtable_bytes += value;
  }
  const SegmentStats segments = segments_->Stats();
  stats.live_data_bytes += segments.live_bytes;
  stats.blob_bytes = segments.file_bytes;
  stats.segments = segments.segments;
  stats.block_cache_bytes = cache_->GetUsage();
  for (auto* family : {meta_, payload_}) {
    if (db_->GetIntProperty(family, "rocksdb.estimate-pending-compaction-bytes", &value)) {
      stats.pending_compaction_bytes += value;
    }
  }
  if (db_->GetIntProperty("rocksdb.num-running-compactions", &value)) stats.running_compactions = value;
  if (db_->GetIntProperty("rocksdb.is-write-stopped", &value)) stats.write_stopped = value != 0;
  if (db_->GetIntProperty("rocksdb.background-errors", &value)) stats.background_errors = value;
  stats.compaction_corruptions = corruption_tolerance_->tolerated();
  struct statvfs fs {};
  if (::statvfs(options_.data_dir.c_str(), &fs) == 0) {
    stats.filesystem_size_bytes = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
    stats.filesystem_avail_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  }
  return stats;
}

Status FragmentStore::Flush() {
  rocksdb::FlushOptions flush;
  auto status = db_->Flush(flush, {meta_, payload_});
  if (!status.ok()) return FromRocks(status, "flush");
  return OkStatus();
}

Result<uint64_t> FragmentStore::ReclaimSegments(uint64_t max_bytes) {
  std::vector<uint64_t> sparse = segments_->SparseSegments(0.5);
  // Segments a pass could not empty (unreadable fragments, or live bytes that no reference
  // explains after an incomplete count) are not scanned for again until the next start.
  auto& stuck = apply_->stuck_segments;
  std::erase_if(sparse, [&](uint64_t id) { return stuck.contains(id); });
  if (sparse.empty()) return uint64_t{0};
  constexpr size_t kSegmentsPerPass = 4;
  if (sparse.size() > kSegmentsPerPass) sparse.resize(kSegmentsPerPass);
  // Which fragments live in them: every location RocksDB holds is looked at (small values).
  struct Moving {
    std::string internal_key;
    SegmentRef from;
    SegmentRef to;
  };
  std::vector<Moving> moving;
  uint64_t bytes = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), payload_));
    for (it->SeekToFirst(); it->Valid() && bytes < max_bytes; it->Next()) {
      auto ref = DecodeSegmentRef(it->value().ToStringView());
      if (!ref || std::find(sparse.begin(), sparse.end(), ref->segment) == sparse.end()) continue;
      moving.push_back({it->key().ToString(), *ref, {}});
      bytes += ref->length;
    }
    if (!it->status().ok()) return FromRocks(it->status(), "finding fragments to move");
  }
  if (moving.empty()) {
    stuck.insert(sparse.begin(), sparse.end());
    return uint64_t{0};
  }
  // Read them (a fragment that cannot be read stays where it is: readers find its damage).
  std::vector<zmq::message_t> buffers;
  buffers.reserve(moving.size());  // never reallocated: the spans point into the messages
  std::vector<std::span<const std::byte>> readable;
  std::vector<size_t> readable_index;
  for (size_t i = 0; i < moving.size(); ++i) {
    const SegmentRef& from = moving[i].from;
    buffers.push_back(transport::BufferPool::Global().Take(from.length));
    auto* data = static_cast<std::byte*>(buffers.back().data());
    if (!segments_->Read(from, std::span(data, from.length)).ok()) {
      buffers.pop_back();
      stuck.insert(from.segment);
      continue;
    }
    readable.emplace_back(data, from.length);
    readable_index.push_back(i);
  }
  std::vector<SegmentRef> placed(readable.size());
  DDSPLIT_RETURN_IF_ERROR(segments_->Append(readable, placed));
  DDSPLIT_RETURN_IF_ERROR(segments_->Sync());
  rocksdb::WriteBatch batch;
  std::string value;
  for (size_t j = 0; j < readable_index.size(); ++j) {
    Moving& m = moving[readable_index[j]];
    m.to = placed[j];
    EncodeSegmentRef(value, m.to);
    batch.Put(payload_, m.internal_key, value);
  }
  rocksdb::WriteOptions write;
  write.sync = options_.sync;
  auto status = db_->Write(write, &batch);
  if (!status.ok()) return FromRocks(status, "moving fragments");
  // The cached states may name the old places.
  apply_->key_states.clear();
  uint64_t moved = 0;
  for (size_t i : readable_index) {
    segments_->AddLive(moving[i].to);
    moved += moving[i].to.length;
  }
  for (size_t i : readable_index) segments_->RemoveLive(moving[i].from);
  return moved;
}

Status FragmentStore::CompactAll() {
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;  // no trivial moves
  for (auto* family : {meta_, payload_}) {
    auto status = db_->CompactRange(compact, family, nullptr, nullptr);
    if (!status.ok()) return FromRocks(status, "compaction");
  }
  while (true) {
    auto moved = ReclaimSegments(64ull << 20);
    if (!moved.ok()) return std::move(moved).error();
    if (*moved == 0) return OkStatus();
  }
}

}  // namespace ddsplit::fragstore
