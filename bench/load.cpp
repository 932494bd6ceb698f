#include "bench/load.h"

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace ddsplit::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kProgressInterval = std::chrono::milliseconds(250);
constexpr auto kPollWait = std::chrono::milliseconds(50);
constexpr auto kControlInterval = std::chrono::milliseconds(20);

uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// Counters a worker publishes for the progress line and the window controller.
struct SharedCounts {
  std::atomic<uint64_t> ok{0}, errors{0}, bytes{0};  // in the window
  std::atomic<uint64_t> completed_all{0};            // any outcome, any phase
};

// The run's timeline, shared by every worker. In duration mode the window opens once the
// warm-up time has passed and every slot has completed a request (so a slow, large-record run
// starts measuring in steady state, not while its first requests are still on their way), and
// closes once `duration` has passed and at least `concurrency` requests completed in it; the
// warm-up is capped at warmup + 2 x duration and the window at 3 x duration. One thread (the
// controller) calls Advance(); every thread reads.
class Timeline {
 public:
  static constexpr int kWarmupCapFactor = 2;  // warm-up ends by warmup + 2 x duration
  static constexpr int kWindowCapFactor = 3;  // the window closes by 3 x duration

  void Begin(const LoadOptions& options) {
    start_ = Clock::now();
    count_mode_ = options.count > 0;
    warmup_ = options.warmup;
    duration_ = options.duration;
    min_completions_ = static_cast<uint64_t>(options.concurrency);
    if (count_mode_) {
      window_start_.store(Ns(start_));
      window_end_.store(INT64_MAX);
    }
  }

  void Advance(Clock::time_point now, const SharedCounts& shared) {
    if (count_mode_ || done_.load(std::memory_order_relaxed)) return;
    int64_t opened = window_start_.load(std::memory_order_relaxed);
    if (opened == INT64_MAX) {
      bool warmed = now - start_ >= warmup_ && shared.completed_all.load() >= min_completions_;
      if (warmed || now - start_ >= warmup_ + kWarmupCapFactor * duration_)
        window_start_.store(Ns(now));
      return;
    }
    auto open_for = std::chrono::nanoseconds(Ns(now) - opened);
    uint64_t in_window = shared.ok.load() + shared.errors.load();
    if ((open_for >= duration_ && in_window >= min_completions_) ||
        open_for >= kWindowCapFactor * duration_) {
      window_end_.store(Ns(now));
      done_.store(true);
    }
  }

  bool count_mode() const { return count_mode_; }
  // No new requests once the window has closed (duration mode).
  bool Done() const { return done_.load(std::memory_order_relaxed); }
  bool Warming(Clock::time_point t) const {
    return Ns(t) < window_start_.load(std::memory_order_relaxed);
  }
  bool InWindow(Clock::time_point t) const {
    int64_t ns = Ns(t);
    return ns >= window_start_.load(std::memory_order_relaxed) &&
           ns < window_end_.load(std::memory_order_relaxed);
  }
  // Seconds since the window opened (negative while warming up).
  double SinceWindowStart(Clock::time_point t) const {
    int64_t opened = window_start_.load(std::memory_order_relaxed);
    if (opened == INT64_MAX) return -std::chrono::duration<double>(start_ + warmup_ - t).count();
    return static_cast<double>(Ns(t) - opened) / 1e9;
  }
  // The window's length once the run has finished at `finished`.
  double WindowSeconds(Clock::time_point finished) const {
    int64_t opened = window_start_.load();
    if (opened == INT64_MAX) return 0;
    int64_t closed = std::min(window_end_.load(), Ns(finished));
    return static_cast<double>(closed - opened) / 1e9;
  }

 private:
  static int64_t Ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  Clock::time_point start_{};
  bool count_mode_ = false;
  std::chrono::nanoseconds warmup_{}, duration_{};
  uint64_t min_completions_ = 1;
  std::atomic<int64_t> window_start_{INT64_MAX};
  std::atomic<int64_t> window_end_{INT64_MAX};
  std::atomic<bool> done_{false};
};

