#!/usr/bin/env bash
# Whole-process start-up of the regexd daemon on SpamAssassin's rules:
# time from exec to the first correct SCAN answer and to the Hyperscan
# build, cold (empty cache) and warm (cache present), and the daemon's peak
# RSS (VmHWM).  "Correct" = the same rule ids as `regexctl scan` of the same
# message in-process.
# Usage: bench/daemon_start.sh BUILD_DIR [MESSAGE]   (BUILD_DIR: e.g. build/release)
set -euo pipefail
build=${1:?usage: bench/daemon_start.sh BUILD_DIR [MESSAGE]}
msg=${2:-$(dirname "$0")/../rules/sample-message.eml}
regexd=$build/server/regexd
regexctl=$build/cli/regexctl
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
now_ms() { date +%s%3N; }

run() {  # $1 = cold|warm
  local t0 t_first= t_hs= state got
  t0=$(now_ms)
  "$regexd" --socket "$work/s.sock" --cache "$work/cache" --rules "${rules[@]}" --format spamassassin \
    --name default 2>"$work/$1.log" &
  pid=$!
  while :; do
    if out=$("$regexctl" query --socket "$work/s.sock" --class body "$msg" 2>/dev/null); then
      got=$(ids <<<"$out")
      state=$(grep -o '"state":"[a-z0-9]*"' <<<"$out" | cut -d'"' -f4)
      [[ $got == "$want" ]] || { echo "daemon_start: wrong answer ($state): $got" >&2; exit 1; }
      [[ -z $t_first ]] && t_first=$(( $(now_ms) - t0 ))
      [[ $state == hyperscan ]] && { t_hs=$(( $(now_ms) - t0 )); break; }
    fi
    sleep 0.02
  done
  local hwm
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true; pid=
  printf '%-5s first correct answer %6d ms   Hyperscan answering %6d ms   peak RSS %6d KiB\n' "$1" "$t_first" "$t_hs" "$hwm"
}
run cold
run warm
