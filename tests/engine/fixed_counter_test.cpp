// Counting without PCRE2 (engine/src/fixed_counter.h): which rules qualify,
// the order of the expanded alternatives, and the counts against PCRE2's
// own count loop (the reference the scanner used before) over generated
// subjects where matches touch, overlap and sit at the buffer's ends.
#include "fixed_counter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pcre2_util.h"
#include "random_subjects.h"
#include "re2_translate.h"
#include "regexd/engine/engine.h"
#include "test_rule.h"

namespace {

using namespace regexd::engine;

Rule rule(std::string pattern, std::string flags = "", unsigned max_hits = 0) {
  Rule r = regexd::testing::test_rule("R", std::move(pattern), std::move(flags));
  r.max_hits = max_hits;
  return r;
}

// The expansion as strings: each byte set written as its bytes in order, a
// set of several bytes in brackets.
std::vector<std::string> expansion(const std::string& pattern, const std::string& flags = "") {
  std::string why;
  auto alts = detail::fixed_alternatives(rule(pattern, flags), 256, 64, &why);
  if (!alts) return {"refused: " + why};
  std::vector<std::string> out;
  for (const auto& seq : *alts) {
    std::string s;
    for (const auto& set : seq) {
      std::string bytes;
      for (int b = 0; b < 256; ++b)
        if (set.test(static_cast<std::size_t>(b))) bytes += static_cast<char>(b);
      s += bytes.size() == 1 ? bytes : "[" + bytes + "]";
    }
    out.push_back(s);
  }
  return out;
}

TEST(FixedAlternatives, KeepPcre2sOrderOfTrial) {
  EXPECT_EQ(expansion("(a|ab)(c|bcd)"), (std::vector<std::string>{"ac", "abcd", "abc", "abbcd"}));
  EXPECT_EQ(expansion("e|\\xc3[\\xa8-\\xa9]"), (std::vector<std::string>{"e", "\xc3[\xa8\xa9]"}));
  EXPECT_EQ(expansion("(?:x|y){2}"), (std::vector<std::string>{"xx", "xy", "yx", "yy"}));
  EXPECT_EQ(expansion("q", "i"), (std::vector<std::string>{"[Qq]"}));
  // A one-byte look-ahead next to its byte is a condition on that byte.
  EXPECT_EQ(expansion("(?!b)[a-c]"), (std::vector<std::string>{"[ac]"}));
}

TEST(FixedAlternatives, RefuseWhatIsNotAFixedAlternation) {
  for (const char* p : {"a+", "a*", "a?", "a{1,3}", "a{2,}", "a{2}+", "\\ba", "a$", "^a", "(?=ab)a", "(?<=x)a",
                        "(?>a|ab)c", "(a)\\1", "a|", "(?:)", "a{0}", "a\\Kb", "ab\\K", "\\R"}) {
    std::string why;
    EXPECT_FALSE(detail::fixed_alternatives(rule(p), 256, 64, &why)) << p;
    EXPECT_FALSE(why.empty()) << p;
  }
  std::string why;
  EXPECT_FALSE(detail::fixed_alternatives(rule("a", "u"), 256, 64, &why));       // byte mode only
  EXPECT_FALSE(detail::fixed_alternatives(rule("(?:a|bc){9}"), 256, 64, &why));  // 512 expansions
  EXPECT_FALSE(detail::fixed_alternatives(rule("a{65}"), 256, 64, &why));        // 65 bytes
  EXPECT_TRUE(detail::fixed_alternatives(rule("(?:a|bc){8}"), 256, 64, &why));
  EXPECT_TRUE(detail::fixed_alternatives(rule("\\\\K"), 256, 64, &why));      // an escaped backslash, then K
  EXPECT_TRUE(detail::fixed_alternatives(rule("\\Q\\K\\E"), 256, 64, &why));  // a quoted backslash and K
  EXPECT_FALSE(detail::FixedCounter::make(rule("a+")));
}

// The counter against PCRE2's count loop, for every cap from 1 to past the
// number of matches.
TEST(FixedCounter, CountsAsPcre2Does) {
  const std::vector<std::pair<std::string, std::string>> patterns = {
      {"e", ""},
      {"aa", ""},    // overlapping occurrences: "aaa" counts 1
      {"a|ab", ""},  // the shorter alternative first
      {"ab|a", ""},  // the longer first
      {"(a|ab)(c|bcd)", ""},
      {"[ab]{2}", ""},
      {"aba", ""},  // a match's end can start the next: "ababa" counts 1
      {"A(?:b|B)", "i"},
      {"e|\\xc3[\\xa8-\\xab]|\\xc4[\\x93\\x95]", ""},
      {"(?!b)[a-c]c", ""},
      {"(?:a|bc){3}", ""},
  };
  std::vector<std::string> subjects = {"",
                                       "a",
                                       "aaa",
                                       "ababa",
                                       "abcd",
                                       "abbcd",
                                       "e\xc3\xa8\xc3"
                                       "e",
                                       "\xc4\x93\xc4"};
  regexd::testing::add_random_subjects(subjects, "aaabbcdeAB\xc3\xa8\xc4\x93", 3000, 24, 20261201);
  detail::Pcre2Matcher matcher(1'000'000, 10'000);
  for (const auto& [pattern, flags] : patterns) {
    const Rule r = rule(pattern, flags);
    auto counter = detail::FixedCounter::make(r);
    ASSERT_TRUE(counter) << pattern;
    std::string error;
    auto code = detail::pcre2_compile_rule(r, &error);
    ASSERT_TRUE(code) << error;
    for (const auto& s : subjects)
      for (unsigned cap : {1u, 2u, 3u, 1000u})
        ASSERT_EQ(static_cast<long>(counter->count(s, cap)), matcher.count(code.get(), s, cap, false))
            << "/" << pattern << "/ on \"" << s << "\" cap " << cap;
  }
}

// Through the scanner: a counted rule's hits are PCRE2's count whichever
// engine found the match.
TEST(FixedCounter, ScannerCountsCountedRules) {
  RuleSet rules;
  rules.rules.push_back(rule("e", "", 5));
  rules.rules.back().id = "LOWER_E";
  rules.rules.push_back(rule("e|\\xc3[\\xa8-\\xab]", "", 4));
  rules.rules.back().id = "E_LIKE";
  CompileReport report;
  auto scanner = Scanner::compile(rules, CompileOptions{}, &report);
  ASSERT_TRUE(scanner.ok()) << scanner.error().message;
  auto result = (*scanner)->scan("body", "eel \xc3\xa8t\xc3\xa9 here");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->hits, (std::vector<std::pair<std::string, unsigned>>{{"E_LIKE", 4}, {"LOWER_E", 4}}));
  result = (*scanner)->scan("body", "eeeeeeee");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->hits, (std::vector<std::pair<std::string, unsigned>>{{"E_LIKE", 4}, {"LOWER_E", 5}}));
}

}  // namespace
