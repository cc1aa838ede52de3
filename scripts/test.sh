#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (ctest).
# This is the README's test command and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh --test
corpus_dir=$(scripts/fetch-corpus.sh | tail -n 1)
preset=${REGEXD_PRESET:-default}
cmake --preset "$preset" -DREGEXD_CORPUS_DIR="$corpus_dir" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)"

# The tests that feed damaged cache files and hostile frames to the code,
# again under AddressSanitizer + UndefinedBehaviorSanitizer: "no crash" must
# mean no memory error either, not only no signal.
if [[ "$preset" != "debug-asan" ]]; then
  asan_tests=(cache_store_test server_protocol_test server_hardening_test)
  cmake --preset debug-asan -DREGEXD_CORPUS_DIR="$corpus_dir" >/dev/null
  cmake --build --preset debug-asan -j "$(nproc)" --target "${asan_tests[@]}"
  # Issue 14's socket and cache-input tests (not the RSS or timing ones).
  ctest --preset debug-asan -j "$(nproc)" -R '^(CacheTest|Protocol)\.|^HardeningTest\.(NamesAndClasses|AHostileCacheEntry|ATricklingClient|PartialFrames|OneUid|AHeavyRequest|PushedRuleSets|ACacheEntryThatIsASymbolicLink|AnEntryWhosePcre2Limits)'
fi

# The frame decoder and the cache entry decoder under libFuzzer for a short
# while (scripts/fuzz-frames.sh, scripts/fuzz-entries.sh).
scripts/fuzz-frames.sh 20
scripts/fuzz-entries.sh 20

# --- the Debian package (issue 16, docs/deploy.md) --------------------------
# Builds build/package/regexd_<version>_<arch>.deb (scripts/package.sh; the
# cmake build directory of the stage is kept, so a rerun compiles only what
# changed), unpacks it into a throwaway root, runs the installed binaries, a
# scan through the installed daemon and through Rspamd with the installed
# plugin files, and lintian (no errors).
tests/package/package_test.sh

# --- arm64 / Vectorscan flavors (issue 6, docs/arm64.md) -------------------
# Builds the x86_64+Vectorscan and aarch64+Vectorscan presets from Debian
# packages unpacked under build/, runs their suites (arm64 under qemu-aarch64,
# minus the tests named in arm64_skip in scripts/flavors.sh) and the
# cross-architecture cache test over one shared cache root.
scripts/flavors.sh all
