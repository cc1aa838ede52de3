#include "planner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <limits>

#include "cost.h"
#include "group_move.h"
#include "parallel.h"
#include "re2_partition.h"
#include "re2_translate.h"
#include "trigger_text.h"

namespace regexd::engine::detail {
namespace {

// An RE2::Set never holds more than this many rules: a set's DFA state count
// can grow with every rule, and a set that gives up (out of memory) sends all
// its rules to PCRE2 for that buffer.  Every set costs a DFA pass over the
// buffer (~5 ms per 500 corpus messages however few its rules), so fewer,
// fuller sets scan faster until their DFAs start to thrash.  Body, 500
// messages, with kHsInDatabase = 4, two compiles each, CPU ms per pass, no
// fallbacks: at most 4 rules 243-262, 6 rules 189-223, 8 rules 178-269 (one
// of its plans thrashed), 12 rules 214-235.
constexpr std::size_t kMaxSetRules = 6;
// Rules with short repeats only (re2_short_repeats_only) share sets of up
// to this many: their DFAs add instead of multiplying, up to a point.  On
// SpamAssassin's body and the 500 corpus messages, sets of 64 scanned in
// 4.6-5.9 ms per pass in three compiles (one DFA pass is ~3.7 ms); with 128,
// one compile's set took 7.7 ms and another's 263 ms (more rules had left
// Hyperscan for it, and together their states no longer fit 8 MiB).
constexpr std::size_t kMaxShortSetRules = 64;
// A short-repeat set may start with a rule that does not pay alone
// (pack_sets, planner.h) only while its class has fewer short-repeat sets
// than this.  SpamAssassin's body, 500 corpus messages, CPU 1, one process
// per plan (docs/benchmarks.md, 2026-12-03): the second set of 64 took
// rules worth ~18 ms per pass out of Hyperscan (453 -> 390 rules in its
// database: 51-54 -> 32-35 ms), a third and more bought nothing there
// (390, 324, 138 rules: 32-35, 32-35, 31.8 ms) and each is one more DFA
// that mail new to the scanning thread fills (six such sets: 205-209 ms
// per 500 new messages against 161-192 with two).
constexpr std::size_t kTentativeUpTo = 2;
// Rules are offered to a set this many at a time (then one by one when a
// group does not pay), which keeps the number of trial compiles small.
constexpr std::size_t kGroup = 4;
// kTriggerSlack (trigger_text.h) bounds a set's cost on its trigger text.
// Rules cheaper than this (ns per pass over the calibration text) where they
// are are not worth a trial: a literal-anchored Hyperscan rule costs ~1-5 us.
constexpr double kFloorNs = 3000;

// What a rule costs inside its class's Hyperscan database, as a multiple of
// what it costs alone.  Summed over all of a class's rules the database is
// cheaper than its rules alone (SpamAssassin's 546 body rules: 2.2x less),
// but that is the cheap, literal-anchored rules sharing one literal matcher;
// the rules the planner weighs (above kFloorNs, mostly without a literal to
// anchor on) do not share, they add to every byte.  Measured on body, 500
// corpus messages (2026-11-30, bench harness outside the tree): the 34 rules
// costing >= 50 us alone on the built-in text took 79 ms in a database of
// their own, and taking them out of the class's database saved ~120 ms
// (1.5x alone); in RE2 sets of four they took 42 ms.  So the factor is at
// least 1.5; its value was then chosen on whole-class A/Bs in one process
// (CPU ms per pass; body database size; its Hyperscan compile time,
// summed over its databases):
//   0.5 (the old "sharing")  295-305 ms
//   1.4x                     256-272 ms
//   2x   55-62 rules to RE2  249-314 ms  13.6-14.4 MB  6.6-9.3 s
//   3x   79-85               298-317 ms   6.7-9.6 MB  3.7-3.8 s
//   4x   95-102              244-292 ms   4.8-5.5 MB  2.9-3.0 s
// At 4x body's scan is as fast as at 2x or faster, and the rules that leave
// (FUZZY-style prefilters and word-obfuscation natives) were what inflated
// and slowed its database.  The RE2 sets' DFA caches grow more while
// scanning (500 messages: +22 MB against +9 MB) but the process ends smaller
// (72.8 MB against 79.3 MB resident) since the database shrank more.
constexpr double kHsInDatabase = 4.0;
// ...in a class with at least this many Hyperscan rules, the only kind the
// factor above was measured on.  In small classes a database is cheap and a
// set's DFA pass is not (~120 us per pass over the built-in text, whatever
// the rules).  With 4x everywhere, one compile put six `url` rules that cost
// 21-32 us alone into a set, and url scanned in 16-17 ms per pass against
// 10-11 before; `full` measured 14.3 ms in one run against ~4.
// There a rule keeps the former estimate, half its cost alone (it shares the
// database's literal matcher).
constexpr std::size_t kCrowdedClass = 200;
constexpr double kHsShared = 0.5;

// A Hyperscan rule's estimated cost inside its class's database, from its
// cost alone and the number of Hyperscan rules in the class.
double hs_in_database(double hs_alone_ns, std::size_t class_hs_rules) {
  return hs_alone_ns * (class_hs_rules >= kCrowdedClass ? kHsInDatabase : kHsShared);
}

// choose_tier(): a class with at most this many Hyperscan rules shares
// nothing worth counting, and a native rule moves to PCRE2 when Hyperscan
// alone costs more than this times PCRE2 alone (a margin, so that timing
// noise does not flip rules whose costs are close).
constexpr std::size_t kFewHsRules = 4;
constexpr double kNativeOverPcre2 = 1.25;

// ProbeLimits::measure, as the compile sets it.
constexpr std::chrono::milliseconds kMeasureDeadline = ProbeLimits{}.measure;

constexpr double kInf = std::numeric_limits<double>::infinity();

double or_inf(float ns) { return ns < 0 ? kInf : ns; }

std::string us(double ns) {
  if (ns == kInf) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
  return buf;
}

const char* group_name(SetGroup g) {
  switch (g) {
    case SetGroup::kShortRepeats:
      return " of short-repeat rules";
    case SetGroup::kLargePrograms:
      return " of large-program rules";
    case SetGroup::kLongGaps:
      break;
  }
  return "";
}

// measure_re2() with `mem`, or, for kLargePrograms, with the least of
// `mem`, 2 * mem, ... up to kRe2SetMaxMem that the set runs with (*used).
bool measure_group(SetGroup g, const std::vector<std::string>& patterns, const Calibration& cal, long long mem,
                   Re2Sample* out, long long* used) {
  for (;; mem *= 2) {
    *used = mem;
    if (measure_re2(patterns, cal, out, mem)) return true;
    if (g != SetGroup::kLargePrograms || mem >= kRe2SetMaxMem) return false;
  }
}

}  // namespace

std::vector<std::vector<std::uint32_t>> pack_sets(std::vector<SetCandidate>& cands, const SetMeter& meter,
                                                  std::vector<std::string>& why, std::vector<Tier>& tier,
                                                  SetGroup kind) {
  const bool short_repeats = kind == SetGroup::kShortRepeats;
  const std::size_t max_rules = short_repeats ? kMaxShortSetRules : kMaxSetRules;
  // Dearest first; rules whose costs fall in one cost_step keep rule order
  // (planner.h says why).
  std::sort(cands.begin(), cands.end(), [](const SetCandidate& a, const SetCandidate& b) {
    const long ba = cost_step(a.here), bb = cost_step(b.here);
    return ba != bb ? ba > bb : a.id < b.id;
  });
  std::vector<std::vector<std::uint32_t>> sets;
  std::vector<std::uint32_t> cur;
  std::vector<std::string> cur_pat;
  double cur_ns = 0;
  long long cur_mem = 0;  // the least memory the set runs with (kLargePrograms)
  // A tentative set (planner.h): what its rules cost where they were, and
  // their tiers and reasons before they joined, to put back if it does not pay.
  bool tentative = false, tentative_failed = false;
  double cur_here = 0;
  std::vector<std::pair<Tier, std::string>> before;
  auto close = [&] {
    if (tentative && !(cur_here > cur_ns)) {
      for (std::size_t k = 0; k < cur.size(); ++k) {
        tier[cur[k]] = before[k].first;
        why[cur[k]] = std::move(before[k].second);
      }
      tentative_failed = true;
    } else if (!cur.empty()) {
      if (tentative)
        why[cur.front()] += " (" + std::to_string(cur.size()) + " rules: " + us(cur_here) + " where they were, " +
                            us(cur_ns) + " as a set)";
      sets.push_back(std::move(cur));
    }
    cur.clear();
    cur_pat.clear();
    before.clear();
    cur_ns = cur_here = 0;
    tentative = false;
  };
  auto take = [&](const SetCandidate& c, const std::string& how) {
    before.emplace_back(tier[c.id], why[c.id]);
    cur.push_back(c.id);
    cur_pat.push_back(c.pattern);
    cur_here += c.here;
    tier[c.id] = c.exact ? Tier::kRe2 : Tier::kRe2Prefilter;
    why[c.id] = std::string(c.exact ? "re2" : "re2 superset (pcre2 confirms)") + ": " + us(c.here) +
                " where it was, " + us(c.re2_alone) + " alone in RE2; " + how;
  };
  std::size_t i = 0, group = kGroup;
  while (i < cands.size() && cands[i].here > kFloorNs) {
    if (cur.empty()) {
      // A new set starts with a rule that pays on its own, measured with the
      // scanner's DFA memory; a short-repeat set also with one that does
      // not, tentatively (planner.h).
      if (cands[i].re2_alone < cands[i].here) {
        take(cands[i], std::string("starts a set") + group_name(kind));
      } else if (short_repeats && sets.size() < kTentativeUpTo && !tentative_failed) {
        take(cands[i], std::string("starts a set") + group_name(kind) + " that pays with the rules that join it");
        tentative = true;
      } else {
        ++i;
        continue;
      }
      cur_ns = short_repeats ? cands[i].re2_alone : cands[i].re2_small;
      cur_mem = cands[i].small_mem;
      ++i;
      group = kGroup;
      continue;
    }
    std::size_t n = std::min({group, cands.size() - i, max_rules - cur.size()});
    while (n > 1 && !(cands[i + n - 1].here > kFloorNs)) --n;
    std::vector<std::string> trial = cur_pat;
    double gain = 0, alone = 0;
    for (std::size_t k = i; k < i + n; ++k) {
      trial.push_back(cands[k].pattern);
      gain += cands[k].here;
      alone += short_repeats ? cands[k].re2_alone : cands[k].re2_small;
    }
    // A larger set runs with no less memory than any of its rules.
    long long least = short_repeats                         ? kRe2SetMaxMem
                      : kind == SetGroup::kLargePrograms ? cur_mem
                                                         : kRe2MeasureMaxMem;
    if (kind == SetGroup::kLargePrograms)
      for (std::size_t k = i; k < i + n; ++k) least = std::max(least, cands[k].small_mem);
    Re2Sample s;
    long long mem = 0;
    bool ok = meter.measure(kind, trial, least, &s, &mem);
    double delta = ok ? s.ns - cur_ns : kInf;
    // Joining must pay (cheaper than where the rules are) and must not blow
    // the set's DFA up: with the small DFA memory, a set may not cost more
    // than its rules one by one (rules with long gaps between alternations
    // multiply each other's DFA states: four such rules in one set measured
    // 4x their sum on the corpus).
    // Nor may it multiply its states once its rules' gaps open, which the
    // calibration text rarely does (trigger_text.h).  Short-repeat sets
    // have no gaps to open.
    if (ok && delta < gain && delta <= alone && (short_repeats || !meter.multiplies(trial, s, mem))) {
      for (std::size_t k = i; k < i + n; ++k) take(cands[k], std::string("joined a set") + group_name(kind));
      cur_ns = s.ns;
      cur_mem = mem;
      i += n;
      group = kGroup;
      if (cur.size() >= max_rules) close();
    } else if (n > 1) {
      group = n / 2;  // find the rule that does not pay
    } else {
      close();  // it may still pay in a set of its own
    }
  }
  close();
  return sets;
}

namespace {

// The planner's meter: measured on the calibration text.
SetMeter calibration_meter(const Calibration& cal) {
  SetMeter m;
  m.measure = [&cal](SetGroup g, const std::vector<std::string>& patterns, long long mem, Re2Sample* out,
                     long long* used) { return measure_group(g, patterns, cal, mem, out, used); };
  m.multiplies = [&cal](const std::vector<std::string>& patterns, const Re2Sample& s, long long mem) {
    const std::string text = trigger_text(cal.text(), patterns);
    Re2Sample t;
    if (!measure_re2(patterns, text, cal, &t, mem)) return true;
    return t.ns > kTriggerSlack * s.ns * static_cast<double>(text.size()) / static_cast<double>(cal.size());
  };
  return m;
}

}  // namespace

long cost_step(double ns) {
  if (!(ns < kInf)) return std::numeric_limits<long>::max();
  return ns <= 1 ? 0 : static_cast<long>(std::floor(std::log(ns) / std::log(kSameCost)));
}

bool re2_short_repeats_only(std::string_view p) {
  auto read_number = [&](std::size_t& j, int* value) {
    const std::size_t from = j;
    long v = 0;
    while (j < p.size() && p[j] >= '0' && p[j] <= '9') {
      v = std::min(v * 10 + (p[j] - '0'), 1L << 20);
      ++j;
    }
    *value = static_cast<int>(v);
    return j > from;
  };
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      ++i;  // the escaped character; "\x{..}", "\p{..}": the braces hold no repeat
      if (i + 1 < p.size() && (p[i] == 'x' || p[i] == 'p' || p[i] == 'P') && p[i + 1] == '{') {
        const std::size_t close = p.find('}', i);
        if (close == std::string_view::npos) return false;
        i = close;
      }
      continue;
    }
    if (c == '[') {  // a class: nothing in it repeats
      std::size_t j = i + 1;
      if (j < p.size() && p[j] == '^') ++j;
      if (j < p.size() && p[j] == ']') ++j;
      while (j < p.size() && p[j] != ']') {
        if (p[j] == '\\') {
          ++j;  // the escaped character
        } else if (p[j] == '[' && j + 1 < p.size() && p[j + 1] == ':') {
          const std::size_t close = p.find(":]", j + 2);  // "[:alpha:]"
          if (close == std::string_view::npos) return false;
          j = close + 1;
        }
        ++j;
      }
      if (j >= p.size()) return false;
      i = j;
      continue;
    }
    if (c == '*' || c == '+') return false;
    if (c == '{') {
      std::size_t j = i + 1;
      int m = 0, n = 0;
      if (!read_number(j, &m)) continue;  // a literal brace
      if (j < p.size() && p[j] == '}') {
        if (m > kShortRepeat) return false;
        i = j;
        continue;
      }
      if (j >= p.size() || p[j] != ',') continue;
      ++j;
      if (!read_number(j, &n)) return false;  // "{m,}": unbounded (or not a repeat: refused either way)
      if (j >= p.size() || p[j] != '}') continue;
      if (n > kShortRepeat) return false;
      i = j;
    }
  }
  return true;
}

