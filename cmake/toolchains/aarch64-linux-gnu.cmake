# Cross build for aarch64 (ARM64) Linux with Debian's cross toolchain
# (g++-aarch64-linux-gnu).  Used by the `arm64` preset.
#
# The compiler, its libc and libstdc++ come from the cross toolchain
# (/usr/aarch64-linux-gnu); every library regexd links (Vectorscan, PCRE2,
# xxHash, GoogleTest) and every package config (FlatBuffers, CLI11,
# nlohmann_json, GTest) comes from REGEXD_SYSROOT, a tree of Debian arm64
# packages unpacked with `dpkg -x` by scripts/flavors.sh.  Nothing is taken
# from the host's x86 /usr: find_* and pkg-config are confined to the sysroot.
# Only programs (flatc) run on the host.
#
# We deliberately do not set CMAKE_SYSROOT: that would make the compiler look
# for libc headers and crt files in the sysroot, which holds only the unpacked
# library packages, not libc6-dev.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# The default is the tree scripts/flavors.sh makes; the path is derived from
# this file's location so that try_compile projects (other source dirs) agree.
get_filename_component(_regexd_src "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT REGEXD_SYSROOT)
  if(DEFINED ENV{REGEXD_SYSROOT})
    set(REGEXD_SYSROOT "$ENV{REGEXD_SYSROOT}")
  else()
    set(REGEXD_SYSROOT "${_regexd_src}/build/sysroot-arm64")
  endif()
endif()
set(REGEXD_SYSROOT "${REGEXD_SYSROOT}" CACHE PATH "arm64 Debian packages unpacked with dpkg -x (scripts/flavors.sh setup)")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES REGEXD_SYSROOT)
if(NOT EXISTS "${REGEXD_SYSROOT}/usr/include/hs/hs.h")
  message(FATAL_ERROR "arm64 sysroot ${REGEXD_SYSROOT} has no Vectorscan headers: run scripts/flavors.sh setup")
endif()

set(CMAKE_FIND_ROOT_PATH "${REGEXD_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config (PCRE2, xxHash, libhs) must read the sysroot's .pc files only and
# prefix their /usr paths with the sysroot.
set(ENV{PKG_CONFIG_LIBDIR} "${REGEXD_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${REGEXD_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${REGEXD_SYSROOT}")

# Tests, gtest discovery and the CLI tests run the arm64 binaries under
# qemu-user: libc/libstdc++ from the cross toolchain (-L), the libraries from
# the sysroot (LD_LIBRARY_PATH set for the guest only, with -E).
find_program(REGEXD_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR "${REGEXD_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu;-E;LD_LIBRARY_PATH=${REGEXD_SYSROOT}/usr/lib/aarch64-linux-gnu")
