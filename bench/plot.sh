#!/usr/bin/env bash
# Plots scan throughput by rule-set size (the bysize/<engine>/<N> benchmarks of
# regexd_scan_bench) from a Google Benchmark JSON file into a PNG.
# usage: bench/plot.sh SCAN_JSON [OUT_PNG]   (default docs/img/throughput.png)
# Needs gnuplot (Debian gnuplot-nox) and python3 (standard library only).
set -euo pipefail
die() { echo "plot: error: $*" >&2; exit 1; }
json=${1:?usage: bench/plot.sh SCAN_JSON [OUT_PNG]}
png=${2:-$(cd "$(dirname "$0")/.." && pwd)/docs/img/throughput.png}
[[ -f $json ]] || die "$json not found"
command -v gnuplot >/dev/null || die "gnuplot not found (apt-get install gnuplot-nox)"
data=$(mktemp)
trap 'rm -f "$data"' EXIT

# One block per engine (separated by two blank lines for gnuplot's "index"):
# N, median MB/s over the repetitions.
python3 - "$json" >"$data" <<'PY'
import json, statistics, sys
rows = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    name = b.get("run_name", b["name"])
    if not name.startswith("bysize/") or b.get("error_occurred") or "bytes_per_second" not in b:
        continue
    if b.get("run_type") == "aggregate":
        continue  # medians are taken here over the iteration rows
    _, engine, n = name.split("/")
    rows.setdefault(engine, {}).setdefault(int(n), []).append(b["bytes_per_second"] / 1e6)
if not rows:
    sys.exit("plot: error: no bysize/ benchmarks in " + sys.argv[1])
for engine in ("regexd", "re2_set", "pcre2_loop"):
    print(f"# {engine}")
    for n in sorted(rows.get(engine, {})):
        print(n, statistics.median(rows[engine][n]))
    print("\n")
PY
mkdir -p "$(dirname "$png")"
gnuplot <<EOF
set terminal pngcairo size 900,560 noenhanced font ",11"
set output "$png"
set title "Scan throughput by rule-set size (SpamAssassin rules, SpamAssassin public corpus)"
set xlabel "rules (RE2-compatible subset of SpamAssassin body/rawbody/full/uri, one class)"
set ylabel "MB/s (higher is better)"
set logscale xy
set grid
set key top right
plot "$data" index 0 using 1:2 with linespoints lw 2 title "regexd (planner: Hyperscan, RE2 sets, PCRE2)", \
     "$data" index 1 using 1:2 with linespoints lw 2 title "RE2::Set", \
     "$data" index 2 using 1:2 with linespoints lw 2 title "PCRE2 JIT, rule by rule"
EOF
echo "$png"
