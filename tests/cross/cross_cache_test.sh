#!/usr/bin/env bash
# Cross-architecture cache test: ONE cache root used in turn by the three
# flavors, x86_64+Hyperscan (build/default), x86_64+Vectorscan
# (build/vectorscan-x86) and aarch64+Vectorscan (build/arm64, under qemu).
#
#  1. shared root: each flavor's cache_shared_root_test compiles its own entry
#     of a SpamAssassin subset into the root and answers a corpus sample
#     exactly as PCRE2 does; a second round loads each entry from the cache
#     (same check); no flavor changes or deletes another's entries.
#  2. regexctl prewarm / scan / verify of rules/sample.rules from each flavor
#     against the same root: the same answers everywhere, verify clean.
#  3. an arm64 entry planted under the x86_64 Vectorscan entry's name: refused
#     by regexd's tags (the reason names the architecture) before any byte
#     reaches Vectorscan, shown by an LD_PRELOAD shim that logs the library's
#     deserialization calls (Vectorscan 5.4.9 on x86 would load those bytes).
#  4. restore: a root made on one architecture copied to the other: one info
#     line about the foreign entries, its own entry compiled, right answers;
#     prune --foreign removes the foreign directory and nothing else.
#  5. the same restore with the regexd daemon of the other architecture: one
#     log line about the foreign entries, its own build saved, right answers.
#  6. target entries: x86_64 Vectorscan writes aarch64's entries (the
#     SpamAssassin subset of step 1, `regexctl prewarm --target aarch64`,
#     `regexd --prewarm --target arm64`); the aarch64 build loads them with
#     zero calls to Vectorscan's compiler (LD_PRELOAD shim) and answers like
#     PCRE2 / like the x86 build; unsafe targets are refused with one line;
#     and through Redis: the x86 daemon publishes the aarch64 entry to a
#     redis-server started here, an aarch64 daemon on an empty root starts
#     from it without compiling.
#
# usage: tests/cross/cross_cache_test.sh CORPUS_DIR [6]   (scripts/flavors.sh cross-cache)
# With "6" only step 6 runs (it needs only the vectorscan-x86 and arm64 builds).
# Prints one line per check and "cross-cache: N passed, M failed"; exit 1 on
# any failure.  Every FAIL line names this file's line.
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus=${1:?usage: tests/cross/cross_cache_test.sh CORPUS_DIR}
[[ -f $corpus/MANIFEST.tsv ]] || { echo "cross-cache: error: no corpus at $corpus (scripts/fetch-corpus.sh)" >&2; exit 1; }

flavors=(default vectorscan-x86 arm64)
only=${2:-}
[[ -z $only || $only == 6 ]] || { echo "cross-cache: error: the only step that runs alone is 6" >&2; exit 1; }
[[ -z $only ]] || flavors=(vectorscan-x86 arm64)
declare -A dir_prefix=([default]=x86_64-hyperscan- [vectorscan-x86]=x86_64-vectorscan- [arm64]=aarch64-vectorscan-)
for f in "${flavors[@]}"; do
  for p in run run-regexctl run-regexd tests/cache_shared_root_test; do
    [[ -x build/$f/$p ]] || { echo "cross-cache: error: build/$f/$p missing; build the $f preset" >&2; exit 1; }
  done
done

