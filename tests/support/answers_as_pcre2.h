// Scanner answers held to PCRE2, rule by rule (gtest): the check several
// engine tests make on sets whose plan depends on the clock.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "pcre2_reference.h"
#include "regexd/engine/engine.h"

namespace regexd::testing {

// Scans every subject in class `cls` and expects each of `rules` to be
// reported exactly when plain PCRE2 matches it, with a count of 1 when
// `options` asks for no counting (ScanOptions::count_hits).  Returns how many
// (subject, rule) pairs PCRE2 matched, so a caller can check the subjects
// exercise the rules at all.
inline std::size_t expect_answers_as_pcre2(const engine::Scanner& scanner, const std::string& cls,
                                           const std::vector<engine::Rule>& rules,
                                           const std::vector<std::string>& subjects,
                                           const engine::ScanOptions& options = {}) {
  std::vector<std::unique_ptr<Pcre2Reference>> refs;  // not movable
  for (const auto& r : rules) refs.push_back(std::make_unique<Pcre2Reference>(r));
  std::size_t matched = 0;
  for (const auto& in : subjects) {
    auto r = scanner.scan(cls, in, options);
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok()) return matched;
    for (std::size_t k = 0; k < rules.size(); ++k) {
      const bool expected = *refs[k]->matches(in);
      unsigned got = 0;
      for (const auto& [id, n] : r->hits)
        if (id == rules[k].id) got = n;
      EXPECT_EQ(got > 0, expected) << rules[k].id << " on '" << in << "'";
      if (!options.count_hits && got > 0) {
        EXPECT_EQ(got, 1u) << rules[k].id << " on '" << in << "': counted";
      }
      matched += expected;
    }
  }
  return matched;
}

}  // namespace regexd::testing
