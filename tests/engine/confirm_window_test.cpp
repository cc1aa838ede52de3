// The windowed confirmation of prefilter hits (engine/src/confirm_window.h):
// the width bounds Hyperscan gives, the window arithmetic, which rules get
// none, and the scanner's answers with windows in place, checked against
// PCRE2 (the reference) over generated subjects that put superset hits and
// real matches at the buffer's edges, next to each other and far apart.
#include "confirm_window.h"

#include <gtest/gtest.h>
#include <hs.h>

#include <memory>
#include <string>
#include <vector>

#include "answers_as_pcre2.h"
#include "random_subjects.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"
#include "test_rule.h"

namespace {

using namespace regexd::engine;

using regexd::testing::test_rule;
Rule rule(std::string id, std::string pattern, std::string flags = "") {
  return test_rule(std::move(id), std::move(pattern), std::move(flags));
}

std::optional<detail::ConfirmWidth> width_of(const Rule& r) {
  return detail::confirm_width(r, hs_expression_for(r), hs_flags_for(r, Tier::kPrefilter) & ~HS_FLAG_SINGLEMATCH);
}

TEST(ConfirmWidth, IsTheSupersetsWidthWhenBounded) {
  auto w = width_of(rule("R", "\\bfoo(?!bar)[a-z]{1,3}\\b"));
  ASSERT_TRUE(w);
  EXPECT_EQ(w->min, 4u);
  EXPECT_EQ(w->max, 6u);
  w = width_of(rule("R", "(?<=x)ab(?!c)"));  // look-arounds consume nothing
  ASSERT_TRUE(w);
  EXPECT_EQ(w->min, 2u);
  EXPECT_EQ(w->max, 2u);
  w = width_of(rule("R", "\\\\G(?!x)ab"));  // an escaped backslash, then "G"
  ASSERT_TRUE(w);
  EXPECT_EQ(w->max, 4u);
}

TEST(ConfirmWidth, NoneWhereAWindowWouldNotBeExactOrPay) {
  EXPECT_FALSE(width_of(rule("R", "foo(?!bar)[a-z]+")));   // unbounded
  EXPECT_FALSE(width_of(rule("R", "\\Gab(?!c)")));         // \G asserts the start offset
  EXPECT_FALSE(width_of(rule("R", "ab(?!c)", "u")));       // a start offset could split a character
  EXPECT_FALSE(width_of(rule("R", "ab(?!c)", "L")));       // leftmost start asked for
  EXPECT_FALSE(width_of(rule("R", "a(?!b)[^x]{70000}")));  // wider than kMaxConfirmWidth
  const Rule r = rule("R", "ab(?!c)");
  EXPECT_FALSE(detail::confirm_width(r, hs_expression_for(r), hs_flags_for(r, Tier::kNative)));  // not a prefilter
}

TEST(ConfirmWindow, StartsAreBetweenTheEndsMinusTheWidths) {
  auto w = detail::confirm_window(100, 300, {4, 6});
  EXPECT_EQ(w.start, 94u);
  EXPECT_EQ(w.limit, 296u);
  w = detail::confirm_window(3, 5, {4, 6});  // clamped at the buffer's start
  EXPECT_EQ(w.start, 0u);
  EXPECT_EQ(w.limit, 1u);
  w = detail::confirm_window(2, 2, {4, 6});  // never an empty range
  EXPECT_EQ(w.start, 0u);
  EXPECT_EQ(w.limit, 0u);
}

// Subjects over the letters the rules below are made of, with the hard
// cases spelled out: a match at offset 0 and at the end, a look-behind that
// reaches before the window, superset hits far before and after a match.
std::vector<std::string> subjects() {
  std::vector<std::string> out = {"xab",
                                  "yab",
                                  "xabc",
                                  "ab",
                                  "abxab",
                                  "xabd",
                                  "fooqa",
                                  "foobar",
                                  "foobarfooq",
                                  "qua qux qab",
                                  "ab" + std::string(5000, ' ') + "ab",
                                  "xabc" + std::string(3000, 'f') + "xabd",
                                  std::string(4000, 'q') + "ab\nabd",
                                  "fooba foob foobarz fooab",
                                  "\nab\nabd\nxab",
                                  "zzfoozz foobar q" + std::string(2000, 'u') + "qx"};
  regexd::testing::add_random_subjects(out, "xabcdfoqu rz\n", 4000, 40, 11);
  return out;
}

TEST(ConfirmWindow, ScannerAnswersAsPcre2WithWindows) {
  RuleSet rs;
  rs.rules = {rule("LOOKBEHIND", "(?<=x)ab(?!c)"), rule("WORD", "\\bfoo(?!bar)[a-z]{1,3}\\b"),
              rule("ANCHORED", "^ab(?!c)"),        rule("LINES", "^ab(?=d)", "m"),
              rule("MANY_ENDS", "q(?!u)[a-z]{2}"), rule("CASELESS", "fo(?!o)[a-z]", "i")};
  // Yes/no rules, as SpamAssassin's without `multiple` are (max_hits 1):
  // a count needs the whole buffer.  One counted rule stays as a control.
  for (auto& r : rs.rules) r.max_hits = 1;
  rs.rules.push_back(rule("COUNTED", "q(?!u)[a-z]{2}"));
  CompileOptions options;
  options.cost_check = false;  // tiers by the pattern text alone: these stay prefilters
  CompileReport report;
  auto s = Scanner::compile(rs, options, &report);
  ASSERT_TRUE(s.ok()) << s.error().message;
  for (const auto& cr : (*s)->compiled().rules) {
    EXPECT_EQ(cr.tier, Tier::kPrefilter) << cr.rule.id;
    EXPECT_GT(cr.confirm_max, 0u) << cr.rule.id << ": no window, the test would not exercise one";
  }
  // The subjects do match, often.
  EXPECT_GT(regexd::testing::expect_answers_as_pcre2(**s, "body", rs.rules, subjects()), 500u);
}

// ScanOptions::count_hits = false makes every rule a yes/no rule, so the
// counted rule above is confirmed through its window as well.
TEST(ConfirmWindow, WithoutCountingACountedRuleIsConfirmedInItsWindow) {
  RuleSet rs;
  rs.rules = {rule("COUNTED", "q(?!u)[a-z]{2}"), rule("WORD", "\\bfoo(?!bar)[a-z]{1,3}\\b")};
  rs.rules[0].max_hits = 20;
  rs.rules[1].max_hits = 5;
  CompileOptions options;
  options.cost_check = false;
  auto s = Scanner::compile(rs, options, nullptr);
  ASSERT_TRUE(s.ok()) << s.error().message;
  for (const auto& cr : (*s)->compiled().rules) ASSERT_GT(cr.confirm_max, 0u) << cr.rule.id;
  ScanOptions yes_no;
  yes_no.count_hits = false;
  EXPECT_GT(regexd::testing::expect_answers_as_pcre2(**s, "body", rs.rules, subjects(), yes_no), 200u);
}

}  // namespace
