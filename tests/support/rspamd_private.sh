# shellcheck shell=bash
# A private Debian Rspamd (3.4) for tests and benches that drive the regexd plugin: its own
# configuration in a temp dir (not /etc/rspamd), only the regexd plugin, Unix sockets only, DNS
# pointed at a closed local port. Sourced; the caller defines die().
#   (tests/integration/rspamd_integration.sh writes the same configuration inline.)

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL
stop_pid() {
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}

# socket_accepts PATH [HTTP-PATH]: connects; with HTTP-PATH, GETs it and wants a 200 answer
socket_accepts() {
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

# rspamd_private_start DIR SRC HS_CACHE OVERRIDE [OPTIONS]: writes DIR/rspamd.conf (the plugin from
# SRC/clients/rspamd with its stock local.d/regexd.conf, then the OVERRIDE file; OPTIONS are extra
# lines for the options section), starts rspamd in the foreground of a background job and waits
# (up to 180 s: a cold HS_CACHE makes Rspamd compile its URL/TLD database) until its normal worker
# answers /ping. Sets rspamd_pid; the worker socket is DIR/run/normal.sock, the log DIR/log/rspamd.log.
rspamd_private_start() {
  local dir=$1 src=$2 hs_cache=$3 override=$4 options=${5:-}
  mkdir -p "$dir"/{db,run,log} "$hs_cache"
  cat >"$dir/rspamd.conf" <<EOF
options {
  pidfile = "$dir/run/rspamd.pid";
  filters = "";
  dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }
  cache_file = "$dir/db/symbols.cache";
  hs_cache_dir = "$hs_cache";
  history_file = "$dir/db/rspamd.history";
  stats_file = "$dir/db/stats.ucl";
  control_socket = "$dir/run/control.sock mode=0600";
  url_tld = "/usr/share/rspamd/effective_tld_names.dat";
  tempdir = "$dir";
$options
}
logging { type = "file"; filename = "$dir/log/rspamd.log"; level = "info"; }
worker "normal" { bind_socket = "$dir/run/normal.sock mode=0600"; count = 1; }
worker "controller" { bind_socket = "$dir/run/controller.sock mode=0600"; count = 1; password = "private"; }
actions { reject = 100000; add_header = 100000; greylist = 100000; }
modules { path = "$src/clients/rspamd/regexd.lua"; }
regexd {
  .include(priority=1) "$src/clients/rspamd/local.d/regexd.conf"
  .include(priority=10) "$override"
}
EOF
  rspamd -f -c "$dir/rspamd.conf" -u "$(id -un)" -g "$(id -gn)" -i \
    --var DBDIR="$dir/db" --var RUNDIR="$dir/run" --var LOGDIR="$dir/log" >"$dir/rspamd.out" 2>&1 &
  rspamd_pid=$!
  local _
  for _ in $(seq 1800); do
    kill -0 "$rspamd_pid" 2>/dev/null || die "rspamd exited during start-up: $(tail -n 3 "$dir/rspamd.out")"
    socket_accepts "$dir/run/normal.sock" /ping && return 0
    sleep 0.1
  done
  die "rspamd does not answer on $dir/run/normal.sock after 180 s"
}
