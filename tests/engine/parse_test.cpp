// Tests for the rule model and the native, SpamAssassin and Rspamd-map
// parsers declared in regexd/engine/rule.h.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "regexd/engine/rule.h"

namespace regexd::engine {
namespace {

namespace fs = std::filesystem;

const Rule* find_rule(const RuleSet& set, const std::string& id) {
  for (const Rule& rule : set.rules) {
    if (rule.id == id) return &rule;
  }
  return nullptr;
}

std::string all_errors(const RuleSet& set) {
  std::string out;
  for (const RuleError& error : set.rejected) out += error.to_string() + "\n";
  return out;
}

std::size_t skipped(const RuleSet& set, const std::string& kind) {
  auto it = set.skipped.find(kind);
  return it == set.skipped.end() ? 0 : it->second;
}

// A scratch directory removed when the test ends.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("regexd_parse_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    fs::path file = path_ / name;
    std::ofstream out(file, std::ios::binary);
    out << content;
    return file.string();
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---------------------------------------------------------------------------
// Flags

TEST(ParseFlags, EachLetterMapsToItsFlag) {
  struct Case {
    const char* letters;
    std::uint32_t flags;
  };
  const Case cases[] = {
      {"i", kCaseless}, {"m", kMultiline}, {"s", kDotall}, {"x", kExtended},
      {"u", kUtf8},     {"L", kLeftmost},  {"O", kNoOpt},  {"r", kRaw},
  };
  for (const Case& c : cases) {
    char bad = 0;
    auto flags = parse_flags(c.letters, &bad);
    ASSERT_TRUE(flags.has_value()) << c.letters;
    EXPECT_EQ(*flags, c.flags) << c.letters;
    EXPECT_EQ(bad, 0);
  }
}

TEST(ParseFlags, EmptyIsNoFlagsAndLettersCombine) {
  EXPECT_EQ(parse_flags("", nullptr), 0u);
  EXPECT_EQ(parse_flags("imsx", nullptr), kCaseless | kMultiline | kDotall | kExtended);
  EXPECT_EQ(parse_flags("ii", nullptr), kCaseless);
  EXPECT_EQ(parse_flags("LOi", nullptr), kLeftmost | kNoOpt | kCaseless);
}

TEST(ParseFlags, RawAndUtf8TheLaterLetterWins) {
  EXPECT_EQ(parse_flags("ur", nullptr), kRaw);
  EXPECT_EQ(parse_flags("ru", nullptr), kUtf8);
  EXPECT_EQ(parse_flags("iur", nullptr), kCaseless | kRaw);
  EXPECT_EQ(parse_flags("urui", nullptr), kUtf8 | kCaseless);
}

TEST(ParseFlags, UnknownLetterFailsAndReportsIt) {
  char bad = 0;
  EXPECT_FALSE(parse_flags("iqx", &bad).has_value());
  EXPECT_EQ(bad, 'q');
  bad = 0;
  EXPECT_FALSE(parse_flags("I", &bad).has_value());  // letters are case sensitive
  EXPECT_EQ(bad, 'I');
  EXPECT_FALSE(parse_flags("g", nullptr).has_value());  // null `bad` is tolerated
}

TEST(FlagsToString, CanonicalOrder) {
  EXPECT_EQ(flags_to_string(0), "");
  EXPECT_EQ(flags_to_string(kRaw | kCaseless | kNoOpt | kExtended), "ixOr");
  EXPECT_EQ(flags_to_string(kCaseless | kMultiline | kDotall | kExtended | kUtf8 | kLeftmost |
                            kNoOpt),
            "imsxuLO");
  EXPECT_EQ(flags_to_string(*parse_flags("xsmi", nullptr)), "imsx");
  EXPECT_EQ(flags_to_string(*parse_flags("OLu", nullptr)), "uLO");
}

// ---------------------------------------------------------------------------
// RuleError, RuleFormat, RuleSet::merge

TEST(RuleError, ToStringWithAndWithoutRuleId) {
  RuleError with_id{"rules/a.rules", 12, "R1", "empty pattern"};
  EXPECT_EQ(with_id.to_string(), "rules/a.rules:12: rule R1: empty pattern");
  RuleError without_id{"x.cf", 3, "", "missing rule name"};
  EXPECT_EQ(without_id.to_string(), "x.cf:3: missing rule name");
}

TEST(RuleFormat, NamesRoundTrip) {
  for (RuleFormat format :
       {RuleFormat::kNative, RuleFormat::kSpamAssassin, RuleFormat::kRspamdMap}) {
    auto parsed = parse_rule_format(rule_format_name(format));
    ASSERT_TRUE(parsed.has_value()) << rule_format_name(format);
    EXPECT_EQ(*parsed, format);
  }
  EXPECT_EQ(rule_format_name(RuleFormat::kNative), "native");
  EXPECT_EQ(rule_format_name(RuleFormat::kSpamAssassin), "spamassassin");
  EXPECT_EQ(rule_format_name(RuleFormat::kRspamdMap), "rspamd-map");
  EXPECT_FALSE(parse_rule_format("sa").has_value());
  EXPECT_FALSE(parse_rule_format("").has_value());
  EXPECT_FALSE(parse_rule_format("Native").has_value());
}

TEST(RuleSetMerge, AppendsRulesRejectedAndSkipped) {
  RuleSet a = parse_native("A1 body /a/\nbad line\n", "a.rules");
  a.skipped["meta"] = 2;
  RuleSet b = parse_native("B1 body /b/i\nB2 url /c/\n", "b.rules");
  b.skipped["meta"] = 3;
  b.skipped["eval"] = 1;
  ASSERT_EQ(a.rejected.size(), 1u);
  a.merge(std::move(b));
  ASSERT_EQ(a.rules.size(), 3u);
  EXPECT_EQ(a.rules[0].id, "A1");
  EXPECT_EQ(a.rules[1].id, "B1");
  EXPECT_EQ(a.rules[2].id, "B2");
  EXPECT_EQ(a.rules[1].source, "b.rules");
  EXPECT_EQ(a.rejected.size(), 1u);
  EXPECT_EQ(skipped(a, "meta"), 5u);
  EXPECT_EQ(skipped(a, "eval"), 1u);
}

TEST(RuleSetMerge, DuplicateIdRejectedWithLaterLocation) {
  RuleSet a = parse_native("\nSAME body /first/\n", "first.rules");
  RuleSet b = parse_native("OTHER body /x/\n# c\n\nSAME url /second/\n", "second.rules");
  a.merge(std::move(b));
  ASSERT_EQ(a.rules.size(), 2u);
  EXPECT_EQ(find_rule(a, "SAME")->pattern, "first");
  ASSERT_EQ(a.rejected.size(), 1u);
  const RuleError& error = a.rejected[0];
  EXPECT_EQ(error.source, "second.rules");
  EXPECT_EQ(error.line, 4u);
  EXPECT_EQ(error.rule_id, "SAME");
  EXPECT_EQ(error.message, "duplicate rule id SAME (first defined at first.rules:2)");
  EXPECT_EQ(error.to_string(),
            "second.rules:4: rule SAME: duplicate rule id SAME (first defined at first.rules:2)");
}

TEST(RuleSetMerge, MergeIntoEmptyAndDuplicatesWithinOther) {
  RuleSet empty;
  RuleSet b;
  b.rules.push_back(Rule{"X", "body", "a", 0, "m.rules", 1});
  b.rules.push_back(Rule{"X", "body", "b", 0, "m.rules", 7});
  empty.merge(std::move(b));
  ASSERT_EQ(empty.rules.size(), 1u);
  ASSERT_EQ(empty.rejected.size(), 1u);
  EXPECT_EQ(empty.rejected[0].line, 7u);
  EXPECT_EQ(empty.rejected[0].message, "duplicate rule id X (first defined at m.rules:1)");
}

// ---------------------------------------------------------------------------
// Native format

TEST(ParseNative, BasicRule) {
  RuleSet set = parse_native("R1 body /hello world/i\n", "n.rules");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 1u);
  const Rule& rule = set.rules[0];
  EXPECT_EQ(rule.id, "R1");
  EXPECT_EQ(rule.cls, "body");
  EXPECT_EQ(rule.pattern, "hello world");
  EXPECT_EQ(rule.flags, kCaseless);
  EXPECT_EQ(rule.source, "n.rules");
  EXPECT_EQ(rule.line, 1u);
  EXPECT_EQ(rule.kind, "native");
  EXPECT_EQ(rule.max_hits, 0u);
  EXPECT_TRUE(set.skipped.empty());
}

TEST(ParseNative, CommentsBlankLinesWhitespaceAndCrlf) {
  const char* text =
      "# a comment\n"
      "\n"
      "   \t\n"
      "  R1\tbody\t /a/  \r\n"
      "\t# indented comment\r\n"
      "R2 header:Subject /b/imsxuLO\r\n"
      "R3 url /c/";  // no final newline
  RuleSet set = parse_native(text, "n.rules");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 3u);
  EXPECT_EQ(set.rules[0].id, "R1");
  EXPECT_EQ(set.rules[0].pattern, "a");
  EXPECT_EQ(set.rules[0].line, 4u);
  EXPECT_EQ(set.rules[1].cls, "header:Subject");
  EXPECT_EQ(flags_to_string(set.rules[1].flags), "imsxuLO");
  EXPECT_EQ(set.rules[1].line, 6u);
  EXPECT_EQ(set.rules[2].pattern, "c");
  EXPECT_EQ(set.rules[2].line, 7u);
}

