// RecordEncoder: turns one record into the k + m fragment frames a write sends, without copying
// the record — data fragments are slices of the received frame, parity goes into pooled buffers
// — plus the checksums the stores verify. Not thread-safe (one per event loop).
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include <zmq.hpp>

#include "common/base/limits.h"
#include "common/codec/reed_solomon.h"
#include "common/codec/stripe.h"

namespace ddsplit::splitter {

struct EncodedRecord {
  std::array<zmq::message_t, kMaxFragments> fragments;  // by fragment index
  std::array<uint64_t, kMaxFragments> checksums{};
  uint64_t record_checksum = 0;
  int count = 0;
};

class RecordEncoder {
 public:
  explicit RecordEncoder(codec::ReedSolomon& codec) : codec_(codec) {}

  // Encodes `record` (the value frame, consumed) into `out`. The record's memory stays alive
  // until every data fragment frame taken from it has been released by ZeroMQ.
  void Encode(zmq::message_t&& record, EncodedRecord& out);

  // The fragments of a tombstone: k + m empty frames.
  void EncodeTombstone(EncodedRecord& out);

 private:
  codec::ReedSolomon& codec_;
};

}  // namespace ddsplit::splitter
