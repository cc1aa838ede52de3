#!/usr/bin/env bash
# The SpamAssassin referee (issue 12): SpamAssassin 4.0.1 itself and regexd through Rspamd 3.4 and
# the plugin's buffer building, on the same corpus messages, every rule hit compared.
#
#   1. SpamAssassin's parsed configuration (tests/support/sa_referee.pl --describe) says what each
#      rule is; regexd (SpamAssassin's rules as one rule set, the daemon built from this tree; its
#      log and `regexctl compile --json`) says which it rejected and which it cannot run (eval
#      rules, network tests, ...). Those are switched off in SpamAssassin with `score NAME 0`:
#      SpamAssassin then neither runs them nor gives a meta anything but 0 for them
#      (Plugin/Check.pm: check_main, do_meta_tests).
#   2. A private Rspamd (Unix sockets in a temp dir, no DNS, only the regexd plugin with
#      classes = ["*"]) scans each message with `rspamc -j`; regexd's hits are the symbols the
#      plugin inserts and the options of REGEXD_OTHER.
#   3. SpamAssassin (local tests, its own rules, no Bayes/AWL/network/user prefs, private home)
#      checks the same messages (tests/support/sa_referee.pl), twice: as in 1., and with the rules
#      on SpamAssassin's relay pseudo-headers switched off too (Rspamd cannot give those headers, so
#      regexd never sees them hit; the metas that read them then agree or not on the rest).
#   4. tests/support/sa_referee_compare.py compares per message and prints the report: messages
#      where public rules+metas are identical, where `__` sub-rules are, and the rules that differ.
#
# usage: bench/sa_referee.sh [N]          N corpus messages (default 400, scripts/corpus-sample.sh)
# env:   REGEXD_BIN        the daemon (default: build/referee/server/regexd, else build/default/...)
#        REGEXCTL_BIN      regexctl next to it
#        REGEXD_CORPUS_DIR the corpus (default ~/.cache/regexd/corpus)
#        REGEXD_SA_RULES_DIR SpamAssassin's rules (default /usr/share/spamassassin)
#        SA_REFEREE_CACHE  regexd's cache dir (default ~/.cache/regexd/sa-referee)
#        RSPAMD_HS_CACHE   Rspamd's own Hyperscan cache (default ~/.cache/regexd/sa-referee-rspamd)
#        SA_REFEREE_REPORT write the report (Markdown) here too, and REPORT.json
#        SA_REFEREE_MIN_PUBLIC, SA_REFEREE_MIN_SUB  minimum % of messages identical (against
#                          SpamAssassin without its relay rules, the report's second line); below: exit 1
#        SA_REFEREE_METAS  auto (default: regexd evaluates metas if its answers hold any), yes, no
#        SA_REFEREE_PREWARM=0 skip `regexd --prewarm` (default on: compile into the cache first)
#        SA_REFEREE_KEEP=1 keep the temp dir (logs, every answer)
set -euo pipefail

die() { echo "sa_referee: FAIL: $*" >&2; exit 1; }
log() { echo "sa_referee: $*" >&2; }

src=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-400}
[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$n'"
regexd_bin=${REGEXD_BIN:-}
if [[ -z $regexd_bin ]]; then
  for d in "$src/build/referee" "$src/build/default"; do
    [[ -x $d/server/regexd ]] && { regexd_bin=$d/server/regexd; break; }
  done
fi
[[ -n $regexd_bin && -x $regexd_bin ]] || die "no regexd binary (set REGEXD_BIN)"
regexctl_bin=${REGEXCTL_BIN:-$(dirname "$(dirname "$regexd_bin")")/cli/regexctl}
[[ -x $regexctl_bin ]] || die "no regexctl next to $regexd_bin (set REGEXCTL_BIN)"
corpus=${REGEXD_CORPUS_DIR:-$HOME/.cache/regexd/corpus}
sa_rules=${REGEXD_SA_RULES_DIR:-/usr/share/spamassassin}
cache=${SA_REFEREE_CACHE:-$HOME/.cache/regexd/sa-referee}
hs_cache=${RSPAMD_HS_CACHE:-$HOME/.cache/regexd/sa-referee-rspamd}
for tool in rspamd rspamc perl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup-deps.sh --test)"
done
perl -MMail::SpamAssassin -e 1 2>/dev/null || die "Mail::SpamAssassin missing (Debian package spamassassin)"
compgen -G "$sa_rules/*.cf" >/dev/null || die "no SpamAssassin rules in $sa_rules"