TEST(ParseNative, PatternRunsToTheLastSlash) {
  RuleSet set = parse_native(
      "P1 url /https?://example\\.com/path/i\n"
      "P2 body /a/b/c/\n"
      "P3 body /x # not a comment/\n",
      "n.rules");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 3u);
  EXPECT_EQ(set.rules[0].pattern, "https?://example\\.com/path");
  EXPECT_EQ(set.rules[0].flags, kCaseless);
  EXPECT_EQ(set.rules[1].pattern, "a/b/c");
  EXPECT_EQ(set.rules[1].flags, 0u);
  EXPECT_EQ(set.rules[2].pattern, "x # not a comment");
}

TEST(ParseNative, IdCharacters) {
  RuleSet set = parse_native("a.B_9:x-y body /ok/\n", "n.rules");
  ASSERT_EQ(set.rules.size(), 1u) << all_errors(set);
  EXPECT_EQ(set.rules[0].id, "a.B_9:x-y");

  set = parse_native("bad!id body /x/\n", "n.rules");
  EXPECT_TRUE(set.rules.empty());
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_EQ(set.rejected[0].line, 1u);
  EXPECT_NE(set.rejected[0].message.find("invalid rule id 'bad!id'"), std::string::npos)
      << set.rejected[0].message;
}