Tier choose_tier(Tier current, const PlanSample& s, std::size_t bytes, std::string* why) {
  // The cost check (cost.h): a prefilter far slower than PCRE2 alone.
  if (current == Tier::kPrefilter) {
    CostSample cs{s.cost.hs_ns, s.cost.pcre2_ns, s.hs_fired};
    if (prefer_pcre2(cs, bytes, why)) return Tier::kPcre2;
  }
  // A class with only a few Hyperscan rules shares nothing in its database,
  // so a native rule that costs clearly more alone in Hyperscan than PCRE2
  // alone (finding its first match) is cheaper in PCRE2; a class left without
  // Hyperscan rules scans no database at all.  SpamAssassin's `full` class:
  // __LONGLINE (/^.{998}/m-like) measured 71 us in Hyperscan, 53 us in PCRE2,
  // and the class ran at 0.75-0.85x the PCRE2 loop with it in Hyperscan.
  // Only for a rule that does not match the text: PCRE2's cost is the time
  // to its first match, which for a rule matching early would be no measure
  // of a buffer it does not match, where PCRE2 scans to the end.
  if (current == Tier::kNative && s.class_hs_rules <= kFewHsRules && !s.hs_fired && s.cost.hs_ns >= 0 &&
      s.cost.pcre2_ns >= 0 && s.cost.hs_ns > kNativeOverPcre2 * s.cost.pcre2_ns) {
    *why = "pcre2: " + us(s.cost.pcre2_ns) + " alone, hyperscan " + us(s.cost.hs_ns) + " alone, in a class of " +
           std::to_string(s.class_hs_rules) + " hyperscan rules (nothing shared)";
    return Tier::kPcre2;
  }
  return current;
}

