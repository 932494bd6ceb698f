// config: typed start-up configuration shared by services — the store list and the code shape.
// Parsed once at start-up from flags or environment; pure value types afterwards.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/base/strong_id.h"

namespace ddsplit::config {

// Where one fragment store listens: `ingest` (its PULL for fragments) and `read` (its ROUTER).
struct StoreEndpoint {
  StoreId id;
  std::string ingest;
  std::string read;
  std::string zone;
};

// One store: "ID=INGEST_ENDPOINT,READ_ENDPOINT[,zone=NAME]", e.g.
// "3=tcp://10.0.0.3:7100,tcp://10.0.0.3:7101,zone=eu-1a".
Result<StoreEndpoint> ParseStoreSpec(std::string_view spec);
std::string FormatStoreSpec(const StoreEndpoint& store);

// Several stores separated by ';' or whitespace (as in the DDSPLIT_STORES variable). Ids must
// be distinct.
Result<std::vector<StoreEndpoint>> ParseStoreList(std::string_view text);

// Expands "{id}" in a template such as "tcp://fragstore-{id}.fragstore:7100" for ids
// 0..count-1 — how a Kubernetes StatefulSet's stores are named.
std::vector<std::string> ExpandTemplate(std::string_view pattern, int count);

// Store list from whichever source is given: explicit specs (repeated --store flags), a list
// (DDSPLIT_STORES), or a spec template with "{id}" plus a count (a StatefulSet's stores).
// Exactly one source must be non-empty.
Result<std::vector<StoreEndpoint>> ResolveStores(const std::vector<std::string>& specs,
                                                 std::string_view list, std::string_view pattern,
                                                 int count);

// Erasure-code shape: 1 <= k, 0 <= m, k + m <= 32, and write quorum k <= quorum <= k + m.
struct CodeShape {
  int k = 4;
  int m = 2;
  int write_quorum = 0;  // 0: the default, k + 1 (capped at k + m)
  int EffectiveQuorum() const;
};
Status ValidateCodeShape(const CodeShape& shape);

}  // namespace ddsplit::config
