#!/usr/bin/env bash
# Speed through real Rspamd (issue 12): the same N corpus messages, in one run, through
#   base    Rspamd with neither the spamassassin module nor regexd (the baseline)
#   sa_hs   Rspamd's spamassassin module on SpamAssassin's rules, Hyperscan on
#   sa_nohs the same with options.disable_hyperscan (what an ARM64 build without Vectorscan runs)
#   regexd  the regexd plugin (clients/rspamd/regexd.lua, classes = ["*"], spamassassin_rules: every
#           public rule and meta as a symbol) and the regexd daemon on the same .cf files
# Debian's Rspamd 3.4, each set-up its own private instance (configuration in a temp dir, not
# /etc/rspamd; Unix sockets only; DNS at a closed local port; no Redis; one normal worker), all four
# running at once and measured in interleaved rounds, so machine noise hits every set-up alike.
#
# "Regex share per message", several ways:
#   (a) wall time per message minus the base set-up's, same messages, same round (the client sends
#       one message at a time and waits for the answer; so it is everything the module or the plugin
#       adds: for regexd the buffer building in Lua, the socket round trip, the scan and the metas);
#   (b) Rspamd's own per-symbol timings (controller /counters: each symbol's average time per run,
#       over the tasks Rspamd 3.4 profiles by itself, ~1% of them plus one a minute; the `Profile`
#       request header does not make it time a task): the sum over the symbols the set-up adds to the
#       base (SA module: one per rule and meta; the regexp cache's Hyperscan scans run inside the
#       first symbol that asks), for regexd REGEXD_CHECK (its callback: building the buffers in Lua,
#       the request, waiting for the answer, inserting the symbols). Printed, but too few tasks are
#       profiled (the worker's cold first one among them) for a verdict;
#   (c) CPU time per message (/proc/PID/task/*/schedstat: the worker, and the regexd daemon) minus the
#       base worker's: the least sensitive to the load of a shared machine.
#   (a') Rspamd's own task time (the reply's time_real) minus the base's: (a) without the HTTP
#       exchange with the client.
#
# Warm: Rspamd's Hyperscan caches live under RSPAMD_SA_SPEED_HS (default ~/.cache/regexd/rspamd-sa-speed-hs,
# one dir per configuration; the first run compiles SpamAssassin's rules there: 4-17 minutes on this
# machine, depending on its load); timing starts only once the worker logged
# that it loaded its Hyperscan database. regexd: `regexd --prewarm` into REGEXD_SA_SPEED_CACHE (default
# ~/.cache/regexd/rspamd-sa-speed), then timing starts only once `regexctl stats` says state hyperscan.
# Each set-up first scans every message once untimed.
#
# usage: bench/rspamd_sa_speed.sh [N]     N messages (default 400, scripts/corpus-sample.sh)
# env:   REGEXD_BIN, REGEXCTL_BIN   default build/speed, else build/default (server/regexd, cli/regexctl)
#        REGEXD_CORPUS_DIR          default ~/.cache/regexd/corpus
#        SA_RULES                   default /usr/share/spamassassin (its *.cf)
#        RSPAMD_SA_SPEED_ROUNDS     timed rounds (default 3); the table shows medians over rounds
#        RSPAMD_SA_SPEED_SETUPS     default "base sa_hs sa_nohs regexd"
#        RSPAMD_SA_SPEED_KEEP=1     keep the temp dir (logs, per-message times)
#        RSPAMD_SA_SPEED_JSON=FILE  also write the results as JSON
#        REGEXD_PLUGIN=FILE         another copy of regexd.lua to measure (e.g. one with timing logs)
set -euo pipefail

die() { echo "rspamd_sa_speed: error: $*" >&2; exit 1; }
log() { echo "rspamd_sa_speed: $*" >&2; }

