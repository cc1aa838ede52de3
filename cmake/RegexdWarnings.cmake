# Warnings for the project's own targets only (never for third-party headers,
# which are included as SYSTEM through their imported targets).
add_library(regexd_warnings INTERFACE)
target_compile_options(regexd_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
  -Wunused -Woverloaded-virtual -Wformat=2
  $<$<BOOL:${REGEXD_WERROR}>:-Werror>)
option(REGEXD_WERROR "Treat warnings as errors in the project's own code" ON)