// What each worker accumulates privately; merged at the end.
struct WorkerResult {
  LoadResult result;
  uint64_t puts_ok_total = 0;  // including the warm-up
};

uint64_t NextRandom(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

void KeyOf(std::string& out, const std::string& prefix, uint64_t index) {
  out.assign(prefix);
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, index);
  out.append(digits, end);
}

uint64_t KeyIndex(const LoadOptions& options, uint64_t n) {
  return options.first_key + n % (options.key_space - options.first_key);
}

// Submission budget: how many requests a worker may still start.
struct Budget {
  std::atomic<uint64_t>* remaining = nullptr;  // count mode; null in duration mode
  bool Take() {
    if (remaining == nullptr) return true;
    uint64_t left = remaining->load(std::memory_order_relaxed);
    while (left > 0) {
      if (remaining->compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }
};

// ------------------------------------------------------------------------------ native

class NativeWorker {
 public:
  NativeWorker(const LoadOptions& options, const Timeline& timeline, int share,
               std::span<const std::byte> payload, std::atomic<uint64_t>& next_key, Budget budget,
               SharedCounts& shared, uint64_t seed)
      : options_(options),
        timeline_(timeline),
        share_(share),
        payload_(payload),
        next_key_(next_key),
        budget_(budget),
        shared_(shared),
        random_(seed | 1),
        slots_(static_cast<size_t>(share)) {}

  Status Connect(client::ClientOptions client_options) {
    client_options.timeout = options_.request_timeout;
    // Only what we keep in flight: the client scans its slots on every poll.
    client_options.max_in_flight = static_cast<size_t>(share_) + 1;
    client_options.max_record_bytes =
        std::max<uint64_t>(client_options.max_record_bytes, options_.record_bytes);
    auto connected = client::Client::Connect(std::move(client_options));
    if (!connected.ok()) return std::move(connected).error();
    client_ = std::move(*connected);
    return OkStatus();
  }

  // Runs until the window (or the budget) ends and every request has completed. When
  // `progress` is set, reports every kProgressInterval.
  void Run(const std::function<void()>& progress, Timeline* controller) {
    for (size_t slot = 0; slot < slots_.size(); ++slot)
      free_.push_back(static_cast<uint32_t>(slot));
    auto next_progress = Clock::now() + kProgressInterval;
    bool submitting = true;
    while (true) {
      auto now = Clock::now();
      if (controller != nullptr) controller->Advance(now, shared_);
      if (submitting && !timeline_.count_mode() && timeline_.Done()) submitting = false;
      while (submitting && !free_.empty()) {
        if (!budget_.Take()) {
          submitting = false;
          break;
        }
        uint32_t slot = free_.back();
        free_.pop_back();
        Submit(slot);
      }
      if (!submitting && free_.size() == slots_.size()) break;
      client_->Poll(kPollWait);
      if (progress && Clock::now() >= next_progress) {
        progress();
        next_progress += kProgressInterval;
      }
    }
  }

  WorkerResult& result() { return result_; }
  const LatencyHistogram& latency() const { return result_.result.latency; }

 private:
  enum class Op : uint8_t { kPut, kGet, kList };
  struct Slot {
    Clock::time_point started;
    Op op = Op::kPut;
    uint64_t key_index = 0;
    std::string key;
  };

  void Submit(uint32_t slot_index) {
    Slot& slot = slots_[slot_index];
    Op op = Op::kPut;
    switch (options_.mode) {
      case Mode::kPut:
        op = Op::kPut;
        break;
      case Mode::kGet:
        op = Op::kGet;
        break;
      case Mode::kList:
        op = Op::kList;
        break;
      case Mode::kMixed: {
        double u = static_cast<double>(NextRandom(random_) >> 11) * 0x1.0p-53;
        op = u < options_.read_fraction ? Op::kGet : Op::kPut;
        break;
      }
    }
    slot.op = op;
    slot.key_index = KeyIndex(options_, next_key_.fetch_add(1, std::memory_order_relaxed));
    KeyOf(slot.key, options_.key_prefix, slot.key_index);
    slot.started = Clock::now();
    switch (op) {
      case Op::kPut: {
        client::PutArgs args;
        args.key = slot.key;
        args.value = payload_;
        client_->PutAsync(args, [this, slot_index](Result<client::PutResult> r) {
          if (!r.ok()) return Done(slot_index, r.error(), 0, false);
          Done(slot_index, std::nullopt, payload_.size(), false, &r->timings);
        });
        break;
      }
      case Op::kGet:
        client_->GetAsync(slot.key, {}, [this, slot_index](Result<client::GetResult> r) {
          if (!r.ok()) return Done(slot_index, r.error(), 0, false);
          uint64_t size = r->value.size();
          if (options_.verify_size && size != options_.record_bytes) {
            return Done(
                slot_index,
                Error(ErrorCode::kInternal, "got " + std::to_string(size) + " bytes, expected " +
                                                std::to_string(options_.record_bytes)),
                0, false);
          }
          Done(slot_index, std::nullopt, size, r->degraded, &r->timings);
        });
        break;
      case Op::kList:
        client_->ListAsync(options_.key_prefix, {}, options_.list_limit,
                           [this, slot_index](Result<client::ListPage> r) {
                             Done(slot_index, r.ok() ? std::optional<Error>() : r.error(), 0,
                                  false);
                           });
        break;
    }
  }

  void Done(uint32_t slot_index, std::optional<Error> error, uint64_t bytes, bool degraded,
            const std::vector<client::StageTime>* timings = nullptr) {
    Slot& slot = slots_[slot_index];
    auto now = Clock::now();
    LoadResult& r = result_.result;
    if (!error && slot.op == Op::kPut) {
      ++result_.puts_ok_total;
      r.keys_written = std::max(r.keys_written, slot.key_index + 1);
    }
    ++(error ? r.errors_all : r.ok_all);
    shared_.completed_all.fetch_add(1, std::memory_order_relaxed);
    if (error && r.first_error.empty()) r.first_error = error->ToString();
    if (timeline_.InWindow(now)) {
      if (error) {
        ++r.errors;
        ++r.errors_by_code[std::string(ErrorCodeName(error->code()))];
        shared_.errors.fetch_add(1, std::memory_order_relaxed);
      } else {
        ++r.ok;
        r.bytes += bytes;
        if (degraded) ++r.degraded;
        r.latency.Record(Nanos(now - slot.started));
        if (timings != nullptr) r.stages.Add(*timings);
        shared_.ok.fetch_add(1, std::memory_order_relaxed);
        shared_.bytes.fetch_add(bytes, std::memory_order_relaxed);
      }
    }
    free_.push_back(slot_index);
  }

  const LoadOptions& options_;
  const Timeline& timeline_;
  int share_;
  std::span<const std::byte> payload_;
  std::atomic<uint64_t>& next_key_;
  Budget budget_;
  SharedCounts& shared_;
  uint64_t random_;
  std::unique_ptr<client::Client> client_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  WorkerResult result_;
};

// ------------------------------------------------------------------------------ HTTP

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// One keep-alive connection, one request at a time.
void HttpWorker(const LoadOptions& options, const Timeline& timeline,
                std::span<const std::byte> payload, std::atomic<uint64_t>& next_key, Budget budget,
                SharedCounts& shared, uint64_t seed, WorkerResult& out) {
  httplib::Client http(options.http_url);
  http.set_keep_alive(true);
  // cpp-httplib writes a request's head and body separately; with Nagle's algorithm on, the
  // body then waits for the gateway's delayed ACK (~40 ms per PUT). curl and browsers set
  // TCP_NODELAY too.
  http.set_tcp_nodelay(true);
  auto timeout = std::chrono::duration_cast<std::chrono::seconds>(options.request_timeout).count();
  http.set_connection_timeout(static_cast<time_t>(timeout), 0);
  http.set_read_timeout(static_cast<time_t>(timeout), 0);
  http.set_write_timeout(static_cast<time_t>(timeout), 0);
  uint64_t random = seed | 1;
  std::string key;
  const std::string body_type = "application/octet-stream";
  LoadResult& r = out.result;
  while (true) {
    auto started = Clock::now();
    if (!timeline.count_mode() && timeline.Done()) break;
    if (!budget.Take()) break;
    bool get = options.mode == Mode::kGet ||
               (options.mode == Mode::kMixed &&
                static_cast<double>(NextRandom(random) >> 11) * 0x1.0p-53 < options.read_fraction);
    uint64_t index = KeyIndex(options, next_key.fetch_add(1, std::memory_order_relaxed));
    std::string path;
    if (options.mode == Mode::kList) {
      path = "/v1/records?prefix=" + PercentEncode(options.key_prefix) +
             "&limit=" + std::to_string(options.list_limit);
    } else {
      KeyOf(key, options.key_prefix, index);
      path = "/v1/records/" + PercentEncode(key);
    }
    httplib::Result answer = (get || options.mode == Mode::kList)
                                 ? http.Get(path)
                                 : http.Put(path, reinterpret_cast<const char*>(payload.data()),
                                            payload.size(), body_type);
    auto now = Clock::now();
    std::optional<std::string> error;
    uint64_t bytes = 0;
    if (!answer) {
      error = "http: " + httplib::to_string(answer.error());
    } else if (answer->status / 100 != 2) {
      error = "http status " + std::to_string(answer->status) + ": " + answer->body.substr(0, 200);
    } else if (get) {
      bytes = answer->body.size();
      if (options.verify_size && bytes != options.record_bytes) {
        error = "got " + std::to_string(bytes) + " bytes, expected " +
                std::to_string(options.record_bytes);
      }
    } else if (options.mode != Mode::kList) {
      bytes = payload.size();
      ++out.puts_ok_total;
      r.keys_written = std::max(r.keys_written, index + 1);
    }
    ++(error ? r.errors_all : r.ok_all);
    shared.completed_all.fetch_add(1, std::memory_order_relaxed);
    if (error && r.first_error.empty()) r.first_error = *error;
    if (!timeline.InWindow(now)) continue;
    if (error) {
      ++r.errors;
      std::string code = !answer ? "transport" : "http_" + std::to_string(answer->status);
      ++r.errors_by_code[code];
      shared.errors.fetch_add(1, std::memory_order_relaxed);
    } else {
      ++r.ok;
      r.bytes += bytes;
      r.latency.Record(Nanos(now - started));
      shared.ok.fetch_add(1, std::memory_order_relaxed);
      shared.bytes.fetch_add(bytes, std::memory_order_relaxed);
    }
  }
}

Progress ProgressOf(const SharedCounts& shared, const Timeline& timeline,
                    const LatencyHistogram* latency) {
  Progress p;
  auto now = Clock::now();
  p.ok = shared.ok.load(std::memory_order_relaxed);
  p.errors = shared.errors.load(std::memory_order_relaxed);
  p.bytes = shared.bytes.load(std::memory_order_relaxed);
  p.warming_up = timeline.Warming(now);
  p.seconds = timeline.SinceWindowStart(now);
  if (latency != nullptr) p.p99_ns = latency->Percentile(99);
  return p;
}

}  // namespace

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kPut:
      return "put";
    case Mode::kGet:
      return "get";
    case Mode::kMixed:
      return "mixed";
    case Mode::kList:
      return "list";
  }
  return "?";
}