n=${1:-400}
[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$n'"
src=$(cd "$(dirname "$0")/.." && pwd)
rounds=${RSPAMD_SA_SPEED_ROUNDS:-3}
setups=${RSPAMD_SA_SPEED_SETUPS:-base sa_hs sa_nohs regexd}
sa_rules=${SA_RULES:-/usr/share/spamassassin}
corpus=${REGEXD_CORPUS_DIR:-$HOME/.cache/regexd/corpus}
hs_cache=${RSPAMD_SA_SPEED_HS:-$HOME/.cache/regexd/rspamd-sa-speed-hs}
rx_cache=${REGEXD_SA_SPEED_CACHE:-$HOME/.cache/regexd/rspamd-sa-speed}
regexd_bin=${REGEXD_BIN:-}
if [[ -z $regexd_bin ]]; then
  for d in "$src/build/speed" "$src/build/default"; do
    [[ -x $d/server/regexd ]] && { regexd_bin=$d/server/regexd; break; }
  done
fi
[[ -n $regexd_bin && -x $regexd_bin ]] || die "no regexd binary (set REGEXD_BIN)"
regexctl_bin=${REGEXCTL_BIN:-$(dirname "$(dirname "$regexd_bin")")/cli/regexctl}
[[ -x $regexctl_bin ]] || die "no regexctl next to $regexd_bin (set REGEXCTL_BIN)"
for tool in rspamd python3; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
compgen -G "$sa_rules/*.cf" >/dev/null || die "no $sa_rules/*.cf (Debian package spamassassin)"
sa_module=/usr/share/rspamd/plugins/spamassassin.lua
plugin=${REGEXD_PLUGIN:-$src/clients/rspamd/regexd.lua}
[[ -f $plugin ]] || die "no plugin $plugin"
[[ -f $sa_module ]] || die "no $sa_module (Debian package rspamd)"

tmp=$(mktemp -d /tmp/regexd-sa-speed.XXXXXX)
regexd_pid=
declare -A rspamd_pids=()
# shellcheck source=../tests/support/rspamd_private.sh
source "$src/tests/support/rspamd_private.sh" # stop_pid, socket_accepts
cleanup() {
  local rc=$? s kids=()
  # Rspamd's main process leaves an hs_helper that is busy compiling behind: stop its children too
  for s in "${!rspamd_pids[@]}"; do
    kids+=($(pgrep -P "${rspamd_pids[$s]}" 2>/dev/null || true))
    stop_pid "${rspamd_pids[$s]}"
  done
  for s in "${kids[@]}"; do kill -KILL "$s" 2>/dev/null || true; done
  stop_pid "$regexd_pid"
  if [[ $rc -ne 0 ]]; then
    for s in $setups; do
      [[ -f $tmp/$s/log/rspamd.log ]] || continue
      echo "---- rspamd $s log (errors) ----" >&2
      grep -E 'error|lua|regexd:' "$tmp/$s/log/rspamd.log" 2>/dev/null | tail -n 10 >&2 || true
    done
    echo "---- regexd log (tail) ----" >&2; tail -n 10 "$tmp/regexd.log" 2>/dev/null >&2 || true
  fi
  if [[ ${RSPAMD_SA_SPEED_KEEP:-0} == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp" "$hs_cache" "$rx_cache"

"$src/scripts/corpus-sample.sh" "$corpus" "$n" >"$tmp/messages.txt"
n=$(wc -l <"$tmp/messages.txt")
log "$n messages, $(cat "$tmp/messages.txt" | xargs -d '\n' cat | wc -c) bytes"

# ---------------------------------------------------------------------------------------------
# regexd: SpamAssassin's rules as rule set "sa", compiled into its cache first.
sock=$tmp/regexd.sock
if [[ " $setups " == *" regexd "* ]]; then
  regexd_rules=(--cache "$rx_cache" --rules "$sa_rules"/*.cf --format spamassassin --name sa)
  t0=$(date +%s)
  "$regexd_bin" --prewarm "${regexd_rules[@]}" >"$tmp/prewarm.log" 2>&1 ||
    die "regexd --prewarm failed: $(tail -n 3 "$tmp/prewarm.log")"
  log "regexd --prewarm: $(($(date +%s) - t0)) s"
  "$regexd_bin" --socket "$sock" "${regexd_rules[@]}" >"$tmp/regexd.log" 2>&1 &
  regexd_pid=$!
  state=
  for _ in $(seq 1200); do
    kill -0 "$regexd_pid" 2>/dev/null || die "regexd exited during start-up: $(tail -n 3 "$tmp/regexd.log")"
    if [[ -S $sock ]]; then
      state=$("$regexctl_bin" stats --json --socket "$sock" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["rulesets"][0]["state"])' 2>/dev/null || true)
      [[ $state == hyperscan ]] && break
    fi
    sleep 0.5
  done
  [[ $state == hyperscan ]] || die "regexd is not scanning with Hyperscan after 600 s (state '$state')"
  log "regexd ready: state $state"
fi

# ---------------------------------------------------------------------------------------------
# Rspamd: one private instance per set-up, started one after the other (one hs_helper compiling at a
# time). Each configuration needs a Hyperscan cache dir of its own: an hs_helper deletes the files
# of classes its configuration does not have (sa_hs and sa_nohs have the same classes: they share).
write_conf() { # SETUP
  local s=$1 dir=$tmp/$1 modules extra= section=
  mkdir -p "$dir"/{db,run,log,empty} "$hs_cache/${s/#sa_*/sa}"
  case $s in
    base) modules="$dir/empty" ;;
    sa_hs | sa_nohs)
      modules=$sa_module
      section="spamassassin { ruleset = \"$sa_rules/*.cf\"; }"
      [[ $s == sa_nohs ]] && extra="disable_hyperscan = true;"
      ;;
    regexd)
      modules=$plugin
      section="regexd {
  .include(priority=1) \"$src/clients/rspamd/local.d/regexd.conf\"
  .include(priority=10) \"$dir/regexd-override.conf\"
}"
      cat >"$dir/regexd-override.conf" <<EOF
