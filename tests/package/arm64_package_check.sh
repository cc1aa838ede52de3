#!/usr/bin/env bash
# Checks an arm64 regexd package cross-built on this x86 host
# (scripts/package.sh --arch arm64): its control fields and Depends (from the
# arm64 libraries' own symbols/shlibs files: Vectorscan, no cross-toolchain
# package names), its files, that the unpacked programs are aarch64 and run
# under qemu-aarch64 (regexd --version, regexctl version, a scan of the shipped
# sample message with the shipped rules), and lintian (no errors).
#
# usage: tests/package/arm64_package_check.sh [DEB]
#   DEB defaults to build/package/regexd_<version>_arm64.deb.  Needs
#   scripts/flavors.sh setup (qemu-user, build/sysroot-arm64).  Not part of
#   scripts/test.sh: the cross build before it takes minutes (docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)

die() { echo "arm64 package: FAIL: $*" >&2; exit 1; }
log() { echo "arm64 package: $*" >&2; }

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
deb=${1:-$src/build/package/regexd_${version}_arm64.deb}
[[ -f $deb ]] || die "no $deb (scripts/package.sh --arch arm64)"
sysroot=$src/build/sysroot-arm64
[[ -d $sysroot/usr/lib/aarch64-linux-gnu ]] || die "no $sysroot (scripts/flavors.sh setup)"
command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 missing (scripts/flavors.sh setup)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[[ $(dpkg-deb -f "$deb" Architecture) == arm64 ]] || die "Architecture is not arm64"
depends=$(dpkg-deb -f "$deb" Depends)
log "Depends: $depends"
for p in libvectorscan5 libpcre2-8-0 libxxhash0 libfmt9 libtomlplusplus3 libc6 libstdc++6 libgcc-s1 libjemalloc2 passwd; do
  grep -Eq "(^|, )${p//+/\\+}( |,|$)" <<<"$depends" || die "Depends lacks $p"
done
grep -q 'libspdlog1.10' <<<"$depends" || die "Depends lacks spdlog"
! grep -Eq 'cross|:arm64|libhyperscan' <<<"$depends" || die "Depends names a cross-toolchain or x86 package: $depends"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/regexd/regexd.toml || die "/etc/regexd/regexd.toml is not a conffile"

root=$tmp/root
dpkg-deb -x "$deb" "$root"
for f in usr/bin/regexd usr/bin/regexctl usr/share/man/man1/regexd.1.gz usr/share/man/man1/regexctl.1.gz \
         usr/share/regexd/rspamd/regexd.lua lib/systemd/system/regexd.service usr/lib/sysusers.d/regexd.conf; do
  [[ -e $root/$f ]] || die "/$f missing"
done
for b in regexd regexctl; do
  readelf -h "$root/usr/bin/$b" | grep -q 'Machine: *AArch64' || die "/usr/bin/$b is not an aarch64 program"
done
# The man pages were made by running the arm64 programs (help2man under qemu).
zcat "$root/usr/share/man/man1/regexctl.1.gz" | grep -q 'print the engine flavor and library versions' || die "regexctl.1 lacks the --help text"

run() { qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH="$sysroot/usr/lib/aarch64-linux-gnu" "$@"; }
v=$(run "$root/usr/bin/regexd" --version) || die "regexd --version failed"
log "regexd --version: $v"
grep -Eq "^regexd $version vectorscan 5\.[0-9.]+ .*aarch64 pcre2 " <<<"$v" || die "unexpected: $v"
c=$(run "$root/usr/bin/regexctl" version) || die "regexctl version failed"
grep -qx 'arch: aarch64' <<<"$c" && grep -q '^engine: vectorscan' <<<"$c" || die "unexpected: $c"
hits=$(run "$root/usr/bin/regexctl" scan --rules "$root/usr/share/regexd/rules/sample.rules" --class body \
  "$root/usr/share/regexd/rules/sample-message.eml") || die "regexctl scan failed"
grep -q '"FREE_MONEY":1' <<<"$hits" || die "scan of the sample message: $hits"
log "scan of the sample message through the packaged regexctl: ok"

command -v lintian >/dev/null || die "lintian is not installed (scripts/setup-deps.sh --test)"
lintian --fail-on error --display-info "$deb" >"$tmp/lintian" 2>&1 || { cat "$tmp/lintian" >&2; die "lintian reported errors"; }
log "lintian: no errors; $(grep -c '^W:' "$tmp/lintian" || true) warnings, $(grep -c '^I:' "$tmp/lintian" || true) info"
grep -E '^(W|I):' "$tmp/lintian" >&2 || true
log "ok: $deb"
