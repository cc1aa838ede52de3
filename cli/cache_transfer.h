// regexctl keygen / export / import: the signing keys and the signed archives
// that carry a platform's cache entries to hosts without the shared Redis
// (docs/cache-format.md, "Archive"; docs/daemon.md, "Remote cache").
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace regexd::cli {

struct TransferCommands {
  CLI::App* keygen = nullptr;
  CLI::App* export_cmd = nullptr;
  CLI::App* import_cmd = nullptr;
  std::string key_prefix, cache_dir, platform, secret_key, archive;
  std::vector<std::string> trusted;
  bool force = false;
};

// Registers the three subcommands on `app`; `t` holds their options.
void add_transfer_commands(CLI::App& app, TransferCommands& t);

// Runs the one that was given, if any: true and *rc set (0, or an exit
// code after a one-line error on stderr).
bool run_transfer_command(const TransferCommands& t, int* rc);

}  // namespace regexd::cli
