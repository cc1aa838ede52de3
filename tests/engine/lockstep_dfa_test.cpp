// The RE2 tier's own runner (engine/src/lockstep_dfa.h) against RE2::Set:
// for the syntax the PCRE2 -> RE2 translator writes (re2_translate.cpp,
// Emitter), Lockstep must report for every DFA exactly the pattern indices
// RE2::Set (re2_options(), Latin-1, UNANCHORED) reports, on every buffer.
// Every expected answer comes from a real RE2::Set; the few hand-written
// answers below are also checked against it.
//
//  - edge cases by hand: assertions at the ends and around \n and word
//    bytes, empty groups and branches, empty classes, bytes >= 0x80, escaped
//    punctuation, repeats, NUL bytes, empty patterns and buffers;
//  - refusals: syntax the translator never writes makes build() return null;
//  - random translator-style pattern sets over a small alphabet, run with
//    every group width, several DFAs per run, caches kept across buffers,
//    fresh caches and caches small enough to start over mid-buffer;
//  - the cache budget: start-overs, giving up, budgets below one row;
//  - long buffers run as several segments at once: matches across and at
//    segment starts, threads that outlive a segment, random patterns, small
//    caches;
//  - early exit: a DFA whose every pattern matched leaves the run, the
//    others still get complete answers.
#include "lockstep_dfa.h"

#include <gtest/gtest.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "re2_translate.h"

using regexd::engine::detail::DfaCache;
using regexd::engine::detail::DfaProgram;
using regexd::engine::detail::Lockstep;
using regexd::engine::detail::re2_byte_set;
using regexd::engine::detail::re2_options;
using namespace std::string_literals;

namespace {

using ByteSet = std::bitset<256>;
using Answer = std::vector<std::uint32_t>;

constexpr std::size_t kBigBudget = 1 << 20;

// s as a C++ string literal (for failure messages: paste into a test); with
// a NUL byte, a std::string literal ("..."s) unless !suffix.
std::string literal(std::string_view s, bool suffix = true) {
  std::string out = "\"";
  bool after_hex = false, nul = false;
  for (unsigned char c : s) {
    const bool hex_digit = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c >= 0x20 && c < 0x7f) {
      if (after_hex && hex_digit) out += "\" \"";  // "\xe9" "a", not "\xe9a"
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      nul = nul || c == 0;
      after_hex = true;
      continue;
    }
    after_hex = false;
  }
  return out + (nul && suffix ? "\"s" : "\"");
}

// s as a C++ expression, runs of 8 or more equal bytes as std::string(n, c).
std::string expression(std::string_view s) {
  if (s.size() <= 80) return literal(s);
  std::string out = "std::string()";
  std::string text;
  auto flush = [&] {
    if (!text.empty()) out += " + std::string(" + literal(text, false) + ", " + std::to_string(text.size()) + ")";
    text.clear();
  };
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    while (j < s.size() && s[j] == s[i]) ++j;
    if (j - i >= 8) {
      flush();
      const auto c = static_cast<unsigned char>(s[i]);
      char buf[16];
      if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
        std::snprintf(buf, sizeof buf, "'%c'", c);
      else
        std::snprintf(buf, sizeof buf, "'\\x%02x'", c);
      out += " + std::string(" + std::to_string(j - i) + ", " + buf + ")";
    } else {
      text.append(s.substr(i, j - i));
    }
    i = j;
  }
  flush();
  return out;
}

std::string literals(const std::vector<std::string>& v) {
  std::string out = "{";
  for (std::size_t k = 0; k < v.size(); ++k) out += (k ? ", " : "") + literal(v[k]);
  return out + "}";
}

std::string show(const Answer& a) {
  std::string out = "{";
  for (std::size_t k = 0; k < a.size(); ++k) out += (k ? ", " : "") + std::to_string(a[k]);
  return out + "}";
}

// The reference: a real RE2::Set as the RE2 tier builds it.
class Reference {
 public:
  explicit Reference(const std::vector<std::string>& patterns)
      : set_(re2_options(), re2::RE2::UNANCHORED), empty_(patterns.empty()) {
    for (const std::string& p : patterns) {
      std::string error;
      if (set_.Add(re2::StringPiece(p.data(), p.size()), &error) < 0) {
        error_ = literal(p) + ": " + error;
        return;
      }
    }
    if (!empty_ && !set_.Compile()) {
      error_ = "RE2::Set::Compile failed";
      return;
    }
    ok_ = true;
  }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

  // RE2's answer, sorted; nullopt when RE2 could not answer (its DFA ran out
  // of memory, or an inconsistent result).
  std::optional<Answer> match(std::string_view data) const {
    if (empty_) return Answer{};
    std::vector<int> v;
    re2::RE2::Set::ErrorInfo info{re2::RE2::Set::kNoError};
    if (!set_.Match(re2::StringPiece(data.data(), data.size()), &v, &info)) {
      if (info.kind != re2::RE2::Set::kNoError) return std::nullopt;
      return Answer{};
    }
    Answer a(v.begin(), v.end());
    std::sort(a.begin(), a.end());
    return a;
  }

 private:
  re2::RE2::Set set_;
  bool empty_;
  bool ok_ = false;
  std::string error_;
};

bool re2_accepts(const std::string& pattern) { return re2::RE2(pattern, re2_options()).ok(); }

std::unique_ptr<const DfaProgram> build(const std::vector<std::string>& patterns) {
  std::string why;
  auto p = DfaProgram::build(patterns, &why);
  EXPECT_TRUE(p) << "build refused " << literals(patterns) << ": " << why;
  return p;
}

// Lockstep's answer for DFA d after a run, checked to be sorted and unique.
Answer runner_answer(const Lockstep& ls, std::size_t d) {
  const Answer& a = ls.matched(d);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()) && std::adjacent_find(a.begin(), a.end()) == a.end())
      << "matched(" << d << ") not sorted and unique: " << show(a);
  return a;
}

// One pattern set of a hand-written case: the runner (a fresh cache per
// buffer and one cache kept across all buffers) against RE2::Set.
void check_set(const std::vector<std::string>& patterns, const std::vector<std::string>& buffers) {
  SCOPED_TRACE("patterns " + literals(patterns));
  Reference ref(patterns);
  ASSERT_TRUE(ref.ok()) << ref.error();
  auto program = build(patterns);
  ASSERT_TRUE(program);
  DfaCache kept(*program, kBigBudget);
  Lockstep ls(1);
  for (const std::string& b : buffers) {
    const std::optional<Answer> want = ref.match(b);
    ASSERT_TRUE(want) << "RE2 could not answer on " << literal(b);
    DfaCache fresh(*program, kBigBudget);
    for (DfaCache* c : {&fresh, &kept}) {
      DfaCache* const one[] = {c};
      ls.run(one, b);
      ASSERT_TRUE(ls.answered(0)) << "gave up on " << literal(b);
      EXPECT_EQ(show(runner_answer(ls, 0)), show(*want))
          << "buffer " << literal(b) << (c == &fresh ? " (fresh cache)" : " (kept cache)") << "; RE2 " << show(*want);
    }
  }
}

