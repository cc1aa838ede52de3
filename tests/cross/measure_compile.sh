#!/usr/bin/env bash
# SpamAssassin rules compile time per flavor (scripts/flavors.sh measure):
#   regexctl compile --format spamassassin --rules <files>
# from build/default, build/vectorscan-x86 and build/arm64 (under qemu-aarch64,
# so its time measures the emulator, not an ARM64 CPU: see docs/arm64.md).
#
# usage: tests/cross/measure_compile.sh [CF_FILE...]   (default: all of
#        /usr/share/spamassassin/*.cf)
# Prints one line per flavor: wall seconds, regexd's own total, rule counts.
# The emulated compile is cut off after REGEXD_MEASURE_TIMEOUT seconds
# (default 900) and reported as such rather than waited for.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=("$@")
((${#files[@]})) || files=(/usr/share/spamassassin/*.cf)
timeout_s=${REGEXD_MEASURE_TIMEOUT:-900}

for f in default vectorscan-x86 arm64; do
  [[ -x build/$f/run-regexctl ]] || { echo "measure: error: build/$f/run-regexctl missing; build the $f preset" >&2; exit 1; }
  start=$(date +%s%N)
  if out=$(timeout "$timeout_s" "build/$f/run-regexctl" compile --format spamassassin --rules "${files[@]}" 2>/dev/null); then
    ms=$((($(date +%s%N) - start) / 1000000))
    printf 'measure: %-15s %4d.%d s wall; %s; %d .cf files\n' "$f" $((ms / 1000)) $((ms % 1000 / 100)) \
      "$(grep '^total: ' <<<"$out")" "${#files[@]}"
  else
    rc=$?
    [[ $rc -eq 124 ]] || { echo "measure: error: $f: regexctl compile failed (exit $rc)" >&2; exit 1; }
    printf 'measure: %-15s > %s s wall (cut off); %d .cf files\n' "$f" "$timeout_s" "${#files[@]}"
  fi
done
