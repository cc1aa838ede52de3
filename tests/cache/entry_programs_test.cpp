// Cache entries carry the PCRE2 programs of the rules a scan may run through
// PCRE2 (docs/cache-format.md, "PCRE2 programs"): a load adopts them instead
// of compiling, and scans answer as before.
#include <gtest/gtest.h>

#include "hostile_entry.h"
#include "regexd/cache/entry.h"
#include "regexd/cache/key.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"
#include "regexd/engine/pcre2_programs.h"
#include "test_rule.h"

namespace {

using namespace regexd;
using engine::Tier;
using regexd::testing::test_rule;

// A, B in one RE2 set, C with PCRE2 alone: every rule has a program.
std::unique_ptr<engine::CompiledSet> sample() {
  auto set = std::make_unique<engine::CompiledSet>();
  set->rules.push_back({test_rule("A", "foo\\s+bar"), Tier::kRe2, 0, {}, "foo[\\t-\\r ]+bar"});
  set->rules.push_back({test_rule("B", "\\bcat(?!dog)\\w+"), Tier::kRe2Prefilter, 0, {}});
  set->rules.push_back({test_rule("C", "(a)\\1"), Tier::kPcre2, 0, {}});
  engine::ClassDatabases cdb;
  cdb.cls = "body";
  cdb.pcre2_rules = {2};
  cdb.re2_sets.push_back(std::make_unique<engine::Re2Partition>(std::vector<std::uint32_t>{0, 1}));
  set->classes.push_back(std::move(cdb));
  return set;
}

TEST(EntryPrograms, ALoadAdoptsTheProgramsAndScansAsBefore) {
  const auto& tags = *cache::current_tags();
  const cache::CacheKey key{0x1234, 0x5678};
  auto bytes = cache::encode_entry(*sample(), key, tags, "programs");
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto info = cache::inspect_entry(*bytes);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->pcre2_programs, 3u);
  EXPECT_GT(info->pcre2_programs_size, 0u);
  auto back = cache::decode_entry(*bytes, key, tags);
  ASSERT_TRUE(back.ok()) << back.error().message;
  for (std::size_t i = 0; i < (*back)->rules.size(); ++i) EXPECT_TRUE((*back)->pcre2[i].has_adopted()) << i;
  auto scanner = engine::Scanner::from_compiled(std::move(*back));
  ASSERT_TRUE(scanner.ok());
  // While the warm-up runs (if it has not ended yet), the adopted programs
  // answer; no RE2 set is built meanwhile.
  auto warm = engine::Scanner::warm_up_async(*scanner);
  auto r = (*scanner)->scan("body",
                            "foo\x0b"
                            "bar catfish aa");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hits, (std::vector<std::pair<std::string, unsigned>>{{"A", 1}, {"B", 1}, {"C", 1}}));
  warm.join();
  // Warm: JIT copies of them.
  r = (*scanner)->scan("body", "foo bar catdog a");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hits, (std::vector<std::pair<std::string, unsigned>>{{"A", 1}}));
}

// PCRE2 verifies nothing inside a program: a damaged entry that was resealed
// must be refused before PCRE2 decodes it.
TEST(EntryPrograms, ADamagedProgramIsRefusedEvenWhenResealed) {
  const auto& tags = *cache::current_tags();
  const cache::CacheKey key{0x1234, 0x5678};
  auto set = sample();
  set->init_pcre2_slots();
  auto programs = engine::serialize_pcre2_programs(*set);
  ASSERT_TRUE(programs.ok());
  auto bytes = cache::encode_entry(*set, key, tags, "programs");
  ASSERT_TRUE(bytes.ok());
  const auto at = bytes->find(programs->bytes);
  ASSERT_NE(at, std::string::npos);
  std::string damaged = *bytes;
  damaged[at + programs->bytes.size() - 3] ^= 0x20;  // inside the last program
  test::reseal_entry(damaged);
  auto back = cache::decode_entry(damaged, key, tags);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(back.error().message.find("PCRE2 programs fail their checksum"), std::string::npos) << back.error().message;
}

}  // namespace
