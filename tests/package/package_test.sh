#!/usr/bin/env bash
# The Debian package, installed into a throwaway root (no container, nothing
# installed on the host): builds it with scripts/package.sh (or takes DEB),
# unpacks it with dpkg-deb -x, checks that every file is where docs/deploy.md
# and debian/README.Debian say, runs the installed binaries (versions, the
# shipped conffile, a scan through the installed daemon, and, when Debian's
# rspamd is installed, a scan by Rspamd through the installed plugin files),
# and runs lintian (no errors allowed; warnings are printed).
#
# usage: tests/package/package_test.sh [DEB]          (scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)

die() { echo "package_test: FAIL: $*" >&2; exit 1; }
log() { echo "package_test: $*" >&2; }

deb=${1:-}
if [[ -z $deb ]]; then
  deb=$(scripts/package.sh | tail -n 1) || die "scripts/package.sh failed"
fi
[[ -f $deb ]] || die "no package: $deb"

tmp=$(mktemp -d /tmp/regexd-package-test.XXXXXX)
regexd_pid= rspamd_pid=
source tests/support/rspamd_private.sh   # stop_pid, rspamd_private_start
cleanup() {
  local rc=$?
  stop_pid "$rspamd_pid"; stop_pid "$regexd_pid"
  if [[ $rc -ne 0 ]]; then
    echo "---- regexd log (tail) ----" >&2; tail -n 20 "$tmp/regexd.log" 2>/dev/null >&2 || true
    echo "---- rspamd log (regexd lines, errors) ----" >&2
    grep -E 'regexd|error|lua' "$tmp/rspamd/log/rspamd.log" 2>/dev/null | tail -n 20 >&2 || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
root=$tmp/root
dpkg-deb -x "$deb" "$root" || die "dpkg-deb -x $deb failed"
log "unpacked $(basename "$deb") into a throwaway root"

# The unit may land in /lib or /usr/lib (debhelper's choice per release).
unit=
for u in "$root"/lib/systemd/system/regexd.service "$root"/usr/lib/systemd/system/regexd.service; do
  [[ -f $u ]] && unit=$u
done
[[ -n $unit ]] || die "no regexd.service in the package"
for f in usr/bin/regexd usr/bin/regexctl etc/regexd/regexd.toml \
         usr/lib/sysusers.d/regexd.conf usr/lib/tmpfiles.d/regexd.conf \
         usr/share/regexd/rspamd/regexd.lua usr/share/regexd/rspamd/local.d/regexd.conf \
         usr/share/man/man1/regexd.1.gz usr/share/man/man1/regexctl.1.gz \
         usr/share/doc/regexd/deploy.md \
         usr/share/doc/regexd/daemon.md usr/share/doc/regexd/copyright usr/share/doc/regexd/changelog.gz; do
  [[ -e $root/$f ]] || die "missing /$f"
done
cmp -s "$root/usr/share/regexd/rspamd/regexd.lua" clients/rspamd/regexd.lua || die "installed plugin differs from clients/rspamd/regexd.lua"
cmp -s "$root/etc/regexd/regexd.toml" contrib/regexd.toml || die "installed conffile differs from contrib/regexd.toml"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/regexd/regexd.toml || die "/etc/regexd/regexd.toml is not a conffile"
grep -qx 'ExecStart=/usr/bin/regexd --config /etc/regexd/regexd.toml' "$unit" || die "unit's ExecStart: $(grep ExecStart "$unit")"
grep -Eq '^(User=_regexd|DynamicUser=(yes|true))$' "$unit" || die "the unit runs as root (no User=/DynamicUser=)"
grep -q '^u _regexd ' "$root/usr/lib/sysusers.d/regexd.conf" || die "sysusers.d does not create _regexd"
# The exact Rspamd lines README.Debian gives must name the installed files. (dh_compress gzips
# documentation over 4 KiB, as Debian policy asks: README.Debian.gz once it grew past that.)
readme=$root/usr/share/doc/regexd/README.Debian
[[ -e $readme ]] || readme=$readme.gz
[[ -e $readme ]] || die "missing /usr/share/doc/regexd/README.Debian(.gz)"
zcat -f "$readme" | grep -q 'ln -s /usr/share/regexd/rspamd/regexd.lua /etc/rspamd/plugins.d/regexd.lua' \
  || die "README.Debian lacks the plugin's symlink line"
zcat "$root/usr/share/man/man1/regexd.1.gz" | grep -q 'TOML config file' || die "regexd.1 does not list --config"
zcat "$root/usr/share/man/man1/regexctl.1.gz" | grep -q 'prewarm' || die "regexctl.1 does not list prewarm"
log "files, conffile, unit, sysusers, tmpfiles, plugin, man pages: in place"

# Dependencies come from the shared libraries (${shlibs:Depends}).
depends=$(dpkg-deb -f "$deb" Depends)
for lib in 'libhyperscan5|libvectorscan5' libpcre2-8-0 'libstdc\+\+6' libc6 libjemalloc2; do
  grep -Eq "(^|, )($lib)( |,|$)" <<<"$depends" || die "Depends lacks $lib: $depends"
done
log "Depends: $depends"

# ---------------------------------------------------------------------------------------------
# The installed binaries. The package's libraries are the host's (same Debian release), so the
# binaries from the throwaway root run as they would when installed.
regexd=$root/usr/bin/regexd regexctl=$root/usr/bin/regexctl
"$regexctl" version >"$tmp/version" || die "regexctl version failed"
grep -q '0\.1\|regexd' "$tmp/version" || true
log "regexctl version: $(tr '\n' ' ' <"$tmp/version")"
if "$regexd" --help 2>&1 | grep -q -- '--version'; then
  "$regexd" --version || die "regexd --version failed"
  log "regexd --version: $("$regexd" --version 2>&1 | head -n 1)"
else
  log "regexd has no --version option (server/src/main.cpp); ran regexd --help instead"
  "$regexd" --help >/dev/null || die "regexd --help failed"
fi

# The shipped conffile, as the daemon reads it, with only the paths moved into $tmp, the
# socket group dropped (Rspamd's group need not exist here) and a tiny rule set.
mkdir -p "$tmp/cache"
chmod 0750 "$tmp/cache"
sock=$tmp/regexd.sock
cat >"$tmp/tiny.rules" <<'EOF'
PKG_FREE_MONEY  body            /\bfree\s+(?:money|cash|gift)\b/i
PKG_CLICK_HERE  body            /click\s+here/i
PKG_SUBJECT     header:Subject  /lottery/i
EOF
sed -e "s|^socket = .*|socket = \"$sock\"|" -e '/^socket_group/d' \
    -e "s|^root = .*|root = \"$tmp/cache\"|" \
    -e "s|^format = \"spamassassin\"|format = \"native\"|" \
    -e "s|^files = \[\"/usr/share/spamassassin.*|files = [\"$tmp/tiny.rules\"]|" \
    "$root/etc/regexd/regexd.toml" >"$tmp/regexd.toml"
grep -q "$tmp/tiny.rules" "$tmp/regexd.toml" || die "could not point the shipped config at the tiny rule set"
"$regexd" --config "$tmp/regexd.toml" --workers 1 >"$tmp/regexd.log" 2>&1 &
regexd_pid=$!
for _ in $(seq 300); do
  kill -0 "$regexd_pid" 2>/dev/null || die "installed regexd exited during start-up: $(tail -n 3 "$tmp/regexd.log")"
  "$regexctl" ping --socket "$sock" >/dev/null 2>&1 && break
  sleep 0.1
done
"$regexctl" ping --socket "$sock" >/dev/null || die "installed regexd does not answer on $sock"
"$regexctl" query --socket "$sock" --ruleset default --class body rules/sample-message.eml >"$tmp/query" \
  || die "regexctl query failed: $(cat "$tmp/query")"
grep -q PKG_FREE_MONEY "$tmp/query" || die "scan through the installed daemon missed PKG_FREE_MONEY: $(cat "$tmp/query")"
log "scan through the installed regexd: $(head -c 200 "$tmp/query")"

# Rspamd through the installed plugin files (the paths README.Debian tells to enable): a
# standalone Rspamd configuration, not /etc/rspamd.
if command -v rspamd >/dev/null && command -v rspamc >/dev/null; then
  # rspamd_private_start reads the plugin from SRC/clients/rspamd: here SRC is a directory
  # whose clients/rspamd is the installed /usr/share/regexd/rspamd.
  mkdir -p "$tmp/installed/clients"
  ln -s "$root/usr/share/regexd/rspamd" "$tmp/installed/clients/rspamd"
  # The installed settings, with this test's socket and without SpamAssassin's symbols.
  printf 'socket = "%s";\nspamassassin_rules = [];\n' "$sock" >"$tmp/override.conf"
  rspamd_private_start "$tmp/rspamd" "$tmp/installed" "${RSPAMD_HS_CACHE:-$tmp/rspamd/hs}" "$tmp/override.conf"
  grep -q "init lua module regexd from $tmp/installed/clients/rspamd/regexd.lua" "$tmp/rspamd/log/rspamd.log" \
    || die "Rspamd did not load the installed plugin"
  rspamc -t 20 -h "$tmp/rspamd/run/normal.sock" rules/sample-message.eml >"$tmp/rspamc.out" 2>&1 \
    || die "rspamc failed: $(tail -n 3 "$tmp/rspamc.out")"
  grep -q 'PKG_FREE_MONEY' "$tmp/rspamc.out" || die "Rspamd with the installed plugin did not report PKG_FREE_MONEY: $(grep -i -e symbol -e regexd "$tmp/rspamc.out" | head -n 20)"
  log "Rspamd with the installed plugin: $(grep -o 'PKG_[A-Z_]*' "$tmp/rspamc.out" | sort -u | tr '\n' ' ')"
  stop_pid "$rspamd_pid"; rspamd_pid=
else
  log "rspamd not installed: skipped the scan through Rspamd (files checked above)"
fi
stop_pid "$regexd_pid"; regexd_pid=

# ---------------------------------------------------------------------------------------------
# lintian: errors fail the test; warnings and info are printed for the record.
command -v lintian >/dev/null || die "lintian is not installed (scripts/setup-deps.sh --test)"
lintian --fail-on error --display-info "$deb" >"$tmp/lintian" 2>&1 || { cat "$tmp/lintian" >&2; die "lintian reported errors"; }
log "lintian: no errors; $(grep -c '^W:' "$tmp/lintian" || true) warnings, $(grep -c '^I:' "$tmp/lintian" || true) info"
grep -E '^(W|I):' "$tmp/lintian" >&2 || true
log "PASS"
