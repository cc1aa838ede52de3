// The planner and the RE2 tier (engine/src/planner.h, re2_partition.h).
// Which engine the planner picks depends on measured time, so the scanner's
// RE2 path is tested on sets whose tiers are fixed by hand; every answer is
// checked against plain PCRE2 (tests/support/pcre2_reference.h).
#include <gtest/gtest.h>

#include <hs.h>

#include <atomic>
#include <cctype>
#include <future>
#include <limits>
#include <stop_token>
#include <thread>

#include "cost.h"
#include "pcre2_reference.h"
#include "planner.h"
#include "probe.h"
#include "scanner_state.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"

namespace {

using namespace regexd::engine;

Rule make_rule(std::string id, std::string pattern, std::uint32_t flags = 0, unsigned max_hits = 0) {
  Rule r;
  r.id = std::move(id);
  r.cls = "body";
  r.pattern = std::move(pattern);
  r.flags = flags;
  r.max_hits = max_hits;
  r.source = "test";
  return r;
}

// One class "body"; rules listed in `parts` are in RE2::Sets, the others
// (tier kPcre2) in the PCRE2 list.
std::shared_ptr<const Scanner> hand_built(const std::vector<std::pair<Rule, Tier>>& rules,
                                          const std::vector<std::vector<std::uint32_t>>& parts) {
  auto set = std::make_unique<CompiledSet>();
  ClassDatabases cdb;
  cdb.cls = "body";
  for (std::uint32_t i = 0; i < rules.size(); ++i) {
    set->rules.push_back({rules[i].first, rules[i].second, 0, {}});
    if (rules[i].second == Tier::kPcre2) cdb.pcre2_rules.push_back(i);
  }
  for (const auto& p : parts) cdb.re2_sets.push_back(std::make_unique<Re2Partition>(p));
  set->classes.push_back(std::move(cdb));
  auto s = Scanner::from_compiled(std::move(set));
  EXPECT_TRUE(s.ok());
  return s.value();
}

unsigned hits_of(const ScanResult& r, const std::string& id) {
  for (const auto& [rid, n] : r.hits)
    if (rid == id) return n;
  return 0;
}

const std::vector<std::string> kInputs = {
    "", "foo bar", "foo\x0b" "bar", "foo\tbar and more", "foobar", "FOO BAR", "a catfishz here", "catdogz",
    "cat\xe9z", "ab ab ab ab", "ab", "x\n", "x\ny", "x", "aa foo  bar", "\xc9t\xe9", "\xe9t\xe9"};

void expect_same_as_pcre2(const Scanner& scanner, const std::vector<Rule>& rules) {
  for (const auto& in : kInputs) {
    auto r = scanner.scan("body", in);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->limited.empty());
    for (const auto& rule : rules) {
      regexd::testing::Pcre2Reference ref(rule);
      ASSERT_TRUE(ref.valid()) << rule.pattern;
      auto want = ref.matches(in);
      ASSERT_TRUE(want.has_value());
      EXPECT_EQ(hits_of(*r, rule.id) > 0, *want) << rule.id << " /" << rule.pattern << "/ on '" << in << "'";
    }
  }
}

TEST(Re2Tier, SetsAnswerAsPcre2Does) {
  std::vector<Rule> rules = {
      make_rule("E_SPACE", "foo\\s+bar"),                 // \s with \x0b: RE2's own \s lacks it
      make_rule("S_LOOK", "\\bcat(?!dog)\\w+z"),          // look-ahead: superset, PCRE2 confirms
      make_rule("E_CASE", "\xe9t\xe9", kCaseless),       // PCRE2 folds ASCII only; RE2 would fold \xc9
      make_rule("E_DOLLAR", "x$"),                        // $ before a final newline
      make_rule("C_COUNT", "ab", 0, 3),                   // counted by PCRE2, capped at 3
  };
  auto scanner = hand_built({{rules[0], Tier::kRe2},
                             {rules[1], Tier::kRe2Prefilter},
                             {rules[2], Tier::kRe2},
                             {rules[3], Tier::kRe2},
                             {rules[4], Tier::kRe2}},
                            {{0, 1, 2}, {3, 4}});
  expect_same_as_pcre2(*scanner, rules);
  auto r = scanner->scan("body", "ab ab ab ab");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(hits_of(*r, "C_COUNT"), 3u);
  EXPECT_EQ(r->re2_fallbacks, 0u);
}

