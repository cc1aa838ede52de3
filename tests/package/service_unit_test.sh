#!/usr/bin/env bash
# contrib/regexd.service (which debian/rules ships as the package's unit):
# systemd accepts it without a single warning (`systemd-analyze verify`
# returns 0 even for unknown keys and bad values, so any output fails), it
# runs as its own user, never root, with the sandbox and limits of
# docs/daemon.md ("Security model"), and systemd's own exposure score
# (`systemd-analyze security --offline`) is at most 3.0 ("OK"; the unit
# before issue 14 scored 8.9, "EXPOSED").
#
# usage: tests/package/service_unit_test.sh REGEXD_BINARY   (ctest: service_unit)
set -euo pipefail
cd "$(dirname "$0")/../.."
die() { echo "service_unit_test: FAIL: $*" >&2; exit 1; }
regexd=${1:?usage: service_unit_test.sh REGEXD_BINARY}
command -v systemd-analyze >/dev/null || { echo "service_unit_test: no systemd-analyze; skipped"; exit 77; }

tmp=$(mktemp -d /tmp/regexd-unit-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unit=$tmp/regexd.service
# The unit names the installed path; verify needs an executable there.
sed -e "s|/usr/local/sbin/regexd|$(readlink -f "$regexd")|g" contrib/regexd.service > "$unit"

out=$(cd "$tmp" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify ./regexd.service 2>&1) || die "verify failed: $out"
[[ -z $out ]] || die "systemd-analyze verify complained: $out"

key() { { grep -E "^$1=" "$unit" || true; } | tail -n 1 | cut -d= -f2-; }
user=$(key User); dynamic=$(key DynamicUser)
[[ ( -n $user && $user != root && $user != 0 ) || $dynamic == yes || $dynamic == true ]] ||
  die "the service runs as root (no User= or DynamicUser=)"
for k in ProtectSystem=strict ProtectHome=true NoNewPrivileges=true PrivateTmp=true PrivateDevices=true \
         RestrictSUIDSGID=true CapabilityBoundingSet= SystemCallFilter=@system-service; do
  grep -qx "$k" "$unit" || die "missing $k"
done
for k in MemoryMax LimitNOFILE TasksMax; do
  [[ -n $(key "$k") ]] || die "no $k"
done
# PCRE2's JIT needs writable+executable memory.
grep -q '^MemoryDenyWriteExecute=true' "$unit" && die "MemoryDenyWriteExecute breaks PCRE2's JIT"

score=$(cd "$tmp" && systemd-analyze security --offline=true ./regexd.service 2>&1 |
        sed -n 's/.*Overall exposure level for regexd.service: \([0-9.]*\).*/\1/p')
[[ -n $score ]] || die "no exposure score from systemd-analyze security"
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || die "exposure $score, above 3.0"
echo "service_unit_test: ok (verify clean, User=$user, exposure $score)"
