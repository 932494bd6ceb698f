#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/wire/envelope.h"
#include "services/fragstore/fragment_store.h"
#include "tests/support/file_damage.h"
#include "tests/support/temp_dir.h"

namespace ddsplit::fragstore {
namespace {

std::string Header(bool tombstone, uint64_t size) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::FragmentHeaderBuilder header(fbb);
  header.add_tombstone(tombstone);
  header.add_size(size);
  header.add_k(4);
  header.add_m(2);
  fbb.Finish(header.Finish());
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

std::span<const std::byte> Bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

// Owns the bytes of the operations it builds.
struct Ops {
  std::vector<std::string> storage;
  std::vector<StoreOp> ops;
  std::string_view Keep(std::string_view key) {
    storage.emplace_back(key);
    return storage.back();
  }
  Ops& Write(std::string_view key_text, Version v, std::string payload, bool tombstone = false) {
    std::string_view key = Keep(key_text);
    storage.push_back(Header(tombstone, payload.size()));
    const std::string& header = storage.back();
    storage.push_back(std::move(payload));
    const std::string& body = storage.back();
    StoreOp op{OpKind::kWrite, key, v, tombstone, {}, {}};
    op.header = Bytes(header);
    op.payload = Bytes(body);
    ops.push_back(op);
    return *this;
  }
  Ops& Commit(std::string_view key, Version v) {
    ops.push_back({OpKind::kCommit, Keep(key), v, false, {}, {}});
    return *this;
  }
  Ops& Abort(std::string_view key, Version v) {
    ops.push_back({OpKind::kAbort, Keep(key), v, false, {}, {}});
    return *this;
  }
  Ops() { storage.reserve(1000); }  // views into storage must stay valid: never reallocate
};

std::vector<OpResult> Apply(FragmentStore& store, Ops& ops) {
  std::vector<OpResult> results(ops.ops.size());
  REQUIRE(store.Apply(ops.ops, results).ok());
  return results;
}

std::vector<std::pair<Version, bool>> Versions(FragmentStore& store, std::string_view key) {
  KeyVersions kv;
  REQUIRE(store.ReadVersions(key, kv).ok());
  std::vector<std::pair<Version, bool>> out;
  for (const auto& v : kv.view()) out.emplace_back(v.version, v.committed);
  return out;
}

std::string Payload(FragmentStore& store, std::string_view key, Version v) {
  auto payload = store.ReadPayload(key, v);
  REQUIRE(payload.ok());
  auto bytes = payload->bytes();
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

const Version v1{100, 1}, v2{200, 1}, v3{300, 2}, v4{400, 1};

TEST_CASE("an older version stays until a newer one is committed") {
  testing::TempDir dir;
  auto store = FragmentStore::Open({.data_dir = dir.str(), .sync = false});
  REQUIRE(store.ok());
  FragmentStore& s = **store;

  Ops first;
  first.Write("k", v1, "one");
  auto results = Apply(s, first);
  CHECK(!results[0].had_live_version);
  CHECK(Versions(s, "k") == std::vector<std::pair<Version, bool>>{{v1, false}});
  Ops commit1;
  Apply(s, commit1.Commit("k", v1));
  CHECK(Versions(s, "k") == std::vector<std::pair<Version, bool>>{{v1, true}});

  Ops second;
  results = Apply(s, second.Write("k", v2, "two"));
  CHECK(results[0].had_live_version);
  CHECK(Versions(s, "k") == std::vector<std::pair<Version, bool>>{{v2, false}, {v1, true}});
  CHECK(Payload(s, "k", v1) == "one");

  Ops commit2;
  Apply(s, commit2.Commit("k", v2));
  CHECK(Versions(s, "k") == std::vector<std::pair<Version, bool>>{{v2, true}});
  CHECK(Payload(s, "k", v2) == "two");
  CHECK(s.ReadPayload("k", v1).error().code() == ErrorCode::kNotFound);
}

TEST_CASE("aborts drop only uncommitted versions; writes older than the commit are obsolete") {
  testing::TempDir dir;
  auto store = FragmentStore::Open({.data_dir = dir.str(), .sync = false});
  FragmentStore& s = **store;
  Ops ops;
  ops.Write("k", v2, "two").Commit("k", v2).Write("k", v3, "three").Abort("k", v3).Abort("k", v2);
  Apply(s, ops);
  CHECK(Versions(s, "k") == std::vector<std::pair<Version, bool>>{{v2, true}});
  Ops late;
  auto results = Apply(s, late.Write("k", v1, "one"));
  CHECK(results[0].obsolete);
  CHECK(Versions(s, "k") == std::vector<std::pair<Version, bool>>{{v2, true}});
}

TEST_CASE("tombstones are versions; a write after a committed delete had no live version") {
  testing::TempDir dir;
  auto store = FragmentStore::Open({.data_dir = dir.str(), .sync = false});
  FragmentStore& s = **store;
  Ops ops;
  ops.Write("k", v1, "one").Commit("k", v1).Write("k", v2, "", true).Commit("k", v2);
  auto results = Apply(s, ops);
  CHECK(results[2].had_live_version);  // the delete found a live record
  Ops again;
  results = Apply(s, again.Write("k", v3, "three"));
  CHECK(!results[0].had_live_version);
  Ops delete_again;
  results = Apply(s, delete_again.Write("k", v4, "", true));
  CHECK(results[0].had_live_version);
}

TEST_CASE("state survives a reopen") {
  testing::TempDir dir;
  {
    auto store = FragmentStore::Open({.data_dir = dir.str(), .sync = true});
    Ops ops;
    Apply(**store, ops.Write("durable", v1, std::string(100000, 'x')).Commit("durable", v1));
  }
  auto store = FragmentStore::Open({.data_dir = dir.str(), .sync = true});
  REQUIRE(store.ok());
  CHECK(Versions(**store, "durable") == std::vector<std::pair<Version, bool>>{{v1, true}});
  CHECK(Payload(**store, "durable", v1) == std::string(100000, 'x'));
}

TEST_CASE("listing visits each key once, in order, after the cursor and within the prefix") {
  testing::TempDir dir;
  auto store = FragmentStore::Open({.data_dir = dir.str(), .sync = false});
  FragmentStore& s = **store;
  Ops ops;
  std::vector<std::string> keys{"a", "a\x01", "ab", "b/1", "b/2", "b/3", "c"};
  for (const auto& key : keys) ops.Write(key, v1, "x").Write(key, v2, "y");
  Apply(s, ops);

  auto list = [&](std::string_view prefix, std::string_view after, size_t limit, bool* more) {
    std::vector<std::string> seen;
    auto result = s.List(prefix, after, [&](std::string_view key, const KeyVersions& kv) {
      CHECK(kv.count == 2);
      seen.emplace_back(key);
      return seen.size() < limit;
    });
    REQUIRE(result.ok());
    *more = *result;
    return seen;
  };
  bool more = false;
  CHECK(list("", "", 100, &more) == keys);
  CHECK(!more);
  CHECK(list("b/", "", 100, &more) == std::vector<std::string>{"b/1", "b/2", "b/3"});
  CHECK(list("b/", "b/1", 100, &more) == std::vector<std::string>{"b/2", "b/3"});
  CHECK(list("", "a", 2, &more) == std::vector<std::string>{"a\x01", "ab"});
  CHECK(more);
  CHECK(list("", "c", 10, &more).empty());
  CHECK(!more);

  // No key holds a NUL byte; internal keys do (after the key), and must not leak through.
  using namespace std::string_literals;
  CHECK(list("a\0"s, "", 100, &more).empty());
  CHECK(list("b/1\0"s, "", 100, &more).empty());
  CHECK(list("", "a\0"s, 1, &more) == std::vector<std::string>{"a\x01"});
  CHECK(list("b/", "b/1\0\x01"s, 100, &more) == std::vector<std::string>{"b/2", "b/3"});
}

TEST_CASE("stats report what is stored") {
  testing::TempDir dir;
  auto store = FragmentStore::Open({.data_dir = dir.str(), .sync = false});
  Ops ops;
  for (int i = 0; i < 50; ++i) ops.Write("key" + std::to_string(i), v1, std::string(10000, 'z'));
  Apply(**store, ops);
  REQUIRE((*store)->Flush().ok());
  auto stats = (*store)->Stats();
  CHECK(stats.live_data_bytes >= 50 * 10000);
}

TEST_CASE("a compaction that meets a corrupt fragment does not stop the store's writes") {
  testing::TempDir dir;
  // Fragments stay inline in RocksDB (in SST files): a compaction must read the victim's bytes.
  const StoreOptions options{.data_dir = dir.str(), .sync = false, .segment_min_bytes = 1 << 20};
  std::string victim(20000, '\0');
  for (size_t i = 0; i < victim.size(); ++i) victim[i] = static_cast<char>('a' + i * 7 % 26);
  {
    auto store = FragmentStore::Open(options);
    REQUIRE(store.ok());
    Ops ops;
    Apply(**store, ops.Write("victim", v1, victim).Commit("victim", v1).Write("other", v1, std::string(5000, 'o')));
    REQUIRE((*store)->Flush().ok());
  }
  // One flipped bit in the middle of the victim's payload, in its SST file.
  auto needle = std::as_bytes(std::span(victim)).subspan(victim.size() / 2, 64);
  auto damaged = testing::FlipByteWhere(dir.path(), needle, 10);
  REQUIRE_MESSAGE(damaged.ok(), damaged.error().ToString());
  CHECK(damaged->ends_with(".sst"));

  auto store = FragmentStore::Open(options);
  REQUIRE_MESSAGE(store.ok(), store.error().ToString());
  FragmentStore& s = **store;
  auto read = s.ReadPayload("victim", v1);
  REQUIRE_FALSE(read.ok());
  CHECK(read.error().code() == ErrorCode::kCorrupt);
  // A full compaction must rewrite the victim's SST and reads the damage. RocksDB would stop
  // every write after that; the store counts it instead and goes on.
  (void)s.CompactAll();
  CHECK(s.Stats().compaction_corruptions >= 1);
  Ops more;
  Apply(s, more.Write("after", v1, std::string(3000, 'n')).Commit("after", v1));
  CHECK(Payload(s, "after", v1) == std::string(3000, 'n'));
  // A repair rewrites the fragment (even though the damaged entry cannot be read any more).
  // The damaged SST block stays until RocksDB rewrites that file: compactions that include it
  // keep meeting it, counted, while reads and writes go on.
  Ops repair;
  Apply(s, repair.Write("victim", v1, victim));
  CHECK(Payload(s, "victim", v1) == victim);
  (void)s.CompactAll();
  CHECK(Payload(s, "victim", v1) == victim);
  CHECK(Payload(s, "other", v1) == std::string(5000, 'o'));
}

size_t SegmentFiles(const testing::TempDir& dir) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() / "segments")) {
    files += entry.path().extension() == ".seg" ? 1 : 0;
  }
  return files;
}

