// White-box view of the scanner's per-thread state (scanner.cpp), for tests.
//
// Each thread that scans keeps, per Scanner it used lately, its Hyperscan
// scratch, PCRE2 matcher and the RE2 sets' DFA states (lockstep_dfa.h).
#pragma once

#include <cstddef>

namespace regexd::engine::detail {

// How many scanners the calling thread holds state for: at most a few, and
// none for a scanner destroyed before this thread's last scan.
std::size_t thread_scanner_states();

}  // namespace regexd::engine::detail