TEST(EngineTimes, EachEngineIsChargedForItsOwnWorkAndOnlyWhenAsked) {
  std::vector<Rule> rules = {make_rule("E_SPACE", "foo\\s+bar"), make_rule("BACKREF", "(a)\\1")};
  auto scanner = hand_built({{rules[0], Tier::kRe2}, {rules[1], Tier::kPcre2}}, {{0}});
  std::string big;
  while (big.size() < (1u << 20)) big += "foo x, not quite a match; ";
  auto plain = scanner->scan("body", big);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->time.hyperscan + plain->time.re2 + plain->time.pcre2, 0u);  // off by default
  ScanOptions measure;
  measure.measure_engines = true;
  auto timed = scanner->scan("body", big, measure);
  ASSERT_TRUE(timed.ok());
  EXPECT_EQ(timed->hits, plain->hits);
  // A pass over a MiB takes microseconds in either engine, whatever the clock.
  EXPECT_GT(timed->time.re2, 1000u);
  EXPECT_GT(timed->time.pcre2, 1000u);
}

TEST(Re2Tier, ASetThatCannotBeBuiltLeavesItsRulesToPcre2) {
  // A back-reference has no exact RE2 form: a set that claims one (a damaged
  // or hostile cache entry) cannot be built, and PCRE2 answers its rules.
  std::vector<Rule> rules = {make_rule("BACKREF", "(a)\\1"), make_rule("E_SPACE", "foo\\s+bar")};
  auto scanner = hand_built({{rules[0], Tier::kRe2}, {rules[1], Tier::kRe2}}, {{0, 1}});
  expect_same_as_pcre2(*scanner, rules);
  auto r = scanner->scan("body", "aa foo  bar");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(hits_of(*r, "BACKREF"), 1u);
  EXPECT_EQ(hits_of(*r, "E_SPACE"), 1u);
}

// Issue 13, warm start: a partition is built from the pattern the planner
// stored with the rule (CompiledRule::re2_pattern, kept in cache entries),
// not translated again.  Shown with a stored pattern that differs from the
// rule's translation: the set answers by the stored one.
TEST(Re2Tier, ASetIsBuiltFromTheStoredPatternWithoutTranslating) {
  auto set = std::make_unique<CompiledSet>();
  ClassDatabases cdb;
  cdb.cls = "body";
  set->rules.push_back({make_rule("R", "foo\\s+bar"), Tier::kRe2, 0, {}, "other"});
  cdb.re2_sets.push_back(std::make_unique<Re2Partition>(std::vector<std::uint32_t>{0}));
  set->classes.push_back(std::move(cdb));
  auto s = Scanner::from_compiled(std::move(set));
  ASSERT_TRUE(s.ok());
  ScanOptions first_hit;  // a yes/no answer: RE2's match is final, PCRE2 does not count
  first_hit.max_hits = 1;
  EXPECT_EQ(hits_of(*(*s)->scan("body", "an other text", first_hit), "R"), 1u);
  EXPECT_EQ(hits_of(*(*s)->scan("body", "foo bar", first_hit), "R"), 0u);
}

// warm_up() builds every set's lockstep DFA program (and no RE2::Set: every
// translation here is one the runner reads), and scans running while it does
// (which answer unbuilt sets with PCRE2 instead of waiting) give PCRE2's
// answers throughout.
TEST(Re2Tier, WarmUpBuildsEverySetAndScansMeanwhileAnswerAsPcre2) {
  std::vector<Rule> rules = {make_rule("E_SPACE", "foo\\s+bar"), make_rule("S_LOOK", "\\bcat(?!dog)\\w+z"),
                             make_rule("E_DOLLAR", "x$"), make_rule("C_COUNT", "ab", 0, 3),
                             make_rule("P_BACKREF", "(a)\\1")};
  auto scanner = hand_built({{rules[0], Tier::kRe2},
                             {rules[1], Tier::kRe2Prefilter},
                             {rules[2], Tier::kRe2},
                             {rules[3], Tier::kRe2},
                             {rules[4], Tier::kPcre2}},
                            {{0}, {1}, {2, 3}});
  for (const auto& p : scanner->compiled().classes[0].re2_sets) EXPECT_FALSE(p->dfa_built());
  std::atomic<bool> done{false};
  std::thread warm([&] {
    scanner->warm_up();
    done = true;
  });
  do expect_same_as_pcre2(*scanner, rules);
  while (!done);
  warm.join();
  for (const auto& p : scanner->compiled().classes[0].re2_sets) {
    EXPECT_TRUE(p->dfa_built());
    EXPECT_NE(p->dfa(scanner->compiled()), nullptr);
    EXPECT_FALSE(p->built());  // no RE2::Set needed
  }
  expect_same_as_pcre2(*scanner, rules);
  // A stop requested before it starts leaves the lazy build to the scans.
  auto lazy = hand_built({{rules[0], Tier::kRe2}}, {{0}});
  std::stop_source stop;
  stop.request_stop();
  lazy->warm_up(stop.get_token());
  EXPECT_FALSE(lazy->compiled().classes[0].re2_sets[0]->dfa_built());
  EXPECT_EQ(hits_of(*lazy->scan("body", "foo  bar"), "E_SPACE"), 1u);
  EXPECT_TRUE(lazy->compiled().classes[0].re2_sets[0]->dfa_built());
}

