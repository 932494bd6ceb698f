// Strong types for ids and indices, so a store id and a fragment index cannot be swapped.
// Thread-safety: plain values.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace ddsplit {

template <typename T, typename Tag>
class NamedType {
 public:
  using ValueType = T;
  constexpr NamedType() = default;
  constexpr explicit NamedType(T value) : value_(value) {}
  constexpr T value() const { return value_; }
  constexpr auto operator<=>(const NamedType&) const = default;

 private:
  T value_{};
};

// Stable id of a fragment store; never reused for a different store.
using StoreId = NamedType<uint32_t, struct StoreIdTag>;
// Position of a fragment in its record's stripe: 0..k-1 data, k..k+m-1 parity.
using FragmentIndex = NamedType<uint8_t, struct FragmentIndexTag>;

}  // namespace ddsplit

template <typename T, typename Tag>
struct std::hash<ddsplit::NamedType<T, Tag>> {
  size_t operator()(const ddsplit::NamedType<T, Tag>& id) const noexcept {
    return std::hash<T>{}(id.value());
  }
};
