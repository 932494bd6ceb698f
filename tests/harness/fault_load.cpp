#include "tests/harness/fault_load.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/codec/checksum.h"
#include "common/transport/transport.h"
#include "common/wire/envelope.h"

namespace ddsplit::testing {
namespace {

constexpr char kMagic[4] = {'D', 'D', 'S', 'V'};
constexpr size_t kMaxProblems = 50;

void PutLittle(std::vector<std::byte>& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(std::byte(value >> (8 * i)));
}

uint64_t GetLittle(std::span<const std::byte> in, size_t offset, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t(in[offset + i]) << (8 * i);
  return value;
}

// The body of (key, sequence): splitmix64 over a seed from both, so every window is unique.
void FillBody(std::string_view key, uint64_t sequence, std::span<std::byte> body) {
  uint64_t state = codec::Checksum(std::as_bytes(std::span(key.data(), key.size()))) ^ (sequence * 0x9E3779B97F4A7C15ull);
  for (size_t i = 0; i < body.size(); i += 8) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    for (size_t j = 0; j < 8 && i + j < body.size(); ++j) body[i + j] = std::byte(z >> (8 * j));
  }
}

size_t HeaderBytes(std::string_view key) { return 4 + 2 + key.size() + 8 + 4 + 8; }

Error Corrupt(std::string message) { return Error(ErrorCode::kCorrupt, std::move(message)); }

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

uint64_t TestSeed(const char* what) {
  uint64_t seed = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  if (const char* text = std::getenv("DDSPLIT_SEED"); text != nullptr && *text != '\0') {
    seed = std::strtoull(text, nullptr, 0);
  }
  std::printf("%s: seed %llu (replay with DDSPLIT_SEED=%llu)\n", what,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  long long value = std::strtoll(text, &end, 0);
  return end != nullptr && *end == '\0' ? value : fallback;
}

// ------------------------------------------------------------------------------ values

std::vector<std::byte> MakeValue(std::string_view key, uint64_t sequence, size_t body_bytes) {
  std::vector<std::byte> value;
  value.reserve(HeaderBytes(key) + body_bytes);
  for (char c : kMagic) value.push_back(std::byte(c));
  PutLittle(value, key.size(), 2);
  for (char c : key) value.push_back(std::byte(c));
  PutLittle(value, sequence, 8);
  PutLittle(value, body_bytes, 4);
  size_t hash_at = value.size();
  PutLittle(value, 0, 8);
  value.resize(hash_at + 8 + body_bytes);
  auto body = std::span(value).subspan(hash_at + 8);
  FillBody(key, sequence, body);
  uint64_t hash = codec::Checksum(body);
  for (int i = 0; i < 8; ++i) value[hash_at + i] = std::byte(hash >> (8 * i));
  return value;
}

Result<uint64_t> CheckValue(std::string_view key, std::span<const std::byte> bytes) {
  if (bytes.size() < HeaderBytes(key)) {
    return Corrupt("value of " + std::to_string(bytes.size()) + " bytes is shorter than its header");
  }
  if (std::memcmp(bytes.data(), kMagic, 4) != 0) return Corrupt("value does not start with DDSV");
  size_t key_size = GetLittle(bytes, 4, 2);
  if (key_size != key.size() || std::memcmp(bytes.data() + 6, key.data(), key.size()) != 0) {
    return Corrupt("value names another key");
  }
  size_t at = 6 + key.size();
  uint64_t sequence = GetLittle(bytes, at, 8);
  uint64_t body_bytes = GetLittle(bytes, at + 8, 4);
  uint64_t hash = GetLittle(bytes, at + 12, 8);
  auto body = bytes.subspan(at + 20);
  if (body.size() != body_bytes) {
    return Corrupt("value of sequence " + std::to_string(sequence) + " has a body of " +
                   std::to_string(body.size()) + " bytes, its header says " + std::to_string(body_bytes));
  }
  if (codec::Checksum(body) != hash) {
    return Corrupt("body of sequence " + std::to_string(sequence) + " fails its hash");
  }
  std::vector<std::byte> expected(body.size());
  FillBody(key, sequence, expected);
  if (!std::equal(body.begin(), body.end(), expected.begin())) {
    return Corrupt("body of sequence " + std::to_string(sequence) + " differs from what was written");
  }
  return sequence;
}

// ------------------------------------------------------------------------------ judging

std::string_view ReadVerdictName(ReadVerdict verdict) {
  switch (verdict) {
    case ReadVerdict::kOk: return "ok";
    case ReadVerdict::kClearError: return "clear-error";
    case ReadVerdict::kStale: return "stale";
    case ReadVerdict::kCorrupt: return "corrupt";
    case ReadVerdict::kLost: return "lost";
  }
  return "?";
}

ReadVerdict JudgeRead(std::string_view key, std::span<const KeyOp> history,
                      const Result<client::GetResult>& read, std::string* detail) {
  // The last acknowledged operation; everything from it on may be what a read sees.
  std::ptrdiff_t last_acked = -1;
  for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(history.size()) - 1; i >= 0; --i) {
    if (history[i].acknowledged) {
      last_acked = i;
      break;
    }
  }
  size_t from = last_acked < 0 ? 0 : static_cast<size_t>(last_acked);
  auto say = [&](std::string text) {
    if (detail != nullptr) *detail = std::string(key) + ": " + std::move(text);
  };
  if (!read.ok()) {
    if (read.error().code() != ErrorCode::kNotFound) {
      say("error " + read.error().ToString());
      return ReadVerdict::kClearError;
    }
    bool allowed = last_acked < 0 || history[from].kind == KeyOp::Kind::kDelete;
    for (size_t i = from; i < history.size() && !allowed; ++i) {
      allowed = history[i].kind == KeyOp::Kind::kDelete;
    }
    if (allowed) return ReadVerdict::kOk;
    say("not found, but sequence " + std::to_string(history[from].sequence) + " was acknowledged at " +
        history[from].version.ToString());
    return ReadVerdict::kLost;
  }
  const client::GetResult& got = *read;
  std::vector<std::byte> bytes(got.value.size());
  got.value.CopyTo(bytes);
  auto sequence = CheckValue(key, bytes);
  if (!sequence.ok()) {
    say("wrong bytes (version " + got.info.version.ToString() + "): " + sequence.error().message());
    return ReadVerdict::kCorrupt;
  }
  if (last_acked >= 0 && got.info.version < history[from].version) {
    say("version " + got.info.version.ToString() + " is older than the acknowledged " +
        history[from].version.ToString());
    return ReadVerdict::kStale;
  }
  for (size_t i = from; i < history.size(); ++i) {
    const KeyOp& op = history[i];
    if (op.kind != KeyOp::Kind::kPut || op.sequence != *sequence) continue;
    if (op.acknowledged && !(op.version == got.info.version)) {
      say("sequence " + std::to_string(*sequence) + " read at version " + got.info.version.ToString() +
          " but acknowledged at " + op.version.ToString());
      return ReadVerdict::kCorrupt;
    }
    return ReadVerdict::kOk;
  }
  bool older = std::any_of(history.begin(), history.begin() + static_cast<std::ptrdiff_t>(from),
                           [&](const KeyOp& op) { return op.kind == KeyOp::Kind::kPut && op.sequence == *sequence; });
  if (older) {
    say("read sequence " + std::to_string(*sequence) + ", older than the acknowledged sequence " +
        std::to_string(history[from].sequence));
    return ReadVerdict::kStale;
  }
  say("read sequence " + std::to_string(*sequence) + ", which was never written");
  return ReadVerdict::kCorrupt;
}

// ------------------------------------------------------------------------------ load

struct FaultLoad::Worker {
  int index = 0;
  std::mt19937_64 rng;
  std::unique_ptr<client::Client> client;
  mutable std::mutex mutex;  // guards everything below
  std::vector<std::string> keys;
  std::vector<std::vector<KeyOp>> histories;  // parallel to keys
  std::vector<uint64_t> next_sequence;
  LoadStats stats;
};

FaultLoad::FaultLoad(LoadOptions options) : options_(std::move(options)) {}

FaultLoad::~FaultLoad() { Stop(); }

Status FaultLoad::Start() {
  auto client_options = client::OptionsFromClusterFile(options_.cluster_json.string());
  if (!client_options.ok()) return std::move(client_options).error();
  client_options->timeout = options_.request_timeout;
  for (int t = 0; t < options_.threads; ++t) {
    auto worker = std::make_unique<Worker>();
    worker->index = t;
    worker->rng.seed(options_.seed * 1000003 + static_cast<uint64_t>(t));
    auto connected = client::Client::Connect(*client_options);
    if (!connected.ok()) return std::move(connected).error();
    worker->client = std::move(*connected);
    for (int k = 0; k < options_.keys_per_thread; ++k) {
      worker->keys.push_back(options_.key_prefix + "t" + std::to_string(t) + "/k" + std::to_string(k));
    }
    worker->histories.resize(worker->keys.size());
    worker->next_sequence.assign(worker->keys.size(), 1);
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) threads_.emplace_back([this, w = worker.get()] { Run(*w); });
  return OkStatus();
}

void FaultLoad::Pause() {
  std::unique_lock lock(mutex_);
  paused_ = true;
  changed_.wait(lock, [&] { return idle_ == static_cast<int>(threads_.size()) || stopping_; });
}

void FaultLoad::Resume() {
  {
    std::lock_guard lock(mutex_);
    paused_ = false;
  }
  changed_.notify_all();
}

void FaultLoad::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

bool FaultLoad::WaitIfPaused() {
  std::unique_lock lock(mutex_);
  if (paused_ && !stopping_) {
    ++idle_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !paused_ || stopping_; });
    --idle_;
  }
  return !stopping_;
}

