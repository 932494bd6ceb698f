// Thrash test: a real cluster (six stores, k = 4, m = 2, one splitter, one assembler) under a
// mixed put/get/delete load (FaultLoad, two threads each with its own client) while, round after
// round, up to m random stores are killed with SIGKILL or frozen with SIGSTOP and brought back,
// the splitter is killed in the middle of writes, the assembler in the middle of reads, and
// fragment bytes are damaged on disk (a flipped bit; once, a truncated file). After every round
// the load pauses and every key is read back and judged against its history: every
// acknowledged write reads back byte-identical (or as a newer version of that key), and no read
// ever returned wrong bytes. At the end more than m stores go down: reads and writes must fail
// with clear errors, and never answer with data.
//
// Bounded: DDSPLIT_THRASH_ROUNDS rounds (default 12) and DDSPLIT_THRASH_SECONDS (default 150)
// of rounds, whichever ends first. The seed is printed; DDSPLIT_SEED=<n> replays the schedule
// (the load's timing still varies). Every process is stopped when the test ends, also on failure.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <sstream>
#include <set>

#include "common/codec/reed_solomon.h"
#include "common/codec/stripe.h"
#include "tests/harness/fault_load.h"
#include "tests/harness/harness.h"

namespace ddsplit::testing {
namespace {

using namespace std::chrono_literals;

// A process control step that failed says why (a restart's error carries the log's tail).
void RequireOk(const Status& status) {
  REQUIRE_MESSAGE(status.ok(), status.error().ToString());
}

constexpr int kStores = 6;
constexpr int kK = 4;
constexpr int kM = 2;
constexpr const char* kSentinel = "thrash/sentinel";  // written once, never deleted

struct Tally {
  int rounds = 0;
  int store_kills = 0, store_stops = 0, splitter_kills = 0, assembler_kills = 0;
  int corruptions_injected = 0, corruptions_detected = 0;
  int truncations_injected = 0, truncations_detected = 0;
  uint64_t acked_puts_checked = 0, acked_deletes_checked = 0;
  uint64_t records_lost = 0, violations = 0;  // lost: unreadable with every store up, or NotFound
  uint64_t stale_reads = 0, corrupt_reads = 0, lost_reads = 0;
};

// The bytes of fragment `index` of `value` as stored (data: a slice; parity: encoded).
std::vector<std::byte> FragmentBytes(const std::vector<std::byte>& value, int index) {
  codec::StripeLayout layout(value.size(), kK, kM);
  if (index < kK) {
    auto span = layout.DataSpan(index);
    return {value.begin() + static_cast<std::ptrdiff_t>(span.offset),
            value.begin() + static_cast<std::ptrdiff_t>(span.offset + span.length)};
  }
  auto rs = codec::ReedSolomon::Create(kK, kM);
  REQUIRE(rs.ok());
  std::vector<std::span<const std::byte>> data;
  for (int i = 0; i < kK; ++i) {
    auto span = layout.DataSpan(i);
    data.push_back(std::span(value).subspan(span.offset, span.length));
  }
  std::vector<std::vector<std::byte>> parity(kM, std::vector<std::byte>(layout.fragment_size()));
  std::vector<std::span<std::byte>> outputs(parity.begin(), parity.end());
  (*rs)->Encode(data, layout.fragment_size(), outputs);
  return parity[index - kK];
}

class Thrasher {
 public:
  Thrasher(uint64_t seed, TestCluster& tc, FaultLoad& load)
      : rng_(seed), tc_(tc), cluster_(tc.cluster()), load_(load) {
    verifier_ = tc_.NewClient(5000ms);
    victim_store_ = Uniform(0, kStores - 1);  // the one store whose files get damaged
    std::string value = "sentinel";
    auto put = verifier_->Put({kSentinel, AsBytes(value), "text/plain", {}});
    REQUIRE_MESSAGE(put.ok(), put.error().ToString());
  }

  Tally& tally() { return tally_; }

  void Round(int round) {
    int kind = round == 0 ? 0 : Uniform(0, 9);
    if (round == 3 || round == 8) kind = 8;   // corruption rounds at fixed points
    if (round == 11) kind = 9;                 // one truncation, late
    if (round == 5) kind = 6;                  // the splitter, mid-write
    if (round == 6) kind = 7;                  // the assembler, mid-read
    std::printf("round %d: ", round);
    switch (kind) {
      case 0: case 1: case 2: KillStores(); break;
      case 3: case 4: StopStores(); break;
      case 5: KillAndStop(); break;
      case 6: KillService(Role::kSplitter); break;
      case 7: KillService(Role::kAssembler); break;
      case 8: Damage(false); break;
      case 9: Damage(true); break;
    }
    ++tally_.rounds;
    VerifyEverything("after round " + std::to_string(round));
  }

