#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "common/codec/checksum.h"
#include "common/codec/reed_solomon.h"
#include "common/codec/stripe.h"
#include "tests/support/random_bytes.h"

namespace ddsplit::codec {
namespace {

using testing::RandomBytes;

// Stored fragments of a record: data fragments are slices, parity freshly encoded.
struct Stripe {
  StripeLayout layout;
  std::vector<std::vector<std::byte>> parity;
  std::vector<std::span<const std::byte>> fragments;  // all k + m, by index
};

Stripe EncodeRecord(ReedSolomon& rs, std::span<const std::byte> record) {
  Stripe stripe{StripeLayout(record.size(), rs.k(), rs.m()), {}, {}};
  std::vector<std::span<const std::byte>> data;
  for (int i = 0; i < rs.k(); ++i) {
    auto span = stripe.layout.DataSpan(i);
    data.push_back(record.subspan(span.offset, span.length));
  }
  stripe.parity.assign(rs.m(), std::vector<std::byte>(stripe.layout.fragment_size()));
  std::vector<std::span<std::byte>> parity_spans;
  for (auto& p : stripe.parity) parity_spans.emplace_back(p);
  rs.Encode(data, stripe.layout.fragment_size(), parity_spans);
  stripe.fragments = data;
  for (auto& p : stripe.parity) stripe.fragments.emplace_back(p);
  return stripe;
}

// Loses every combination of up to m fragments and checks each is rebuilt exactly.
void CheckEveryLossPattern(ReedSolomon& rs, std::span<const std::byte> record) {
  Stripe stripe = EncodeRecord(rs, record);
  const int n = rs.k() + rs.m();
  int patterns = 0;
  for (uint32_t lost = 0; lost < (1u << n); ++lost) {
    if (std::popcount(lost) > rs.m()) continue;
    ++patterns;
    std::vector<FragmentBytes> available;
    std::vector<std::vector<std::byte>> rebuilt;
    std::vector<FragmentOutput> wanted;
    for (int i = 0; i < n; ++i) {
      if (lost & (1u << i)) {
        rebuilt.emplace_back(stripe.layout.StoredSize(i), std::byte{0x5a});
      } else {
        available.push_back({i, stripe.fragments[i]});
      }
    }
    size_t next = 0;
    for (int i = 0; i < n; ++i) {
      if (lost & (1u << i)) wanted.push_back({i, rebuilt[next++]});
    }
    REQUIRE(rs.Reconstruct(available, stripe.layout.fragment_size(), wanted).ok());
    next = 0;
    for (int i = 0; i < n; ++i) {
      if (!(lost & (1u << i))) continue;
      const auto& got = rebuilt[next++];
      REQUIRE(got.size() == stripe.fragments[i].size());
      CHECK_MESSAGE(std::equal(got.begin(), got.end(), stripe.fragments[i].begin()),
                    "fragment ", i, " of loss pattern ", lost, " size ", record.size());
    }
  }
  CHECK(patterns > 0);
}

TEST_CASE("decode(encode(x)) == x for every loss of at most m fragments") {
  auto rs = ReedSolomon::Create(4, 2);
  REQUIRE(rs.ok());
  for (size_t size : {size_t{0}, size_t{1}, size_t{3}, size_t{4095}, size_t{4096},
                      size_t{(1 << 20) + 1}, size_t{16 << 20}}) {
    CAPTURE(size);
    auto record = RandomBytes(size, size * 7919 + 1);
    CheckEveryLossPattern(**rs, record);
  }
}

TEST_CASE("other code shapes, including no parity and k + m = 32") {
  for (auto shape : {std::pair{1, 0}, std::pair{1, 1}, std::pair{2, 1}, std::pair{3, 3},
                     std::pair{6, 3}, std::pair{10, 4}}) {
    const int k = shape.first, m = shape.second;  // not a structured binding: CAPTURE is a lambda
    CAPTURE(k);
    CAPTURE(m);
    auto rs = ReedSolomon::Create(k, m);
    REQUIRE(rs.ok());
    for (size_t size : {size_t{0}, size_t{1}, size_t(k - 1), size_t{777}, size_t{100003}}) {
      CheckEveryLossPattern(**rs, RandomBytes(size, size + 17 * k));
    }
  }
  auto wide = ReedSolomon::Create(16, 16);
  REQUIRE(wide.ok());
  auto record = RandomBytes(50000, 99);
  Stripe stripe = EncodeRecord(**wide, record);
  // Lose all 16 data fragments: rebuild them from parity alone.
  std::vector<FragmentBytes> available;
  for (int i = 16; i < 32; ++i) available.push_back({i, stripe.fragments[i]});
  std::vector<std::byte> out(record.size());
  std::vector<FragmentOutput> wanted;
  for (int i = 0; i < 16; ++i) {
    auto span = stripe.layout.DataSpan(i);
    wanted.push_back({i, std::span(out).subspan(span.offset, span.length)});
  }
  REQUIRE((*wide)->Reconstruct(available, stripe.layout.fragment_size(), wanted).ok());
  CHECK(out == record);
}

TEST_CASE("bad shapes and too few fragments are refused") {
  CHECK(!ReedSolomon::Create(0, 2).ok());
  CHECK(!ReedSolomon::Create(30, 3).ok());
  CHECK(!ReedSolomon::Create(4, -1).ok());
  auto rs = ReedSolomon::Create(4, 2);
  REQUIRE(rs.ok());
  auto record = RandomBytes(1000, 5);
  Stripe stripe = EncodeRecord(**rs, record);
  std::vector<std::byte> out(stripe.layout.fragment_size());
  std::vector<FragmentOutput> wanted{{0, out}};
  std::vector<FragmentBytes> three{{1, stripe.fragments[1]}, {2, stripe.fragments[2]},
                                   {3, stripe.fragments[3]}};
  CHECK((*rs)->Reconstruct(three, stripe.layout.fragment_size(), wanted).error().code() ==
        ErrorCode::kInvalidArgument);
  std::vector<FragmentBytes> duplicated{{1, stripe.fragments[1]}, {1, stripe.fragments[1]},
                                        {2, stripe.fragments[2]}, {3, stripe.fragments[3]}};
  CHECK(!(*rs)->Reconstruct(duplicated, stripe.layout.fragment_size(), wanted).ok());
  std::vector<FragmentBytes> bad_index{{9, stripe.fragments[1]}};
  CHECK(!(*rs)->Reconstruct(bad_index, stripe.layout.fragment_size(), wanted).ok());
}

TEST_CASE("decode tables are cached per loss pattern and bounded") {
  auto rs = ReedSolomon::Create(4, 2);
  REQUIRE(rs.ok());
  auto record = RandomBytes(4096, 3);
  CheckEveryLossPattern(**rs, record);
  size_t cached = (*rs)->CachedDecodeTables();
  CHECK(cached > 0);
  CheckEveryLossPattern(**rs, record);
  CHECK((*rs)->CachedDecodeTables() == cached);
}

TEST_CASE("stripe layout: unpadded data slices and range overlaps") {
  StripeLayout layout(10, 4, 2);
  CHECK(layout.fragment_size() == 3);
  CHECK(layout.DataSpan(0).offset == 0);
  CHECK(layout.DataSpan(3).offset == 9);
  CHECK(layout.DataSpan(3).length == 1);
  CHECK(layout.StoredSize(3) == 1);
  CHECK(layout.StoredSize(4) == 3);
  StripeLayout tiny(1, 4, 2);
  CHECK(tiny.StoredSize(0) == 1);
  CHECK(tiny.StoredSize(1) == 0);
  CHECK(tiny.StoredSize(3) == 0);
  auto overlap = layout.OverlapInFragment(1, {4, 4});  // record bytes 4..7, fragment 1 = 3..5
  CHECK(overlap.offset == 1);
  CHECK(overlap.length == 2);
  CHECK(layout.OverlapInFragment(0, {4, 4}).length == 0);
}

TEST_CASE("checksums: one-shot equals incremental") {
  auto bytes = RandomBytes(100000, 11);
  ChecksumBuilder builder;
  builder.Update(std::span(bytes).first(333));
  builder.Update(std::span(bytes).subspan(333));
  CHECK(builder.Finish() == Checksum(bytes));
  auto flipped = bytes;
  flipped[500] ^= std::byte{1};
  CHECK(Checksum(flipped) != Checksum(bytes));
}

}  // namespace
}  // namespace ddsplit::codec
