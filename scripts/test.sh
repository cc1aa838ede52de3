#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (ctest).
# This is the README's test command and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# One line per stage with the time since the start: CI has a budget (40 of
# its 90 minutes on 2 cores), and the log then says where the time went.
stage() { echo "test.sh: $1 done at $(date -u +%T) (+${SECONDS} s)"; }
scripts/setup-deps.sh --test
corpus_dir=$(scripts/fetch-corpus.sh | tail -n 1)
stage "dependencies and corpus"
preset=${REGEXD_PRESET:-default}
cmake --preset "$preset" -DREGEXD_CORPUS_DIR="$corpus_dir" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
stage "build ($preset)"
ctest --preset "$preset" -j "$(nproc)"
stage "ctest ($preset)"

# The tests that feed damaged cache files and hostile frames to the code,
# again under AddressSanitizer + UndefinedBehaviorSanitizer: "no crash" must
# mean no memory error either, not only no signal.
if [[ "$preset" != "debug-asan" ]]; then
  asan_tests=(cache_store_test server_protocol_test server_hardening_test)
  cmake --preset debug-asan -DREGEXD_CORPUS_DIR="$corpus_dir" >/dev/null
  cmake --build --preset debug-asan -j "$(nproc)" --target "${asan_tests[@]}"
  # Issue 14's socket and cache-input tests (not the RSS or timing ones).
  ctest --preset debug-asan -j "$(nproc)" -R '^(CacheTest|Protocol)\.|^HardeningTest\.(NamesAndClasses|AHostileCacheEntry|ATricklingClient|PartialFrames|OneUid|AHeavyRequest|PushedRuleSets|ACacheEntryThatIsASymbolicLink|AnEntryWhosePcre2Limits)'
  stage "debug-asan build and tests"
fi

# The frame decoder and the cache entry decoder under libFuzzer for a short
# while (scripts/fuzz-frames.sh, scripts/fuzz-entries.sh).
scripts/fuzz-frames.sh 20
scripts/fuzz-entries.sh 20
stage "fuzzers"

# --- the Debian package (issue 16, docs/deploy.md) --------------------------
# Builds build/package/regexd_<version>_<arch>.deb (scripts/package.sh; the
# cmake build directory of the stage is kept, so a rerun compiles only what
# changed), unpacks it into a throwaway root, runs the installed binaries, a
# scan through the installed daemon and through Rspamd with the installed
# plugin files, and lintian (no errors).
tests/package/package_test.sh
stage "package"

# --- arm64 / Vectorscan flavors (issue 6, docs/arm64.md) -------------------
# Builds the x86_64+Vectorscan and aarch64+Vectorscan presets from Debian
# packages unpacked under build/, runs their suites (arm64 under qemu-aarch64,
# minus the tests named in arm64_skip in scripts/flavors.sh; vectorscan-x86
# minus those in vectorscan_skip) and the cross-architecture cache test over
# one shared cache root.
scripts/flavors.sh all
stage "flavors"