socket = "$sock";
ruleset = "sa";
timeout = 10s;
classes = ["*"];
spamassassin_rules = ["$sa_rules/*.cf"];
EOF
      ;;
    *) die "unknown set-up $s" ;;
  esac
  cat >"$dir/rspamd.conf" <<EOF
options {
  pidfile = "$dir/run/rspamd.pid";
  filters = "";
  dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }
  cache_file = "$dir/db/symbols.cache";
  hs_cache_dir = "$hs_cache/${1/#sa_*/sa}";
  history_file = "$dir/db/rspamd.history";
  stats_file = "$dir/db/stats.ucl";
  control_socket = "$dir/run/control.sock mode=0600";
  url_tld = "/usr/share/rspamd/effective_tld_names.dat";
  task_timeout = 60s;
  tempdir = "$dir";
  $extra
}
logging { type = "file"; filename = "$dir/log/rspamd.log"; level = "info"; }
worker "normal" { bind_socket = "$dir/run/normal.sock mode=0600"; count = 1; }
worker "controller" { bind_socket = "$dir/run/controller.sock mode=0600"; count = 1; password = "private"; }
actions { reject = 100000; add_header = 100000; greylist = 100000; }
modules { path = "$modules"; }
$section
EOF
}
hs_loaded='hyperscan database of [0-9]+ regexps has been loaded'
start_setup() { # SETUP: starts it and waits until its worker answers (and loaded Hyperscan, for sa_hs)
  local s=$1 dir=$tmp/$1 t0 pid
  write_conf "$s"
  t0=$(date +%s)
  rspamd -f -c "$dir/rspamd.conf" -u "$(id -un)" -g "$(id -gn)" -i \
    --var DBDIR="$dir/db" --var RUNDIR="$dir/run" --var LOGDIR="$dir/log" >"$dir/rspamd.out" 2>&1 &
  pid=$!
  rspamd_pids[$s]=$pid
  for _ in $(seq 12000); do # up to 20 min: a cold cache makes hs_helper compile SpamAssassin's rules
    kill -0 "$pid" 2>/dev/null || die "rspamd $s exited during start-up: $(tail -n 3 "$dir/rspamd.out")"
    if socket_accepts "$dir/run/normal.sock" /ping; then
      if [[ $s != sa_hs ]] || grep -Eq "$hs_loaded" "$dir/log/rspamd.log"; then
        break
      fi
    fi
    sleep 0.1
  done
  socket_accepts "$dir/run/normal.sock" /ping || die "rspamd $s does not answer after 20 min"
  [[ $s != sa_hs ]] || grep -Eq "$hs_loaded" "$dir/log/rspamd.log" ||
    die "rspamd sa_hs did not load its Hyperscan database within 20 min"
  log "rspamd $s ready after $(($(date +%s) - t0)) s$(grep -Eo "$hs_loaded" "$dir/log/rspamd.log" | tail -n 1 | sed 's/^/; /')"
}
for s in $setups; do start_setup "$s"; done
sleep 2 # let the other set-ups' hs_helpers finish their (cached) loads
for s in $setups; do
  if grep -q 'compiled class' "$tmp/$s/log/rspamd.log"; then
    log "note: rspamd $s compiled $(grep -c 'compiled class' "$tmp/$s/log/rspamd.log") Hyperscan classes at start (cold cache)"
  fi
