// The correctness contract, on real data: SpamAssassin's own body, rawbody,
// full and uri rules (all those PCRE2 accepts), compiled as one class "full"
// and scanned over whole raw messages of the SpamAssassin public corpus.  For
// every rule and message, regexd's answer must equal plain PCRE2's.  Every
// disagreement fails the test and is printed with rule and file.
//
// Inputs: REGEXD_SA_RULES_DIR (Debian package spamassassin) and
// REGEXD_CORPUS_DIR (scripts/fetch-corpus.sh).  Both are required: the test
// fails, rather than skips, when they are missing, because a skipped contract
// test proves nothing.
#include <gtest/gtest.h>

#include "pcre2_reference.h"
#include "sa_corpus.h"

using namespace regexd::engine;
using regexd::testing::compare_with_pcre2;

namespace {

TEST(Differential, SpamAssassinRulesOverTheCorpusAgreeWithPcre2) {
  ASSERT_TRUE(regexd::testing::inputs_present());
  RuleSet rules = regexd::testing::load_sa_rules();
  CompileReport report;
  auto scanner = Scanner::compile(rules, {}, &report);
  ASSERT_TRUE(scanner.ok()) << scanner.error().message;
  ASSERT_GT(report.rules_total, 700u) << "too few SpamAssassin rules compiled";

  auto messages = regexd::testing::sample_messages(600);
  ASSERT_GE(messages.size(), 500u) << "corpus too small";
  auto a = compare_with_pcre2(**scanner, rules, messages);
  // Every compiled rule was compared (rejected ones are not in the set).
  ASSERT_EQ(a.rules, report.rules_total);
  std::size_t n = 0, p = 0, c = 0;
  for (const auto& cr : report.classes) n += cr.native, p += cr.prefilter, c += cr.pcre2;
  std::printf("compile: classify %.0f ms, total %.0f ms, %zu demoted\n", report.classify_ms, report.total_ms,
              report.demoted.size());
  std::printf("differential: %zu rules (native %zu, prefilter %zu, pcre2 %zu) x %zu messages: %zu matches by "
              "%zu distinct rules, %zu undecided by pcre2, %zu disagreements\n",
              a.rules, n, p, c, a.messages, a.total_matches, a.rules_that_matched.size(), a.undecided,
              a.disagreements);
  EXPECT_EQ(a.disagreements, 0u);
  // A differential test where nothing matches proves little.
  EXPECT_GT(a.rules_that_matched.size(), 100u);
}

// Hit counts of SpamAssassin's counted rules (`tflags multiple maxhits=N`)
// over the corpus: PCRE2's //g count, capped, whichever engine answered and
// whoever counted (PCRE2 or a FixedCounter, engine/src/fixed_counter.h).
TEST(Differential, CountedRulesCountAsPcre2) {
  ASSERT_TRUE(regexd::testing::inputs_present());
  RuleSet all = regexd::testing::load_sa_rules();
  RuleSet rules;
  for (const auto& r : all.rules)
    if (r.max_hits > 1 && !(r.flags & kUtf8)) rules.rules.push_back(r);
  ASSERT_GT(rules.rules.size(), 20u);
  CompileReport report;
  auto scanner = Scanner::compile(rules, {}, &report);
  ASSERT_TRUE(scanner.ok()) << scanner.error().message;
  std::vector<std::unique_ptr<regexd::testing::Pcre2Reference>> refs;
  for (const auto& r : rules.rules) refs.push_back(std::make_unique<regexd::testing::Pcre2Reference>(r));
  std::size_t compared = 0, above_one = 0, disagreements = 0;
  for (const auto& path : regexd::testing::sample_messages(600)) {
    const std::string msg = regexd::testing::slurp(path);
    auto res = (*scanner)->scan("full", msg);
    ASSERT_TRUE(res.ok()) << res.error().message;
    std::map<std::string, unsigned> got(res->hits.begin(), res->hits.end());
    for (std::size_t i = 0; i < rules.rules.size(); ++i) {
      const Rule& r = rules.rules[i];
      if (!refs[i]->valid()) continue;
      auto want = refs[i]->count(msg, r.max_hits);
      if (!want) continue;
      ++compared;
      if (*want > 1) ++above_one;
      const unsigned have = got.count(r.id) ? got[r.id] : 0;
      if (have != *want && ++disagreements <= 20)
        ADD_FAILURE() << r.id << " (/" << r.pattern << "/) on " << path << ": pcre2 counts " << *want
                      << ", regexd " << have;
    }
  }
  EXPECT_EQ(disagreements, 0u);
  EXPECT_GT(above_one, 500u) << "too few counts above one to prove anything";
  std::printf("counted rules: %zu rules, %zu (rule, message) pairs compared, %zu counts above one\n",
              rules.rules.size(), compared, above_one);
}

}  // namespace
