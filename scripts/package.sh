#!/usr/bin/env bash
# Builds the Debian package regexd_<version>_<arch>.deb from this tree with
# dpkg-buildpackage and debian/ (debhelper, cmake buildsystem, the `release`
# preset's options). See docs/deploy.md.
#
# usage: scripts/package.sh [--clean]
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
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

die() { echo "package: error: $*" >&2; exit 1; }
say() { echo "package: $*" >&2; }

clean=0
for a in "$@"; do
  case $a in
    --clean) clean=1 ;;
    *) die "usage: scripts/package.sh [--clean]" ;;
  esac
done

command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null && command -v help2man >/dev/null \
  || die "debhelper, dpkg-dev and help2man are needed: run scripts/setup-deps.sh --package (as root)"

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
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

say "building regexd $version for $arch in $stage"
rm -f "$out"/regexd_"$version"_*
# -b: binary packages only; --no-pre-clean keeps the cmake build directory
# (the stage was refreshed above, debian/ build state with it).
(cd "$stage" && dpkg-buildpackage -b -us -uc --no-pre-clean -J"$(nproc)") \
  > "$out/build.log" 2>&1 || { tail -n 40 "$out/build.log" >&2; die "dpkg-buildpackage failed (log: $out/build.log)"; }
deb=$(ls "$out"/regexd_"$version"_"$arch".deb 2>/dev/null) || die "no regexd_${version}_$arch.deb in $out"
say "built $deb (log: $out/build.log)"
echo "$deb"
