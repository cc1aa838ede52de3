// Rule set -> CompiledSet: validate with PCRE2, classify with the probe,
// compile the classes' databases in parallel (a large class as several,
// split.h), demoting any pattern the real compile refuses.
#include <hs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <thread>
#include <tuple>
#include <unordered_set>

#include "confirm_window.h"
#include "cost.h"
#include "hs_runtime.h"
#include "parallel.h"
#include "planner.h"
#include "pcre2_util.h"
#include "probe.h"
#include "rewrite.h"
#include "split.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/serialize.h"

namespace regexd::engine {

void HsDatabaseDeleter::operator()(hs_database* db) const {
  if (owned) hs_free_database(db);
}
void HsScratchDeleter::operator()(hs_scratch* s) const { hs_free_scratch(s); }

std::string_view tier_name(Tier tier) {
  switch (tier) {
    case Tier::kNative: return "native";
    case Tier::kPrefilter: return "prefilter";
    case Tier::kPcre2: return "pcre2";
    case Tier::kRe2: return "re2";
    case Tier::kRe2Prefilter: return "re2-prefilter";
  }
  return "?";
}

unsigned hs_flags_for(const Rule& rule, Tier tier) {
  unsigned f = 0;
  if (rule.flags & kCaseless) f |= HS_FLAG_CASELESS;
  if (rule.flags & kMultiline) f |= HS_FLAG_MULTILINE;
  if (rule.flags & kDotall) f |= HS_FLAG_DOTALL;
  if (rule.flags & kUtf8) f |= HS_FLAG_UTF8 | HS_FLAG_UCP;
  // The scanner only needs "did it match" from Hyperscan (hit counts come from
  // PCRE2), so one report per pattern is enough and is Hyperscan's fastest
  // mode.  SOM_LEFTMOST cannot be combined with SINGLEMATCH; it is kept for
  // rules that ask for it (L) so the database matches Rspamd's.
  if (rule.flags & kLeftmost)
    f |= HS_FLAG_SOM_LEFTMOST;
  else
    f |= HS_FLAG_SINGLEMATCH;
  if (tier == Tier::kPrefilter) f |= HS_FLAG_PREFILTER;
  return f;
}

std::string hs_expression_for(const Rule& rule) {
  // Hyperscan has no compile flag for extended syntax, but understands (?x).
  if (rule.flags & kExtended) return "(?x)" + rule.pattern;
  // Escaped high bytes as raw bytes: an equivalence (rewrite.h) that keeps
  // ReplaceTags' look-alike alternations under Hyperscan's length limit.
  if (auto compact = detail::compact_escaped_bytes(rule)) return std::move(*compact);
  return rule.pattern;
}

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// How long Hyperscan may take to compile a loosened form alone (CPU time;
// ProbeLimits::measure is 250 ms for everything else).  Only rules that were
// too slow to compile as written get one, and each replaces a PCRE2 search
// of every buffer: SpamAssassin's `__FILL_THIS_FORM_PARTIAL` loosened
// compiles in 0.9-1.2 s (x86-64, Zen 5) and answers 500 corpus messages in
// 2.2 ms with PCRE2 confirming, against 6.9 ms in PCRE2 alone (RE2 ~4);
// `_RAW` 0.9 s, 2.0 against 5.4 ms.  The set's compile stays far inside
// its budget (13 s of 25 s before; docs/benchmarks.md).
constexpr std::chrono::milliseconds kLoosenedCompileLimit{2000};

// Why a rule is a prefilter of its loosen_for_prefilter() form (rewrite.h).
constexpr std::string_view kLoosenedPrefilter =
    "prefilter with bounded repeats loosened to {m,} and negative look-arounds dropped (PCRE2 confirms)";

// Compiles `ids` into one block-mode database.  A pattern the compile refuses
// as too large is tried once more as a prefilter with its bounded repeats
// loosened (a superset, rewrite.h; reported through `moved`); any other
// refusal removes it (reported through `demote`) and the rest is compiled
// again; a failure that names no pattern demotes them all.  `may_rewrite`:
// the text a rewrite is measured on, null for no rewrites.
HsDatabasePtr compile_db(CompiledSet& set, std::vector<std::uint32_t>& ids, const detail::Calibration* may_rewrite,
                         const hs_platform_info_t* platform, std::vector<std::pair<std::uint32_t, std::string>>& demote,
                         std::vector<std::pair<std::uint32_t, std::string>>& moved) {
  std::vector<std::string> exprs;
  std::vector<unsigned> flags;
  std::vector<bool> no_som(set.rules.size(), false);
  std::vector<std::optional<std::string>> loosened(set.rules.size());
  while (!ids.empty()) {
    exprs.clear();
    flags.clear();
    for (auto id : ids) {
      const CompiledRule& cr = set.rules[id];
      exprs.push_back(loosened[id] ? *loosened[id] : hs_expression_of(cr));
      unsigned f = hs_flags_for(cr.rule, cr.tier);
      if (no_som[id]) f = (f & ~HS_FLAG_SOM_LEFTMOST) | HS_FLAG_SINGLEMATCH;
      // A windowed confirmation needs every end the prefilter reports.
      if (cr.confirm_max) f &= ~HS_FLAG_SINGLEMATCH;
      flags.push_back(f);
    }
    std::vector<const char*> ptrs;
    for (auto& e : exprs) ptrs.push_back(e.c_str());
    hs_database_t* db = nullptr;
    hs_compile_error_t* err = nullptr;
    hs_error_t rc = hs_compile_multi(ptrs.data(), flags.data(), ids.data(), static_cast<unsigned>(ids.size()),
                                     HS_MODE_BLOCK, platform, &db, &err);
    if (rc == HS_SUCCESS) return HsDatabasePtr(db);
    std::string msg = err && err->message ? err->message : "unknown error";
    int which = err ? err->expression : -1;
    hs_free_compile_error(err);
    if (which >= 0 && static_cast<std::size_t>(which) < ids.size()) {
      std::uint32_t id = ids[static_cast<std::size_t>(which)];
      // Leftmost start-of-match tracking is optional for regexd's answers;
      // drop it before giving up on Hyperscan for this pattern.
      if ((flags[static_cast<std::size_t>(which)] & HS_FLAG_SOM_LEFTMOST) && !no_som[id]) {
        no_som[id] = true;
        continue;
      }
      if (may_rewrite && msg.find("too large") != std::string::npos && !loosened[id]) {
        // Measured like any prefilter (cost.h), and kept only where it pays:
        // a loose prefilter that fires on ordinary mail adds its scan to
        // PCRE2's instead of replacing it.
        const Rule& rule = set.rules[id].rule;
        std::string why;
        if (auto loose = detail::loosen_for_prefilter(rule, exprs[static_cast<std::size_t>(which)])) {
          detail::CostSample sample;
          if (detail::measure_prefilter(rule, set.pcre2_match_limit, set.pcre2_depth_limit, *may_rewrite, &sample,
                                        &*loose) &&
              detail::rewrite_pays(sample, may_rewrite->size(), &why)) {
            loosened[id] = std::move(loose);
            set.rules[id].tier = Tier::kPrefilter;
            set.rules[id].confirm_min = set.rules[id].confirm_max = 0;  // measured on the text it replaced
            moved.emplace_back(id, "hyperscan compile: " + msg +
                                       "; " + std::string(kLoosenedPrefilter));
            continue;
          }
          if (!why.empty()) msg += "; loosened, " + why;
        }
      }
      demote.emplace_back(id, "hyperscan compile: " + msg);
      ids.erase(ids.begin() + which);
    } else {
      for (auto id : ids) demote.emplace_back(id, "hyperscan compile of the class failed: " + msg);
      ids.clear();
    }
  }
  return nullptr;
}

// One Hyperscan database to build: a class's UTF-8 rules, or one part of
// its byte-mode rules (split.h).
struct DbJob {
  std::size_t cls = 0;
  bool utf8 = false;
  std::vector<std::uint32_t> ids;  // after the compile: the rules it holds
  double estimate_ms = 0;          // split.h: the rules' compile times alone, summed
  HsDatabasePtr db;
  std::vector<std::pair<std::uint32_t, std::string>> demote, moved;
  double ms = 0;
};

// A class's databases to build: its byte-mode rules in one part, or in up to
// `max_parts` when they are estimated to compile slowly (split.h).
void add_class_jobs(const CompiledSet& set, std::size_t c, const std::vector<std::uint32_t>& members,
                    const std::vector<double>& cost_ms, unsigned max_parts, double min_ms,
                    std::vector<DbJob>& jobs) {
  std::vector<std::uint32_t> bytes_ids, utf8_ids;
  for (auto id : members) {
    const CompiledRule& cr = set.rules[id];
    if (!is_hs_tier(cr.tier)) continue;
    ((cr.rule.flags & kUtf8) ? utf8_ids : bytes_ids).push_back(id);
  }
  auto add = [&](bool utf8, std::vector<std::uint32_t> ids) {
    if (ids.empty()) return;
    double est = detail::estimate_ms(ids, cost_ms);
    jobs.push_back({c, utf8, std::move(ids), est, nullptr, {}, {}, 0});
  };
  for (auto& part : detail::split_rules(bytes_ids, cost_ms, max_parts, min_ms)) add(false, std::move(part));
  add(true, std::move(utf8_ids));
}

void compile_job(CompiledSet& set, DbJob& job, const detail::Calibration* may_rewrite,
                 const hs_platform_info_t* platform) {
  auto t0 = std::chrono::steady_clock::now();
  job.db = compile_db(set, job.ids, may_rewrite, platform, job.demote, job.moved);
  job.ms = ms_since(t0);
}

// The class's databases from its finished jobs (in the order they were
// added: byte-mode parts, then UTF-8); demotions go to `demoted`.
void finish_class(CompiledSet& set, ClassDatabases& cdb, const std::vector<std::uint32_t>& members,
                  std::vector<DbJob*> jobs, std::vector<std::pair<std::uint32_t, std::string>>& demoted) {
  std::vector<std::pair<std::uint32_t, std::string>> demote, moved;
  for (DbJob* j : jobs) {
    for (auto& d : j->demote) demote.push_back(std::move(d));
    for (auto& m : j->moved) moved.push_back(std::move(m));
    cdb.compile_ms += j->ms;
    // A part whose every rule was refused has no database and no rules.
    if (!j->db) continue;
    if (j->utf8) {
      cdb.utf8_db = std::move(j->db);
      cdb.utf8_rules = std::move(j->ids);
    } else if (!cdb.bytes_db) {
      cdb.bytes_db = std::move(j->db);
      cdb.bytes_rules = std::move(j->ids);
    } else {
      cdb.bytes_more.push_back({std::move(j->db), std::move(j->ids)});
    }
  }
  for (auto& [id, why] : demote) {
    set.rules[id].tier = Tier::kPcre2;
    set.rules[id].confirm_min = set.rules[id].confirm_max = 0;
  }
  // A loosened rule that was later refused anyway is reported once, demoted.
  for (auto& m : moved)
    if (set.rules[m.first].tier == Tier::kPrefilter) demote.push_back(std::move(m));
  for (auto id : members)
    if (set.rules[id].tier == Tier::kPcre2) cdb.pcre2_rules.push_back(id);
  demoted = std::move(demote);
}

std::size_t db_size(const HsDatabasePtr& db) {
  std::size_t n = 0;
  if (db && hs_database_size(db.get(), &n) == HS_SUCCESS) return n;
  return 0;
}

// Rules Hyperscan took too long to compile alone (ProbeLimits::measure, CPU
// time) get one more chance as a prefilter of their loosened form
// (rewrite.h: bounded repeats opened, negative look-arounds dropped; a
// superset).  Their bounded repeats of wide classes are what is slow to
// compile (SpamAssassin's `__FONT_INVIS`: `[^>]{1,80}` twice, a look-ahead,
// several seconds alone); loosened, Hyperscan anchors on their literals and
// PCRE2 confirms the few buffers that have them, where before PCRE2 alone
// or an RE2 set scanned every buffer.  The loosened form is probed and
// measured under the same bounds but a longer compile deadline
// (kLoosenedCompileLimit), and the planner weighs it like any prefilter (one
// that fires on the calibration text pays PCRE2 too).
void second_probe(CompiledSet& set, const std::vector<detail::ProbeInput>& inputs, detail::ProbeLimits limits,
                  const detail::Calibration& cal, std::vector<detail::ProbeResult>& probes) {
  limits.measure = std::max(limits.measure, kLoosenedCompileLimit);
  std::vector<std::size_t> which;
  std::vector<detail::ProbeInput> again;
  for (std::size_t i = 0; i < probes.size(); ++i) {
    if (probes[i].measured != detail::HsMeasure::kTooSlow || probes[i].tier == Tier::kPcre2) continue;
    auto loose = detail::loosen_for_prefilter(set.rules[i].rule, inputs[i].expression);
    if (!loose) continue;
    detail::ProbeInput in = inputs[i];
    in.expression = std::move(*loose);
    in.prefilter_only = true;
    which.push_back(i);
    again.push_back(std::move(in));
  }
  if (again.empty()) return;
  auto results = detail::probe_patterns(again, limits, cal);
  for (std::size_t k = 0; k < which.size(); ++k) {
    detail::ProbeResult& r = results[k];
    if (r.tier != Tier::kPrefilter || r.measured != detail::HsMeasure::kDone) continue;
    const std::size_t i = which[k];
    r.reason = (probes[i].reason.empty() ? std::string() : probes[i].reason + "; ") +
               "slow to compile as written: " + std::string(kLoosenedPrefilter);
    probes[i] = std::move(r);
    set.rules[i].hs_expression = std::move(again[k].expression);
  }
}

}  // namespace

