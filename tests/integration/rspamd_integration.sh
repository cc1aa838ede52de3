#!/usr/bin/env bash
# Integration test: Debian's Rspamd (3.4) + clients/rspamd/regexd.lua + the real regexd daemon.
#
# Starts regexd on a temporary Unix socket with a test rule set, starts Rspamd with its own
# minimal configuration in a temporary directory (Unix sockets only, no DNS, no Redis, no
# system-wide files), feeds messages with rspamc and checks the symbols; then pushes a changed
# rule set through the plugin's rules_file (LOAD_RULES) and checks that the next message sees it;
# then checks that with regexd stopped, or hung, messages are still processed quickly; then restarts
# both on a small SpamAssassin rule set read by the plugin's spamassassin_rules (symbols and scores
# from the .cf, a scored meta rule, buffers built as SpamAssassin builds them, REGEXD_OTHER_N).
#
# Usage: rspamd_integration.sh REGEXD_BINARY SOURCE_DIR CORPUS_DIR
# Env:   RSPAMD_HS_CACHE  directory where Rspamd may keep its own Hyperscan cache between runs
#                         (its URL/TLD database takes ~15 s to compile); default: the temp dir.
set -euo pipefail

die() { echo "rspamd_integration: FAIL: $*" >&2; exit 1; }
log() { echo "rspamd_integration: $*"; }

