# The malloc the regexd and regexctl programs run with (not the libraries:
# a program that embeds regexd keeps its own).
#
# jemalloc by default.  Hyperscan's compiler is allocation-bound: perf of
# `regexctl compile` on SpamAssassin's rules put a fifth of all CPU in glibc's
# malloc/free, and the same compiles took 20-27% less CPU on jemalloc (so do
# the probe children and the daemon's compile child, which fork from these
# programs).  docs/benchmarks.md, "Allocator", has the measurements.  Debian
# ships it (libjemalloc2, also what redis-server runs on).
#
# REGEXD_ALLOCATOR=system keeps glibc's malloc.  Sanitizer builds always do:
# ASan and friends replace malloc themselves.
set(REGEXD_ALLOCATOR "jemalloc" CACHE STRING "malloc for the regexd and regexctl programs: jemalloc or system")
set_property(CACHE REGEXD_ALLOCATOR PROPERTY STRINGS jemalloc system)
if(NOT REGEXD_ALLOCATOR MATCHES "^(jemalloc|system)$")
  message(FATAL_ERROR "REGEXD_ALLOCATOR must be jemalloc or system (got ${REGEXD_ALLOCATOR})")
endif()
set(REGEXD_ALLOCATOR_EFFECTIVE ${REGEXD_ALLOCATOR})
if(REGEXD_SANITIZE AND REGEXD_ALLOCATOR STREQUAL "jemalloc")
  message(STATUS "regexd: sanitizers replace malloc; the programs keep the system allocator")
  set(REGEXD_ALLOCATOR_EFFECTIVE system)
endif()

add_library(regexd_allocator INTERFACE)
if(REGEXD_ALLOCATOR_EFFECTIVE STREQUAL "jemalloc")
  pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)
  # Nothing in the programs calls jemalloc by name (malloc is interposed), so
  # a linker that drops unreferenced libraries (--as-needed) must keep it.
  target_link_libraries(regexd_allocator INTERFACE "-Wl,--push-state,--no-as-needed" PkgConfig::JEMALLOC
                        "-Wl,--pop-state")
  # Its built-in options (huge pages), compiled into each program.
  target_sources(regexd_allocator INTERFACE ${CMAKE_CURRENT_LIST_DIR}/jemalloc_conf.cpp)
  message(STATUS "regexd: programs link jemalloc ${JEMALLOC_VERSION}")
else()
  message(STATUS "regexd: programs use the system allocator")
endif()

# regexd_use_allocator(TARGET...): the programs that compile rule sets.
function(regexd_use_allocator)
  foreach(t IN LISTS ARGN)
    target_link_libraries(${t} PRIVATE regexd_allocator)
  endforeach()
endfunction()
