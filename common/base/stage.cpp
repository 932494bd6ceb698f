#include "common/base/stage.h"

namespace ddsplit {

std::string_view StageName(Stage stage) {
  switch (stage) {
    case Stage::kReceive: return "receive";
    case Stage::kVerify: return "verify";
    case Stage::kEncode: return "encode";
    case Stage::kFanOut: return "fan_out";
    case Stage::kStoreCommit: return "store_commit";
    case Stage::kAck: return "ack";
    case Stage::kFetch: return "fetch";
    case Stage::kDecode: return "decode";
    case Stage::kReply: return "reply";
    case Stage::kStoreRead: return "store_read";
    case Stage::kList: return "list";
  }
  return "unknown";
}

}  // namespace ddsplit