void FaultLoad::Run(Worker& worker) {
  client::Client& client = *worker.client;
  auto count_error = [&](const Error& error) { ++worker.stats.errors[std::string(ErrorCodeName(error.code()))]; };
  while (WaitIfPaused()) {
    size_t key_index = std::uniform_int_distribution<size_t>(0, worker.keys.size() - 1)(worker.rng);
    const std::string& key = worker.keys[key_index];
    int roll = std::uniform_int_distribution<int>(0, 99)(worker.rng);
    if (roll < options_.put_percent) {
      // Sizes: a few empty, most small, some with fragments large enough for segment files.
      int size_roll = std::uniform_int_distribution<int>(0, 99)(worker.rng);
      size_t body = size_roll < 5    ? 0
                    : size_roll < 55 ? std::uniform_int_distribution<size_t>(1, 2000)(worker.rng)
                                     : std::uniform_int_distribution<size_t>(2000, options_.max_value_bytes)(worker.rng);
      uint64_t sequence;
      {
        std::lock_guard lock(worker.mutex);
        sequence = worker.next_sequence[key_index]++;
      }
      auto value = MakeValue(key, sequence, body);
      auto put = client.Put({key, value, "application/x-ddsplit-test", {}});
      std::lock_guard lock(worker.mutex);
      KeyOp op{KeyOp::Kind::kPut, sequence, put.ok(), put.ok() ? put->version : Version{},
               put.ok() ? ErrorCode::kOk : put.error().code(), body};
      worker.histories[key_index].push_back(op);
      if (put.ok()) {
        ++worker.stats.puts_acked;
      } else {
        ++worker.stats.puts_failed;
        count_error(put.error());
      }
    } else if (roll < options_.put_percent + options_.get_percent) {
      auto got = client.Get(key);
      std::lock_guard lock(worker.mutex);
      std::string detail;
      ReadVerdict verdict = JudgeRead(key, worker.histories[key_index], got, &detail);
      if (got.ok()) {
        ++worker.stats.gets_ok;
      } else if (got.error().code() == ErrorCode::kNotFound) {
        ++worker.stats.gets_not_found;
      } else {
        ++worker.stats.gets_failed;
        count_error(got.error());
      }
      if (verdict == ReadVerdict::kStale || verdict == ReadVerdict::kCorrupt || verdict == ReadVerdict::kLost) {
        ++worker.stats.violations;
        std::lock_guard violations_lock(violations_mutex_);
        if (violations_.size() < kMaxProblems) {
          violations_.push_back(std::string(ReadVerdictName(verdict)) + " read by the load: " + detail);
        }
      }
    } else {
      auto deleted = client.Delete(key);
      std::lock_guard lock(worker.mutex);
      KeyOp op{KeyOp::Kind::kDelete, 0, deleted.ok(), deleted.ok() ? deleted->version : Version{},
               deleted.ok() ? ErrorCode::kOk : deleted.error().code(), 0};
      worker.histories[key_index].push_back(op);
      if (deleted.ok()) {
        ++worker.stats.deletes_acked;
      } else {
        ++worker.stats.deletes_failed;
        count_error(deleted.error());
      }
    }
  }
}

