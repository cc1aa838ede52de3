// The planner: which engine answers each rule, chosen from measured cost.
//
// The probe (probe.h) says what Hyperscan *can* run; the planner decides what
// is *cheapest*, per rule, among the routes that give PCRE2's answer:
//   Hyperscan native | Hyperscan prefilter + PCRE2 | PCRE2 alone |
//   RE2 exact (in an RE2::Set) | RE2 superset + PCRE2.
// Every candidate is measured alone on the calibration text (cost.h): the
// rule alone in Hyperscan, its RE2 translation alone (re2_translate.h), PCRE2
// alone.  Nothing in a pattern's text predicts these costs well (see
// docs/benchmarks.md: rules built the same way differ tenfold), so they are
// measured; a rule's own Hyperscan cost, times a measured factor (planner.cpp
// kHsInDatabase), stands in for its marginal cost inside a database, which is
// what would really be wanted and is far too costly to measure for every rule.
//
// RE2 candidates of a class are then packed into RE2::Sets: one set scans a
// buffer in one DFA pass for all its rules, but rules with long gaps
// multiply each other's DFA states.  Rules whose RE2 pattern has only short
// repeats (re2_short_repeats_only) share sets of up to 64; the others sets
// of at most 6, rules whose RE2 program needs more than the small DFA
// memory (below) to run at all only with each other (SetGroup, below).
// Packing is greedy and measured, most expensive first: a set
// starts with a rule that pays alone in RE2 (a short-repeat set also,
// tentatively, with one that pays only with the rules that join it:
// pack_sets below); rules join while the set's cost
// grows by less than they cost where they are and (the others' sets),
// measured with little DFA memory (cost.h kRe2MeasureMaxMem, or the least a
// large program runs with), by no more than their RE2 costs one by one, nor
// (all but short-repeat sets) cost more than twice as much per byte on a
// text where their literals appear as they do in mail (trigger_text.h) as
// on the calibration text.
//
// Last, in classes of a few dozen Hyperscan rules, the dearest RE2 candidates
// may leave the database together, into one more set, when the database
// without them plus that set measures clearly cheaper (group_move.h).
//
// Only speed depends on the plan, never an answer.  The plan is stored with
// the compiled set (cache entries keep it), so a cache hit never measures.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cost.h"
#include "probe.h"
#include "regexd/engine/compiled_set.h"

