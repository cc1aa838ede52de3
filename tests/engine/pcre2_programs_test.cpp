// PCRE2 programs carried in cache entries (engine/include/regexd/engine/pcre2_programs.h):
// a decoded program answers as the pattern compiled anew, for the quick
// (interpreted) and the JIT form, and bytes that do not add up are refused.
#include "regexd/engine/pcre2_programs.h"

#include <gtest/gtest.h>

#include "pcre2_util.h"
#include "test_rule.h"

namespace {

using namespace regexd;
using engine::Tier;
using regexd::testing::test_rule;

engine::Rule counted(engine::Rule r, unsigned max_hits) {
  r.max_hits = max_hits;
  return r;
}

// One rule per tier, with flags that change a program (caseless, multiline,
// dotall, an offset-limit confirmation) and a counted native rule.
std::unique_ptr<engine::CompiledSet> sample() {
  auto set = std::make_unique<engine::CompiledSet>();
  set->rules.push_back({test_rule("NATIVE", "plain"), Tier::kNative, 0, {}});  // not counted: no program
  set->rules.push_back({counted(test_rule("COUNTED", "e\\w"), 5), Tier::kNative, 0, {}});
  set->rules.push_back({test_rule("PRE", "cat(?!dog)", "i"), Tier::kPrefilter, 0, {}});
  set->rules.back().confirm_min = 3;
  set->rules.back().confirm_max = 3;
  set->rules.push_back({test_rule("PCRE2", "^x.y$", "ms"), Tier::kPcre2, 0, {}});
  set->rules.push_back({test_rule("RE2", "foo\\s+bar"), Tier::kRe2, 0, {}});
  set->rules.push_back({test_rule("RE2P", "(a)\\1b", "i"), Tier::kRe2Prefilter, 0, {}});
  set->init_pcre2_slots();
  return set;
}

long matches(const pcre2_real_code_8* code, std::string_view subject) {
  engine::detail::Pcre2Matcher m(1'000'000, 10'000);
  return m.count(code, subject, 10, false);
}

TEST(Pcre2Programs, DecodedProgramsAnswerAsCompiledOnes) {
  auto from = sample();
  auto programs = engine::serialize_pcre2_programs(*from);
  ASSERT_TRUE(programs.ok()) << programs.error().message;
  // Every rule a scan may run through PCRE2, and only those.
  EXPECT_EQ(programs->rules, (std::vector<std::uint32_t>{1, 2, 3, 4, 5}));
  auto to = sample();
  ASSERT_TRUE(engine::adopt_pcre2_programs(*to, programs->bytes, programs->rules).ok());
  EXPECT_FALSE(to->pcre2[0].has_adopted());
  const std::string subjects[] = {"", "CAT cat catdog", "w\nx\ny\nx\ny\n", "foo \x0b bar", "AAB aab", "eee e_ ex"};
  for (std::uint32_t id = 1; id < to->rules.size(); ++id) {
    const auto& cr = to->rules[id];
    ASSERT_TRUE(to->pcre2[id].has_adopted()) << cr.rule.id;
    std::string error;
    auto fresh = engine::detail::pcre2_compile_rule(cr.rule, &error, engine::detail::pcre2_extra_options(cr));
    ASSERT_TRUE(fresh) << error;
    const std::uint32_t extra = engine::detail::pcre2_extra_options(cr);
    const auto* quick = to->pcre2[id].get_quick(cr.rule, extra);
    // get() JIT-compiles a copy: the quick program stays as it was.
    const auto* jit = to->pcre2[id].get(cr.rule, extra);
    ASSERT_NE(quick, nullptr);
    ASSERT_NE(jit, nullptr);
    EXPECT_NE(quick, jit) << cr.rule.id;
    for (const auto& s : subjects) {
      EXPECT_EQ(matches(quick, s), matches(fresh.get(), s)) << cr.rule.id << " on '" << s << "'";
      EXPECT_EQ(matches(jit, s), matches(fresh.get(), s)) << cr.rule.id << " on '" << s << "'";
    }
    // The offset-limit option came with the program (a windowed confirmation needs it).
    std::uint32_t options = 0;
    pcre2_pattern_info(quick, PCRE2_INFO_ALLOPTIONS, &options);
    EXPECT_EQ((options & PCRE2_USE_OFFSET_LIMIT) != 0, cr.confirm_max != 0) << cr.rule.id;
  }
}

TEST(Pcre2Programs, BytesThatDoNotAddUpAreRefused) {
  auto from = sample();
  auto programs = engine::serialize_pcre2_programs(*from);
  ASSERT_TRUE(programs.ok());
  const std::string& bytes = programs->bytes;
  const std::vector<std::uint32_t> ids = programs->rules;
  struct Case {
    const char* what;
    std::string bytes;
    std::vector<std::uint32_t> rules;
    ErrorCode code;
  } cases[] = {
      {"fewer rules than programs", bytes, {1, 2, 3, 4}, ErrorCode::kCorrupt},
      {"a native rule that is never counted", bytes, {0, 2, 3, 4, 5}, ErrorCode::kCorrupt},
      {"a rule listed twice", bytes, {1, 2, 2, 4, 5}, ErrorCode::kCorrupt},
      {"a rule out of range", bytes, {1, 2, 3, 4, 99}, ErrorCode::kCorrupt},
      {"truncated before the tables", bytes.substr(0, 20), ids, ErrorCode::kCorrupt},
      {"trailing bytes", bytes + std::string(8, '\0'), ids, ErrorCode::kCorrupt},
      {"not PCRE2's", std::string(bytes.size(), 'x'), ids, ErrorCode::kCorrupt},
  };
  for (auto& c : cases) {
    auto to = sample();
    auto st = engine::adopt_pcre2_programs(*to, c.bytes, c.rules);
    ASSERT_FALSE(st.ok()) << c.what;
    EXPECT_EQ(st.error().code, c.code) << c.what << ": " << st.error().message;
    for (std::uint32_t id = 0; id < to->rules.size(); ++id) EXPECT_FALSE(to->pcre2[id].has_adopted()) << c.what;
  }
  // Another PCRE2 version: the header's version word (after the magic).
  std::string other = bytes;
  other[4] ^= 0x01;
  auto to = sample();
  auto st = engine::adopt_pcre2_programs(*to, other, ids);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kMismatch) << st.error().message;
}

TEST(Pcre2Programs, NoRuleForPcre2MeansNoBytes) {
  auto set = std::make_unique<engine::CompiledSet>();
  set->rules.push_back({test_rule("NATIVE", "plain"), Tier::kNative, 0, {}});
  set->init_pcre2_slots();
  auto programs = engine::serialize_pcre2_programs(*set);
  ASSERT_TRUE(programs.ok());
  EXPECT_TRUE(programs->bytes.empty());
  EXPECT_TRUE(programs->rules.empty());
  EXPECT_TRUE(engine::adopt_pcre2_programs(*set, programs->bytes, programs->rules).ok());
}

}  // namespace