LoadStats FaultLoad::stats() const {
  LoadStats total;
  for (const auto& worker : workers_) {
    std::lock_guard lock(worker->mutex);
    const LoadStats& s = worker->stats;
    total.puts_acked += s.puts_acked;
    total.puts_failed += s.puts_failed;
    total.deletes_acked += s.deletes_acked;
    total.deletes_failed += s.deletes_failed;
    total.gets_ok += s.gets_ok;
    total.gets_not_found += s.gets_not_found;
    total.gets_failed += s.gets_failed;
    total.violations += s.violations;
    for (const auto& [name, count] : s.errors) total.errors[name] += count;
  }
  return total;
}

std::vector<std::string> FaultLoad::violations() const {
  std::lock_guard lock(violations_mutex_);
  return violations_;
}

VerifyReport FaultLoad::Verify(client::Client& client, int attempts, std::chrono::milliseconds pause) {
  VerifyReport report;
  for (auto& worker : workers_) {
    std::lock_guard lock(worker->mutex);
    for (size_t i = 0; i < worker->keys.size(); ++i) {
      const std::string& key = worker->keys[i];
      const auto& history = worker->histories[i];
      ++report.keys;
      const KeyOp* last_acked = nullptr;
      for (auto it = history.rbegin(); it != history.rend(); ++it) {
        if (it->acknowledged) {
          last_acked = &*it;
          break;
        }
      }
      ReadVerdict verdict = ReadVerdict::kClearError;
      std::string detail;
      for (int attempt = 0; attempt < attempts; ++attempt) {
        if (attempt > 0) std::this_thread::sleep_for(pause);  // give a restarted peer time
        auto got = client.Get(key);
        verdict = JudgeRead(key, history, got, &detail);
        if (verdict != ReadVerdict::kClearError) break;
      }
      if (last_acked != nullptr && verdict != ReadVerdict::kClearError) {
        if (last_acked->kind == KeyOp::Kind::kPut) {
          ++report.acked_puts_checked;
        } else {
          ++report.acked_deletes_checked;
        }
      }
      if (verdict == ReadVerdict::kOk) continue;
      if (verdict == ReadVerdict::kClearError) {
        ++report.unreadable;
      } else {
        ++report.violations;
        ++(verdict == ReadVerdict::kStale ? report.stale : verdict == ReadVerdict::kCorrupt ? report.corrupt : report.lost);
      }
      if (report.problems.size() < kMaxProblems) {
        report.problems.push_back(std::string(ReadVerdictName(verdict)) + ": " + detail);
        report.problem_keys.push_back(key);
      }
    }
  }
  return report;
}

