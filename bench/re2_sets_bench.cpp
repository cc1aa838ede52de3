// What SpamAssassin's body costs in RE2 sets, and what the other ways to run
// the same rules cost: the measurements behind docs/benchmarks.md ("Where
// body's time goes").  Not a comparison with peers (regexd_scan_bench is),
// but the planner's choice set against its alternatives, on the corpus.
//
// The rules are those regexd's planner gives RE2 in the class `body`, with
// the patterns the scanner runs (CompiledRule::re2_pattern, else the
// engine's translation), grouped as the planner grouped them unless a
// benchmark regroups them.  Messages: the scan benchmark's 500.
//
// Benchmarks (CPU ms per pass over the messages; one warm pass first, which
// builds the DFA states these messages need):
//   re2/planned/message_major   the planner's sets, each message through all
//                               of them in turn (the scanner's order)
//   re2/planned/set_major       the same sets, each over all messages in turn
//   re2/chunks:N/mem:M          the same rules in sets of N (in plan order)
//                               with M MiB of DFA memory each (8: the scanner's)
//   hs/re2_rules_alone          the same rules in Hyperscan, each in a
//                               database of its own (sum; `refused` counts
//                               those Hyperscan does not compile)
//   hs/class_databases          body's own Hyperscan databases, alone
//   floor/rawbody               every rawbody rule alone in the cheaper of
//                               Hyperscan (a database of its own, its tier's
//                               expression) and PCRE2 (JIT, up to the first
//                               match), summed (`cheaper_sum_ms`; prefilters
//                               without their confirmations, so a lower
//                               bound); timed: the class's own databases
//   re2_peer/one_set/mem:M      one RE2::Set of every body rule with an exact
//                               RE2 translation (scan bench's peer, with
//                               regexd's translations) and M MiB;
//                               `heap_growth_mb` is what its DFA took,
//                               `first_pass_ms` the pass that built it
// REGEXD_BENCH_SMOKE=1: a few messages (the rules stay SpamAssassin's; the
// benchmarks that compile each rule alone take only the first few).
//
// The program uses the engine's internal translator header (engine/src), as
// the planner does: it measures the planner's own inputs.
#include <benchmark/benchmark.h>
#include <hs.h>
#include <re2/set.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "pcre2_reference.h"  // tests/support: PCRE2 compiled as regexd compiles it
#include "re2_partition.h"    // engine/src: the patterns the scanner runs
#include "re2_translate.h"    // engine/src: the planner's translations
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"