// A daemon publishes a loaded scanner and warms it up on another thread
// (warm_up_async).  Its first scans may start before that thread has done
// anything; they must already take the quick paths: no RE2::Set built by a
// scan, PCRE2 without JIT, and PCRE2's answers.  The warm-up is held at its
// start here to make that moment last.
TEST(Re2Tier, AnAsyncWarmUpCountsFromItsCallAndScansMeanwhileBuildNothingSlow) {
  std::vector<Rule> rules = {make_rule("E_SPACE", "foo\\s+bar"), make_rule("S_LOOK", "\\bcat(?!dog)\\w+z"),
                             make_rule("P_BACKREF", "(a)\\1")};
  auto scanner = hand_built({{rules[0], Tier::kRe2}, {rules[1], Tier::kRe2Prefilter}, {rules[2], Tier::kPcre2}},
                            {{0}, {1}});
  std::promise<void> go;
  std::shared_future<void> started = go.get_future().share();
  std::atomic<bool> ended{false};
  {
    auto warm = Scanner::warm_up_async(scanner, [started] { started.wait(); }, [&] { ended = true; });
    for (const char* text : {"foo  bar", "catnipz cat", "aa", "nothing"}) {
      auto r = scanner->scan("body", text);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->re2_fallbacks, 0u);  // not a fallback: a set not built yet
    }
    expect_same_as_pcre2(*scanner, rules);
    for (const auto& p : scanner->compiled().classes[0].re2_sets) {
      EXPECT_FALSE(p->dfa_built());
      EXPECT_FALSE(p->built());
    }
    go.set_value();
    warm.join();  // (destroying it would request a stop first)
  }
  EXPECT_TRUE(ended);
  for (const auto& p : scanner->compiled().classes[0].re2_sets) {
    EXPECT_TRUE(p->dfa_built());
    EXPECT_FALSE(p->built());  // the lockstep program answers; no RE2::Set
  }
  expect_same_as_pcre2(*scanner, rules);
}

// A set whose stored RE2 pattern uses syntax the lockstep runner does not
// read (here `.`, which RE2 reads but the translator never writes: a foreign
// or hand-edited entry) is answered by its RE2::Set; the other sets of the
// class still run as DFAs, and the answers stay PCRE2's.
TEST(Re2Tier, ASetTheRunnerCannotReadFallsBackToItsRe2Set) {
  std::vector<Rule> rules = {make_rule("E_SPACE", "foo\\s+bar"), make_rule("E_DOT", "c.t")};
  auto set = std::make_unique<CompiledSet>();
  ClassDatabases cdb;
  cdb.cls = "body";
  set->rules.push_back({rules[0], Tier::kRe2, 0, {}});
  set->rules.push_back({rules[1], Tier::kRe2, 0, {}});
  set->rules[1].re2_pattern = "c.t";  // RE2's `.` without (?s): every byte but \n, as PCRE2's
  cdb.re2_sets.push_back(std::make_unique<Re2Partition>(std::vector<std::uint32_t>{0}));
  cdb.re2_sets.push_back(std::make_unique<Re2Partition>(std::vector<std::uint32_t>{1}));
  set->classes.push_back(std::move(cdb));
  auto s = Scanner::from_compiled(std::move(set));
  ASSERT_TRUE(s.ok());
  const auto& scanner = *s;
  expect_same_as_pcre2(*scanner, rules);
  for (std::string text : {"cat", "c\nt", "foo bar cut", "c\xe9t", "ct"}) {
    auto r = scanner->scan("body", text);
    ASSERT_TRUE(r.ok());
    for (const auto& rule : rules) {
      regexd::testing::Pcre2Reference ref(rule);
      EXPECT_EQ(hits_of(*r, rule.id) > 0, ref.matches(text).value()) << rule.id << " on '" << text << "'";
    }
  }
  const auto& parts = scanner->compiled().classes[0].re2_sets;
  EXPECT_NE(parts[0]->dfa(scanner->compiled()), nullptr);
  EXPECT_EQ(parts[1]->dfa(scanner->compiled()), nullptr);
  EXPECT_FALSE(parts[0]->built());  // the DFA answered
  EXPECT_TRUE(parts[1]->built());   // the RE2::Set did
  auto r = scanner->scan("body", "foo  bar, a cot");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(hits_of(*r, "E_SPACE"), 1u);
  EXPECT_EQ(hits_of(*r, "E_DOT"), 1u);
  EXPECT_EQ(r->re2_fallbacks, 0u);
}

