#!/usr/bin/env bash
# Smoke run of every benchmark binary (ctest "bench_smoke"), so the suite never
# rots: bundled sample rules (SpamAssassin's body for regexd_re2_sets_bench),
# a few corpus messages (REGEXD_BENCH_SMOKE=1), a short --benchmark_min_time.
# Fails if a binary fails (including an answer check against PCRE2), if a
# benchmark reports an error, or if bench/compare
# finds one more than REGEXD_BENCH_SMOKE_THRESHOLD percent (default 1000, i.e.
# 11x) slower than bench/baseline-smoke/: generous on purpose, these are
# sub-millisecond timings on shared machines; the real gate is bench/compare
# against bench/baseline/ on a full release run (docs/benchmarks.md).
#
# usage: bench/smoke.sh BENCH_BIN_DIR [OUT_DIR]
#   OUT_DIR keeps the JSON (default: a temp dir); to refresh the smoke
#   baseline: bench/smoke.sh build/default/bench bench/baseline-smoke
set -euo pipefail
bin=${1:?usage: bench/smoke.sh BENCH_BIN_DIR [OUT_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
logs=$(mktemp -d)
if [[ -n ${2:-} ]]; then
  out=$2
  mkdir -p "$out"
  trap 'rm -rf "$logs"' EXIT
else
  out=$(mktemp -d)
  trap 'rm -rf "$logs" "$out"' EXIT
fi
export REGEXD_BENCH_SMOKE=1

for b in compile scan cache start re2_sets; do
  exe=$bin/regexd_${b}_bench
  [[ -x $exe ]] || { echo "bench smoke: $exe not built" >&2; exit 1; }
  if ! "$exe" --benchmark_min_time=0.01 --benchmark_out="$out/$b.json" --benchmark_out_format=json \
      >"$logs/$b.log" 2>&1; then
    echo "bench smoke: regexd_${b}_bench failed; its last lines:" >&2
    tail -n 15 "$logs/$b.log" >&2
    exit 1
  fi
  grep '^summary:' "$logs/$b.log" || true
done
# Not a Google Benchmark binary: it only has to run and find its mappings.
if ! "$bin/regexd_pss_bench" >"$logs/pss.log" 2>&1; then
  echo "bench smoke: regexd_pss_bench failed; its last lines:" >&2
  tail -n 15 "$logs/pss.log" >&2
  exit 1
fi
grep '^summary:' "$logs/pss.log"
"$here/compare" --threshold "${REGEXD_BENCH_SMOKE_THRESHOLD:-1000}" "$here/baseline-smoke" "$out"
