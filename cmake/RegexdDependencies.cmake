# Every third-party dependency, found once, as imported targets.
# All come from Debian 12 packages; scripts/setup-deps.sh installs them.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)

set(REGEXD_HS_FLAVOR "auto" CACHE STRING "Regex engine flavor: auto, hyperscan or vectorscan")
set_property(CACHE REGEXD_HS_FLAVOR PROPERTY STRINGS auto hyperscan vectorscan)
find_package(Hyperscan REQUIRED)
if(REGEXD_HS_FLAVOR STREQUAL "auto")
  set(REGEXD_HS_FLAVOR_EFFECTIVE ${Hyperscan_DETECTED_FLAVOR})
elseif(REGEXD_HS_FLAVOR MATCHES "^(hyperscan|vectorscan)$")
  if(NOT REGEXD_HS_FLAVOR STREQUAL Hyperscan_DETECTED_FLAVOR)
    message(FATAL_ERROR "REGEXD_HS_FLAVOR=${REGEXD_HS_FLAVOR} but the libhs found at "
      "${Hyperscan_LIBRARY} is ${Hyperscan_DETECTED_FLAVOR}; install the matching -dev package "
      "or point CMAKE_PREFIX_PATH/PKG_CONFIG_LIBDIR at it (scripts/setup-deps.sh --flavor ...)")
  endif()
  set(REGEXD_HS_FLAVOR_EFFECTIVE ${REGEXD_HS_FLAVOR})
else()
  message(FATAL_ERROR "REGEXD_HS_FLAVOR must be auto, hyperscan or vectorscan (got ${REGEXD_HS_FLAVOR})")
endif()
message(STATUS "regexd: engine flavor ${REGEXD_HS_FLAVOR_EFFECTIVE} ${Hyperscan_VERSION} (${Hyperscan_LIBRARY})")

pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# The planner's RE2 tier (engine/src/re2_translate.h); also the scan benchmark's peer.
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
# The remote cache tier (cache/src/redis_store.cpp), signed entries
# (cache/src/signing.cpp) and their compression (cache/src/compress.cpp).
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
find_package(FlatBuffers CONFIG REQUIRED)
# flatc runs on the build host.  A cross build finds the target's FlatBuffers
# package (headers), whose flatc, if any, is a target binary; take the host's
# flatc from PATH instead.  The generated code checks at compile time that
# flatc and the headers are the same FlatBuffers version.
if(TARGET flatbuffers::flatc AND NOT CMAKE_CROSSCOMPILING)
  set(REGEXD_FLATC "$<TARGET_FILE:flatbuffers::flatc>")
else()
  find_program(REGEXD_FLATC_PROGRAM flatc REQUIRED NO_CMAKE_FIND_ROOT_PATH)
  set(REGEXD_FLATC "${REGEXD_FLATC_PROGRAM}")
endif()
find_package(CLI11 CONFIG REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
# The daemon: spdlog for logs, toml++ for its config, standalone Asio.
find_package(spdlog CONFIG REQUIRED)
find_package(tomlplusplus CONFIG REQUIRED)
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
if(REGEXD_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