// The patterns as one set and each alone.
void check_like_re2(const std::vector<std::string>& patterns, std::vector<std::string> buffers) {
  for (const std::string& p : patterns) ASSERT_TRUE(re2_accepts(p)) << "RE2 refuses " << literal(p);
  static const std::vector<std::string> kCommon = {
      ""s,      "a"s,        "_"s,    "0"s,     "A"s,      " "s,       "\n"s,     "\0"s,     "\xe9"s,   "\xff"s,
      "ab"s,    "a b"s,      "a\n"s,  "\na"s,   "\n\n"s,   "a\n\n"s,   "a\nb"s,   " \n"s,    "\n "s,    "\351a"s,
      "a\xe9"s, "\xe9\xe9"s, "a\0b"s, "\0a\0"s, "-"s,      "a-b"s,     "."s,      "a.b"s,    "["s,      "aaa"s,
      "aab"s,   "abab"s,     "ba\n"s, "a_b"s,   "aA0_"s,   "a\xe9_ "s, "\n\na"s,  "ab\n"s,   "a\n \n"s, "\xe9\n"s,
      "_\xe9"s, "\0\n\0"s,   "x"s,    "bb"s,    "aaaaaa"s, " a "s,     "a.\n-b"s, "\n\xff"s, "ba"s,     "\t"s,
  };
  buffers.insert(buffers.end(), kCommon.begin(), kCommon.end());
  check_set(patterns, buffers);
  for (const std::string& p : patterns) check_set({p}, buffers);
}

// ---------------------------------------------------------------------------
// Hand-written edge cases.

TEST(LockstepDfaEdgeTest, HandWrittenAnswersAgreeWithRe2AndRunner) {
  // A few answers written out, to be sure the reference itself is what we
  // think: each is checked against RE2::Set and against the runner.
  struct Sanity {
    std::vector<std::string> patterns;
    std::string buffer;
    Answer want;
  };
  const std::vector<Sanity> cases = {
      {{"\\ba", "a\\b"}, "ba", {1}},
      {{"(?m:^)\\z"}, "a\n", {0}},
      {{"(?m:^)\\z"}, "a", {}},
      {{"[^\\x00-\\xff]", "(?:a|)"}, "", {1}},
      {{"(?:)\\xe9", "\\B", "\\b"}, "\xe9", {0, 1}},
      {{"a(?m:$)", "a\\z", "a(?:\\n?\\z)"}, "a\n", {0, 2}},
      {{"\\x00b", "\\Ab"}, "a\0b"s, {0}},
      {{"a{0,0}b", "a{2}"}, "ab", {0}},
  };
  for (const Sanity& s : cases) {
    SCOPED_TRACE(literals(s.patterns) + " on " + literal(s.buffer));
    Reference ref(s.patterns);
    ASSERT_TRUE(ref.ok()) << ref.error();
    EXPECT_EQ(show(*ref.match(s.buffer)), show(s.want)) << "RE2 itself";
    auto program = build(s.patterns);
    ASSERT_TRUE(program);
    DfaCache cache(*program, kBigBudget);
    DfaCache* const one[] = {&cache};
    Lockstep ls;
    ls.run(one, s.buffer);
    ASSERT_TRUE(ls.answered(0));
    EXPECT_EQ(show(runner_answer(ls, 0)), show(s.want)) << "runner";
  }
}

TEST(LockstepDfaEdgeTest, WordBoundary) {
  check_like_re2({"\\b",
                  "\\ba",
                  "a\\b",
                  "\\b\\b",
                  "\\ba\\b",
                  "\\b(?:)\\xe9",
                  "(?:)\\xe9\\b",
                  "\\x20\\b",
                  "\\b\\x20",
                  "_\\b",
                  "\\b_",
                  "\\b0",
                  "\\b\\x00",
                  "\\b\\z",
                  "\\A\\b",
                  "\\b\\x0a",
                  "\\x0a\\b",
                  "[\\x80-\\xff]\\b",
                  "\\b[\\x80-\\xff]",
                  "\\b\\xff"},
                 {"\377a\377"s, "\0_\0"s, "_a_", "a1", "\xc0\xe9", " _ ", "\351b\351"});
}

TEST(LockstepDfaEdgeTest, NotWordBoundary) {
  check_like_re2({"\\B", "\\Ba", "a\\B", "\\B\\z", "\\A\\B", "\\B(?:)\\xe9", "(?:)\\xe9\\B", "\\x20\\B", "\\B\\x20",
                  "a\\Bb", "\\b\\B", "\\B\\b", "\\B\\x00", "_\\B", "\\B\\x0a\\B"},
                 {"\377a\377"s, "\0_\0"s, "_a_", "a1", "\xc0\xe9", " _ ", "  ", "\n\n\n"});
}

TEST(LockstepDfaEdgeTest, MultilineLineStart) {
  check_like_re2(
      {"(?m:^)", "(?m:^)a", "\\x0a(?m:^)", "(?m:^)\\z", "\\x0a(?m:^)\\z", "(?m:^)\\x0a", "a(?m:^)", "(?m:^)(?m:^)b",
       "\\A(?m:^)", "(?m:^)\\A", "(?m:^)\\b", "(?m:^)\\B", "(?m:^)[^\\x0a]", "[^\\x0a](?m:^)"},
      {"\na\n"s, "b\n\nb", "\n\n\n", "a\n\n", "\r\n", "\nb"});
}

TEST(LockstepDfaEdgeTest, MultilineLineEnd) {
  check_like_re2({"(?m:$)", "a(?m:$)", "(?m:$)\\x0a", "(?m:$)\\z", "\\x0a(?m:$)", "(?m:$)a", "(?m:$)(?m:^)",
                  "(?m:^)(?m:$)", "\\A(?m:$)", "(?m:$)\\b", "\\b(?m:$)", "(?m:$)\\x0a(?m:$)", "a(?m:$)\\x0a\\z"},
                 {"a\n\n"s, "\na\n", "a\na", "ab", "a\r\n"});
}

TEST(LockstepDfaEdgeTest, TextAnchors) {
  check_like_re2({"\\A",
                  "\\z",
                  "\\Aa",
                  "a\\z",
                  "\\A\\z",
                  "\\Aa\\z",
                  "(?:\\n?\\z)",
                  "a(?:\\n?\\z)",
                  "\\x0a(?:\\n?\\z)",
                  "(?:\\n?\\z)a",
                  "\\A(?:\\n?\\z)",
                  "a\\A",
                  "\\za",
                  "\\z\\z",
                  "\\A\\A",
                  "\\x0a\\z",
                  "\\A\\x0a",
                  "a(?:\\n?\\z)\\z",
                  "(?:[^a]|\\z)",
                  "(?:\\A|[^a])b"},
                 {"a\n\n"s, "a\n", "\na", "b", "ab\n", "aa\n", "ba"});
}

TEST(LockstepDfaEdgeTest, EmptyGroupsBranchesAndPatterns) {
  check_like_re2({"", "(?:)", "(?:a|)", "(?:|a)", "(?:a|)b", "(?:(?:)|(?:))", "(?:a|)*", "(?:a|)+b", "(?:|)", "a(?:)b",
                  "(?:(?:a|)|b)c", "(?:b|(?:))\\z", "(?:)\\A", "(?:a|b|)"},
                 {"c", "ac", "bc", "b"});
  // An empty pattern alone, with an empty buffer among the common ones.
  check_like_re2({""}, {});
}