Result<Mode> ParseMode(std::string_view text) {
  for (Mode mode : {Mode::kPut, Mode::kGet, Mode::kMixed, Mode::kList}) {
    if (ModeName(mode) == text) return mode;
  }
  return Error(ErrorCode::kInvalidArgument,
               "unknown mode '" + std::string(text) + "' (put, get, mixed, degraded-get, list)");
}

void StageTotals::Add(const std::vector<client::StageTime>& timings) {
  for (const auto& t : timings) {
    auto i = static_cast<size_t>(t.stage);
    if (i >= count.size()) continue;
    queue_ns[i] += t.queue_ns;
    work_ns[i] += t.work_ns;
    ++count[i];
  }
}

void StageTotals::Merge(const StageTotals& other) {
  for (size_t i = 0; i < count.size(); ++i) {
    queue_ns[i] += other.queue_ns[i];
    work_ns[i] += other.work_ns[i];
    count[i] += other.count[i];
  }
}

nlohmann::json ToJson(const LoadResult& r) {
  nlohmann::json stages = nlohmann::json::object();
  for (size_t i = 0; i < r.stages.count.size(); ++i) {
    uint64_t n = r.stages.count[i];
    if (n == 0) continue;
    stages[std::string(StageName(static_cast<Stage>(i)))] = {
        {"count", n},
        {"queue_us_mean", static_cast<double>(r.stages.queue_ns[i]) / n / 1000.0},
        {"work_us_mean", static_cast<double>(r.stages.work_ns[i]) / n / 1000.0}};
  }
  auto us = [&](double p) { return static_cast<double>(r.latency.Percentile(p)) / 1000.0; };
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [code, n] : r.errors_by_code) errors[code] = n;
  return {{"records", r.ok},
          {"records_all", r.ok_all},
          {"errors_all", r.errors_all},
          {"errors", r.errors},
          {"errors_by_code", errors},
          {"first_error", r.first_error},
          {"seconds", r.seconds},
          {"records_per_s", r.records_per_second()},
          {"bytes_per_s", r.bytes_per_second()},
          {"mib_per_s", r.bytes_per_second() / (1 << 20)},
          {"degraded", r.degraded},
          {"stages", stages},
          {"latency_us",
           {{"p50", us(50)},
            {"p90", us(90)},
            {"p99", us(99)},
            {"p999", us(99.9)},
            {"max", static_cast<double>(r.latency.max()) / 1000.0},
            {"mean", r.latency.mean() / 1000.0}}}};
}

