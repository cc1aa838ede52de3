#!/usr/bin/env bash
# Tests bench/compare itself: it must pass a run within the threshold and fail
# a slower one and one whose benchmark reported an error.
# usage: compare_test.sh PATH_TO_COMPARE
set -euo pipefail
compare=$1
data=$(cd "$(dirname "$0")" && pwd)/data
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail() { echo "compare_test: $*" >&2; cat "$out" >&2; exit 1; }

# Baseline median 42 ms (42, 43 and an outlier 90); current median aggregate
# 45 ms = +7%: passes at 25%, but fails at 5%.  Loading got faster.  One
# benchmark is missing, one is new: neither fails the gate.
"$compare" "$data/baseline.json" "$data/current_ok.json" >"$out" || fail "within threshold but exit $?"
grep -q 'scan/sa/all/regexd .* +7.1% .*ok' "$out" || fail "expected +7.1% for scan/sa/all/regexd"
grep -q 'bysize/regexd/10 .*missing' "$out" || fail "expected bysize/regexd/10 missing"
grep -q 'bysize/regexd/50 .*new' "$out" || fail "expected bysize/regexd/50 new"
# A manual-time row (timed by the thread that ran it) compares by real_time:
# 310 against 300 ms is +3.3% although the idle main thread's CPU time doubled.
grep -q 'scan/sa/all/regexd_cold/manual_time .* +3.3% .*ok' "$out" || fail "expected +3.3% for the manual-time row"
rc=0; "$compare" --threshold 5 "$data/baseline.json" "$data/current_ok.json" >"$out" || rc=$?
[[ $rc -eq 1 ]] || fail "+7% with threshold 5% must exit 1, got $rc"

# 60 ms against 42 ms = +43%: slower than the default 25%.
rc=0; "$compare" "$data/baseline.json" "$data/current_slow.json" >"$out" || rc=$?
[[ $rc -eq 1 ]] || fail "+43% must exit 1, got $rc"
grep -q 'scan/sa/all/regexd .*SLOWER' "$out" || fail "expected SLOWER row"
# 450 against 300 ms of manual time: +50%, although its CPU time did not move.
grep -q 'scan/sa/all/regexd_cold/manual_time .* +50.0% .*SLOWER' "$out" || fail "expected the manual-time row SLOWER"
"$compare" --threshold 50 "$data/baseline.json" "$data/current_slow.json" >"$out" || fail "+43% within 50% but exit $?"

# A benchmark that failed its answer check fails the gate whatever its time.
rc=0; "$compare" --threshold 1000 "$data/baseline.json" "$data/current_error.json" >"$out" || rc=$?
[[ $rc -eq 1 ]] || fail "an errored benchmark must exit 1, got $rc"
grep -q 'FAILED: 3 disagreements' "$out" || fail "expected the error message in the table"

# Directories are merged; unreadable input is a usage error (2), not a pass.
rc=0; "$compare" "$data" "$data/current_ok.json" >"$out" 2>&1 || rc=$?
[[ $rc -eq 0 || $rc -eq 1 ]] || fail "directory input: exit $rc"
rc=0; "$compare" "$data/baseline.json" /nonexistent.json >"$out" 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "missing file must exit 2, got $rc"
echo "compare_test: ok"
