// Trigger text (engine/src/trigger_text.h): the calibration text with a
// set's own literals sprinkled in.  What is inserted, how often, and that
// the text is the same on every run; the planner's use of it is measured,
// not asserted (docs/benchmarks.md).
#include "trigger_text.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cost.h"

namespace {

using regexd::engine::detail::Calibration;
using regexd::engine::detail::kTriggerEvery;
using regexd::engine::detail::trigger_text;

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The words of `got` that are not the next word of `base`, in order: what
// was inserted (insertions only ever follow a space of the base).
std::vector<std::string> inserted(const std::string& base, const std::string& got) {
  const auto b = words(base), g = words(got);
  std::vector<std::string> extra;
  std::size_t i = 0;
  for (const auto& w : g) {
    if (i < b.size() && w == b[i]) {
      ++i;
      continue;
    }
    extra.push_back(w);
  }
  EXPECT_EQ(i, b.size()) << "every word of the base survives, in order";
  return extra;
}

TEST(TriggerText, InsertsTheSetsAtomsAboutOnceInEveryKWords) {
  const std::string base(Calibration::builtin().text());
  // FilteredRE2 atoms: "million" and "dollars" are in every match of the
  // first; the second contributes "lottery".
  const std::vector<std::string> patterns{"million[^.]{0,50}?dollars", "(?i)lottery\\s+winner"};
  const std::string got = trigger_text(base, patterns);
  const auto extra = inserted(base, got);
  const std::set<std::string> seen(extra.begin(), extra.end());
  for (const auto& w : seen) EXPECT_TRUE(w == "million" || w == "dollars" || w == "lottery" || w == "winner") << w;
  EXPECT_TRUE(seen.count("million") && seen.count("dollars") && seen.count("lottery")) << got.size();
  // About one space in kTriggerEvery; a factor of two either way allows for
  // the pseudo-random draw.
  const std::size_t spaces = std::count(base.begin(), base.end(), ' ');
  EXPECT_GT(extra.size(), spaces / kTriggerEvery / 2);
  EXPECT_LT(extra.size(), spaces / kTriggerEvery * 2);
}

TEST(TriggerText, IsTheSameEveryTime) {
  const std::string base(Calibration::builtin().text());
  const std::vector<std::string> patterns{"photo (?:[a-z]{1,15} ){0,3}editing"};
  EXPECT_EQ(trigger_text(base, patterns), trigger_text(base, patterns));
}

TEST(TriggerText, WithoutAtomsIsTheBase) {
  const std::string base = "one two three four five six seven eight nine ten ";
  EXPECT_EQ(trigger_text(base, {}), base);
  // No literal of 3 bytes or more that every match contains.
  EXPECT_EQ(trigger_text(base, {"[a-z]+\\d"}), base);
  // A pattern RE2 refuses adds nothing; the others still do.
  EXPECT_EQ(trigger_text(base, {"(unclosed"}), base);
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "word ";
  const auto extra = inserted(many, trigger_text(many, {"(unclosed", "gift\\s?card"}));
  ASSERT_FALSE(extra.empty());
  for (const auto& w : extra) EXPECT_TRUE(w == "gift" || w == "card") << w;
}

}  // namespace