std::vector<std::byte> PayloadBytes(uint64_t size, uint64_t seed) {
  std::vector<std::byte> out(size);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v = NextRandom(x);
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < size; ++i) out[i] = static_cast<std::byte>(NextRandom(x));
  return out;
}

std::string SizeName(uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0)
    return std::to_string(bytes >> 30) + "GiB";
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0)
    return std::to_string(bytes >> 20) + "MiB";
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0)
    return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

Result<uint64_t> ParseSize(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) {
    return Error(ErrorCode::kInvalidArgument, "bad size '" + std::string(text) + "'");
  }
  std::string suffix(end, text.data() + text.size());
  for (auto& c : suffix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int shift = 0;
  if (suffix.empty() || suffix == "b") {
    shift = 0;
  } else if (suffix == "k" || suffix == "kib" || suffix == "kb") {
    shift = 10;
  } else if (suffix == "m" || suffix == "mib" || suffix == "mb") {
    shift = 20;
  } else if (suffix == "g" || suffix == "gib" || suffix == "gb") {
    shift = 30;
  } else {
    return Error(ErrorCode::kInvalidArgument, "bad size suffix in '" + std::string(text) + "'");
  }
  if (value > (UINT64_MAX >> shift)) return Error(ErrorCode::kInvalidArgument, "size too large");
  return value << shift;
}