// A thread drops its state for a scanner that has been destroyed (a hot
// swap) on its next scan, DFA states included, rather than keeping it until
// newer scanners push it out.
TEST(Re2Tier, AThreadDropsItsStateForADestroyedScanner) {
  auto make = [] {
    auto set = std::make_unique<CompiledSet>();
    ClassDatabases cdb;
    cdb.cls = "body";
    set->rules.push_back({make_rule("E_SPACE", "foo\\s+bar"), Tier::kRe2, 0, {}});
    cdb.re2_sets.push_back(std::make_unique<Re2Partition>(std::vector<std::uint32_t>{0}));
    set->classes.push_back(std::move(cdb));
    return Scanner::from_compiled(std::move(set));
  };
  // A thread of its own: the test thread holds states of earlier tests.
  std::thread([&] {
    auto a = make(), b = make();
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE((*a)->scan("body", "foo  bar").ok());
    ASSERT_TRUE((*b)->scan("body", "foo  bar").ok());
    EXPECT_EQ(regexd::engine::detail::thread_scanner_states(), 2u);
    a = make();  // the first scanner is destroyed
    auto r = (*b)->scan("body", "foo  bar");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(hits_of(*r, "E_SPACE"), 1u);
    EXPECT_EQ(regexd::engine::detail::thread_scanner_states(), 1u);
  }).join();
}

// LazyPcre2's quick program (no JIT) serves until the JIT program exists,
// and from then on the JIT program is what get_quick() returns.
TEST(Re2Tier, TheQuickPcre2ProgramGivesWayToTheJitOneOnceBuilt) {
  LazyPcre2 p;
  Rule r = make_rule("R", "foo\\s+bar");
  const auto* quick = p.get_quick(r);
  ASSERT_NE(quick, nullptr);
  EXPECT_EQ(p.get_quick(r), quick);  // compiled once
  const auto* jit = p.get(r);
  ASSERT_NE(jit, nullptr);
  EXPECT_NE(jit, quick);
  EXPECT_EQ(p.get_quick(r), jit);
  // A rule's quick program asked for after its JIT one is the JIT one.
  LazyPcre2 q;
  const auto* first = q.get(r);
  EXPECT_EQ(q.get_quick(r), first);
}

TEST(Re2Tier, ARealCompileReportsAPlanForEveryRuleAndAnswersAsPcre2) {
  RuleSet set;
  std::vector<Rule> rules = {make_rule("LIT", "viagra"), make_rule("GAP", "\\bfree\\W{0,3}money\\b", kCaseless),
                             make_rule("LOOK", "click(?!\\s+here)\\s+\\w+"), make_rule("EMPTY", "(?:x)?"),
                             make_rule("SPACE", "foo\\s+bar")};
  set.rules = rules;
  CompileReport report;
  auto s = Scanner::compile(set, {}, &report);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(report.plan.size(), rules.size());
  std::size_t placed = 0;
  for (const auto& p : report.plan) EXPECT_GE(p.cost.pcre2_ns, 0) << p.id;  // PCRE2 is measured for every rule
  for (const auto& c : report.classes) placed += c.native + c.prefilter + c.pcre2 + c.re2 + c.re2_prefilter;
  EXPECT_EQ(placed, rules.size());
  expect_same_as_pcre2(**s, rules);
  // Rules the planner gave to RE2 carry the pattern it measured.
  for (const auto& cr : (*s)->compiled().rules) EXPECT_EQ(is_re2_tier(cr.tier), !cr.re2_pattern.empty()) << cr.rule.id;
}