Plan plan_rules(CompiledSet& set, std::size_t nclasses, unsigned nthreads, const CompileOptions& options,
                const Calibration& cal, const std::vector<ProbeResult>& probes) {
  const std::size_t n = set.rules.size();
  Plan plan;
  plan.why.resize(n);
  plan.re2_sets.resize(nclasses);
  if (!options.cost_check || options.pcre2_only) return plan;
  const std::size_t bytes = cal.size();
  std::vector<std::optional<SetCandidate>> cand(n);
  // Rules that leave Hyperscan whatever happens (see `here` below), with
  // PCRE2's cost known: PCRE2 answers those RE2 does not take.
  std::vector<std::uint8_t> leave_hs(n, 0);
  std::vector<std::size_t> hs_rules(nclasses, 0);
  for (const auto& cr : set.rules)
    if (cr.tier == Tier::kNative || cr.tier == Tier::kPrefilter) ++hs_rules[cr.class_index];

  parallel_for(n, nthreads, [&](std::size_t i) {
    CompiledRule& cr = set.rules[i];
    PlanSample s;
    s.class_hs_rules = hs_rules[cr.class_index];
    const ProbeResult& p = probes[i];
    if (p.measured == HsMeasure::kDone) {
      s.cost.hs_ns = static_cast<float>(p.hs_ns);
      s.hs_fired = p.hs_fired;
    }
    double ns = 0;
    if (measure_pcre2(cr.rule, options.pcre2_match_limit, options.pcre2_depth_limit, cal, &ns))
      s.cost.pcre2_ns = static_cast<float>(ns);
    cr.tier = choose_tier(cr.tier, s, bytes, &plan.why[i]);
    if (p.measured == HsMeasure::kTooSlow)
      plan.why[i] = "hyperscan took over " + std::to_string(kMeasureDeadline.count()) + " ms to compile it alone";
    // Where the rule is now, per pass over the text.
    double here = cr.tier == Tier::kPcre2 ? or_inf(s.cost.pcre2_ns)
                  : p.measured == HsMeasure::kDone
                      ? hs_in_database(s.cost.hs_ns, s.class_hs_rules) +
                            (cr.tier == Tier::kPrefilter && s.hs_fired ? or_inf(s.cost.pcre2_ns) : 0.0)
                      : kInf;  // Hyperscan refused it alone, or took longer than the deadline to compile it
                               // (that compile time is paid again in the class database on every host)
    if ((p.measured == HsMeasure::kTooSlow || p.measured == HsMeasure::kFailed) && cr.tier != Tier::kPcre2 &&
        s.cost.pcre2_ns >= 0) {
      // If RE2 can take it, it leaves Hyperscan: for RE2 if that is cheaper
      // than PCRE2 alone, else for PCRE2 (below).  Before, RE2 took every
      // such rule whatever PCRE2 cost: on a loaded
      // machine the deadline is missed more often, and rules that PCRE2 JIT
      // answers at 10 GB/s (SpamAssassin's __COMMENT_GIBBERISH: 5.9 us on the
      // calibration text, 122 us in RE2; on 500 corpus messages 0.4 ms in PCRE2,
      // 9.6 ms in RE2) went to RE2 sets.
      leave_hs[i] = 1;
      here = s.cost.pcre2_ns;
    }
    std::string no_re2;
    if (options.re2_tier) {
      if (auto t = re2_translate(cr.rule, &no_re2)) {
        Re2Sample r, small;
        // A superset that fires on ordinary mail would have PCRE2 confirm
        // nearly every buffer: only its exact form may join a set then.
        if (measure_re2({t->pattern}, cal, &r, kRe2SetMaxMem) && (t->strength == Re2Strength::kExact || !r.fired)) {
          // Its cost with the least memory its program runs with: the small
          // memory, or more for a large program (SetGroup::kLargePrograms).
          long long small_mem = 0;
          if (!measure_group(SetGroup::kLargePrograms, {t->pattern}, cal, kRe2MeasureMaxMem, &small, &small_mem))
            small.ns = kInf;
          s.cost.re2_ns = static_cast<float>(r.ns);
          cand[i] = SetCandidate{static_cast<std::uint32_t>(i), here, r.ns, small.ns, small_mem,
                              t->strength == Re2Strength::kExact, std::move(t->pattern)};
        }
      }
    }
    cr.cost = s.cost;
  });

  // Pack each class's candidates, classes in parallel.
  std::vector<std::vector<SetCandidate>> per_class(nclasses);
  std::vector<std::string> pattern(n);
  for (std::size_t i = 0; i < n; ++i)
    if (cand[i]) {
      pattern[i] = cand[i]->pattern;
      per_class[set.rules[i].class_index].push_back(std::move(*cand[i]));
    }
  std::vector<Tier> tier(n);
  for (std::size_t i = 0; i < n; ++i) tier[i] = set.rules[i].tier;
  const SetMeter meter = calibration_meter(cal);
  parallel_for(nclasses, nthreads, [&](std::size_t c) {
    if (per_class[c].empty()) return;
    std::vector<SetCandidate> groups[3];
    for (auto& cd : per_class[c]) {
      const SetGroup g = re2_short_repeats_only(cd.pattern) ? SetGroup::kShortRepeats
                      : cd.small_mem > kRe2MeasureMaxMem ? SetGroup::kLargePrograms
                                                         : SetGroup::kLongGaps;
      groups[static_cast<int>(g)].push_back(std::move(cd));
    }
    // The order the sets are scanned in: as before, the long-gap sets first.
    for (SetGroup g : {SetGroup::kLongGaps, SetGroup::kLargePrograms, SetGroup::kShortRepeats})
      for (auto& s : pack_sets(groups[static_cast<int>(g)], meter, plan.why, tier, g))
        plan.re2_sets[c].push_back(std::move(s));
  });
  // Small classes: the dearest Hyperscan rules as one more set, when the
  // class database without them plus that set measures clearly cheaper
  // (group_move.h).  Classes in parallel.
  parallel_for(nclasses, nthreads, [&](std::size_t c) {
    std::vector<std::uint32_t> database;
    std::size_t hs_now = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      if (set.rules[i].class_index != c || !is_hs_tier(tier[i])) continue;
      ++hs_now;
      // Rules about to leave Hyperscan (leave_hs, below) are not in it.
      if (!(set.rules[i].rule.flags & kUtf8) && !leave_hs[i]) database.push_back(i);
    }
    if (hs_now <= kFewHsRules || hs_now >= kCrowdedClass) return;
    std::vector<GroupCandidate> movable;
    for (auto i : database)
      // Not a program too large for the small DFA memory (SetGroup::kLargePrograms):
      // SpamAssassin's __FILL_THIS_FORM_PARTIAL_RAW in such a group passed
      // every check on the built-in text and scanned the corpus in 60 ms
      // against ~5 without it.
      if (cand[i] && !pattern[i].empty() && set.rules[i].cost.hs_ns > kFloorNs &&
          cand[i]->small_mem <= kRe2MeasureMaxMem)
        movable.push_back(
            {i, set.rules[i].cost.hs_ns, cand[i]->exact, pattern[i], cand[i]->re2_alone, cand[i]->re2_small});
    auto move = choose_group_move(set, database, std::move(movable), cal);
    if (!move) return;
    for (auto i : move->rules) {
      tier[i] = cand[i]->exact ? Tier::kRe2 : Tier::kRe2Prefilter;
      plan.why[i] = std::string(cand[i]->exact ? "re2" : "re2 superset (pcre2 confirms)") + ": with " +
                    std::to_string(move->rules.size() - 1) + " other rules out of the class's hyperscan database: " +
                    us(move->database_ns) + " -> " + us(move->rest_ns) + " + " + us(move->set_ns) + " for their set";
    }
    plan.re2_sets[c].push_back(std::move(move->rules));
  });
  // Only rules that were RE2 candidates: the others stay in Hyperscan as
  // before (on a slow machine, e.g. under emulation, most rules miss the
  // deadline, and Hyperscan is still their best engine there).
  for (std::size_t i = 0; i < n; ++i)
    if (leave_hs[i] && !pattern[i].empty() && !is_re2_tier(tier[i])) {
      tier[i] = Tier::kPcre2;
      const PlanCost& c = set.rules[i].cost;
      std::string hs = probes[i].measured == HsMeasure::kTooSlow
                           ? "took over " + std::to_string(kMeasureDeadline.count()) + " ms to compile it alone"
                           : "could not take it alone";
      plan.why[i] = "pcre2: hyperscan " + hs + "; " + us(c.pcre2_ns) + " alone in PCRE2" +
                    (c.re2_ns >= 0 ? ", " + us(c.re2_ns) + " in RE2" : "");
    }
  for (std::size_t i = 0; i < n; ++i) {
    set.rules[i].tier = tier[i];
    // The set is built from exactly what was measured (an exact candidate's
    // pattern is the one re2_exact() gives; a superset's, re2_translate()'s).
    if (is_re2_tier(tier[i])) set.rules[i].re2_pattern = std::move(pattern[i]);
  }
  return plan;
}

}  // namespace regexd::engine::detail