namespace regexd::engine::detail {

struct Plan {
  std::vector<std::string> why;  // per rule: why its tier (empty: the probe's tier, nothing measured)
  // Per class index: the RE2::Sets, as lists of rule indices.
  std::vector<std::vector<std::vector<std::uint32_t>>> re2_sets;
};

// Runs after the probe set set.rules[i].tier and set.rules[i].class_index
// (with `nclasses` classes) and measured each Hyperscan-tier rule alone
// (`probes`, in rule order) on `cal`, the text it measures on too.  May
// change tiers (to kPcre2, kRe2 or kRe2Prefilter) and fills
// set.rules[i].cost.  Uses up to `nthreads` threads.
Plan plan_rules(CompiledSet& set, std::size_t nclasses, unsigned nthreads, const CompileOptions& options,
                const Calibration& cal, const std::vector<ProbeResult>& probes);

// The decision that needs no RE2: the cost check (cost.h) moving a
// prefilter that is far slower than PCRE2 alone to PCRE2.  Apart from any
// clock, so testable.
struct PlanSample {
  PlanCost cost;
  bool hs_fired = false;  // the rule alone in Hyperscan (native or prefilter) matched the calibration text
  // Hyperscan-tier rules (native + prefilter) in the rule's class, as probed.
  std::size_t class_hs_rules = SIZE_MAX;
};
Tier choose_tier(Tier current, const PlanSample& s, std::size_t bytes, std::string* why);

// Costs (ns) the planner orders by: the step of ratio kSameCost a cost falls
// in (floor of its logarithm to that base; 0 for costs up to 1 ns, the
// highest step for infinity).  Packing (planner.cpp) offers the dearest
// candidates first but keeps rule order among those in one step: hundreds
// of literal-anchored rules cost about the same alone, and ordering them by
// the last digits of a timing reshuffled which of them were tried in a set
// together from compile to compile.
inline constexpr double kSameCost = 1.25;
long cost_step(double ns);

// Whether an RE2 pattern (re2_translate.h syntax) repeats nothing more than
// kShortRepeat times: no `*`, `+` or `{m,}`, and no `{n}` / `{m,n}` above it,
// outside character classes and escapes.  Such a pattern only ever looks
// at a short window of text, so a DFA for many of them stays about the size
// of the sum of theirs, like a literal matcher's, instead of multiplying
// (RE2's DFA state is the set of pattern positions alive at a byte; a short
// window keeps few alive), for a few dozen rules at least: 128 of them
// thrashed in one compile (planner.cpp kMaxShortSetRules).  Measured on the
// SpamAssassin corpus (500 messages, body, docs/benchmarks.md): the 65 such
// rules of the planner's RE2 sets in one set cost 4.6 ms per pass, one DFA
// pass; the same rules in the sets of at most 6 cost ~50 ms; while two rules
// with long counted gaps (`[-a-z\s]{4,40}`, `[a-z]{1,15}`) in one set
// already cost up to 30x one.
// A conservative text test: a pattern it refuses may still be fine.
inline constexpr int kShortRepeat = 3;
bool re2_short_repeats_only(std::string_view re2_pattern);

// ---- Packing RE2 candidates into sets (planner.cpp) -------------------------
// Exposed so that its decisions can be tested with made-up costs.

// A rule that may leave its engine for an RE2 set.
struct SetCandidate {
  std::uint32_t id;
  double here;          // cost where the rule is now (ns per pass); infinity if Hyperscan cannot take it alone in time
  double re2_alone;     // its RE2 translation alone
  double re2_small;     // the same with the small DFA memory (cost.h), or with small_mem
  long long small_mem;  // the least memory (kRe2MeasureMaxMem, doubled) its program runs with
  bool exact;           // the translation is exact (else a superset that PCRE2 confirms)
  std::string pattern;  // the RE2 translation
};

// The groups a class's candidates are packed in, each into sets of its own.
enum class SetGroup {
  // re2_short_repeats_only(): sets of up to 64 do not blow up, so they are
  // measured with the scanner's DFA memory (a set of dozens of look-alike
  // alternations does not fit the small memory as a program).
  kShortRepeats,
  // The others, measured with the small memory (kRe2MeasureMaxMem)...
  kLongGaps,
  // ...except those whose program needs more to run at all (RE2 refuses a
  // set whose DFA cannot hold a few states of its program): measured with
  // the least memory, doubling from the small one, that the trial runs with.
  // A DFA state holds the program positions alive at a byte, so a larger
  // program's states are larger and the least memory it runs with is as
  // tight for it as the small memory is for the others.  They share sets
  // only among themselves: with a small-program rule in the set, that
  // memory would no longer be tight for the small rule's states (a set that
  // thrashed on mail measured 2,049 us on its trigger text with 1 MiB and
  // 123 us with 2 MiB against 116 on the calibration text).  SpamAssassin's
  // __FILL_THIS_FORM_SHORT1, _SHORT2 and _PARTIAL each sat alone in a set
  // before: 12.8 ms per pass over the 500 corpus messages as three sets,
  // 5.6-5.8 ms as one (docs/benchmarks.md).
  kLargePrograms,
};

// How packing measures a trial set.  The planner's meter measures on the
// calibration text (cost.h); tests give made-up costs.
struct SetMeter {
  // The set's cost, run with `mem` (kLargePrograms: the least of mem,
  // 2 * mem, ... that it runs with, in *used); false if it does not run.
  std::function<bool(SetGroup, const std::vector<std::string>& patterns, long long mem, Re2Sample* out,
                     long long* used)>
      measure;
  // Whether the set, measured at `s` with `mem`, multiplies its DFA states
  // once its rules' gaps open (trigger_text.h).  Not asked for short-repeat
  // sets, which have no gaps to open.
  std::function<bool(const std::vector<std::string>& patterns, const Re2Sample& s, long long mem)> multiplies;
};

// Greedy packing of one group of a class's candidates (see the top of this
// file), most expensive first; `cands` is reordered.  Returns the sets; a
// rule put in a set gets its RE2 tier in tier[id] and a reason in why[id],
// every other rule keeps both.
//
// A set starts with a rule that pays on its own (its RE2 pass is cheaper
// than where it is).  Short-repeat sets also start with one that does not,
// tentatively: after a first full set of 64, the next candidate is often
// a few percent short of paying alone (its Hyperscan cost against one DFA
// pass), while the 60-odd that would join it pay many times over together;
// whether such a set formed then turned on the timing noise of that one
// rule, and SpamAssassin's body kept 64 rules more or fewer in Hyperscan
// from compile to compile.  A tentative set is kept only if its rules' costs
// where they were, summed, exceed the set's measured cost; else its rules go
// back, and the group starts no more tentative sets.  Only while the class
// has fewer than two short-repeat sets (planner.cpp, kTentativeUpTo: a
// third bought nothing measurable, and each set is one more DFA that new
// mail fills).
std::vector<std::vector<std::uint32_t>> pack_sets(std::vector<SetCandidate>& cands, const SetMeter& meter,
                                                  std::vector<std::string>& why, std::vector<Tier>& tier,
                                                  SetGroup kind);

}  // namespace regexd::engine::detail
