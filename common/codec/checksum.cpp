#include "common/codec/checksum.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

namespace ddsplit::codec {

static_assert(sizeof(XXH3_state_t) <= 576, "ChecksumBuilder::state_ must hold an XXH3_state_t");

uint64_t Checksum(std::span<const std::byte> bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

ChecksumBuilder::ChecksumBuilder() {
  XXH3_64bits_reset(reinterpret_cast<XXH3_state_t*>(state_));
}
ChecksumBuilder::~ChecksumBuilder() = default;

void ChecksumBuilder::Update(std::span<const std::byte> bytes) {
  XXH3_64bits_update(reinterpret_cast<XXH3_state_t*>(state_), bytes.data(), bytes.size());
}

uint64_t ChecksumBuilder::Finish() const {
  return XXH3_64bits_digest(reinterpret_cast<const XXH3_state_t*>(state_));
}

}  // namespace ddsplit::codec
