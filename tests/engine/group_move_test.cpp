// The planner's group move (engine/src/group_move.h): which group leaves a
// small class's Hyperscan database depends on measured time, so these tests
// check what holds whatever the clock says: a move is only made when it meets
// its own bar, and a class planned with it answers as PCRE2.
#include "group_move.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "answers_as_pcre2.h"
#include "cost.h"
#include "random_subjects.h"
#include "re2_partition.h"
#include "re2_translate.h"
#include "test_rule.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"

namespace {

using namespace regexd::engine;

Rule rawbody_rule(std::string id, std::string pattern, std::string flags = "") {
  Rule r = regexd::testing::test_rule(std::move(id), std::move(pattern), flags, "rawbody");
  r.max_hits = 1;  // yes/no, as SpamAssassin's rules without `multiple`
  return r;
}

// Four of SpamAssassin 4.0.1's rawbody rules that its rawbody database scans
// slowly (72_active.cf), among cheap literal-led rules, as in that class.
std::vector<Rule> rawbody_like() {
  std::vector<Rule> rules = {
      rawbody_rule("FR_SPACING_8", "[a-z0-9]{6}\\s{8}[a-z0-9]{5}", "i"),
      rawbody_rule("TENWORD_GIBBERISH", "^\\s*(?:[a-z]+\\s+){10}\\.$", "m"),
      rawbody_rule("HTML_SINGLET", ">\\s*(?:[a-z\"]|&\\#(?:\\d+|x[0-9a-f]+);)\\s*<", "i"),
      rawbody_rule("NONSENSE_TAGS", "(?:<[A-Za-z0-9]{4,}>\\s*){10}"),
  };
  const char* literals[] = {"<iframe",          "javascript:", "document\\.write", "<blink>",         "<marquee",
                            "fromCharCode",     "<form ",      "onmouseover",      "<object",         "<embed",
                            "bgcolor=\"?#?fff", "<!-- *-->",   "<base href",       "<meta http-equiv"};
  int k = 0;
  for (const char* l : literals) rules.push_back(rawbody_rule("LIT_" + std::to_string(k++), l, "i"));
  return rules;
}

TEST(GroupMove, NoCandidatesNoMove) {
  CompiledSet set;
  for (auto& r : rawbody_like()) set.rules.push_back({r, Tier::kNative, 0, {}});
  std::vector<std::uint32_t> database;
  for (std::uint32_t i = 0; i < set.rules.size(); ++i) database.push_back(i);
  EXPECT_FALSE(detail::choose_group_move(set, database, {}, detail::Calibration::builtin()));
}

TEST(GroupMove, AMoveTakesTheDearestAndMeetsItsBar) {
  CompiledSet set;
  for (auto& r : rawbody_like()) set.rules.push_back({r, Tier::kNative, 0, {}});
  std::vector<std::uint32_t> database;
  std::vector<detail::GroupCandidate> candidates;
  const auto& cal = detail::Calibration::builtin();
  for (std::uint32_t i = 0; i < set.rules.size(); ++i) {
    database.push_back(i);
    std::string why;
    auto t = detail::re2_translate(set.rules[i].rule, &why);
    ASSERT_TRUE(t) << set.rules[i].rule.id << ": " << why;
    detail::HsSample hs;
    ASSERT_TRUE(detail::measure_hs_expression(hs_expression_of(set.rules[i]),
                                              hs_flags_for(set.rules[i].rule, Tier::kNative), cal, &hs));
    detail::Re2Sample big, small;
    ASSERT_TRUE(detail::measure_re2({t->pattern}, cal, &big, detail::kRe2SetMaxMem));
    ASSERT_TRUE(detail::measure_re2({t->pattern}, cal, &small, detail::kRe2MeasureMaxMem));
    candidates.push_back({i, hs.ns, t->strength == detail::Re2Strength::kExact, t->pattern, big.ns, small.ns});
  }
  auto move = detail::choose_group_move(set, database, candidates, cal);
  if (!move) GTEST_SKIP() << "no group paid on this machine; nothing to check";
  ASSERT_FALSE(move->rules.empty());
  EXPECT_LT(move->rest_ns + move->set_ns, (1 - detail::kGroupMinSaving) * move->database_ns);
  // The group is the dearest candidates in Hyperscan alone.
  double cheapest_moved = 1e300, dearest_kept = 0;
  for (const auto& c : candidates) {
    const bool moved = std::find(move->rules.begin(), move->rules.end(), c.id) != move->rules.end();
    if (moved)
      cheapest_moved = std::min(cheapest_moved, c.hs_ns);
    else
      dearest_kept = std::max(dearest_kept, c.hs_ns);
  }
  EXPECT_GE(cheapest_moved, dearest_kept);
}

// Whatever the plan, the class answers as PCRE2, rule by rule.
TEST(GroupMove, AClassPlannedWithItAnswersAsPcre2) {
  RuleSet rs;
  rs.rules = rawbody_like();
  auto s = Scanner::compile(rs, {}, nullptr);
  ASSERT_TRUE(s.ok()) << s.error().message;
  std::vector<std::string> subjects = {
      "abc123        defgh", "x\n the quick brown fox jumps over the lazy dog and then runs .\n",
      "<p> a </p> &#65; <b>x</b>", "<abcd><efgh> <ijkl><mnop><qrst><uvwx><yzab><cdef><ghij><klmn>",
      "<IFRAME src=x> javascript:void(0) <blink>"};
  regexd::testing::add_random_subjects(subjects, "abc01 \n<>&#;x.", 3000, 80, 17);
  EXPECT_GT(regexd::testing::expect_answers_as_pcre2(**s, "rawbody", rs.rules, subjects), 100u);
}

}  // namespace
