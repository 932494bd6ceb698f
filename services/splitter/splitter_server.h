// SplitterServer: the write coordinator's event loop. Clients send Put and Delete on a ROUTER;
// each write gets a version from the hybrid logical clock, is encoded into k + m fragments and
// pushed to its placement stores (one PUSH socket per store); store acknowledgements arrive on
// a PULL socket. The client is answered once the write quorum is durable, or with an error
// when the quorum becomes impossible or the deadline passes; then every placement store is
// told to commit (or abort) the version. Single-threaded; Run() from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/base/version.h"
#include "common/codec/reed_solomon.h"
#include "common/config/store_list.h"
#include "common/placement/placement.h"
#include "common/transport/connection_watch.h"
#include "common/wire/envelope.h"
#include "services/splitter/quorum.h"
#include "services/splitter/record_encoder.h"
#include "services/splitter/splitter_probe.h"

namespace ddsplit::splitter {

struct SplitterOptions {
  std::string client_bind = "tcp://127.0.0.1:0";
  std::string ack_bind = "tcp://127.0.0.1:0";
  std::string advertise_host;  // host stores use to reach the ack socket; empty: as bound
  std::vector<config::StoreEndpoint> stores;
  config::CodeShape shape;
  uint32_t writer_id = 0;
  uint64_t max_record_bytes = 64ull << 20;
  std::chrono::milliseconds write_timeout{5000};
  size_t max_in_flight_writes = 1024;
  uint64_t max_in_flight_bytes = 512ull << 20;
  std::chrono::milliseconds drain_timeout{10000};
};

class SplitterServer {
 public:
  // `clock` must outlive the server.
  static Result<std::unique_ptr<SplitterServer>> Create(SplitterOptions options,
                                                        zmq::context_t& context,
                                                        SplitterProbe& probe, const Clock& clock);
  ~SplitterServer();

  const std::string& client_endpoint() const { return client_endpoint_; }
  const std::string& ack_endpoint() const { return ack_endpoint_; }
  size_t in_flight() const { return in_flight_; }
  // Stores with a finished connection (ZeroMQ handshake done) as of the loop's last look;
  // a store not connected misses the fragments sent meanwhile. Safe from any thread.
  size_t stores_connected() const { return stores_connected_.load(std::memory_order_relaxed); }

  // Before Run(): waits until every store is connected or `timeout` has passed, so the first
  // writes after start-up reach every store. Returns stores_connected().
  size_t WaitForStores(std::chrono::milliseconds timeout);

  // Serves until `stop_fd` becomes readable; then refuses new writes, finishes the ones in
  // flight (until drain_timeout) and returns.
  void Run(int stop_fd);

 private:
  struct PendingWrite;
  SplitterServer(SplitterOptions options, zmq::context_t& context, SplitterProbe& probe,
                 const Clock& clock);
  Status Start();
  void HandleClientMessage(std::vector<zmq::message_t>& frames, bool draining);
  void HandleAck(std::vector<zmq::message_t>& frames);
  void StartWrite(zmq::message_t&& client, uint64_t request_id, const wire::Envelope& envelope,
                  zmq::message_t* value, SteadyTime received);
  void Finish(uint32_t slot, std::optional<Error> error);
  void ExpireWrites(SteadyTime now);
  void ReplyError(zmq::message_t&& client, uint64_t request_id, const Error& error);
  void SendToClient(zmq::message_t&& client, zmq::message_t&& body);
  // Queues the write's commit (or abort) for every placement store; SendDecisions() sends what
  // a pass of the loop decided, one VersionDecisions message per store.
  void QueueDecision(const PendingWrite& write, bool commit);
  void SendDecisions();
  // Reads the connection watches' waiting events; updates stores_connected() and its metric.
  void UpdateStoreConnections();

  SplitterOptions options_;
  zmq::context_t& context_;
  SplitterProbe& probe_;
  HybridLogicalClock hlc_;
  const Clock& clock_;
  std::unique_ptr<codec::ReedSolomon> codec_;
  std::unique_ptr<placement::Placement> placement_;
  std::unique_ptr<RecordEncoder> encoder_;
  zmq::socket_t clients_;
  zmq::socket_t acks_;
  std::vector<zmq::socket_t> store_sockets_;  // parallel to options_.stores
  std::vector<std::unique_ptr<transport::ConnectionWatch>> store_watches_;  // parallel too
  std::atomic<size_t> stores_connected_{0};
  std::unordered_map<uint32_t, size_t> store_index_;  // store id -> position in store_sockets_
  std::string client_endpoint_;
  std::string ack_endpoint_;
  std::string advertised_ack_endpoint_;

  // Writes in flight live in fixed slots; a write id is (generation << 32 | slot) so a late
  // ack for a recycled slot is recognised and ignored.
  std::vector<PendingWrite> slots_;
  std::vector<uint32_t> free_slots_;
  SteadyTime next_expiry_scan_{};
  size_t in_flight_ = 0;
  uint64_t in_flight_bytes_ = 0;
  // Decisions not yet sent: their keys back to back in decision_keys_, and per store (parallel
  // to store_sockets_) the indexes of the decisions that concern it. Capacity is kept.
  struct Decision {
    size_t key_offset = 0;
    size_t key_size = 0;
    Version version;
    bool commit = false;
  };
  std::vector<Decision> decisions_;
  std::string decision_keys_;
  std::vector<std::vector<uint32_t>> decisions_by_store_;
  wire::MessageWriter writer_;
  wire::AlignedFrame aligned_request_;
  wire::AlignedFrame aligned_ack_;
  EncodedRecord encoded_;
  // Observability: when the loop's poll last returned (Unix ns and steady), and when the message
  // being handled began to be taken off its socket; see metrics/queue_wait.h.
  uint64_t wake_ns_ = 0;
  SteadyTime wake_steady_{};
  SteadyTime receive_started_{};
};

}  // namespace ddsplit::splitter
