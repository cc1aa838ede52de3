// Split classes (engine/src/split.h): which rules go into which database of
// a class, and that a class compiled as several databases answers exactly
// as the same class compiled as one (and as PCRE2).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "pcre2_reference.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"
#include "split.h"

namespace {

using namespace regexd::engine;
using detail::split_rules;

std::vector<std::uint32_t> all_of(const std::vector<std::vector<std::uint32_t>>& parts) {
  std::vector<std::uint32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(SplitRules, UnderTheThresholdAClassIsOneDatabase) {
  std::vector<std::uint32_t> ids{0, 1, 2, 3};
  std::vector<double> cost{100, 100, 100, 100};
  EXPECT_EQ(split_rules(ids, cost, 2, 401).size(), 1u);
  EXPECT_EQ(split_rules(ids, cost, 2, 400).size(), 2u);
  EXPECT_EQ(split_rules(ids, cost, 2, -1).size(), 1u) << "negative: never split";
  EXPECT_EQ(split_rules(ids, cost, 1, 0).size(), 1u) << "one thread: one part";
  EXPECT_EQ(split_rules({7}, cost, 4, 0), (std::vector<std::vector<std::uint32_t>>{{7}}));
}

TEST(SplitRules, PartsAreBalancedByMeasuredCostAndHoldEveryRuleOnce) {
  // One expensive rule and many cheap ones: the expensive one gets a part
  // to itself, whatever the count.
  std::vector<std::uint32_t> ids;
  std::vector<double> cost;
  for (std::uint32_t i = 0; i < 21; ++i) {
    ids.push_back(i);
    cost.push_back(i == 5 ? 1000 : 50);
  }
  auto parts = split_rules(ids, cost, 2, 0);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(all_of(parts), ids);
  const auto& big = std::find(parts[0].begin(), parts[0].end(), 5u) != parts[0].end() ? parts[0] : parts[1];
  EXPECT_EQ(big, (std::vector<std::uint32_t>{5}));
  for (const auto& p : parts) EXPECT_TRUE(std::is_sorted(p.begin(), p.end()));
  // Three parts of equal cost from 9 equal rules; the same input gives the same parts.
  std::vector<std::uint32_t> nine{10, 11, 12, 13, 14, 15, 16, 17, 18};
  std::vector<double> flat(19, 10);
  auto three = split_rules(nine, flat, 3, 0);
  ASSERT_EQ(three.size(), 3u);
  for (const auto& p : three) EXPECT_EQ(p.size(), 3u);
  EXPECT_EQ(all_of(three), nine);
  EXPECT_EQ(split_rules(nine, flat, 3, 0), three);
}

TEST(SplitRules, UnmeasuredRulesCountAsTheMeanAndNothingMeasuredIsNoEstimate) {
  std::vector<std::uint32_t> ids{0, 1, 2, 3};
  EXPECT_DOUBLE_EQ(detail::estimate_ms(ids, {300, -1, 100, -1}), 800);
  EXPECT_DOUBLE_EQ(detail::estimate_ms(ids, {-1, -1, -1, -1}), 0);
  EXPECT_EQ(split_rules(ids, {-1, -1, -1, -1}, 2, 1).size(), 1u);
  // More parts than rules: one rule each.
  EXPECT_EQ(split_rules({0, 1}, {5, 5}, 8, 0).size(), 2u);
  // Forced with nothing measured (min 0): rules that cost nothing still
  // spread, no part is empty.
  auto parts = split_rules(ids, {-1, -1, -1, -1}, 2, 0);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].size(), 2u);
  EXPECT_EQ(parts[1].size(), 2u);
}

Rule make_rule(std::string id, std::string pattern, std::uint32_t flags = 0) {
  Rule r;
  r.id = std::move(id);
  r.cls = "body";
  r.pattern = std::move(pattern);
  r.flags = flags;
  r.source = "split_test";
  r.max_hits = 3;
  return r;
}