TEST(LockstepDfaEdgeTest, EmptyClassMatchesNothing) {
  check_like_re2({"[^\\x00-\\xff]", "a[^\\x00-\\xff]", "[^\\x00-\\xff]*", "[^\\x00-\\xff]?a", "(?:[^\\x00-\\xff]|b)",
                  "[^\\x00-\\xff]{0}", "(?:[^\\x00-\\xff])+", "[\\x00-\\xff]", "[\\x00-\\xff]{3}"},
                 {"ba"});
}

TEST(LockstepDfaEdgeTest, NegatedClassesMatchNewline) {
  check_like_re2({"[^a]", "[^a-z]", "a[^b]", "[^\\x00-\\x09\\x0b-\\xff]", "[^\\x0a]", "[^ab]\\z", "[^\\x0a]+\\z",
                  "\\A[^a]", "[^\\x00-\\x09\\x0b-\\x7f]", "a[^\\x20]*b"},
                 {"a\nb"s, "a\n", "\n", "ab", "aa", "a \n b"});
}

TEST(LockstepDfaEdgeTest, BytesAbove0x7f) {
  check_like_re2({"(?:)\\xe9", "(?:)\\xe9a", "(?:(?:)\\xe9a|(?:)\\xe9)", "[\\x80-\\xff]", "[^\\x00-\\x7f]",
                  "[\\xe9\\xff]", "(?:)\\xff(?:)\\xe9", "a(?:)\\xe9*", "(?:)\\xe9+\\b", "[\\x00\\xe9]", "(?:)\\xc9",
                  "[\\xe0-\\xef]{2}", "(?:)\\x80", "[^\\xe9]", "(?:)\\xe9\\z", "\\A(?:)\\xe9"},
                 {"\xc9\xe9"s, "\xe9\xff", "\xff\xe9", "\x80", "\xe0\xef", "\xe9\xe9\xe9", "\xc3\xa9"});
}

TEST(LockstepDfaEdgeTest, EscapedPunctuation) {
  check_like_re2(
      {"\\-", "\\.", "\\[", "a\\.b", "[\\--\\/]", "[\\[\\]]", "[\\^a]", "\\\\",      "\\]",        "\\{",       "\\(",
       "\\)", "\\|", "\\*", "\\+",   "\\?",       "\\$",      "\\^",    "[\\.\\-]+", "\\!\\\"\\#", "[\\!-\\/]", "\\~"},
      {"\\", "]", "{", "(", ")", "|", "*", "+", "?", "$", "^", "/", ",", "!\"#", "~", "a\\.b"});
}

TEST(LockstepDfaEdgeTest, Repeats) {
  check_like_re2({"a*",
                  "a+",
                  "a?",
                  "a{2}",
                  "a{2,}",
                  "a{1,3}",
                  "a{0,0}",
                  "a{0}",
                  "ba{0,0}c",
                  "(?:ab){2}",
                  "(?:a{2}){2}b",
                  "(?:a+b?){2,3}\\z",
                  "(?:a|b){3,}",
                  "(?:(?:a|)b*){2}",
                  "a{0,2}b",
                  "(?:a*)*",
                  "(?:a?)+b",
                  "(?:a{1,2}){1,2}c",
                  "b{3}\\z",
                  "\\Aa{3,}",
                  "(?:(?:a|b){2}){2,}\\z",
                  "a{4,5}",
                  "[ab]{0,3}c"},
                 {"aaab"s, "aaaab", "abab\n", "bac", "bc", "aaaaac", "bbb", "abbb", "aaaa", "abababab", "c"});
}

TEST(LockstepDfaEdgeTest, RepeatedAssertions) {
  check_like_re2({"(?:\\b)*", "(?:\\b)+", "(?:\\b)?a", "(?:\\B)+a", "(?:\\b)*\\z", "(?:(?m:^))+a", "(?:(?m:$))+",
                  "(?:\\A)*a", "(?:\\z)+", "(?:\\b)+_", "(?:\\b){2}a", "(?:\\b\\B)+", "a(?:\\b)+\\x20",
                  "(?:(?:\\n?\\z))*a", "(?:\\A)+b", "(?:(?m:$)\\x0a)+\\z", "(?:\\b|\\B)+"},
                 {"ba"s, " a", "a ", "b\na"});
}

TEST(LockstepDfaEdgeTest, NulBytes) {
  check_like_re2({"\\x00", "a\\x00", "[\\x00-\\x09]", "\\x00\\z", "\\A\\x00", "\\b\\x00", "[^\\x00]", "\\x00+",
                  "\\x00(?m:$)", "(?m:^)\\x00", "\\x00{2}"},
                 {"\0\0"s, "\0\n"s, "\n\0"s, "a\0\0a"s, "\0\0\0"s});
}

// ---------------------------------------------------------------------------
// Refusals.

TEST(LockstepDfaRefusalTest, SyntaxTheTranslatorNeverWrites) {
  const std::vector<std::string> refused = {
      ".",      "a.b",  "(?i)a",   "(?i:a)",    "a*?",    "a+?",   "a??",     "a{2}?", "a**",      "a*+",    "a+*",
      "\\d",    "\\w",  "\\s",     "\\D",       "\\x4",   "\\x4g", "\\xg0",   "(a)",   "(?P<n>a)", "[a",     "[^a",
      "[]",     "[^]",  "a{1001}", "a{2,1001}", "a{3,2}", "a{,2}", "a{",      "a{2",   "a{2,",     ")",      "a)",
      "(?:a))", "(?:a", "(?m:^",   "^",         "$",      "(?m)^", "(?s:.)",  "(?=a)", "(?!a)",    "(?<=a)", "\\Z",
      "\\1",    "\\Q",  "\\_",     "\\p{L}",    "\\C",    "*",     "+a",      "?",     "{2}",      "a|*",    "[a-]",
      "[b-a]",  "]",    "}",       "\\",        "a\\",    "(?#c)", "\\x{41}", "\\t",   "\\r",
  };
  for (const std::string& p : refused) {
    SCOPED_TRACE("pattern " + literal(p));
    std::string why;
    EXPECT_EQ(DfaProgram::build({p}, &why), nullptr);
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find('\n'), std::string::npos) << why;
    // One bad pattern refuses the whole set, and says which.
    why.clear();
    EXPECT_EQ(DfaProgram::build({"a", "(?m:^)b", p}, &why), nullptr);
    EXPECT_NE(why.find("pattern 2"), std::string::npos) << why;
    // A null why is allowed.
    EXPECT_EQ(DfaProgram::build({p}, nullptr), nullptr);
  }
  // The neighbours that are the translator's syntax are accepted.
  for (const char* p : {"\\.", "a\\.b", "a*", "a{1000}", "a{2,1000}", "a{3,3}", "\\x41", "(?:a)", "[a\\-]", "a\\)",
                        "(?m:^)", "(?m:$)", "\\z", "\\b", "\\\\", "(?:\\n?\\z)", "[^\\x00-\\xff]"}) {
    std::string why;
    EXPECT_NE(DfaProgram::build({p}, &why), nullptr) << literal(p) << ": " << why;
    EXPECT_TRUE(re2_accepts(p)) << literal(p);
  }
}

