// Heal: brings every record of a cluster back to full redundancy, through the client library.
//
// Walks every key (List with a cursor), asks each record's health (Stat: every fragment of the
// chosen version, checksums verified on the stores), and asks an assembler to repair those
// lacking a healthy fragment (RepairRequest; see services/assembler/repairer.h), most at risk
// first: records with the fewest spare fragments (healthy beyond the k needed) are repaired
// before the others. Repairs are paced so the bytes written stay under a budget. Deleted keys
// are never written to (the assembler skips tombstones).
//
// Thread-safety: Heal uses `client` from the calling thread only, for its whole duration.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/base/limits.h"
#include "common/base/result.h"

namespace ddsplit::heal {

struct HealOptions {
  std::string prefix;                 // only keys starting with this
  uint64_t max_bytes_per_second = 0;  // repair write budget; 0: unlimited
  bool dry_run = false;               // assess only: nothing is written
  size_t max_in_flight = 8;           // Stat / Repair requests outstanding at once
  uint32_t page_size = 1000;
  // Called about every `progress_interval` and once at the end of each phase.
  std::chrono::milliseconds progress_interval{250};
  std::function<void(const struct HealProgress&)> progress;
};

struct HealProgress {
  enum class Phase : uint8_t { kWalk, kRepair, kDone };
  Phase phase = Phase::kWalk;
  uint64_t keys_checked = 0;
  uint64_t at_risk = 0;       // records found lacking a healthy fragment
  uint64_t repairs_done = 0;  // of at_risk
  uint64_t bytes_written = 0;
  double bytes_per_second = 0;  // repair writes, since the repair phase began
  double eta_seconds = -1;      // estimated time to full redundancy; -1: unknown
};

struct HealReport {
  uint64_t keys_checked = 0;  // records whose health was asked
  uint64_t healthy = 0;       // already at full redundancy
  uint64_t at_risk = 0;       // lacking at least one healthy fragment
  uint64_t repaired = 0;      // records brought back to full redundancy
  uint64_t fragments_rebuilt = 0;
  uint64_t bytes_written = 0;
  uint64_t bytes_read = 0;
  uint64_t vanished = 0;                 // listed, then absent or deleted when asked
  uint64_t failures = 0;                 // records that could not be checked or fully repaired
  std::vector<std::string> failed_keys;  // the first 100, with the reason
  // Records by spare fragments (healthy beyond k) as the walk found them: [0] none spare (one
  // more loss loses the record), ..., [m] full redundancy. kMaxFragments + 1 slots; records
  // already unreadable are counted in failures.
  std::array<uint64_t, kMaxFragments + 1> by_spare{};
  double seconds = 0;
};

// Runs the walk and the repairs. Fails as a whole only when the listing fails; per-record
// problems are counted in the report.
Result<HealReport> Heal(client::Client& client, const HealOptions& options);

// The report's figures in the Prometheus text format (for a node_exporter textfile collector).
std::string ReportMetrics(const HealReport& report);

// A pass's progress in the same format, for writing while it runs: whether a pass is running,
// records at risk and repaired so far, the repair write rate and the estimated time to full
// redundancy (NaN while unknown, 0 once the pass is done).
std::string ProgressMetrics(const HealProgress& progress);

}  // namespace ddsplit::heal