Result<LoadResult> RunLoad(const client::ClientOptions& client_options, const LoadOptions& options,
                           const std::function<void(const Progress&)>& progress) {
  if (options.concurrency < 1 || options.threads < 1 || options.key_space <= options.first_key) {
    return Error(ErrorCode::kInvalidArgument,
                 "concurrency and threads must be >= 1, and the key space must hold a key");
  }
  if (options.count == 0 && options.duration.count() <= 0) {
    return Error(ErrorCode::kInvalidArgument, "give a positive duration or a count");
  }
  if (options.read_fraction < 0 || options.read_fraction > 1) {
    return Error(ErrorCode::kInvalidArgument, "read fraction must be within [0, 1]");
  }
  const bool http = !options.http_url.empty();
  const int threads = http ? options.concurrency : std::min(options.threads, options.concurrency);
  const bool needs_payload = options.mode == Mode::kPut || options.mode == Mode::kMixed;
  std::vector<std::byte> payload =
      needs_payload ? PayloadBytes(options.record_bytes, 1) : std::vector<std::byte>();

  Timeline timeline;
  std::atomic<uint64_t> remaining{options.count};
  Budget budget;
  if (options.count > 0) budget.remaining = &remaining;
  std::atomic<uint64_t> next_key{0};
  SharedCounts shared;
  std::vector<WorkerResult> results(static_cast<size_t>(threads));

  Clock::time_point finished;
  if (http) {
    timeline.Begin(options);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back(HttpWorker, std::cref(options), std::cref(timeline),
                           std::span<const std::byte>(payload), std::ref(next_key), budget,
                           std::ref(shared), 7919u * (t + 1), std::ref(results[t]));
    }
    // This thread only reports progress while the workers run.
    std::mutex mutex;
    std::condition_variable all_done;
    bool done = false;
    std::thread joiner([&] {
      for (auto& w : workers) w.join();
      std::lock_guard lock(mutex);
      done = true;
      all_done.notify_all();
    });
    {
      // This thread is the window controller; it reports progress every kProgressInterval.
      std::unique_lock lock(mutex);
      auto next_progress = Clock::now() + kProgressInterval;
      while (!all_done.wait_for(lock, kControlInterval, [&] { return done; })) {
        auto now = Clock::now();
        timeline.Advance(now, shared);
        if (progress && now >= next_progress) {
          progress(ProgressOf(shared, timeline, nullptr));
          next_progress = now + kProgressInterval;
        }
      }
    }
    joiner.join();
    finished = Clock::now();
  } else {
    std::vector<std::unique_ptr<NativeWorker>> workers;
    for (int t = 0; t < threads; ++t) {
      int share = options.concurrency / threads + (t < options.concurrency % threads ? 1 : 0);
      workers.push_back(std::make_unique<NativeWorker>(options, timeline, share, payload, next_key,
                                                       budget, shared, 7919u * (t + 1)));
      DDSPLIT_RETURN_IF_ERROR(workers.back()->Connect(client_options));
    }
    timeline.Begin(options);
    std::vector<std::thread> others;
    for (int t = 1; t < threads; ++t) others.emplace_back([&, t] { workers[t]->Run({}, nullptr); });
    NativeWorker& first = *workers[0];
    std::function<void()> report;
    if (progress) {
      report = [&] {
        progress(ProgressOf(shared, timeline, threads == 1 ? &first.latency() : nullptr));
      };
    }
    first.Run(report, &timeline);
    for (auto& thread : others) thread.join();
    finished = Clock::now();
    for (int t = 0; t < threads; ++t) results[t] = std::move(workers[t]->result());
  }

  LoadResult total;
  uint64_t puts_total = 0;
  for (auto& worker : results) {
    LoadResult& r = worker.result;
    total.ok += r.ok;
    total.errors += r.errors;
    total.ok_all += r.ok_all;
    total.errors_all += r.errors_all;
    total.bytes += r.bytes;
    total.degraded += r.degraded;
    total.keys_written = std::max(total.keys_written, r.keys_written);
    for (const auto& [code, n] : r.errors_by_code) total.errors_by_code[code] += n;
    if (total.first_error.empty()) total.first_error = r.first_error;
    total.latency.Merge(r.latency);
    total.stages.Merge(r.stages);
    puts_total += worker.puts_ok_total;
  }
  // Keys are handed out in order, so after key_space successful puts every key exists.
  if (options.first_key == 0 && puts_total >= options.key_space)
    total.keys_written = options.key_space;
  total.seconds = timeline.WindowSeconds(finished);
  return total;
}

