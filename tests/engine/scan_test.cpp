// Scanner behaviour on hand-written edge cases: every case is checked against
// plain PCRE2 (tests/support/pcre2_reference.h), and the interesting ones
// against a literal expectation as well.
#include <gtest/gtest.h>

#include <thread>

#include "pcre2_reference.h"
#include "regexd/engine/engine.h"
#include "test_rule.h"

namespace {

using namespace regexd::engine;

using regexd::testing::test_rule;
Rule make_rule(std::string id, std::string pattern, std::string flags = "", std::string cls = "body") {
  return test_rule(std::move(id), std::move(pattern), std::move(flags), std::move(cls));
}

std::shared_ptr<const Scanner> compile_or_die(const RuleSet& set, CompileReport* report = nullptr,
                                              const CompileOptions& options = {}) {
  auto s = Scanner::compile(set, options, report);
  EXPECT_TRUE(s.ok());
  return s.value();
}

bool matched(const ScanResult& r, const std::string& id) {
  for (const auto& [rid, n] : r.hits)
    if (rid == id) return true;
  return false;
}

unsigned hits_of(const ScanResult& r, const std::string& id) {
  for (const auto& [rid, n] : r.hits)
    if (rid == id) return n;
  return 0;
}

struct Case {
  std::string pattern, flags, buffer;
  bool expect;
};

std::string long_line(std::size_t n, char c) { return std::string(n, c); }

const std::vector<Case>& edge_cases() {
  static const std::vector<Case> cases = {
      // anchors and line ends
      {"^foo", "", "foo bar", true},
      {"^bar", "", "foo\nbar", false},
      {"^bar", "m", "foo\nbar", true},
      {"foo$", "", "foo\n", true},  // $ before a final newline
      {"foo$", "", "foo\n\n", false},
      {"foo$", "m", "foo\n\n", true},
      {"foo\\z", "", "foo\n", false},
      {"foo\\Z", "", "foo\n", true},
      {"\\Afoo", "", "xfoo", false},
      {"a.c", "", "a\nc", false},
      {"a.c", "s", "a\nc", true},
      {"a\\Rc", "", "a\r\nc", true},
      // word boundaries
      {"\\bcat\\b", "", "concat", false},
      {"\\bcat\\b", "", "a cat.", true},
      {"\\bcat", "", "cat", true},
      // caseless, bytes and UTF-8
      {"viagra", "i", "VIAGRA now", true},
      {"\xc3\xa9t\xc3\xa9", "iu", "\xc3\x89T\xc3\x89", true},   // été / ÉTÉ with Unicode folding
      {"\xc3\xa9t\xc3\xa9", "i", "\xc3\x89T\xc3\x89", false},   // bytes mode: no folding of é
      {"\\w+\xc3\xa9", "u", "caf\xc3\xa9", true},
      {"caf\\w", "u", "caf\xc3\xa9", true},   // \w is Unicode-aware with u
      {"caf\\w", "", "caf\xc3\xa9", false},   // and ASCII-only without
      {"caf.", "u", "caf\xff", false},        // invalid UTF-8: . cannot match the bad byte
      {"caf", "u", "caf\xff\xfe", true},      // but the valid part still matches
      {"[\\x{4e00}-\\x{9fff}]{2}", "u", "\xe4\xb8\xad\xe6\x96\x87", true},
      // empty matches
      {"x*", "", "", true},
      {"^$", "", "", true},
      {"^$", "", "a", false},
      {"^$", "m", "a\n\nb", true},
      {"\\b", "", "   ", false},
      {"(?:)", "", "abc", true},
      // NUL bytes and binary
      {"a\\x00b", "", std::string("xa\0by", 5), true},
      {"a.b", "", std::string("a\0b", 3), true},
      {"^\\x00+$", "", std::string(3, '\0'), true},
      // long lines
      {"needle$", "", long_line(1 << 20, 'x') + "needle", true},
      {"^x+$", "", long_line(1000000, 'x'), true},
      {"^x{60000}", "", long_line(70000, 'x'), true},
      {"(a|b)*c", "", long_line(200000, 'a'), false},
      // constructs Hyperscan cannot do natively
      {"(\\w)\\1", "", "hello", true},          // backreference
      {"(\\w)\\1", "", "helo", false},
      {"(?<=foo)bar", "", "foobar", true},      // lookbehind
      {"(?<=foo)bar", "", "fobar", false},
      {"foo(?!bar)", "", "foobar", false},      // negative lookahead
      {"foo(?!bar)", "", "foobaz", true},
      {"(?i)free\\s+(?=money)", "", "FREE money", true},
      {"a++b", "", "aaab", true},               // possessive
      {"(?x) a b  c # comment", "", "abc", true},
      {"a b c", "x", "abc", true},
      {"a b c", "", "abc", false},
      {"\\d{3}-\\d{4}", "", "call 555-1234", true},
      {"[[:alpha:]]+\\d", "", "abc1", true},
      {"\\p{Lu}{3}", "u", "ABC", true},
  };
  return cases;
}

void check_edge_cases(const CompileOptions& options) {
  RuleSet set;
  const auto& cases = edge_cases();
  for (std::size_t i = 0; i < cases.size(); ++i)
    set.rules.push_back(make_rule("R" + std::to_string(i), cases[i].pattern, cases[i].flags));
  CompileReport report;
  auto compiled = Scanner::compile(set, options, &report);
  ASSERT_TRUE(compiled.ok());
  auto scanner = *compiled;
  if (options.pcre2_only) {
    for (const auto& [id, tier] : scanner->tiers()) EXPECT_EQ(tier, Tier::kPcre2) << id;
  }
  for (const auto& e : report.rejected) ADD_FAILURE() << e.to_string();
  ASSERT_TRUE(report.rejected.empty());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    auto res = scanner->scan("body", c.buffer);
    ASSERT_TRUE(res.ok());
    regexd::testing::Pcre2Reference ref(set.rules[i]);
    ASSERT_TRUE(ref.valid());
    auto want = ref.matches(c.buffer);
    ASSERT_TRUE(want.has_value());
    std::string id = "R" + std::to_string(i);
    EXPECT_EQ(matched(*res, id), *want) << "/" << c.pattern << "/" << c.flags << " vs pcre2";
    EXPECT_EQ(matched(*res, id), c.expect) << "/" << c.pattern << "/" << c.flags << " vs expectation";
  }
}

