#!/usr/bin/env bash
# The full benchmark run behind docs/benchmarks.md: every benchmark binary of
# the `bench` preset (Release) with repetitions, JSON kept in OUT_DIR, then the
# PSS measurement, Rspamd's hs_helper, and the plot.
# usage: bench/run.sh [OUT_DIR]   (default build/bench/results)
#   env REPS (default 3): --benchmark_repetitions
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/bench/results}
reps=${REPS:-3}
bin=build/bench/bench
[[ -x $bin/regexd_scan_bench ]] || { echo "run: build first: cmake --preset bench && cmake --build build/bench" >&2; exit 1; }
mkdir -p "$out"
for b in scan cache compile start; do
  echo "run: regexd_${b}_bench" >&2
  "$bin/regexd_${b}_bench" --benchmark_repetitions="$reps" --benchmark_out="$out/$b.json" \
    --benchmark_out_format=json | tee "$out/$b.txt"
done
# Single passes of seconds each (docs/benchmarks.md, "Where body's time goes"): one repetition.
echo "run: regexd_re2_sets_bench" >&2
"$bin/regexd_re2_sets_bench" --benchmark_out="$out/re2_sets.json" --benchmark_out_format=json | tee "$out/re2_sets.txt"
echo "run: regexd_pss_bench" >&2
"$bin/regexd_pss_bench" | tee "$out/pss.txt"
echo "run: bench/rspamd_hs_helper.sh" >&2
bench/rspamd_hs_helper.sh | tee "$out/rspamd.txt"
bench/plot.sh "$out/scan.json" docs/img/throughput.png