std::vector<KeyOp> FaultLoad::History(const std::string& key) const {
  for (const auto& worker : workers_) {
    std::lock_guard lock(worker->mutex);
    auto it = std::find(worker->keys.begin(), worker->keys.end(), key);
    if (it != worker->keys.end()) return worker->histories[static_cast<size_t>(it - worker->keys.begin())];
  }
  return {};
}

std::optional<AckedRecord> FaultLoad::PickAckedRecord(std::mt19937_64& rng, size_t min_body_bytes) {
  std::vector<AckedRecord> candidates;
  for (auto& worker : workers_) {
    std::lock_guard lock(worker->mutex);
    for (size_t i = 0; i < worker->keys.size(); ++i) {
      const auto& history = worker->histories[i];
      if (history.empty()) continue;
      const KeyOp& last = history.back();
      if (last.kind != KeyOp::Kind::kPut || !last.acknowledged || last.body_bytes < min_body_bytes) continue;
      candidates.push_back({worker->keys[i], last.version, MakeValue(worker->keys[i], last.sequence, last.body_bytes)});
    }
  }
  if (candidates.empty()) return std::nullopt;
  return candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng)];
}

// ------------------------------------------------------------------------------ damage

Result<std::vector<std::string>> FlipBytesEverywhere(const std::filesystem::path& dir,
                                                     std::span<const std::byte> needle, size_t offset) {
  std::vector<std::string> changed;
  std::string_view pattern(reinterpret_cast<const char*>(needle.data()), needle.size());
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::string content = ReadFile(entry.path());
    bool touched = false;
    for (size_t at = content.find(pattern); at != std::string::npos; at = content.find(pattern, at + 1)) {
      if (at + offset >= content.size()) continue;
      content[at + offset] = static_cast<char>(content[at + offset] ^ 0x01);
      touched = true;
    }
    if (!touched) continue;
    std::ofstream out(entry.path(), std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) return Error(ErrorCode::kInternal, "could not write " + entry.path().string());
    changed.push_back(entry.path().string());
  }
  if (changed.empty()) return Error(ErrorCode::kNotFound, "no file under " + dir.string() + " holds the bytes");
  return changed;
}

Result<std::vector<std::string>> TruncateWhere(const std::filesystem::path& dir,
                                               std::span<const std::byte> needle) {
  std::vector<std::string> changed;
  std::string_view pattern(reinterpret_cast<const char*>(needle.data()), needle.size());
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::string content = ReadFile(entry.path());
    size_t at = content.find(pattern);
    if (at == std::string::npos) continue;
    std::error_code ec;
    std::filesystem::resize_file(entry.path(), at, ec);
    if (ec) return Error(ErrorCode::kInternal, "could not truncate " + entry.path().string() + ": " + ec.message());
    changed.push_back(entry.path().string());
  }
  if (changed.empty()) return Error(ErrorCode::kNotFound, "no file under " + dir.string() + " holds the bytes");
  return changed;
}

