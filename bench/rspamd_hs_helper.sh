#!/usr/bin/env bash
# Whole-process figures for the peer: Debian's Rspamd 3.4 with SpamAssassin's
# rules (its spamassassin module), started from a temp dir, loopback only.
#   cold: empty hs_cache_dir; hs_helper compiles every regexp class.
#   warm: same dir again; hs_helper finds its cache, workers load it.
# For each it reports the time from launch until a worker logs that it loaded
# its Hyperscan database (the first point where Rspamd scans with Hyperscan),
# and, cold, hs_helper's own compile span from its log timestamps.
#
# Nothing external is relied on: DNS goes to 127.0.0.1:1 (nothing answers),
# no redis is configured (Debian's default), workers bind to 127.0.0.1.
# The timing function (wait_for_log) takes any command and log pattern, so
# the regexd daemon's start-to-ready time can be measured the same way once
# it exists.
#
# usage: bench/rspamd_hs_helper.sh [RULES_GLOB]
#   RULES_GLOB  default /usr/share/spamassassin/*.cf
#   env RSPAMD_BENCH_PORT (default 51333: uses it and the next two ports),
#       RSPAMD_BENCH_TIMEOUT seconds per start (default 900),
#       RSPAMD_BENCH_KEEP=1 keeps the temp dir (logs) for inspection
set -euo pipefail

die() { echo "rspamd_hs_helper: error: $*" >&2; exit 1; }

rules=${1:-/usr/share/spamassassin/*.cf}
port=${RSPAMD_BENCH_PORT:-51333}
timeout=${RSPAMD_BENCH_TIMEOUT:-900}
command -v rspamd >/dev/null || die "rspamd not found (Debian package rspamd)"
compgen -G "$rules" >/dev/null || die "no rules match $rules (Debian package spamassassin)"

work=$(mktemp -d /tmp/regexd-rspamd.XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [[ ${RSPAMD_BENCH_KEEP:-0} == 1 ]]; then echo "rspamd_hs_helper: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
mkdir -p "$work"/{local.d,override.d,db,run,log,hs}

# Debian's /etc/rspamd/rspamd.conf, with LOCAL_CONFDIR, DBDIR, RUNDIR and
# LOGDIR pointed into $work (see --var below) and these local files.
cat >"$work/local.d/spamassassin.conf" <<EOF
ruleset = "$rules";
EOF
cat >"$work/local.d/options.inc" <<EOF
hs_cache_dir = "$work/hs/";
dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }
EOF
cat >"$work/local.d/logging.inc" <<'EOF'
level = "info";
log_usec = true;
EOF
cat >"$work/override.d/worker-normal.inc" <<EOF
bind_socket = "127.0.0.1:$port";
count = 1;
EOF
cat >"$work/override.d/worker-controller.inc" <<EOF
bind_socket = "127.0.0.1:$((port + 1))";
EOF
cat >"$work/override.d/worker-proxy.inc" <<EOF
bind_socket = "127.0.0.1:$((port + 2))";
EOF

log=$work/log/rspamd.log
now() { date +%s.%N; }

# wait_for_log LOG PATTERN: waits until LOG has a line matching PATTERN (ERE);
# fails if the process $pid dies first or after $timeout seconds.
wait_for_log() {
  local deadline=$(($(date +%s) + timeout))
  until [[ -f $1 ]] && grep -Eq "$2" "$1"; do
    kill -0 "$pid" 2>/dev/null || die "rspamd exited before logging /$2/; see $1 (RSPAMD_BENCH_KEEP=1)"
    (($(date +%s) < deadline)) || die "no /$2/ in $1 after ${timeout}s"
    sleep 0.05
  done
}

# A line's timestamp (log_usec: "2024-01-01 10:00:00.123456 #pid(...)") in seconds.
stamp() { date -d "$(cut -d' ' -f1-2 <<<"$1")" +%s.%N; }

ready='hyperscan database of [0-9]+ regexps has been loaded'

# start_rspamd LABEL: launches rspamd, waits for a worker's Hyperscan load,
# prints the wall time, stops rspamd.
start_rspamd() {
  : >"$log"
  local t0 t1
  t0=$(now)
  rspamd -f -i -c /etc/rspamd/rspamd.conf --var="LOCAL_CONFDIR=$work" --var="DBDIR=$work/db" \
    --var="RUNDIR=$work/run" --var="LOGDIR=$work/log" >"$work/log/stdout.log" 2>&1 &
  pid=$!
  wait_for_log "$log" "$ready"
  t1=$(now)
  cp "$log" "$work/log/$1.log"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

cold=$(start_rspamd cold)
classes=$(grep -c 'compiled class' "$work/log/cold.log" || true)
((classes > 0)) || die "hs_helper compiled no class on a cold start; see $work/log/cold.log (RSPAMD_BENCH_KEEP=1)"
first=$(head -n 1 "$work/log/cold.log")
last=$(grep 'compiled class' "$work/log/cold.log" | tail -n 1)
span=$(awk -v a="$(stamp "$first")" -v b="$(stamp "$last")" 'BEGIN { printf "%.2f", b - a }')
# "compiled class C to cache H, n/m regexps": n went to Hyperscan, of m.
regexps=$(grep -Eo 'compiled class .* [0-9]+/[0-9]+ regexps' "$work/log/cold.log" | grep -Eo '[0-9]+/[0-9]+ regexps$' \
  | awk -F'[/ ]' '{ n += $1; m += $2 } END { printf "%d of %d regexps in Hyperscan", n, m }')
sa_classes=$(grep -c 'compiled class sa ' "$work/log/cold.log" || true)
loaded=$(grep -Eo "$ready" "$work/log/cold.log" | head -n 1)
cache_bytes=$(du -sb "$work/hs" | cut -f1)

warm=$(start_rspamd warm)
grep -q 'compiled class' "$work/log/warm.log" && die "hs_helper recompiled on the warm start; see $work/log/warm.log"

echo "rspamd $(rspamd -v 2>/dev/null | head -n 1 | grep -Eo '[0-9]+\.[0-9]+' | head -n 1), rules $rules"
echo "cold: hs_helper compiled $classes classes ($sa_classes named 'sa ...'; header classes mix SpamAssassin's and Rspamd's own rules; $regexps) in ${span} s (first log line to last 'compiled class'); launch to first worker Hyperscan load: ${cold} s ($loaded)"
echo "warm: launch to first worker Hyperscan load: ${warm} s (hs cache $cache_bytes bytes)"
