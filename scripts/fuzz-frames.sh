#!/usr/bin/env bash
# Builds the frame-decoder fuzzer with clang (libFuzzer + ASan + UBSan) and
# runs it for SECONDS (default 20), starting from a seed corpus of valid
# frames.  Exit status non-zero on any crash, leak or sanitizer report.
# Usage: scripts/fuzz-frames.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
out=build/fuzz
mkdir -p "$out/corpus"
command -v clang++ >/dev/null || { echo "fuzz-frames: clang++ not found (Debian package clang)" >&2; exit 1; }
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I server/include -I engine/include -I engine/src \
  tests/fuzz/frame_fuzzer.cpp server/src/protocol.cpp engine/src/utf8.cpp -o "$out/frame_fuzzer"
# Seeds: a PING, a SCAN with two buffers, a LOAD_RULES (little-endian frames).
printf '\x06\x00\x00\x00\x01\x00\x00\x00\x01\x00' >"$out/corpus/ping"
printf '\x2b\x00\x00\x00\x02\x00\x00\x00\x03\x01\x01\x00\x00\x00t\x02\x00\x00\x00\x04\x00\x00\x00body\x03\x00\x00\x00foo\x03\x00\x00\x00url\x01\x00\x00\x00x' >"$out/corpus/scan"
printf '\x2a\x00\x00\x00\x03\x00\x00\x00\x02\x00\x01\x00\x00\x00n\x06\x00\x00\x00native\x00\x00\x00\x00\x0c\x00\x00\x00A body /a/\n\n' >"$out/corpus/load"
if ! "$out/frame_fuzzer" -artifact_prefix="$out/" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$out/corpus" >"$out/log" 2>&1; then
  cat "$out/log" >&2
  echo "fuzz-frames: the frame decoder failed under the fuzzer (reproducer: $out/crash-*)" >&2
  exit 1
fi
echo "fuzz-frames: ${seconds}s, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log" | grep -o '[0-9]*$') inputs, no failure"