Status Populate(const client::ClientOptions& client_options, const LoadOptions& options) {
  LoadOptions populate = options;
  populate.mode = Mode::kPut;
  populate.count = options.key_space - options.first_key;
  populate.warmup = std::chrono::milliseconds(0);
  // At most about 64 MiB in flight: writing data to read is not a stress test.
  populate.concurrency = static_cast<int>(
      std::clamp<uint64_t>((64ull << 20) / std::max<uint64_t>(options.record_bytes, 1), 1,
                           static_cast<uint64_t>(std::max(options.concurrency, 1))));
  std::string last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto result = RunLoad(client_options, populate);
    if (!result.ok()) return std::move(result).error();
    if (result->errors_all == 0) return OkStatus();
    last = result->first_error;
  }
  return Error(ErrorCode::kUnavailable, "populating " + std::to_string(populate.count) +
                                            " keys failed three times: " + last);
}

// ------------------------------------------------------------------------------ cluster state

namespace {

// A client that waits long enough for a cluster that is busy recovering.
Result<std::unique_ptr<client::Client>> Connect(const client::ClientOptions& options) {
  client::ClientOptions o = options;
  o.timeout = std::chrono::milliseconds(5000);
  o.max_in_flight = 64;
  return client::Client::Connect(std::move(o));
}

}  // namespace