work=$(mktemp -d "${TMPDIR:-/tmp}/regexd-cross.XXXXXX")
redis_pid=
trap '[[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "  ok   $*"; }
# FAIL names the line of the check (the caller of check, or of fail itself).
fail() {
  local line=${BASH_LINENO[0]}
  [[ ${FUNCNAME[1]:-} == check ]] && line=${BASH_LINENO[1]}
  failed=$((failed + 1))
  echo "  FAIL $* (tests/cross/cross_cache_test.sh:$line)"
}
# check DESCRIPTION COMMAND...: the command's exit status decides.
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
rx() { local f=$1; shift; "build/$f/run-regexctl" "$@"; }
# The platform directory of flavor $2 under root $1 (exactly one must exist).
platform_dir() { local d=("$1/${dir_prefix[$2]}"*); [[ ${#d[@]} -eq 1 && -d ${d[0]} ]] && echo "${d[0]}"; }
# sha256 of every entry under a root, for "nobody changed what is not theirs".
entry_sums() { (cd "$1" && find . -name '*.rxdb' -print0 | sort -z | xargs -0 -r sha256sum); }
# The entry of a platform directory whose rule-set name is $2.
entry_named() {
  local e
  for e in "$1"/*.rxdb; do
    [[ $(rx default inspect --json "$e" | sed -n 's/^  "rule_set_name": "\(.*\)",$/\1/p') == "$2" ]] && { echo "$e"; return; }
  done
  return 1
}
messages=("$PWD/rules/sample-message.eml")
mapfile -t -O 1 messages < <(scripts/corpus-sample.sh "$corpus" 30)
# scan output without the timing field, so flavors can be compared byte for byte.
scan() { rx "$1" scan --rules rules/sample.rules --class body ${2:+--cache "$2"} "${messages[@]}" |
  sed 's/,"scan_us":[0-9]*//'; }

# spy_run LOG COMMAND...: COMMAND (a build/arm64 program: qemu passes
# QEMU_SET_ENV into the guest only) with the call-logging shim preloaded.
spy_run() {
  local log=$1; shift
  : >"$log"
  QEMU_SET_ENV=LD_PRELOAD=$PWD/build/arm64/tests/libhs_call_spy.so REGEXD_HS_SPY_LOG=$log "$@"
}
compiles() { grep -c '^hs_compile' "$1" || true; }

step6() {
  echo "cross-cache: 6. entries made on x86_64 for aarch64 (--target), loaded there without compiling"
  local root=$work/target out log dirs reference got
  # Refusals: one line, exit 1, nothing written.
  if [[ -x build/default/run-regexctl ]]; then
    out=$(rx default prewarm --target aarch64 --rules rules/sample.rules --cache "$root" 2>&1) && fail "hyperscan accepted --target aarch64"
    check "hyperscan build refuses --target aarch64 in one line" \
      [ "$out" == "$(grep -m1 'prewarm --target: target aarch64: needs a Vectorscan build; this is hyperscan' <<<"$out")" ]
  fi
  out=$(rx vectorscan-x86 prewarm --target s390x --rules rules/sample.rules --cache "$root" 2>&1) && fail "s390x accepted"
  check "vectorscan-x86 refuses --target s390x in one line" \
    [ "$out" == "$(grep -m1 "target 's390x': unknown or unverified architecture" <<<"$out")" ]
  out=$(rx arm64 prewarm --target x86_64 --rules rules/sample.rules --cache "$root" 2>&1) && fail "arm64 accepted --target x86_64"
  check "arm64 refuses --target x86_64 (keyed by the x86 CPU's own features) in one line" \
    [ "$out" == "$(grep -m1 "target x86_64: an x86_64 regexd keys its entries by its own CPU's tune and features" <<<"$out")" ]
  check "refused targets wrote nothing" [ ! -e "$root" ]

  # The SpamAssassin subset of step 1, through the test binary (the rule set
  # it compares with PCRE2): written on x86_64, loaded on aarch64.
  log=$work/target-x86.log
  if REGEXD_SHARED_ROOT=$root REGEXD_TARGET=aarch64 build/vectorscan-x86/run build/vectorscan-x86/tests/cache_shared_root_test \
       >"$log" 2>&1; then
    ok "vectorscan-x86: $(grep -o 'shared-root: .*' "$log")"
  else
    fail "vectorscan-x86: writing the aarch64 entry failed: $(grep -E 'Failure|error|expected|Which is' "$log" | head -n 5 | tr '\n' ' ')"
  fi
  dirs=$(cd "$root" 2>/dev/null && ls)
  check "only an aarch64 platform directory was written (${dirs//$'\n'/ })" \
    [ "$(grep -c . <<<"$dirs")" == 1 -a -n "$(grep "^${dir_prefix[arm64]}" <<<"$dirs")" ]
  log=$work/target-arm64.log
  if spy_run "$work/spy-target-sa" env REGEXD_SHARED_ROOT="$root" REGEXD_EXPECT_SOURCE=cache \
       build/arm64/run build/arm64/tests/cache_shared_root_test >"$log" 2>&1; then
    ok "arm64 loaded the x86-made entry: $(grep -o 'shared-root: .*' "$log")"
  else
    fail "arm64 on the x86-made entry: $(grep -E 'Failure|error|expected|Which is|shared-root' "$log" | head -n 5 | tr '\n' ' ')"
  fi
  check "arm64: Vectorscan's compiler was not called (shim saw $(compiles "$work/spy-target-sa") compile calls)" \
    [ "$(compiles "$work/spy-target-sa")" == 0 ]
  check "arm64: the shim saw the entry's databases deserialized" \
    [ "$(grep -c '^hs_deserialize_database$' "$work/spy-target-sa" || true)" -gt 0 ]

  # The operator's commands: regexctl and the daemon's --prewarm.
  out=$(rx vectorscan-x86 prewarm --target aarch64 --rules rules/sample.rules --cache "$root" 2>&1) || true
  check "vectorscan-x86: prewarm --target aarch64 compiled the entry into the aarch64 directory" \
    grep -q "rules/sample.rules: compiled.*cache $root/${dir_prefix[arm64]}" <<<"${out//$'\n'/ }"
  out=$(rx vectorscan-x86 prewarm --target arm64 --rules rules/sample.rules --cache "$root" 2>&1) || true
  check "vectorscan-x86: again (alias arm64): present" grep -q 'rules/sample.rules: present' <<<"$out"
  build/vectorscan-x86/run-regexd --prewarm --target aarch64 --rules rules/sample.rules --name mail --cache "$root" \
    >"$work/target-daemon.log" 2>&1 || true
  check "vectorscan-x86: regexd --prewarm --target aarch64 finds the same key" \
    grep -q 'prewarm: rule set mail: already in the cache' "$work/target-daemon.log"
  out=$(spy_run "$work/spy-target-cli" build/arm64/run-regexctl prewarm --rules rules/sample.rules --cache "$root" 2>&1) || true
  check "arm64: regexctl prewarm finds it (hit)" grep -q 'rules/sample.rules: hit' <<<"$out"
  build/arm64/run-regexd --prewarm --rules rules/sample.rules --name mail --cache "$root" >"$work/target-daemon-arm.log" 2>&1 || true
  check "arm64: regexd --prewarm finds it" grep -q 'prewarm: rule set mail: already in the cache' "$work/target-daemon-arm.log"
  reference=$(scan vectorscan-x86 "")  # compiled natively on x86_64, no cache
  got=$(spy_run "$work/spy-target-scan" scan arm64 "$root")
  check "arm64: scan from the x86-made entry equals x86_64's own answers, ${#messages[@]} messages" [ "$got" == "$reference" ]
  check "arm64: regexctl prewarm and scan compiled nothing, loaded the entry (shim saw its deserialization)" \
    [ "$(compiles "$work/spy-target-cli")" == 0 -a "$(compiles "$work/spy-target-scan")" == 0 -a \
      "$(grep -c '^hs_deserialize_database$' "$work/spy-target-scan" || true)" -gt 0 ]
  # Control: on an empty root the same command compiles, and the shim sees it.
  spy_run "$work/spy-target-control" build/arm64/run-regexctl prewarm --rules rules/sample.rules \
    --cache "$work/target-control" >/dev/null 2>&1 || true
  check "control: arm64 compiling into an empty root makes compile calls the shim sees" \
    [ "$(compiles "$work/spy-target-control")" -gt 0 ]
  check "arm64: and wrote no entry of its own (one entry per rule set in the directory)" \
    [ "$(find "$root" -name '*.rxdb' | wc -l)" == 2 ]

  # From Redis: the x86_64 daemon publishes the aarch64 entry to a shared Redis (a redis-server
  # started here, private Unix socket); an aarch64 daemon with an empty cache root starts from
  # it: a remote hit, no compile, the entry now in its own cache, answers as x86_64's.
  if ! command -v redis-server >/dev/null; then
    fail "redis-server is not installed (scripts/setup-deps.sh --test installs it)"
    return
  fi
  redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --daemonize no --save "" \
    --appendonly no >"$work/redis.log" 2>&1 &
  redis_pid=$!
  local i
  for i in $(seq 100); do [[ -S $work/redis.sock ]] && break; sleep 0.1; done
  rx vectorscan-x86 keygen "$work/fleet" >/dev/null
  local remote="[remote]
redis = \"$work/redis.sock\"
key_prefix = \"cross:\"
trusted_keys = [\"$work/fleet.pub\"]"
  printf '[cache]\nroot = "%s"\n%s\nsigning_key = "%s"\n' "$work/fleet-x86" "$remote" "$work/fleet.key" >"$work/x86.toml"
  printf '[cache]\nroot = "%s"\n%s\n' "$work/fleet-arm" "$remote" >"$work/arm.toml"
  build/vectorscan-x86/run-regexd --config "$work/x86.toml" --prewarm --target aarch64 --rules rules/sample.rules \
    --name mail >"$work/fleet-x86.log" 2>&1 || true
  check "vectorscan-x86: regexd --prewarm --target aarch64 published the entry to Redis" \
    grep -q 'prewarm: rule set mail: entry published to the remote tier' "$work/fleet-x86.log"
  spy_run "$work/spy-redis" build/arm64/run-regexd --config "$work/arm.toml" --prewarm --rules rules/sample.rules \
    --name mail >"$work/fleet-arm.log" 2>&1 || true
  check "arm64: regexd --prewarm on an empty root got the entry from Redis" \
    grep -q 'prewarm: rule set mail: already in the cache' "$work/fleet-arm.log"
  check "arm64: Vectorscan's compiler was not called (shim saw $(compiles "$work/spy-redis") compile calls)" \
    [ "$(compiles "$work/spy-redis")" == 0 ]
  check "arm64: the entry from Redis is now in its own cache" \
    [ "$(find "$work/fleet-arm" -name '*.rxdb' | wc -l)" == 1 ]
  got=$(spy_run "$work/spy-redis-scan" scan arm64 "$work/fleet-arm")
  check "arm64: scan from the entry it got from Redis equals x86_64's own answers, ${#messages[@]} messages" \
    [ "$got" == "$reference" -a "$(compiles "$work/spy-redis-scan")" == 0 ]
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=
}
if [[ $only == 6 ]]; then
  step6
  echo "cross-cache: $passed passed, $failed failed"
  ((failed == 0))
  exit
fi

echo "cross-cache: 1. one root, three flavors, SpamAssassin subset vs PCRE2"
root=$work/shared
for round in compiled cache; do
  for f in "${flavors[@]}"; do
    before=$( [[ -d $root ]] && entry_sums "$root" || true)
    log=$work/shared-$f-$round.log
    if REGEXD_SHARED_ROOT=$root REGEXD_EXPECT_SOURCE=$round build/$f/run build/$f/tests/cache_shared_root_test \
         >"$log" 2>&1; then
      ok "$f: $(grep -o 'shared-root: .*' "$log")"
    else
      fail "$f: shared-root test (expect $round) failed; log: $(grep -E 'Failure|error|FAIL|expected|Which is' "$log" | head -n 5 | tr '\n' ' ')"
    fi
    after=$(entry_sums "$root")
    # Entries of the other platforms are byte-identical after this flavor ran.
    others_before=$(grep -v "${dir_prefix[$f]}" <<<"$before" || true)
    others_after=$(grep -v "${dir_prefix[$f]}" <<<"$after" || true)
    check "$f ($round round) left the other platforms' entries untouched" [ "$others_before" == "$others_after" ]
  done
done
for f in "${flavors[@]}"; do
  d=$(platform_dir "$root" "$f") || d=
  check "$f has its own platform directory ${d##*/} with one entry" \
    [ -n "$d" -a "$(find "${d:-/nonexistent}" -name '*.rxdb' 2>/dev/null | wc -l)" == 1 ]
done

echo "cross-cache: 2. regexctl prewarm / scan / verify of rules/sample.rules, same root"
reference=$(scan default "")  # x86_64 Hyperscan, no cache
check "reference scan (default flavor, no cache) found matches" grep -q '"matches":\["' <<<"$reference"
for f in "${flavors[@]}"; do
  out=$(rx "$f" prewarm --rules rules/sample.rules --cache "$root" 2>"$work/err") \
    && [[ $out == *"rules/sample.rules: compiled"* ]] && ok "$f: prewarm compiled its own entry" \
    || fail "$f: prewarm: $out $(head -n 3 "$work/err")"
done
for f in "${flavors[@]}"; do
  out=$(rx "$f" prewarm --rules rules/sample.rules --cache "$root" 2>"$work/err") \
    && [[ $out == *"rules/sample.rules: hit"* ]] && ok "$f: prewarm again loads its entry from the cache" \
    || fail "$f: second prewarm: $out $(head -n 3 "$work/err")"
  got=$(scan "$f" "$root")
  check "$f: scan through the shared root equals the reference, ${#messages[@]} messages" [ "$got" == "$reference" ]
  [[ $got == "$reference" ]] || diff <(echo "$reference") <(echo "$got") | head -n 5
  out=$(rx "$f" verify "$root" 2>&1) || true
  check "$f: verify: 6 entries, 0 corrupt on this platform" grep -q '^6 entries checked, 0 corrupt on this platform' <<<"$out"
  check "$f: verify lists the other platforms' entries as ok" [ "$(grep -c '^ok .*(other platform)$' <<<"$out")" == 4 ]
done

echo "cross-cache: 3. an arm64 entry planted where x86_64 Vectorscan looks"
vs_dir=$(platform_dir "$root" vectorscan-x86)
arm_dir=$(platform_dir "$root" arm64)
vs_entry=$(entry_named "$vs_dir" rules/sample.rules) || vs_entry=
arm_entry=$(entry_named "$arm_dir" rules/sample.rules) || arm_entry=
if [[ -z $vs_entry || -z $arm_entry ]]; then
  fail "sample.rules entries not found in $vs_dir / $arm_dir"
else
  cp "$arm_entry" "$vs_entry"  # under the x86 entry's own file name
  arm_sum=$(sha256sum <"$arm_entry")
  spy=$PWD/build/vectorscan-x86/tests/libhs_call_spy.so
  : >"$work/spy-planted"
  got=$(LD_PRELOAD=$spy REGEXD_HS_SPY_LOG=$work/spy-planted scan vectorscan-x86 "$root" 2>"$work/err-planted") || true
  check "planted: answers still equal the reference" [ "$got" == "$reference" ]
  check "planted: refused on regexd's tags, reason names the architecture" \
    grep -q 'not usable here (built for architecture aarch64, this is x86_64); recompiling' "$work/err-planted"
  check "planted: no deserialization call reached Vectorscan" \
    [ "$(grep -c deserialize "$work/spy-planted" || true)" == 0 ]
  # The only reader calls are the new entry's own (encode records
  # hs_serialized_database_info of each database it writes): one per database.
  ndb=$(rx default inspect --json "$vs_entry" | grep -c '"[a-z0-9]*_db_info": "[^"]')
  check "planted: Vectorscan saw only the $ndb databases of the fresh x86 entry, none of the arm64 bytes" \
    [ "$(grep -c -v '^hs_compile' "$work/spy-planted" || true)" == "$ndb" ]
  check "planted: the slot holds a fresh x86_64 entry again" \
    grep -q '"arch": "x86_64"' <(rx default inspect --json "$vs_entry")
  check "planted: the arm64 directory's entry is unchanged" [ "$(sha256sum <"$arm_entry")" == "$arm_sum" ]
  # Control: the shim does see the calls when an entry is loaded.
  : >"$work/spy-hit"
  LD_PRELOAD=$spy REGEXD_HS_SPY_LOG=$work/spy-hit scan vectorscan-x86 "$root" >/dev/null 2>&1 || true
  check "control: loading the valid x86 entry makes $ndb deserialization calls the shim sees" \
    [ "$(grep -c '^hs_deserialize_database$' "$work/spy-hit" || true)" == "$ndb" ]
fi

echo "cross-cache: 4. restore a root on the other architecture"
# restore FROM TO: a root made by FROM only, copied as a backup would be, used by TO.
restore() {
  local from=$1 to=$2 src=$work/made-by-$1 dst=$work/restored-on-$2 out
  rx "$from" prewarm --rules rules/sample.rules --cache "$src" >/dev/null 2>&1 || { fail "$from: prewarm into $src"; return; }
  cp -a "$src" "$dst"
  out=$(scan "$to" "$dst" 2>"$work/err-restore")
  check "$from -> $to: answers equal the reference" [ "$out" == "$reference" ]
  check "$from -> $to: exactly one info line, naming the foreign entries" \
    [ "$(grep -c '^regexd cache info:' "$work/err-restore")" == 1 -a \
      "$(grep -c "ignoring 1 entries of other platforms (${dir_prefix[$from]}" "$work/err-restore")" == 1 ]
  check "$from -> $to: no warning or error logged" [ "$(grep -c -E 'warning|error' "$work/err-restore" || true)" == 0 ]
  out=$(rx "$to" prewarm --rules rules/sample.rules --cache "$dst" 2>/dev/null) || true
  check "$from -> $to: its own entry was saved and now loads" grep -q 'rules/sample.rules: hit' <<<"$out"
  check "$from -> $to: the foreign entry is still there" [ "$(entry_sums "$src")" == "$(entry_sums "$dst" | grep "${dir_prefix[$from]}")" ]
  out=$(rx "$to" prune "$dst" --foreign 2>/dev/null) || true
  check "$from -> $to: prune --foreign removes the foreign directory" \
    [ -z "$(platform_dir "$dst" "$from")" -a -n "$(platform_dir "$dst" "$to")" ]
  check "$from -> $to: after prune nothing foreign is left to mention" \
    [ -z "$(rx "$to" prewarm --rules rules/sample.rules --cache "$dst" 2>&1 >/dev/null)" ]
}
restore arm64 default
restore default arm64

echo "cross-cache: 5. the daemon on a restored root"
# daemon_restore FROM TO: regexd of flavor TO started on a copy of the root
# made by FROM in step 4 (still unpruned there).
# The rules that hit, per file: `query` (daemon) prints hits but no matches
# list, and may count differently; which rules hit must be the same.
hit_names() { grep -o '"hits":{[^}]*}' | sed 's/:[0-9][0-9]*//g'; }
daemon_restore() {
  local from=$1 to=$2 dst=$work/daemon-on-$2 sock=$work/d-$2.sock log=$work/daemon-$2.log pid out i
  cp -a "$work/made-by-$from" "$dst"
  "build/$to/run-regexd" --socket "$sock" --cache "$dst" --rules rules/sample.rules --name mail \
    --log-level info 2>"$log" &
  pid=$!
  # Its own entry is missing: it answers with PCRE2 at once and swaps in the
  # Vectorscan/Hyperscan build when ready; wait for that (qemu is slow).
  for ((i = 0; i < 600; i++)); do grep -q 'Hyperscan build ready' "$log" && break; sleep 0.2; done
  out=$(rx "$to" query --socket "$sock" --ruleset mail --class body "${messages[@]}" 2>&1 | hit_names) || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || true
  check "daemon $to on a root from $from: Hyperscan build ready" grep -q 'Hyperscan build ready' "$log"
  check "daemon $to on a root from $from: answers equal the reference" [ "$out" == "$(hit_names <<<"$reference")" ]
  check "daemon $to on a root from $from: exactly one line about the foreign entries" \
    [ "$(grep -c 'entries of other platforms' "$log")" == 1 -a \
      "$(grep -c "ignoring 1 entries of other platforms (${dir_prefix[$from]}" "$log")" == 1 ]
  check "daemon $to on a root from $from: saved its own entry, left the foreign one" \
    [ -n "$(platform_dir "$dst" "$to")" -a "$(entry_sums "$work/made-by-$from")" == "$(entry_sums "$dst" | grep "${dir_prefix[$from]}")" ]
}
daemon_restore arm64 default
daemon_restore default arm64

step6

echo "cross-cache: $passed passed, $failed failed"
((failed == 0))
