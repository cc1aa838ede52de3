#!/usr/bin/env bash
# Builds the Debian package regexd_<version>_<arch>.deb from this tree with
# dpkg-buildpackage and debian/ (debhelper, cmake buildsystem, the `release`
# preset's options). See docs/deploy.md.
#
# usage: scripts/package.sh [--clean] [--arch arm64]
#   The tree's files (git ls-files: tracked and untracked-not-ignored, as they
#   are in the working tree) are staged into build/package/regexd-<version>/
#   and built there, so nothing is written into the source tree. The cmake
#   build directory inside the stage is kept between runs (file times are
#   preserved, so only what changed is recompiled); --clean starts afresh.
#   The .deb and .buildinfo/.changes land in build/package/; the last line
#   printed is the .deb's path.
#
# Build dependencies: scripts/setup-deps.sh --package (also part of --test)
# installs debhelper, help2man, lintian and the libraries.
#
# --arch arm64: a cross build on this (amd64) host, dpkg-buildpackage -aarm64,
#   with the cross compiler and the arm64 sysroot of `scripts/flavors.sh
#   setup` (nothing arm64 is dpkg-installed, hence -d); help2man runs the arm64
#   programs under qemu-aarch64.  ${shlibs:Depends}: dpkg-shlibdeps reads the
#   symbols/shlibs files of the very arm64 .debs the sysroot was unpacked from,
#   plus libc6, libstdc++6 and libgcc-s1 arm64 (downloaded, unpacked under
#   build/package/shlibs-arm64, not installed).  A full cross compile: minutes,
#   so scripts/test.sh does not run it; see docs/deploy.md.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

die() { echo "package: error: $*" >&2; exit 1; }
say() { echo "package: $*" >&2; }

clean=0
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
while (($#)); do
  case $1 in
    --clean) clean=1 ;;
    --arch) shift; arch=${1:-} ;;
    *) die "usage: scripts/package.sh [--clean] [--arch arm64]" ;;
  esac
  shift
done
native=$(dpkg-architecture -qDEB_BUILD_ARCH)
[[ $arch == "$native" || $arch == arm64 ]] || die "--arch: $native (native) or arm64 (cross)"

command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null && command -v help2man >/dev/null \
  || die "debhelper, dpkg-dev and help2man are needed: run scripts/setup-deps.sh --package (as root)"

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
out=$src/build/package
stage=$out/regexd-$version
mkdir -p "$out"

# Stage the tree: everything but the cmake build directory (obj-*) goes, then
# the current files come back with their own modification times.
if ((clean)); then rm -rf "$stage"; fi
mkdir -p "$stage"
find "$stage" -mindepth 1 -maxdepth 1 ! -name 'obj-*' -exec rm -rf {} +
git ls-files -z -c -o --exclude-standard | grep -zv '^build/' \
  | while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done \
  | tar -c --null -T - -f - | tar -x -f - -C "$stage"

# The cross build's extra inputs (see the header).
cross=()
log=$out/build.log
if [[ $arch != "$native" ]]; then
  sysroot=$src/build/sysroot-arm64
  [[ -f $sysroot/.complete ]] || die "no arm64 sysroot: run scripts/flavors.sh setup (as root) first"
  command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null \
    || die "aarch64-linux-gnu-g++ and qemu-aarch64 are needed: scripts/flavors.sh setup"
  debs=$src/build/debs
  runtime=(libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64)
  for p in "${runtime[@]}"; do
    compgen -G "$debs/${p%%:*}_*_arm64.deb" >/dev/null && continue
    say "downloading $p (its symbols file, for dpkg-shlibdeps)"
    (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "$p") || die "apt-get download $p failed"
  done
  shl=$out/shlibs-arm64
  rm -rf "$shl" && mkdir -p "$shl/DEBIAN"
  # The libraries where dpkg-shlibdeps looks first (-S): libc and the C++
  # runtime as the arm64 packages ship them (copies: the cross toolchain's own
  # files belong to the *-arm64-cross packages, whose names must not end up in
  # Depends), the sysroot's by symlink; and the symbols/shlibs of those .debs.
  ctl=()
  for p in "${runtime[@]}"; do
    f=$(ls "$debs/${p%%:*}"_*_arm64.deb | tail -n 1)
    dpkg -x "$f" "$shl" && ctl+=("$f")
  done
  while read -r n; do [[ $n == *_arm64.deb ]] && ctl+=("$debs/$n"); done < "$sysroot/.complete"
  for f in "$sysroot"/usr/lib/aarch64-linux-gnu/*.so*; do ln -sf "$f" "$shl/usr/lib/aarch64-linux-gnu/"; done
  for f in "${ctl[@]}"; do
    dpkg-deb -I "$f" symbols >> "$shl/DEBIAN/symbols" 2>/dev/null || true
    dpkg-deb -I "$f" shlibs >> "$shl/DEBIAN/shlibs" 2>/dev/null || true
  done
  cross=(-a"$arch" -d)
  export REGEXD_SYSROOT=$sysroot REGEXD_SHLIBS_ROOT=$shl
  export REGEXD_EMULATOR="qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=$sysroot/usr/lib/aarch64-linux-gnu"
  log=$out/build-$arch.log
fi

say "building regexd $version for $arch in $stage"
rm -f "$out"/regexd_"$version"_"$arch".* "$out"/regexd-dbgsym_"$version"_"$arch".*
# -b: binary packages only; --no-pre-clean keeps the cmake build directory
# (the stage was refreshed above, debian/ build state with it).
(cd "$stage" && dpkg-buildpackage -b -us -uc --no-pre-clean -J"$(nproc)" "${cross[@]}") \
  > "$log" 2>&1 || { tail -n 40 "$log" >&2; die "dpkg-buildpackage failed (log: $log)"; }
deb=$(ls "$out"/regexd_"$version"_"$arch".deb 2>/dev/null) || die "no regexd_${version}_$arch.deb in $out"
say "built $deb (log: $log)"
echo "$deb"