done
if grep -q 'regexd: .*errors' "$tmp/regexd/log/rspamd.log" 2>/dev/null; then
  die "the regexd plugin reported errors: $(grep -o 'regexd: .*errors.*' "$tmp/regexd/log/rspamd.log" | head -3)"
fi

# ---------------------------------------------------------------------------------------------
# The measurement: an HTTP client on each worker's Unix socket, one message at a time.
targets=()
for s in $setups; do
  # the processes whose CPU time a message costs: the set-up's normal worker (and regexd's daemon)
  pids=$(for p in $(pgrep -P "${rspamd_pids[$s]}"); do
    if grep -q '^rspamd: normal process' "/proc/$p/cmdline" 2>/dev/null; then echo "$p"; fi; done | head -n 1)
  [[ -n $pids ]] || die "no normal worker of rspamd $s"
  [[ $s == regexd ]] && pids+=",$regexd_pid"
  targets+=("$s=$tmp/$s/run/normal.sock=$tmp/$s/run/controller.sock=$pids")
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring: $rounds rounds of $n messages per set-up (load average $load)"
python3 - "$tmp/messages.txt" "$rounds" "$tmp/results.json" "${targets[@]}" <<'EOF'
import json, os, socket, sys, time

msgs_file, rounds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
targets = [t.split("=") for t in sys.argv[4:]]  # name, worker socket, controller socket, pids
paths = [l.rstrip("\n") for l in open(msgs_file)]
msgs = [open(p, "rb").read() for p in paths]

