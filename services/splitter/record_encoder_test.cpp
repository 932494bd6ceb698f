#include <doctest/doctest.h>

#include <cstring>
#include <random>

#include "common/codec/checksum.h"
#include "services/splitter/record_encoder.h"

namespace ddsplit::splitter {
namespace {

TEST_CASE("data fragments are slices of the record and parity rebuilds them") {
  auto codec = codec::ReedSolomon::Create(4, 2);
  REQUIRE(codec.ok());
  RecordEncoder encoder(**codec);
  std::string record(1000003, '\0');
  std::mt19937 rng(3);
  for (auto& c : record) c = static_cast<char>(rng());
  zmq::message_t message(record.data(), record.size());
  EncodedRecord out;
  encoder.Encode(std::move(message), out);
  REQUIRE(out.count == 6);
  codec::StripeLayout layout(record.size(), 4, 2);
  std::vector<codec::FragmentBytes> parity_and_two;
  for (int i = 0; i < 4; ++i) {
    auto span = layout.DataSpan(i);
    REQUIRE(out.fragments[i].size() == span.length);
    CHECK(std::memcmp(out.fragments[i].data(), record.data() + span.offset, span.length) == 0);
  }
  for (int i = 0; i < 6; ++i) {
    auto bytes = std::span(static_cast<const std::byte*>(out.fragments[i].data()), out.fragments[i].size());
    CHECK(codec::Checksum(bytes) == out.checksums[i]);
    if (i >= 2) parity_and_two.push_back({i, bytes});
  }
  CHECK(out.record_checksum == codec::Checksum(std::as_bytes(std::span(record.data(), record.size()))));
  std::vector<std::byte> rebuilt(layout.DataSpan(0).length + layout.DataSpan(1).length);
  std::vector<codec::FragmentOutput> wanted{{0, std::span(rebuilt).first(layout.DataSpan(0).length)},
                                            {1, std::span(rebuilt).subspan(layout.DataSpan(0).length)}};
  REQUIRE((*codec)->Reconstruct(parity_and_two, layout.fragment_size(), wanted).ok());
  CHECK(std::memcmp(rebuilt.data(), record.data(), rebuilt.size()) == 0);
}

TEST_CASE("tombstones and empty records have empty fragments") {
  auto codec = codec::ReedSolomon::Create(4, 2);
  RecordEncoder encoder(**codec);
  EncodedRecord out;
  encoder.EncodeTombstone(out);
  CHECK(out.count == 6);
  for (int i = 0; i < 6; ++i) CHECK(out.fragments[i].size() == 0);
  encoder.Encode(zmq::message_t(), out);
  for (int i = 0; i < 6; ++i) CHECK(out.fragments[i].size() == 0);
}

}  // namespace
}  // namespace ddsplit::splitter
