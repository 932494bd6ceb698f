#include "tools/ddsplit/heal_command.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tools/heal/heal.h"

namespace ddsplit::cli {
namespace {

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return text;
}

// Replaces `path` atomically (write a temporary, rename), so a textfile collector never reads
// half a file. Returns false when it could not.
bool WriteMetricsFile(const std::string& path, const std::string& text) {
  std::ofstream out(path + ".tmp");
  out << text;
  out.close();
  return out && std::rename((path + ".tmp").c_str(), path.c_str()) == 0;
}

// The progress a finished pass ends with.
heal::HealProgress FinalProgress(const heal::HealReport& report) {
  heal::HealProgress done;
  done.phase = heal::HealProgress::Phase::kDone;
  done.keys_checked = report.keys_checked;
  done.at_risk = report.at_risk;
  done.repairs_done = report.repaired;
  done.bytes_written = report.bytes_written;
  done.bytes_per_second = report.seconds > 0 ? report.bytes_written / report.seconds : 0;
  done.eta_seconds = 0;
  return done;
}

std::string PassMetrics(const heal::HealReport& report) {
  return heal::ReportMetrics(report) + heal::ProgressMetrics(FinalProgress(report));
}

}  // namespace

void AddHealCommand(CLI::App& app, std::function<std::unique_ptr<client::Client>()> connect,
                    const bool* json) {
  auto* heal = app.add_subcommand(
      "heal", "Repair every record lacking full redundancy (most at risk first)");
  auto options = std::make_shared<heal::HealOptions>();
  auto metrics_file = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  heal->add_option("--prefix", options->prefix, "Only keys starting with this");
  heal->add_option("--max-bytes-per-second", options->max_bytes_per_second,
                   "Budget for repair writes in bytes per second (0: unlimited)")
      ->capture_default_str();
  heal->add_option("--max-in-flight", options->max_in_flight, "Requests outstanding at once")
      ->capture_default_str();
  heal->add_flag("--dry-run", options->dry_run, "Only report what would be repaired");
  heal->add_option("--metrics-file", *metrics_file,
                   "Write the summary as Prometheus text to this file (textfile collector)");
  heal->add_flag("--quiet", *quiet, "No progress line even on a terminal");
  auto every = std::make_shared<int64_t>(0);
  heal->add_option("--every", *every,
                   "Run as a background loop: heal, then again every SECONDS, until stopped "
                   "(the exit status is then only for failing to connect or list)")
      ->capture_default_str();
  heal->callback([=] {
    auto c = connect();
    if (*every > 0) {
      while (true) {
        heal::HealOptions run = *options;
        if (!metrics_file->empty()) {
          run.progress = [metrics_file](const heal::HealProgress& p) {
            WriteMetricsFile(*metrics_file, heal::ProgressMetrics(p));
          };
        }
        const auto started = std::chrono::steady_clock::now();
        auto result = heal::Heal(*c, run);
        if (!result.ok()) {
          std::fprintf(stderr, "ddsplit: heal: %s\n", result.error().ToString().c_str());
        } else {
          std::printf(
              "heal: %llu records checked, %llu lacking redundancy, %llu repaired, %llu "
              "fragments rebuilt, %s written in %.1fs, %llu failures\n",
              static_cast<unsigned long long>(result->keys_checked),
              static_cast<unsigned long long>(result->at_risk),
              static_cast<unsigned long long>(result->repaired),
              static_cast<unsigned long long>(result->fragments_rebuilt),
              HumanBytes(result->bytes_written).c_str(), result->seconds,
              static_cast<unsigned long long>(result->failures));
          std::fflush(stdout);
          if (!metrics_file->empty()) WriteMetricsFile(*metrics_file, PassMetrics(*result));
        }
        // Pacing between passes, not synchronisation.
        std::this_thread::sleep_until(started + std::chrono::seconds(*every));
      }
    }
    const bool tty = !*quiet && isatty(STDERR_FILENO) == 1;
    heal::HealOptions run = *options;
    std::function<void(const heal::HealProgress&)> show;
    if (tty) {
      show = [](const heal::HealProgress& p) {
        if (p.phase == heal::HealProgress::Phase::kWalk) {
          std::fprintf(stderr, "\r\033[Kchecking: %llu records, %llu lacking redundancy",
                       static_cast<unsigned long long>(p.keys_checked),
                       static_cast<unsigned long long>(p.at_risk));
        } else {
          const double fraction =
              p.at_risk > 0 ? static_cast<double>(p.repairs_done) / p.at_risk : 1.0;
          const int width = 24;
          std::string bar(static_cast<size_t>(fraction * width), '#');
          bar.resize(width, '.');
          char eta[32] = "?";
          if (p.eta_seconds >= 0) std::snprintf(eta, sizeof(eta), "%.0fs", p.eta_seconds);
          std::fprintf(stderr, "\r\033[Krepairing [%s] %llu/%llu records, %s written, %s/s, eta %s",
                       bar.c_str(), static_cast<unsigned long long>(p.repairs_done),
                       static_cast<unsigned long long>(p.at_risk),
                       HumanBytes(p.bytes_written).c_str(), HumanBytes(p.bytes_per_second).c_str(),
                       eta);
        }
        if (p.phase == heal::HealProgress::Phase::kDone) std::fprintf(stderr, "\n");
        std::fflush(stderr);
      };
    }
    // While the pass runs, the metrics file says how far it is and when it should be done.
    if (show || !metrics_file->empty()) {
      run.progress = [show, metrics_file](const heal::HealProgress& p) {
        if (show) show(p);
        if (!metrics_file->empty()) WriteMetricsFile(*metrics_file, heal::ProgressMetrics(p));
      };
    }
    auto result = heal::Heal(*c, run);
    if (!result.ok()) {
      std::fprintf(stderr, "ddsplit: heal: %s\n", result.error().ToString().c_str());
      std::exit(1);
    }
    const auto& r = *result;
    if (!metrics_file->empty() && !WriteMetricsFile(*metrics_file, PassMetrics(r))) {
      std::fprintf(stderr, "ddsplit: heal: cannot write %s\n", metrics_file->c_str());
    }
    if (*json) {
      nlohmann::json by_spare = nlohmann::json::object();
      for (size_t i = 0; i < r.by_spare.size(); ++i) {
        if (r.by_spare[i] > 0) by_spare[std::to_string(i)] = r.by_spare[i];
      }
      nlohmann::json out = {{"keys_checked", r.keys_checked},
                            {"healthy", r.healthy},
                            {"at_risk", r.at_risk},
                            {"repaired", r.repaired},
                            {"fragments_rebuilt", r.fragments_rebuilt},
                            {"bytes_written", r.bytes_written},
                            {"bytes_read", r.bytes_read},
                            {"vanished", r.vanished},
                            {"failures", r.failures},
                            {"failed_keys", r.failed_keys},
                            {"records_by_spare", by_spare},
                            {"seconds", r.seconds},
                            {"dry_run", options->dry_run}};
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf(
          "%s: %llu records checked, %llu healthy, %llu lacking redundancy, %llu repaired, "
          "%llu fragments %s, %s written (%s read) in %.1fs, %llu failures\n",
          options->dry_run ? "heal (dry run)" : "heal",
          static_cast<unsigned long long>(r.keys_checked),
          static_cast<unsigned long long>(r.healthy), static_cast<unsigned long long>(r.at_risk),
          static_cast<unsigned long long>(r.repaired),
          static_cast<unsigned long long>(r.fragments_rebuilt),
          options->dry_run ? "to rebuild" : "rebuilt", HumanBytes(r.bytes_written).c_str(),
          HumanBytes(r.bytes_read).c_str(), r.seconds, static_cast<unsigned long long>(r.failures));
      std::printf("records by spare fragments:");
      for (size_t i = 0; i < r.by_spare.size(); ++i) {
        if (r.by_spare[i] > 0)
          std::printf(" %zu:%llu", i, static_cast<unsigned long long>(r.by_spare[i]));
      }
      std::printf("\n");
      for (const auto& failed : r.failed_keys) std::printf("failed: %s\n", failed.c_str());
    }
    std::fflush(stdout);
    if (r.failures > 0) std::exit(1);
  });
}

}  // namespace ddsplit::cli