Status WaitAllStoresHealthy(const client::ClientOptions& options, int stores,
                            std::chrono::milliseconds timeout) {
  auto c = Connect(options);
  if (!c.ok()) return std::move(c).error();
  auto value = PayloadBytes(4096, 99);
  auto deadline = Clock::now() + timeout;
  std::string last = "no attempt";
  for (int attempt = 0; Clock::now() < deadline; ++attempt) {
    // Between checks, give reconnecting sockets a moment (the condition settles on its own).
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::string key = "bench-health/" + std::to_string(attempt % 16);
    client::PutArgs args;
    args.key = key;
    args.value = value;
    auto put = (*c)->Put(args);
    if (!put.ok()) {
      last = "put: " + put.error().ToString();
      continue;
    }
    auto stat = (*c)->Stat(key);
    if (!stat.ok()) {
      last = "stat: " + stat.error().ToString();
      continue;
    }
    int healthy = 0;
    for (const auto& f : stat->fragments) healthy += f.state == client::FragmentState::kOk ? 1 : 0;
    if (healthy >= std::min<int>(stores, static_cast<int>(stat->fragments.size())) &&
        !stat->fragments.empty()) {
      return OkStatus();
    }
    last =
        std::to_string(healthy) + " of " + std::to_string(stat->fragments.size()) + " fragments ok";
  }
  return Error(ErrorCode::kDeadlineExceeded, "stores not all healthy in time: " + last);
}

Status WaitForFastReads(const client::ClientOptions& options, const std::string& prefix,
                        uint64_t keys, std::chrono::milliseconds timeout) {
  auto c = Connect(options);
  if (!c.ok()) return std::move(c).error();
  auto deadline = Clock::now() + timeout;
  int fast = 0;
  std::string last = "no attempt";
  for (uint64_t i = 0; Clock::now() < deadline; ++i) {
    auto begin = Clock::now();
    auto got = (*c)->Get(prefix + std::to_string(i % keys));
    auto took = Clock::now() - begin;
    if (got.ok() && took < std::chrono::milliseconds(50)) {
      if (++fast >= 20) return OkStatus();
    } else {
      fast = 0;
      last = got.ok()
                 ? "get took " +
                       std::to_string(std::chrono::duration<double, std::milli>(took).count()) +
                       " ms"
                 : got.error().ToString();
    }
  }
  return Error(ErrorCode::kDeadlineExceeded, "degraded reads did not settle: " + last);
}

}  // namespace ddsplit::bench
