#include "tools/heal/heal.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace ddsplit::heal {
namespace {

using Clock = std::chrono::steady_clock;

struct AtRisk {
  int spare = 0;
  std::string key;
  uint64_t estimated_bytes = 0;  // fragment bytes a repair will write
};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Result<HealReport> Heal(client::Client& client, const HealOptions& options) {
  HealReport report;
  const Clock::time_point started = Clock::now();
  const size_t window = std::max<size_t>(1, options.max_in_flight);
  HealProgress progress;
  Clock::time_point next_progress = started;
  auto tell = [&](bool force) {
    if (!options.progress) return;
    Clock::time_point now = Clock::now();
    if (!force && now < next_progress) return;
    next_progress = now + options.progress_interval;
    options.progress(progress);
  };
  auto fail = [&](const std::string& key, const std::string& why) {
    ++report.failures;
    if (report.failed_keys.size() < 100) report.failed_keys.push_back(key + ": " + why);
  };

  // Phase 1: walk every key and ask its health.
  std::vector<AtRisk> at_risk;
  std::string cursor;
  size_t in_flight = 0;
  while (true) {
    auto page = client.List(options.prefix, cursor, options.page_size);
    if (!page.ok()) return std::move(page).error();
    for (const auto& entry : page->entries) {
      while (in_flight >= window) {
        client.Poll(std::chrono::milliseconds(50));
        tell(false);
      }
      ++in_flight;
      client.StatAsync(entry.key, [&, key = entry.key](Result<client::StatResult> stat) {
        --in_flight;
        ++report.keys_checked;
        ++progress.keys_checked;
        if (!stat.ok()) {
          if (stat.error().code() == ErrorCode::kNotFound) {
            ++report.vanished;  // deleted (or never acknowledged) since it was listed
          } else {
            fail(key, stat.error().ToString());
          }
          return;
        }
        int healthy = 0;
        for (const auto& f : stat->fragments)
          healthy += f.state == client::FragmentState::kOk ? 1 : 0;
        const int k = stat->info.k;
        const int n = static_cast<int>(stat->info.placement.size());
        const int spare = std::max(0, healthy - k);
        ++report.by_spare[static_cast<size_t>(std::min(spare, kMaxFragments))];
        if (healthy >= n && n > 0) {
          ++report.healthy;
          return;
        }
        ++report.at_risk;
        ++progress.at_risk;
        const uint64_t fragment = k > 0 ? (stat->info.size + static_cast<uint64_t>(k) - 1) / k : 0;
        at_risk.push_back({spare, key, fragment * static_cast<uint64_t>(n - healthy)});
      });
    }
    if (page->next_cursor.empty()) break;
    cursor = page->next_cursor;
    tell(false);
  }
  while (in_flight > 0) {
    client.Poll(std::chrono::milliseconds(50));
    tell(false);
  }
  tell(true);

  // Phase 2: repair, fewest spare fragments first, paced by the byte budget.
  std::stable_sort(at_risk.begin(), at_risk.end(),
                   [](const AtRisk& a, const AtRisk& b) { return a.spare < b.spare; });
  progress.phase = HealProgress::Phase::kRepair;
  uint64_t remaining_estimate = 0;
  for (const auto& record : at_risk) remaining_estimate += record.estimated_bytes;
  const Clock::time_point repair_started = Clock::now();
  Clock::time_point budget_time = repair_started;  // when the budget allows the next write
  for (const auto& record : at_risk) {
    while (in_flight >= window) {
      client.Poll(std::chrono::milliseconds(50));
      tell(false);
    }
    if (options.max_bytes_per_second > 0 && !options.dry_run) {
      // Token bucket with no burst: wait until the bytes already started fit the budget.
      while (Clock::now() < budget_time) {
        auto wait =
            std::chrono::duration_cast<std::chrono::milliseconds>(budget_time - Clock::now());
        client.Poll(std::clamp(wait, std::chrono::milliseconds(1), std::chrono::milliseconds(50)));
        tell(false);
      }
      budget_time += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(record.estimated_bytes) /
                                        static_cast<double>(options.max_bytes_per_second)));
      budget_time = std::max(budget_time, Clock::now() - std::chrono::milliseconds(100));
    }
    ++in_flight;
    client.RepairAsync(record.key, options.dry_run,
                       [&, key = record.key,
                        estimate = record.estimated_bytes](Result<client::RepairResult> result) {
                         --in_flight;
                         ++progress.repairs_done;
                         remaining_estimate -= std::min(remaining_estimate, estimate);
                         if (!result.ok()) {
                           if (result.error().code() == ErrorCode::kNotFound) {
                             ++report.vanished;
                           } else {
                             fail(key, result.error().ToString());
                           }
                         } else {
                           report.bytes_written += result->bytes_written;
                           report.bytes_read += result->bytes_read;
                           switch (result->kind) {
                             case client::RepairKind::kRepaired:
                               ++report.repaired;
                               report.fragments_rebuilt += result->rebuilt.size();
                               break;
                             case client::RepairKind::kHealthy:  // repaired meanwhile (a read
                                                                 // repair, another heal)
                               ++report.repaired;
                               break;
                             case client::RepairKind::kDeleted:
                               ++report.vanished;
                               break;
                             case client::RepairKind::kWouldRepair:
                               report.fragments_rebuilt += result->rebuilt.size();
                               break;
                             case client::RepairKind::kPartial:
                               report.fragments_rebuilt += result->rebuilt.size();
                               fail(key, std::to_string(result->failed.size()) +
                                             " fragment(s) could not be rebuilt");
                               break;
                           }
                         }
                         progress.bytes_written = report.bytes_written;
                         double elapsed = SecondsSince(repair_started);
                         progress.bytes_per_second =
                             elapsed > 0 ? static_cast<double>(report.bytes_written) / elapsed : 0;
                         progress.eta_seconds = progress.bytes_per_second > 0
                                                    ? static_cast<double>(remaining_estimate) /
                                                          progress.bytes_per_second
                                                    : -1;
                       });
  }
  while (in_flight > 0) {
    client.Poll(std::chrono::milliseconds(50));
    tell(false);
  }
  progress.phase = HealProgress::Phase::kDone;
  progress.eta_seconds = 0;
  tell(true);
  report.seconds = SecondsSince(started);
  return report;
}

