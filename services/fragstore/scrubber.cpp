#include "services/fragstore/scrubber.h"

#include <spdlog/spdlog.h>

#include <string>
#include <vector>

#include "common/codec/checksum.h"
#include "common/wire/envelope.h"

namespace ddsplit::fragstore {

Scrubber::Scrubber(const FragmentStore& store, FragstoreProbe& probe, ScrubOptions options)
    : store_(store), probe_(probe), options_(options) {}

Scrubber::~Scrubber() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scrubber::Start() {
  if (options_.bytes_per_second == 0) return;
  thread_ = std::thread([this] { Loop(); });
}

bool Scrubber::Pause(std::chrono::steady_clock::duration d) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, d, [&] { return stop_; });
}

void Scrubber::Loop() {
  struct Item {
    std::string key;
    Version version;
    uint64_t size = 0;
    uint64_t checksum = 0;
  };
  std::vector<Item> batch;
  std::string cursor;
  const auto start = std::chrono::steady_clock::now();
  uint64_t budget_bytes = 0;  // bytes verified since `start`, for pacing
  wire::AlignedFrame aligned;
  while (true) {
    batch.clear();
    uint32_t keys = 0;
    auto more = store_.List({}, cursor, [&](std::string_view key, const KeyVersions& versions) {
      cursor.assign(key);
      for (const auto& held : versions.view()) {
        auto header = wire::ParseFragmentHeader(
            aligned.Of(std::as_bytes(std::span(held.header.data(), held.header.size()))));
        if (!header.ok()) {
          probe_.ScrubCorrupt();
          continue;
        }
        if ((*header)->tombstone()) continue;
        batch.push_back({std::string(key), held.version, (*header)->size(), (*header)->checksum()});
      }
      return ++keys < options_.keys_per_batch;
    });
    if (!more.ok()) {
      spdlog::warn("scrub: listing failed: {}", more.error().ToString());
      if (!Pause(std::chrono::seconds(5))) return;
      continue;
    }
    for (const auto& item : batch) {
      auto payload = store_.ReadPayload(item.key, item.version);
      if (!payload.ok()) {
        // Gone meanwhile (overwritten, deleted) is fine; anything else is damage.
        if (payload.error().code() == ErrorCode::kNotFound) continue;
        probe_.ScrubCorrupt();
        spdlog::warn("scrub: {:?} version {}: {}", item.key, item.version.ToString(),
                     payload.error().ToString());
        continue;
      }
      const auto bytes = payload->bytes();
      if (bytes.size() != item.size || codec::Checksum(bytes) != item.checksum) {
        probe_.ScrubCorrupt();
        probe_.CorruptFragmentDetected();
        spdlog::warn("scrub: {:?} version {} failed its checksum", item.key,
                     item.version.ToString());
      }
      probe_.ScrubVerified(bytes.size());
      budget_bytes += bytes.size();
      // Pace: the bytes verified so far may not run ahead of the rate.
      const auto due =
          start +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
              std::chrono::duration<double>(static_cast<double>(budget_bytes) /
                                            static_cast<double>(options_.bytes_per_second)));
      const auto now = std::chrono::steady_clock::now();
      if (due > now && !Pause(due - now)) return;
      {
        std::lock_guard lock(mutex_);
        if (stop_) return;
      }
    }
    if (!*more) {
      probe_.ScrubPassCompleted();
      cursor.clear();
      if (!Pause(options_.pass_pause)) return;
      // Do not make up for the pause with a burst.
      budget_bytes = static_cast<uint64_t>(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() *
          static_cast<double>(options_.bytes_per_second));
    }
  }
}

}  // namespace ddsplit::fragstore