  // More than m stores down: only clear errors, and fast when they are dead.
  void BeyondTolerance() {
    load_.Pause();
    std::vector<int> stores(kStores);
    for (int i = 0; i < kStores; ++i) stores[i] = i;
    std::shuffle(stores.begin(), stores.end(), rng_);
    stores.resize(kM + 1);
    for (bool frozen : {false, true}) {
      for (int s : stores) {
        if (frozen) {
          RequireOk(cluster_.Stop(Role::kStore, s));
          ++tally_.store_stops;
        } else {
          RequireOk(cluster_.Kill(Role::kStore, s));
          ++tally_.store_kills;
        }
      }
      std::printf("beyond tolerance: %d stores %s\n", kM + 1, frozen ? "stopped" : "killed");
      auto slowest = 0ms;
      for (int i = 0; i < (frozen ? 2 : 8); ++i) {
        auto start = std::chrono::steady_clock::now();
        auto got = verifier_->Get(kSentinel);  // known to exist: the load's keys may all be mid-change
        slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - start));
        REQUIRE_MESSAGE(!got.ok(), "a read with ", kM + 1, " of ", kStores, " stores down answered data");
        CAPTURE(got.error().ToString());
        CHECK((got.error().code() == ErrorCode::kUnavailable || got.error().code() == ErrorCode::kStale ||
               got.error().code() == ErrorCode::kDeadlineExceeded));
        CHECK(!got.error().message().empty());
        std::string value = "beyond";
        auto put = verifier_->Put({"beyond/" + std::to_string(i), AsBytes(value), "", {}});
        REQUIRE_MESSAGE(!put.ok(), "a write with ", kM + 1, " of ", kStores, " stores down was acknowledged");
        CHECK((put.error().code() == ErrorCode::kUnavailable || put.error().code() == ErrorCode::kQuorumFailed ||
               put.error().code() == ErrorCode::kDeadlineExceeded));
      }
      std::printf("  slowest error answer: %lld ms\n", static_cast<long long>(slowest.count()));
      if (!frozen) CHECK(slowest < 3000ms);  // dead stores fail fast, well within the client timeout
      for (int s : stores) {
        if (frozen) {
          RequireOk(cluster_.Continue(Role::kStore, s));
        } else {
          RequireOk(cluster_.Restart(Role::kStore, s));
        }
      }
      WaitReachable();
    }
    VerifyEverything("after more than m stores were down");
    load_.Resume();
  }