namespace {

using namespace regexd;
namespace detail = regexd::engine::detail;

const std::vector<std::string>& messages() {
  static const std::vector<std::string> m = bench::corpus_messages(bench::message_count(500, 20));
  return m;
}

// How many of `n` rules a benchmark that compiles every rule alone takes:
// all of them, or in the smoke run the first few (those compiles were most of
// the smoke run's minute; it only has to prove the benchmark still runs).
std::size_t per_rule_count(std::size_t n) { return bench::smoke() ? std::min<std::size_t>(n, 8) : n; }

// SpamAssassin's rules without headers, read once for every benchmark.
const engine::RuleSet& sa_rules() {
  static const engine::RuleSet rules = bench::spamassassin_rules(false);
  return rules;
}

struct Workload {
  std::shared_ptr<const engine::Scanner> scanner;
  const engine::ClassDatabases* body = nullptr;
  std::vector<std::vector<std::string>> planned;                  // the planner's sets, as patterns
  std::vector<std::string> re2_rules;                             // the same, flattened in plan order
  std::vector<std::pair<std::string, unsigned>> re2_rules_in_hs;  // expression, Hyperscan flags
  std::vector<std::string> exact_all;                             // every body rule with an exact RE2 translation
  std::string error;
};

Workload make_workload() {
  Workload w;
  auto body = bench::filter_rules(sa_rules(), [](const engine::Rule& r) { return r.cls == "body"; });
  if (body.rules.empty()) {
    w.error = "no SpamAssassin body rules (install spamassassin)";
    return w;
  }
  for (const auto& r : body.rules) {
    std::string why;
    if (auto t = detail::re2_exact(r, &why)) w.exact_all.push_back(t->pattern);
  }
  engine::CompileReport report;
  auto s = engine::Scanner::compile(body, {}, &report);
  if (!s) {
    w.error = "compile failed: " + s.error().message;
    return w;
  }
  w.scanner = *s;
  const engine::CompiledSet& cs = w.scanner->compiled();
  for (const auto& c : cs.classes)
    if (c.cls == "body") w.body = &c;
  if (!w.body || w.body->re2_sets.empty()) {
    w.error = "the planner gave RE2 no body rules on this machine";
    return w;
  }
  for (const auto& part : w.body->re2_sets) {
    std::vector<std::string> pats;
    for (auto id : part->rules()) {
      const engine::CompiledRule& cr = cs.rules[id];
      std::string why;
      auto pat = detail::re2_pattern_of(cr, &why);
      if (!pat) {
        w.error = cr.rule.id + ": no RE2 translation: " + why;
        return w;
      }
      pats.push_back(*pat);
      w.re2_rules.push_back(*pat);
      // In Hyperscan: natively where RE2 answers exactly, else as a prefilter.
      const auto tier = cr.tier == engine::Tier::kRe2 ? engine::Tier::kNative : engine::Tier::kPrefilter;
      w.re2_rules_in_hs.emplace_back(engine::hs_expression_for(cr.rule), engine::hs_flags_for(cr.rule, tier));
    }
    w.planned.push_back(std::move(pats));
  }
  return w;
}

const Workload& workload() {
  static const Workload w = make_workload();
  return w;
}

using SetPtr = std::unique_ptr<re2::RE2::Set>;

std::vector<SetPtr> build_sets(const std::vector<std::vector<std::string>>& groups, long long max_mem,
                               std::string* error) {
  std::vector<SetPtr> sets;
  for (const auto& g : groups) {
    auto s = std::make_unique<re2::RE2::Set>(detail::re2_options(max_mem), re2::RE2::UNANCHORED);
    for (const auto& p : g)
      if (s->Add(p, error) < 0) return {};
    if (!s->Compile()) {
      *error = "RE2::Set::Compile failed";
      return {};
    }
    sets.push_back(std::move(s));
  }
  return sets;
}

// One pass; returns the number of (set, message) answers and counts the
// matches RE2 gave up on (out of DFA memory) in *failed.
std::size_t pass(const std::vector<SetPtr>& sets, bool message_major, std::size_t* failed) {
  std::vector<int> m;
  std::size_t hits = 0;
  auto one = [&](const re2::RE2::Set& s, const std::string& msg) {
    re2::RE2::Set::ErrorInfo e{};
    if (!s.Match(msg, &m, &e) && e.kind != re2::RE2::Set::kNoError) ++*failed;
    hits += m.size();
  };
  if (message_major) {
    for (const auto& msg : messages())
      for (const auto& s : sets) one(*s, msg);
  } else {
    for (const auto& s : sets)
      for (const auto& msg : messages()) one(*s, msg);
  }
  return hits;
}

void run_sets(benchmark::State& state, const std::vector<std::vector<std::string>>& groups, long long max_mem,
              bool message_major) {
  std::string error;
  const double heap0 = bench::heap_mb();
  auto sets = build_sets(groups, max_mem, &error);
  if (sets.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::size_t failed = 0;
  auto t0 = std::chrono::steady_clock::now();
  const std::size_t hits = pass(sets, message_major, &failed);  // builds the DFA states
  const double first_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (auto _ : state)
    if (pass(sets, message_major, &failed) != hits) state.SkipWithError("answers changed between passes");
  std::size_t rules = 0;
  for (const auto& g : groups) rules += g.size();
  state.counters["sets"] = static_cast<double>(groups.size());
  state.counters["rules"] = static_cast<double>(rules);
  state.counters["hits_per_pass"] = static_cast<double>(hits);
  state.counters["gave_up"] = static_cast<double>(failed);  // Match() out of DFA memory, all passes
  state.counters["first_pass_ms"] = first_ms;
  state.counters["heap_growth_mb"] = bench::heap_mb() - heap0;
}

std::vector<std::vector<std::string>> chunks(const std::vector<std::string>& all, std::size_t n) {
  std::vector<std::vector<std::string>> out;
  for (std::size_t i = 0; i < all.size(); i += n)
    out.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(i),
                     all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + n)));
  return out;
}

