// The `ddsplit cluster` commands of the CLI. `cluster up` runs a local cluster of real processes
// (tools/cluster/local_cluster.h) in the foreground: it prints where cluster.json is, runs until
// SIGINT, SIGTERM or SIGHUP, logs any child that dies meanwhile, then stops every process (front
// ends first, stores last) and returns. On failure it prints a one-line error (followed by the
// failing process's last log lines, if any) and throws CLI::RuntimeError(1), which CLI11_PARSE
// turns into exit status 1.
//
// While it runs, `cluster up` blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD in the calling thread
// and waits for them with sigwaitinfo; it restores the mask and SIGCHLD's action on return. Call
// it from the main thread of a program with no other threads that would take those signals.
#pragma once

#include <CLI/CLI.hpp>

namespace ddsplit::cli {

// Adds `cluster up --dir DIR [--stores N] [--k K] [--m M] [--write-quorum Q] [--sync always|none]
// [--bin-dir DIR] [--splitters N] [--assemblers N] [--log-level L] [--start-timeout-ms MS]` to
// `app`. --bin-dir defaults to the directory of the running executable.
void AddClusterCommands(CLI::App& app);

}  // namespace ddsplit::cli
