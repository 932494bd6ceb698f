// FragstoreServer: the fragment store's network side. Three threads:
//  - ingest: receives WriteFragment, VersionDecisions (a splitter's commits and aborts, batched)
//    and single CommitVersion / AbortVersion (from the repairer) on a PULL socket, verifies them
//    and queues them for the commit thread (bounded; a full queue stops the receiving, so
//    ZeroMQ's high-water mark pushes back on the splitters);
//  - commit: takes everything queued as one group commit (one WAL write and sync), then sends
//    each write's acknowledgement to the splitter's PULL socket named in the message; when no
//    write has come for a second, reclaims space from mostly-garbage segment files;
//  - read: serves Fetch, ListKeys and StoreStat on a ROUTER socket.
// Start with Bind(), then Run() from the main thread until the stop fd becomes readable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/base/clock.h"
#include "common/base/result.h"
#include "common/base/strong_id.h"
#include "services/fragstore/fragment_store.h"
#include "services/fragstore/fragstore_probe.h"
#include "services/fragstore/group_commit.h"

namespace ddsplit::fragstore {

struct ServerOptions {
  StoreId store_id;
  std::string ingest_bind = "tcp://127.0.0.1:0";
  std::string read_bind = "tcp://127.0.0.1:0";
  uint64_t max_fragment_bytes = (64ull << 20) + 64;
  uint64_t max_queued_bytes = 256ull << 20;  // fragments received but not yet committed
  GroupCommitLimits group_commit;
};

class FragstoreServer {
 public:
  FragstoreServer(ServerOptions options, FragmentStore& store, zmq::context_t& context,
                  FragstoreProbe& probe);
  ~FragstoreServer();
  FragstoreServer(const FragstoreServer&) = delete;
  FragstoreServer& operator=(const FragstoreServer&) = delete;

  // Binds both sockets; the endpoints actually bound are then available.
  Status Bind();
  const std::string& ingest_endpoint() const { return ingest_endpoint_; }
  const std::string& read_endpoint() const { return read_endpoint_; }

  // Serves until `stop_fd` becomes readable, then stops receiving, commits and acknowledges
  // what was already received, and returns.
  void Run(int stop_fd);

 private:
  struct Queued;
  struct CommitScratch;
  void IngestLoop(int stop_fd);
  void CommitLoop();
  void ReadLoop(int stop_fd);
  void CommitBatch(std::vector<Queued>& batch, CommitScratch& scratch);
  void ReclaimSegmentSpace();

  ServerOptions options_;
  FragmentStore& store_;
  zmq::context_t& context_;
  FragstoreProbe& probe_;
  zmq::socket_t ingest_;
  zmq::socket_t reader_;
  std::string ingest_endpoint_;
  std::string read_endpoint_;

  std::mutex queue_mutex_;
  std::condition_variable queue_ready_;   // commit thread waits for work
  std::condition_variable queue_space_;   // ingest thread waits for room
  std::vector<Queued> queue_;
  uint64_t queued_bytes_ = 0;
  bool ingest_done_ = false;
};

}  // namespace ddsplit::fragstore
