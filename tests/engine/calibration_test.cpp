// An operator's calibration sample (regexd/engine/calibration.h,
// CompileOptions::calibration): the loader's order, cap and errors, that
// every measurement runs on the given text (the probe's forked children
// too), and that the sample changes engines, never answers.
#include <gtest/gtest.h>
#include <hs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cost.h"
#include "pcre2_reference.h"
#include "probe.h"
#include "regexd/engine/calibration.h"
#include "regexd/engine/engine.h"
#include "utf8.h"

namespace fs = std::filesystem;
using namespace regexd::engine;

namespace {

class CalibrationDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("regexd_calibration_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(dir_);
  }
  void write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
  }
  std::string load_error(std::size_t cap = kMaxCalibrationBytes) {
    auto r = load_calibration_dir(dir_, cap);
    EXPECT_FALSE(r.ok());
    return r.ok() ? "" : r.error().message;
  }
  fs::path dir_;
};

Rule make_rule(std::string id, std::string pattern, std::uint32_t flags = 0) {
  Rule r;
  r.id = std::move(id);
  r.cls = "body";
  r.pattern = std::move(pattern);
  r.flags = flags;
  r.source = "test";
  return r;
}

}  // namespace

TEST_F(CalibrationDir, FilesInNameOrderEachEndingInANewline) {
  write("b.eml", "second\n");
  write("a.eml", "first");  // no final newline: one is added so messages stay apart
  write("c", "third\n");
  write(".hidden", "dotfiles are skipped\n");
  fs::create_directory(dir_ / "sub");
  std::ofstream(dir_ / "sub" / "x.eml") << "subdirectories are skipped\n";
  fs::create_symlink(dir_ / "c", dir_ / "d-link");  // a link to a regular file counts
  auto text = load_calibration_dir(dir_);
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(**text, "first\nsecond\nthird\nthird\n");
}

TEST_F(CalibrationDir, CapCutsOnALineEndAndReadsNoFurther) {
  write("1.eml", "aaaa\nbbbb\n");   // 10 bytes
  write("2.eml", "cc\ndddddd\ne");  // crosses the cap of 16: cut after "cc\n"
  write("3.eml", "never read\n");
  auto text = load_calibration_dir(dir_, 16);
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(**text, "aaaa\nbbbb\ncc\n");
  // A first file without a line end before the cap is cut at the cap.
  auto tiny = load_calibration_dir(dir_, 3);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(**tiny, "aaa");
  // The default cap holds a real sample in full.
  std::string big(100 * 1024, 'x');
  for (std::size_t i = 79; i < big.size(); i += 80) big[i] = '\n';
  write("4.eml", big);
  auto full = load_calibration_dir(dir_);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ((*full)->size(), 10 + 11 + 11 + big.size() + 1);  // "e" got its newline
  EXPECT_LE((*full)->size(), kMaxCalibrationBytes);
}

TEST_F(CalibrationDir, ErrorsAreOneLineNamingTheDirectoryOrFile) {
  auto one_line = [](const std::string& m) { return m.find('\n') == std::string::npos; };
  std::string e = load_error();  // no files at all
  EXPECT_NE(e.find(dir_.string()), std::string::npos) << e;
  EXPECT_NE(e.find("empty"), std::string::npos) << e;
  write("empty.eml", "");
  e = load_error();
  EXPECT_NE(e.find("empty (1 files"), std::string::npos) << e;

  auto missing = load_calibration_dir(dir_ / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find((dir_ / "nope").string() + ": no such directory"), std::string::npos)
      << missing.error().message;
  auto file = load_calibration_dir(dir_ / "empty.eml");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message.find("not a directory"), std::string::npos) << file.error().message;

  // A link that leads nowhere is a file that cannot be read, named.
  fs::create_symlink(dir_ / "gone", dir_ / "broken.eml");
  e = load_error();
  EXPECT_NE(e.find((dir_ / "broken.eml").string()), std::string::npos) << e;
  for (const auto& m : {e, missing.error().message, file.error().message}) EXPECT_TRUE(one_line(m)) << m;
  fs::remove(dir_ / "broken.eml");

  if (::geteuid() != 0) {  // root reads files whatever their mode
    write("locked.eml", "secret\n");
    fs::permissions(dir_ / "locked.eml", fs::perms::none);
    e = load_error();
    EXPECT_NE(e.find((dir_ / "locked.eml").string()), std::string::npos) << e;
    EXPECT_NE(e.find("denied"), std::string::npos) << e;
  }
}

TEST(Calibration, DefaultIsTheBuiltInTextAndCustomTextIsUsedAsGiven) {
  CompileOptions o;
  EXPECT_EQ(detail::Calibration(o).text().data(), builtin_calibration_text().data());
  o.calibration = std::make_shared<const std::string>();
  EXPECT_EQ(detail::Calibration(o).text().data(), builtin_calibration_text().data());  // empty = default
  o.calibration = std::make_shared<const std::string>(std::string(256 * 1024, 'm'));
  detail::Calibration cal(o);
  EXPECT_EQ(cal.text().data(), o.calibration->data());  // shared, not copied
  EXPECT_DOUBLE_EQ(cal.scale(), 256.0 * 1024 / static_cast<double>(builtin_calibration_text().size()));
  EXPECT_DOUBLE_EQ(detail::Calibration::builtin().scale(), 1.0);
}

