// Pattern rewrites for Hyperscan (engine/src/rewrite.h): the literal
// rewrites, the constructs that refuse one, and the property each rewrite
// claims, checked with PCRE2 (the reference) over generated subjects:
// compaction is an equivalence, loosening a superset.  The Scanner then
// answers exactly as PCRE2 with the rewritten prefilter in place.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pcre2_reference.h"
#include "random_subjects.h"
#include "regexd/engine/engine.h"
#include "rewrite.h"
#include "test_rule.h"

namespace {

using namespace regexd::engine;
using regexd::testing::Pcre2Reference;

Rule rule(std::string pattern, std::string flags = "") {
  return regexd::testing::test_rule("R", std::move(pattern), std::move(flags));
}

TEST(CompactEscapedBytes, HighBytesBecomeRawOthersStay) {
  EXPECT_EQ(detail::compact_escaped_bytes(rule("[\\xc3][\\x9d\\xbd]x")), "\xc3[\x9d\xbd]x");
  EXPECT_EQ(detail::compact_escaped_bytes(rule("a\\x{e9}b\\xE9")), "a\xe9" "b\xe9");
  // ASCII escapes keep their spelling: "\1\x30" must not become "\10".
  EXPECT_EQ(detail::compact_escaped_bytes(rule("(a)\\1\\x30\\x2e")), std::nullopt);
  EXPECT_EQ(detail::compact_escaped_bytes(rule("\\\\xc3")), std::nullopt);  // an escaped backslash, then "xc3"
  EXPECT_EQ(detail::compact_escaped_bytes(rule("\\xc3", "u")), std::nullopt);  // U+00C3 in UTF-8 mode
  EXPECT_EQ(detail::compact_escaped_bytes(rule("\\xc3 # c", "x")), std::nullopt);
  EXPECT_EQ(detail::compact_escaped_bytes(rule("(?x)\\xc3")), std::nullopt);
  EXPECT_EQ(detail::compact_escaped_bytes(rule("\\Q\\xc3\\E")), std::nullopt);  // literal text
}

TEST(LoosenForPrefilter, BoundsBecomeOpen) {
  auto loose = [](const std::string& p) { return detail::loosen_for_prefilter(rule(p), p); };
  EXPECT_EQ(loose("a{2,3}b{4}c{5,}"), "a{2,}b{4,}c{5,}");
  EXPECT_EQ(loose("\\d{1,3}?x"), "\\d{1,}?x");  // lazy kept
  EXPECT_EQ(loose("(?:ab|c){1,3}"), "(?:ab|c){1,}");
  EXPECT_EQ(loose("[{1,2}]x{1,2}"), "[{1,2}]x{1,}");  // inside a class: literal text
  EXPECT_EQ(loose("\\{1,2\\}a{0,1}"), "\\{1,2\\}a{0,}");
  EXPECT_EQ(loose("\\x{41}{2,3}"), "\\x{41}{2,}");
  EXPECT_EQ(loose("(?=a{1,2})b{1,2}"), "(?=a{1,})b{1,}");  // a positive look-ahead only widens
  EXPECT_EQ(loose("a{2,}"), std::nullopt);                  // nothing bounded
  // Negative look-arounds are dropped whole, nested groups, classes and
  // escapes inside them included.
  EXPECT_EQ(loose("(?!a{1,2})b"), "b");
  EXPECT_EQ(loose("x(?<!a{1,2})b{1,2}"), "xb{1,}");
  EXPECT_EQ(loose("<(?!style)[a-z]+\\s[^>]{1,80}>"), "<[a-z]+\\s[^>]{1,}>");
  EXPECT_EQ(loose("a(?!(?:b|[)(])\\)|c)d"), "ad");
  EXPECT_EQ(loose("a(?!b)"), "a");
  EXPECT_EQ(loose("a(?!b)*c"), std::nullopt);  // the quantifier would move to "a"
  EXPECT_EQ(loose("a(?!b"), std::nullopt);     // unclosed
  // Atomic groups and possessive quantifiers stop committing first: a
  // repeat loosened inside one could otherwise match less.
  EXPECT_EQ(loose("(?>a{1,2})b"), "(?:a{1,})b");
  EXPECT_EQ(loose("a{1,2}+b"), "a{1,}b");
  EXPECT_EQ(loose("a++b{1,2}"), "a+b{1,}");
  EXPECT_EQ(loose("a*+b?+c"), "a*b?c");          // only possessives: still a change
  EXPECT_EQ(loose("[+?*]+x"), std::nullopt);     // "+" inside a class, then a greedy "+"
  EXPECT_EQ(loose("\\++x"), std::nullopt);          // an escaped "+", repeated
  EXPECT_EQ(loose("\\+++x"), "\\++x");            // the same, possessive
  EXPECT_EQ(loose("(?!(?>a+)b)c{1,2}"), "c{1,}");  // inside a dropped look-around
  // Constructs with no superset argument.
  EXPECT_EQ(loose("(a)\\1{1,2}"), std::nullopt);
  EXPECT_EQ(loose("(?(1)a|b){1,2}"), std::nullopt);
  EXPECT_EQ(loose("(a){1,2}(?1)"), std::nullopt);
  EXPECT_EQ(loose("(a){1,2}(?+1)(b)"), std::nullopt);
  EXPECT_EQ(loose("(a){1,2}(?-1)"), std::nullopt);
  EXPECT_EQ(loose("(?<n>a){1,2}(?P>n)"), std::nullopt);
  EXPECT_EQ(loose("(?-i:a){1,2}"), "(?-i:a){1,}");  // an option group, not a call
  EXPECT_EQ(detail::loosen_for_prefilter(rule("a{1,2} b", "x"), "a{1,2} b"), std::nullopt);
}

// Subjects over a small alphabet, so the patterns below match some and not
// others; deterministic.
std::vector<std::string> subjects() {
  // Long runs that random draws rarely produce.
  std::vector<std::string> out = {"aaaab", "abbbabbb", " abbbc", "aaa.aaa.", "aaab", "b b b ccc", "    b", "\n   .b"};
  regexd::testing::add_random_subjects(out, "aab c\xc3\x9d\xbd.\n", 3000, 12, 7);
  return out;
}

TEST(CompactEscapedBytes, IsAnEquivalenceForPcre2) {
  for (const char* p : {"[\\xc3][\\x9d\\xbd]+", "a[\\xc3]?b", "^(?:[\\xc3]\\x9d|c)\\s", "\\xc3{2}|b\\x{bd}$"}) {
    for (const char* flags : {"", "i", "m"}) {
      Rule original = rule(p, flags);
      auto compact = detail::compact_escaped_bytes(original);
      ASSERT_TRUE(compact) << p;
      Rule rewritten = original;
      rewritten.pattern = *compact;
      Pcre2Reference a(original), b(rewritten);
      ASSERT_TRUE(a.valid() && b.valid()) << p;
      for (const auto& s : subjects()) EXPECT_EQ(a.matches(s), b.matches(s)) << p << " on '" << s << "'";
    }
  }
}

TEST(LoosenForPrefilter, IsASupersetForPcre2) {
  // Anchored, so that a looser repeat can be told apart from a later start.
  for (const char* p : {"^a{2,3}b", "(?:a|b ){1,2}c{0,1}$", "^\\s?(?:ab{1,2}|c){2}", "^(?=a{1,2}b)a+b{1,1}",
                        "^(?:[ab]{1,2}?\\.){2,3}", "^(?!aa)[ab]{1,3}$", "^(?:a(?<!ba)|b)+c", "(?:^|\\s)(?!b)\\w+$",
                        "^a(?!(?:b|c))",
                        // Atomic and possessive: each original here fails
                        // on some subject its loosened form matches.
                        "^(?>a{1,2})a", "^a{1,2}+a", "^(?>\\s{0,2})\\W?b", "^(?:a|b)*+b{1,2}c", "^a?+ab{0,1}"}) {
    Rule original = rule(p, "m");
    auto loose = detail::loosen_for_prefilter(original, p);
    ASSERT_TRUE(loose) << p;
    Rule rewritten = original;
    rewritten.pattern = *loose;
    Pcre2Reference a(original), b(rewritten);
    ASSERT_TRUE(a.valid() && b.valid()) << p;
    std::size_t wider = 0;
    for (const auto& s : subjects()) {
      auto x = a.matches(s), y = b.matches(s);
      ASSERT_TRUE(x && y);
      if (*x) {
        EXPECT_TRUE(*y) << p << " matches '" << s << "', " << *loose << " does not";
      }
      wider += !*x && *y;
    }
    EXPECT_GT(wider, 0u) << p << ": the subjects never told the two apart";
  }
}

}  // namespace