std::string Filled(char first, size_t size) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(first + i * 13 % 31);
  return bytes;
}

// Synced segment files closed at ~64 KiB, for fragments of 4 KiB and more.
StoreOptions SmallSegments(const testing::TempDir& dir) {
  return {.data_dir = dir.str(), .sync = true, .segment_min_bytes = 4096, .segment_bytes = 64 << 10};
}

TEST_CASE("large fragments live in segment files, which go once nothing refers to them") {
  testing::TempDir dir;
  // Segments of ~64 KiB: each batch of two 40 KiB fragments starts a new one.
  const StoreOptions options = SmallSegments(dir);
  auto store = FragmentStore::Open(options);
  REQUIRE(store.ok());
  FragmentStore& s = **store;
  Ops small;
  Apply(s, small.Write("small", v1, "inline bytes").Commit("small", v1));
  std::map<std::string, std::string> newest;
  const std::vector<Version> versions{v1, v2, v3, v4};
  for (size_t round = 0; round < versions.size(); ++round) {
    Ops writes;
    for (const std::string key : {"a", "b"}) {
      newest[key] = Filled(static_cast<char>('a' + round), 40 << 10);
      writes.Write(key, versions[round], newest[key]);
    }
    Apply(s, writes);
    Ops commits;
    Apply(s, commits.Commit("a", versions[round]).Commit("b", versions[round]));
  }
  for (const auto& [key, bytes] : newest) CHECK(Payload(s, key, v4) == bytes);
  CHECK(Payload(s, "small", v1) == "inline bytes");
  // Only the last round's segment and the active one (empty or not) remain.
  CHECK(SegmentFiles(dir) <= 2);
  const StoreStats stats = s.Stats();
  CHECK(stats.blob_bytes >= 2 * (40 << 10));
  CHECK(stats.blob_bytes <= 2 * (40 << 10) * 2);

  // Deleting the last references (a newer tombstone, committed) deletes their segment once it
  // is no longer the one appended to.
  const Version v5{500, 1};
  Ops tombstones;
  Apply(s, tombstones.Write("a", v5, "", true).Write("b", v5, "", true).Commit("a", v5).Commit("b", v5));
  Ops next;
  Apply(s, next.Write("d", v1, Filled('d', 9000)));
  CHECK(SegmentFiles(dir) == 1);
  CHECK(s.Stats().blob_bytes == 9000);
  store->reset();

  // A segment nothing refers to (a batch whose RocksDB write never happened) goes at open.
  {
    std::ofstream orphan(dir.path() / "segments" / "00000000000000ff.seg", std::ios::binary);
    orphan << Filled('z', 10000);
  }
  Ops more;
  auto reopened = FragmentStore::Open(options);
  REQUIRE(reopened.ok());
  CHECK_FALSE(std::filesystem::exists(dir.path() / "segments" / "00000000000000ff.seg"));
  CHECK(SegmentFiles(dir) == 1);  // d's
  Apply(**reopened, more.Write("c", v1, Filled('c', 9000)).Commit("c", v1));
  CHECK(Payload(**reopened, "c", v1) == Filled('c', 9000));
  CHECK(Payload(**reopened, "small", v1) == "inline bytes");
  CHECK(Payload(**reopened, "d", v1) == Filled('d', 9000));
}

