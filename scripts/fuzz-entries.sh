#!/usr/bin/env bash
# Builds the cache-entry fuzzer with clang (libFuzzer + ASan + UBSan) from the
# engine and cache sources and runs it for SECONDS (default 20).  Inputs are
# edits to a valid entry followed by a fresh checksum (tests/fuzz/
# entry_fuzzer.cpp), so they reach the decoder's checks past the checksum.
# Exit status non-zero on any crash, leak or sanitizer report.
# Usage: scripts/fuzz-entries.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
out=build/fuzz
mkdir -p "$out/entry-corpus" "$out/gen"
command -v clang++ >/dev/null || { echo "fuzz-entries: clang++ not found (Debian package clang)" >&2; exit 1; }
flatc --cpp -o "$out/gen" cache/schema/entry.fbs
flavor=hyperscan  # only names the seed entry's tags; Vectorscan installs the same hs.h
[[ -f /usr/include/hs/hs.h ]] || { echo "fuzz-entries: hs.h not found (libhyperscan-dev)" >&2; exit 1; }
# Hyperscan and PCRE2 are not instrumented; regexd's code is.
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -DREGEXD_HS_FLAVOR_NAME="\"$flavor\"" -DREGEXD_VERSION="\"fuzz\"" -I /usr/include/hs -I engine/include -I engine/src -I cache/include \
  -I "$out/gen" tests/fuzz/entry_fuzzer.cpp engine/src/*.cpp engine/src/import/*.cpp cache/src/entry.cpp cache/src/key.cpp \
  -lhs -lpcre2-8 -lre2 -lxxhash -o "$out/entry_fuzzer"
if ! "$out/entry_fuzzer" -artifact_prefix="$out/" -max_total_time="$seconds" -max_len=256 -print_final_stats=1 \
  "$out/entry-corpus" >"$out/entry-log" 2>&1; then
  cat "$out/entry-log" >&2
  echo "fuzz-entries: the entry decoder failed under the fuzzer (reproducer: $out/crash-*)" >&2
  exit 1
fi
echo "fuzz-entries: ${seconds}s, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/entry-log" | grep -o '[0-9]*$') inputs, no failure"
