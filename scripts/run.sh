#!/usr/bin/env bash
# Installs what is missing, builds (release), and runs regexd on its embedded
# defaults: the bundled sample rules over the bundled sample message.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
exec build/release/cli/regexctl scan --rules rules/sample.rules --class body rules/sample-message.eml "$@"
