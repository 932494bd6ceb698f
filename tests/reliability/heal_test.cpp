// Repair and heal, with real processes and real RocksDB (six stores, k = 4, m = 2):
//  - a store replaced by an empty one (killed, data directory wiped, restarted) comes back to
//    full redundancy through heal (the library behind `ddsplit heal`), after which every record
//    survives the loss of two other stores byte-identical; deleted keys stay deleted, also one
//    whose old version survived on a store that missed the delete;
//  - a fragment corrupted on disk is rebuilt;
//  - the `ddsplit heal` binary: exit status, summary;
//  - read repair: degraded reads alone bring the records back to full redundancy;
//  - the fragstore's scrub finds a fragment corrupted on disk by itself.
#include "tools/heal/heal.h"

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "tests/harness/harness.h"

namespace ddsplit::testing {
namespace {

using namespace std::chrono_literals;

std::map<std::string, std::string> PutRecords(client::Client& c, int count, uint64_t seed,
                                              const std::string& prefix) {
  std::map<std::string, std::string> records;
  for (int i = 0; i < count; ++i) {
    // Sizes from empty to a few hundred KiB, including ones smaller than k bytes.
    size_t size = i == 0   ? 0
                  : i == 1 ? 3
                           : static_cast<size_t>((seed * 7919 + i * 104729) % (300 * 1024));
    auto value = RandomBytes(size, seed + static_cast<uint64_t>(i));
    std::string key = prefix + std::to_string(i);
    client::PutArgs args;
    args.key = key;
    args.value = value;
    args.content_type = "application/x-test";
    args.metadata = {{"n", std::to_string(i)}};
    auto put = c.Put(args);
    REQUIRE_MESSAGE(put.ok(), put.error().ToString());
    records[key] = AsString(value);
  }
  return records;
}

std::vector<std::string> Keys(const std::map<std::string, std::string>& records) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : records) keys.push_back(key);
  return keys;
}

// Kills store `index`, replaces its data directory by an empty one, and starts it again.
void ReplaceStoreByEmptyOne(TestCluster& tc, int index) {
  auto& cluster = tc.cluster();
  REQUIRE(cluster.Kill(Role::kStore, index).ok());
  const auto dir = cluster.Info(Role::kStore, index).data_dir;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  REQUIRE(cluster.Restart(Role::kStore, index).ok());
}

int CountState(const client::StatResult& stat, client::FragmentState state) {
  int count = 0;
  for (const auto& f : stat.fragments) count += f.state == state ? 1 : 0;
  return count;
}

