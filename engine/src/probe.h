// Classification probe: which tier can each pattern use?
//
// Hyperscan's analysis of a single pattern can take a very long time (large
// bounded repeats, huge alternations), and it cannot be interrupted.  So, as
// Rspamd does, the probe runs in a forked child; the parent waits at most
// `timeout` for each pattern's answer, kills a child that overruns, puts that
// pattern in the pcre2 tier and forks a new child for the rest.  A rule set
// therefore never hangs on one pattern.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "regexd/engine/engine.h"

namespace regexd::engine::detail {

struct ProbeInput {
  std::string expression;  // as handed to Hyperscan
  unsigned flags = 0;      // hs flags for the native tier (without PREFILTER)
  // False for patterns with back-references.  A prefilter has to drop the
  // reference and whatever depends on it, which leaves an approximation that
  // fires on most input and can be very costly to compile (SpamAssassin's
  // __SPOOFED_URL alone takes 17 s in Hyperscan's prefilter compile, against
  // 0.6 s for the other 57 rules of its class).  PCRE2 alone answers those.
  // Deciding on the construct, not on a measured time, keeps the tiering the
  // same from run to run and machine to machine.
  bool allow_prefilter = true;
};

struct ProbeResult {
  Tier tier = Tier::kPcre2;
  std::string reason;  // why not native (empty for native)
};

// Classifies every input.  Never fails: a probe that cannot be run at all
// (fork refused) falls back to probing in-process, without the time bound.
std::vector<ProbeResult> probe_patterns(const std::vector<ProbeInput>& inputs,
                                        std::chrono::milliseconds timeout);

// The same decision for one pattern, in the calling process (the child's job).
ProbeResult probe_one(const ProbeInput& input);

}  // namespace regexd::engine::detail
