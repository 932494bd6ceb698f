// The record commands of the ddsplit CLI: put, get, head, ls, rm, stat. Each finds the cluster
// through --cluster FILE or DDSPLIT_CLUSTER, prints a one-line error and exits non-zero on
// failure.
#pragma once

#include <CLI/CLI.hpp>

namespace ddsplit::cli {

void AddDataCommands(CLI::App& app);

}  // namespace ddsplit::cli
