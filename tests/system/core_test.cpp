// System tests of the core: real fragstore, splitter and assembler processes on loopback, real
// RocksDB on disk, the real client library.
#include <doctest/doctest.h>

#include <array>
#include <map>
#include <set>

#include "common/codec/checksum.h"
#include "tests/harness/fault_load.h"
#include "tests/harness/harness.h"

namespace ddsplit::testing {
namespace {

using client::GetOptions;
using client::PutArgs;

client::PutResult PutOrFail(client::Client& c, const std::string& key, std::span<const std::byte> value) {
  auto result = c.Put({key, value, "application/octet-stream", {}});
  REQUIRE_MESSAGE(result.ok(), "put ", key, ": ", result.error().ToString());
  return *result;
}

std::vector<std::byte> GetOrFail(client::Client& c, const std::string& key, GetOptions options = {}) {
  auto result = c.Get(key, options);
  REQUIRE_MESSAGE(result.ok(), "get ", key, ": ", result.error().ToString());
  std::vector<std::byte> bytes(result->value.size());
  result->value.CopyTo(bytes);
  return bytes;
}

TEST_CASE("records of every size round-trip byte for byte, also by range") {
  TestCluster tc;
  auto& c = tc.client();
  const size_t sizes[] = {0, 1, 3, 4095, 4096, (1u << 20) + 1, 16u << 20};
  for (size_t size : sizes) {
    CAPTURE(size);
    auto value = RandomBytes(size, 1000 + size);
    std::string key = "sizes/" + std::to_string(size);
    auto put = PutOrFail(c, key, value);
    CHECK(put.created);
    CHECK(put.size == size);
    CHECK(GetOrFail(c, key) == value);
    GetOptions head;
    head.head_only = true;
    auto info = c.Get(key, head);
    REQUIRE(info.ok());
    CHECK(info->info.size == size);
    CHECK(info->value.size() == 0);
  }
  // Ranges of a record that spans four data fragments.
  const size_t size = (1u << 20) + 1;
  auto value = RandomBytes(size, 1000 + size);
  std::string key = "sizes/" + std::to_string(size);
  auto range = [&](uint64_t offset, uint64_t length) {
    GetOptions options;
    options.range = std::make_pair(offset, length);
    return GetOrFail(c, key, options);
  };
  auto slice = [&](size_t offset, size_t length) {
    return std::vector<std::byte>(value.begin() + offset, value.begin() + offset + length);
  };
  CHECK(range(0, 1) == slice(0, 1));
  CHECK(range(size - 1, 1) == slice(size - 1, 1));
  CHECK(range(262000, 1000) == slice(262000, 1000));  // crosses the first fragment boundary
  CHECK(range(100, UINT64_MAX - 100) == slice(100, size - 100));  // clamped to the end
  GetOptions suffix;
  suffix.suffix_length = 500;
  CHECK(GetOrFail(c, key, suffix) == slice(size - 500, 500));
  GetOptions beyond;
  beyond.range = std::make_pair(uint64_t{size}, uint64_t{10});
  auto refused = c.Get(key, beyond);
  REQUIRE(!refused.ok());
  CHECK(refused.error().code() == ErrorCode::kRangeNotSatisfiable);
  auto empty_range = c.Get("sizes/0", GetOptions{std::make_pair(uint64_t{0}, uint64_t{1}), 0, false});
  CHECK(empty_range.error().code() == ErrorCode::kRangeNotSatisfiable);
}

TEST_CASE("a splitter announces itself connected to every store; its readiness follows the quorum") {
  TestCluster tc;
  auto& cluster = tc.cluster();
  auto connected = [&]() -> double {
    auto metrics = tc.Metrics(Role::kSplitter, 0);
    return metrics.ok() ? MetricValue(*metrics, "ddsplit_splitter_stores_connected").value_or(-1) : -1;
  };
  // No waiting: a splitter that has announced has finished its handshake with every store, so
  // the first writes reach all six.
  CHECK(connected() == 6);
  PutOrFail(tc.client(), "first", AsBytes("written right after start-up"));
  REQUIRE(WaitForFullRedundancy(tc.client(), {"first"}));
  auto ready = [&] {
    auto status = tc.AdminStatus(Role::kSplitter, 0, "/readyz");
    return status.ok() ? *status : -1;
  };
  REQUIRE(cluster.Kill(Role::kStore, 1).ok());
  REQUIRE(WaitFor([&] { return connected() == 5; }, std::chrono::seconds(15)));
  CHECK(ready() == 200);  // 5 stores still make the write quorum (k + 1)
  REQUIRE(cluster.Kill(Role::kStore, 4).ok());
  REQUIRE(WaitFor([&] { return connected() == 4; }, std::chrono::seconds(15)));
  CHECK(ready() == 503);
  REQUIRE(cluster.Restart(Role::kStore, 1).ok());
  REQUIRE(cluster.Restart(Role::kStore, 4).ok());
  REQUIRE(WaitFor([&] { return connected() == 6; }, std::chrono::seconds(15)));
  CHECK(ready() == 200);
}

TEST_CASE("with any two stores killed every record reads back; with three, a clear error") {
  TestCluster tc;
  auto& c = tc.client();
  std::map<std::string, std::vector<std::byte>> records;
  for (int i = 0; i < 12; ++i) {
    size_t size = i == 0 ? 0 : i == 1 ? 1 : static_cast<size_t>(i) * 37000 + 11;
    std::string key = "durable/" + std::to_string(i);
    records[key] = RandomBytes(size, 77 + i);
    PutOrFail(c, key, records[key]);
  }
  std::vector<std::string> keys;
  for (const auto& entry : records) keys.push_back(entry.first);
  REQUIRE(WaitForFullRedundancy(c, keys));
  auto& cluster = tc.cluster();
  for (int a = 0; a < 6; ++a) {
    for (int b = a + 1; b < 6; ++b) {
      CAPTURE(a);
      CAPTURE(b);
      REQUIRE(cluster.Kill(Role::kStore, a).ok());
      REQUIRE(cluster.Kill(Role::kStore, b).ok());
      for (const auto& entry : records) {
        const auto& key = entry.first;
        const auto& value = entry.second;
        auto got = c.Get(key);
        REQUIRE_MESSAGE(got.ok(), key, ": ", got.error().ToString());
        CHECK(got->value.ToString() == AsString(value));
      }
      REQUIRE(cluster.Restart(Role::kStore, a).ok());
      REQUIRE(cluster.Restart(Role::kStore, b).ok());
      REQUIRE(WaitForAllStoresReachable(c, "durable/5"));
    }
  }
  for (int s : {0, 2, 4}) REQUIRE(cluster.Kill(Role::kStore, s).ok());
  for (const auto& [key, value] : records) {
    auto got = c.Get(key);
    if (got.ok()) {
      FAIL("a read with three of six stores down answered: ", key);
    } else {
      CAPTURE(got.error().ToString());
      CHECK((got.error().code() == ErrorCode::kUnavailable || got.error().code() == ErrorCode::kStale));
      CHECK(!got.error().message().empty());
    }
  }
}

TEST_CASE("a store killed during a stream of puts loses no acknowledged write") {
  TestCluster tc;
  auto& cluster = tc.cluster();
  auto& c = tc.client();
  struct Acked {
    std::vector<std::byte> value;
    bool after_restart;  // issued once the victim was back
  };
  std::map<std::string, Acked> acked;
  std::map<std::string, std::vector<std::byte>> in_flight;
  int next = 0;
  bool restarted = false;
  const int victim = 3;
  auto issue = [&](int count) {
    for (int i = 0; i < count; ++i) {
      std::string key = "stream/" + std::to_string(next++ % 300);
      if (in_flight.count(key)) continue;
      auto& value = in_flight[key] = RandomBytes(20000 + (next % 7) * 1000, next);
      c.PutAsync({key, value, "", {}}, [&, key, late = restarted](Result<client::PutResult> result) {
        if (result.ok()) acked[key] = {in_flight[key], late};
        in_flight.erase(key);
      });
    }
  };
  auto drain = [&] {
    while (c.in_flight() > 0) c.Poll(std::chrono::milliseconds(50));
  };
  auto keys_of = [&](auto&& keep) {
    std::vector<std::string> keys;
    for (const auto& [key, record] : acked) {
      if (keep(record)) keys.push_back(key);
    }
    return keys;
  };
  // Records the victim provably stored before it died: fully redundant just before the kill.
  std::map<std::string, std::vector<std::byte>> victim_stored;
  for (int round = 0; round < 30; ++round) {
    if (round == 10) {
      drain();
      auto keys = keys_of([](const Acked&) { return true; });
      REQUIRE(WaitForFullRedundancy(c, keys));
      for (const auto& key : keys) victim_stored[key] = acked[key].value;
    }
    issue(16);
    c.Poll(std::chrono::milliseconds(20));
    if (round == 10) REQUIRE(cluster.Kill(Role::kStore, victim).ok());  // with writes in flight
    if (round == 20) {
      drain();
      REQUIRE(cluster.Restart(Role::kStore, victim).ok());
      REQUIRE(WaitForAllStoresReachable(c, acked.begin()->first));
      REQUIRE(tc.WaitForSplittersConnected());  // the late writes must reach the victim too
      // Durability across kill -9: before any read could repair it, the restarted store still
      // holds every fragment it had committed (the same version or, if overwritten while it
      // was down, that older one).
      for (const auto& entry : victim_stored) {
        const auto& key = entry.first;
        auto stat = c.Stat(key);
        REQUIRE_MESSAGE(stat.ok(), key, ": ", stat.error().ToString());
        bool victim_holds = false;
        for (const auto& f : stat->fragments) {
          if (static_cast<int>(f.store_id) == cluster.Info(Role::kStore, victim).store_id) {
            victim_holds = f.state == client::FragmentState::kOk ||
                           f.state == client::FragmentState::kStale;
          }
        }
        CHECK_MESSAGE(victim_holds, "the restarted store lost its fragment of ", key);
      }
      restarted = true;
    }
  }
  drain();
  REQUIRE(acked.size() > 100);
  for (const auto& entry : acked) {
    const auto& key = entry.first;
    const auto& record = entry.second;
    auto got = c.Get(key);
    REQUIRE_MESSAGE(got.ok(), key, ": ", got.error().ToString());
    CHECK(got->value.ToString() == AsString(record.value));
  }
  // Records written after the restart reach full redundancy, and survive two other stores dying.
  auto late_keys = keys_of([](const Acked& record) { return record.after_restart; });
  REQUIRE(WaitForFullRedundancy(c, late_keys));
  int other_a = (victim + 1) % 6, other_b = (victim + 2) % 6;
  REQUIRE(cluster.Kill(Role::kStore, other_a).ok());
  REQUIRE(cluster.Kill(Role::kStore, other_b).ok());
  for (const auto& key : late_keys) {
    auto got = c.Get(key);
    REQUIRE_MESSAGE(got.ok(), key, ": ", got.error().ToString());
    CHECK(got->value.ToString() == AsString(acked[key].value));
  }
  CHECK(victim_stored.size() > 50);
  CHECK(late_keys.size() > 50);
}

// A value whose every 8-byte word names its writer and sequence number, so a read that mixed
// two versions is visible.
std::vector<std::byte> TaggedValue(uint32_t writer, uint32_t sequence, size_t size) {
  std::vector<std::byte> value(size);
  uint64_t tag = (uint64_t{writer} << 32) | sequence;
  for (size_t i = 0; i + 8 <= size; i += 8) std::memcpy(&value[i], &tag, 8);
  return value;
}

bool IsOneWholeVersion(const std::string& bytes) {
  if (bytes.size() < 8) return false;
  for (size_t i = 8; i + 8 <= bytes.size(); i += 8) {
    if (std::memcmp(bytes.data(), bytes.data() + i, 8) != 0) return false;
  }
  return true;
}

TEST_CASE("concurrent overwrites of one key: every read is one whole version, then all agree") {
  TestCluster tc;
  std::vector<std::unique_ptr<client::Client>> writers;
  for (int i = 0; i < 4; ++i) writers.push_back(tc.NewClient());
  auto& reader = tc.client();
  const size_t size = 96 * 1024 + 8;
  std::vector<std::vector<std::byte>> values;
  values.reserve(4 * 40);
  int reads = 0;
  int acks = 0;
  for (uint32_t sequence = 0; sequence < 40; ++sequence) {
    for (uint32_t w = 0; w < 4; ++w) {
      values.push_back(TaggedValue(w, sequence, size));
      writers[w]->PutAsync({"hot", values.back(), "", {}}, [&](Result<client::PutResult> r) {
        if (r.ok()) ++acks;
      });
    }
    reader.GetAsync("hot", {}, [&](Result<client::GetResult> got) {
      if (!got.ok()) {
        CHECK((got.error().code() == ErrorCode::kNotFound || got.error().code() == ErrorCode::kStale ||
               got.error().code() == ErrorCode::kUnavailable));
        return;
      }
      ++reads;
      CHECK(IsOneWholeVersion(got->value.ToString()));
    });
    for (auto& w : writers) w->Poll(std::chrono::milliseconds(1));
    reader.Poll(std::chrono::milliseconds(1));
  }
  for (auto& w : writers) {
    while (w->in_flight() > 0) w->Poll(std::chrono::milliseconds(20));
  }
  while (reader.in_flight() > 0) reader.Poll(std::chrono::milliseconds(20));
  CHECK(acks > 100);
  CHECK(reads > 0);
  std::set<std::string> finals;
  for (int i = 0; i < 5; ++i) {
    auto got = reader.Get("hot");
    REQUIRE(got.ok());
    auto text = got->value.ToString();
    CHECK(IsOneWholeVersion(text));
    finals.insert(text);
  }
  CHECK(finals.size() == 1);
}

TEST_CASE("once overwrites are committed, every store keeps only the newest version of a key") {
  // The splitter sends its commit decisions batched per store after answering the client; this
  // checks they arrive and take effect: older versions are dropped everywhere.
  TestCluster tc;
  auto& c = tc.client();
  std::map<std::string, Version> newest;
  std::vector<std::vector<std::byte>> values;
  values.reserve(5 * 8);  // alive until the puts are sent
  int failed = 0;
  for (int round = 0; round < 5; ++round) {
    for (int k = 0; k < 8; ++k) {
      std::string key = "overwritten/" + std::to_string(k);
      values.push_back(TaggedValue(static_cast<uint32_t>(k), static_cast<uint32_t>(round), 3000));
      c.PutAsync({key, values.back(), "", {}}, [&newest, &failed, key](Result<client::PutResult> r) {
        if (r.ok()) {
          newest[key] = r->version;
        } else {
          ++failed;
        }
      });
    }
    while (c.in_flight() > 0) c.Poll(std::chrono::milliseconds(20));
  }
  REQUIRE(failed == 0);
  REQUIRE(newest.size() == 8);
  for (const auto& entry : newest) {
    std::string last_seen;
    const std::string& name = entry.first;
    const Version& want = entry.second;
    bool settled = WaitFor([&] {
      for (int s = 0; s < 6; ++s) {
        auto held = AskStore(tc.cluster().Info(Role::kStore, s).read_endpoint, name);
        if (!held.ok()) return false;
        last_seen = "store " + std::to_string(s) + ": " + DescribeHeld(*held);
        if (held->size() != 1 || !(*held)[0].committed || !((*held)[0].version == want)) return false;
      }
      return true;
    }, std::chrono::seconds(10));
    CHECK_MESSAGE(settled, name, " wants only ", want.ToString(), " committed; ", last_seen);
  }
}

TEST_CASE("a get asks only the data-fragment stores when they suffice, the others when not") {
  TestCluster tc;
  auto& c = tc.client();
  const std::string key = "data-first";
  std::string value(8000, 'v');
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>('a' + i % 23);
  PutOrFail(c, key, AsBytes(value));
  const auto bytes = AsBytes(value);
  const std::vector<std::byte> expected(bytes.begin(), bytes.end());
  REQUIRE(WaitForFullRedundancy(c, {key}));
  std::array<int, 6> store_of{};  // fragment index -> store
  for (int i = 0; i < 6; ++i) store_of[i] = tc.StoreHoldingFragment(key, i);
  auto fetches = [&](int store) {
    auto metrics = tc.Metrics(Role::kStore, store);
    REQUIRE(metrics.ok());
    return MetricValue(*metrics, R"(ddsplit_fragstore_requests_total{operation="fetch",outcome="ok"})")
        .value_or(-1);
  };
  std::array<double, 6> before{};
  for (int i = 0; i < 6; ++i) before[i] = fetches(store_of[i]);
  for (int round = 0; round < 20; ++round) CHECK(GetOrFail(c, key) == expected);
  for (int i = 0; i < 6; ++i) {
    CAPTURE(i);
    CHECK(fetches(store_of[i]) - before[i] == (i < 4 ? 20 : 0));
  }
  // A data store gone: the parity stores are asked, and the record reads back whole.
  REQUIRE(tc.cluster().Kill(Role::kStore, store_of[1]).ok());
  const double parity_before = fetches(store_of[4]) + fetches(store_of[5]);
  CHECK(GetOrFail(c, key) == expected);
  CHECK(fetches(store_of[4]) + fetches(store_of[5]) > parity_before);
}

TEST_CASE("a flipped byte in a stored fragment is detected and the read returns the right record") {
  TestCluster tc;
  auto& c = tc.client();
  auto value = RandomBytes(256 * 1024, 4242);
  PutOrFail(c, "victim", value);
  REQUIRE(WaitForFullRedundancy(c, {"victim"}));
  int store = tc.StoreHoldingFragment("victim", 0);
  auto flipped = tc.FlipStoredByte(store, std::span(value).subspan(1000, 64), 7);  // fragment 0
  REQUIRE_MESSAGE(flipped.ok(), flipped.error().ToString());
  REQUIRE(WaitForAllStoresReachable(c, "victim"));

  // Stat first: the read below schedules a read repair, which may rebuild the fragment at once.
  auto stat = c.Stat("victim");
  REQUIRE(stat.ok());
  int corrupt = 0;
  for (const auto& f : stat->fragments) corrupt += f.state == client::FragmentState::kCorrupt ? 1 : 0;
  CHECK(corrupt == 1);
  auto got = c.Get("victim");
  REQUIRE(got.ok());
  CHECK(got->value.ToString() == AsString(value));
  CHECK(got->degraded);
  auto metrics = tc.Metrics(Role::kStore, store);
  REQUIRE(metrics.ok());
  CHECK(MetricValue(*metrics, "ddsplit_fragstore_corrupt_fragments_total").value_or(0) >= 1);
  CHECK(WaitForFullRedundancy(c, {"victim"}));  // the read's repair rebuilt fragment 0
}

TEST_CASE("delete then get is not found, and listing pages through 10,000 keys exactly once") {
  cluster::ClusterOptions options;
  options.sync = "none";  // this test is about listing, not durability
  TestCluster tc(options);
  auto& c = tc.client();
  const int kKeys = 10000;
  std::string payload = "v";
  int acked = 0;
  for (int i = 0; i < kKeys; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "list/%05d", i);
    c.PutAsync({key, AsBytes(payload), "text/plain", {}}, [&](Result<client::PutResult> r) {
      REQUIRE_MESSAGE(r.ok(), r.error().ToString());
      ++acked;
    });
    while (c.in_flight() >= 64) c.Poll(std::chrono::milliseconds(50));
  }
  while (c.in_flight() > 0) c.Poll(std::chrono::milliseconds(50));
  REQUIRE(acked == kKeys);
  PutOrFail(c, "other/1", AsBytes(payload));

  REQUIRE(c.Delete("list/00007").ok());
  auto gone = c.Get("list/00007");
  REQUIRE(!gone.ok());
  CHECK(gone.error().code() == ErrorCode::kNotFound);
  auto again = c.Delete("list/00007");
  REQUIRE(again.ok());
  CHECK(!again->existed);

  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page = c.List("list/", cursor, 1000);
    REQUIRE_MESSAGE(page.ok(), page.error().ToString());
    for (const auto& entry : page->entries) {
      CHECK_MESSAGE(seen.insert(entry.key).second, "listed twice: ", entry.key);
      CHECK(entry.key.rfind("list/", 0) == 0);
      CHECK(entry.size == 1);
      CHECK(entry.content_type == "text/plain");
    }
    cursor = page->next_cursor;
    ++pages;
  } while (!cursor.empty() && pages < 100);
  CHECK(seen.size() == kKeys - 1);
  CHECK(seen.count("list/00007") == 0);
  CHECK(pages >= 10);
}

}  // namespace
}  // namespace ddsplit::testing
