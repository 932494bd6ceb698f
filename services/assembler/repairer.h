// Repairer: rebuilds the missing, stale or corrupt fragments of one key's current version on the
// stores of the record's placement, at that version — never as a new version.
//
// For a key: every placement store is asked which versions it holds, with checksum
// verification (like Stat). The version is chosen exactly as a read chooses it (ChooseVersion);
// a tombstone or an absent key is left alone, so a repair never resurrects a deleted key (and a
// store that already holds a newer committed version drops the rebuilt fragment as obsolete).
// Then k healthy fragments are fetched, the unhealthy ones rebuilt with the codec, the whole
// record checked against its checksum (nothing is written if it fails), and each rebuilt
// fragment is pushed to its store's ingest socket as the WriteFragment the splitter sent (the
// same header attributes), followed by CommitVersion when a store reported the version
// committed. A fragment counts as repaired once its store acknowledged the durable write.
//
// RepairWorker runs repairs one at a time on its own thread with its own sockets (one DEALER to
// each store's read socket, one PUSH to each ingest socket, one PULL for acknowledgements), so
// the assembler's event loop never waits on a repair. Jobs come from the event loop through
// Submit(); client repair replies go back to it over an inproc PAIR socket that the loop polls
// (results_socket()). Read repairs (scheduled by degraded reads) are deduplicated by key and
// bounded; a full queue drops them (counted).
//
// Thread-safety: Submit*() and the results socket from the event loop's thread only; the rest is
// internal to the worker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "common/base/result.h"
#include "common/base/version.h"
#include "common/config/store_list.h"
#include "services/assembler/assembler_probe.h"

namespace ddsplit::assembler {

struct RepairOptions {
  std::vector<config::StoreEndpoint> stores;
  config::CodeShape shape;
  std::string ack_bind = "tcp://127.0.0.1:0";  // PULL socket the stores acknowledge writes to
  std::string advertise_host;                  // host stores use to reach ack_bind ("": as bound)
  std::chrono::milliseconds fetch_timeout{5000};
  std::chrono::milliseconds write_timeout{10000};
  size_t max_queued_client_repairs = 1024;
  size_t max_queued_read_repairs = 256;
};

// What one repair found and did.
struct RepairOutcome {
  enum class Kind : uint8_t { kHealthy, kRepaired, kPartial, kDeleted, kWouldRepair };
  Kind kind = Kind::kHealthy;
  Version version;
  int fragments = 0;  // k + m of the record
  int k = 0;
  int healthy_before = 0;
  std::vector<uint8_t> rebuilt;  // acknowledged (dry run: would be written)
  std::vector<uint8_t> failed;   // needed a rebuild, did not get one
  uint64_t bytes_written = 0;
  uint64_t bytes_read = 0;
};

class RepairWorker {
 public:
  // Binds the acknowledgement socket and connects to every store; starts the thread.
  static Result<std::unique_ptr<RepairWorker>> Start(RepairOptions options, zmq::context_t& context,
                                                     AssemblerProbe& probe);
  // Stops the thread; queued jobs are dropped (their clients time out).
  ~RepairWorker();
  RepairWorker(const RepairWorker&) = delete;
  RepairWorker& operator=(const RepairWorker&) = delete;

  // A client's RepairRequest: the reply envelope (or error) comes back on results_socket() as
  // [client routing id][envelope]. False when the queue is full (answer BUSY).
  bool SubmitClientRepair(zmq::message_t&& client, uint64_t request_id, std::string_view key,
                          bool dry_run);
  // A read found `key` lacking a healthy fragment. False when dropped (queue full); a key
  // already queued is not queued twice (true).
  bool SubmitReadRepair(std::string_view key);
  // PAIR socket the event loop polls for finished client repairs.
  zmq::socket_t& results_socket() { return results_; }

  // The repair itself, blocking; used by the worker thread. Public for tests.
  Result<RepairOutcome> Repair(std::string_view key, bool dry_run);

 private:
  struct Job {
    std::string key;
    bool dry_run = false;
    bool read_repair = false;
    zmq::message_t client;
    uint64_t request_id = 0;
  };
  struct Sockets;
  RepairWorker(RepairOptions options, zmq::context_t& context, AssemblerProbe& probe);
  Status Init();
  void Loop();
  void Finish(Job& job, const Result<RepairOutcome>& outcome);

  RepairOptions options_;
  zmq::context_t& context_;
  AssemblerProbe& probe_;
  std::unique_ptr<Sockets> sockets_;  // used by the worker thread only
  zmq::socket_t results_;             // event loop's end of the inproc pair

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job> jobs_;
  size_t client_jobs_ = 0;
  std::unordered_set<std::string> read_repair_keys_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ddsplit::assembler