Status CopyTree(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::remove_all(to, ec);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive, ec);
  if (ec) return Error(ErrorCode::kInternal, "copying " + from.string() + ": " + ec.message());
  return OkStatus();
}

// ------------------------------------------------------------------------------ store contents

Result<std::vector<StoreHeldVersion>> AskStore(const std::string& read_endpoint, const std::string& key,
                                               std::chrono::milliseconds timeout) {
  zmq::context_t context(1);
  auto socket = transport::MakeSocket(context, zmq::socket_type::dealer, {});
  if (!socket.ok()) return std::move(socket).error();
  DDSPLIT_RETURN_IF_ERROR(transport::Connect(*socket, read_endpoint));
  wire::MessageWriter writer;
  auto& fbb = writer.fbb();
  auto key_offset = fbb.CreateString(key);
  wire::FetchRequestBuilder fetch(fbb);
  fetch.add_key(key_offset);
  fetch.add_verify(true);
  zmq::message_t request = writer.Finish(1, fetch.Finish());
  zmq::pollitem_t out{socket->handle(), 0, ZMQ_POLLOUT, 0};
  zmq::poll(&out, 1, timeout);
  auto sent = transport::SendMultipart(*socket, std::span(&request, 1));
  if (!sent.ok() || *sent != transport::SendOutcome::kSent) {
    return Error(ErrorCode::kUnavailable, "could not send to " + read_endpoint);
  }
  zmq::pollitem_t in{socket->handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&in, 1, timeout) != 1) return Error(ErrorCode::kDeadlineExceeded, read_endpoint + " did not answer");
  std::vector<zmq::message_t> frames;
  bool overflow = false;
  auto got = transport::ReceiveMultipart(*socket, frames, 4, overflow);
  if (!got.ok() || !*got) return Error(ErrorCode::kInternal, "no answer frames");
  wire::AlignedFrame aligned;
  auto envelope = wire::ParseEnvelope(aligned.Of(frames[0]));
  if (!envelope.ok()) return std::move(envelope).error();
  if ((*envelope)->error() != nullptr) return wire::FromWire((*envelope)->error());
  const auto* reply = (*envelope)->body_as_FetchReply();
  if (reply == nullptr) return Error(ErrorCode::kMalformed, "not a FetchReply");
  std::vector<StoreHeldVersion> held;
  if (reply->versions() != nullptr) {
    for (const auto* v : *reply->versions()) {
      StoreHeldVersion out_version;
      out_version.version = wire::FromWire(v->version());
      out_version.committed = v->committed();
      out_version.corrupt = v->state() == wire::FragmentState::Corrupt;
      wire::AlignedFrame header_aligned;
      auto header = wire::ParseFragmentHeader(
          header_aligned.Of(std::as_bytes(std::span(v->header()->data(), v->header()->size()))));
      if (header.ok()) {
        out_version.tombstone = (*header)->tombstone();
        out_version.fragment_index = (*header)->index();
      }
      held.push_back(out_version);
    }
  }
  return held;
}

std::string DescribeHeld(const std::vector<StoreHeldVersion>& held) {
  std::string out;
  for (const auto& v : held) {
    if (!out.empty()) out += ' ';
    out += v.version.ToString() + (v.committed ? " committed" : " pending") + (v.tombstone ? " tombstone" : "") +
           (v.corrupt ? " CORRUPT" : "") + " #" + std::to_string(v.fragment_index);
  }
  return out.empty() ? "(nothing)" : out;
}

// ------------------------------------------------------------------------------ processes

Result<ProcessMemory> ReadProcessMemory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return Error(ErrorCode::kNotFound, "no process " + std::to_string(pid));
  ProcessMemory memory;
  std::string line;
  while (std::getline(in, line)) {
    auto field = [&](const char* name, uint64_t& out) {
      size_t n = std::strlen(name);
      if (line.compare(0, n, name) != 0) return;
      out = std::strtoull(line.c_str() + n, nullptr, 10) * 1024;  // "VmRSS:   1234 kB"
    };
    field("VmRSS:", memory.resident_bytes);
    field("VmHWM:", memory.peak_resident_bytes);
  }
  return memory;
}

}  // namespace ddsplit::testing
