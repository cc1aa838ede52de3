#!/usr/bin/env bash
# Installs what is missing, builds (release), and runs the regexd daemon on
# its embedded defaults: socket /run/regexd/regexd.sock as root (else under
# $XDG_RUNTIME_DIR), cache /var/lib/regexd as root (else ~/.cache/regexd),
# and SpamAssassin's rules when installed, else the bundled sample rules.
# Extra arguments go to regexd (e.g. --config FILE); Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
# Huge pages for the loaded databases come with the build's jemalloc
# (cmake/jemalloc_conf.cpp; docs/benchmarks.md, "Allocator").
exec build/release/server/regexd "$@"
