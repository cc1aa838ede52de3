#!/usr/bin/env bash
# The non-default build flavors: x86_64 + Vectorscan and aarch64 + Vectorscan
# (cross-compiled, run under qemu-aarch64), next to the default x86_64 +
# Hyperscan.  See docs/arm64.md.
#
# usage: scripts/flavors.sh COMMAND
#   setup         host tools (cross g++, qemu-user) and the two sysroots:
#                 Debian packages fetched with `apt-get download` and unpacked
#                 with `dpkg -x` into build/sysroot-arm64 and
#                 build/sysroot-vectorscan-amd64.  Nothing is dpkg-installed,
#                 so libhyperscan-dev (the default flavor) stays as it is.
#   build         configure and build the default, vectorscan-x86 and arm64
#                 presets (default is a no-op after scripts/test.sh)
#   test          ctest of vectorscan-x86 minus the tests named in
#                 vectorscan_skip, and of arm64 under qemu minus those in
#                 arm64_skip (below)
#   cross-cache   one cache root shared by the three flavors (default,
#                 vectorscan-x86, arm64), and aarch64 entries written on
#                 x86_64 with --target, loaded by arm64 without compiling:
#                 tests/cross/cross_cache_test.sh
#   measure       SpamAssassin rules compile time, per flavor
#   all           setup, build, test, cross-cache (what scripts/test.sh runs)
# Every command is idempotent: downloads, unpacks and builds already done are
# skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

die() { echo "flavors: error: $*" >&2; exit 1; }
say() { echo "flavors: $*" >&2; }

arm64_sysroot=$src/build/sysroot-arm64
vs_x86_sysroot=$src/build/sysroot-vectorscan-amd64
debs=$src/build/debs

# What each sysroot holds.  arm64: everything the arm64 build links or reads a
# package config from (libc and libstdc++ come from the cross toolchain).
# libflatbuffers2 is there only because the -dev package's CMake config
# insists that the shared library it names exists.
arm64_packages=(
  libvectorscan-dev:arm64 libvectorscan5:arm64
  libpcre2-dev:arm64 libpcre2-8-0:arm64
  libre2-dev:arm64 libre2-9:arm64
  libxxhash-dev:arm64 libxxhash0:arm64
  libgtest-dev:arm64 libgmock-dev:arm64
  libflatbuffers-dev:arm64 libflatbuffers2:arm64
  libspdlog-dev:arm64 libspdlog1.10:arm64 libfmt-dev:arm64 libfmt9:arm64
  libtomlplusplus-dev:arm64 libtomlplusplus3:arm64
  libhiredis-dev:arm64 libhiredis0.14:arm64 libsodium-dev:arm64 libsodium23:arm64
  libzstd-dev:arm64 libzstd1:arm64
  libjemalloc-dev:arm64 libjemalloc2:arm64
  libcli11-dev nlohmann-json3-dev libasio-dev
)
vs_x86_packages=(libvectorscan-dev:amd64 libvectorscan5:amd64)
host_packages=(g++-aarch64-linux-gnu qemu-user)

corpus_dir() { scripts/fetch-corpus.sh | tail -n 1; }

install_host_tools() {
  local missing=() p
  for p in "${host_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]} and not root; run as root: apt-get install ${missing[*]}"
    say "installing ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  fi
}