  void VerifyEverything(const std::string& when) {
    load_.Pause();
    WaitReachable();
    VerifyReport report = load_.Verify(*verifier_, 8, 500ms);
    tally_.acked_puts_checked += report.acked_puts_checked;
    tally_.acked_deletes_checked += report.acked_deletes_checked;
    tally_.records_lost += report.unreadable + report.lost;
    tally_.violations += report.violations;
    tally_.stale_reads += report.stale;
    tally_.corrupt_reads += report.corrupt;
    tally_.lost_reads += report.lost;
    std::printf("  verify %s: %llu keys, %llu acknowledged puts and %llu deletes checked, %llu unreadable, "
                "%llu violations\n",
                when.c_str(), static_cast<unsigned long long>(report.keys),
                static_cast<unsigned long long>(report.acked_puts_checked),
                static_cast<unsigned long long>(report.acked_deletes_checked),
                static_cast<unsigned long long>(report.unreadable),
                static_cast<unsigned long long>(report.violations));
    for (const auto& problem : report.problems) std::printf("    %s\n", problem.c_str());
    for (const auto& key : report.problem_keys) Explain(key);
    std::fflush(stdout);
    CHECK_MESSAGE(report.ok(), "verification ", when, " found problems");
    load_.Resume();
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  // Prints what every store holds for `key` and the key's last operations, for a failure report.
  void Explain(const std::string& key) {
    auto history = load_.History(key);
    std::printf("    history of %s (last 8 of %zu):", key.c_str(), history.size());
    for (size_t i = history.size() > 8 ? history.size() - 8 : 0; i < history.size(); ++i) {
      const KeyOp& op = history[i];
      std::printf(" [%s %llu %s %s]", op.kind == KeyOp::Kind::kPut ? "put" : "del",
                  static_cast<unsigned long long>(op.sequence), op.acknowledged ? "ack" : "fail",
                  op.acknowledged ? op.version.ToString().c_str() : std::string(ErrorCodeName(op.error)).c_str());
    }
    std::printf("\n");
    for (int s = 0; s < kStores; ++s) {
      auto held = AskStore(cluster_.Info(Role::kStore, s).read_endpoint, key);
      std::printf("      store %d: %s\n", s, held.ok() ? DescribeHeld(*held).c_str() : held.error().ToString().c_str());
    }
  }

  void PrintMetrics(Role role, int index, std::initializer_list<std::string_view> names) {
    auto metrics = tc_.Metrics(role, index);
    if (!metrics.ok()) return;
    std::istringstream lines(*metrics);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line[0] == '#' || line.find("_bucket") != std::string::npos) continue;
      for (auto name : names) {
        if (line.find(name) != std::string::npos) {
          std::printf("      %s %d: %s\n", cluster_.Info(role, index).name.c_str(), index, line.c_str());
          break;
        }
      }
    }
  }

  std::chrono::milliseconds Hold() { return std::chrono::milliseconds(Uniform(800, 2000)); }

  std::vector<int> PickStores(int count) {
    std::vector<int> stores(kStores);
    for (int i = 0; i < kStores; ++i) stores[i] = i;
    std::shuffle(stores.begin(), stores.end(), rng_);
    stores.resize(static_cast<size_t>(count));
    return stores;
  }

  void WaitReachable() {
    // The sentinel record is never deleted, and like every key it is placed on all six stores.
    REQUIRE_MESSAGE(WaitForAllStoresReachable(*verifier_, kSentinel, 30s), "stores did not come back");
    REQUIRE_MESSAGE(tc_.WaitForSplittersConnected(30s), "the splitter did not reconnect to every store");
  }

  void KillStores() {
    auto stores = PickStores(Uniform(1, kM));
    std::printf("kill -9 %zu store(s)\n", stores.size());
    for (int s : stores) {
      RequireOk(cluster_.Kill(Role::kStore, s));
      ++tally_.store_kills;
    }
    std::this_thread::sleep_for(Hold());  // the load runs against the degraded cluster
    for (int s : stores) RequireOk(cluster_.Restart(Role::kStore, s));
  }

  void StopStores() {
    auto stores = PickStores(Uniform(1, kM));
    std::printf("SIGSTOP %zu store(s)\n", stores.size());
    for (int s : stores) {
      RequireOk(cluster_.Stop(Role::kStore, s));
      ++tally_.store_stops;
    }
    std::this_thread::sleep_for(Hold());
    for (int s : stores) RequireOk(cluster_.Continue(Role::kStore, s));
  }

  void KillAndStop() {
    auto stores = PickStores(2);
    std::printf("kill -9 one store, SIGSTOP another\n");
    RequireOk(cluster_.Kill(Role::kStore, stores[0]));
    RequireOk(cluster_.Stop(Role::kStore, stores[1]));
    ++tally_.store_kills;
    ++tally_.store_stops;
    std::this_thread::sleep_for(Hold());
    RequireOk(cluster_.Continue(Role::kStore, stores[1]));
    RequireOk(cluster_.Restart(Role::kStore, stores[0]));
  }

  // Kills a stateless service while the load has requests in flight through it, then restarts
  // it. Clients see errors (timeouts) for those requests, never half a record.
  void KillService(Role role) {
    std::printf("kill -9 the %s mid-%s\n", role == Role::kSplitter ? "splitter" : "assembler",
                role == Role::kSplitter ? "write" : "read");
    auto before = load_.stats();
    // Wait until the load is visibly busy, so requests are in flight at the kill.
    std::this_thread::sleep_for(std::chrono::milliseconds(Uniform(100, 400)));
    RequireOk(cluster_.Kill(role, 0));
    if (role == Role::kSplitter) {
      ++tally_.splitter_kills;
    } else {
      ++tally_.assembler_kills;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(Uniform(50, 500)));
    RequireOk(cluster_.Restart(role, 0));
    std::this_thread::sleep_for(Hold());
    auto after = load_.stats();
    std::printf("  during: %llu puts acked, %llu failed; %llu gets ok, %llu failed\n",
                static_cast<unsigned long long>(after.puts_acked - before.puts_acked),
                static_cast<unsigned long long>(after.puts_failed - before.puts_failed),
                static_cast<unsigned long long>(after.gets_ok - before.gets_ok),
                static_cast<unsigned long long>(after.gets_failed - before.gets_failed));
  }

  // Damages one fragment of an acknowledged record on the victim store's disk (a flipped bit,
  // or the file truncated at the fragment), restarts the store and checks the damage is
  // detected while the record still reads back byte-identical.
  void Damage(bool truncate) {
    std::printf("%s a fragment on store %d\n", truncate ? "truncate the file of" : "flip a bit in", victim_store_);
    load_.Pause();
    WaitReachable();
    std::optional<AckedRecord> record;
    int index = -1;
    for (int attempt = 0; attempt < 20 && index < 0; ++attempt) {
      record = load_.PickAckedRecord(rng_, 24 * 1024);  // fragments above the segment threshold
      if (!record) break;
      auto stat = verifier_->Stat(record->key);
      if (!stat.ok() || stat->info.version != record->version) continue;
      bool all_ok = std::all_of(stat->fragments.begin(), stat->fragments.end(),
                                [](const auto& f) { return f.state == client::FragmentState::kOk; });
      if (!all_ok) continue;  // damage only records with full redundancy
      index = VictimFragment(*stat);
    }
    if (index < 0) {
      // Every key of the load may end in a failed put (its quorum was down the round before):
      // damage a record of our own instead.
      record = OwnRecord();
      auto stat = verifier_->Stat(record->key);
      REQUIRE(stat.ok());
      index = VictimFragment(*stat);
      REQUIRE(index >= 0);
    }
    auto fragment = FragmentBytes(record->value, index);
    REQUIRE(fragment.size() > 4200);
    auto needle = std::span(fragment).subspan(fragment.size() / 2, 64);
    const auto& info = cluster_.Info(Role::kStore, victim_store_);
    RequireOk(cluster_.Terminate(Role::kStore, victim_store_));  // clean: data reaches files
    std::filesystem::path backup = tc_.dir() / "backup";
    REQUIRE(CopyTree(info.data_dir, backup).ok());
    auto changed = truncate ? TruncateWhere(info.data_dir, needle) : FlipBytesEverywhere(info.data_dir, needle, 9);
    REQUIRE_MESSAGE(changed.ok(), changed.error().ToString());
    for (const auto& file : *changed) std::printf("  damaged %s\n", file.c_str());
    if (truncate) {
      ++tally_.truncations_injected;
    } else {
      ++tally_.corruptions_injected;
    }
    bool detected = false;
    auto restarted = cluster_.Restart(Role::kStore, victim_store_);
    if (!restarted.ok()) {
      // Refusing to open damaged files is a detection too; put the files back to go on.
      std::printf("  the store refused to start: %s\n", restarted.error().message().substr(0, 200).c_str());
      detected = true;
      REQUIRE(CopyTree(backup, info.data_dir).ok());
      RequireOk(cluster_.Restart(Role::kStore, victim_store_));
    }
    WaitReachable();
    // Stat before reading: the read schedules a read repair, which may rebuild the fragment at once.
    auto stat = verifier_->Stat(record->key);
    REQUIRE(stat.ok());
    for (const auto& f : stat->fragments) {
      if (static_cast<int>(f.store_id) != info.store_id) continue;
      std::printf("  store %d reports fragment %d as %s\n", victim_store_, f.fragment_index,
                  std::string(client::FragmentStateName(f.state)).c_str());
      if (f.state != client::FragmentState::kOk) detected = true;
    }
    // The record still reads back byte-identical.
    auto got = verifier_->Get(record->key);
    REQUIRE_MESSAGE(got.ok(), record->key, ": ", got.error().ToString());
    std::vector<std::byte> bytes(got->value.size());
    got->value.CopyTo(bytes);
    CHECK(bytes == record->value);
    std::printf("  the read was %s\n", got->degraded ? "degraded" : "direct");
    if (truncate) {
      tally_.truncations_detected += detected ? 1 : 0;
    } else {
      tally_.corruptions_detected += detected ? 1 : 0;
    }
    CHECK_MESSAGE(detected, "damage to fragment ", index, " of ", record->key, " went unnoticed");
    load_.Resume();
  }

  // Index of the fragment the victim store holds in `stat`, or -1.
  int VictimFragment(const client::StatResult& stat) {
    for (const auto& f : stat.fragments) {
      if (static_cast<int>(f.store_id) == cluster_.Info(Role::kStore, victim_store_).store_id) return f.fragment_index;
    }
    return -1;
  }

  // A fresh, fully redundant record above the segment threshold, written by the verifier.
  AckedRecord OwnRecord() {
    std::string key = "thrash/own/" + std::to_string(++own_records_);
    AckedRecord record{key, {}, MakeValue(key, own_records_, 32 * 1024)};
    auto put = verifier_->Put({key, record.value, "", {}});
    REQUIRE_MESSAGE(put.ok(), put.error().ToString());
    record.version = put->version;
    if (!WaitForFullRedundancy(*verifier_, {key})) {
      Explain(key);
      PrintMetrics(Role::kSplitter, 0, {"fragments_not_sent", "stores_connected", "under_replicated", "late_"});
      for (int s = 0; s < kStores; ++s) PrintMetrics(Role::kStore, s, {"rejected", "fragments_stored", "fragments_received"});
      FAIL("a record written with every store up and connected is not fully redundant: ", key);
    }
    return record;
  }

  std::mt19937_64 rng_;
  TestCluster& tc_;
  cluster::LocalCluster& cluster_;
  FaultLoad& load_;
  std::unique_ptr<client::Client> verifier_;
  int victim_store_ = 0;
  uint64_t own_records_ = 0;
  Tally tally_;
};

