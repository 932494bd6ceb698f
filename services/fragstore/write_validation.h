// Checks a WriteFragment message against the store that received it, before anything is stored:
// key and attributes valid, code shape consistent, this store in the placement, payload of the
// expected size and checksum. Pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <span>

#include "common/base/result.h"
#include "common/base/strong_id.h"
#include "common/wire/envelope.h"
#include "services/fragstore/fragstore_probe.h"

namespace ddsplit::fragstore {

struct WriteCheck {
  int fragment_index = -1;
  RejectReason reason = RejectReason::kMalformed;  // meaningful only when the check fails
};

// Returns the fragment index this store holds, or an error naming the problem; `reason` tells
// which rejection counter to bump.
Result<int> CheckWriteFragment(const wire::WriteFragment& write, StoreId self,
                               std::span<const std::byte> payload, uint64_t max_fragment_bytes,
                               RejectReason& reason);

// Serialises the header the store keeps for the fragment at `index` of `write`.
void BuildFragmentHeader(flatbuffers::FlatBufferBuilder& fbb, const wire::WriteFragment& write,
                         int index, uint64_t payload_size);

}  // namespace ddsplit::fragstore
