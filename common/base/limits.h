// Limits that every process enforces on untrusted input, in one place.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ddsplit {

inline constexpr size_t kMaxKeyBytes = 1024;
inline constexpr size_t kMaxContentTypeBytes = 256;
inline constexpr size_t kMaxMetadataEntries = 64;
// Sum of all metadata names and values of one record.
inline constexpr size_t kMaxMetadataBytes = 8 * 1024;
inline constexpr uint64_t kDefaultMaxRecordBytes = 64ull << 20;
inline constexpr uint32_t kMaxListLimit = 1000;
inline constexpr uint32_t kDefaultListLimit = 100;
inline constexpr size_t kMaxMultiGetKeys = 1000;
// Largest k + m the codec accepts.
inline constexpr int kMaxFragments = 32;
// Envelope frames are small; anything bigger is rejected before verification.
inline constexpr size_t kMaxEnvelopeBytes = 256 * 1024;
// Commit/abort decisions in one VersionDecisions message: with keys of kMaxKeyBytes it stays
// well within kMaxEnvelopeBytes.
inline constexpr size_t kMaxDecisionsPerMessage = 128;

}  // namespace ddsplit