# apt-get download PKG:arm64 needs arm64 in dpkg's architectures and in the
# package lists; adding it installs nothing.
enable_arm64_lists() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [[ $(id -u) -eq 0 ]] || die "dpkg does not know arm64 and not root; run as root: dpkg --add-architecture arm64 && apt-get update"
    say "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
  fi
  if [[ -z $(apt-cache policy libvectorscan5:arm64 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)') ]]; then
    say "apt-get update (arm64 package lists)"
    apt-get update -qq || die "apt-get update failed"
  fi
}

# Prints one deb file name per PKG[:ARCH] argument, as apt-get download names
# them at the candidate version (epoch colon escaped as %3a).  A PKG without
# :ARCH must be an Architecture: all package.  One apt-cache call for all.
deb_names() {
  # apt-cache omits :ARCH for the native architecture and for "all".
  apt-cache policy "$@" 2>/dev/null | awk -v specs="$*" -v native="$(dpkg --print-architecture)" '
    BEGIN { n = split(specs, want, " ") }
    /^[^ ].*:$/ { pkg = substr($0, 1, length($0) - 1); bare = pkg !~ /:/ }
    /^  Candidate:/ { ver[pkg] = $2; if (bare) { ver[pkg ":all"] = $2; ver[pkg ":" native] = $2 } }
    END {
      for (i = 1; i <= n; i++) {
        s = want[i]; if (s !~ /:/) s = s ":all"
        split(s, pa, ":"); v = ver[s]
        if (v == "" || v == "(none)") { print "MISSING " want[i]; continue }
        sub(/:/, "%3a", v)
        print pa[1] "_" v "_" pa[2] ".deb"
      }
    }'
}

# make_sysroot DIR PKG...: download what is missing into build/debs, and
# unpack into DIR unless DIR already holds exactly these .debs (stamp file).
make_sysroot() {
  local dir=$1; shift
  local names=() want=() n
  mkdir -p "$debs"
  mapfile -t names < <(deb_names "$@")
  local i
  for i in "${!names[@]}"; do
    n=${names[$i]}
    [[ $n != MISSING* ]] || die "no candidate version for ${n#MISSING } (apt-get update?)"
    [[ -f $debs/$n ]] || want+=("${@:$((i + 1)):1}")
  done
  ((${#names[@]} == $#)) || die "apt-cache policy answered for ${#names[@]} of $# packages"
  if ((${#want[@]})); then
    say "downloading ${want[*]}"
    # Root downloads without dropping privileges to _apt (the dir is root's).
    (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "${want[@]}") \
      || die "apt-get download ${want[*]} failed"
  fi
  for n in "${names[@]}"; do [[ -f $debs/$n ]] || die "apt-get download did not produce $debs/$n"; done
  local stamp
  stamp=$(printf '%s\n' "${names[@]}" | sort)
  if [[ -f $dir/.complete && $(<"$dir/.complete") == "$stamp" ]]; then return; fi
  say "unpacking $(basename "$dir")"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  for n in "${names[@]}"; do dpkg -x "$debs/$n" "$dir.tmp" || die "dpkg -x $n failed"; done
  echo "$stamp" > "$dir.tmp/.complete"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
}

cmd_setup() {
  install_host_tools
  enable_arm64_lists
  make_sysroot "$arm64_sysroot" "${arm64_packages[@]}"
  make_sysroot "$vs_x86_sysroot" "${vs_x86_packages[@]}"
  say "sysroots ready: $arm64_sysroot $vs_x86_sysroot"
}

# build PRESET: configure once (cmake re-runs itself when inputs change),
# then build; ninja skips what is up to date.
build_preset() {
  local preset=$1 corpus
  corpus=$(corpus_dir)
  if [[ ! -f build/$preset/build.ninja ]] || \
     ! grep -qx "REGEXD_CORPUS_DIR:PATH=$corpus" "build/$preset/CMakeCache.txt"; then
    cmake --preset "$preset" -DREGEXD_CORPUS_DIR="$corpus" >/dev/null || die "cmake --preset $preset failed"
  fi
  cmake --build --preset "$preset" -j "$(nproc)" || die "build of preset $preset failed"
}

cmd_build() {
  # default too: cross-cache needs it, and after scripts/test.sh it is a no-op.
  build_preset default
  build_preset vectorscan-x86
  build_preset arm64
}

# Under qemu two tests that each compile all of SpamAssassin's rules (and the
# differential one then runs ~1500 rules over 600 messages in the PCRE2
# interpreter) took 15 and 4.5 minutes on a shared 2-core machine, so the arm64
# run leaves them out by name; their contract is covered on arm64 by
# SharedRoot.* (a SpamAssassin subset vs PCRE2, compiled and then loaded from
# the cache) and CliTest.PrewarmInspectVerifyPrune.  rspamd_integration is out
# too: its Rspamd is the host's x86 one and the plugin and protocol it tests
# do not depend on the daemon's architecture (the x86 flavors run it).
# ServerTest.HotSwapUnderLoadNeverGivesAWrongOrFailedAnswer is out under qemu:
# background builds run in a forked compile child, and qemu-user 7.2 asserts in
# a child forked while other guest threads run ("qemu_plugin_vcpu_init_hook:
# assertion failed"), which this test's scanning threads always are; the child
# dies, the registry tries once more, dies again, and the set stays on PCRE2.
# An emulator limit, not the daemon's (the x86 flavors run the test; other arm64
# tests fork compile children with fewer threads running and pass).
# HardeningTest.PushedRuleSetsBeyondTheCompileQueueAreRefused is out for the
# same reason: it needs the compile child of its "slow" set to live while two
# more sets are pushed, and with the server's threads running the child died
# at that assertion twice within 0.1 s in a CI run (2026-12-01), the queue
# emptied and the set meant to be refused was taken.
# REGEXD_ARM64_FULL=1 runs everything on arm64; REGEXD_FLAVORS_FULL=1 in both flavors.
arm64_skip='^(Differential\.SpamAssassinRulesOverTheCorpusAgreeWithPcre2|CliTest\.WarmStartFromTheCacheGivesTheSameAnswersForSpamAssassin|rspamd_integration|ServerTest\.HotSwapUnderLoadNeverGivesAWrongOrFailedAnswer|HardeningTest\.PushedRuleSetsBeyondTheCompileQueueAreRefused)$'

# The vectorscan-x86 run leaves out the two tests whose subject is
# SpamAssassin's and Rspamd's buffers, not the engine: sa_referee (SpamAssassin
# 4.0.1 itself over 25 messages against regexd's rule hits, ~80 s of Perl) and
# rspamd_sa_buffers (the plugin's buffers against SpamAssassin's).  What they
# add beyond the default flavor is that Vectorscan answers as Hyperscan does,
# and the Differential.* suite checks exactly that (every SpamAssassin rule
# against PCRE2 over the corpus) in this flavor too.  Together ~90 s of test
# time; without them this ctest took 133-140 s of wall time instead of 179 on
# a 2-core machine (2026-12-02).
vectorscan_skip='^(sa_referee|rspamd_sa_buffers)$'

cmd_test() {
  local full=${REGEXD_FLAVORS_FULL:-0}
  local skip=(-E "$vectorscan_skip")
  [[ $full == 1 ]] && skip=()
  ctest --preset vectorscan-x86 -j "$(nproc)" "${skip[@]}" || die "ctest --preset vectorscan-x86 failed"
  skip=(-E "$arm64_skip")
  [[ $full == 1 || ${REGEXD_ARM64_FULL:-0} == 1 ]] && skip=()
  ctest --preset arm64 -j "$(nproc)" "${skip[@]}" || die "ctest --preset arm64 (under qemu-aarch64) failed"
}

cmd_cross_cache() {
  local p
  for p in default vectorscan-x86 arm64; do
    [[ -x build/$p/cli/regexctl ]] || die "build/$p/cli/regexctl missing: build the $p preset first"
  done
  tests/cross/cross_cache_test.sh "$(corpus_dir)" || die "cross-architecture cache test failed"
}

case ${1:-} in
  setup) cmd_setup ;;
  build) cmd_build ;;
  test) cmd_test ;;
  cross-cache) cmd_cross_cache ;;
  measure) tests/cross/measure_compile.sh ;;
  all) cmd_setup; cmd_build; cmd_test; cmd_cross_cache ;;
  *) die "usage: scripts/flavors.sh setup|build|test|cross-cache|measure|all" ;;
esac