bool ready(benchmark::State& state) {
  const Workload& w = workload();
  if (w.error.empty()) return true;
  state.SkipWithError(w.error.c_str());
  for (auto _ : state) {
  }
  return false;
}

int count_match(unsigned, unsigned long long, unsigned long long, unsigned, void*) { return 0; }

// Every message through `db`; false if a scan failed.
bool hs_pass(const hs_database_t* db, hs_scratch_t* scratch) {
  for (const auto& msg : messages())
    if (hs_scan(db, msg.data(), static_cast<unsigned>(msg.size()), 0, scratch, count_match, nullptr) != HS_SUCCESS)
      return false;
  return true;
}

struct HsDb {
  hs_database_t* db = nullptr;
  hs_scratch_t* scratch = nullptr;
  ~HsDb() {
    hs_free_scratch(scratch);
    hs_free_database(db);
  }
};

// The timed loop: every message through a class's byte-mode Hyperscan
// databases (what the scanner runs first for that class).
void time_class_databases(benchmark::State& state, const engine::ClassDatabases& c) {
  std::vector<const hs_database_t*> dbs;
  if (c.bytes_db) dbs.push_back(c.bytes_db.get());
  for (const auto& part : c.bytes_more) dbs.push_back(part.db.get());
  hs_scratch_t* scratch = nullptr;
  for (const auto* db : dbs)
    if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
      state.SkipWithError("hs_alloc_scratch failed");
      return;
    }
  std::unique_ptr<hs_scratch_t, decltype(&hs_free_scratch)> owned(scratch, hs_free_scratch);
  for (auto _ : state)
    for (const auto* db : dbs)
      if (!hs_pass(db, scratch)) state.SkipWithError("hs_scan failed");
}