TEST(ScanEdgeCases, EveryCaseAgreesWithPcre2AndTheExpectation) { check_edge_cases({}); }

// The daemon's stand-in while Hyperscan compiles: same answers, no database.
TEST(ScanEdgeCases, Pcre2OnlyBuildGivesTheSameAnswers) {
  CompileOptions o;
  o.pcre2_only = true;
  check_edge_cases(o);
}

// Tiers decided by the pattern text alone: the answers must not move.
TEST(ScanEdgeCases, BuildWithoutCostCheckGivesTheSameAnswers) {
  CompileOptions o;
  o.cost_check = false;
  check_edge_cases(o);
}

TEST(ScanTiers, ConstructsLandInTheExpectedTier) {
  RuleSet set;
  set.rules = {make_rule("NATIVE", "foo\\d+bar"), make_rule("BACKREF", "(\\w)\\1x"),
               make_rule("LOOKBEHIND", "(?<=foo)bar"), make_rule("EMPTY", "x*"),
               make_rule("LOOKAHEAD", "foo(?!bar)\\w+baz")};
  CompileReport report;
  // The classification by pattern text; the cost check measures, and under
  // emulation (the arm64 leg runs in qemu) its verdict on LOOKAHEAD differs.
  CompileOptions text_only;
  text_only.cost_check = false;
  auto scanner = compile_or_die(set, &report, text_only);
  std::map<std::string, Tier> tiers;
  for (auto& [id, t] : scanner->tiers()) tiers[id] = t;
  EXPECT_EQ(tiers["NATIVE"], Tier::kNative);
  // A prefilter would have to drop the back-reference: PCRE2 alone (probe.h).
  EXPECT_EQ(tiers["BACKREF"], Tier::kPcre2);
  EXPECT_EQ(tiers["LOOKAHEAD"], Tier::kPrefilter);  // Hyperscan narrows, PCRE2 confirms
  EXPECT_NE(tiers["LOOKBEHIND"], Tier::kNative);
  EXPECT_EQ(tiers["EMPTY"], Tier::kPcre2);
  ASSERT_EQ(report.classes.size(), 1u);
  EXPECT_EQ(report.classes[0].native + report.classes[0].prefilter + report.classes[0].pcre2, 5u);
  EXPECT_GT(report.classes[0].database_bytes, 0u);
}