TEST_CASE("thrash: stores, the splitter and the assembler die and freeze under load; no acknowledged write is lost") {
  uint64_t seed = TestSeed("thrash");
  const int rounds = static_cast<int>(EnvInt("DDSPLIT_THRASH_ROUNDS", 12));
  const auto budget = std::chrono::seconds(EnvInt("DDSPLIT_THRASH_SECONDS", 150));
  cluster::ClusterOptions options;
  options.stores = kStores;
  options.k = kK;
  options.m = kM;
  // Shorter service deadlines than the defaults keep a round short; the client waits longer.
  options.extra_splitter_args = {"--write-timeout-ms", "2500"};
  options.extra_assembler_args = {"--read-timeout-ms", "2500"};
  options.gateway = false;  // the native path only; the gateway is not under test here
  TestCluster tc(options);

  LoadOptions load_options;
  load_options.cluster_json = tc.cluster().cluster_json();
  load_options.threads = 2;
  load_options.keys_per_thread = 24;
  load_options.max_value_bytes = 96 * 1024;
  load_options.request_timeout = 6000ms;
  load_options.seed = seed;
  FaultLoad load(load_options);
  REQUIRE(load.Start().ok());

  Thrasher thrasher(seed, tc, load);
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(1500ms);  // some records before the first fault
  for (int round = 0; round < rounds && std::chrono::steady_clock::now() - start < budget; ++round) {
    thrasher.Round(round);
  }
  thrasher.BeyondTolerance();
  load.Stop();
  thrasher.VerifyEverything("at the end");

  const Tally& t = thrasher.tally();
  LoadStats stats = load.stats();
  std::printf(
      "thrash summary (seed %llu): %d rounds in %lld s; processes killed: %d stores (SIGKILL), %d stores "
      "stopped (SIGSTOP), %d splitter, %d assembler; load: %llu puts acked, %llu failed, %llu deletes acked, "
      "%llu failed, %llu gets ok, %llu not found, %llu failed; acknowledged writes checked: %llu puts + %llu "
      "deletes; acknowledged records lost (unreadable, or NotFound, with every store up): %llu; violations "
      "(stale/corrupt/lost reads): %llu (%llu/%llu/%llu) + %llu by the load; "
      "corruptions injected/detected: %d/%d; truncations injected/detected: %d/%d\n",
      static_cast<unsigned long long>(seed), t.rounds,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count()),
      t.store_kills, t.store_stops, t.splitter_kills, t.assembler_kills,
      static_cast<unsigned long long>(stats.puts_acked), static_cast<unsigned long long>(stats.puts_failed),
      static_cast<unsigned long long>(stats.deletes_acked), static_cast<unsigned long long>(stats.deletes_failed),
      static_cast<unsigned long long>(stats.gets_ok), static_cast<unsigned long long>(stats.gets_not_found),
      static_cast<unsigned long long>(stats.gets_failed), static_cast<unsigned long long>(t.acked_puts_checked),
      static_cast<unsigned long long>(t.acked_deletes_checked), static_cast<unsigned long long>(t.records_lost),
      static_cast<unsigned long long>(t.violations), static_cast<unsigned long long>(t.stale_reads),
      static_cast<unsigned long long>(t.corrupt_reads), static_cast<unsigned long long>(t.lost_reads),
      static_cast<unsigned long long>(stats.violations),
      t.corruptions_injected, t.corruptions_detected, t.truncations_injected, t.truncations_detected);
  for (const auto& [code, count] : stats.errors) {
    std::printf("  load errors %s: %llu\n", code.c_str(), static_cast<unsigned long long>(count));
  }
  for (const auto& v : load.violations()) std::printf("  %s\n", v.c_str());
  CHECK(stats.violations == 0);
  CHECK(t.records_lost == 0);
  CHECK(t.violations == 0);
  CHECK(t.corruptions_detected == t.corruptions_injected);
  CHECK(t.truncations_detected == t.truncations_injected);
  CHECK(stats.puts_acked > 100);
}

}  // namespace
}  // namespace ddsplit::testing
