// The cost check (engine/src/cost.h): its decision is tested on given
// timings, never on a clock; its measurement only for "it measures".
#include <gtest/gtest.h>

#include <cstdint>

#include "cost.h"
#include "regexd/engine/engine.h"
#include "utf8.h"

using namespace regexd::engine;
using regexd::engine::detail::CostSample;

namespace {

constexpr std::size_t kBytes = 64 * 1024;

CostSample sample_us(double hs_us, double pcre2_us) { return {hs_us * 1000, pcre2_us * 1000}; }

Rule make_rule(std::string id, std::string pattern, std::uint32_t flags = 0) {
  Rule r;
  r.id = std::move(id);
  r.cls = "body";
  r.pattern = std::move(pattern);
  r.flags = flags;
  return r;
}

}  // namespace

TEST(CostCheck, CalibrationTextIsFixedMailLikeUtf8) {
  std::string_view t = detail::calibration_text();
  EXPECT_GT(t.size(), 60u * 1024);
  EXPECT_LE(t.size(), 64u * 1024);
  EXPECT_TRUE(detail::valid_utf8(t));  // UTF-8 rules are measured on it too
  EXPECT_EQ(t.back(), '\n');
  EXPECT_NE(t.find("caf\xc3\xa9"), std::string_view::npos);
  EXPECT_NE(t.find("http://"), std::string_view::npos);
  std::size_t longest = 0;
  for (std::size_t pos = 0, nl; (nl = t.find('\n', pos)) != std::string_view::npos; pos = nl + 1)
    longest = std::max(longest, nl - pos);
  EXPECT_LT(longest, 160u);
  // Raw mail besides prose (engine format 4): markup with links, base64.
  EXPECT_NE(t.find("<a href=\"http://"), std::string_view::npos);
  EXPECT_NE(t.find("=3D"), std::string_view::npos);
  // Tiering depends on this text: a change to it must come with a bump of
  // cache::kEngineFormat (old entries were tiered on the old text), and then
  // with this fingerprint (FNV-1a 64).
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : t) h = (h ^ c) * 1099511628211ull;
  EXPECT_EQ(h, 0x7f60f5a5a69c785full) << std::hex << h;
}

TEST(CostCheck, PrefersPcre2OnlyWhenHyperscanIsSlowAndMuchSlower) {
  std::string why;
  // SpamAssassin's FUZZY_PHARMACY, measured: ~0.75 ms against ~0.06 ms.
  EXPECT_TRUE(detail::prefer_pcre2(sample_us(750, 60), kBytes, &why));
  EXPECT_NE(why.find("87 MB/s"), std::string::npos) << why;
  EXPECT_NE(why.find("1092 MB/s"), std::string::npos) << why;
  why.clear();
  // Much slower than PCRE2 but still fast in absolute terms: keep Hyperscan.
  EXPECT_FALSE(detail::prefer_pcre2(sample_us(200, 10), kBytes, &why));
  // Slow, but PCRE2 is not 3x faster: keep Hyperscan.
  EXPECT_FALSE(detail::prefer_pcre2(sample_us(750, 300), kBytes, &why));
  EXPECT_FALSE(detail::prefer_pcre2(sample_us(750, 250.1), kBytes, &why));
  EXPECT_TRUE(detail::prefer_pcre2(sample_us(750, 250), kBytes, &why));
  // No measurement: no decision.
  EXPECT_FALSE(detail::prefer_pcre2(sample_us(0, 0), kBytes, &why));
  EXPECT_FALSE(detail::prefer_pcre2(sample_us(750, 60), 0, &why));
  EXPECT_TRUE(why.find("calibration") != std::string::npos);
}

TEST(CostCheck, MeasuresWhatBothEnginesAccept) {
  CostSample s;
  const auto& cal = detail::Calibration::builtin();
  ASSERT_TRUE(detail::measure_prefilter(make_rule("LA", "foo(?!bar)\\w+baz", kCaseless), 1'000'000, 10'000, cal, &s));
  EXPECT_GT(s.hs_ns, 0);
  EXPECT_GT(s.pcre2_ns, 0);
  ASSERT_TRUE(detail::measure_prefilter(make_rule("U", "(?<=\\s)caf\\x{e9}\\b", kUtf8), 1'000'000, 10'000, cal, &s));
  // Hyperscan refuses it even as a prefilter: no measurement, no decision.
  EXPECT_FALSE(detail::measure_prefilter(make_rule("EMB", "a$b"), 1'000'000, 10'000, cal, &s));
}

namespace {

// A clock for best_time(): the first call (the warm-up) returns `warm_up`,
// every later one `pass`.
struct FakePasses {
  double warm_up, pass;
  int calls = 0;
  double operator()() { return calls++ == 0 ? warm_up : pass; }
};

}  // namespace

TEST(CostCheck, ShortPassesAreTimedUntilAMillisecondHasGoneBy) {
  // 4 us per pass: 250 passes would fill the millisecond, the cap stops at 15.
  FakePasses fast{1e9, 4e3};
  EXPECT_EQ(detail::best_time(false, std::ref(fast)), 4e3);
  EXPECT_EQ(fast.calls, 1 + detail::kMaxRuns);
  // 300 us per pass: four passes fill it.
  FakePasses medium{1e9, 3e5};
  EXPECT_EQ(detail::best_time(false, std::ref(medium)), 3e5);
  EXPECT_EQ(medium.calls, 1 + 4);
  // 2 ms per pass: the minimum of three.
  FakePasses slow{1e9, 2e6};
  EXPECT_EQ(detail::best_time(false, std::ref(slow)), 2e6);
  EXPECT_EQ(slow.calls, 1 + detail::kRuns);
}

TEST(CostCheck, WarmUpCountsOnlyOnALongText) {
  // On the built-in text the warm-up is left out, whatever it measured.
  FakePasses short_text{1.0, 5e3};
  EXPECT_EQ(detail::best_time(false, std::ref(short_text)), 5e3);
  // On an operator's long sample: the warm-up and one pass, the better of them.
  FakePasses long_text{1.0, 5e3};
  EXPECT_EQ(detail::best_time(true, std::ref(long_text)), 1.0);
  EXPECT_EQ(long_text.calls, 2);
}
