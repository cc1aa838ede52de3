// The scan code regexd runs (engine/src/hs_runtime.h): the choice itself, and
// the defect that made it necessary, through the public Scanner.
//
// The Scanner test is the regression test: Vectorscan 5.4.9 (the
// vectorscan-x86 flavor) scanning with its own choice of code on an AVX2 or
// AVX-512 CPU misses matches of these SpamAssassin 4.0.1 patterns in short
// buffers; with the check in hs_runtime() regexd answers like PCRE2.  Its
// patterns are not the check's battery (which has only five), so it also shows
// that the code the battery picks is right beyond the battery.
#include "hs_runtime.h"

#include <gtest/gtest.h>

#include "pcre2_reference.h"
#include "regexd/engine/engine.h"
#include "regexd/engine/serialize.h"

namespace {

using namespace regexd::engine;
using regexd::engine::detail::HsScanCandidate;

hs_error_t fake_scan_a(const hs_database_t*, const char*, unsigned, unsigned, hs_scratch_t*, match_event_handler,
                       void*) {
  return HS_SUCCESS;
}
hs_error_t fake_scan_b(const hs_database_t*, const char*, unsigned, unsigned, hs_scratch_t*, match_event_handler,
                       void*) {
  return HS_SUCCESS;
}

TEST(HsRuntimeChoice, StepsDownToTheFirstCodeThatAgreesWithPcre2) {
  std::vector<HsScanCandidate> c{
      {"hs_scan", fake_scan_a, ~0ull}, {"avx512", fake_scan_a, 6}, {"corei7", fake_scan_b, 0}};
  auto r = detail::choose_hs_runtime(
      c, [](const HsScanCandidate& x) { return x.name == "corei7" ? std::string() : "missed /e/"; });
  EXPECT_EQ(r.code, "corei7");
  EXPECT_EQ(r.scan, &fake_scan_b);
  EXPECT_EQ(r.features, 0u);
  EXPECT_EQ(r.note, "hs_scan missed /e/; avx512 missed /e/; scanning with its corei7 code");
}

TEST(HsRuntimeChoice, TheLibrarysOwnChoiceIsKeptWhenItAgrees) {
  std::vector<HsScanCandidate> c{{"hs_scan", fake_scan_a, ~0ull}, {"corei7", fake_scan_b, 0}};
  int checked = 0;
  auto r = detail::choose_hs_runtime(c, [&](const HsScanCandidate&) {
    ++checked;
    return std::string();
  });
  EXPECT_EQ(r.code, "hs_scan");
  EXPECT_EQ(r.features, ~0ull);
  EXPECT_TRUE(r.note.empty());
  EXPECT_EQ(checked, 1);  // a library that passes costs one check
}

TEST(HsRuntimeChoice, WhenNoCodeAgreesTheLibrarysOwnIsKeptAndTheNoteSaysSo) {
  std::vector<HsScanCandidate> c{{"hs_scan", fake_scan_a, ~0ull}, {"core2", fake_scan_b, 0}};
  auto r = detail::choose_hs_runtime(c, [](const HsScanCandidate&) { return std::string("missed /e/"); });
  EXPECT_EQ(r.code, "hs_scan");
  EXPECT_EQ(r.scan, &fake_scan_a);
  EXPECT_NE(r.note.find("no code of this library agrees with PCRE2"), std::string::npos) << r.note;
}

TEST(HsRuntime, TheChosenCodeAgreesWithPcre2AndTheDatabasesFitIt) {
  const auto& rt = detail::hs_runtime();
  ASSERT_NE(rt.scan, nullptr);
  EXPECT_EQ(detail::hs_battery_failure({rt.code, rt.scan, rt.features}), "");
  auto platform = current_platform();
  ASSERT_TRUE(platform.ok());
  // Databases are compiled only for features the chosen code runs.
  EXPECT_EQ(platform->cpu_features & ~rt.features, 0u);
  EXPECT_EQ(engine_info().scan_code, rt.code);
  EXPECT_EQ(engine_info().scan_code_note, rt.note);
  std::printf("scan code: %s%s%s\n", rt.code.c_str(), rt.note.empty() ? "" : " -- ", rt.note.c_str());
}

Rule make_rule(std::string id, std::string pattern, std::uint32_t flags) {
  Rule r;
  r.id = std::move(id);
  r.cls = "header:To";
  r.pattern = std::move(pattern);
  r.flags = flags;
  r.source = "test";
  return r;
}

// SpamAssassin 4.0.1 patterns on which Vectorscan 5.4.9's avx512 or avx2 code
// answered other than its core2 code on short corpus buffers (a sweep of all
// 1,213 patterns it compiles, 87,307 buffers), with tails that brought each
// miss out in 'a'-padded buffers (delta-debugged from the corpus ones).
struct SaCase {
  const char* pattern;
  std::uint32_t flags;
  std::vector<std::string> tails;
};
const std::vector<SaCase>& sa_cases() {
  static const std::vector<SaCase> cases = {
      {R"(\@(?:\D{2,}|(?:\d{1,3}\.){3}\d{1,3})>)", 0, {"@aa>", "@1.2.3.4>"}},
      {R"(\(.*\))", kDotall, {"()", "(\n)"}},
      {R"(".*"\s*\<)", 0, {"\"\"<", "\"a\" <"}},
      {R"(\')", 0, {"'", "'a"}},
      {R"((?:[56][0-9],)+)", 0, {"57,aa", "57,"}},
      {R"(\d\s?\%)", 0, {"0%a\n", "0 %"}},
      {R"(\S+<\w+)", 0, {"<a", "a<b"}},
      {R"((?:Fw|Re)\:{1,2}[\W+])", kCaseless, {"re: a\n", "Fw:: "}},
      {R"(\w@\S+\.\w)", 0, {"@a.a", "@b.c\n"}},
      {R"(<[^\@]*>)", kDotall, {"<>", "<a\n>"}},
      {R"((?:>$|>,))", 0, {">\n", ">,", ">"}},
      {R"(.{50})", 0, {"\n", "b"}},
  };
  return cases;
}

TEST(HsRuntime, ShortBuffersGetPcre2sAnswersWhereVectorscansWideCodeMissed) {
  RuleSet set;
  for (std::size_t i = 0; i < sa_cases().size(); ++i)
    set.rules.push_back(make_rule("R" + std::to_string(i), sa_cases()[i].pattern, sa_cases()[i].flags));
  CompileOptions options;
  options.re2_tier = false;  // every rule in Hyperscan: the code under test
  options.cost_check = false;
  CompileReport report;
  auto scanner = Scanner::compile(set, options, &report);
  ASSERT_TRUE(scanner.ok()) << scanner.error().message;
  for (const auto& p : report.plan) ASSERT_TRUE(is_hs_tier(p.tier)) << p.id << " is not answered by Hyperscan";

  std::size_t compared = 0;
  for (std::size_t i = 0; i < sa_cases().size(); ++i) {
    regexd::testing::Pcre2Reference ref(set.rules[i]);
    ASSERT_TRUE(ref.valid());
    for (const auto& tail : sa_cases()[i].tails)
      for (std::size_t n = 0; n <= 140; ++n) {
        const std::string buf = std::string(n, 'a') + tail;
        auto got = (*scanner)->scan("header:To", buf);
        ASSERT_TRUE(got.ok());
        bool hit = false;
        for (const auto& h : got->hits) hit |= h.first == set.rules[i].id;
        const auto want = ref.matches(buf);
        ASSERT_TRUE(want.has_value());
        ASSERT_EQ(hit, *want) << "/" << set.rules[i].pattern << "/ on " << buf.size() << " bytes ending \"" << tail
                              << "\" (scan code " << engine_info().scan_code << ")";
        ++compared;
      }
  }
  EXPECT_EQ(compared, 25u * 141u);
}

}  // namespace