[[ $# -eq 3 ]] || die "usage: $0 REGEXD_BINARY SOURCE_DIR CORPUS_DIR"
regexd_bin=$1 src=$2 corpus=$3
[[ -x $regexd_bin ]] || die "regexd binary not found or not executable: $regexd_bin"
[[ -f $src/clients/rspamd/regexd.lua ]] || die "plugin not found: $src/clients/rspamd/regexd.lua"
for tool in rspamd rspamc python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup-deps.sh --test installs it)"
done
spam_msg=$corpus/messages/spam-1/00001.7848dde101aa985090474a91ec93fcf0
ham_msg=$corpus/messages/easy-ham-1/00001.7c53336b37003a9286aba55d2945844c
[[ -f $spam_msg && -f $ham_msg ]] || die "corpus messages missing under '$corpus' (run scripts/fetch-corpus.sh)"

started=$(date +%s)
tmp=$(mktemp -d /tmp/regexd-rspamd-it.XXXXXX)
regexd_pid= rspamd_pid= hole_pid=
stop_pid() { # pid: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop_pid "$hole_pid"; stop_pid "$rspamd_pid"; stop_pid "$regexd_pid"
  if [[ $rc -ne 0 ]]; then
    echo "---- regexd log (tail) ----" >&2; tail -n 30 "$tmp/regexd.log" 2>/dev/null >&2 || true
    echo "---- rspamd log (regexd lines, errors) ----" >&2
    grep -E 'regexd|error|lua' "$tmp/log/rspamd.log" 2>/dev/null | tail -n 40 >&2 || true
    tail -n 10 "$tmp/rspamd.out" 2>/dev/null >&2 || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp"/{db,run,log,cache,msgs}
hs_cache=${RSPAMD_HS_CACHE:-$tmp/db}
mkdir -p "$hs_cache"
sock=$tmp/regexd.sock

# ---------------------------------------------------------------------------------------------
# The rule set: the bundled sample rules plus rules aimed at the plugin's extraction of each class
# (checked against two messages of the pinned SpamAssassin corpus and a crafted one).
itest_rules() {
  cat "$src/rules/sample.rules"
  cat <<'EOF'
# rspamd_integration: one rule per class the plugin extracts
ITEST_SUBJECT      header:Subject    /^Life Insurance - Why Pay More\?$/
ITEST_FROM_ADDR    header:From:addr  /^kre@munnari\.oz\.au$/i
ITEST_FROM_NAME    header:From:name  /^Robert Elz$/
ITEST_ALL_HEADERS  header:ALL        /^Delivered-To: zzzz@localhost\.spamassassin\.taint\.org$/m
ITEST_QP_DECODED   rawbody           /content="text\/html; charset=windows-1252"/i
ITEST_BODY_TAGS    body              /<center>/i
ITEST_BODY_TEXT    body              /Save up to 70% on Life Insurance/
ITEST_BODY_SUBJECT body              /^Life Insurance - Why Pay More\?$/
ITEST_FULL_RAW     full              /charset=3Dwindows-1252/
EOF
}
itest_rules >"$tmp/itest.rules"
# regexd's own copy: the plugin pushes itest.rules, which regexd must not watch too (its reload
# would race the plugin's push).
itest_rules >"$tmp/itest.orig.rules"

# The changed rule set pushed at run time: a new rule, and the header:From:* classes dropped (the
# plugin must notice that the rule set lost classes and not fail the next message).
pushed_rules() {
  itest_rules | grep -v -e '^ITEST_FROM_ADDR' -e '^ITEST_FROM_NAME'
  echo 'ITEST_PUSHED       body              /international\s+lottery/i'
}

# A crafted message: encoded-word Subject, base64 text part, HTML part, a shortener URL.
b64() { printf '%s' "$1" | base64 -w0; }
cat >"$tmp/msgs/crafted.eml" <<EOF
From: "Crafted Sender" <crafted@example.org>
To: someone@example.org
Subject: =?UTF-8?B?$(b64 'Win $5000 today')?=
Date: Mon, 23 Nov 2026 09:00:00 +0000
Message-ID: <crafted-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

$(b64 'Get your free   cash now at https://tinyurl.com/abc123 today.')
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><body><p>Please <b>click</b> here =E2=80=94 free gift inside</p></body></html>
--b1--
EOF

# ---------------------------------------------------------------------------------------------
start_regexd() { # RULES-FILE: regexd with that file as rule set "itest"; sets regexd_pid
  "$regexd_bin" --socket "$sock" --cache "$tmp/cache" \
    --rules "$1" --format native --name itest >>"$tmp/regexd.log" 2>&1 &
  regexd_pid=$!
  for _ in $(seq 300); do
    kill -0 "$regexd_pid" 2>/dev/null || die "regexd exited during start-up: $(tail -n 3 "$tmp/regexd.log")"
    [[ -S $sock ]] && socket_accepts "$sock" && break
    sleep 0.1
  done
  socket_accepts "$sock" || die "regexd does not accept connections on $sock after 30 s"
}
socket_accepts() { # PATH [HTTP-PATH]: connects; with HTTP-PATH, GETs it and wants a 200 answer
  python3 - "$@" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect(sys.argv[1])
    if len(sys.argv) > 2:
        s.sendall(b"GET " + sys.argv[2].encode() + b" HTTP/1.0\r\n\r\n")
        if not s.recv(64).startswith(b"HTTP/1.1 200"):
            sys.exit(1)
except OSError:
    sys.exit(1)
EOF
}
log "starting regexd ($regexd_bin)"
start_regexd "$tmp/itest.orig.rules"

# ---------------------------------------------------------------------------------------------
# Rspamd: a standalone configuration (not /etc/rspamd), only the regexd plugin, Unix sockets only,
# DNS pointed at a closed local port.
mkdir -p "$tmp/override.d"
cat >"$tmp/override.d/regexd.conf" <<EOF
socket = "$sock";
ruleset = "itest";
timeout = 1s;
classes = ["body", "rawbody", "full", "url", "header:Subject", "header:From:addr", "header:From:name",
           "header:ALL"];
rules_file = "$tmp/itest.rules";
rules_format = "native";
push_retry = 1;
max_frame = 262144;        # small, so that a 400 KB message must be cut to fit (see big.eml below)
spamassassin_rules = [];   # the sample configuration's SpamAssassin symbols are not wanted here
symbols {
  FREE_MONEY = 3.0; LOTTERY_WINNER = 2.0; CLICK_HERE = 0.5; REPEATED_WORD = 0.1; PRICE_EURO = 0.1;
  UNSUBSCRIBE_LINK = 0.1; SHORTENER = 1.0; SUBJECT_ALLCAPS = 1.0; SUBJECT_MONEY = 1.0;
  ITEST_SUBJECT = 0.1; ITEST_FROM_ADDR = 0.1; ITEST_FROM_NAME = 0.1; ITEST_ALL_HEADERS = 0.1;
  ITEST_QP_DECODED = 0.1; ITEST_BODY_TAGS = 0.1; ITEST_BODY_TEXT = 0.1; ITEST_FULL_RAW = 0.1;
  ITEST_BODY_SUBJECT = 0.1;
  ITEST_PUSHED { score = 4.2; description = "pushed at run time"; }
}
# URGENT_REPLY is deliberately not listed: it must appear as an option of REGEXD_OTHER.
EOF
write_rspamd_conf() { # OVERRIDE-FILE: $tmp/rspamd.conf with the plugin's settings from it
cat >"$tmp/rspamd.conf" <<EOF
options {
  pidfile = "$tmp/run/rspamd.pid";
  filters = "";
  dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }
  cache_file = "$tmp/db/symbols.cache";
  hs_cache_dir = "$hs_cache";
  history_file = "$tmp/db/rspamd.history";
  stats_file = "$tmp/db/stats.ucl";
  control_socket = "$tmp/run/control.sock mode=0600";
  url_tld = "/usr/share/rspamd/effective_tld_names.dat";
  map_watch_interval = 2s;   # file maps (rules_file) are checked every 0.2 s
  task_timeout = 10s;
  tempdir = "$tmp";
}
logging { type = "file"; filename = "$tmp/log/rspamd.log"; level = "info"; }
worker "normal" { bind_socket = "$tmp/run/normal.sock mode=0600"; count = 1; }
worker "controller" { bind_socket = "$tmp/run/controller.sock mode=0600"; count = 1; password = "itest"; }
actions { reject = 100; add_header = 50; greylist = 40; }
modules { path = "$src/clients/rspamd/regexd.lua"; }
regexd {
  .include(priority=1) "$src/clients/rspamd/local.d/regexd.conf"
  .include(priority=10) "$1"
}
EOF
}
write_rspamd_conf "$tmp/override.d/regexd.conf"

log "starting rspamd $(rspamd --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1)"
start_rspamd() { # sets rspamd_pid
  rspamd -f -c "$tmp/rspamd.conf" -u "$(id -un)" -g "$(id -gn)" -i \
    --var DBDIR="$tmp/db" --var RUNDIR="$tmp/run" --var LOGDIR="$tmp/log" >"$tmp/rspamd.out" 2>&1 &
  rspamd_pid=$!
}
start_rspamd
push_count() { grep -c "regexd: pushed rule set itest version" "$tmp/log/rspamd.log" 2>/dev/null || true; }
for _ in $(seq 900); do
  kill -0 "$rspamd_pid" 2>/dev/null || die "rspamd exited during start-up: $(tail -n 3 "$tmp/rspamd.out")"
  if socket_accepts "$tmp/run/normal.sock" /ping && [[ $(push_count) -ge 1 ]]; then
    break
  fi
  sleep 0.1
done
socket_accepts "$tmp/run/normal.sock" /ping ||
  die "rspamd does not answer on $tmp/run/normal.sock after 90 s"
[[ $(push_count) -ge 1 ]] || die "the plugin did not push rules_file with LOAD_RULES at start-up"
log "rspamd ready after $(($(date +%s) - started)) s; start-up push: $(grep -o 'pushed rule set itest version.*' "$tmp/log/rspamd.log" | head -1)"
if grep -E 'regexd: .*(configuration errors|unknown class|unknown header modifier)' "$tmp/log/rspamd.log"; then
  die "the plugin reported configuration errors"
fi

# ---------------------------------------------------------------------------------------------
# scan FILE: rspamc's symbols as "NAME" lines and "NAME=opt1,opt2" lines, sorted, in $tmp/out;
# prints the elapsed milliseconds.
scan() {
  local t0 t1
  t0=$(date +%s%N)
  rspamc -j -t 20 -h "$tmp/run/normal.sock" "$1" >"$tmp/out.json" || die "rspamc failed on $1"
  t1=$(date +%s%N)
  python3 - "$tmp/out.json" >"$tmp/out" <<'EOF' || die "rspamc output is not the expected JSON: $(head -c 300 "$tmp/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
syms = d["symbols"]
for name in sorted(syms):
    print(name)
    print(name + "=" + ",".join(syms[name].get("options", [])))
    print("%s@%.4g" % (name, syms[name].get("score", 0)))
EOF
  echo $(((t1 - t0) / 1000000))
}
# expect NAME LIST...: the symbols of the last scan are exactly LIST (names, any order)
expect() {
  local what=$1; shift
  local want got
  want=$(printf '%s\n' "$@" | sort)
  got=$(grep -v -e = -e @ "$tmp/out" || true)
  [[ $want == "$got" ]] || die "$what: symbols differ
  expected: $(echo $want)
  got:      $(echo $got)
  diff (< expected, > got): $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"
}
expect_option() { # NAME=OPTIONS of the last scan
  grep -qxF "$1" "$tmp/out" || die "expected symbol with options '$1', got: $(grep = "$tmp/out" | tr '\n' ' ')"
}
expect_score() { # NAME@SCORE of the last scan
  grep -qxF "$1" "$tmp/out" || die "expected symbol with score '$1', got: $(grep @ "$tmp/out" | tr '\n' ' ')"
}

log "scanning rules/sample-message.eml"
scan "$src/rules/sample-message.eml" >/dev/null
expect "sample-message.eml" CLICK_HERE FREE_MONEY LOTTERY_WINNER PRICE_EURO REPEATED_WORD SHORTENER \
  SUBJECT_ALLCAPS UNSUBSCRIBE_LINK REGEXD_OTHER
expect_option "REGEXD_OTHER=URGENT_REPLY"
expect_option "REPEATED_WORD=1"

log "scanning corpus spam-1/00001 (quoted-printable HTML)"
scan "$spam_msg" >/dev/null
expect "spam-1/00001" CLICK_HERE ITEST_SUBJECT ITEST_ALL_HEADERS ITEST_QP_DECODED ITEST_BODY_TEXT ITEST_FULL_RAW \
  ITEST_BODY_SUBJECT

log "scanning corpus easy-ham-1/00001"
scan "$ham_msg" >/dev/null
expect "easy-ham-1/00001" ITEST_FROM_ADDR ITEST_FROM_NAME

log "scanning a crafted message (encoded Subject, base64 and HTML parts, shortener URL)"
scan "$tmp/msgs/crafted.eml" >/dev/null
expect "crafted.eml" SUBJECT_MONEY FREE_MONEY CLICK_HERE SHORTENER

log "scanning a 400 KB message (over the plugin's max_frame of 256 KiB: cut to fit, not skipped)"
{ cat "$src/rules/sample-message.eml"; for i in $(seq 10000); do echo "filler line $i of a long message body"; done; } \
  >"$tmp/msgs/big.eml"
scan "$tmp/msgs/big.eml" >/dev/null
expect "big.eml" CLICK_HERE FREE_MONEY LOTTERY_WINNER PRICE_EURO REPEATED_WORD SHORTENER SUBJECT_ALLCAPS \
  UNSUBSCRIBE_LINK REGEXD_OTHER
grep -q "regexd: large message: classes .*full.* cut to fit" "$tmp/log/rspamd.log" ||
  die "no log line about the classes cut from big.eml"

# ---------------------------------------------------------------------------------------------
log "changing rules_file at run time"
before=$(push_count)
pushed_rules >"$tmp/itest.rules.new"
mv "$tmp/itest.rules.new" "$tmp/itest.rules"
for _ in $(seq 150); do [[ $(push_count) -gt $before ]] && break; sleep 0.1; done
[[ $(push_count) -gt $before ]] || die "the plugin did not push the changed rules_file within 15 s"
log "$(grep -o 'pushed rule set itest version.*' "$tmp/log/rspamd.log" | tail -1)"

# The worker still believes the rule set has header:From:* classes: regexd answers UNKNOWN_CLASS,
# the plugin must refresh the class list and scan again, without REGEXD_FAIL.
scan "$ham_msg" >/dev/null
expect "easy-ham-1/00001 after the push (header:From classes gone)"  # nothing at all
grep -q "regexd: error 5 UNKNOWN_CLASS.*scanning again" "$tmp/log/rspamd.log" ||
  die "the plugin did not go through the UNKNOWN_CLASS refresh after the push"
scan "$src/rules/sample-message.eml" >/dev/null
expect "sample-message.eml after the push" CLICK_HERE FREE_MONEY LOTTERY_WINNER PRICE_EURO REPEATED_WORD \
  SHORTENER SUBJECT_ALLCAPS UNSUBSCRIBE_LINK REGEXD_OTHER ITEST_PUSHED
expect_option "ITEST_PUSHED=1"

# ---------------------------------------------------------------------------------------------
# regexd keeps pushed rule sets in memory only: restarted on the rules it started with, it must get
# the pushed ones back from the plugin (periodic LIST_RULESETS check, "origin": "config").
log "restarting regexd on its original rules"
stop_pid "$regexd_pid"; regexd_pid=
before=$(push_count)
start_regexd "$tmp/itest.orig.rules"
for _ in $(seq 150); do [[ $(push_count) -gt $before ]] && break; sleep 0.1; done
[[ $(push_count) -gt $before ]] || die "the plugin did not push rules_file again within 15 s of a regexd restart"
grep -q "regexd: rule set itest version 1 was installed by regexd's config; pushing .* again" \
  "$tmp/log/rspamd.log" || die "the plugin's log does not say why it pushed again"
log "$(grep -o 'pushed rule set itest version.*' "$tmp/log/rspamd.log" | tail -1)"
scan "$src/rules/sample-message.eml" >/dev/null
expect "sample-message.eml after a regexd restart" CLICK_HERE FREE_MONEY LOTTERY_WINNER PRICE_EURO \
  REPEATED_WORD SHORTENER SUBJECT_ALLCAPS UNSUBSCRIBE_LINK REGEXD_OTHER ITEST_PUSHED

# ---------------------------------------------------------------------------------------------
log "stopping regexd"
stop_pid "$regexd_pid"; regexd_pid=
[[ ! -e $sock ]] || die "regexd left its socket file behind after SIGTERM"
ms=$(scan "$src/rules/sample-message.eml")
expect "sample-message.eml with regexd stopped" REGEXD_FAIL
expect_option "REGEXD_FAIL=io"
((ms < 3000)) || die "with regexd stopped a message took $ms ms"
log "regexd down: message processed in $ms ms, REGEXD_FAIL(io)"
# Every message fails while regexd is down, but the log gets one line per reason per minute.
io_lines=$(grep -c "regexd: io: " "$tmp/log/rspamd.log" || true)
for _ in 1 2 3; do
  scan "$src/rules/sample-message.eml" >/dev/null
  expect "sample-message.eml with regexd stopped (again)" REGEXD_FAIL
done
[[ $(grep -c "regexd: io: " "$tmp/log/rspamd.log" || true) -eq $io_lines ]] ||
  die "3 more failed messages logged $(( $(grep -c "regexd: io: " "$tmp/log/rspamd.log") - io_lines )) more io lines (want 0 within a minute)"

log "regexd hung: a socket that accepts and never answers"
python3 - "$sock" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(16)
held = []
while True:
    c, _ = s.accept(); held.append(c)
EOF
hole_pid=$!
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
ms=$(scan "$src/rules/sample-message.eml")
expect "sample-message.eml with regexd hung" REGEXD_FAIL
expect_option "REGEXD_FAIL=io"
((ms >= 900 && ms < 5000)) || die "with regexd hung a message took $ms ms (timeout is 1 s)"
log "regexd hung: message processed in $ms ms, REGEXD_FAIL(io)"

stop_pid "$hole_pid"; hole_pid=

# ---------------------------------------------------------------------------------------------
# SpamAssassin rules through the plugin: symbols and scores read from the .cf file (option
# spamassassin_rules), a meta rule scored by SpamAssassin's score line, and the buffers built as
# SpamAssassin builds them (rendered body lines, mailto URIs, one joined value per header,
# [if-unset: ...] for an absent header); `__` rules as options of REGEXD_OTHER, REGEXD_OTHER_2.
log "SpamAssassin rules: restarting regexd and rspamd with spamassassin_rules"
cat >"$tmp/itest.cf" <<'EOF'
body     __ITEST_LOTTERY   /international lottery/i
body     __ITEST_MONEY     /free money/i
meta     ITEST_META        __ITEST_LOTTERY && __ITEST_MONEY
score    ITEST_META        3.5
describe ITEST_META        Lottery and free money
uri      ITEST_MAILTO      /^mailto:claims\@example\.net$/i
score    ITEST_MAILTO      0.7 0.7 0.7 0.7
body     ITEST_LINE        /^Dear friend,$/
score    ITEST_LINE        0.3
header   ITEST_NO_REFS     References =~ /^UNSET$/ [if-unset: UNSET]
score    ITEST_NO_REFS     0.4
header   ITEST_RCVD_FIRST  Received =~ /^from first\.example\.org/
score    ITEST_RCVD_FIRST  0.2
header   ITEST_RCVD_SECOND Received =~ /^from second\.example\.org/
score    ITEST_RCVD_SECOND 0.2
header   ITEST_TO_ADDRS    To:addr =~ /^one\@example\.org\ntwo\@example\.org$/
score    ITEST_TO_ADDRS    0.6
body     ITEST_DEFAULT     /claim your/i
body     T_ITEST_TESTING   /claim your/i
body     ITEST_NICE        /claim your/i
tflags   ITEST_NICE        nice
body     ITEST_ZERO        /claim your/i        # score 0: SpamAssassin (and regexd) do not run it
score    ITEST_ZERO        0
EOF
for i in $(seq -w 1 150); do printf 'body __ITEST_ANY_%s /./\n' "$i"; done >>"$tmp/itest.cf"
cat >"$tmp/msgs/sa.eml" <<'EOF'
Received: from first.example.org by mx.example.org; Mon, 23 Nov 2026 09:00:02 +0000
Received: from second.example.org by first.example.org; Mon, 23 Nov 2026 09:00:01 +0000
From: Claims <claims@example.net>
To: one@example.org, "Two" <two@example.org>
Subject: Your prize
Date: Mon, 23 Nov 2026 09:00:00 +0000
Message-ID: <sa-1@example.net>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><body><p>Dear friend,</p><p>you won the international
lottery: free money! <a href="mailto:claims@example.net?subject=claim">Claim your prize</a></p></body></html>
EOF
stop_pid "$rspamd_pid"; rspamd_pid=
rm -f "$sock"
"$regexd_bin" --socket "$sock" --cache "$tmp/cache" --rules "$tmp/itest.cf" --format spamassassin \
  --name itest_sa >>"$tmp/regexd.log" 2>&1 &
regexd_pid=$!
for _ in $(seq 300); do [[ -S $sock ]] && socket_accepts "$sock" && break; sleep 0.1; done
socket_accepts "$sock" || die "regexd (SpamAssassin rules) does not accept connections on $sock"
cat >"$tmp/override.d/regexd_sa.conf" <<EOF
socket = "$sock";
ruleset = "itest_sa";
timeout = 2s;
classes = ["*"];
spamassassin_rules = ["$tmp/itest*.cf"];
symbols { ITEST_LINE = 0.35; }
EOF
write_rspamd_conf "$tmp/override.d/regexd_sa.conf"
: >"$tmp/log/rspamd.log"
start_rspamd
for _ in $(seq 900); do
  kill -0 "$rspamd_pid" 2>/dev/null || die "rspamd exited during start-up: $(tail -n 3 "$tmp/rspamd.out")"
  socket_accepts "$tmp/run/normal.sock" /ping && break
  sleep 0.1
done
grep -q "regexd: 10 SpamAssassin rules with a score in set 0 from 1 files" "$tmp/log/rspamd.log" ||
  die "the plugin did not read the scores of $tmp/itest.cf: $(grep -o 'regexd: .*SpamAssassin rules.*' "$tmp/log/rspamd.log")"
# Capabilities in regexd's greeting: bit 2 (SpamAssassin meta rules, the MESSAGE flag).
caps=$(python3 - "$sock" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(5); s.connect(sys.argv[1])
b = b""
while len(b) < 22:
    c = s.recv(64)
    if not c: break
    b += c
print(struct.unpack_from("<I", b, 18)[0] if len(b) >= 22 else 0)
EOF
)
(((caps & 4) != 0)) || die "regexd's greeting lacks capability bit 2 (metas, MESSAGE): capabilities $caps"
scan "$tmp/msgs/sa.eml" >/dev/null
# ITEST_META: a meta rule whose score comes from the .cf; ITEST_NO_REFS: [if-unset: UNSET] on the absent
# References header, which regexd applies because the plugin sends the MESSAGE flag
expect "sa.eml" ITEST_META ITEST_MAILTO ITEST_LINE ITEST_NO_REFS ITEST_RCVD_FIRST ITEST_TO_ADDRS ITEST_DEFAULT \
  T_ITEST_TESTING ITEST_NICE REGEXD_OTHER REGEXD_OTHER_2
expect_score "ITEST_META@3.5"
expect_score "ITEST_NO_REFS@0.4"
expect_score "ITEST_MAILTO@0.7"
expect_score "ITEST_LINE@0.35"       # symbols {} overrides the .cf score
expect_score "ITEST_DEFAULT@1"       # no score line: SpamAssassin's default
expect_score "T_ITEST_TESTING@0.01"
expect_score "ITEST_NICE@-1"
# every rule without a symbol of its own is an option of REGEXD_OTHER or REGEXD_OTHER_2 (Rspamd
# keeps fewer than 100 options per symbol)
# (ITEST_ZERO has score 0: neither SpamAssassin nor regexd runs it)
others=$(grep -E '^REGEXD_OTHER(_[0-9]+)?=' "$tmp/out" | cut -d= -f2 | tr ',' '\n' | sort)
want_others=$( (printf '__ITEST_ANY_%s\n' $(seq -w 1 150); echo __ITEST_LOTTERY; echo __ITEST_MONEY) | sort)
[[ $others == "$want_others" ]] || die "REGEXD_OTHER options differ: $(diff <(echo "$want_others") <(echo "$others") | grep '^[<>]' | head -5 | tr '\n' ' ')"
log "SpamAssassin rules: symbols and scores from the .cf, meta ITEST_META scored 3.5, [if-unset], mailto URI, rendered line, joined Received and To:addr, 152 rules in REGEXD_OTHER*"
stop_pid "$rspamd_pid"; rspamd_pid=
stop_pid "$regexd_pid"; regexd_pid=
log "PASS in $(($(date +%s) - started)) s"
