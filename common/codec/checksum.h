// Checksums of fragments and records: XXH3-64, seed 0. Stored on disk and sent on the wire,
// so the function must never change for a given format version. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ddsplit::codec {

uint64_t Checksum(std::span<const std::byte> bytes);

// Incremental form for records that arrive as several frames.
class ChecksumBuilder {
 public:
  ChecksumBuilder();
  ~ChecksumBuilder();
  ChecksumBuilder(const ChecksumBuilder&) = delete;
  ChecksumBuilder& operator=(const ChecksumBuilder&) = delete;
  void Update(std::span<const std::byte> bytes);
  uint64_t Finish() const;

 private:
  alignas(64) unsigned char state_[576];  // XXH3_state_t, kept inline so no allocation happens
};

}  // namespace ddsplit::codec