TEST_CASE("a read fragment keeps its bytes when the holder moves, tiny ones included") {
  testing::TempDir dir;
  auto store = FragmentStore::Open({.data_dir = dir.str(), .sync = false, .segment_min_bytes = 1});
  REQUIRE(store.ok());
  Ops ops;
  Apply(**store, ops.Write("tiny", v1, "abc").Write("big", v1, Filled('b', 70000)));
  for (const auto& [key, bytes] : {std::pair<std::string, std::string>{"tiny", "abc"}, {"big", Filled('b', 70000)}}) {
    auto read = (**store).ReadPayload(key, v1);
    REQUIRE(read.ok());
    CHECK_FALSE(read->copied());  // from a segment file: the kernel's copy only
    auto moved = std::make_unique<PinnedPayload>(std::move(*read));
    read = Error(ErrorCode::kInternal, "overwritten");  // the old holder's memory is reused
    auto again = std::move(*moved);
    moved.reset();
    CHECK(std::string(reinterpret_cast<const char*>(again.bytes().data()), again.bytes().size()) == bytes);
  }
}

TEST_CASE("the live fragments of a mostly-garbage segment are moved so the file can go") {
  testing::TempDir dir;
  const StoreOptions options = SmallSegments(dir);
  auto store = FragmentStore::Open(options);
  REQUIRE(store.ok());
  FragmentStore& s = **store;
  // Eight 16 KiB fragments, one batch each: segments of four.
  std::map<std::string, std::string> written;
  for (int i = 0; i < 8; ++i) {
    const std::string key = "k" + std::to_string(i);
    written[key] = Filled(static_cast<char>('a' + i), 16 << 10);
    Ops ops;
    Apply(s, ops.Write(key, v1, written[key]).Commit(key, v1));
  }
  Ops next;  // closes the second segment
  Apply(s, next.Write("last", v1, Filled('z', 5000)));
  CHECK(s.ReclaimSegments(1 << 30).value() == 0);  // nothing sparse yet
  // Three of the first segment's four fragments deleted: a quarter of it is live.
  Ops deletes;
  for (const std::string key : {"k0", "k1", "k2"}) {
    deletes.Write(key, v2, "", true).Commit(key, v2);
    written.erase(key);
  }
  Apply(s, deletes);
  const uint64_t before = s.Stats().blob_bytes;
  auto moved = s.ReclaimSegments(1 << 30);
  REQUIRE(moved.ok());
  CHECK(*moved == 16 << 10);
  CHECK(s.Stats().blob_bytes == before - (64 << 10) + (16 << 10));
  CHECK(s.ReclaimSegments(1 << 30).value() == 0);
  for (const auto& [key, bytes] : written) CHECK(Payload(s, key, v1) == bytes);
  // The moved fragment is where RocksDB says, also after a restart, and drops normally.
  store->reset();
  auto reopened = FragmentStore::Open(options);
  REQUIRE(reopened.ok());
  for (const auto& [key, bytes] : written) CHECK(Payload(**reopened, key, v1) == bytes);
  Ops drop;
  Apply(**reopened, drop.Write("k3", v2, "", true).Commit("k3", v2));
  CHECK((**reopened).ReadPayload("k3", v1).error().code() == ErrorCode::kNotFound);
}

