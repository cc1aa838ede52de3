#!/usr/bin/env bash
# Whole-process start-up of the regexd daemon on SpamAssassin's rules:
# time from exec to the first correct SCAN answer and to the Hyperscan
# build, cold (empty cache) and warm (cache present), and the daemon's peak
# RSS (VmHWM).  "Correct" = the same rule ids as `regexctl scan` of the same
# message in-process.
# Usage: bench/daemon_start.sh BUILD_DIR [MESSAGE]   (BUILD_DIR: e.g. build/release)
# WARM_RUNS (default 7): warm starts timed, with their median.
set -euo pipefail
build=${1:?usage: bench/daemon_start.sh BUILD_DIR [MESSAGE]}
msg=${2:-$(dirname "$0")/../rules/sample-message.eml}
regexd=$build/server/regexd
regexctl=${REGEXCTL:-$build/cli/regexctl}  # REGEXCTL: another build's client (one with query --wait)
rules=(/usr/share/spamassassin/*.cf)
[[ -x $regexd && -x $regexctl ]] || { echo "daemon_start: $regexd or $regexctl missing; build first" >&2; exit 1; }
[[ -e ${rules[0]} ]] || { echo "daemon_start: SpamAssassin rules missing (package spamassassin)" >&2; exit 1; }
work=$(mktemp -d /tmp/rxstart.XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The "hits" object: both commands print it with ids sorted, so the text compares.
ids() { grep -o '"hits":{[^}]*}'; }
want=$("$regexctl" scan --format spamassassin --rules "${rules[@]}" --class body "$msg" 2>/dev/null | ids)
# A 1 ms wait without forking a `sleep` (a fork per poll would take a core
# from the daemon being timed): read with a timeout from a pipe that never
# delivers.
exec {never}<> <(:)
nap() { read -r -t "$1" -u "$never" || true; }

run() {  # $1 = cold|warm; prints one line, sets $first (ms)
  local t0 t_answer t_first= t_hs= state got out qpid
  rm -f "$work/s.sock"
  # The client is up and asking before the daemon starts, as Rspamd would be
  # (its own start-up is not the daemon's): it retries connecting every
  # millisecond, and once the socket exists its query waits in the listen
  # queue until the rule set answers.
  "$regexctl" query --wait 60 --socket "$work/s.sock" --class body "$msg" >"$work/first.json" 2>"$work/first.err" &
  qpid=$!
  nap 0.1
  t0=${EPOCHREALTIME/./}
  "$regexd" --socket "$work/s.sock" --cache "$work/cache" --rules "${rules[@]}" --format spamassassin \
    --name default 2>"$work/$1.log" &
  pid=$!
  wait "$qpid" || { echo "daemon_start: first query failed: $(<"$work/first.err")" >&2; exit 1; }
  t_answer=${EPOCHREALTIME/./}
  out=$(<"$work/first.json")
  while :; do
    got=$(ids <<<"$out")
    state=$(grep -o '"state":"[a-z0-9]*"' <<<"$out" | cut -d'"' -f4)
    [[ $got == "$want" ]] || { echo "daemon_start: wrong answer ($state): $got" >&2; exit 1; }
    [[ -z $t_first ]] && t_first=$(( (t_answer - t0) / 1000 ))
    [[ $state == hyperscan ]] && { t_hs=$(( (t_answer - t0) / 1000 )); break; }
    nap 0.02
    out=$("$regexctl" query --socket "$work/s.sock" --class body "$msg" 2>/dev/null) || continue
    t_answer=${EPOCHREALTIME/./}
  done
  local hwm
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true; pid=
  printf '%-5s first correct answer %6d ms   Hyperscan answering %6d ms   peak RSS %6d KiB\n' "$1" "$t_first" "$t_hs" "$hwm"
  first=$t_first
}
run cold
# Warm starts vary with the machine's state: WARM_RUNS of them, and their median.
firsts=()
for ((i = 0; i < ${WARM_RUNS:-7}; ++i)); do
  run warm
  firsts+=("$first")
done
mapfile -t sorted < <(printf '%s\n' "${firsts[@]}" | sort -n)
echo "warm: median first correct answer ${sorted[$(( ${#sorted[@]} / 2 ))]} ms over ${#sorted[@]} runs (min ${sorted[0]}, max ${sorted[-1]})"
