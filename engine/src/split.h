// Split classes: which rules go into which Hyperscan database of a class.
//
// Hyperscan compiles one database on one thread, and its compile time grows
// faster than the number of rules: SpamAssassin's body rules that stay in
// Hyperscan compile alone in 5.0 s summed, together in one database in
// 29.4 s, in two balanced halves in 6.7 + 7.8 s (CPU; docs/rules.md, "Split
// classes", has the measurements).  Classes
// are compiled in parallel, but body alone is the critical path of the whole
// set's compile.  So a class whose byte-mode rules are estimated to take long
// is compiled as K databases ("parts") on K threads, and the scanner runs
// every part over the buffer.
//
// The estimate is the sum of the rules' compile times alone, which the probe
// measures anyway (probe.h, ProbeResult::hs_compile_ms).  Parts are balanced
// on the same numbers: most expensive rule first, each to the part with the
// least so far (LPT).  Scanning K databases instead of one costs their
// literal matchers' passes (body in 2 parts: +8.9% scan CPU before the
// planner; with it, no measurable difference either way, docs/rules.md),
// which is why only large classes are split, in no more parts than threads.
//
// Only compile and scan speed depend on the split, never an answer: every
// rule is in exactly one part, and a hit is a hit in whichever part.
#pragma once

#include <cstdint>
#include <vector>

namespace regexd::engine::detail {

// `ids` (rule indices) with their estimated compile cost alone
// (`cost_ms[id]`; negative = not measured: counts as the mean of the measured
// ones, or 0 when none is).  Returns the parts, each sorted by rule index,
// none empty: one part (all of `ids`) when the estimate is under `min_ms`
// (CompileOptions::split_min_ms), or min_ms is negative, or max_parts < 2,
// or there are fewer than 2 rules; else min(max_parts, number of rules)
// parts balanced by cost.  Deterministic for the same input.
std::vector<std::vector<std::uint32_t>> split_rules(const std::vector<std::uint32_t>& ids,
                                                    const std::vector<double>& cost_ms, unsigned max_parts,
                                                    double min_ms);

// The estimate split_rules compares with min_ms.
double estimate_ms(const std::vector<std::uint32_t>& ids, const std::vector<double>& cost_ms);

}  // namespace regexd::engine::detail
