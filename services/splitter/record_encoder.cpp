#include "services/splitter/record_encoder.h"

#include "common/codec/checksum.h"
#include "common/transport/buffer_pool.h"
#include "common/transport/transport.h"

namespace ddsplit::splitter {

void RecordEncoder::Encode(zmq::message_t&& record, EncodedRecord& out) {
  const int k = codec_.k();
  const int m = codec_.m();
  out.count = k + m;
  auto* shared = transport::SharedFrame::Adopt(std::move(record));
  auto bytes = shared->bytes();
  codec::StripeLayout layout(bytes.size(), k, m);
  out.record_checksum = codec::Checksum(bytes);

  std::array<std::span<const std::byte>, kMaxFragments> data{};
  for (int i = 0; i < k; ++i) {
    auto span = layout.DataSpan(i);
    data[i] = bytes.subspan(span.offset, span.length);
    out.checksums[i] = codec::Checksum(data[i]);
    out.fragments[i] = shared->Slice(span.offset, span.length);
  }
  std::array<std::span<std::byte>, kMaxFragments> parity{};
  for (int j = 0; j < m; ++j) {
    out.fragments[k + j] = transport::BufferPool::Global().Take(layout.fragment_size());
    parity[j] = {static_cast<std::byte*>(out.fragments[k + j].data()), layout.fragment_size()};
  }
  codec_.Encode(std::span(data.data(), k), layout.fragment_size(), std::span(parity.data(), m));
  for (int j = 0; j < m; ++j) out.checksums[k + j] = codec::Checksum(parity[j]);
  shared->Release();
}

void RecordEncoder::EncodeTombstone(EncodedRecord& out) {
  out.count = codec_.k() + codec_.m();
  out.record_checksum = codec::Checksum({});
  for (int i = 0; i < out.count; ++i) {
    out.fragments[i] = zmq::message_t();
    out.checksums[i] = out.record_checksum;
  }
}

}  // namespace ddsplit::splitter
