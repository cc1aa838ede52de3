// Cache entries keep the planner's RE2 sets and measurements (format 2,
// docs/cache-format.md), and refuse entries whose RE2 lists do not add up.
#include <gtest/gtest.h>

#include "regexd/cache/entry.h"
#include "regexd/cache/key.h"
#include "regexd/engine/compiled_set.h"

namespace {

using namespace regexd;
using engine::Tier;

engine::Rule make_rule(std::string id, std::string pattern) {
  engine::Rule r;
  r.id = std::move(id);
  r.cls = "body";
  r.pattern = std::move(pattern);
  r.source = "test";
  return r;
}

// Rules 0-2 in RE2 sets {0,1} and {2}; rule 3 with PCRE2.
std::unique_ptr<engine::CompiledSet> sample(const std::vector<std::vector<std::uint32_t>>& parts,
                                            Tier tier3 = Tier::kPcre2) {
  auto set = std::make_unique<engine::CompiledSet>();
  set->rules.push_back({make_rule("A", "foo\\s+bar"), Tier::kRe2, 0, {1000, 2000, 3000}, "foo[\\t-\\r ]+bar"});
  set->rules.push_back({make_rule("B", "\\bcat(?!dog)\\w+"), Tier::kRe2Prefilter, 0, {-1, 2500, 900}});
  set->rules.push_back({make_rule("C", "x$"), Tier::kRe2, 0, {}});
  set->rules.push_back({make_rule("D", "(a)\\1"), tier3, 0, {}});
  engine::ClassDatabases cdb;
  cdb.cls = "body";
  cdb.pcre2_rules = {3};
  for (const auto& p : parts) cdb.re2_sets.push_back(std::make_unique<engine::Re2Partition>(p));
  set->classes.push_back(std::move(cdb));
  return set;
}

cache::CacheKey key() { return {0x1234, 0x5678}; }

TEST(EntryRe2, SetsTiersAndCostsSurviveTheRoundTrip) {
  auto set = sample({{0, 1}, {2}});
  const auto& tags = *cache::current_tags();
  auto bytes = cache::encode_entry(*set, key(), tags, "re2");
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto back = cache::decode_entry(*bytes, key(), tags);
  ASSERT_TRUE(back.ok()) << back.error().message;
  const auto& c = (*back)->classes.at(0);
  ASSERT_EQ(c.re2_sets.size(), 2u);
  EXPECT_EQ(c.re2_sets[0]->rules(), (std::vector<std::uint32_t>{0, 1}));
  EXPECT_EQ(c.re2_sets[1]->rules(), (std::vector<std::uint32_t>{2}));
  EXPECT_EQ((*back)->rules[1].tier, Tier::kRe2Prefilter);
  EXPECT_EQ((*back)->rules[0].cost.re2_ns, 2000);
  EXPECT_EQ((*back)->rules[1].cost.hs_ns, -1);
  // The planner's RE2 pattern is kept (A); a rule stored without one (B) is
  // translated when its set is built.
  EXPECT_EQ((*back)->rules[0].re2_pattern, "foo[\\t-\\r ]+bar");
  EXPECT_EQ((*back)->rules[1].re2_pattern, "");
  auto info = cache::inspect_entry(*bytes);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->classes.at(0).re2, 2u);
  EXPECT_EQ(info->classes.at(0).re2_prefilter, 1u);
  EXPECT_EQ(info->classes.at(0).re2_sets, 2u);
  EXPECT_EQ(info->classes.at(0).pcre2, 1u);
  // And it scans: "foo\x0bbar" needs PCRE2's \s, "x\n" its $.
  auto scanner = engine::Scanner::from_compiled(std::move(*back));
  ASSERT_TRUE(scanner.ok());
  auto r = (*scanner)->scan("body", "foo\x0b" "bar x\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hits, (std::vector<std::pair<std::string, unsigned>>{{"A", 1}, {"C", 1}}));
}

TEST(EntryRe2, InconsistentRe2ListsAreRefusedAsCorrupt) {
  const auto& tags = *cache::current_tags();
  struct Case {
    const char* what;
    std::unique_ptr<engine::CompiledSet> set;
  } cases[] = {
      {"a PCRE2-tier rule in an RE2 set", sample({{0, 1}, {2, 3}})},
      {"an RE2-tier rule in no list", sample({{0, 1}})},
      {"an RE2-tier rule in the PCRE2 list too", sample({{0, 1}, {2}}, Tier::kRe2)},
      {"a rule in two sets", sample({{0, 1}, {1, 2}})},
  };
  for (auto& c : cases) {
    auto bytes = cache::encode_entry(*c.set, key(), tags, "bad");
    ASSERT_TRUE(bytes.ok()) << c.what;
    auto back = cache::decode_entry(*bytes, key(), tags);
    ASSERT_FALSE(back.ok()) << c.what;
    EXPECT_EQ(back.error().code, ErrorCode::kCorrupt) << c.what << ": " << back.error().message;
  }
}

}  // namespace