TEST_CASE("a store replaced by an empty one comes back through heal; deleted keys stay deleted") {
  cluster::ClusterOptions options;
  options.extra_assembler_args = {"--read-repair=false"};  // heal alone must do it
  TestCluster tc(options);
  auto& c = tc.client();
  auto records = PutRecords(c, 60, 11, "rec/");
  // Keys deleted before the store is lost: they must not come back.
  std::set<std::string> deleted;
  for (int i = 0; i < 6; ++i) {
    std::string key = "gone/" + std::to_string(i);
    auto value = RandomBytes(1000 + i, 900 + i);
    client::PutArgs args;
    args.key = key;
    args.value = value;
    REQUIRE(c.Put(args).ok());
    REQUIRE(c.Delete(key).ok());
    deleted.insert(key);
  }
  REQUIRE(WaitForFullRedundancy(c, Keys(records), 30s));

  // A key whose delete one store missed: the store keeps the old version.
  const std::string zombie = "zombie";
  auto zombie_value = RandomBytes(50000, 77);
  {
    client::PutArgs args;
    args.key = zombie;
    args.value = zombie_value;
    REQUIRE(c.Put(args).ok());
    REQUIRE(WaitForFullRedundancy(c, {zombie}, 30s));
  }
  const int missed_delete = tc.StoreHoldingFragment(zombie, 1);
  REQUIRE(tc.cluster().Kill(Role::kStore, missed_delete).ok());
  REQUIRE(c.Delete(zombie).ok());
  REQUIRE(tc.cluster().Restart(Role::kStore, missed_delete).ok());

  // The replaced store: one not holding the zombie's stale fragment.
  const int replaced = (missed_delete + 1) % tc.cluster().Count(Role::kStore);
  ReplaceStoreByEmptyOne(tc, replaced);
  REQUIRE(WaitForAllStoresReachable(c, records.begin()->first, 30s));
  const auto replaced_id =
      static_cast<uint32_t>(tc.cluster().Info(Role::kStore, replaced).store_id);

  int lacking = 0;
  for (const auto& [key, value] : records) {
    auto stat = c.Stat(key);
    REQUIRE_MESSAGE(stat.ok(), stat.error().ToString());
    if (CountState(*stat, client::FragmentState::kOk) < static_cast<int>(stat->fragments.size()))
      ++lacking;
  }
  MESSAGE("records lacking a fragment after the store was replaced: " << lacking);
  REQUIRE(lacking > 0);

  heal::HealOptions heal_options;
  int progress_calls = 0;
  heal_options.progress = [&](const heal::HealProgress&) { ++progress_calls; };
  auto report = heal::Heal(c, heal_options);
  REQUIRE_MESSAGE(report.ok(), report.error().ToString());
  for (const auto& failed : report->failed_keys) MESSAGE("failed: " << failed);
  CHECK(report->failures == 0);
  CHECK(report->keys_checked >= records.size());
  CHECK(report->at_risk == static_cast<uint64_t>(lacking));
  CHECK(report->repaired == static_cast<uint64_t>(lacking));
  CHECK(report->fragments_rebuilt >= static_cast<uint64_t>(lacking));
  CHECK(report->bytes_written > 0);
  CHECK(report->by_spare[1] == static_cast<uint64_t>(lacking));
  CHECK(progress_calls >= 2);

  // Full redundancy: every fragment healthy, the replaced store holding its share again.
  REQUIRE(WaitForFullRedundancy(c, Keys(records), 10s));
  int on_replaced = 0;
  for (const auto& [key, value] : records) {
    auto stat = c.Stat(key);
    REQUIRE(stat.ok());
    for (const auto& f : stat->fragments) on_replaced += f.store_id == replaced_id ? 1 : 0;
  }
  CHECK(on_replaced == lacking);
  // A second heal finds nothing to do.
  auto again = heal::Heal(c, {});
  REQUIRE(again.ok());
  CHECK(again->at_risk == 0);
  CHECK(again->failures == 0);

  // Deleted keys were not resurrected, neither by the replaced store nor by the stale one.
  for (const auto& key : deleted) {
    auto got = c.Get(key);
    REQUIRE_FALSE(got.ok());
    CHECK(got.error().code() == ErrorCode::kNotFound);
  }
  {
    auto got = c.Get(zombie);
    REQUIRE_FALSE(got.ok());
    CHECK(got.error().code() == ErrorCode::kNotFound);
    auto repair = c.Repair(zombie);
    if (repair.ok()) {
      CHECK(repair->kind == client::RepairKind::kDeleted);
      CHECK(repair->bytes_written == 0);
    } else {
      CHECK(repair.error().code() == ErrorCode::kNotFound);
    }
  }

  // Two other stores die: every record still reads back byte-identical.
  std::vector<int> others;
  for (int i = 0; i < tc.cluster().Count(Role::kStore) && others.size() < 2; ++i) {
    if (i != replaced) others.push_back(i);
  }
  for (int i : others) REQUIRE(tc.cluster().Kill(Role::kStore, i).ok());
  for (const auto& entry : records) {
    const auto& key = entry.first;
    const auto& value = entry.second;
    auto got = c.Get(key);
    REQUIRE_MESSAGE(got.ok(), key << ": " << got.error().ToString());
    CHECK_MESSAGE(got->value.ToString() == value, key);
  }
  for (const auto& key : deleted) CHECK_FALSE(c.Get(key).ok());
  CHECK_FALSE(c.Get(zombie).ok());

  auto metrics = tc.Metrics(Role::kAssembler, 0);
  REQUIRE(metrics.ok());
  CHECK(MetricValue(*metrics, "ddsplit_assembler_repaired_records_total").value_or(0) == lacking);
  CHECK(MetricValue(*metrics, "ddsplit_assembler_repair_bytes_written_total").value_or(0) ==
        static_cast<double>(report->bytes_written));
}

