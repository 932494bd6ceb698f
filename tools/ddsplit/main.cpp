// ddsplit: the command-line tool — record commands and the local cluster launcher.
#include <CLI/CLI.hpp>

#include "tools/ddsplit/cluster_command.h"
#include "tools/ddsplit/data_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ddsplit: store and fetch erasure-coded records"};
  app.require_subcommand(1);
  ddsplit::cli::AddDataCommands(app);
  ddsplit::cli::AddClusterCommands(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
