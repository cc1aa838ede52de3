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
#include <functional>
#include <string>
#include <vector>

#include "regexd/engine/engine.h"

namespace regexd::engine::detail {

class Calibration;  // cost.h

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
  // Also measure the pattern alone in Hyperscan (the planner's input, see
  // planner.h): compile it in the tier found and scan the calibration text.
  bool measure = false;
  // The expression is a superset rewrite (rewrite.h): never native, only a
  // prefilter.
  bool prefilter_only = false;
};

// The Hyperscan half of the planner's measurement.
enum class HsMeasure : std::uint8_t {
  kNone = 0,     // not asked for, or the tier is pcre2
  kDone = 1,     // hs_ns / hs_fired hold the result
  kFailed = 2,   // the compile alone refused the pattern
  kTooSlow = 3,  // compiling it alone took longer than the measure deadline
};

struct ProbeResult {
  Tier tier = Tier::kPcre2;
  std::string reason;  // why not native (empty for native)
  HsMeasure measured = HsMeasure::kNone;
  double hs_ns = -1;
  bool hs_fired = false;
  // Hyperscan's compile of the pattern alone, ms (kDone and kTooSlow when
  // the child reported it; -1 when not known): the split estimate (split.h).
  double hs_compile_ms = -1;
};

struct ProbeLimits {
  std::chrono::milliseconds classify{1000};  // per pattern: hs_expression_info
  // Per pattern: compile alone.  A pattern over it is kTooSlow: the planner
  // counts its compile time against Hyperscan.  The child tells the parent
  // when the compile is over; the parent waits this long for that, then this
  // long times the calibration's scale() for the scans of the text, so a
  // longer calibration text neither turns scans into "too slow" nor makes
  // the parent wait longer for a compile.  Both are the child's CPU time
  // (so the load on the machine does not change a plan), within at most
  // four times as much wall time.
  std::chrono::milliseconds measure{250};
  unsigned children = 1;  // probe children run at once
};

// Classifies (and measures, on `cal`) every input.  Never fails: a probe that
// cannot be run at all (fork refused) falls back to probing in-process,
// without the time bounds.  The children read `cal` (and `inputs`) from the
// memory they inherit at fork: nothing is sent to them.
std::vector<ProbeResult> probe_patterns(const std::vector<ProbeInput>& inputs, const ProbeLimits& limits,
                                        const Calibration& cal);

// The same decision for one pattern, in the calling process (the child's job).
ProbeResult probe_one(const ProbeInput& input);
// The measurement (for input.measure), in the calling process: kTooSlow when
// Hyperscan took longer than `compile_limit` to compile the pattern alone.
// `compiled`: see measure_hs_expression (cost.h); called only when
// Hyperscan compiles the pattern (not for the pcre2 tier).
void measure_one(const ProbeInput& input, const Calibration& cal, std::chrono::milliseconds compile_limit,
                 ProbeResult* result, const std::function<void()>& compiled = {});

}  // namespace regexd::engine::detail
