# Finds the Hyperscan-compatible library (Intel Hyperscan or Vectorscan); both
# install pkg-config module `libhs`.  Defines Hyperscan::hs and
# Hyperscan_FLAVOR (hyperscan|vectorscan), detected from the installed
# headers unless REGEXD_HS_FLAVOR forces it.
#
# Vectorscan is told apart by what only it ships: its hs/ headers carry
# "arch/common" / SIMDe includes and its pkg-config description says
# vectorscan; Intel's says "Intel(R) Hyperscan Library".
find_package(PkgConfig REQUIRED)
pkg_check_modules(PC_HS QUIET libhs)
find_path(Hyperscan_INCLUDE_DIR hs.h HINTS ${PC_HS_INCLUDE_DIRS} PATH_SUFFIXES hs)
find_library(Hyperscan_LIBRARY NAMES hs HINTS ${PC_HS_LIBRARY_DIRS})
set(Hyperscan_VERSION ${PC_HS_VERSION})

set(_hs_detected hyperscan)
if(PC_HS_FOUND)
  execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE} --variable=pcfiledir libhs
    OUTPUT_VARIABLE _hs_pcdir OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(EXISTS "${_hs_pcdir}/libhs.pc")
    file(READ "${_hs_pcdir}/libhs.pc" _pc_text)
    if(_pc_text MATCHES "[Vv]ectorscan")
      set(_hs_detected vectorscan)
    endif()
  endif()
endif()
if(Hyperscan_INCLUDE_DIR AND EXISTS "${Hyperscan_INCLUDE_DIR}/hs_common.h")
  file(READ "${Hyperscan_INCLUDE_DIR}/hs_common.h" _hs_common)
  if(_hs_common MATCHES "[Vv]ectorscan|VECTORSCAN")
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
