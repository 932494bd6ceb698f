// AssemblerServer: the read coordinator's event loop. Clients send Get, MultiGet, Head, Stat
// and List on a ROUTER. For a key, the assembler asks the placement stores (one DEALER per
// store): the k data-fragment stores for their bytes (only the part a byte range needs), the
// others for version information only. It picks the version with ChooseVersion, answers
// straight from the data fragments when they are all there — forwarding the received frames
// without copying — and otherwise fetches parity fragments and decodes. Data fragments slower
// than the hedge delay are treated as missing. List merges every store's listing.
// Single-threaded; Run() from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "common/codec/reed_solomon.h"
#include "common/codec/stripe.h"
#include "common/config/store_list.h"
#include "common/placement/placement.h"
#include "common/wire/envelope.h"
#include "services/assembler/assembler_probe.h"
#include "services/assembler/repairer.h"
#include "services/assembler/version_choice.h"

namespace ddsplit::assembler {

struct AssemblerOptions {
  std::string client_bind = "tcp://127.0.0.1:0";
  std::vector<config::StoreEndpoint> stores;
  config::CodeShape shape;
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds hedge_after{250};  // a data fragment slower than this is rebuilt
  size_t max_in_flight_reads = 1024;
  uint64_t max_multi_get_bytes = 256ull << 20;
  std::chrono::milliseconds drain_timeout{10000};
  // Repair (repairer.h): where stores send the repair thread their write acknowledgements, the
  // host they reach it at ("": as bound), and whether degraded reads schedule a repair.
  std::string repair_ack_bind = "tcp://127.0.0.1:0";
  std::string advertise_host;
  bool read_repair = true;
  size_t max_queued_read_repairs = 256;
};

class AssemblerServer {
 public:
  static Result<std::unique_ptr<AssemblerServer>> Create(AssemblerOptions options,
                                                         zmq::context_t& context,
                                                         AssemblerProbe& probe, const Clock& clock);
  ~AssemblerServer();

  const std::string& client_endpoint() const { return client_endpoint_; }

  // Serves until `stop_fd` becomes readable; then finishes reads in flight and returns.
  void Run(int stop_fd);

 private:
  enum class ReadKind : uint8_t { kGet, kHead, kStat, kMultiGetItem, kMultiGet, kList };
  struct StoreState;
  struct Read;
  struct MultiGetItem;

  AssemblerServer(AssemblerOptions options, zmq::context_t& context, AssemblerProbe& probe,
                  const Clock& clock);
  Status Start();

  void HandleClientMessage(std::vector<zmq::message_t>& frames, bool draining);
  void HandleStoreReply(size_t socket_index, std::vector<zmq::message_t>& frames);
  std::optional<uint32_t> TakeSlot();
  uint32_t StartKeyRead(ReadKind kind, std::string_view key, SteadyTime received);
  void StartList(zmq::message_t&& client, uint64_t request_id, const wire::ListRequest& request,
                 SteadyTime received);
  void StartMultiGet(zmq::message_t&& client, uint64_t request_id,
                     const wire::MultiGetRequest& request, SteadyTime received);
  // Round 1 of a key read: the data stores asked for bytes (when `wants_bytes`), the others
  // for versions only.
  void SendFirstRound(Read& read, bool wants_bytes, bool verify);
  zmq::message_t BuildFetch(const Read& read, bool want_payload, bool ranged,
                            std::optional<Version> version, bool verify);
  // Sends a copy of `request` (its bytes shared) to `store`; false, with the store marked
  // failed, when it cannot be queued.
  bool SendFetch(StoreState& store, zmq::message_t& request);
  // Asks up to `limit` stores that round 1 left out (see SendFirstRound) for their whole
  // fragment of `version` (the newest if unset). Returns how many were asked.
  int AskDeferredStores(Read& read, std::optional<Version> version, int limit);
  void Evaluate(uint32_t slot, bool final);
  void AssembleOrFetch(uint32_t slot, const VersionChoice& choice, bool final);
  void FinishList(uint32_t slot, bool final);
  // Answers with `frames` as the payload (moved from).
  void ReplyRecord(uint32_t slot, Version version, std::span<zmq::message_t> frames,
                   codec::ByteSpan range, bool degraded);
  void ReplyStat(uint32_t slot, const VersionChoice& choice);
  void FinishWithError(uint32_t slot, const Error& error);
  void CompleteMultiGetItem(uint32_t slot, std::optional<Error> error, std::span<zmq::message_t> frames);
  void ReplyMultiGet(uint32_t parent);
  void Release(uint32_t slot);
  void CheckTimers(SteadyTime now);
  // Sends [client, head, payload...]; the frames are moved from.
  void SendToClient(zmq::message_t& client, zmq::message_t&& head,
                    std::span<zmq::message_t> payload = {});
  void ReplyError(zmq::message_t&& client, uint64_t request_id, const Error& error);
  codec::ReedSolomon* CodecFor(int k, int m);
  // Repair: a client's RepairRequest goes to the repair thread; its reply comes back on the
  // repair results socket and is forwarded. A read that found a placement store without a
  // healthy fragment of `version` schedules a repair of its key (never delaying the reply).
  void HandleRepairRequest(zmq::message_t&& client, uint64_t request_id,
                           const wire::RepairRequest& request);
  void ForwardRepairReplies();
  void MaybeScheduleReadRepair(uint32_t slot, Version version);
  metrics::OperationMetrics& OperationOf(ReadKind kind);

  AssemblerOptions options_;
  zmq::context_t& context_;
  AssemblerProbe& probe_;
  const Clock& clock_;
  std::unique_ptr<placement::Placement> placement_;
  std::map<std::pair<int, int>, std::unique_ptr<codec::ReedSolomon>> codecs_;
  zmq::socket_t clients_;
  std::string client_endpoint_;
  std::vector<zmq::socket_t> store_sockets_;           // parallel to options_.stores
  std::unordered_map<uint32_t, size_t> store_index_;   // store id -> socket index

  std::unique_ptr<RepairWorker> repairer_;
  std::vector<zmq::message_t> repair_frames_;

  std::vector<std::unique_ptr<Read>> slots_;
  std::vector<uint32_t> free_slots_;
  size_t in_flight_ = 0;
  SteadyTime next_timer_scan_{};
  wire::MessageWriter writer_;
  // Frame lists reused from answer to answer (no per-record vector): the payload frames of the
  // record being answered, and the whole reply as sent.
  std::vector<zmq::message_t> answer_frames_;
  std::vector<zmq::message_t> reply_frames_;
  wire::AlignedFrame aligned_request_;
  wire::AlignedFrame aligned_reply_;
  // Observability: when the loop's poll last returned (Unix ns and steady), when the message
  // being handled began to be taken off its socket, and the client request's wait before that
  // and time to receive (see metrics/queue_wait.h).
  uint64_t wake_ns_ = 0;
  SteadyTime wake_steady_{};
  SteadyTime receive_started_{};
  uint64_t request_transit_ns_ = 0;
  uint64_t request_loop_ns_ = 0;
  uint64_t request_receive_ns_ = 0;
};

}  // namespace ddsplit::assembler