TEST(Planner, TheCostCheckStillSendsSlowPrefiltersToPcre2) {
  detail::PlanSample s;
  s.cost.hs_ns = 750'000;  // SpamAssassin's FUZZY_PHARMACY as a prefilter, measured
  s.cost.pcre2_ns = 60'000;
  std::string why;
  EXPECT_EQ(detail::choose_tier(Tier::kPrefilter, s, 64 * 1024, &why), Tier::kPcre2);
  EXPECT_NE(why.find("MB/s"), std::string::npos) << why;
  why.clear();
  EXPECT_EQ(detail::choose_tier(Tier::kNative, s, 64 * 1024, &why), Tier::kNative);
  EXPECT_TRUE(why.empty());
}

// A class with a handful of Hyperscan rules (SpamAssassin's `full`: three)
// shares nothing in its database: a native rule clearly cheaper in PCRE2
// alone goes there.  In a big class, or within the noise margin, it stays.
TEST(Planner, ANativeRuleOfASmallClassGoesToPcre2WhenPcre2IsClearlyCheaper) {
  detail::PlanSample s;
  s.cost.hs_ns = 71'000;  // SpamAssassin's __LONGLINE, measured
  s.cost.pcre2_ns = 53'000;
  s.class_hs_rules = 3;
  std::string why;
  EXPECT_EQ(detail::choose_tier(Tier::kNative, s, 64 * 1024, &why), Tier::kPcre2);
  EXPECT_NE(why.find("nothing shared"), std::string::npos) << why;
  s.class_hs_rules = 400;
  EXPECT_EQ(detail::choose_tier(Tier::kNative, s, 64 * 1024, &why), Tier::kNative);
  s.class_hs_rules = 3;
  s.cost.hs_ns = 60'000;  // within 1.25x of PCRE2
  EXPECT_EQ(detail::choose_tier(Tier::kNative, s, 64 * 1024, &why), Tier::kNative);
  s.cost.hs_ns = 71'000;
  s.cost.pcre2_ns = -1;  // not measured
  EXPECT_EQ(detail::choose_tier(Tier::kNative, s, 64 * 1024, &why), Tier::kNative);
  s.cost.pcre2_ns = 53'000;
  s.hs_fired = true;  // it matches the text: PCRE2's time to a first match says nothing of a full scan
  EXPECT_EQ(detail::choose_tier(Tier::kNative, s, 64 * 1024, &why), Tier::kNative);
  s.hs_fired = false;  // a prefilter answers by the cost check's own bar
  EXPECT_EQ(detail::choose_tier(Tier::kPrefilter, s, 64 * 1024, &why), Tier::kPrefilter);
}

// A rule Hyperscan could not take alone in time leaves Hyperscan: for RE2
// when RE2 is cheaper than PCRE2 alone, else for PCRE2 (before, RE2 took every
// such rule).  SpamAssassin's __COMMENT_GIBBERISH: PCRE2 JIT finds `<!--` at
// once (~6 us per pass over the calibration text), RE2 runs its {100}
// repetition (~120 us); on 500 corpus messages 0.4 ms against 9.6 ms.
TEST(Planner, ARuleHyperscanCannotTakeAloneGoesToPcre2UnlessRe2IsCheaper) {
  CompiledSet set;
  set.rules.push_back({make_rule("GIBBERISH", "<!--(?:\\s{1,10}[-\\w'\"]{1,40}){100}", kCaseless | kMultiline),
                       Tier::kPrefilter, 0, {}});
  std::vector<detail::ProbeResult> probes(1);
  probes[0].tier = Tier::kPrefilter;
  probes[0].measured = detail::HsMeasure::kTooSlow;
  CompileOptions options;
  auto plan = detail::plan_rules(set, 1, 1, options, detail::Calibration::builtin(), probes);
  EXPECT_EQ(set.rules[0].tier, Tier::kPcre2) << plan.why[0];
  EXPECT_NE(plan.why[0].find("alone in PCRE2"), std::string::npos) << plan.why[0];
  EXPECT_GT(set.rules[0].cost.re2_ns, set.rules[0].cost.pcre2_ns);
}

// Compiles `pattern` alone as rule `id` with RE2 off (so that only the
// loosened prefilter competes with PCRE2 alone), expects the planner to make
// it a prefilter of its loosened form, and checks the scanner's answer on
// each input against PCRE2's.  Returns how many inputs match.
std::size_t expect_loosened_prefilter(const std::string& id, const std::string& pattern,
                                      const std::vector<std::string>& inputs) {
  RuleSet rs;
  rs.rules.push_back(make_rule(id, pattern));
  CompileOptions options;
  options.re2_tier = false;
  CompileReport report;
  auto s = Scanner::compile(rs, options, &report);
  EXPECT_TRUE(s.ok()) << s.error().message;
  if (!s.ok() || report.plan.size() != 1u) return 0;
  EXPECT_EQ(report.plan[0].tier, Tier::kPrefilter) << report.plan[0].why;
  EXPECT_NE(report.plan[0].why.find("loosened"), std::string::npos) << report.plan[0].why;
  regexd::testing::Pcre2Reference ref(rs.rules[0]);
  std::size_t matched = 0;
  for (const auto& in : inputs) {
    auto r = (*s)->scan("body", in);
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok()) continue;
    const bool expected = *ref.matches(in);
    EXPECT_EQ(hits_of(*r, id) > 0, expected) << in;
    matched += expected;
  }
  return matched;
}