TEST_CASE("a fragment corrupted on disk is rebuilt, and the heal binary reports it") {
  TestCluster tc;
  auto& cluster = tc.cluster();
  auto& c = tc.client();
  auto value = RandomBytes(256 * 1024, 4242);
  {
    client::PutArgs args;
    args.key = "victim";
    args.value = value;
    REQUIRE(c.Put(args).ok());
  }
  REQUIRE(WaitForFullRedundancy(c, {"victim"}, 30s));
  int store = tc.StoreHoldingFragment("victim", 0);
  auto flipped = tc.FlipStoredByte(store, std::span(value).subspan(1000, 64), 7);
  REQUIRE_MESSAGE(flipped.ok(), flipped.error().ToString());
  REQUIRE(WaitForAllStoresReachable(c, "victim"));
  auto stat = c.Stat("victim");
  REQUIRE(stat.ok());
  REQUIRE(CountState(*stat, client::FragmentState::kCorrupt) == 1);

  // A dry run reports without writing.
  auto dry = c.Repair("victim", true);
  REQUIRE_MESSAGE(dry.ok(), dry.error().ToString());
  CHECK(dry->kind == client::RepairKind::kWouldRepair);
  CHECK(dry->rebuilt == std::vector<int>{0});
  CHECK(dry->bytes_written == 0);
  stat = c.Stat("victim");
  REQUIRE(stat.ok());
  CHECK(CountState(*stat, client::FragmentState::kCorrupt) == 1);

  // The CLI binary heals it and exits 0.
  const auto ddsplit = cluster.options().bin_dir / "ddsplit";
  const auto out = tc.dir() / "heal.out";
  const std::string command = ddsplit.string() + " --cluster " + cluster.cluster_json().string() +
                              " heal --max-bytes-per-second 10000000 --metrics-file " +
                              (tc.dir() / "heal.prom").string() + " > " + out.string() + " 2>&1";
  int status = std::system(command.c_str());
  std::string summary;
  {
    std::ifstream in(out);
    summary.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  MESSAGE(summary);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(summary.find("1 repaired") != std::string::npos);
  CHECK(summary.find("1 fragments rebuilt") != std::string::npos);
  std::string prom;
  {
    std::ifstream in(tc.dir() / "heal.prom");
    prom.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  CHECK(MetricValue(prom, "ddsplit_heal_fragments_rebuilt").value_or(-1) == 1);
  CHECK(MetricValue(prom, "ddsplit_heal_records_by_spare_fragments{spare=\"1\"}").value_or(-1) ==
        1);
  CHECK(MetricValue(prom, "ddsplit_heal_in_progress").value_or(-1) == 0);
  CHECK(MetricValue(prom, "ddsplit_heal_pass_records_repaired").value_or(-1) == 1);
  CHECK(MetricValue(prom, "ddsplit_heal_estimated_seconds_to_full_redundancy").value_or(-1) == 0);
  CHECK(MetricValue(prom, "ddsplit_heal_repair_bytes_per_second").value_or(-1) > 0);

  REQUIRE(WaitForFullRedundancy(c, {"victim"}, 10s));
  // Lose two stores other than the repaired one: the repaired fragment is needed and intact.
  int killed = 0;
  for (int i = 0; i < cluster.Count(Role::kStore) && killed < 2; ++i) {
    if (i == store) continue;
    REQUIRE(cluster.Kill(Role::kStore, i).ok());
    ++killed;
  }
  auto got = c.Get("victim");
  REQUIRE_MESSAGE(got.ok(), got.error().ToString());
  CHECK(got->value.ToString() == AsString(value));

  // With two stores down the heal cannot restore full redundancy: it says so.
  status = std::system((ddsplit.string() + " --cluster " + cluster.cluster_json().string() +
                        " heal > /dev/null 2>&1")
                           .c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
}

TEST_CASE("degraded reads schedule read repairs that restore full redundancy") {
  TestCluster tc;
  auto& c = tc.client();
  auto records = PutRecords(c, 30, 23, "rr/");
  REQUIRE(WaitForFullRedundancy(c, Keys(records), 30s));
  const int replaced = 2;
  const int k = tc.cluster().options().k;
  // A read notices only the stores it heard from before answering: the data-fragment stores
  // (a read waits for them), not necessarily the parity ones. So the records checked below are
  // those whose data fragment the replaced store held (and that have bytes in it).
  std::map<std::string, std::string> noticed;
  for (const auto& [key, value] : records) {
    for (int i = 0; i < k; ++i) {
      if (tc.StoreHoldingFragment(key, i) == replaced &&
          value.size() > static_cast<size_t>(i) * ((value.size() + k - 1) / k)) {
        noticed[key] = value;
      }
    }
  }
  REQUIRE(noticed.size() >= 5);
  ReplaceStoreByEmptyOne(tc, replaced);
  REQUIRE(WaitForAllStoresReachable(c, records.begin()->first, 30s));
  // Reads only: each answers at once, correct, and the ones missing a fragment queue a repair.
  for (const auto& [key, value] : records) {
    auto got = c.Get(key);
    REQUIRE_MESSAGE(got.ok(), got.error().ToString());
    CHECK(got->value.ToString() == value);
  }
  CHECK(WaitForFullRedundancy(c, Keys(noticed), 30s));
  auto metrics = tc.Metrics(Role::kAssembler, 0);
  REQUIRE(metrics.ok());
  const double scheduled =
      MetricValue(*metrics, "ddsplit_assembler_read_repairs_scheduled_total").value_or(0);
  const double repaired =
      MetricValue(*metrics, "ddsplit_assembler_read_repaired_records_total").value_or(0);
  MESSAGE("read repairs scheduled " << scheduled << ", records read-repaired " << repaired
                                    << ", of " << noticed.size()
                                    << " whose data fragment was lost");
  CHECK(scheduled >= static_cast<double>(noticed.size()));
  CHECK(repaired >= static_cast<double>(noticed.size()));
  CHECK(MetricValue(*metrics, "ddsplit_assembler_read_repairs_dropped_total").value_or(-1) == 0);
  // Two other stores die: every read-repaired record still reads back byte-identical.
  REQUIRE(tc.cluster().Kill(Role::kStore, 0).ok());
  REQUIRE(tc.cluster().Kill(Role::kStore, 1).ok());
  for (const auto& entry : noticed) {
    const auto& key = entry.first;
    const auto& value = entry.second;
    auto got = c.Get(key);
    REQUIRE_MESSAGE(got.ok(), key << ": " << got.error().ToString());
    CHECK(got->value.ToString() == value);
  }
}

TEST_CASE("the scrub finds a corrupted fragment in the background") {
  cluster::ClusterOptions options;
  options.extra_store_args = {"--scrub-bytes-per-second=50000000", "--scrub-pause-seconds=1"};
  TestCluster tc(options);
  auto& c = tc.client();
  auto value = RandomBytes(128 * 1024, 99);
  {
    client::PutArgs args;
    args.key = "scrubbed";
    args.value = value;
    REQUIRE(c.Put(args).ok());
  }
  REQUIRE(WaitForFullRedundancy(c, {"scrubbed"}, 30s));
  const int store = tc.StoreHoldingFragment("scrubbed", 1);
  auto scrub_metric = [&](const char* series) {
    auto metrics = tc.Metrics(Role::kStore, store);
    return metrics.ok() ? MetricValue(*metrics, series).value_or(0) : -1.0;
  };
  REQUIRE(WaitFor(
      [&] { return scrub_metric("ddsplit_fragstore_scrub_bytes_verified_total") >= 32 * 1024; },
      20s));
  CHECK(scrub_metric("ddsplit_fragstore_scrub_corrupt_fragments_total") == 0);

  auto flipped = tc.FlipStoredByte(store, std::span(value).subspan(32 * 1024 + 500, 64), 3);
  REQUIRE_MESSAGE(flipped.ok(), flipped.error().ToString());
  CHECK(WaitFor(
      [&] { return scrub_metric("ddsplit_fragstore_scrub_corrupt_fragments_total") >= 1; }, 20s));
  // The repair rebuilds it; the next passes find nothing more.
  REQUIRE(WaitForAllStoresReachable(c, "scrubbed"));
  auto repaired = c.Repair("scrubbed");
  REQUIRE_MESSAGE(repaired.ok(), repaired.error().ToString());
  CHECK(repaired->kind == client::RepairKind::kRepaired);
  CHECK(repaired->rebuilt == std::vector<int>{1});
  const double corrupt = scrub_metric("ddsplit_fragstore_scrub_corrupt_fragments_total");
  const double passes = scrub_metric("ddsplit_fragstore_scrub_passes_total");
  REQUIRE(WaitFor(
      [&] { return scrub_metric("ddsplit_fragstore_scrub_passes_total") >= passes + 2; }, 20s));
  CHECK(scrub_metric("ddsplit_fragstore_scrub_corrupt_fragments_total") == corrupt);
}

// A measurement, not a check: DDSPLIT_HEAL_BENCH_MB=<n> writes n MiB in 1 MiB records, replaces
// a store by an empty one and reports the heal's rate. Skipped without the variable.
TEST_CASE("heal rate of a replaced store (DDSPLIT_HEAL_BENCH_MB)") {
  const char* env = std::getenv("DDSPLIT_HEAL_BENCH_MB");
  if (env == nullptr) return;
  const int megabytes = std::atoi(env);
  cluster::ClusterOptions options;
  options.extra_assembler_args = {"--read-repair=false"};
  TestCluster tc(options);
  auto& c = tc.client();
  std::vector<std::string> keys;
  auto value = RandomBytes(1 << 20, 5);
  for (int i = 0; i < megabytes; ++i) {
    keys.push_back("bench/" + std::to_string(i));
    client::PutArgs args;
    args.key = keys.back();
    value[0] = static_cast<std::byte>(i);
    args.value = value;
    REQUIRE(c.Put(args).ok());
  }
  REQUIRE(WaitForFullRedundancy(c, keys, 60s));
  ReplaceStoreByEmptyOne(tc, 3);
  REQUIRE(WaitForAllStoresReachable(c, keys.front(), 30s));
  auto report = heal::Heal(c, {});
  REQUIRE(report.ok());
  CHECK(report->failures == 0);
  MESSAGE("healed " << report->repaired << " records, " << report->fragments_rebuilt
                    << " fragments, " << report->bytes_written / 1048576.0 << " MiB written, "
                    << report->bytes_read / 1048576.0 << " MiB read in " << report->seconds
                    << " s: " << report->bytes_written / 1048576.0 / report->seconds
                    << " MiB/s written, " << report->repaired / report->seconds << " records/s");
  CHECK(WaitForFullRedundancy(c, keys, 30s));
}

}  // namespace
}  // namespace ddsplit::testing