TEST_CASE("a fragment whose segment file is damaged reads back changed or as corrupt, and can be rewritten") {
  testing::TempDir dir;
  const StoreOptions options{.data_dir = dir.str(), .sync = false, .segment_min_bytes = 4096};
  const std::string flipped = Filled('f', 20000);
  const std::string cut = Filled('t', 30000);
  {
    auto store = FragmentStore::Open(options);
    REQUIRE(store.ok());
    Ops ops;
    Apply(**store, ops.Write("flipped", v1, flipped).Commit("flipped", v1).Write("cut", v1, cut).Commit("cut", v1));
  }
  auto needle = std::as_bytes(std::span(flipped)).subspan(1000, 64);
  auto damaged = testing::FlipByteWhere(dir.path(), needle, 10);
  REQUIRE_MESSAGE(damaged.ok(), damaged.error().ToString());
  CHECK(damaged->ends_with(".seg"));
  std::filesystem::resize_file(*damaged, std::filesystem::file_size(*damaged) - 100);  // "cut" is last

  auto store = FragmentStore::Open(options);
  REQUIRE(store.ok());
  FragmentStore& s = **store;
  // The store hands out the bytes it has: the fragment checksum, checked by every reader
  // (fetch, scrub), tells they changed.
  auto read = s.ReadPayload("flipped", v1);
  REQUIRE(read.ok());
  CHECK(read->bytes().size() == flipped.size());
  CHECK(std::string(reinterpret_cast<const char*>(read->bytes().data()), read->bytes().size()) != flipped);
  auto short_read = s.ReadPayload("cut", v1);
  REQUIRE_FALSE(short_read.ok());
  CHECK(short_read.error().code() == ErrorCode::kCorrupt);
  // Segment damage is invisible to RocksDB: compaction and writes carry on; a repair rewrites.
  CHECK(s.CompactAll().ok());
  CHECK(s.Stats().compaction_corruptions == 0);
  Ops repair;
  Apply(s, repair.Write("flipped", v1, flipped).Write("cut", v1, cut));
  CHECK(Payload(s, "flipped", v1) == flipped);
  CHECK(Payload(s, "cut", v1) == cut);
}

}  // namespace
}  // namespace ddsplit::fragstore
