#include "group_move.h"

#include <algorithm>

#include "planner.h"
#include "re2_partition.h"
#include "trigger_text.h"

namespace regexd::engine::detail {

namespace {

// The class database of `rules` (indices into set.rules), as compile.cpp
// builds it: each rule's expression (its rewrite, if any) and flags.
bool measure_database(const CompiledSet& set, const std::vector<std::uint32_t>& rules, const Calibration& cal,
                      double* ns) {
  std::vector<std::string> expressions;
  std::vector<unsigned> flags;
  for (auto id : rules) {
    const CompiledRule& cr = set.rules[id];
    expressions.push_back(hs_expression_of(cr));
    flags.push_back(hs_flags_for(cr.rule, cr.tier));
  }
  return measure_hs_database(expressions, flags, cal, ns);
}

}  // namespace

std::optional<GroupMove> choose_group_move(const CompiledSet& set, const std::vector<std::uint32_t>& database,
                                           std::vector<GroupCandidate> candidates, const Calibration& cal) {
  if (candidates.empty()) return std::nullopt;
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const GroupCandidate& a, const GroupCandidate& b) { return a.hs_ns > b.hs_ns; });
  double whole = 0;
  if (!measure_database(set, database, cal, &whole) || whole <= 0) return std::nullopt;
  std::optional<GroupMove> best;
  std::size_t tried = 0;
  for (std::size_t size : kGroupSizes) {
    const std::size_t n = std::min(size, candidates.size());
    if (n == tried) continue;  // fewer candidates than this size: already tried
    tried = n;
    std::vector<std::uint32_t> moved;
    std::vector<std::string> patterns;
    bool short_repeats = true;
    double one_by_one = 0, one_by_one_small = 0;
    for (std::size_t k = 0; k < n; ++k) {
      one_by_one += candidates[k].re2_ns;
      one_by_one_small += candidates[k].re2_small_ns;
      moved.push_back(candidates[k].id);
      patterns.push_back(candidates[k].pattern);
      short_repeats = short_repeats && re2_short_repeats_only(candidates[k].pattern);
    }
    std::vector<std::uint32_t> rest;
    for (auto id : database)
      if (std::find(moved.begin(), moved.end(), id) == moved.end()) rest.push_back(id);
    // With the small DFA memory unless every pattern has short repeats
    // only, as the packing measures (cost.h kRe2MeasureMaxMem): a set whose
    // states do not fit it would thrash on a day of mail.
    const long long mem = short_repeats ? kRe2SetMaxMem : kRe2MeasureMaxMem;
    double rest_ns = 0;
    Re2Sample s;
    if (!measure_database(set, rest, cal, &rest_ns)) continue;
    if (!measure_re2(patterns, cal, &s, mem)) continue;
    if (!(rest_ns + s.ns < (1 - kGroupMinSaving) * whole)) continue;
    if (s.ns > (short_repeats ? one_by_one : one_by_one_small)) continue;
    if (best && !(rest_ns + s.ns < best->rest_ns + best->set_ns)) continue;
    // As the packing asks of long-gap sets (planner.cpp): no state blow-up
    // where the rules' literals occur, which the calibration text rarely
    // shows.  Short-repeat sets have no gaps to open.
    if (!short_repeats) {
      const std::string text = trigger_text(cal.text(), patterns);
      Re2Sample t;
      if (!measure_re2(patterns, text, cal, &t, mem) ||
          t.ns > kTriggerSlack * s.ns * static_cast<double>(text.size()) / static_cast<double>(cal.size()))
        continue;
    }
    best = GroupMove{std::move(moved), whole, rest_ns, s.ns};
  }
  return best;
}

}  // namespace regexd::engine::detail
