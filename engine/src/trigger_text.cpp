#include "trigger_text.h"

#include <re2/filtered_re2.h>

#include <cstdint>

#include "re2_translate.h"

namespace regexd::engine::detail {

std::string trigger_text(std::string_view base, const std::vector<std::string>& re2_patterns) {
  // FilteredRE2's atoms: for every pattern, literals one of which each match
  // must contain (lower case for case-folded letters: mail writes them in
  // lower case most often too).
  re2::FilteredRE2 filter(3);
  int added = 0;
  for (const auto& p : re2_patterns) {
    int id = 0;
    if (filter.Add(p, re2_options(), &id) == re2::RE2::NoError) ++added;  // a refused pattern adds no atom
  }
  if (added == 0) return std::string(base);  // (Compile() with nothing added logs an error)
  std::vector<std::string> atoms;
  filter.Compile(&atoms);
  if (atoms.empty()) return std::string(base);
  std::string out;
  out.reserve(base.size() + base.size() / 8);
  std::uint64_t x = 0x9e3779b97f4a7c15ull;  // xorshift64, as the calibration text's
  for (const char c : base) {
    out.push_back(c);
    if (c != ' ') continue;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (x % kTriggerEvery != 0) continue;
    out += atoms[(x >> 16) % atoms.size()];
    out.push_back(' ');
  }
  return out;
}

}  // namespace regexd::engine::detail
