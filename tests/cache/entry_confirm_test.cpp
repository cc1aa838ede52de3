// Cache entries keep a prefilter's confirmation window (Rule.confirm_min /
// confirm_max, docs/cache-format.md), and a loaded entry never gets a window
// that is inconsistent or on a rule that is not a prefilter: those confirm
// on the whole buffer, which is always exact.
#include <gtest/gtest.h>

#include "regexd/cache/entry.h"
#include "regexd/cache/key.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"

namespace {

using namespace regexd;
using engine::Tier;

cache::CacheKey key() { return {0x4321, 0x8765}; }

std::unique_ptr<engine::CompiledSet> round_trip(const engine::CompiledSet& set) {
  const auto& tags = *cache::current_tags();
  auto bytes = cache::encode_entry(set, key(), tags, "confirm");
  EXPECT_TRUE(bytes.ok()) << bytes.error().message;
  if (!bytes.ok()) return nullptr;
  auto back = cache::decode_entry(*bytes, key(), tags);
  EXPECT_TRUE(back.ok()) << back.error().message;
  return back.ok() ? std::move(*back) : nullptr;
}

TEST(EntryConfirm, TheWindowSurvivesTheRoundTripAndScans) {
  engine::RuleSet rs;
  engine::Rule r;
  r.id = "WORD";
  r.cls = "body";
  r.pattern = "\\bfoo(?!bar)[a-z]{1,3}\\b";
  r.max_hits = 1;
  rs.rules.push_back(r);
  engine::CompileOptions options;
  options.cost_check = false;  // a prefilter by its text
  engine::CompileReport report;
  auto s = engine::Scanner::compile(rs, options, &report);
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_EQ((*s)->compiled().rules.at(0).tier, Tier::kPrefilter);
  ASSERT_EQ((*s)->compiled().rules.at(0).confirm_max, 6u);
  auto back = round_trip((*s)->compiled());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->rules.at(0).confirm_min, 4u);
  EXPECT_EQ(back->rules.at(0).confirm_max, 6u);

  // Inconsistent bounds are dropped on load.
  back->rules.at(0).confirm_min = 9;
  auto again = round_trip(*back);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->rules.at(0).confirm_min, 0u);
  EXPECT_EQ(again->rules.at(0).confirm_max, 0u);
  // Either way the answers are PCRE2's.
  auto scanner = engine::Scanner::from_compiled(std::move(again));
  ASSERT_TRUE(scanner.ok());
  for (const char* in : {"a foobar b", "a fooba b",
                         "x"
                         "foozz",
                         "foozz foobar"}) {
    auto res = (*scanner)->scan("body", in);
    ASSERT_TRUE(res.ok());
    const bool expected = std::string(in) == "a fooba b" || std::string(in) == "foozz foobar";
    EXPECT_EQ(!res->hits.empty(), expected) << in;
  }
}

}  // namespace