TEST(ParseNative, ErrorsNameSourceLineAndIdAndParsingContinues) {
  const char* text =
      "OK1 body /fine/\n"                // 1
      "E1 body /x/q\n"                   // 2 unknown flag
      "E2 body //\n"                     // 3 empty pattern
      "E3 body /unterminated\n"          // 4
      "E4 body\n"                        // 5 no pattern
      "E5\n"                             // 6 no class
      "E6 /x/\n"                         // 7 class missing
      "E7 body x/y/\n"                   // 8 pattern must start with '/'
      "E8 body /x/i junk\n"              // 9 trailing junk after the last '/'
      "E9 body /x/i-\n"                  // 10 non-letter in flags
      "OK2 body /also fine/\n";          // 11
  RuleSet set = parse_native(text, "bad.rules");
  ASSERT_EQ(set.rules.size(), 2u) << all_errors(set);
  EXPECT_EQ(set.rules[0].id, "OK1");
  EXPECT_EQ(set.rules[1].id, "OK2");
  EXPECT_EQ(set.rules[1].line, 11u);
  ASSERT_EQ(set.rejected.size(), 9u) << all_errors(set);

  std::vector<std::string> ids;
  for (std::size_t i = 0; i < set.rejected.size(); ++i) {
    const RuleError& error = set.rejected[i];
    EXPECT_EQ(error.source, "bad.rules");
    EXPECT_EQ(error.line, i + 2) << error.to_string();
    ids.push_back(error.rule_id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9"}));
  EXPECT_EQ(set.rejected[0].to_string(), "bad.rules:2: rule E1: unknown flag 'q'");
  EXPECT_EQ(set.rejected[1].message, "empty pattern");
  EXPECT_EQ(set.rejected[2].message, "missing closing '/'");
  EXPECT_NE(set.rejected[3].message.find("missing pattern"), std::string::npos);
  EXPECT_NE(set.rejected[4].message.find("missing class"), std::string::npos);
  EXPECT_NE(set.rejected[5].message.find("missing class"), std::string::npos);
  EXPECT_NE(set.rejected[6].message.find("expected '/'"), std::string::npos);
  // "/x/i junk": the last '/' is the one before "i", so " junk" is junk.
  EXPECT_NE(set.rejected[7].message.find("unexpected text"), std::string::npos)
      << set.rejected[7].message;
  EXPECT_NE(set.rejected[8].message.find("unexpected text"), std::string::npos);
}

TEST(ParseNative, DuplicateIdNamesFirstDefinition) {
  RuleSet set = parse_native("D body /one/\n# x\nD url /two/\n", "dup.rules");
  ASSERT_EQ(set.rules.size(), 1u);
  EXPECT_EQ(set.rules[0].pattern, "one");
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_EQ(set.rejected[0].to_string(),
            "dup.rules:3: rule D: duplicate rule id D (first defined at dup.rules:1)");
}

TEST(ParseNative, LeadingByteOrderMarkIsIgnored) {
  RuleSet set = parse_native("\xEF\xBB\xBFR1 body /a/\n", "bom.rules");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 1u);
  EXPECT_EQ(set.rules[0].id, "R1");
  EXPECT_EQ(set.rules[0].line, 1u);
}

TEST(ParseNative, EmptyInput) {
  EXPECT_TRUE(parse_native("", "e").rules.empty());
  EXPECT_TRUE(parse_native("\n\n# only comments\n", "e").rejected.empty());
}

// ---------------------------------------------------------------------------
// SpamAssassin

TEST(ParseSpamAssassin, RuleKindsAndClasses) {
  const char* text =
      "body     BODY_R     /free money/i\n"
      "rawbody  RAW_R      /<img/i\n"
      "full     FULL_R     /^Received: /m\n"
      "uri      URI_R      /^https?:\\/\\/bit\\.ly/i\n"
      "header   HDR_R      Subject =~ /viagra/i\n";
  RuleSet set = parse_spamassassin(text, "t.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 5u);
  struct Expect {
    const char* id;
    const char* cls;
    const char* kind;
    const char* pattern;
    std::uint32_t flags;
  };
  const Expect expected[] = {
      {"BODY_R", "body", "body", "free money", kCaseless},
      {"RAW_R", "rawbody", "rawbody", "<img", kCaseless},
      {"FULL_R", "full", "full", "^Received: ", kMultiline},
      {"URI_R", "url", "uri", "^https?:\\/\\/bit\\.ly", kCaseless},
      {"HDR_R", "header:Subject", "header", "viagra", kCaseless},
  };
  for (std::size_t i = 0; i < 5; ++i) {
    const Rule& rule = set.rules[i];
    EXPECT_EQ(rule.id, expected[i].id);
    EXPECT_EQ(rule.cls, expected[i].cls) << rule.id;
    EXPECT_EQ(rule.kind, expected[i].kind) << rule.id;
    EXPECT_EQ(rule.pattern, expected[i].pattern) << rule.id;
    EXPECT_EQ(rule.flags, expected[i].flags) << rule.id;
    EXPECT_EQ(rule.source, "t.cf");
    EXPECT_EQ(rule.line, i + 1);
    EXPECT_EQ(rule.max_hits, 1u);  // a SpamAssassin rule counts once per message
  }
}

TEST(ParseSpamAssassin, PerlFlags) {
  RuleSet set = parse_spamassassin(
      "body A /a/ism\nbody B /b/x\nbody C /c/\nbody D /d/g\nbody E /e/o\nbody F /f/I\n", "f.cf");
  ASSERT_EQ(set.rules.size(), 3u) << all_errors(set);
  EXPECT_EQ(find_rule(set, "A")->flags, kCaseless | kDotall | kMultiline);
  EXPECT_EQ(find_rule(set, "B")->flags, kExtended);
  EXPECT_EQ(find_rule(set, "C")->flags, 0u);
  ASSERT_EQ(set.rejected.size(), 3u);
  EXPECT_EQ(set.rejected[0].to_string(), "f.cf:4: rule D: unsupported perl flag 'g'");
  EXPECT_EQ(set.rejected[1].message, "unsupported perl flag 'o'");
  EXPECT_EQ(set.rejected[2].message, "unsupported perl flag 'I'");
}

TEST(ParseSpamAssassin, AllDelimiterStyles) {
  const char* text =
      "body B1 m{a{2}b}i\n"          // nested braces of the same kind
      "body B2 m(a(b|c)d)\n"
      "body B3 m<a<b>c>\n"
      "body B4 m[a[bc]d]s\n"
      "body B5 m!a/b!\n"
      "body B6 m#a/b#i\n"
      "body B7 m|a/b|\n"
      "body B8 m@x/y@m\n"
      "uri  B9 m,^https?://x,i\n"
      "uri  B10 m;^https?://y;i\n"
      "uri  B11 m%^https?://z%i\n"
      "uri  B12 m'^https?://q'i\n"
      "body B13 m{a\\}b}\n"           // escaped closing bracket does not close
      "body B14 m!a\\!b!\n"           // escaped same-char delimiter kept as written
      "body B15 qr/qr prefix/\n"
      "body B16 m/plain m/\n";
  RuleSet set = parse_spamassassin(text, "d.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  struct Expect {
    const char* id;
    const char* pattern;
    const char* flags;
  };
  const Expect expected[] = {
      {"B1", "a{2}b", "i"},         {"B2", "a(b|c)d", ""},          {"B3", "a<b>c", ""},
      {"B4", "a[bc]d", "s"},        {"B5", "a/b", ""},              {"B6", "a/b", "i"},
      {"B7", "a/b", ""},            {"B8", "x/y", "m"},             {"B9", "^https?://x", "i"},
      {"B10", "^https?://y", "i"}, {"B11", "^https?://z", "i"},    {"B12", "^https?://q", "i"},
      {"B13", "a\\}b", ""},         {"B14", "a\\!b", ""},           {"B15", "qr prefix", ""},
      {"B16", "plain m", ""},
  };
  ASSERT_EQ(set.rules.size(), std::size(expected));
  for (const Expect& e : expected) {
    const Rule* rule = find_rule(set, e.id);
    ASSERT_NE(rule, nullptr) << e.id;
    EXPECT_EQ(rule->pattern, e.pattern) << e.id;
    EXPECT_EQ(flags_to_string(rule->flags), e.flags) << e.id;
  }
}

TEST(ParseSpamAssassin, EscapedSlashAndHashStayInPattern) {
  const char* text =
      "body  S1 /a\\/b\\/c/i\n"
      "uri   S2 /^https?:\\/\\/[^\\/]+\\/x#frag/\n"
      "body  S3 /colou?r\\#1/  # trailing comment after the regex\n"
      "body  S4 /a\\\\/\n";  // escaped backslash, then the closing '/'
  RuleSet set = parse_spamassassin(text, "e.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 4u);
  EXPECT_EQ(find_rule(set, "S1")->pattern, "a\\/b\\/c");
  EXPECT_EQ(find_rule(set, "S2")->pattern, "^https?:\\/\\/[^\\/]+\\/x#frag");
  EXPECT_EQ(find_rule(set, "S3")->pattern, "colou?r\\#1");
  EXPECT_EQ(find_rule(set, "S4")->pattern, "a\\\\");
}

TEST(ParseSpamAssassin, HeaderModifiersIfUnsetAndOperatorSpacing) {
  const char* text =
      "header H1 From:addr =~ /\\@example\\.com$/i\n"
      "header H2 From:name =~ /^paypal$/i\n"
      "header H3 Subject:raw =~ /=\\?utf-8\\?/i\n"
      "header H4 ALL =~ /^X-Foo: /m\n"
      "header H5 From =~ /(?:^\\@|<\\@)/ [if-unset: unset@unset.unset]\n"
      "header H6 Subject=~/tight/\n"
      "header H7 X-Mailer =~ m{^Outlook (?:\\d+)}i  # comment\n"
      "header H8 To =~ /x/ [if-unset: Wed, 31 Jul 2002 16:41:57 +0200] # why\n";
  RuleSet set = parse_spamassassin(text, "h.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 8u);
  EXPECT_EQ(find_rule(set, "H1")->cls, "header:From:addr");
  EXPECT_EQ(find_rule(set, "H1")->pattern, "\\@example\\.com$");
  EXPECT_EQ(find_rule(set, "H2")->cls, "header:From:name");
  EXPECT_EQ(find_rule(set, "H3")->cls, "header:Subject:raw");
  EXPECT_EQ(find_rule(set, "H4")->cls, "header:ALL");
  EXPECT_EQ(find_rule(set, "H4")->flags, kMultiline);
  EXPECT_EQ(find_rule(set, "H5")->pattern, "(?:^\\@|<\\@)");
  EXPECT_EQ(find_rule(set, "H6")->cls, "header:Subject");
  EXPECT_EQ(find_rule(set, "H6")->pattern, "tight");
  EXPECT_EQ(find_rule(set, "H7")->pattern, "^Outlook (?:\\d+)");
  EXPECT_EQ(find_rule(set, "H8")->pattern, "x");
  for (const Rule& rule : set.rules) EXPECT_EQ(rule.kind, "header");
}

TEST(ParseSpamAssassin, SkippedKindsAreCounted) {
  const char* text =
      "body     E1 eval:check_stock_info('8')\n"
      "rawbody  E2 eval:check_foo()\n"
      "full     E3 eval:check_razor2()\n"
      "uri      E4 eval:check_uri_host_listed('X')\n"
      "header   E5 eval:check_for_missing_to_header()\n"
      "header   E6 rbleval:check_rbl_ns_from('x')\n"
      "header   X1 exists:List-Id\n"
      "header   N1 Date !~ /^\\s*\\d/ [if-unset: Wed, 31 Jul 2002 16:41:57 +0200]\n"
      "meta     M1 (E1 && X1)\n"
      "meta     M2 E2 || E3\n"
      "mimeheader MH1 Content-Type =~ /pdf/\n"
      "uri_detail UD1 text =~ /click/i\n"
      "askdns   AD1 _SENDERDOMAIN_ TXT /spf/\n"
      "urirhssub URIBL_X multi.uribl.com. A 2\n"
      "body     REAL /real/\n";
  RuleSet set = parse_spamassassin(text, "s.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  // exists: and negated header tests are rules now, metas are metas
  // (tests/engine/meta_test.cpp); the others cannot run in regexd.
  ASSERT_EQ(set.rules.size(), 3u);
  EXPECT_EQ(find_rule(set, "X1")->kind, "exists");
  EXPECT_TRUE(find_rule(set, "N1")->negate);
  EXPECT_EQ(find_rule(set, "REAL")->kind, "body");
  EXPECT_EQ(set.metas.size(), 2u);
  EXPECT_EQ(skipped(set, "eval"), 6u);
  EXPECT_EQ(set.unsupported.size(), 10u);
  EXPECT_EQ(set.unsupported.at("E6"), "eval");
  EXPECT_EQ(set.unsupported.at("AD1"), "askdns");
  EXPECT_EQ(skipped(set, "mimeheader"), 1u);
  EXPECT_EQ(skipped(set, "uri_detail"), 1u);
  EXPECT_EQ(skipped(set, "askdns"), 1u);
  EXPECT_EQ(skipped(set, "other"), 1u);
}

TEST(ParseSpamAssassin, NonRuleDirectivesAreIgnoredNotCounted) {
  const char* text =
      "require_version 4.000000\n"
      "ifplugin Mail::SpamAssassin::Plugin::FreeMail\n"
      "if (version >= 3.004000)\n"
      "describe BODY_X Talks about money\n"
      "lang de describe BODY_X Redet von Geld\n"
      "score BODY_X 1.0 2.0 1.5 1.0\n"
      "priority BODY_X -100\n"
      "tflags BODY_X publish\n"
      "reuse BODY_X\n"
      "test BODY_X ok some text\n"
      "freemail_domains example.com\n"
      "report _SUMMARY_\n"
      "else\n"
      "endif\n"
      "endif\n"
      "body BODY_X /money/i\n";
  RuleSet set = parse_spamassassin(text, "i.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 1u);
  EXPECT_EQ(set.rules[0].line, 16u);
  EXPECT_TRUE(set.skipped.empty());
}

TEST(ParseSpamAssassin, CommentsLeadingWhitespaceAndHashInsideRegex) {
  const char* text =
      "# body COMMENTED /x/\n"
      "   # body ALSO_COMMENTED /y/\n"
      "\tbody  INDENTED  /a#b/i\r\n"
      "  uri  HASH_DELIM  m#^https?://x#i\n";
  RuleSet set = parse_spamassassin(text, "c.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 2u);
  EXPECT_EQ(find_rule(set, "INDENTED")->pattern, "a#b");
  EXPECT_EQ(find_rule(set, "INDENTED")->line, 3u);
  EXPECT_EQ(find_rule(set, "HASH_DELIM")->pattern, "^https?://x");
}

TEST(ParseSpamAssassin, SubRulesWithDoubleUnderscoreAreImported) {
  RuleSet set = parse_spamassassin(
      "body __SUB_A /sub a/\nheader __SUB_B Subject =~ /sub b/\nmeta TOP __SUB_A && __SUB_B\n",
      "u.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 2u);
  EXPECT_NE(find_rule(set, "__SUB_A"), nullptr);
  EXPECT_NE(find_rule(set, "__SUB_B"), nullptr);
  ASSERT_EQ(set.metas.size(), 1u);
  EXPECT_EQ(set.metas[0].expression, "__SUB_A && __SUB_B");
}

TEST(ParseSpamAssassin, TflagsMaxHitsBeforeOrAfterTheRule) {
  const char* text =
      "tflags BEFORE multiple maxhits=5\n"
      "body BEFORE /a/\n"
      "body AFTER /b/\n"
      "tflags AFTER   nice multiple maxhits=11 publish\n"
      "body MULTI_ONLY /c/\n"
      "tflags MULTI_ONLY multiple\n"
      "body NO_MULTIPLE /d/\n"
      "tflags NO_MULTIPLE maxhits=3\n"
      "body RESET /e/\n"
      "tflags RESET multiple maxhits=4\n"
      "tflags RESET publish\n"  // a later tflags replaces the whole flag list
      "body COMMENTED /f/\n"
      "tflags COMMENTED multiple maxhits=2 # cap it\n"
      "header HDR Subject =~ /g/\n"
      "tflags HDR multiple maxhits=7\n";
  RuleSet set = parse_spamassassin(text, "t.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  EXPECT_EQ(find_rule(set, "BEFORE")->max_hits, 5u);
  EXPECT_EQ(find_rule(set, "AFTER")->max_hits, 11u);
  EXPECT_EQ(find_rule(set, "MULTI_ONLY")->max_hits, 0u);  // multiple without a cap: the scan's cap
  EXPECT_EQ(find_rule(set, "NO_MULTIPLE")->max_hits, 1u);  // not multiple: once
  EXPECT_EQ(find_rule(set, "RESET")->max_hits, 1u);
  EXPECT_EQ(find_rule(set, "COMMENTED")->max_hits, 2u);
  EXPECT_EQ(find_rule(set, "HDR")->max_hits, 7u);
}

TEST(ParseSpamAssassin, TflagsBadMaxHitsIsReported) {
  RuleSet set = parse_spamassassin("body R /a/\ntflags R multiple maxhits=lots\n", "t.cf");
  ASSERT_EQ(set.rules.size(), 1u);
  EXPECT_EQ(set.rules[0].max_hits, 0u);
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_EQ(set.rejected[0].to_string(), "t.cf:2: rule R: invalid tflags maxhits value 'lots'");
}

TEST(ParseSpamAssassin, RedefinitionKeepsLaterDefinitionInPlace) {
  const char* text =
      "body FIRST /one/\n"
      "body TWICE /old/i\n"
      "body LAST /three/\n"
      "uri TWICE m{new}\n";
  RuleSet set = parse_spamassassin(text, "r.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 3u);
  EXPECT_EQ(set.rules[0].id, "FIRST");
  EXPECT_EQ(set.rules[1].id, "TWICE");
  EXPECT_EQ(set.rules[2].id, "LAST");
  EXPECT_EQ(set.rules[1].pattern, "new");
  EXPECT_EQ(set.rules[1].flags, 0u);
  EXPECT_EQ(set.rules[1].cls, "url");
  EXPECT_EQ(set.rules[1].kind, "uri");
  EXPECT_EQ(set.rules[1].line, 4u);
}

TEST(ParseSpamAssassin, RedefinitionAsNonRegexRemovesTheRule) {
  const char* text =
      "body TO_META /x/\n"
      "meta TO_META A && B\n"
      "body TO_EVAL /y/\n"
      "body TO_EVAL eval:check_foo()\n"
      "body BACK /z/\n"
      "meta BACK A\n"
      "body BACK /zz/\n"
      "body KEPT /k/\n"
      "body KEPT /k/q\n";  // a broken redefinition leaves the old one alone
  RuleSet set = parse_spamassassin(text, "r.cf");
  ASSERT_EQ(set.rules.size(), 2u) << all_errors(set);
  EXPECT_EQ(find_rule(set, "TO_META"), nullptr);
  EXPECT_EQ(find_rule(set, "TO_EVAL"), nullptr);
  EXPECT_EQ(find_rule(set, "BACK")->pattern, "zz");
  EXPECT_EQ(find_rule(set, "KEPT")->pattern, "k");
  EXPECT_EQ(find_rule(set, "KEPT")->line, 8u);
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_EQ(set.rejected[0].line, 9u);
}

TEST(ParseSpamAssassin, ForceClassAppliesToBodyKindsButNotHeaders) {
  const char* text =
      "body B /b/\nrawbody R /r/\nfull F /f/\nuri U /u/\nheader H Subject =~ /h/\n";
  SpamAssassinOptions options;
  options.force_class = "sa";
  RuleSet set = parse_spamassassin(text, "f.cf", options);
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 5u);
  for (const char* id : {"B", "R", "F", "U"}) EXPECT_EQ(find_rule(set, id)->cls, "sa") << id;
  EXPECT_EQ(find_rule(set, "H")->cls, "header:Subject");
  EXPECT_EQ(find_rule(set, "U")->kind, "uri");
}

TEST(ParseSpamAssassin, ExcludedHeadersAreCountedAsSkipped) {
  const char* text =
      "header H1 Subject =~ /a/\n"
      "header H2 From:addr =~ /b/\n"
      "header H3 eval:check_foo()\n"
      "body B /c/\n";
  SpamAssassinOptions options;
  options.include_headers = false;
  RuleSet set = parse_spamassassin(text, "x.cf", options);
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 1u);
  EXPECT_EQ(set.rules[0].id, "B");
  EXPECT_EQ(skipped(set, "header"), 2u);
  EXPECT_EQ(skipped(set, "eval"), 1u);
}

TEST(ParseSpamAssassin, MalformedLinesNameSourceLineAndRule) {
  const char* text =
      "body\n"                                // 1 no name
      "body NO_PATTERN\n"                     // 2
      "body NO_DELIM free money\n"            // 3
      "body UNCLOSED /abc\n"                  // 4
      "body UNCLOSED_BRACE m{a{b}\n"          // 5 nesting leaves it open
      "body EMPTY //i\n"                      // 6
      "body JUNK /a/i and more\n"             // 7
      "body GLUED /a/i,\n"                    // 8
      "header NO_OP Subject /x/\n"            // 9
      "header NO_HDR =~ /x/\n"                // 10
      "header BAD_UNSET Subject =~ /x/ [if-unset: y\n"  // 11
      "body bad/name /x/\n"                   // 12
      "body BAD_DELIM mxabcx\n"               // 13
      "body GOOD /good/\n";                   // 14
  RuleSet set = parse_spamassassin(text, "m.cf");
  ASSERT_EQ(set.rules.size(), 1u) << all_errors(set);
  EXPECT_EQ(set.rules[0].id, "GOOD");
  ASSERT_EQ(set.rejected.size(), 13u) << all_errors(set);
  for (std::size_t i = 0; i < set.rejected.size(); ++i) {
    EXPECT_EQ(set.rejected[i].source, "m.cf");
    EXPECT_EQ(set.rejected[i].line, i + 1) << set.rejected[i].to_string();
  }
  EXPECT_EQ(set.rejected[0].to_string(), "m.cf:1: missing rule name");
  EXPECT_EQ(set.rejected[1].to_string(), "m.cf:2: rule NO_PATTERN: missing pattern");
  EXPECT_EQ(set.rejected[2].rule_id, "NO_DELIM");
  EXPECT_NE(set.rejected[2].message.find("delimited regex"), std::string::npos);
  EXPECT_EQ(set.rejected[3].to_string(), "m.cf:4: rule UNCLOSED: missing closing delimiter '/'");
  EXPECT_EQ(set.rejected[4].message, "missing closing delimiter '}'");
  EXPECT_EQ(set.rejected[5].message, "empty pattern");
  EXPECT_EQ(set.rejected[6].message, "unexpected text after regex: 'and more'");
  EXPECT_EQ(set.rejected[7].message, "unexpected text after regex: ','");
  EXPECT_EQ(set.rejected[8].rule_id, "NO_OP");
  EXPECT_NE(set.rejected[8].message.find("'=~' or '!~'"), std::string::npos);
  EXPECT_EQ(set.rejected[9].rule_id, "NO_HDR");
  EXPECT_EQ(set.rejected[10].message, "unterminated [if-unset: ...]");
  EXPECT_EQ(set.rejected[11].rule_id, "");
  EXPECT_NE(set.rejected[11].message.find("invalid rule name 'bad/name'"), std::string::npos);
  EXPECT_EQ(set.rejected[12].message, "invalid regex delimiter 'x'");
}

TEST(ParseSpamAssassin, DirectivesAreCaseInsensitive) {
  RuleSet set = parse_spamassassin("BODY UPPER /x/\nMeta M X\n", "c.cf");
  ASSERT_EQ(set.rules.size(), 1u) << all_errors(set);
  EXPECT_EQ(set.rules[0].kind, "body");
  EXPECT_EQ(set.metas.size(), 1u);
}

// ---------------------------------------------------------------------------
// Rspamd regexp maps

TEST(ParseRspamdMap, IdsPatternsFlagsAndValues) {
  const char* text =
      "# comment\n"
      "/foo bar/i value\n"           // 2
      "\n"
      "/^https?:\\/\\/x/\n"           // 4
      "/a/b/c/im  some value here\n"  // 5: the last qualifying '/' closes it
      "/x/ value/2\n"                 // 6: "/2" is not followed by flags + space/end
      "plain text line\n"             // 7: whole line, no flags
      "  /trimmed/u  \r\n";           // 8
  RuleSet set = parse_rspamd_map(text, "/etc/rspamd/maps/bad-words.map", "body");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  ASSERT_EQ(set.rules.size(), 6u);
  EXPECT_EQ(set.rules[0].id, "bad-words:2");
  EXPECT_EQ(set.rules[0].pattern, "foo bar");
  EXPECT_EQ(set.rules[0].flags, kCaseless);
  EXPECT_EQ(set.rules[0].cls, "body");
  EXPECT_EQ(set.rules[0].kind, "map");
  EXPECT_EQ(set.rules[0].source, "/etc/rspamd/maps/bad-words.map");
  EXPECT_EQ(set.rules[0].line, 2u);
  EXPECT_EQ(set.rules[1].id, "bad-words:4");
  EXPECT_EQ(set.rules[1].pattern, "^https?:\\/\\/x");
  EXPECT_EQ(set.rules[2].pattern, "a/b/c");
  EXPECT_EQ(set.rules[2].flags, kCaseless | kMultiline);
  EXPECT_EQ(set.rules[3].pattern, "x");
  EXPECT_EQ(set.rules[3].flags, 0u);
  EXPECT_EQ(set.rules[3].id, "bad-words:6");
  EXPECT_EQ(set.rules[4].pattern, "plain text line");
  EXPECT_EQ(set.rules[4].flags, 0u);
  EXPECT_EQ(set.rules[5].pattern, "trimmed");
  EXPECT_EQ(set.rules[5].flags, kUtf8);
  EXPECT_EQ(set.rules[5].id, "bad-words:8");
}

TEST(ParseRspamdMap, StemIsSanitised) {
  EXPECT_EQ(parse_rspamd_map("/x/", "dir/my map+v2.txt", "c").rules.at(0).id, "my_map_v2:1");
  EXPECT_EQ(parse_rspamd_map("/x/", "a.b.map", "c").rules.at(0).id, "a.b:1");
  EXPECT_EQ(parse_rspamd_map("/x/", "noext", "c").rules.at(0).id, "noext:1");
  EXPECT_EQ(parse_rspamd_map("/x/", "dir.d/name", "c").rules.at(0).id, "name:1");
  EXPECT_EQ(parse_rspamd_map("/x/", "w:x.map", "c").rules.at(0).id, "w_x:1");
  EXPECT_EQ(parse_rspamd_map("/x/", "", "c").rules.at(0).id, "map:1");
}

TEST(ParseRspamdMap, ErrorsCarrySourceLineAndId) {
  const char* text =
      "/ok/\n"
      "/bad/q value\n"
      "//i\n"
      "/unterminated\n"
      "/x/i-\n";
  RuleSet set = parse_rspamd_map(text, "maps/m.map", "url");
  ASSERT_EQ(set.rules.size(), 1u) << all_errors(set);
  ASSERT_EQ(set.rejected.size(), 4u) << all_errors(set);
  EXPECT_EQ(set.rejected[0].to_string(), "maps/m.map:2: rule m:2: unknown flag 'q'");
  EXPECT_EQ(set.rejected[1].to_string(), "maps/m.map:3: rule m:3: empty pattern");
  EXPECT_EQ(set.rejected[2].to_string(), "maps/m.map:4: rule m:4: missing closing '/'");
  // "-" after the flags is neither whitespace nor a flag, so no '/' qualifies.
  EXPECT_EQ(set.rejected[3].line, 5u);
  EXPECT_EQ(set.rejected[3].message, "missing closing '/'");
}

// ---------------------------------------------------------------------------
// load_rules_file

TEST(LoadRulesFile, MissingFileIsOneError) {
  const std::string path = "/nonexistent/regexd/rules.txt";
  RuleSet set = load_rules_file(path, RuleFormat::kNative);
  EXPECT_TRUE(set.rules.empty());
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_EQ(set.rejected[0].source, path);
  EXPECT_EQ(set.rejected[0].line, 0u);
  EXPECT_EQ(set.rejected[0].rule_id, "");
  EXPECT_EQ(set.rejected[0].message, "cannot read: No such file or directory");
}

TEST(LoadRulesFile, DirectoryIsAnError) {
  TempDir dir;
  RuleSet set = load_rules_file(dir.path().string(), RuleFormat::kNative);
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_EQ(set.rejected[0].message.rfind("cannot read: ", 0), 0u) << set.rejected[0].message;
}

TEST(LoadRulesFile, DispatchesOnFormat) {
  TempDir dir;
  const std::string native = dir.write("n.rules", "N1 body /ab/i\n");
  const std::string sa = dir.write("s.cf", "body S1 /x/\nheader S2 Subject =~ /y/\nmeta M S1\n");
  const std::string map = dir.write("words.map", "/w/i v\n");

  RuleSet n = load_rules_file(native, RuleFormat::kNative);
  ASSERT_EQ(n.rules.size(), 1u) << all_errors(n);
  EXPECT_EQ(n.rules[0].source, native);

  // Binary-safe: an embedded NUL byte survives the read.
  const std::string with_nul = dir.write("z.rules", std::string("Z body /a\0b/\n", 14));
  RuleSet z = load_rules_file(with_nul, RuleFormat::kNative);
  ASSERT_EQ(z.rules.size(), 1u) << all_errors(z);
  EXPECT_EQ(z.rules[0].pattern, std::string("a\0b", 3));

  RuleSet s = load_rules_file(sa, RuleFormat::kSpamAssassin);
  ASSERT_EQ(s.rules.size(), 2u) << all_errors(s);
  EXPECT_EQ(find_rule(s, "S1")->cls, "body");
  EXPECT_EQ(find_rule(s, "S2")->cls, "header:Subject");
  EXPECT_EQ(s.metas.size(), 1u);

  RuleSet forced = load_rules_file(sa, RuleFormat::kSpamAssassin, "mail");
  ASSERT_EQ(forced.rules.size(), 2u);
  EXPECT_EQ(find_rule(forced, "S1")->cls, "mail");
  EXPECT_EQ(find_rule(forced, "S2")->cls, "header:Subject");

  RuleSet m = load_rules_file(map, RuleFormat::kRspamdMap, "body");
  ASSERT_EQ(m.rules.size(), 1u) << all_errors(m);
  EXPECT_EQ(m.rules[0].id, "words:1");
  EXPECT_EQ(m.rules[0].cls, "body");
  EXPECT_EQ(m.rules[0].flags, kCaseless);
}

// ---------------------------------------------------------------------------
// The SpamAssassin rules shipped with the system, if installed.

TEST(ParseSpamAssassinReal, SystemRuleFiles) {
  // The CMake build passes the configured rules directory; the Debian
  // spamassassin package's location is the fallback.
#ifdef REGEXD_SA_RULES_DIR
  const fs::path dir = REGEXD_SA_RULES_DIR;
#else
  const fs::path dir = "/usr/share/spamassassin";
#endif
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) GTEST_SKIP() << dir << " is not installed";
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".cf") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) GTEST_SKIP() << "no .cf files in " << dir;

  // SpamAssassin reads all files into one configuration, so later files may
  // redefine earlier rules; merge() instead reports cross-file repeats, which
  // are counted separately from malformed lines.
  RuleSet all;
  std::size_t malformed = 0;
  std::size_t cross_file_duplicates = 0;
  for (const fs::path& file : files) {
    RuleSet set = load_rules_file(file.string(), RuleFormat::kSpamAssassin);
    malformed += set.rejected.size();
    std::size_t before = all.rejected.size();
    all.merge(std::move(set));
    cross_file_duplicates += all.rejected.size() - before;
  }
  cross_file_duplicates -= malformed;

  std::map<std::string, std::size_t> by_kind;
  for (const Rule& rule : all.rules) ++by_kind[rule.kind];
  std::size_t skipped_total = 0;
  for (const auto& [kind, count] : all.skipped) skipped_total += count;
  const std::size_t rule_lines = all.rules.size() + skipped_total + malformed;

  std::cout << "files: " << files.size() << ", regex rules: " << all.rules.size()
            << ", rule lines: " << rule_lines << "\n  rules by kind:";
  for (const auto& [kind, count] : by_kind) std::cout << " " << kind << "=" << count;
  std::cout << "\n  skipped by kind:";
  for (const auto& [kind, count] : all.skipped) std::cout << " " << kind << "=" << count;
  std::cout << "\n  rejected: " << all.rejected.size() << " (malformed " << malformed
            << ", cross-file duplicates " << cross_file_duplicates << ")\n";
  for (const RuleError& error : all.rejected) std::cout << "    " << error.to_string() << "\n";

  EXPECT_GT(all.rules.size(), 1000u);
  for (const char* kind : {"body", "rawbody", "full", "uri", "header"}) {
    EXPECT_GT(by_kind[kind], 0u) << "no " << kind << " rules imported";
  }
  EXPECT_LT(static_cast<double>(all.rejected.size()), 0.01 * static_cast<double>(rule_lines));

  std::set<std::string> ids;
  for (const Rule& rule : all.rules) {
    EXPECT_TRUE(ids.insert(rule.id).second) << "duplicate id " << rule.id;
    EXPECT_FALSE(rule.pattern.empty()) << rule.id;
    EXPECT_GT(rule.line, 0u) << rule.id;
  }
}

// ReplaceTags: the expected patterns are what SpamAssassin 4.0.1 itself
// builds from the same lines (tests/support/sa_expand_tags.pl).
TEST(ParseSpamAssassin, ReplaceTagsExpandAsSpamAssassinDoes) {
  const char* text =
      "replace_tag A [a4@]\n"
      "replace_tag B (?:b|8)\n"
      "replace_tag AB <A><B>\n"
      "replace_inter W1 \\W?\n"
      "replace_pre P1 \\b\n"
      "replace_post P2 {1,2}\n"
      "replace_tag H h\\#   # a comment\n"
      "body TAGS /x<inter W1><post P2><A><B>y/i\n"
      "body PRE /<pre P1><A>z/\n"
      "body NESTED /<AB>c/\n"
      "body UNTOUCHED /<A>/\n"
      "header HASH Subject =~ /<A><H>/\n"
      "uri UNKNOWN /<NOPE><A>/\n"
      "replace_rules TAGS PRE NESTED HASH UNKNOWN MISSING\n";
  RuleSet set = parse_spamassassin(text, "t.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  EXPECT_EQ(find_rule(set, "TAGS")->pattern, "x[a4@]{1,2}\\W?(?:b|8){1,2}y");
  EXPECT_EQ(find_rule(set, "TAGS")->flags, kCaseless);
  EXPECT_EQ(find_rule(set, "PRE")->pattern, "\\b[a4@]z");
  EXPECT_EQ(find_rule(set, "NESTED")->pattern, "[a4@](?:b|8)c");
  EXPECT_EQ(find_rule(set, "UNTOUCHED")->pattern, "<A>");  // not in replace_rules
  EXPECT_EQ(find_rule(set, "HASH")->pattern, "[a4@]h#");
  EXPECT_EQ(find_rule(set, "UNKNOWN")->pattern, "<NOPE>[a4@]");
}

TEST(ParseSpamAssassin, ReplaceTagsOwnDelimitersAndOneTagPerPiecePerPass) {
  const char* text =
      "replace_start %%\n"
      "replace_end %%\n"
      "replace_tag D \\d\n"
      "replace_tag A [a4@]\n"
      "body OTHER /<A>%%D%%x%%D%%/\n"
      "body TWO /%%A%%%%D%%/\n"
      "replace_rules OTHER TWO\n";
  RuleSet set = parse_spamassassin(text, "t.cf");
  ASSERT_TRUE(set.rejected.empty()) << all_errors(set);
  EXPECT_EQ(find_rule(set, "OTHER")->pattern, "<A>\\dx\\d");
  EXPECT_EQ(find_rule(set, "TWO")->pattern, "[a4@]%%D%%");
}

TEST(ParseSpamAssassin, ReplaceTagsAndTflagsApplyAcrossFiles) {
  std::vector<SourceText> texts = {
      {"20_rules.cf", "body FUZZY /<A>x/\nbody MANY /m/\nbody GONE /g/\n"},
      {"25_replace.cf", "replace_tag A [a4]\nreplace_rules FUZZY\ntflags MANY multiple maxhits=3\n"},
      {"30_later.cf", "meta GONE FUZZY && MANY\nreplace_tag\n"},
  };
  RuleSet set = parse_spamassassin(texts);
  ASSERT_EQ(set.rules.size(), 2u) << all_errors(set);
  EXPECT_EQ(find_rule(set, "FUZZY")->pattern, "[a4]x");
  EXPECT_EQ(find_rule(set, "FUZZY")->source, "20_rules.cf");
  EXPECT_EQ(find_rule(set, "MANY")->max_hits, 3u);
  EXPECT_EQ(find_rule(set, "GONE"), nullptr);  // redefined as meta in a later file
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_EQ(set.rejected[0].to_string(), "30_later.cf:2: replace_tag needs a tag name and an expression");
}

TEST(ParseSpamAssassin, LoadRulesFilesReadsSpamAssassinFilesAsOneConfiguration) {
  auto dir = std::filesystem::temp_directory_path() / ("rx_sa_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "a.cf") << "body FUZZY /<A>x/\n";
  std::ofstream(dir / "b.cf") << "replace_tag A [a4]\nreplace_rules FUZZY\n";
  RuleSet set = load_rules_files({(dir / "a.cf").string(), (dir / "missing.cf").string(), (dir / "b.cf").string()},
                                 RuleFormat::kSpamAssassin);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(set.rules.size(), 1u);
  EXPECT_EQ(set.rules[0].pattern, "[a4]x");
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_NE(set.rejected[0].to_string().find("missing.cf:0: "), std::string::npos) << set.rejected[0].to_string();
  EXPECT_NE(set.rejected[0].to_string().find("cannot read"), std::string::npos);
}

// SpamAssassin's own rule set: every rule regexd imports from it has the
// pattern SpamAssassin itself compiles (ReplaceTags expanded), and the 99
// rules that use tags are among them.
TEST(ParseSpamAssassin, RealRuleSetTagsMatchSpamAssassinItself) {
  std::string cmd = std::string("perl '") + REGEXD_SOURCE_DIR + "/tests/support/sa_expand_tags.pl' '" +
                    REGEXD_SA_RULES_DIR + "' 2>/dev/null";
  std::FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[1 << 16];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  ASSERT_EQ(::pclose(pipe), 0) << "SpamAssassin (Debian package spamassassin) could not read " << REGEXD_SA_RULES_DIR;
  std::map<std::string, std::string> theirs;
  for (std::size_t pos = 0; pos < out.size();) {
    std::size_t nl = out.find('\n', pos), tab = out.find('\t', pos);
    if (nl == std::string::npos) nl = out.size();
    if (tab < nl) theirs[out.substr(pos, tab - pos)] = out.substr(tab + 1, nl - tab - 1);
    pos = nl + 1;
  }
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(REGEXD_SA_RULES_DIR))
    if (e.path().extension() == ".cf") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  RuleSet ours = load_rules_files(files, RuleFormat::kSpamAssassin);
  std::size_t compared = 0, tagged = 0;
  for (const Rule& r : ours.rules) {
    auto it = theirs.find(r.id);
    if (it == theirs.end()) continue;  // e.g. rules SpamAssassin skips for a missing plugin
    ++compared;
    // SpamAssassin unescapes "\#" on every config line; regexd keeps it in
    // rule patterns (same meaning to PCRE2 outside x mode).
    std::string mine = r.pattern;
    for (std::size_t p; (p = mine.find("\\#")) != std::string::npos;) mine.erase(p, 1);
    std::string theirs_re = it->second;
    // SpamAssassin 4's captured-tag templates ("%{GB_TO_ADDR}") are filled in
    // per message, which regexd does not do; SpamAssassin escapes the braces
    // of a template it cannot fill, regexd leaves them (a literal '{' to
    // PCRE2 either way).
    if (mine.find("%{") != std::string::npos)
      for (std::size_t p; (p = theirs_re.find("\\{")) != std::string::npos || (p = theirs_re.find("\\}")) != std::string::npos;)
        theirs_re.erase(p, 1);
    EXPECT_EQ(mine, theirs_re) << r.id;
    if (r.pattern.size() > 1000 && r.pattern.find("[\\xf0][\\x9d]") != std::string::npos) ++tagged;
  }
  EXPECT_GT(compared, 1000u);
  EXPECT_GE(tagged, 40u);  // the FUZZY_* rules, expanded
}

}  // namespace
}  // namespace regexd::engine

namespace {

TEST(RuleSetMergePolicy, SpamAssassinLetsALaterFileRedefineARule) {
  using regexd::engine::RuleSet;
  auto first = regexd::engine::parse_spamassassin("body R /old/\n", "a.cf");
  auto second = regexd::engine::parse_spamassassin("body R /new/\nbody S /s/\n", "b.cf");
  RuleSet later_wins = first;
  later_wins.merge(second, regexd::engine::duplicate_policy_for(regexd::engine::RuleFormat::kSpamAssassin));
  ASSERT_EQ(later_wins.rules.size(), 2u);
  EXPECT_EQ(later_wins.rules[0].pattern, "new");
  EXPECT_EQ(later_wins.rules[0].source, "b.cf");
  EXPECT_TRUE(later_wins.rejected.empty());

  RuleSet strict = first;
  strict.merge(second, regexd::engine::duplicate_policy_for(regexd::engine::RuleFormat::kNative));
  ASSERT_EQ(strict.rules.size(), 2u);
  EXPECT_EQ(strict.rules[0].pattern, "old");
  ASSERT_EQ(strict.rejected.size(), 1u);
  EXPECT_NE(strict.rejected[0].message.find("first defined at a.cf:1"), std::string::npos);
}

}  // namespace