// A rule Hyperscan takes too long to compile alone (ProbeLimits::measure of
// CPU time; this one ~2 s as a prefilter on an x86-64 core) gets a second
// probe of its loosened form (rewrite.h), which compiles in about a
// millisecond, and becomes a prefilter of that form that PCRE2 confirms.
TEST(Planner, ARuleTooSlowToCompileAsWrittenBecomesALoosenedPrefilter) {
  expect_loosened_prefilter("SLOW", "qz[^>]{1,10000}xj[^>]{1,10000}wv(?!d)",
                            {"qzAxjBwv", "qzAxjBwvd", "qzxjwv", "qz>xjBwv", "qzAxjBwvd qzAxjBwvx", "-qz xj\nwv-"});
}

// The same for a rule that opens with an atomic group, as SpamAssassin's
// `__FILL_THIS_FORM_PARTIAL_RAW` does ("(?>\s{0,50})"): the loosened form
// makes it an ordinary group (rewrite.h), and PCRE2's confirmation keeps
// the answer exact where the atomic group matters (five spaces: the group
// takes three, "\W?" one, and the fifth is not "qz").
TEST(Planner, ARuleWithAnAtomicGroupTooSlowToCompileBecomesALoosenedPrefilter) {
  const std::vector<std::string> inputs = {"qzAxjBwv",      "   -qzAxjBwv",     "    qzAxjBwv",
                                           "     qzAxjBwv", "\t\t\t\t\tqzxjwv", " -qz>xjBwv"};
  EXPECT_EQ(expect_loosened_prefilter("SLOW_ATOMIC", "^(?>\\s{0,3})\\W?qz[^>]{1,10000}xj[^>]{1,10000}wv", inputs), 3u);
}

// Rules with short repeats only share big RE2 sets (planner.h): the text
// test behind it, on what RE2 patterns look like.
TEST(Planner, ShortRepeatsOnlyIsATextTestOfTheRe2Pattern) {
  for (const char* p : {"foo[a-z]bar", "(?i)v[i1!|l][a@4]gra", "a{2}b{0,3}c?", "x\\{5,9}", "[*+]{1,3}",
                        "\\x{41}{3}", "\\p{L}{2}", "a{,5}", "[[:alpha:]*]x", "(?s:.)[\\]+]"})
    EXPECT_TRUE(detail::re2_short_repeats_only(p)) << p;
  for (const char* p : {"a*", "a+b", "a{4}", "a{1,4}", "a{2,}", "(?:ab){1,10}", "[a-z]{1,15}", "x.*?y", "[ab]+",
                        "\\x{41}+", "a{1,3}b{1,1000}", "[unclosed"})
    EXPECT_FALSE(detail::re2_short_repeats_only(p)) << p;
}

// Packing orders candidates by cost step (planner.h): costs closer than
// kSameCost may share a step, costs kSameCost or more apart never do, and
// the order of steps is the order of costs.
TEST(Planner, CostStepsGroupCloseCostsAndKeepTheOrderOfFarOnes) {
  EXPECT_EQ(detail::cost_step(0), 0);
  EXPECT_EQ(detail::cost_step(-5), 0);
  EXPECT_EQ(detail::cost_step(1), 0);
  EXPECT_EQ(detail::cost_step(std::numeric_limits<double>::infinity()), std::numeric_limits<long>::max());
  long same = 0;
  for (double ns = 2; ns < 1e9; ns *= 1.07) {
    EXPECT_LE(detail::cost_step(ns), detail::cost_step(ns * 1.07)) << ns;
    EXPECT_LT(detail::cost_step(ns), detail::cost_step(ns * detail::kSameCost)) << ns;
    EXPECT_LE(detail::cost_step(ns * detail::kSameCost), detail::cost_step(ns) + 1) << ns;
    same += detail::cost_step(ns) == detail::cost_step(ns * 1.07);
  }
  // Most costs 7% apart share a step (steps are 25% wide).
  EXPECT_GT(same, 150);
}