started=$(date +%s)
tmp=$(mktemp -d /tmp/regexd-sa-referee.XXXXXX)
regexd_pid= rspamd_pid=
# shellcheck source=../tests/support/rspamd_private.sh
source "$src/tests/support/rspamd_private.sh"
cleanup() {
  local rc=$?
  stop_pid "$rspamd_pid"; stop_pid "$regexd_pid"
  if [[ $rc -ne 0 ]]; then
    echo "---- regexd log (tail) ----" >&2; tail -n 20 "$tmp/regexd.log" 2>/dev/null >&2 || true
    echo "---- rspamd log (regexd lines, errors) ----" >&2
    grep -E 'regexd:|error|failed' "$tmp/log/rspamd.log" 2>/dev/null | tail -n 20 >&2 || true
  fi
  if [[ ${SA_REFEREE_KEEP:-0} == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp"/{out,lists} "$cache"

"$src/scripts/corpus-sample.sh" "$corpus" "$n" >"$tmp/messages.txt"
n=$(wc -l <"$tmp/messages.txt")

# ---------------------------------------------------------------------------------------------
# regexd: SpamAssassin's rules as rule set "sa" (the daemon's own file order: sorted, as SA reads)
sock=$tmp/regexd.sock
regexd_rules=(--cache "$cache" --rules "$sa_rules"/*.cf --format spamassassin --name sa)
if [[ ${SA_REFEREE_PREWARM:-1} == 1 ]]; then
  # Without it regexd answers with PCRE2 while Hyperscan compiles in the background (same answers),
  # and that compile (1.5 min of both cores on a quiet machine) would slow SpamAssassin down and be
  # lost when regexd stops. Once in the cache this takes a second.
  t0=$(date +%s)
  "$regexd_bin" --prewarm "${regexd_rules[@]}" >"$tmp/prewarm.log" 2>&1 ||
    die "regexd --prewarm failed: $(tail -n 3 "$tmp/prewarm.log")"
  log "regexd --prewarm: $(($(date +%s) - t0)) s"
fi
log "starting regexd ($regexd_bin) on $sa_rules/*.cf"
"$regexd_bin" --socket "$sock" "${regexd_rules[@]}" >"$tmp/regexd.log" 2>&1 &
regexd_pid=$!
for _ in $(seq 1200); do
  kill -0 "$regexd_pid" 2>/dev/null || die "regexd exited during start-up: $(tail -n 3 "$tmp/regexd.log")"
  [[ -S $sock ]] && socket_accepts "$sock" && break
  sleep 0.1
done
socket_accepts "$sock" || die "regexd does not accept connections on $sock after 120 s"
"$regexctl_bin" stats --json --socket "$sock" >"$tmp/stats-start.json" || die "regexctl stats failed"
regexd_state=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["rulesets"][0]; print(r["rules"], "rules,", r["state"])' "$tmp/stats-start.json")
log "regexd ready: $regexd_state"

# ---------------------------------------------------------------------------------------------
# What SpamAssassin has, what regexd runs, what SpamAssassin must switch off.
perl "$src/tests/support/sa_referee.pl" --rules "$sa_rules" --describe >"$tmp/describe.jsonl" \
  2>"$tmp/describe.err" || die "sa_referee.pl --describe failed: $(tail -n 3 "$tmp/describe.err")"
# regexd's own report: which tests it cannot run (a regexd with metas lists them), from the cache.
"$regexctl_bin" compile --format spamassassin --rules "$sa_rules"/*.cf --json --cache "$cache" \
  >"$tmp/compile.json" 2>"$tmp/compile.err" || die "regexctl compile failed: $(tail -n 3 "$tmp/compile.err")"
lists_summary=$(python3 "$src/tests/support/sa_referee_compare.py" lists "$tmp/describe.jsonl" \
  "$tmp/regexd.log" "$tmp/compile.json" "$tmp/lists")
log "$lists_summary"

# ---------------------------------------------------------------------------------------------
# Rspamd 3.4 with only the plugin, every class of the rule set.
cat >"$tmp/regexd-override.conf" <<EOF
socket = "$sock";
ruleset = "sa";
timeout = 30s;
classes = ["*"];
symbol_prefix = "";
EOF
log "starting rspamd $(rspamd --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1)"
# REGEXD_OTHER carries one option per rule hit: Rspamd's default cap of 4 KiB of options per symbol
# would cut the list.
rspamd_private_start "$tmp" "$src" "$hs_cache" "$tmp/regexd-override.conf" \
  "  task_timeout = 60s; max_opts_len = 1048576;"
log "rspamd ready after $(($(date +%s) - started)) s"

# ---------------------------------------------------------------------------------------------
log "scanning $n messages through rspamd + regexd"
i=0
: >"$tmp/rspamd-times.tsv"
while IFS= read -r msg; do
  i=$((i + 1))
  t0=$(date +%s%N)
  rspamc -j -t 60 -h "$tmp/run/normal.sock" "$msg" >"$tmp/out/$i.json" || die "rspamc failed on $msg"
  t1=$(date +%s%N)
  printf '%s\t%s\t%s\n' "$i" "$msg" "$(((t1 - t0) / 1000))" >>"$tmp/rspamd-times.tsv"
done <"$tmp/messages.txt"
python3 - "$tmp/rspamd-times.tsv" "$tmp/out" >"$tmp/rspamd.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    i, f, us = line.rstrip('\n').split('\t')
    d = json.load(open(f"{sys.argv[2]}/{i}.json"))
    print(json.dumps({"file": f, "ms": int(us) / 1000, "answer": d}))
EOF
"$regexctl_bin" stats --json --socket "$sock" >"$tmp/stats-end.json" || true
classes_note=$(grep -o 'regexd: [^"]*classes[^"]*' "$tmp/log/rspamd.log" | grep -iv 'socket' | sort -u | head -3 || true)

# Twice: as shipped minus what regexd cannot run, and also without the relay pseudo-header rules
# (what Rspamd can give: their metas then see 0 on both sides).
cat "$tmp/lists/off.txt" "$tmp/lists/relay.txt" >"$tmp/lists/off-relay.txt"
for mode in off off-relay; do
  log "SpamAssassin checks the same $n messages ($mode.txt switched off)"
  xargs -d '\n' perl "$src/tests/support/sa_referee.pl" --rules "$sa_rules" --off "$tmp/lists/$mode.txt" \
    <"$tmp/messages.txt" >"$tmp/sa-$mode.jsonl" 2>"$tmp/sa-$mode.err" ||
    die "sa_referee.pl failed: $(tail -n 5 "$tmp/sa-$mode.err")"
done

# ---------------------------------------------------------------------------------------------
args=(compare "$tmp/lists" "$tmp/sa-off.jsonl" "$tmp/rspamd.jsonl" --sa-norelay "$tmp/sa-off-relay.jsonl"
      --metas "${SA_REFEREE_METAS:-auto}"
      --stats "$tmp/stats-end.json")
[[ -n ${SA_REFEREE_REPORT:-} ]] && args+=(--report "$SA_REFEREE_REPORT")
[[ -n ${SA_REFEREE_MIN_PUBLIC:-} ]] && args+=(--min-public "$SA_REFEREE_MIN_PUBLIC")
[[ -n ${SA_REFEREE_MIN_SUB:-} ]] && args+=(--min-sub "$SA_REFEREE_MIN_SUB")
rc=0
python3 "$src/tests/support/sa_referee_compare.py" "${args[@]}" || rc=$?
# A Lua error in the plugin leaves a message without any regexd answer (no REGEXD_FAIL either).
plugin_errors=$(grep -c 'call to (REGEXD[A-Z_]*) failed' "$tmp/log/rspamd.log" || true)
if ((plugin_errors > 0)); then
  echo
  echo "**The plugin failed (Lua error) on $plugin_errors messages**, which then carry no regexd answer:" \
    "$(grep -o 'call to (REGEXD[A-Z_]*) failed.*' "$tmp/log/rspamd.log" | head -1 | cut -c1-300)"
  [[ -n ${SA_REFEREE_REPORT:-} ]] && echo "**The plugin failed (Lua error) on $plugin_errors messages.**" >>"$SA_REFEREE_REPORT"
  rc=1
fi
echo
echo "regexd $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?') ($regexd_bin): $regexd_state at start;" \
  "$lists_summary. $(date -u +%FT%TZ), $(($(date +%s) - started)) s."
[[ -n $classes_note ]] && echo "rspamd log: $classes_note"
exit "$rc"
