# Finds the Hyperscan-compatible library (Intel Hyperscan or Vectorscan); both
# install pkg-config module `libhs`.  Defines Hyperscan::hs,
# Hyperscan_VERSION (from hs.h) and Hyperscan_DETECTED_FLAVOR
# (hyperscan|vectorscan), detected from the headers found.
#
# Where it looks:
# - REGEXD_HS_ROOT set (e.g. build/sysroot-vectorscan-amd64, Debian's
#   libvectorscan-dev unpacked with dpkg -x): only <root>/usr/include/hs and
#   <root>/usr/lib/<multiarch>.  pkg-config is not used there because the
#   package's libhs.pc says prefix=/usr, which would point back at the host's
#   /usr/include/hs (Intel Hyperscan on a default install).
# - otherwise pkg-config `libhs` (in a cross build the toolchain file confines
#   it to the sysroot), then the usual find_path/find_library.
#
# Telling the two apart: Debian's Vectorscan 5.4.9 ships the same symbols, the
# same header text and a libhs.pc that still says "Intel(R) Hyperscan
# Library", so its name appears nowhere.  Its version does: Intel's last
# release is 5.4.2 and Vectorscan's releases are 5.4.3 and later.  A header or
# .pc that names Vectorscan (newer upstream releases) also counts.
set(REGEXD_HS_ROOT "" CACHE PATH "Use the libhs (Vectorscan/Hyperscan) under this root only, e.g. a dpkg -x tree")

# A changed root must not reuse paths cached from the previous one.
if(NOT "${REGEXD_HS_ROOT}" STREQUAL "${_REGEXD_HS_ROOT_USED}")
  unset(Hyperscan_INCLUDE_DIR CACHE)
  unset(Hyperscan_LIBRARY CACHE)
  set(_REGEXD_HS_ROOT_USED "${REGEXD_HS_ROOT}" CACHE INTERNAL "")
endif()

if(REGEXD_HS_ROOT)
  if(NOT EXISTS "${REGEXD_HS_ROOT}/usr/include/hs/hs.h")
    message(FATAL_ERROR "REGEXD_HS_ROOT=${REGEXD_HS_ROOT} has no usr/include/hs/hs.h: run scripts/flavors.sh setup")
  endif()
  find_path(Hyperscan_INCLUDE_DIR hs.h PATHS "${REGEXD_HS_ROOT}/usr/include/hs"
    NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  find_library(Hyperscan_LIBRARY NAMES hs
    PATHS "${REGEXD_HS_ROOT}/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}" "${REGEXD_HS_ROOT}/usr/lib"
    NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  set(_hs_pcfile "${REGEXD_HS_ROOT}/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/pkgconfig/libhs.pc")
else()
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(PC_HS QUIET libhs)
  find_path(Hyperscan_INCLUDE_DIR hs.h HINTS ${PC_HS_INCLUDE_DIRS} PATH_SUFFIXES hs)
  find_library(Hyperscan_LIBRARY NAMES hs HINTS ${PC_HS_LIBRARY_DIRS})
  set(_hs_pcfile "")
  if(PC_HS_FOUND)
    execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE} --variable=pcfiledir libhs
      OUTPUT_VARIABLE _hs_pcdir OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(_hs_pcfile "${_hs_pcdir}/libhs.pc")
  endif()
endif()

set(Hyperscan_VERSION "")
set(_hs_detected hyperscan)
if(Hyperscan_INCLUDE_DIR AND EXISTS "${Hyperscan_INCLUDE_DIR}/hs.h")
  file(STRINGS "${Hyperscan_INCLUDE_DIR}/hs.h" _hs_ver REGEX "^#define HS_(MAJOR|MINOR|PATCH) +[0-9]+")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX REPLACE ".*#define HS_${_part} +([0-9]+).*" "\\1" _hs_${_part} "${_hs_ver}")
  endforeach()
  set(Hyperscan_VERSION "${_hs_MAJOR}.${_hs_MINOR}.${_hs_PATCH}")
  if(Hyperscan_VERSION VERSION_GREATER "5.4.2")
    set(_hs_detected vectorscan)
  endif()
  file(READ "${Hyperscan_INCLUDE_DIR}/hs_common.h" _hs_common)
  if(_hs_common MATCHES "[Vv]ectorscan|VECTORSCAN")
    set(_hs_detected vectorscan)
  endif()
endif()
if(_hs_pcfile AND EXISTS "${_hs_pcfile}")
  file(READ "${_hs_pcfile}" _pc_text)
  if(_pc_text MATCHES "[Vv]ectorscan")
    set(_hs_detected vectorscan)
  endif()
endif()
set(Hyperscan_DETECTED_FLAVOR ${_hs_detected})

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Hyperscan
  REQUIRED_VARS Hyperscan_LIBRARY Hyperscan_INCLUDE_DIR
  VERSION_VAR Hyperscan_VERSION)

if(Hyperscan_FOUND AND NOT TARGET Hyperscan::hs)
  add_library(Hyperscan::hs UNKNOWN IMPORTED)
  set_target_properties(Hyperscan::hs PROPERTIES
    IMPORTED_LOCATION "${Hyperscan_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${Hyperscan_INCLUDE_DIR}")
endif()