// ---- pack_sets with made-up costs ------------------------------------------

// `n` short-repeat candidates (ids from `first`), each costing `here` ns
// where it is and `re2` alone in RE2.
std::vector<detail::SetCandidate> candidates(std::uint32_t first, std::size_t n, double here, double re2) {
  std::vector<detail::SetCandidate> c;
  for (std::uint32_t i = first; i < first + n; ++i)
    c.push_back({i, here, re2, re2, 0, true, "w" + std::to_string(i) + "[a-z]{0,3}x"});
  return c;
}

// A meter whose set of k rules costs `first + step * (k - 1)` ns, counting
// its calls.
detail::SetMeter linear_meter(double first, double step, int* calls) {
  detail::SetMeter m;
  m.measure = [=](detail::SetGroup, const std::vector<std::string>& p, long long mem, detail::Re2Sample* out,
                  long long* used) {
    ++*calls;
    out->ns = first + step * static_cast<double>(p.size() - 1);
    *used = mem;
    return true;
  };
  m.multiplies = [](const std::vector<std::string>&, const detail::Re2Sample&, long long) { return false; };
  return m;
}

struct Packed {
  std::vector<std::vector<std::uint32_t>> sets;
  std::vector<std::string> why;
  std::vector<Tier> tier;
};

Packed pack(std::vector<detail::SetCandidate> c, const detail::SetMeter& m, detail::SetGroup g, std::size_t n) {
  Packed p{{}, std::vector<std::string>(n, "was here"), std::vector<Tier>(n, Tier::kNative)};
  p.sets = detail::pack_sets(c, m, p.why, p.tier, g);
  return p;
}

// After a full set of 64, the next short-repeat candidate is often a little
// short of paying alone while the dozens after it pay many times over
// together: the set forms anyway (before, it formed or not with that one
// rule's timing noise).
TEST(Planner, AShortRepeatSetStartsWithARuleThatPaysOnlyWithTheRulesThatJoinIt) {
  int calls = 0;
  auto m = linear_meter(6000, 100, &calls);
  auto c = candidates(0, 1, 10000, 6000);                        // pays alone
  for (auto& x : candidates(1, 69, 5000, 6000)) c.push_back(x);  // each short of paying alone
  auto p = pack(c, m, detail::SetGroup::kShortRepeats, 70);
  ASSERT_EQ(p.sets.size(), 2u);
  EXPECT_EQ(p.sets[0].size(), 64u);
  EXPECT_EQ(p.sets[1].size(), 6u);
  for (std::uint32_t i = 0; i < 70; ++i) EXPECT_EQ(p.tier[i], Tier::kRe2) << i;
  EXPECT_NE(p.why[0].find("starts a set of short-repeat rules"), std::string::npos) << p.why[0];
  const std::string& starter = p.why[p.sets[1].front()];
  EXPECT_NE(starter.find("pays with the rules that join it (6 rules: 30.0 us where they were, 6.5 us as a set)"),
            std::string::npos)
      << starter;

  // Only while the class has fewer than two short-repeat sets
  // (kTentativeUpTo): every set is one more DFA whose states new mail
  // builds.  With 139 candidates short of paying alone, the last 11 stay
  // where they are.
  c = candidates(0, 1, 10000, 6000);
  for (auto& x : candidates(1, 139, 5000, 6000)) c.push_back(x);
  p = pack(c, m, detail::SetGroup::kShortRepeats, 140);
  ASSERT_EQ(p.sets.size(), 2u);
  EXPECT_EQ(p.sets[0].size(), 64u);
  EXPECT_EQ(p.sets[1].size(), 64u);
  for (std::uint32_t i = 0; i < 140; ++i) EXPECT_EQ(p.tier[i], i < 128 ? Tier::kRe2 : Tier::kNative) << i;
}

// A tentative set whose rules together cost less where they were than the
// set does goes back whole: tiers and reasons as before, no set, and no
// more tentative starts in the group (the candidates left are cheaper).
TEST(Planner, ATentativeSetThatDoesNotPayGivesItsRulesBack) {
  int calls = 0;
  auto m = linear_meter(20000, 100, &calls);
  auto p = pack(candidates(0, 4, 3100, 20000), m, detail::SetGroup::kShortRepeats, 4);
  EXPECT_TRUE(p.sets.empty());
  for (std::uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(p.tier[i], Tier::kNative) << i;
    EXPECT_EQ(p.why[i], "was here") << i;
  }
  // The three joined one trial (4 rules: 12.4 us against 20.3 us as a set):
  // one measurement, then no other start.
  EXPECT_EQ(calls, 1);

  // Each join too dear: the first rule alone is given back, and the rest
  // are not tried as starters.
  calls = 0;
  auto dear = linear_meter(6000, 5500, &calls);
  auto q = pack(candidates(0, 8, 5000, 6000), dear, detail::SetGroup::kShortRepeats, 8);
  EXPECT_TRUE(q.sets.empty());
  for (std::uint32_t i = 0; i < 8; ++i) EXPECT_EQ(q.tier[i], Tier::kNative) << i;
  EXPECT_EQ(calls, 3);  // groups of 4, 2, 1 after the first rule
}

