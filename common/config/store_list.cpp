#include "common/config/store_list.h"

#include <algorithm>
#include <charconv>
#include <unordered_set>

#include "common/base/limits.h"

namespace ddsplit::config {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\n')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

Status ValidateEndpoint(std::string_view endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0 && endpoint.rfind("ipc://", 0) != 0 &&
      endpoint.rfind("inproc://", 0) != 0) {
    return Error(ErrorCode::kInvalidArgument,
                 "endpoint '" + std::string(endpoint) + "' must start with tcp://, ipc:// or inproc://");
  }
  return OkStatus();
}

}  // namespace

Result<StoreEndpoint> ParseStoreSpec(std::string_view spec) {
  spec = Trim(spec);
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "store '" + std::string(spec) + "': " + why);
  };
  auto equals = spec.find('=');
  if (equals == std::string_view::npos) return bad("expected ID=INGEST,READ");
  StoreEndpoint store;
  uint32_t id = 0;
  auto id_text = spec.substr(0, equals);
  auto [ptr, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
  if (ec != std::errc() || ptr != id_text.data() + id_text.size() || id_text.empty()) {
    return bad("id must be a non-negative integer");
  }
  store.id = StoreId(id);
  std::vector<std::string_view> parts;
  auto rest = spec.substr(equals + 1);
  while (!rest.empty()) {
    auto comma = rest.find(',');
    parts.push_back(Trim(rest.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (parts.size() < 2) return bad("expected an ingest and a read endpoint");
  store.ingest = std::string(parts[0]);
  store.read = std::string(parts[1]);
  for (size_t i = 2; i < parts.size(); ++i) {
    if (parts[i].rfind("zone=", 0) != 0) return bad("unknown attribute '" + std::string(parts[i]) + "'");
    store.zone = std::string(parts[i].substr(5));
  }
  auto ingest_ok = ValidateEndpoint(store.ingest);
  if (!ingest_ok.ok()) return std::move(ingest_ok).error();
  auto read_ok = ValidateEndpoint(store.read);
  if (!read_ok.ok()) return std::move(read_ok).error();
  return store;
}

std::string FormatStoreSpec(const StoreEndpoint& store) {
  std::string spec = std::to_string(store.id.value()) + "=" + store.ingest + "," + store.read;
  if (!store.zone.empty()) spec += ",zone=" + store.zone;
  return spec;
}

Result<std::vector<StoreEndpoint>> ParseStoreList(std::string_view text) {
  std::vector<StoreEndpoint> stores;
  std::unordered_set<StoreId> ids;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find_first_of("; \t\n", start);
    if (end == std::string_view::npos) end = text.size();
    auto spec = text.substr(start, end - start);
    start = end + 1;
    if (Trim(spec).empty()) continue;
    auto store = ParseStoreSpec(spec);
    if (!store.ok()) return std::move(store).error();
    if (!ids.insert(store->id).second) {
      return Error(ErrorCode::kInvalidArgument,
                   "store id " + std::to_string(store->id.value()) + " appears twice");
    }
    stores.push_back(std::move(*store));
  }
  return stores;
}

std::vector<std::string> ExpandTemplate(std::string_view pattern, int count) {
  std::vector<std::string> out;
  for (int id = 0; id < count; ++id) {
    std::string text(pattern);
    for (size_t at = text.find("{id}"); at != std::string::npos; at = text.find("{id}")) {
      text.replace(at, 4, std::to_string(id));
    }
    out.push_back(std::move(text));
  }
  return out;
}

Result<std::vector<StoreEndpoint>> ResolveStores(const std::vector<std::string>& specs,
                                                 std::string_view list, std::string_view pattern,
                                                 int count) {
  int sources = (specs.empty() ? 0 : 1) + (list.empty() ? 0 : 1) + (pattern.empty() ? 0 : 1);
  if (sources != 1) {
    return Error(ErrorCode::kInvalidArgument,
                 "give the stores exactly one way: --store (repeated), --stores or "
                 "--store-template with --store-count");
  }
  if (!pattern.empty()) {
    if (count < 1) return Error(ErrorCode::kInvalidArgument, "--store-count must be at least 1");
    std::string joined;
    for (const auto& spec : ExpandTemplate(pattern, count)) joined += spec + ";";
    return ParseStoreList(joined);
  }
  if (!list.empty()) return ParseStoreList(list);
  std::string joined;
  for (const auto& spec : specs) joined += spec + ";";
  return ParseStoreList(joined);
}

int CodeShape::EffectiveQuorum() const {
  return write_quorum > 0 ? write_quorum : std::min(k + 1, k + m);
}

Status ValidateCodeShape(const CodeShape& shape) {
  if (shape.k < 1 || shape.m < 0 || shape.k + shape.m > kMaxFragments) {
    return Error(ErrorCode::kInvalidArgument, "need k >= 1, m >= 0 and k + m <= 32");
  }
  int quorum = shape.EffectiveQuorum();
  if (quorum < shape.k || quorum > shape.k + shape.m) {
    return Error(ErrorCode::kInvalidArgument, "write quorum must be between k and k + m");
  }
  return OkStatus();
}

}  // namespace ddsplit::config
