// The planner's last step for classes of a few dozen Hyperscan rules: move
// the dearest of them, together, out of the class's database into one
// RE2::Set, when the database without them plus that set scans the
// calibration text clearly faster than the database with them.
//
// Why a step of its own: the greedy packing (planner.cpp) starts a set only
// with a rule that pays alone in RE2, judging each rule by its Hyperscan
// cost alone times a factor.  In a small class no single rule pays for a DFA
// pass (~100 us over the built-in text whatever the rules), and the factor
// (half the cost alone, from `url`, whose rules share the database's literal
// matcher) is wrong for classes whose rules do not share: SpamAssassin's
// `rawbody` database costs more than its rules alone (on the 500 corpus
// messages: 18.5 ms with its five dearest RE2-exact rules, 5.1 ms without
// them, and the five in one set 4.0 ms; on the built-in text 383 us against
// 109 + 91 us).  Measuring the database with and without a group is a few
// compiles of a small database, so it is done only there.
//
// Only speed depends on it: a moved rule is answered by its exact RE2
// translation, or by its superset with PCRE2 confirming, as any RE2-tier
// rule (re2_translate.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cost.h"
#include "regexd/engine/compiled_set.h"

namespace regexd::engine::detail {

// A rule of the class's byte-mode database that has an RE2 translation the
// planner measured (exact, or a superset that does not fire on the
// calibration text).
struct GroupCandidate {
  std::uint32_t id;     // index into CompiledSet::rules
  double hs_ns;         // the rule alone in Hyperscan on the calibration text
  bool exact;           // its RE2 pattern is exact (else a superset, PCRE2 confirms)
  std::string pattern;  // its RE2 pattern
  double re2_ns;        // that pattern alone in RE2, with the scanner's DFA memory
  double re2_small_ns;  // ... with the small DFA memory (cost.h kRe2MeasureMaxMem)
};

struct GroupMove {
  std::vector<std::uint32_t> rules;  // the rules that leave the database, in `candidates` order
  double database_ns = 0;            // the class database with them, per pass over the calibration text
  double rest_ns = 0;                // ... without them
  double set_ns = 0;                 // their RE2::Set
};

// Group sizes tried, dearest candidates first.  Each size is one database
// compile and one set build, after one compile of the whole database:
// SpamAssassin's rawbody (55 rules) compiled in 2.7 s without this step and
// in 7.3 s with sizes 8, 5 and 3, url (128) in 0.9 and 1.8 s.
inline constexpr std::size_t kGroupSizes[] = {8, 4};
// The move must save at least this fraction of the database's cost, so that
// timing noise does not move rules whose routes cost about the same.
inline constexpr double kGroupMinSaving = 0.2;

// `database`: the class's byte-mode Hyperscan rules as planned (indices
// into set.rules); `candidates`: those of them that may move.  Returns the
// group whose move saves most, or nullopt when none saves kGroupMinSaving,
// Hyperscan or RE2 refuses a trial, or the set's DFA would blow up: with the
// small DFA memory it costs more than its rules one by one, or it multiplies
// its states on text where its rules' literals occur (trigger_text.h), the
// packing's two checks.  Candidates should run with the small memory alone
// (not the packing's large programs).
// Thread-safe for distinct classes (reads `set` only).
std::optional<GroupMove> choose_group_move(const CompiledSet& set, const std::vector<std::uint32_t>& database,
                                           std::vector<GroupCandidate> candidates, const Calibration& cal);

}  // namespace regexd::engine::detail