// Long-gap sets still start only with a rule that pays alone: their states
// multiply on mail, so the sum of what their rules cost is no bound.
TEST(Planner, ALongGapSetStartsOnlyWithARuleThatPaysAlone) {
  int calls = 0;
  auto m = linear_meter(6000, 100, &calls);
  auto p = pack(candidates(0, 6, 5000, 6000), m, detail::SetGroup::kLongGaps, 6);
  EXPECT_TRUE(p.sets.empty());
  EXPECT_EQ(calls, 0);
  auto q = pack(candidates(0, 6, 7000, 6000), m, detail::SetGroup::kLongGaps, 6);
  ASSERT_EQ(q.sets.size(), 1u);
  EXPECT_EQ(q.sets[0].size(), 6u);
}

// A set of many short-repeat rules (as SpamAssassin's look-alike rules end
// up) answers as PCRE2 does, within the scanner's DFA memory.
TEST(Re2Tier, ABigSetOfShortRepeatRulesAnswersAsPcre2) {
  std::vector<Rule> rules;
  std::vector<std::pair<Rule, Tier>> tiers;
  std::vector<std::uint32_t> all;
  const char* words[] = {"viagra", "cialis", "pharmacy", "casino", "lottery", "winner", "bitcoin", "wallet"};
  for (std::uint32_t i = 0; i < 48; ++i) {
    std::string w = words[i % 8], p;
    // Look-alike classes, a short gap after the (i/8)th letter.
    for (std::size_t k = 0; k < w.size(); ++k) {
      const std::string extra = w[k] == 'a' ? "@4" : w[k] == 'i' ? "1!" : "";
      p += "[" + std::string(1, w[k]) + static_cast<char>(std::toupper(w[k])) + extra + "]";
      if (k == i / 8) p += "[_\\W]{0,3}";
    }
    rules.push_back(make_rule("S" + std::to_string(i), p));
    EXPECT_TRUE(detail::re2_short_repeats_only(p)) << p;
    tiers.push_back({rules.back(), Tier::kRe2});
    all.push_back(i);
  }
  auto scanner = hand_built(tiers, {all});
  for (std::string in : {"cheap V1agra and c-i-a-l-i-s here", "pharm__acy casino w1nner", "B1TCO1N walle t",
                         "nothing to see", "l0ttery lottery", "wa--llet vi...agra"}) {
    auto r = scanner->scan("body", in);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->re2_fallbacks, 0u);
    for (const auto& rule : rules) {
      regexd::testing::Pcre2Reference ref(rule);
      EXPECT_EQ(hits_of(*r, rule.id) > 0, *ref.matches(in)) << rule.id << " /" << rule.pattern << "/ on '" << in << "'";
    }
  }
}

TEST(Planner, TheProbeMeasuresEachRuleAloneInItsTier) {
  std::vector<detail::ProbeInput> in = {
      {"foo\\d+bar", HS_FLAG_SINGLEMATCH, true, true},
      {"(?:x)?", HS_FLAG_SINGLEMATCH, true, true},  // can match empty: pcre2 tier, nothing to measure
      {"foo\\d+bar", HS_FLAG_SINGLEMATCH, true, false},
  };
  detail::ProbeLimits limits;
  limits.children = 2;
  limits.measure = std::chrono::seconds(30);  // under qemu a compile alone can take over the 250 ms default
  auto out = detail::probe_patterns(in, limits, detail::Calibration::builtin());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].tier, Tier::kNative);
  EXPECT_EQ(out[0].measured, detail::HsMeasure::kDone);
  EXPECT_GT(out[0].hs_ns, 0);
  EXPECT_EQ(out[1].tier, Tier::kPcre2);
  EXPECT_EQ(out[1].measured, detail::HsMeasure::kNone);
  EXPECT_EQ(out[2].measured, detail::HsMeasure::kNone);
}

}  // namespace