// Nesting is bounded (the reader and the builder recurse per level): a
// crafted entry's pattern of a million groups is refused, not a crash, and
// the deepest a translation of a PCRE2 rule can be (250 levels) is read.
TEST(LockstepDfaRefusalTest, NestingDeeperThanTheBoundIsRefused) {
  auto nested = [](std::size_t levels) {
    std::string p;
    for (std::size_t k = 0; k < levels; ++k) p += "(?:";
    p += "a";
    for (std::size_t k = 0; k < levels; ++k) p += ")";
    return p;
  };
  std::string why;
  EXPECT_EQ(DfaProgram::build({nested(1000000)}, &why), nullptr);
  EXPECT_NE(why.find("nested deeper than 1000"), std::string::npos) << why;
  why.clear();
  EXPECT_EQ(DfaProgram::build({nested(1001)}, &why), nullptr);
  EXPECT_NE(DfaProgram::build({nested(1000)}, &why), nullptr) << why;
  const std::string deep = nested(250);
  auto program = DfaProgram::build({deep}, &why);
  ASSERT_NE(program, nullptr) << why;
  DfaCache cache(*program, 1 << 20);
  Lockstep ls;
  DfaCache* const one[] = {&cache};
  ls.run(one, "xxaxx");
  ASSERT_TRUE(ls.answered(0));
  EXPECT_EQ(ls.matched(0), std::vector<std::uint32_t>{0});
}

// ---------------------------------------------------------------------------
// Random translator-style patterns.

// Bytes the patterns and buffers are made of: word and non-word bytes, \n,
// NUL, punctuation RE2 needs escaped, two bytes >= 0x80 (non-word for \b).
const std::string kAlphabet = {'\0', '\n', ' ', '-', '.', '0', 'A', '_', 'a', 'b', '\xe9', '\xff'};

class Generator {
 public:
  explicit Generator(std::uint32_t seed) : rng_(seed) {}

  int pick(int n) { return static_cast<int>(rng_() % static_cast<std::uint32_t>(n)); }

  std::vector<std::string> pattern_set() {
    std::vector<std::string> out(static_cast<std::size_t>(1 + pick(8)));
    for (auto& p : out) p = sequence(0);
    return out;
  }

  // A buffer over a few bytes of the alphabet (fewer bytes: longer matches).
  std::string buffer() {
    std::string bytes;
    const int n = 2 + pick(5);
    for (int k = 0; k < n; ++k) bytes += kAlphabet[static_cast<std::size_t>(pick(static_cast<int>(kAlphabet.size())))];
    std::string out(static_cast<std::size_t>(pick(41)), '\0');
    for (char& c : out) c = bytes[static_cast<std::size_t>(pick(static_cast<int>(bytes.size())))];
    return out;
  }

 private:
  int alphabet_byte() {
    return static_cast<unsigned char>(kAlphabet[static_cast<std::size_t>(pick(static_cast<int>(kAlphabet.size())))]);
  }

  ByteSet byte_set() {
    ByteSet s;
    const int r = pick(40);
    if (r == 0) return s;                // [^\x00-\xff]
    if (r == 1) return ByteSet().set();  // [\x00-\xff]
    if (r < 22) {
      s.set(static_cast<std::size_t>(alphabet_byte()));
      return s;
    }
    const int pieces = 1 + pick(3);
    for (int k = 0; k < pieces; ++k) {
      int lo = alphabet_byte(), hi = pick(2) ? lo : alphabet_byte();
      if (lo > hi) std::swap(lo, hi);
      for (int c = lo; c <= hi; ++c) s.set(static_cast<std::size_t>(c));
    }
    if (pick(3) == 0) s.flip();
    return s;
  }

  std::string assertion() {
    static const std::array<const char*, 7> kAssertions = {"\\A",    "\\z",    "\\b",        "\\B",
                                                           "(?m:^)", "(?m:$)", "(?:\\n?\\z)"};
    return kAssertions[static_cast<std::size_t>(pick(static_cast<int>(kAssertions.size())))];
  }

  // emit_repeat's spellings.
  std::string quantifier() {
    const int min = pick(4);
    const int max = pick(3) == 0 ? -1 : min + pick(3);
    if (min == 0 && max == -1) return "*";
    if (min == 1 && max == -1) return "+";
    if (min == 0 && max == 1) return "?";
    if (max == -1) return "{" + std::to_string(min) + ",}";
    if (min == max) return "{" + std::to_string(min) + "}";
    return "{" + std::to_string(min) + "," + std::to_string(max) + "}";
  }

  std::string group(int depth) {
    std::string out = "(?:";
    const int alternatives = 1 + pick(3);
    for (int k = 0; k < alternatives; ++k) out += (k ? "|" : "") + sequence(depth);
    return out + ")";
  }

  std::string item(int depth) {
    const int r = depth >= 3 ? pick(72) : pick(100);
    std::string text;
    bool set = false;
    if (r < 55) {
      text = re2_byte_set(byte_set());
      set = true;
    } else if (r < 72) {
      text = assertion();
    } else if (r < 92) {
      text = group(depth + 1);
    } else if (r < 96) {
      text = "(?:" + re2_byte_set(byte_set()) + "|\\z)";  // a negative look-ahead at the end
    } else {
      text = "(?:\\A|" + re2_byte_set(byte_set()) + ")";  // a negative look-behind at the start
    }
    if (pick(4) == 0) text = (set ? text : "(?:" + text + ")") + quantifier();
    return text;
  }

  std::string sequence(int depth) {
    const int r = pick(20);
    const int n = r == 0 ? 0 : r < 6 ? 1 : r < 13 ? 2 : r < 18 ? 3 : 4;
    std::string out;
    for (int k = 0; k < n; ++k) out += item(depth);
    return out;
  }

  std::mt19937 rng_;
};

struct RandomSet {
  std::vector<std::string> patterns;
  std::unique_ptr<Reference> ref;
  std::unique_ptr<const DfaProgram> program;
};

struct Stats {
  std::size_t sets = 0, patterns = 0, re2_refused = 0, buffers = 0, comparisons = 0, matched = 0, partial_budget = 0,
              partial_answered = 0, partial_resets = 0, mismatches = 0;
};

class Mismatches {
 public:
  // Reports a disagreement (the first few in full).
  void report(Stats& stats, const std::string& how, const RandomSet& s, const std::string& buffer, const Answer& want,
              const Answer& got) {
    ++stats.mismatches;
    if (stats.mismatches <= 10)
      ADD_FAILURE() << how << ": patterns " << literals(s.patterns) << " buffer " << literal(buffer) << ": RE2 "
                    << show(want) << ", runner " << show(got);
  }
};

