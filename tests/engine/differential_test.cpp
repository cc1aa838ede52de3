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

}  // namespace