TEST(ScanHits, CountsNonOverlappingMatchesUpToTheCap) {
  RuleSet set;
  set.rules = {make_rule("A", "a"), make_rule("AA", "aa"), make_rule("EMPTY", "b*"), make_rule("CAPPED", "a")};
  set.rules[3].max_hits = 2;
  auto scanner = compile_or_die(set);
  auto res = scanner->scan("body", "aaaaa");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(hits_of(*res, "A"), 5u);
  EXPECT_EQ(hits_of(*res, "AA"), 2u);      // non-overlapping, like Perl's //g
  EXPECT_EQ(hits_of(*res, "EMPTY"), 6u);   // an empty match at each of 6 positions
  EXPECT_EQ(hits_of(*res, "CAPPED"), 2u);
  ScanOptions one;
  one.max_hits = 1;
  res = scanner->scan("body", "aaaaa", one);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(hits_of(*res, "A"), 1u);
  EXPECT_EQ(hits_of(*res, "CAPPED"), 2u);  // the rule's own cap wins
}

TEST(ScanHits, WithoutCountingEveryRuleThatMatchesCountsOnce) {
  RuleSet set;
  set.rules = {make_rule("A", "a"), make_rule("CAPPED", "a"), make_rule("NONE", "z"), make_rule("EMPTY", "b*"),
               make_rule("BACKREF", "(a)\\1")};
  set.rules[1].max_hits = 3;
  set.rules[4].max_hits = 10;  // PCRE2 alone: without counting it stops at its first match
  auto scanner = compile_or_die(set);
  ScanOptions yes_no;
  yes_no.count_hits = false;
  auto res = scanner->scan("body", "aaaaa", yes_no);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(hits_of(*res, "A"), 1u);
  EXPECT_EQ(hits_of(*res, "CAPPED"), 1u);  // its own cap too
  EXPECT_EQ(hits_of(*res, "EMPTY"), 1u);
  EXPECT_EQ(hits_of(*res, "BACKREF"), 1u);
  EXPECT_FALSE(matched(*res, "NONE"));
  // The same rules counting: what a caller gets by default.
  res = scanner->scan("body", "aaaaa");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(hits_of(*res, "CAPPED"), 3u);
  EXPECT_EQ(hits_of(*res, "BACKREF"), 2u);
}

TEST(ScanTimes, ANativeRuleThatDoesNotMatchCostsHyperscanTimeOnly) {
  RuleSet set;
  set.rules = {make_rule("NATIVE", "foo\\d+bar")};
  CompileOptions text_only;
  text_only.cost_check = false;
  auto scanner = compile_or_die(set, nullptr, text_only);
  ASSERT_EQ(scanner->tiers().at(0).second, Tier::kNative);
  ScanOptions measure;
  measure.measure_engines = true;
  auto res = scanner->scan("body", std::string(1u << 20, 'f'), measure);
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE(res->hits.empty());
  EXPECT_GT(res->time.hyperscan, 0u);
  EXPECT_EQ(res->time.re2, 0u);
  EXPECT_EQ(res->time.pcre2, 0u);  // no Hyperscan hit: nothing to confirm or count
}