// Best of three passes of `pass` over the messages, in ms.
template <typename F>
double best_ms(F pass) {
  double best = 1e300;
  for (int k = 0; k < 3; ++k) {
    auto t0 = std::chrono::steady_clock::now();
    pass();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Each rule of `cls` alone: Hyperscan (its own database, in its tier, or
// native for rules of the other tiers; -1 if it does not compile) and PCRE2
// (JIT, first match per message).
void floor_of_class(benchmark::State& state, const std::string& cls) {
  auto rules = bench::filter_rules(sa_rules(), [&](const engine::Rule& r) { return r.cls == cls; });
  rules.rules.resize(per_rule_count(rules.rules.size()));
  engine::CompileReport report;
  auto s = engine::Scanner::compile(rules, {}, &report);
  if (rules.rules.empty() || !s) {
    state.SkipWithError(("no " + cls + " rules compiled").c_str());
    return;
  }
  const engine::CompiledSet& cs = (*s)->compiled();
  double hs_sum = 0, pcre2_sum = 0, cheaper_sum = 0;
  std::size_t n = 0, hs_refused = 0;
  for (const auto& cr : cs.rules) {
    if (cr.rule.cls != cls) continue;
    ++n;
    double hs_ms = -1;
    const auto tier = cr.tier == engine::Tier::kPrefilter ? engine::Tier::kPrefilter : engine::Tier::kNative;
    const std::string expr = engine::hs_expression_of(cr);
    HsDb d;
    hs_compile_error_t* err = nullptr;
    if (hs_compile(expr.c_str(), engine::hs_flags_for(cr.rule, tier), HS_MODE_BLOCK, nullptr, &d.db, &err) ==
            HS_SUCCESS &&
        hs_alloc_scratch(d.db, &d.scratch) == HS_SUCCESS) {
      hs_ms = best_ms([&] { hs_pass(d.db, d.scratch); });
      hs_sum += hs_ms;
    } else {
      hs_free_compile_error(err);
      ++hs_refused;
    }
    pcre2_code* code = testing::compile_reference(cr.rule);
    if (!code) {
      state.SkipWithError((cr.rule.id + ": PCRE2 refuses it").c_str());
      return;
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    const double pcre2_ms = best_ms([&] {
      for (const auto& msg : messages())
        pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(msg.data()), msg.size(), 0, 0, md, nullptr);
    });
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    pcre2_sum += pcre2_ms;
    cheaper_sum += hs_ms >= 0 ? std::min(hs_ms, pcre2_ms) : pcre2_ms;
  }
  for (const auto& c : cs.classes)
    if (c.cls == cls) time_class_databases(state, c);
  state.counters["rules"] = static_cast<double>(n);
  state.counters["hs_refused"] = static_cast<double>(hs_refused);
  state.counters["hs_alone_sum_ms"] = hs_sum;
  state.counters["pcre2_alone_sum_ms"] = pcre2_sum;
  state.counters["cheaper_sum_ms"] = cheaper_sum;
}

void register_all() {
  constexpr long long kMiB = 1 << 20;
  benchmark::RegisterBenchmark("re2/planned/message_major", [](benchmark::State& state) {
    if (ready(state)) run_sets(state, workload().planned, detail::re2_options().max_mem(), true);
  });
  benchmark::RegisterBenchmark("re2/planned/set_major", [](benchmark::State& state) {
    if (ready(state)) run_sets(state, workload().planned, detail::re2_options().max_mem(), false);
  });
  for (std::size_t n : {12, 0}) {  // 0: all in one set
    for (long long mem : {8, 1024}) {
      std::string name = "re2/chunks:" + (n ? std::to_string(n) : std::string("all")) + "/mem:" + std::to_string(mem);
      benchmark::RegisterBenchmark(name.c_str(), [n, mem](benchmark::State& state) {
        if (!ready(state)) return;
        const auto& all = workload().re2_rules;
        run_sets(state, chunks(all, n ? n : all.size()), mem * kMiB, true);
      })->Iterations(1);
    }
  }
  benchmark::RegisterBenchmark("hs/re2_rules_alone", [](benchmark::State& state) {
    if (!ready(state)) return;
    std::vector<std::unique_ptr<HsDb>> dbs;
    std::size_t refused = 0;
    const auto& in_hs = workload().re2_rules_in_hs;
    for (std::size_t i = 0; i < per_rule_count(in_hs.size()); ++i) {
      const auto& [expr, flags] = in_hs[i];
      auto d = std::make_unique<HsDb>();
      hs_compile_error_t* err = nullptr;
      if (hs_compile(expr.c_str(), flags, HS_MODE_BLOCK, nullptr, &d->db, &err) != HS_SUCCESS) {
        hs_free_compile_error(err);
        ++refused;
        continue;
      }
      if (hs_alloc_scratch(d->db, &d->scratch) != HS_SUCCESS) {
        state.SkipWithError("hs_alloc_scratch failed");
        return;
      }
      dbs.push_back(std::move(d));
    }
    for (auto _ : state)
      for (const auto& d : dbs)
        if (!hs_pass(d->db, d->scratch)) state.SkipWithError("hs_scan failed");
    state.counters["rules"] = static_cast<double>(dbs.size());
    state.counters["refused"] = static_cast<double>(refused);
  })->Iterations(3);
  benchmark::RegisterBenchmark("hs/class_databases", [](benchmark::State& state) {
    if (!ready(state)) return;
    const engine::ClassDatabases& c = *workload().body;
    time_class_databases(state, c);
    std::size_t rules = c.bytes_rules.size();
    for (const auto& part : c.bytes_more) rules += part.rules.size();
    state.counters["rules"] = static_cast<double>(rules);
    state.counters["databases"] = static_cast<double>(1 + c.bytes_more.size());
  });
  benchmark::RegisterBenchmark("floor/rawbody", [](benchmark::State& state) {
    floor_of_class(state, "rawbody");
  })->Unit(benchmark::kMillisecond);
  for (long long mem : {64, 256, 1024}) {
    std::string name = "re2_peer/one_set/mem:" + std::to_string(mem);
    benchmark::RegisterBenchmark(name.c_str(), [mem](benchmark::State& state) {
      if (ready(state)) run_sets(state, {workload().exact_all}, mem * kMiB, true);
    })->Iterations(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (messages().empty()) {
    std::fprintf(stderr, "re2 sets bench: no corpus messages; run scripts/fetch-corpus.sh or set REGEXD_CORPUS_DIR\n");
    return 1;
  }
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
