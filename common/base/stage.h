// The processing stages a request passes through. Each stage's queue wait and work time are
// measured separately, exported as metrics and carried back to the client in the reply.
#pragma once

#include <cstdint>
#include <string_view>

namespace ddsplit {

enum class Stage : uint8_t {
  kReceive = 0,     // from the socket into the service's loop (queue: time in ZeroMQ's pipe)
  kVerify = 1,      // FlatBuffers verification and argument checks
  kEncode = 2,      // erasure coding and checksums of a write
  kFanOut = 3,      // handing fragments to the store sockets
  kStoreCommit = 4, // the store's group commit (queue: waiting for the batch; work: WAL write)
  kAck = 5,         // from the store's commit to the splitter's quorum decision
  kFetch = 6,       // asking stores for fragments until enough answered
  kDecode = 7,      // rebuilding missing fragments and verifying the record
  kReply = 8,       // building and sending the answer
  kStoreRead = 9,   // a store reading and verifying a fragment
  kList = 10,       // merging key listings
};
inline constexpr int kStageCount = 11;

std::string_view StageName(Stage stage);

}  // namespace ddsplit