namespace {

void MetricLine(std::string& out, const char* name, const char* help, const char* type,
                double value) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  out += std::string(name) + " " + (std::isnan(value) ? std::string("NaN") : std::to_string(value)) +
         "\n";
}

}  // namespace

std::string ProgressMetrics(const HealProgress& progress) {
  std::string out;
  const bool done = progress.phase == HealProgress::Phase::kDone;
  MetricLine(out, "ddsplit_heal_in_progress", "1 while a heal pass runs.", "gauge", done ? 0 : 1);
  MetricLine(out, "ddsplit_heal_pass_records_at_risk",
             "Records the running (or last) pass found lacking a healthy fragment so far.", "gauge",
             static_cast<double>(progress.at_risk));
  MetricLine(out, "ddsplit_heal_pass_records_repaired",
             "Records the running (or last) pass has repaired so far.", "gauge",
             static_cast<double>(progress.repairs_done));
  MetricLine(out, "ddsplit_heal_repair_bytes_per_second",
             "Fragment bytes written per second by the running (or last) pass's repairs.", "gauge",
             progress.bytes_per_second);
  MetricLine(out, "ddsplit_heal_estimated_seconds_to_full_redundancy",
             "Estimated time until every record the pass found at risk is repaired (NaN: unknown).",
             "gauge",
             done ? 0.0 : progress.eta_seconds < 0 ? std::nan("") : progress.eta_seconds);
  return out;
}

std::string ReportMetrics(const HealReport& report) {
  std::string out;
  auto line = [&](const char* name, const char* help, const char* type, double value) {
    MetricLine(out, name, help, type, value);
  };
  line("ddsplit_heal_keys_checked", "Records whose health the last heal asked.", "gauge",
       static_cast<double>(report.keys_checked));
  line("ddsplit_heal_records_at_risk", "Records the last heal found lacking a healthy fragment.",
       "gauge", static_cast<double>(report.at_risk));
  line("ddsplit_heal_records_repaired", "Records the last heal brought back to full redundancy.",
       "gauge", static_cast<double>(report.repaired));
  line("ddsplit_heal_fragments_rebuilt", "Fragments the last heal rebuilt.", "gauge",
       static_cast<double>(report.fragments_rebuilt));
  line("ddsplit_heal_repair_bytes_written", "Fragment bytes the last heal wrote.", "gauge",
       static_cast<double>(report.bytes_written));
  line("ddsplit_heal_failures", "Records the last heal could not check or fully repair.", "gauge",
       static_cast<double>(report.failures));
  line("ddsplit_heal_duration_seconds", "How long the last heal ran.", "gauge", report.seconds);
  out +=
      "# HELP ddsplit_heal_records_by_spare_fragments Records by spare fragments (healthy "
      "beyond k) as the last heal's walk found them.\n"
      "# TYPE ddsplit_heal_records_by_spare_fragments gauge\n";
  for (size_t i = 0; i < report.by_spare.size(); ++i) {
    if (report.by_spare[i] == 0 && i > 4) continue;
    out += "ddsplit_heal_records_by_spare_fragments{spare=\"" + std::to_string(i) + "\"} " +
           std::to_string(report.by_spare[i]) + "\n";
  }
  return out;
}

}  // namespace ddsplit::heal
