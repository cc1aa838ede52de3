#!/usr/bin/env bash
# Print N message paths (absolute, one per line): a deterministic sample spread
# over all subsets of a corpus made by scripts/fetch-corpus.sh.
#
# usage: scripts/corpus-sample.sh [CORPUS_DIR] [N]
#   CORPUS_DIR defaults to ${REGEXD_CORPUS_DIR:-$HOME/.cache/regexd/corpus}, N to 600.
#
# Picks lines floor(i * total / N), i = 0..N-1, of the sorted MANIFEST.tsv. The
# manifest is sorted by subset, so this takes every k-th message within each
# subset and gives each subset a share proportional to its size (same sample
# every run, no RNG). N >= total prints every message.
set -euo pipefail

dir=${1:-${REGEXD_CORPUS_DIR:-$HOME/.cache/regexd/corpus}}
n=${2:-600}

die() { echo "corpus-sample: error: $*" >&2; exit 1; }
[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$n'"
[[ -f $dir/.complete && -f $dir/MANIFEST.tsv ]] \
    || die "no complete corpus in $dir (run scripts/fetch-corpus.sh)"
dir=$(cd "$dir" && pwd)

awk -F'\t' -v n="$n" -v dir="$dir" '
    { path[NR - 1] = $2 }
    END {
        if (n > NR) n = NR
        for (i = 0; i < n; i++) print dir "/" path[int(i * NR / n)]
    }' "$dir/MANIFEST.tsv"