TEST(LockstepDfaRandomTest, TranslatorStylePatternsAgreeWithRe2Set) {
  const auto started = std::chrono::steady_clock::now();
  Generator gen(20260714);
  Stats stats;
  Mismatches mismatches;
  // Passes of every width: 1 DFA per pass, 4 (pass<4>), 8 (pass<8>), 12
  // (pass<12> with 10 DFAs; two passes with 13).
  Lockstep l1(1), l4(4), l8(8), l12;
  const std::array<Lockstep*, 4> runners = {&l1, &l4, &l8, &l12};
  const std::array<const char*, 4> runner_names = {"Lockstep(1)", "Lockstep(4)", "Lockstep(8)", "Lockstep()"};
  const std::array<std::size_t, 4> batch_sizes = {1, 5, 10, 13};
  constexpr int kRounds = 420;
  constexpr int kBuffersPerRound = 24;
  for (int round = 0; round < kRounds && stats.mismatches < 50; ++round) {
    const std::size_t n = batch_sizes[static_cast<std::size_t>(round) % batch_sizes.size()];
    std::vector<RandomSet> sets;
    while (sets.size() < n) {
      RandomSet s;
      for (std::string& p : gen.pattern_set()) {
        if (re2_accepts(p)) {
          s.patterns.push_back(std::move(p));
        } else {
          ++stats.re2_refused;
        }
      }
      if (s.patterns.empty()) continue;
      s.ref = std::make_unique<Reference>(s.patterns);
      if (!s.ref->ok()) {
        ++stats.re2_refused;
        continue;
      }
      s.program = build(s.patterns);
      if (!s.program) continue;
      stats.patterns += s.patterns.size();
      sets.push_back(std::move(s));
    }
    stats.sets += n;
    // Caches kept across the round's buffers (and runners): the lazy states
    // persist.  Small caches that start over (or give up) mid-buffer.
    std::vector<std::unique_ptr<DfaCache>> kept, small;
    std::vector<DfaCache*> kept_ptrs, small_ptrs;
    for (const RandomSet& s : sets) {
      kept.push_back(std::make_unique<DfaCache>(*s.program, kBigBudget));
      kept_ptrs.push_back(kept.back().get());
      small.push_back(std::make_unique<DfaCache>(*s.program, 2048));
      small_ptrs.push_back(small.back().get());
    }
    for (int b = 0; b < kBuffersPerRound; ++b) {
      const std::string buffer = gen.buffer();
      ++stats.buffers;
      std::vector<std::optional<Answer>> want(n);
      for (std::size_t d = 0; d < n; ++d) {
        want[d] = sets[d].ref->match(buffer);
        ASSERT_TRUE(want[d]) << "RE2 could not answer: " << literals(sets[d].patterns) << " on " << literal(buffer);
        if (!want[d]->empty()) ++stats.matched;
      }
      for (std::size_t k = 0; k < runners.size(); ++k) {
        Lockstep& ls = *runners[k];
        ls.run(kept_ptrs, buffer);
        for (std::size_t d = 0; d < n; ++d) {
          ++stats.comparisons;
          if (!ls.answered(d)) {
            mismatches.report(stats, std::string(runner_names[k]) + " gave up with a 1 MB cache", sets[d], buffer,
                              *want[d], {});
            continue;
          }
          const Answer got = runner_answer(ls, d);
          if (got != *want[d])
            mismatches.report(stats, std::string(runner_names[k]) + ", " + std::to_string(n) + " DFAs, kept caches",
                              sets[d], buffer, *want[d], got);
        }
      }
      // Fresh caches, every other buffer.
      if (b % 2 == 0) {
        std::vector<std::unique_ptr<DfaCache>> fresh;
        std::vector<DfaCache*> fresh_ptrs;
        for (const RandomSet& s : sets) {
          fresh.push_back(std::make_unique<DfaCache>(*s.program, kBigBudget));
          fresh_ptrs.push_back(fresh.back().get());
        }
        Lockstep& ls = *runners[static_cast<std::size_t>(b / 2) % runners.size()];
        ls.run(fresh_ptrs, buffer);
        for (std::size_t d = 0; d < n; ++d) {
          ++stats.comparisons;
          const Answer got = ls.answered(d) ? runner_answer(ls, d) : Answer{};
          if (!ls.answered(d) || got != *want[d])
            mismatches.report(stats, "fresh caches", sets[d], buffer, *want[d], got);
        }
      }
      // Small caches: when the runner answers, it is RE2's answer.
      std::vector<std::size_t> resets_before(n);
      for (std::size_t d = 0; d < n; ++d) resets_before[d] = small[d]->resets();
      l12.run(small_ptrs, buffer);
      for (std::size_t d = 0; d < n; ++d) {
        ++stats.partial_budget;
        if (small[d]->resets() > resets_before[d]) ++stats.partial_resets;
        if (!l12.answered(d)) continue;
        ++stats.partial_answered;
        ++stats.comparisons;
        const Answer got = runner_answer(l12, d);
        if (got != *want[d]) mismatches.report(stats, "2 KB caches", sets[d], buffer, *want[d], got);
      }
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "random: %zu sets, %zu patterns (%zu refused by RE2), %zu buffers, %zu comparisons, %zu set answers non-empty; "
      "2 KB caches: %zu runs, %zu started over, %zu answered; %zu mismatches; %.2f s\n",
      stats.sets, stats.patterns, stats.re2_refused, stats.buffers, stats.comparisons, stats.matched,
      stats.partial_budget, stats.partial_resets, stats.partial_answered, stats.mismatches, seconds);
  EXPECT_EQ(stats.mismatches, 0u);
  // The generator must produce enough of everything for the test to mean
  // something: matches and non-matches, and small caches that start over.
  EXPECT_GT(stats.matched, stats.buffers / 4);
  EXPECT_LT(stats.matched, stats.sets * kBuffersPerRound * 9 / 10);
  EXPECT_GT(stats.partial_resets, 100u);
  EXPECT_GT(stats.partial_answered, stats.partial_budget / 2);
}

// ---------------------------------------------------------------------------
// The cache budget.

// Patterns whose DFA needs hundreds of states on random a/b text (which of
// the last 9 bytes were an 'a'), and that do not all match early.
const std::vector<std::string> kManyStates = {"a[ab]{8}c", "(?:a|b)*b(?:a|b){6}a\\z", "(?m:^)a{30}", "\\bb{12}"};

std::string ab_text(std::mt19937& rng, std::size_t n) {
  std::string s(n, 'a');
  for (char& c : s) c = rng() % 2 ? 'a' : 'b';
  return s;
}

// Lockstep(1) runs whole passes (start-overs allowed); Lockstep() runs one
// or two DFAs over segments of a long buffer (a spent budget gives up).
TEST(LockstepDfaBudgetTest, TinyBudgetStartsOverOrGivesUpNeverWrong) {
  Reference ref(kManyStates);
  ASSERT_TRUE(ref.ok()) << ref.error();
  auto program = build(kManyStates);
  ASSERT_TRUE(program);
  std::mt19937 rng(7);
  std::size_t gave_up = 0, answered = 0;
  for (std::size_t group : {1, 12}) {
    DfaCache tiny(*program, 12288);
    DfaCache ample(*program, 8 << 20);
    Lockstep ls(group);
    for (int k = 0; k < 12; ++k) {
      std::string text = ab_text(rng, 20000);
      if (k % 3 == 1) text += "c";  // the first pattern may match at the very end
      if (k % 4 == 2) text.insert(text.size() / 2, "\n" + std::string(30, 'a'));
      const std::optional<Answer> want = ref.match(text);
      ASSERT_TRUE(want);
      const std::size_t resets = tiny.resets();
      DfaCache* const both[] = {&tiny, &ample};
      ls.run(both, text);
      if (group == 1) {
        EXPECT_GT(tiny.resets(), resets) << "buffer " << k << ": the tiny cache never started over";
      }
      if (ls.answered(0)) {
        ++answered;
        EXPECT_EQ(show(runner_answer(ls, 0)), show(*want)) << "tiny cache, group " << group << ", buffer " << k;
      } else {
        ++gave_up;
      }
      ASSERT_TRUE(ls.answered(1)) << "an 8 MB cache gave up, group " << group << ", buffer " << k;
      EXPECT_EQ(show(runner_answer(ls, 1)), show(*want)) << "ample cache, group " << group << ", buffer " << k;
    }
    EXPECT_EQ(ample.resets(), 0u);
    std::printf("tiny budget on random a/b text, group %zu: %zu start-overs, %zu states in 8 MB\n", group,
                tiny.resets(), ample.states());
  }
  std::printf("tiny budget on random a/b text: %zu answered, %zu gave up\n", answered, gave_up);
}

TEST(LockstepDfaBudgetTest, TinyBudgetAnswersWhenStartOversAreRare) {
  // Long runs of one byte between short bursts of a/b: the cache starts
  // over at bursts, with plenty of progress between start-overs, so the
  // runner keeps going (RE2's bail-out is for start-overs that come too
  // often) and answers.
  Reference ref(kManyStates);
  ASSERT_TRUE(ref.ok());
  auto program = build(kManyStates);
  ASSERT_TRUE(program);
  std::mt19937 rng(11);
  DfaCache tiny(*program, 12288);
  Lockstep ls(1);  // whole passes: segments give up instead of starting over
  for (int k = 0; k < 6; ++k) {
    std::string text;
    for (int burst = 0; burst < 40; ++burst) text += std::string(3000, 'x') + ab_text(rng, 10);
    if (k % 2) text += "a" + ab_text(rng, 8) + "c";
    const std::optional<Answer> want = ref.match(text);
    ASSERT_TRUE(want);
    const std::size_t resets = tiny.resets();
    DfaCache* const one[] = {&tiny};
    ls.run(one, text);
    EXPECT_GT(tiny.resets(), resets + 5) << "buffer " << k;
    ASSERT_TRUE(ls.answered(0)) << "buffer " << k;
    EXPECT_EQ(show(runner_answer(ls, 0)), show(*want)) << "buffer " << k;
  }
}

TEST(LockstepDfaBudgetTest, BudgetBelowOneRowTerminates) {
  Reference ref(kManyStates);
  ASSERT_TRUE(ref.ok());
  auto program = build(kManyStates);
  ASSERT_TRUE(program);
  std::mt19937 rng(3);
  for (std::size_t group : {1, 12}) {
    Lockstep ls(group);
    for (std::size_t budget : {std::size_t{0}, std::size_t{1}, std::size_t{64}, std::size_t{400}}) {
      DfaCache starved(*program, budget);
      for (const std::string& text : {std::string(), std::string("a"), ab_text(rng, 5000), ab_text(rng, 40000)}) {
        const std::optional<Answer> want = ref.match(text);
        ASSERT_TRUE(want);
        DfaCache* const one[] = {&starved};
        ls.run(one, text);  // must return
        if (ls.answered(0)) {
          EXPECT_EQ(show(runner_answer(ls, 0)), show(*want)) << "budget " << budget << ", group " << group;
        }
      }
      // The empty buffer needs no transition: it is always answered.
      DfaCache* const one[] = {&starved};
      ls.run(one, "");
      ASSERT_TRUE(ls.answered(0));
      EXPECT_EQ(show(runner_answer(ls, 0)), show(*ref.match("")));
    }
  }
}

// ---------------------------------------------------------------------------
// Long buffers: when a group has room for several chains per DFA, Lockstep
// runs each DFA over several segments of the buffer at once (a chain runs
// on past its segment until it meets the next one, or to the end).
// Lockstep(1) always runs whole passes, one DFA at a time.

// The positions where segments begin, for 2 to `most` segments and for 8.
std::vector<std::size_t> segment_starts(std::size_t len, std::size_t most = 8) {
  std::vector<std::size_t> counts = {8};
  for (std::size_t s = 2; s <= most; ++s) counts.push_back(s);
  std::vector<std::size_t> out;
  for (std::size_t s : counts)
    for (std::size_t k = 1; k < s; ++k) out.push_back(k * (len / s));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Compares Lockstep(), Lockstep(8), Lockstep(4), Lockstep(2), Lockstep(1)
// (caches kept across the buffers) and Lockstep() with fresh caches with
// RE2 on each buffer: every
// DFA must answer (ample caches) with RE2's answer.  *mismatches, if given,
// counts disagreements (only the first few reported in full).
void check_long(const std::vector<std::vector<std::string>>& sets, const std::vector<std::string>& buffers,
                std::size_t* mismatches = nullptr) {
  std::vector<std::unique_ptr<Reference>> refs;
  std::vector<std::unique_ptr<const DfaProgram>> programs;
  for (const auto& s : sets) {
    refs.push_back(std::make_unique<Reference>(s));
    ASSERT_TRUE(refs.back()->ok()) << refs.back()->error();
    programs.push_back(build(s));
    ASSERT_TRUE(programs.back());
  }
  Lockstep l12, l8(8), l4(4), l2(2), l1(1);
  std::vector<std::unique_ptr<DfaCache>> kept;
  std::vector<DfaCache*> kept_ptrs;
  for (const auto& p : programs) {
    kept.push_back(std::make_unique<DfaCache>(*p, kBigBudget));
    kept_ptrs.push_back(kept.back().get());
  }
  for (const std::string& b : buffers) {
    std::vector<Answer> want;
    for (const auto& r : refs) {
      auto a = r->match(b);
      ASSERT_TRUE(a);
      want.push_back(*a);
    }
    std::vector<std::unique_ptr<DfaCache>> fresh;
    std::vector<DfaCache*> fresh_ptrs;
    for (const auto& p : programs) {
      fresh.push_back(std::make_unique<DfaCache>(*p, kBigBudget));
      fresh_ptrs.push_back(fresh.back().get());
    }
    const std::array<std::pair<Lockstep*, const char*>, 6> runs = {{{&l12, "Lockstep()"},
                                                                    {&l8, "Lockstep(8)"},
                                                                    {&l4, "Lockstep(4)"},
                                                                    {&l2, "Lockstep(2)"},
                                                                    {&l1, "Lockstep(1)"},
                                                                    {&l12, "Lockstep(), fresh caches"}}};
    for (std::size_t k = 0; k < runs.size(); ++k) {
      Lockstep& ls = *runs[k].first;
      ls.run(k == 5 ? fresh_ptrs : kept_ptrs, b);
      for (std::size_t d = 0; d < sets.size(); ++d) {
        const Answer got = ls.answered(d) ? runner_answer(ls, d) : Answer{};
        if (ls.answered(d) && got == want[d]) continue;
        if (mismatches && ++*mismatches > 10) continue;
        ADD_FAILURE() << runs[k].second << ", " << sets.size() << " DFAs, buffer of " << b.size() << " bytes: patterns "
                      << literals(sets[d]) << (ls.answered(d) ? "" : " gave up with a 1 MB cache") << "; RE2 "
                      << show(want[d]) << ", runner " << show(got) << "; buffer " << expression(b);
      }
    }
  }
}

// A buffer of `len` bytes of `fill` with `text` written at `at`.
std::string placed(std::size_t len, char fill, std::initializer_list<std::pair<std::size_t, std::string>> texts) {
  std::string b(len, fill);
  for (const auto& [at, text] : texts) b.replace(at, text.size(), text);
  return b;
}

TEST(LockstepDfaSegmentTest, MatchesAcrossAndAtSegmentStarts) {
  // Short buffers (segments as short as the runner makes them: 2 to 8 of
  // them) and long ones (2, 4 or 8 segments: the group's room for chains).
  for (const auto& [len, most] : {std::pair<std::size_t, std::size_t>{2000, 8}, {10000, 4}}) {
    SCOPED_TRACE("buffers of " + std::to_string(len) + " bytes");
    std::vector<std::string> buffers;
    for (std::size_t s : segment_starts(len, most)) {
      for (std::size_t back : {0, 1, 2}) {
        buffers.push_back(placed(len, 'x', {{s - back, "abc"}}));
        buffers.push_back(placed(len, ' ', {{s - back, "abc"}}));
      }
      buffers.push_back(placed(len, 'x', {{s - 1, "\nq"}}));
      buffers.push_back(placed(len, 'x', {{s - 1, " q"}}));
      buffers.push_back(placed(len, 'x', {{s - 1, "xq"}}));
      buffers.push_back(placed(len, ' ', {{s - 1, "xq"}}));
      buffers.push_back(placed(len, ' ', {{s - 1, "\nq"}}));
      buffers.push_back(placed(len, ' ', {{s - 1, "\n"}}));
      buffers.push_back(placed(len, 'x', {{s - 1, "\xe9q"}}));
      // A repeated byte across the start: the next chain, started on its
      // second byte, reaches the state this chain has one byte earlier.
      buffers.push_back(placed(len, 'x', {{s - 1, "qq"}}));
      buffers.push_back(placed(len, 'x', {{s - 2, "qqq"}}));
      buffers.push_back(placed(len, 'x', {{s - 1, "  "}}));
    }
    buffers.push_back(std::string(len, 'x'));
    buffers.push_back(placed(len, 'x', {{0, "q"}}));
    buffers.push_back(placed(len, 'x', {{len - 1, "q"}}));
    buffers.push_back(placed(len, 'x', {{len - 1, "\n"}}));
    buffers.push_back(placed(len, 'x', {{len - 2, "q\n"}}));
    buffers.push_back(placed(len + 7, ' ', {{len + 6, "q"}}));  // a remainder after the last segment
    const std::vector<std::string> starts = {"abc", "\\bq", "\\Bq", "(?m:^)q", "\\Aq", "\\Ax", "(?m:^)\\z"};
    const std::vector<std::string> ends = {"q\\z", "q(?:\\n?\\z)",   "q(?m:$)", "q\\b",
                                           "q\\B", "\\x0a(?m:^)\\z", "\\b\\z"};
    const std::vector<std::string> inner = {"c\\x20", "xabcx", "\\x20a", "\\x0a(?m:^)x", "x(?m:$)", "(?:)\\xe9q"};
    const std::vector<std::string> repeated = {"qq", "q{3}", "\\x20\\x20", "xqqx"};
    check_long({starts}, buffers);
    check_long({starts, ends, inner, repeated}, buffers);
    check_long({starts, {"never"}, repeated}, buffers);
    for (const char* p : {"(?m:^)q", "qq", "q{3}"}) check_long({{std::string(p)}}, buffers);
    check_long({{"qq"}, {"\\x20\\x20"}}, buffers);
  }
}

TEST(LockstepDfaSegmentTest, ThreadsThatLiveAcrossSegments) {
  // Threads alive for thousands of bytes: a chain does not meet the next
  // one within its window and must run on to the end; or the match needs
  // text from two or more segments.
  constexpr std::size_t kLen = 20000;
  std::vector<std::string> buffers;
  for (std::size_t a : {0, 10, 2400, 5000, 9990, 15000}) {
    for (std::size_t c : {a + 5, a + 1500, a + 3000, a + 9000, kLen - 1}) {
      if (c >= kLen) continue;
      buffers.push_back(placed(kLen, 'x', {{a, "a"}, {c, "c"}}));
      buffers.push_back(placed(kLen, 'x', {{a, "a"}, {(a + c) / 2, "b"}, {c, "c"}}));
      buffers.push_back(placed(kLen, '\n', {{a, "a"}, {c, "c"}}));
    }
  }
  const std::vector<std::string> sets = {"a[^b]*c", "a[^b]*\\z",     "\\Aa[^b]*c", "a[^b]*c\\z",
                                         "ax*c",    "a[^c]{1000,}c", "a[^\\x0a]*c"};
  check_long({sets}, buffers);
  check_long({{"a[^b]*c"}, {"ax*c"}}, buffers);
  check_long({{"a[^b]*c"}, {"ax*c"}, {"a[^\\x0a]*c"}, {"\\Aa[^b]*c", "a[^b]*\\z"}}, buffers);
}

TEST(LockstepDfaSegmentTest, RandomPatternsOnLongBuffers) {
  const auto started = std::chrono::steady_clock::now();
  Generator gen(4242);
  std::mt19937 rng(99);
  std::size_t mismatches = 0, runs = 0;
  for (int round = 0; round < 60 && mismatches <= 10; ++round) {
    std::vector<std::vector<std::string>> sets;
    const std::size_t n = 1 + rng() % 4;
    while (sets.size() < n) {
      std::vector<std::string> s;
      for (std::string& p : gen.pattern_set())
        if (re2_accepts(p)) s.push_back(std::move(p));
      if (!s.empty() && Reference(s).ok()) sets.push_back(std::move(s));
    }
    std::vector<std::string> buffers;
    for (int k = 0; k < 3; ++k) {
      const std::size_t len = k == 0 ? 8192 + rng() % 24000 : 500 + rng() % 3600;
      const char fill = "x ~\n"[rng() % 4];
      std::string b(len, fill);
      if (rng() % 3 == 0)  // dense: random bytes of the alphabet all along
        for (std::size_t i = 0; i < len; i += 40) {
          const std::string s = gen.buffer();
          b.replace(i, std::min(s.size(), len - i), s.substr(0, len - i));
        }
      // Short random texts just before, on and after where segments begin.
      for (std::size_t s : segment_starts(len)) {
        const std::string t = gen.buffer();
        const std::size_t at = s - std::min<std::size_t>(s, rng() % (t.size() + 1));
        b.replace(at, std::min(t.size(), len - at), t.substr(0, len - at));
      }
      if (rng() % 2) {
        const std::string t = gen.buffer();
        b.replace(len - std::min(len, t.size()), t.size(), t);
      }
      buffers.push_back(std::move(b));
    }
    check_long(sets, buffers, &mismatches);
    runs += buffers.size();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("segments: %zu long buffers, %zu mismatches, %.2f s\n", runs, mismatches, seconds);
  EXPECT_EQ(mismatches, 0u);
}

TEST(LockstepDfaSegmentTest, SmallCachesGiveUpOrAnswerRight) {
  // A segment chain never starts the cache over: a spent budget gives up
  // (RE2::Set answers), and start states that do not fit give up.
  Reference ref(kManyStates);
  ASSERT_TRUE(ref.ok());
  auto program = build(kManyStates);
  ASSERT_TRUE(program);
  std::mt19937 rng(17);
  Lockstep ls;
  std::size_t answered = 0, gave_up = 0;
  for (std::size_t budget : {std::size_t{0}, std::size_t{300}, std::size_t{2048}, std::size_t{16384},
                             std::size_t{65536}, std::size_t{1} << 20}) {
    DfaCache cache(*program, budget);
    for (int k = 0; k < 4; ++k) {
      std::string text = k % 2 ? ab_text(rng, 16384) : placed(16384, 'x', {{8190, ab_text(rng, 40)}});
      if (k >= 2) text += "a" + ab_text(rng, 8) + "c";
      const std::optional<Answer> want = ref.match(text);
      ASSERT_TRUE(want);
      DfaCache* const one[] = {&cache};
      ls.run(one, text);
      if (!ls.answered(0)) {
        ++gave_up;
        continue;
      }
      ++answered;
      EXPECT_EQ(show(runner_answer(ls, 0)), show(*want)) << "budget " << budget << ", buffer " << k;
    }
  }
  std::printf("segments with small caches: %zu answered, %zu gave up\n", answered, gave_up);
  EXPECT_GT(answered, 0u);
  EXPECT_GT(gave_up, 0u);
}

// ---------------------------------------------------------------------------
// Early exit.

TEST(LockstepDfaEarlyExitTest, FinishedDfasLeaveOthersComplete) {
  // DFA 0's patterns all match in the first bytes; the others need the
  // whole buffer (matches at the end, at end-of-text, or none).
  const std::vector<std::vector<std::string>> sets = {
      {"a", "b"},
      {"z\\z", "(?m:^)q", "\\bc", "never"},
      {"(?:)\\xe9(?:\\n?\\z)", "y(?m:$)", "[^\\x00-\\xff]"},
      {"\\Aa", "ab"},  // all matched at byte 2 as well
      {"x{3}", "q\\b", "\\B\\z"},
  };
  std::vector<std::unique_ptr<Reference>> refs;
  std::vector<std::unique_ptr<const DfaProgram>> programs;
  for (const auto& s : sets) {
    refs.push_back(std::make_unique<Reference>(s));
    ASSERT_TRUE(refs.back()->ok()) << refs.back()->error();
    programs.push_back(build(s));
    ASSERT_TRUE(programs.back());
  }
  const std::vector<std::string> buffers = {
      "ab........xxx\nq c y\nz"s,
      "ab  \xe9\n"s,
      "ba"s,
      "abcdefghijklmnopqrstuvwxyz\xe9"s,
      "ab"s + std::string(5000, '.') + "xxx q\xe9\n",
      "xyz"s,
      ""s,
      "ab"s,
  };
  for (std::size_t group : {1, 2, 3, 4, 8, 12}) {
    Lockstep ls(group);
    // Caches kept across buffers: a DFA that left one run early starts the
    // next one afresh.  And the tiny one gives up in the same run as others
    // finish early.
    std::vector<std::unique_ptr<DfaCache>> caches;
    std::vector<DfaCache*> ptrs;
    for (const auto& p : programs) {
      caches.push_back(std::make_unique<DfaCache>(*p, kBigBudget));
      ptrs.push_back(caches.back().get());
    }
    for (const std::string& b : buffers) {
      // Every subset order: the finishing DFA first, last, alone.
      for (int rotate = 0; rotate < static_cast<int>(ptrs.size()); ++rotate) {
        std::vector<DfaCache*> order(ptrs.size());
        std::vector<std::size_t> which(ptrs.size());
        for (std::size_t d = 0; d < ptrs.size(); ++d) {
          which[d] = (d + static_cast<std::size_t>(rotate)) % ptrs.size();
          order[d] = ptrs[which[d]];
        }
        ls.run(order, b);
        for (std::size_t d = 0; d < order.size(); ++d) {
          ASSERT_TRUE(ls.answered(d));
          EXPECT_EQ(show(runner_answer(ls, d)), show(*refs[which[d]]->match(b)))
              << "group " << group << ", set " << literals(sets[which[d]]) << ", buffer " << expression(b);
        }
      }
    }
  }
  // The hand-checked answer: DFA 0 complete although it left at byte 2.
  Lockstep ls(4);
  std::vector<std::unique_ptr<DfaCache>> caches;
  std::vector<DfaCache*> ptrs;
  for (const auto& p : programs) {
    caches.push_back(std::make_unique<DfaCache>(*p, kBigBudget));
    ptrs.push_back(caches.back().get());
  }
  ls.run(ptrs, buffers[0]);
  EXPECT_EQ(show(runner_answer(ls, 0)), "{0, 1}");
  EXPECT_EQ(show(runner_answer(ls, 1)), "{0, 1, 2}");
  EXPECT_EQ(show(runner_answer(ls, 4)), "{0, 1}");
}

TEST(LockstepDfaEarlyExitTest, FinishingAndGivingUpInOneRun) {
  auto quick = build({"a", "b"});
  auto heavy = build(kManyStates);
  auto late = build({"c\\z", "\\bcc"});
  ASSERT_TRUE(quick && heavy && late);
  Reference quick_ref({"a", "b"}), heavy_ref(kManyStates), late_ref({"c\\z", "\\bcc"});
  std::mt19937 rng(5);
  const std::string text = ab_text(rng, 30000) + " cc";
  for (std::size_t group : {1, 3, 12}) {
    DfaCache q(*quick, kBigBudget), h(*heavy, 1024), l(*late, kBigBudget);
    DfaCache* const all[] = {&q, &h, &l};
    Lockstep ls(group);
    ls.run(all, text);
    ASSERT_TRUE(ls.answered(0));
    EXPECT_EQ(show(runner_answer(ls, 0)), show(*quick_ref.match(text))) << "group " << group;
    if (ls.answered(1)) {
      EXPECT_EQ(show(runner_answer(ls, 1)), show(*heavy_ref.match(text))) << "group " << group;
    }
    ASSERT_TRUE(ls.answered(2));
    EXPECT_EQ(show(runner_answer(ls, 2)), show(*late_ref.match(text))) << "group " << group;
    EXPECT_EQ(show(runner_answer(ls, 2)), "{0, 1}");
  }
}

}  // namespace
