// How a record of `record_size` bytes maps onto k data fragments and m parity fragments.
//
// Every fragment is logically `fragment_size` = ceil(record_size / k) bytes. Data fragment i
// holds record bytes [i * fragment_size, min((i + 1) * fragment_size, record_size)); the bytes
// past the record's end are implicit zeros and are neither stored nor sent, so a data fragment's
// stored length may be shorter than fragment_size (even zero). Parity fragments always store
// fragment_size bytes. Pure value type.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace ddsplit::codec {

struct ByteSpan {
  uint64_t offset = 0;
  uint64_t length = 0;
  // Saturates instead of wrapping, so an untrusted range cannot overflow.
  uint64_t end() const { return length > UINT64_MAX - offset ? UINT64_MAX : offset + length; }
};

class StripeLayout {
 public:
  StripeLayout(uint64_t record_size, int k, int m)
      : record_size_(record_size), k_(k), m_(m),
        fragment_size_(k > 0 ? (record_size + static_cast<uint64_t>(k) - 1) / static_cast<uint64_t>(k) : 0) {}

  uint64_t record_size() const { return record_size_; }
  int k() const { return k_; }
  int m() const { return m_; }
  int n() const { return k_ + m_; }
  uint64_t fragment_size() const { return fragment_size_; }

  bool IsData(int index) const { return index < k_; }

  // Where data fragment `index` lies in the record; empty for parity fragments.
  ByteSpan DataSpan(int index) const {
    if (index >= k_) return {};
    uint64_t begin = std::min(record_size_, static_cast<uint64_t>(index) * fragment_size_);
    uint64_t end = std::min(record_size_, begin + fragment_size_);
    return {begin, end - begin};
  }

  // Bytes a store keeps for fragment `index`.
  uint64_t StoredSize(int index) const {
    return IsData(index) ? DataSpan(index).length : fragment_size_;
  }

  // The overlap of record range `range` with data fragment `index`, in fragment coordinates.
  ByteSpan OverlapInFragment(int index, ByteSpan range) const {
    ByteSpan data = DataSpan(index);
    uint64_t begin = std::max(range.offset, data.offset);
    uint64_t end = std::min(range.end(), data.end());
    if (begin >= end) return {begin - data.offset, 0};
    return {begin - data.offset, end - begin};
  }

 private:
  uint64_t record_size_;
  int k_;
  int m_;
  uint64_t fragment_size_;
};

}  // namespace ddsplit::codec
