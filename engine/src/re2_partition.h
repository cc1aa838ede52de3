// The RE2 tier's runtime: building an RE2::Set from rules' translations and
// matching a buffer with it (see Re2Partition in compiled_set.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/engine/compiled_set.h"

namespace regexd::engine::detail {

// Each RE2::Set may use this much memory for its program and DFA cache (RE2's
// own default).  A DFA that needs more than this on some buffer makes the
// match fail with "out of memory": the scanner then answers the set's rules
// with PCRE2 (ScanResult::re2_fallbacks).
inline constexpr long long kRe2SetMaxMem = 8 << 20;

// The RE2 pattern a rule of an RE2 tier runs as: the one the planner stored
// (measured), else its translation, exact for kRe2 rules, exact-or-superset
// for kRe2Prefilter.  nullopt and *why (one line) when it has none.
std::optional<std::string> re2_pattern_of(const CompiledRule& rule, std::string* why);

// The RE2 patterns of `rules` (indices into set.rules), in order; nullopt and
// *why (one line) when an index is out of range or a rule has none.
std::optional<std::vector<std::string>> re2_patterns_of(const CompiledSet& set, const std::vector<std::uint32_t>& rules,
                                                        std::string* why);

// Builds the RE2::Set of `rules` (indices into set.rules) from their
// translations: exact for kRe2 rules, exact-or-superset for kRe2Prefilter.
// nullptr and *why (one line) when a rule has no translation any more or RE2
// refuses the set.
std::unique_ptr<Re2Program, Re2ProgramDeleter> build_re2_program(const CompiledSet& set,
                                                                const std::vector<std::uint32_t>& rules,
                                                                std::string* why);
// The same from patterns already translated (the planner's measurements).
// `max_mem`: see kRe2SetMaxMem (the planner measures with less, cost.h).
std::unique_ptr<Re2Program, Re2ProgramDeleter> build_re2_program(const std::vector<std::string>& patterns,
                                                                std::string* why, long long max_mem = kRe2SetMaxMem);

// Sets *matched to the positions (in the partition's rule list) of the
// patterns that match `data`.  False when RE2 gave up (DFA out of memory):
// *matched is then meaningless and the caller must ask PCRE2.
bool re2_match(const Re2Program& program, std::string_view data, std::vector<int>* matched);

}  // namespace regexd::engine::detail
