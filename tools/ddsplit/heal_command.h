// `ddsplit heal`: repair every record lacking full redundancy (tools/heal). Progress on a
// terminal, a summary at the end, exit status 1 when a record could not be checked or repaired.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>

#include "client/client.h"

namespace ddsplit::cli {

// `connect` returns a connected client or exits; `json` points at the global --json flag.
void AddHealCommand(CLI::App& app, std::function<std::unique_ptr<client::Client>()> connect,
                    const bool* json);

}  // namespace ddsplit::cli
