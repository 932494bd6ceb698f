// client: the native DDSplit client library that the CLI, the gateway, the benchmark and the
// tests all use. One Client keeps a DEALER socket to every splitter (writes) and one to every
// assembler (reads); ZeroMQ spreads requests over them per message. Many requests can be in
// flight at once: the *Async calls return at once and their callbacks run inside Poll(). The
// blocking calls are the async ones followed by polling until done.
//
// Thread-safety: a Client is used from one thread at a time (one per thread in a server).
// Ownership: a value passed to Put is borrowed without copying; it must stay valid until the
// request's callback has run (the blocking Put returns only then).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "common/base/result.h"
#include "common/base/stage.h"
#include "common/base/version.h"

namespace ddsplit::client {

// Endpoints are ZeroMQ endpoints ("tcp://10.0.0.5:7000"), or "dns+tcp://NAME:PORT": the client
// connects to every address NAME resolves to and re-resolves it every `dns_refresh`, adding and
// dropping connections as addresses come and go (a Kubernetes headless Service). Requests are
// spread over all connected peers message by message.
struct ClientOptions {
  std::vector<std::string> splitters;   // endpoints of splitter ROUTER sockets
  std::vector<std::string> assemblers;  // endpoints of assembler ROUTER sockets
  std::chrono::milliseconds dns_refresh{10000};
  std::chrono::milliseconds timeout{10000};  // per request, from submission to answer
  uint64_t max_record_bytes = 64ull << 20;
  size_t max_in_flight = 4096;          // beyond this, submissions fail with kBusy at once
};

// The "tcp://ADDRESS:PORT" endpoints a "dns+tcp://NAME:PORT" endpoint stands for now (sorted);
// any other endpoint is returned as is. kUnavailable when the name does not resolve.
Result<std::vector<std::string>> ResolveEndpoint(const std::string& endpoint);

// Checks an endpoint's syntax without resolving or connecting: a ZeroMQ endpoint
// ("tcp://...", "ipc://...", "inproc://...") or "dns+tcp://NAME:PORT" with a numeric port.
Status ValidateEndpoint(const std::string& endpoint);

// Reads the splitter and assembler endpoints from a cluster.json written by
// `ddsplit cluster up`.
Result<ClientOptions> OptionsFromClusterFile(const std::string& path);

struct StageTime {
  Stage stage;
  uint64_t queue_ns = 0;
  uint64_t work_ns = 0;
};

// A value as it arrived: a list of ZeroMQ frames that together are the bytes. No copy is made
// until one is asked for.
class Value {
 public:
  Value() = default;
  explicit Value(std::vector<zmq::message_t> frames) : frames_(std::move(frames)) {}
  uint64_t size() const;
  const std::vector<zmq::message_t>& frames() const { return frames_; }
  // Copies the bytes into one string (counted as a payload copy).
  std::string ToString() const;
  // Copies the bytes into `out`, which must hold size() bytes.
  void CopyTo(std::span<std::byte> out) const;

 private:
  std::vector<zmq::message_t> frames_;
};

struct RecordInfo {
  std::string key;
  Version version;
  uint64_t size = 0;
  uint64_t checksum = 0;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> metadata;
  int k = 0;
  int m = 0;
  std::vector<uint32_t> placement;
};

struct PutArgs {
  std::string_view key;
  std::span<const std::byte> value;  // borrowed until the request completes
  std::string_view content_type;
  std::vector<std::pair<std::string, std::string>> metadata;
};

struct PutResult {
  Version version;
  uint64_t size = 0;
  bool created = false;
  std::vector<StageTime> timings;
};

struct DeleteResult {
  Version version;
  bool existed = false;
};

struct GetOptions {
  std::optional<std::pair<uint64_t, uint64_t>> range;  // offset, length
  uint64_t suffix_length = 0;  // without range: the last suffix_length bytes
  bool head_only = false;
};

struct GetResult {
  RecordInfo info;
  Value value;
  uint64_t range_offset = 0;  // where the returned bytes start in the record
  bool degraded = false;
  std::vector<StageTime> timings;
};

struct MultiGetItem {
  std::string key;
  Result<GetResult> result = Error(ErrorCode::kInternal, "not answered");
};

struct ListEntry {
  std::string key;
  Version version;
  uint64_t size = 0;
  std::string content_type;
};

struct ListPage {
  std::vector<ListEntry> entries;
  std::string next_cursor;  // empty when the listing is complete
};

enum class FragmentState : uint8_t { kOk, kMissing, kStale, kCorrupt, kUnreachable };
std::string_view FragmentStateName(FragmentState state);

struct FragmentHealth {
  uint32_t store_id = 0;
  int fragment_index = 0;
  FragmentState state = FragmentState::kMissing;
  Version newest;
};

struct StatResult {
  RecordInfo info;
  std::vector<FragmentHealth> fragments;
};

// What a repair (RepairAsync) found and did for one key; see services/assembler/repairer.h.
enum class RepairKind : uint8_t { kHealthy, kRepaired, kPartial, kDeleted, kWouldRepair };
std::string_view RepairKindName(RepairKind kind);

struct RepairResult {
  RepairKind kind = RepairKind::kHealthy;
  Version version;
  int fragments = 0;        // k + m of the record
  int k = 0;
  int healthy_before = 0;
  std::vector<int> rebuilt;  // fragment indexes rebuilt (dry run: that would be)
  std::vector<int> failed;   // fragment indexes that needed a rebuild and did not get one
  uint64_t bytes_written = 0;
  uint64_t bytes_read = 0;
};

template <typename T>
using Callback = std::function<void(Result<T>)>;

class Client {
 public:
  // Creates the sockets and connects (ZeroMQ connects in the background). `context` may be
  // shared by several clients; when null the client owns one.
  static Result<std::unique_ptr<Client>> Connect(ClientOptions options,
                                                 zmq::context_t* context = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void PutAsync(const PutArgs& args, Callback<PutResult> done);
  void DeleteAsync(std::string_view key, Callback<DeleteResult> done);
  void GetAsync(std::string_view key, const GetOptions& options, Callback<GetResult> done);
  void MultiGetAsync(std::span<const std::string> keys, Callback<std::vector<MultiGetItem>> done);
  void ListAsync(std::string_view prefix, std::string_view cursor, uint32_t limit,
                 Callback<ListPage> done);
  void StatAsync(std::string_view key, Callback<StatResult> done);
  // Asks an assembler to rebuild the key's unhealthy fragments at its current version (dry_run:
  // only report what it would rebuild). kNotFound for an absent key; a deleted key answers
  // RepairKind::kDeleted and is left alone.
  void RepairAsync(std::string_view key, bool dry_run, Callback<RepairResult> done);

  // Waits up to `wait` for answers and runs the callbacks of completed requests (including
  // those that timed out). Returns how many completed.
  size_t Poll(std::chrono::milliseconds wait);
  size_t in_flight() const;

  // Blocking forms.
  Result<PutResult> Put(const PutArgs& args);
  Result<DeleteResult> Delete(std::string_view key);
  Result<GetResult> Get(std::string_view key, const GetOptions& options = {});
  Result<std::vector<MultiGetItem>> MultiGet(std::span<const std::string> keys);
  Result<ListPage> List(std::string_view prefix, std::string_view cursor = {}, uint32_t limit = 0);
  Result<StatResult> Stat(std::string_view key);
  Result<RepairResult> Repair(std::string_view key, bool dry_run = false);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddsplit::client