Result<std::shared_ptr<const Scanner>> Scanner::compile(const RuleSet& rules, const CompileOptions& options,
                                                        CompileReport* report) {
  auto t_start = std::chrono::steady_clock::now();
  // Chosen before the probe forks its children, which then inherit it
  // (hs_runtime.h).
  (void)detail::hs_runtime();
  CompileReport local;
  CompileReport& rep = report ? *report : local;
  rep = CompileReport{};
  rep.rejected = rules.rejected;
  rep.skipped = rules.skipped;

  auto set = std::make_unique<CompiledSet>();
  set->pcre2_match_limit = options.pcre2_match_limit;
  set->pcre2_depth_limit = options.pcre2_depth_limit;

  // 1. PCRE2 is the reference: a pattern it refuses is rejected outright.
  //    Ids are checked again here because a RuleSet may be built by hand.
  std::unordered_set<std::string> seen_ids;
  std::vector<bool> allow_prefilter;  // see detail::ProbeInput
  set->rejected.emplace();
  for (std::size_t i = 0; i < rules.rules.size(); ++i) {
    const Rule& r = rules.rules[i];
    auto reject = [&](std::string why) {
      rep.rejected.push_back({r.source, r.line, r.id, why});
      set->rejected->push_back({static_cast<std::uint32_t>(i), std::move(why)});
    };
    if (!seen_ids.insert(r.id).second) {
      reject("duplicate rule id");
      continue;
    }
    std::string error;
    auto code = detail::pcre2_compile_rule(r, &error);
    if (!code) {
      reject(error);
      continue;
    }
    std::uint32_t backref_max = 0;
    pcre2_pattern_info(code.get(), PCRE2_INFO_BACKREFMAX, &backref_max);
    allow_prefilter.push_back(backref_max == 0);
    set->rules.push_back({r, Tier::kPcre2, 0, {}});
  }

  // 2. Classify (bounded per pattern; see probe.h).
  auto t_classify = std::chrono::steady_clock::now();
  std::vector<detail::ProbeInput> inputs;
  inputs.reserve(set->rules.size());
  const bool measure = options.cost_check && !options.pcre2_only;
  for (std::size_t i = 0; i < set->rules.size(); ++i)
    inputs.push_back({hs_expression_for(set->rules[i].rule),
                      hs_flags_for(set->rules[i].rule, Tier::kNative) & ~HS_FLAG_SOM_LEFTMOST, allow_prefilter[i],
                      measure});
  unsigned nthreads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  // Every measurement of this compile runs on this text (cost.h).
  const detail::Calibration cal(options);
  detail::ProbeLimits limits;
  limits.classify = options.probe_timeout;
  limits.children = nthreads;
  auto probes = options.pcre2_only
                    ? std::vector<detail::ProbeResult>(inputs.size(), {Tier::kPcre2, "pcre2-only build"})
                    : detail::probe_patterns(inputs, limits, cal);
  if (measure) second_probe(*set, inputs, limits, cal, probes);
  for (std::size_t i = 0; i < set->rules.size(); ++i) set->rules[i].tier = probes[i].tier;

  // 3. Group by class, then plan (planner.h): measured costs may move rules
  //    to PCRE2 alone or to RE2.
  std::map<std::string, std::vector<std::uint32_t>> by_class;
  for (std::uint32_t i = 0; i < set->rules.size(); ++i) by_class[set->rules[i].rule.cls].push_back(i);
  std::vector<std::vector<std::uint32_t>> members;
  for (auto& [cls, ids] : by_class) {
    ClassDatabases cdb;
    cdb.cls = cls;
    for (auto id : ids) set->rules[id].class_index = static_cast<std::uint32_t>(set->classes.size());
    set->classes.push_back(std::move(cdb));
    members.push_back(std::move(ids));
  }
  detail::Plan plan = detail::plan_rules(*set, set->classes.size(), nthreads, options, cal, probes);
  for (std::size_t i = 0; i < set->rules.size(); ++i) {
    if (probes[i].tier == Tier::kNative && plan.why[i].empty()) continue;
    std::string reason = probes[i].reason;
    if (!plan.why[i].empty()) reason += (reason.empty() ? "" : "; ") + plan.why[i];
    rep.demoted.emplace_back(set->rules[i].rule.id, std::move(reason));
  }
  for (std::size_t c = 0; c < set->classes.size(); ++c)
    for (auto& ids : plan.re2_sets[c]) set->classes[c].re2_sets.push_back(std::make_unique<Re2Partition>(std::move(ids)));
  rep.classify_ms = ms_since(t_classify);

  // 3b. Prefilters whose matches have bounded widths: PCRE2 confirms only
  //     near the ends Hyperscan reports (confirm_window.h).
  detail::parallel_for(set->rules.size(), nthreads, [&](std::size_t i) {
    CompiledRule& cr = set->rules[i];
    if (cr.tier != Tier::kPrefilter) return;
    if (auto w = detail::confirm_width(cr.rule, hs_expression_of(cr),
                                       hs_flags_for(cr.rule, Tier::kPrefilter) & ~HS_FLAG_SINGLEMATCH)) {
      cr.confirm_min = w->min;
      cr.confirm_max = w->max;
    }
  });

  // 4. Compile the classes' Hyperscan databases in parallel, a large class
  //    as several databases (split.h), balanced on what the probe measured.
  std::vector<double> compile_cost(set->rules.size(), -1);
  for (std::size_t i = 0; i < probes.size() && i < compile_cost.size(); ++i)
    compile_cost[i] = probes[i].hs_compile_ms;
  std::vector<DbJob> jobs;
  for (std::size_t c = 0; c < set->classes.size(); ++c)
    add_class_jobs(*set, c, members[c], compile_cost, nthreads, options.split_min_ms, jobs);
  // Longest first, so one big database does not start last.
  std::vector<std::size_t> order(jobs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
    return jobs[a].estimate_ms != jobs[b].estimate_ms ? jobs[a].estimate_ms > jobs[b].estimate_ms
                                                      : jobs[a].ids.size() > jobs[b].ids.size();
  });
  // Unset: this CPU, as far as the scan code this process runs goes
  // (current_platform(), hs_runtime.h); not nullptr, which is all of the CPU.
  hs_platform_info_t platform{};
  if (options.platform) {
    platform.tune = options.platform->tune;
    platform.cpu_features = options.platform->cpu_features;
  } else if (auto here = current_platform()) {
    platform.tune = here->tune;
    platform.cpu_features = here->cpu_features;
  } else {
    return here.error();
  }
  const hs_platform_info_t* target = &platform;
  // Superset rewrites need the cost check's measurement to pay off.
  detail::parallel_for(order.size(), nthreads, [&](std::size_t k) {
    compile_job(*set, jobs[order[k]], options.cost_check ? &cal : nullptr, target);
  });
  std::vector<std::vector<DbJob*>> class_jobs(set->classes.size());
  for (auto& j : jobs) class_jobs[j.cls].push_back(&j);
  std::vector<std::vector<std::pair<std::uint32_t, std::string>>> demoted(set->classes.size());
  for (std::size_t c = 0; c < set->classes.size(); ++c)
    finish_class(*set, set->classes[c], members[c], std::move(class_jobs[c]), demoted[c]);
  for (auto& d : demoted)
    for (auto& [id, why] : d) rep.demoted.emplace_back(set->rules[id].rule.id, why);

  for (const auto& cdb : set->classes) {
    ClassReport cr;
    cr.cls = cdb.cls;
    cr.compile_ms = cdb.compile_ms;
    cr.database_bytes = db_size(cdb.bytes_db) + db_size(cdb.utf8_db);
    cr.byte_parts = (cdb.bytes_db ? 1 : 0) + cdb.bytes_more.size();
    for (auto id : cdb.bytes_rules) (set->rules[id].tier == Tier::kNative ? cr.native : cr.prefilter)++;
    for (const auto& part : cdb.bytes_more) {
      cr.database_bytes += db_size(part.db);
      for (auto id : part.rules) (set->rules[id].tier == Tier::kNative ? cr.native : cr.prefilter)++;
    }
    for (auto id : cdb.utf8_rules) (set->rules[id].tier == Tier::kNative ? cr.native : cr.prefilter)++;
    cr.pcre2 = cdb.pcre2_rules.size();
    for (const auto& part : cdb.re2_sets)
      for (auto id : part->rules()) (set->rules[id].tier == Tier::kRe2 ? cr.re2 : cr.re2_prefilter)++;
    cr.re2_sets = cdb.re2_sets.size();
    rep.classes.push_back(cr);
  }
  for (std::size_t i = 0; i < set->rules.size(); ++i) {
    const CompiledRule& r = set->rules[i];
    rep.plan.push_back({r.rule.id, r.rule.cls, r.tier, r.cost, plan.why[i].empty() ? probes[i].reason : plan.why[i]});
  }
  // Parse errors and compile rejections come from two passes; users read them
  // in file order.
  std::stable_sort(rep.rejected.begin(), rep.rejected.end(), [](const RuleError& a, const RuleError& b) {
    return std::tie(a.source, a.line) < std::tie(b.source, b.line);
  });
  rep.rules_total = set->rules.size();
  set->init_pcre2_slots();
  auto scanner = from_compiled(std::move(set));
  rep.total_ms = ms_since(t_start);
  return scanner;
}

}  // namespace regexd::engine