TEST(Calibration, Utf8PatternsAreMeasuredOnAValidCopyOfInvalidMail) {
  // Latin-1 mail, a stray continuation byte, a truncated sequence at the end.
  const std::string raw = "caf\xe9 \xc3\xa9t\xc3\xa9 \x80 ok \xe2\x82\xac \xf0\x9f\x98";
  std::string safe = detail::utf8_safe(raw);
  EXPECT_EQ(safe, "caf? \xc3\xa9t\xc3\xa9 ? ok \xe2\x82\xac ???");
  EXPECT_TRUE(detail::valid_utf8(safe));
  CompileOptions o;
  o.calibration = std::make_shared<const std::string>(raw);
  detail::Calibration cal(o);
  EXPECT_EQ(cal.text(), raw);  // bytes mode and PCRE2 see the mail as it is
  EXPECT_EQ(cal.text_for(0), raw);
  EXPECT_EQ(cal.text_for(HS_FLAG_UTF8), safe);
  o.calibration = std::make_shared<const std::string>("valid \xc3\xa9\n");
  detail::Calibration valid(o);
  EXPECT_EQ(valid.text_for(HS_FLAG_UTF8).data(), o.calibration->data());  // no copy needed
}

TEST(Calibration, ProbeChildrenMeasureOnTheGivenText) {
  // A literal that is in the operator's sample and not in the built-in text:
  // the forked children must report that it fired (they read the text from
  // the memory they inherit).
  ASSERT_EQ(builtin_calibration_text().find("zqxjvw"), std::string_view::npos);
  std::vector<detail::ProbeInput> in = {{"zqxjvw\\d", HS_FLAG_SINGLEMATCH, true, true},
                                        {"zqxjvw\\d", HS_FLAG_SINGLEMATCH, true, true}};
  CompileOptions o;
  o.calibration = std::make_shared<const std::string>("Subject: hi\n\nyour code is zqxjvw7\n");
  detail::Calibration cal(o);
  detail::ProbeLimits limits;
  limits.children = 2;
  limits.measure = std::chrono::seconds(30);  // under qemu a compile alone can take over the 250 ms default
  auto custom = detail::probe_patterns(in, limits, cal);
  auto builtin = detail::probe_patterns(in, limits, detail::Calibration::builtin());
  for (std::size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(custom[i].measured, detail::HsMeasure::kDone);
    ASSERT_EQ(builtin[i].measured, detail::HsMeasure::kDone);
    EXPECT_TRUE(custom[i].hs_fired);
    EXPECT_FALSE(builtin[i].hs_fired);
  }
  // PCRE2 and RE2 measurements read it too.
  detail::Re2Sample r;
  ASSERT_TRUE(detail::measure_re2({"zqxjvw\\d"}, cal, &r, detail::kRe2MeasureMaxMem));
  EXPECT_TRUE(r.fired);
  ASSERT_TRUE(detail::measure_re2({"zqxjvw\\d"}, detail::Calibration::builtin(), &r, detail::kRe2MeasureMaxMem));
  EXPECT_FALSE(r.fired);
}

TEST(Calibration, ACustomSampleGivesTheSameAnswers) {
  // Rules of every kind the planner chooses between (literal, prefilter
  // with look-around, back-reference, UTF-8, RE2-friendly look-alikes),
  // compiled on the built-in text and on a sample of raw, partly invalid
  // mail full of what some of them look for: engines may differ, answers not.
  RuleSet rules;
  rules.rules = {make_rule("LIT", "click here", kCaseless),
                 make_rule("LOOK", "foo(?!bar)\\w+baz"),
                 make_rule("BREF", "(\\w{3})-\\1"),
                 make_rule("UTF", "caf\\x{e9}\\b", kUtf8),
                 make_rule("FUZZY", "v[i1!|]a?gr[a@4]"),
                 make_rule("GAP", "\\bfree\\W{0,3}m[o0]ney\\b", kCaseless),
                 make_rule("END", "regards$", kMultiline)};
  std::string sample;
  for (int i = 0; i < 400; ++i)
    sample += "Subject: offer " + std::to_string(i) + "\n\nv1agra and FREE -- m0ney, caf\xe9 (latin-1), " +
              "abc-abc fooxbaz click HERE\nBest regards\n";
  CompileOptions custom;
  custom.threads = 2;
  custom.calibration = std::make_shared<const std::string>(sample);
  CompileOptions builtin;
  builtin.threads = 2;
  CompileReport rep_custom, rep_builtin;
  auto a = Scanner::compile(rules, custom, &rep_custom);
  auto b = Scanner::compile(rules, builtin, &rep_builtin);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(rep_custom.plan.size(), rules.rules.size());
  ASSERT_EQ(rep_builtin.plan.size(), rules.rules.size());
  const std::vector<std::string> buffers = {
      "", "nothing at all", sample.substr(0, 300), "caf\xc3\xa9 ", "caf\xe9 \xff", "viagra", "v!gr4 free m0ney",
      "foobarbaz foobbaz", "xyz-xyz", "kind regards\nbye", "Best regards", "CLICK HERE now"};
  for (const auto& buf : buffers) {
    auto ra = (*a)->scan("body", buf);
    auto rb = (*b)->scan("body", buf);
    ASSERT_TRUE(ra.ok() && rb.ok());
    EXPECT_EQ(ra->hits, rb->hits) << buf;
    for (const auto& r : rules.rules) {
      regexd::testing::Pcre2Reference ref(r);
      bool hit = false;
      for (const auto& [id, n] : ra->hits) hit |= id == r.id;
      EXPECT_EQ(std::optional<bool>(hit), ref.matches(buf)) << r.id << " on " << buf;
    }
  }
}
