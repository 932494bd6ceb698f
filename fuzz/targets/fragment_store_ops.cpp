// Fuzz target: FragmentStore on a real RocksDB database fed fuzzed group commits (writes,
// tombstones, commits, aborts in any order and any version), reads, listings, segment space
// reclaims and a reopen,
// checked against FragmentStoreModel (tests/harness/fragment_store_model.h) after every step.
// One database serves the whole run; each input works in its own key namespace, so inputs do
// not see each other and a saved crasher replays alone.
//
// Input: a sequence of steps; each step's first byte picks write batch / read / list / reopen.
// Properties: the store agrees with the model on operation results, versions, committed flags,
// header bytes, payload bytes and listings.
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/wire/envelope.h"
#include "fuzz/fuzz_input.h"
#include "fuzz/server_fixture.h"
#include "services/fragstore/fragment_store.h"
#include "tests/harness/fragment_store_model.h"

namespace ddsplit::fuzz {
namespace {

struct Database {
  std::string dir;
  std::unique_ptr<fragstore::FragmentStore> store;
  uint64_t inputs = 0;

  fragstore::StoreOptions Options() const {
    return {.data_dir = dir, .sync = false, .block_cache_bytes = 1 << 20,
            .memtable_bytes = 512 << 10, .segment_min_bytes = 128, .segment_bytes = 64 << 10};
  }
  void Open() {
    store.reset();
    auto opened = fragstore::FragmentStore::Open(Options());
    DDSPLIT_FUZZ_ASSERT(opened.ok());
    store = std::move(*opened);
  }
};

Database& Db() {
  static Database* db = [] {
    auto* created = new Database;
    std::string pattern = (ScratchRoot() / "ddsplit-fuzz-store-XXXXXX").string();
    DDSPLIT_FUZZ_ASSERT(mkdtemp(pattern.data()) != nullptr);
    created->dir = pattern;
    created->Open();
    std::atexit([] {
      Db().store.reset();
      std::error_code ec;
      std::filesystem::remove_all(Db().dir, ec);
    });
    return created;
  }();
  return *db;
}

std::string Header(bool tombstone, size_t size, uint8_t index) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::FragmentHeaderBuilder header(fbb);
  header.add_index(index);
  header.add_k(4);
  header.add_m(2);
  header.add_size(size);
  header.add_tombstone(tombstone);
  fbb.Finish(header.Finish());
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

std::span<const std::byte> Span(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

void CheckKey(const testing::FragmentStoreModel& model, const std::string& key) {
  fragstore::KeyVersions got;
  DDSPLIT_FUZZ_ASSERT(Db().store->ReadVersions(key, got).ok());
  auto expected = model.Versions(key);
  DDSPLIT_FUZZ_ASSERT(got.count == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    DDSPLIT_FUZZ_ASSERT(got.versions[i].version == expected[i].version);
    DDSPLIT_FUZZ_ASSERT(got.versions[i].committed == expected[i].committed);
    DDSPLIT_FUZZ_ASSERT(got.versions[i].header == expected[i].held->header);
    auto payload = Db().store->ReadPayload(key, expected[i].version);
    auto want = model.Payload(key, expected[i].version);
    if (!want) {
      DDSPLIT_FUZZ_ASSERT(!payload.ok() && payload.error().code() == ErrorCode::kNotFound);
    } else {
      DDSPLIT_FUZZ_ASSERT(payload.ok());
      auto bytes = payload->bytes();
      DDSPLIT_FUZZ_ASSERT(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()) == *want);
    }
  }
}

}  // namespace
}  // namespace ddsplit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddsplit;
  using fragstore::OpKind;
  auto& db = fuzz::Db();
  fuzz::FuzzInput in(data, size);
  const std::string ns = "run" + std::to_string(db.inputs++) + "/";
  static const char* kSuffixes[] = {"a", "a\x01", "a/b", "ab", "b", "\xc3\xa9", "z"};
  std::vector<std::string> keys;
  for (const char* s : kSuffixes) keys.push_back(ns + s);
  testing::FragmentStoreModel model;
  std::vector<std::string> storage;
  storage.reserve(64);
  bool reopened = false;
  for (int step = 0; step < 24 && !in.empty(); ++step) {
    uint8_t what = in.Byte() % 8;
    if (what < 5) {
      // A group commit of up to 6 operations.
      std::vector<fragstore::StoreOp> ops;
      storage.clear();
      int count = static_cast<int>(in.Range(1, 6));
      for (int i = 0; i < count; ++i) {
        fragstore::StoreOp op;
        uint8_t kind = in.Byte();
        op.kind = kind % 3 == 0 ? OpKind::kWrite : kind % 3 == 1 ? OpKind::kCommit : OpKind::kAbort;
        if (kind & 0x80) op.kind = OpKind::kWrite;
        op.key = keys[in.Range(0, keys.size() - 1)];
        uint8_t v = in.Byte();
        op.version = {static_cast<uint64_t>(v >> 2) + 1, v & 3u};
        if (op.kind == OpKind::kWrite) {
          // The same (key, version) always carries the same bytes, as a resent fragment does.
          op.tombstone = (v & 3) == 3;
          size_t payload_size = op.tombstone ? 0 : (v * 37u) % 700;
          if (!op.tombstone && (v & 0x40)) payload_size += 4000;
          storage.push_back(fuzz::Header(op.tombstone, payload_size, v % 6));
          op.header = fuzz::Span(storage.back());
          storage.push_back(std::string(payload_size, static_cast<char>(v)) + std::string(op.key));
          storage.back().resize(payload_size);
          op.payload = fuzz::Span(storage.back());
        }
        ops.push_back(op);
      }
      std::vector<fragstore::OpResult> results(ops.size());
      DDSPLIT_FUZZ_ASSERT(db.store->Apply(ops, results).ok());
      for (size_t i = 0; i < ops.size(); ++i) {
        auto expected = model.Apply(ops[i]);
        DDSPLIT_FUZZ_ASSERT(results[i].had_live_version == expected.had_live_version);
        DDSPLIT_FUZZ_ASSERT(results[i].obsolete == expected.obsolete);
      }
    } else if (what == 5) {
      // List within the namespace, after a cursor, with a limit.
      std::string prefix = ns + std::string(in.Bytes(2));
      // The cursor: none, one of the keys, or any bytes (a NUL too) within the namespace.
      uint8_t cursor_kind = in.Byte();
      std::string after = (cursor_kind & 1) ? keys[in.Range(0, keys.size() - 1)]
                          : (cursor_kind & 2) ? ns + std::string(in.Bytes(3))
                                              : std::string();
      size_t limit = in.Range(1, 8);
      std::vector<std::string> seen;
      auto more = db.store->List(prefix, after, [&](std::string_view key, const fragstore::KeyVersions&) {
        seen.emplace_back(key);
        return seen.size() < limit;
      });
      DDSPLIT_FUZZ_ASSERT(more.ok());
      auto expected = model.ListKeys(prefix, after);
      // Keys outside this input's namespace cannot match its prefix.
      if (expected.size() > limit) DDSPLIT_FUZZ_ASSERT(*more);
      expected.resize(std::min(expected.size(), limit));
      DDSPLIT_FUZZ_ASSERT(seen == expected);
    } else if (what == 6) {
      // Flushes and reopens cost milliseconds (file syncs), and the fuzzer soon learns any marker
      // byte: allow them on a few inputs only (one in 16, one in 64).
      if (in.Bool() && db.inputs % 16 == 1) {
        DDSPLIT_FUZZ_ASSERT(db.store->Flush().ok());
      } else if (in.Bool()) {
        // Moving fragments out of sparse segments must change nothing a reader sees.
        DDSPLIT_FUZZ_ASSERT(db.store->ReclaimSegments(in.Range(1, 1 << 20)).ok());
      }
    } else if (!reopened && in.Bool() && db.inputs % 64 == 1) {
      reopened = true;  // reopening costs milliseconds: once per input
      db.Open();
    }
    for (const auto& key : keys) fuzz::CheckKey(model, key);
  }
  return 0;
}
