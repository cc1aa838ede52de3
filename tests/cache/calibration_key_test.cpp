// An operator's calibration sample in the cache key (docs/cache-format.md,
// "Cache key"): a sample other than the built-in text is another entry, the
// built-in text keeps the keys it always had, and a compile with the sample
// is found again only with the same sample (regexctl prewarm --calibrate DIR
// and the daemon's compile.calibrate = DIR).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "regexd/cache/key.h"
#include "regexd/cache/store.h"
#include "regexd/engine/calibration.h"
#include "regexd/engine/rule.h"

namespace fs = std::filesystem;
using namespace regexd;
using namespace regexd::cache;

namespace {

engine::RuleSet small_rules() {
  return engine::parse_native(
      "LIT body /click here/i\n"
      "FUZZY body /v[i1!|]a?gr[a@4]/\n"
      "LOOK body /foo(?!bar)\\w+baz/\n",
      "calib.rules");
}

std::shared_ptr<const std::string> text(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

}  // namespace

TEST(CalibrationKey, OnlyASampleOtherThanTheBuiltInTextChangesTheKey) {
  auto tags = *current_tags();
  auto rules = small_rules();
  engine::CompileOptions def;
  const CacheKey k0 = compute_key(rules, def, tags);
  engine::CompileOptions o;
  o.calibration = text("");
  EXPECT_EQ(compute_key(rules, o, tags), k0);  // empty = the built-in text
  o.calibration = text(std::string(engine::builtin_calibration_text()));
  EXPECT_EQ(compute_key(rules, o, tags), k0);  // the built-in text named explicitly
  o.calibration = text("Subject: a\n\nmail\n");
  const CacheKey k1 = compute_key(rules, o, tags);
  EXPECT_NE(k1, k0);
  o.calibration = text("Subject: b\n\nmail\n");
  const CacheKey k2 = compute_key(rules, o, tags);
  EXPECT_NE(k2, k0);
  EXPECT_NE(k2, k1);
  o.calibration = text("Subject: a\n\nmail\n");  // equal text, another object: same key
  EXPECT_EQ(compute_key(rules, o, tags), k1);
}

TEST(CalibrationKey, AnEntryBuiltWithASampleIsHitOnlyWithTheSameSample) {
  const fs::path root = fs::temp_directory_path() / ("regexd_calibration_key_" + std::to_string(::getpid()));
  fs::remove_all(root);
  StoreOptions so;
  so.root = root;
  auto store = Store::open(so);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto rules = small_rules();
  engine::CompileOptions with;
  with.threads = 1;
  std::string sample;
  for (int i = 0; i < 100; ++i) sample += "Subject: " + std::to_string(i) + "\n\nv1agra, click here\n";
  with.calibration = text(sample);

  auto first = (*store)->get_or_compile(rules, with, "calib");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->source, LoadResult::Source::kCompiled);
  // The same sample loaded again (another shared_ptr, as a restarted daemon
  // has): a hit, nothing measured again.
  engine::CompileOptions again = with;
  again.calibration = text(sample);
  auto second = (*store)->get_or_compile(rules, again, "calib");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->source, LoadResult::Source::kCache);
  EXPECT_EQ(second->scanner->tiers(), first->scanner->tiers());
  // Without the sample: another key, so a compile of its own.
  engine::CompileOptions without;
  without.threads = 1;
  auto third = (*store)->get_or_compile(rules, without, "calib");
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->source, LoadResult::Source::kCompiled);
  EXPECT_NE((*store)->key_for(rules, with), (*store)->key_for(rules, without));
  fs::remove_all(root);
}