def http(sock_path, method, path, body=b"", headers=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(sock_path)
    h = "%s %s HTTP/1.0\r\nContent-Length: %d\r\n" % (method, path, len(body))
    for k, v in (headers or {}).items():
        h += "%s: %s\r\n" % (k, v)
    s.sendall(h.encode() + b"\r\n" + body)
    chunks = []
    while True:
        c = s.recv(65536)
        if not c:
            break
        chunks.append(c)
    s.close()
    data = b"".join(chunks)
    head, _, payload = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit("bad answer from %s %s: %r" % (sock_path, path, head[:200]))
    return payload

def cpu_ns(pids):
    # CPU time (ns) of each process, all its threads (/proc/PID/task/TID/schedstat: ns on CPU)
    out = []
    for pid in pids.split(","):
        total = 0
        for tid in os.listdir("/proc/%s/task" % pid):
            try:
                total += int(open("/proc/%s/task/%s/schedstat" % (pid, tid)).read().split()[0])
            except OSError:
                pass
        out.append(total)
    return out

def scan(sock_path, msg):
    headers = {"Pass": "all"}
    t0 = time.perf_counter()
    payload = http(sock_path, "POST", "/checkv2", msg, headers)
    t1 = time.perf_counter()
    d = json.loads(payload)
    return (t1 - t0) * 1000.0, d

res = {"messages": len(msgs), "bytes": sum(map(len, msgs)), "rounds": [], "symbols": {}}
# untimed pass: every set-up sees every message once (Lua JIT, caches, lazy loads)
for name, sock, _, _ in targets:
    syms = []
    for m in msgs:
        _, d = scan(sock, m)
        syms.append(sorted(d.get("symbols", {}).keys()))
    res["symbols"][name] = syms
for r in range(rounds):
    order = targets[r % len(targets):] + targets[:r % len(targets)]
    rr = {}
    for name, sock, _, pids in order:
        c0 = cpu_ns(pids)
        t0 = time.perf_counter()
        walls, reals = [], []
        for m in msgs:
            w, d = scan(sock, m)
            walls.append(w)
            reals.append(float(d.get("time_real", "nan")) * 1000.0)
        total = time.perf_counter() - t0
        rr[name] = {"total_s": total, "wall_ms": walls, "time_real_ms": reals,
                    "cpu_ms": [(b - a) / 1e6 for a, b in zip(c0, cpu_ns(pids))]}
    res["rounds"].append(rr)
    sys.stderr.write("rspamd_sa_speed: round %d: %s\n" % (r + 1, ", ".join(
        "%s %.1f msg/s" % (k, len(msgs) / v["total_s"]) for k, v in rr.items())))
# (b) Rspamd's own per-symbol timings: the controller's /counters ("time": average ms per run over
# the tasks Rspamd profiled, about 1% of them plus one a minute; "hits" stays 0 here; the controller
# refreshes them periodically, so wait until every set-up's counters show times)
res["counters"] = {}
deadline = time.time() + 180
pending = [t for t in targets if t[0] != "base"]
while pending:
    for t in list(pending):
        name, _, ctl, _ = t
        try:
            c = json.loads(http(ctl, "GET", "/counters", b"", {"Password": "private"}))
        except SystemExit as e:
            c = []
        res["counters"][name] = c
        if any(x.get("time", 0) > 0 for x in c):
            pending.remove(t)
    if not pending or time.time() > deadline:
        break
    time.sleep(5)
for name, _, ctl, _ in targets:
    if name == "base":
        res["counters"][name] = json.loads(http(ctl, "GET", "/counters", b"", {"Password": "private"}))
if pending:
    sys.stderr.write("rspamd_sa_speed: warning: no symbol timings from Rspamd's controller for %s\n" % [t[0] for t in pending])
json.dump(res, open(out, "w"))
# every set-up must have done its work: the module's and the plugin's symbols fired
for name, _, _, _ in targets:
    if name != "base" and not any(res["symbols"][name]):
        raise SystemExit("rspamd_sa_speed: set-up %s inserted no symbol at all (see its rspamd.log)" % name)
EOF

"$regexctl_bin" stats --json --socket "$sock" >"$tmp/regexd-stats.json" 2>/dev/null || true
plugin_rev=$(git -C "$(dirname "$plugin")" log -1 --format=%h -- "$plugin" 2>/dev/null || echo '?')
git -C "$(dirname "$plugin")" diff --quiet HEAD -- "$plugin" 2>/dev/null || plugin_rev+=" + uncommitted changes"
echo "rspamd $(rspamd --version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -n 1); plugin $plugin ($plugin_rev);" \
  "regexd $regexd_bin (built $(date -u -r "$regexd_bin" +%FT%TZ), tree $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?'));" \
  "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
[[ -n ${RSPAMD_SA_SPEED_JSON:-} ]] && cp "$tmp/results.json" "$RSPAMD_SA_SPEED_JSON"

# ---------------------------------------------------------------------------------------------
python3 - "$tmp/results.json" "$load" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import json, statistics as st, sys
res = json.load(open(sys.argv[1]))
n = res["messages"]
names = list(res["rounds"][0].keys())
order = [s for s in ("base", "sa_hs", "sa_nohs", "regexd") if s in names]
label = {
    "base": "Rspamd, neither the spamassassin module nor regexd (baseline)",
    "sa_hs": "Rspamd's spamassassin module, Hyperscan on",
    "sa_nohs": "same, Hyperscan off (ARM64 without Vectorscan)",
    "regexd": "regexd plugin + daemon, same rules, metas included",
}
def med(xs): return st.median(xs) if xs else float("nan")
mps = {s: med([n / r[s]["total_s"] for r in res["rounds"]]) for s in order}
mean_ms = {s: med([st.mean(r[s]["wall_ms"]) for r in res["rounds"]]) for s in order}
p50_ms = {s: med([st.median(r[s]["wall_ms"]) for r in res["rounds"]]) for s in order}
share_a = {}
if "base" in order:
    for s in order:
        # per round: mean over messages of (set-up - base) on the same message
        share_a[s] = med([st.mean(a - b for a, b in zip(r[s]["wall_ms"], r["base"]["wall_ms"])) for r in res["rounds"]])
# (c) CPU time per message: the worker's (and regexd's) minus the base worker's
cpu = {s: med([sum(r[s]["cpu_ms"]) / n for r in res["rounds"]]) for s in order}
cpu_split = {s: [med([r[s]["cpu_ms"][i] / n for r in res["rounds"]]) for i in range(len(res["rounds"][0][s]["cpu_ms"]))] for s in order}
share_c = {s: cpu[s] - cpu["base"] for s in order} if "base" in order else {}
# Rspamd's own task time (time_real) minus the base's
share_t = {}
if "base" in order:
    for s in order:
        share_t[s] = med([st.mean(a - b for a, b in zip(r[s]["time_real_ms"], r["base"]["time_real_ms"])) for r in res["rounds"]])
# (b) Rspamd's per-symbol timings: sum of the average times of the symbols the set-up adds to the
# base (for regexd: REGEXD_CHECK)
counters = res.get("counters", {})
base_syms = {c["symbol"] for c in counters.get("base", [])}
share_b, nsyms_b = {}, {}
for s in order:
    if s == "base" or not counters.get(s):
        continue
    picked = [c for c in counters[s] if (c["symbol"] == "REGEXD_CHECK" if s == "regexd" else c["symbol"] not in base_syms)]
    share_b[s] = sum(float(c.get("time", 0)) for c in picked)
    nsyms_b[s] = len(picked)
# symbols fired per message (public SA names), for a sanity check that every set-up did the work
syms = res["symbols"]
def fired(s):  # public: SpamAssassin's rules and metas without "__" (the module has those as symbols too)
    return st.mean(len([x for x in m if not x.startswith(("REGEXD_", "__"))]) for m in syms[s])
print("%d messages (%d bytes), %d timed rounds, load average %s at start, %s at end" % (
    n, res["bytes"], len(res["rounds"]), sys.argv[2], sys.argv[3]))
print()
print("| set-up | msg/s | wall per message, mean / p50 | CPU per message | regex share per message: (a) wall minus baseline | (a') Rspamd task time minus baseline | (b) Rspamd's symbol timings | (c) CPU minus baseline | public symbols per message |")
print("|---|---|---|---|---|---|---|---|---|")
for s in order:
    a = "" if s == "base" else "%.2f ms" % share_a[s]
    t = "" if s == "base" else "%.2f ms" % share_t[s]
    b = "" if s == "base" else "%.2f ms (%d symbols)" % (share_b.get(s, float("nan")), nsyms_b.get(s, 0))
    c = "" if s == "base" else "%.2f ms" % share_c[s]
    cs = "%.2f ms" % cpu[s] + ("" if len(cpu_split[s]) == 1 else " (Rspamd %.2f + regexd %.2f)" % tuple(cpu_split[s][:2]))
    print("| %s | %.1f | %.2f / %.2f ms | %s | %s | %s | %s | %s | %.1f |" % (label[s], mps[s], mean_ms[s], p50_ms[s], cs, a, t, b, c, fired(s)))
if "regexd" in order and "sa_hs" in order and "base" in order:
    ra = share_a["regexd"] / share_a["sa_hs"]
    print()
    print("regexd / module (Hyperscan on), (a): %.2f (target <= 0.33)%s" % (ra, "" if ra <= 1/3 else
          ": not met, regexd would need %.2f ms, i.e. %.2f ms less" % (share_a["sa_hs"] / 3, share_a["regexd"] - share_a["sa_hs"] / 3)))
    print("regexd / module (Hyperscan on), (a'): %.2f" % (share_t["regexd"] / share_t["sa_hs"]))
    print("regexd / module (Hyperscan on), (c): %.2f" % (share_c["regexd"] / share_c["sa_hs"]))
    if share_b.get("sa_hs"):
        print("regexd / module (Hyperscan on), (b): %.2f" % (share_b["regexd"] / share_b["sa_hs"]))
    if "sa_nohs" in order:
        print("regexd / module (Hyperscan off), (a): %.2f" % (share_a["regexd"] / share_a["sa_nohs"]))
    print("per round (load varies; order rotates), (a) module Hyperscan on / regexd / ratio, (c) the same:")
    for i, r in enumerate(res["rounds"]):
        sa = st.mean(x - y for x, y in zip(r["sa_hs"]["wall_ms"], r["base"]["wall_ms"]))
        rx = st.mean(x - y for x, y in zip(r["regexd"]["wall_ms"], r["base"]["wall_ms"]))
        csa = (sum(r["sa_hs"]["cpu_ms"]) - sum(r["base"]["cpu_ms"])) / n
        crx = (sum(r["regexd"]["cpu_ms"]) - sum(r["base"]["cpu_ms"])) / n
        print("  round %d (base %.0f msg/s): (a) %.2f / %.2f ms = %.2f, (c) %.2f / %.2f ms = %.2f" % (
            i + 1, n / r["base"]["total_s"], sa, rx, rx / sa, csa, crx, crx / csa))
EOF
if [[ -s $tmp/regexd-stats.json ]]; then
  python3 - "$tmp/regexd-stats.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print()
print("regexd STATS at the end: " + json.dumps({k: v for k, v in d.items() if k != "rulesets"})[:600])
for r in d.get("rulesets", []):
    print("  rule set " + json.dumps(r)[:600])
EOF
fi