TEST(ScanClasses, EachClassHasItsOwnDatabaseAndUnknownClassIsAnError) {
  RuleSet set;
  set.rules = {make_rule("SUBJ", "win", "i", "header:Subject"), make_rule("BODY", "win", "i", "body")};
  auto scanner = compile_or_die(set);
  EXPECT_EQ(scanner->classes(), (std::vector<std::string>{"body", "header:Subject"}));
  auto res = scanner->scan("header:Subject", "You WIN");
  ASSERT_TRUE(res.ok());
  ASSERT_EQ(res->hits.size(), 1u);
  EXPECT_EQ(res->hits[0].first, "SUBJ");
  auto bad = scanner->scan("mime", "x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, regexd::ErrorCode::kUnknownClass);
}

TEST(ScanRejects, BadPatternsAreReportedAndTheRestCompiles) {
  RuleSet set;
  set.rules = {make_rule("GOOD", "ok"), make_rule("BAD", "(unclosed"), make_rule("GOOD", "dup")};
  set.rules[0].line = 1;
  set.rules[1].line = 7;
  set.rules[2].line = 9;
  CompileReport report;
  auto scanner = compile_or_die(set, &report);
  ASSERT_EQ(report.rejected.size(), 2u);
  EXPECT_EQ(report.rejected[0].rule_id, "BAD");
  EXPECT_NE(report.rejected[0].to_string().find("test:7"), std::string::npos) << report.rejected[0].to_string();
  EXPECT_NE(report.rejected[0].message.find("pcre2"), std::string::npos);
  EXPECT_EQ(scanner->rule_count(), 1u);
  auto res = scanner->scan("body", "ok");
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE(matched(*res, "GOOD"));
}

TEST(ScanLimits, ARuleThatHitsThePcre2LimitIsReportedNotDropped) {
  RuleSet set;
  // Catastrophic backtracking: PCRE2 needs far more than the limit below.
  set.rules = {make_rule("EVIL", "^(\\w+\\s?)*$")};
  CompileOptions opts;
  opts.pcre2_match_limit = 1000;
  auto s = Scanner::compile(set, opts, nullptr);
  ASSERT_TRUE(s.ok());
  auto res = (*s)->scan("body", std::string(40, 'a') + "!");
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE(res->hits.empty());
  ASSERT_EQ(res->limited, std::vector<std::string>{"EVIL"});
}

TEST(ScanThreads, ConcurrentScansFromManyThreadsGiveTheSameAnswers) {
  RuleSet set;
  const auto& cases = edge_cases();
  for (std::size_t i = 0; i < cases.size(); ++i)
    set.rules.push_back(make_rule("R" + std::to_string(i), cases[i].pattern, cases[i].flags));
  auto scanner = compile_or_die(set);
  std::vector<std::vector<std::pair<std::string, unsigned>>> want;
  for (const auto& c : cases) want.push_back(scanner->scan("body", c.buffer)->hits);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round)
        for (std::size_t i = 0; i < cases.size(); ++i) {
          std::size_t k = (i + static_cast<std::size_t>(t)) % cases.size();
          auto r = scanner->scan("body", cases[k].buffer);
          if (!r.ok() || r->hits != want[k]) wrong.fetch_add(1);
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(EngineInfo, ReportsFlavorVersionAndArch) {
  const auto& info = engine_info();
  EXPECT_TRUE(info.flavor == "hyperscan" || info.flavor == "vectorscan") << info.flavor;
  EXPECT_FALSE(info.runtime_version.empty());
  EXPECT_FALSE(info.arch.empty());
  EXPECT_FALSE(info.pcre2_version.empty());
}

}  // namespace