// Native, prefilter (look-arounds), counted, caseless and UTF-8 rules.
RuleSet sample_rules() {
  RuleSet rs;
  const char* pats[] = {"\\balpha\\b",       "bravo\\d+",          "charlie|delta",       "golf.{0,5}hotel",
                        "juliet\\s+kilo",    "lima[0-9]{2,4}",     "fox(?=trot)",         "(?<!x)mike",
                        "oscar\\W{1,3}papa", "quebec(?!romeo)",    "[a-z]{3}\\d{3}sierra", "tango.*uniform",
                        "victor$",           "whisky(?:xray)+",    "yankee\\b",           "zulu[^z]zulu"};
  int n = 0;
  for (const char* p : pats) {
    std::uint32_t flags = n % 3 ? 0u : static_cast<std::uint32_t>(kCaseless);
    rs.rules.push_back(make_rule("R" + std::to_string(n), p, flags));
    ++n;
  }
  rs.rules.push_back(make_rule("U1", "caf\\x{e9}\\s+cr\\x{e8}me", kUtf8));
  return rs;
}

std::vector<std::string> sample_texts() {
  return {"alpha bravo12 charlie", "golf--hotel juliet  kilo lima123", "foxtrot mike xmike oscar,,papa",
          "quebecromeo quebec! abc123sierra", "tango and uniform victor", "whiskyxrayxray yankee zulu-zulu",
          "ALPHA Delta GOLFHOTEL", "café  crème and more alpha alpha alpha alpha", "nothing at all here",
          std::string("bad utf8 \xff caf\xc3\xa9 cr\xc3\xa8me bravo9")};
}

std::vector<std::pair<std::string, unsigned>> hits_of(const Scanner& s, const std::string& text) {
  auto r = s.scan("body", text);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r->hits : std::vector<std::pair<std::string, unsigned>>{};
}

TEST(SplitCompile, AClassSplitIntoThreeDatabasesAnswersAsOneDatabaseAndAsPcre2) {
  RuleSet rules = sample_rules();
  CompileOptions one;
  one.threads = 3;
  one.split_min_ms = -1;
  // Keep the rules in Hyperscan: where the probe measures Hyperscan slow
  // (under qemu every rule misses the compile deadline) RE2 would take them.
  one.re2_tier = false;
  CompileOptions split = one;
  split.split_min_ms = 0;
  CompileReport rep_one, rep_split;
  auto a = Scanner::compile(rules, one, &rep_one);
  auto b = Scanner::compile(rules, split, &rep_split);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(rep_one.classes.size(), 1u);
  ASSERT_EQ(rep_split.classes.size(), 1u);
  EXPECT_EQ(rep_one.classes[0].byte_parts, 1u);
  EXPECT_EQ(rep_split.classes[0].byte_parts, 3u);
  // Same tiers: only the databases differ.
  EXPECT_EQ((*a)->tiers(), (*b)->tiers());
  std::size_t hs_rules = 0;
  for (const auto& [id, tier] : (*b)->tiers()) hs_rules += is_hs_tier(tier);
  EXPECT_GE(hs_rules, 12u);
  std::set<std::string> seen;
  for (const auto& t : sample_texts()) {
    auto want = hits_of(**a, t);
    EXPECT_EQ(hits_of(**b, t), want) << t;
    for (const auto& [id, n] : want) seen.insert(id);
    for (const Rule& r : rules.rules) {
      regexd::testing::Pcre2Reference ref(r);
      ASSERT_TRUE(ref.valid()) << r.id;
      bool hit = std::find_if(want.begin(), want.end(), [&](auto& h) { return h.first == r.id; }) != want.end();
      EXPECT_EQ(std::optional<bool>(hit), ref.matches(t)) << r.id << " on " << t;
    }
  }
  // The texts reach rules in every part.
  EXPECT_GE(seen.size(), 14u);
}

}  // namespace
