// Deterministic random subjects for property tests that compare two
// patterns (or an engine and PCRE2) on many short strings over a small
// alphabet, so that the patterns match some and not others.
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace regexd::testing {

// Appends `count` strings of 0..max_len characters drawn from `alphabet`
// (repeat a character to weight it) to `out`, the same on every machine for
// the same `seed`.
inline void add_random_subjects(std::vector<std::string>& out, const std::string& alphabet, int count, int max_len,
                                unsigned seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < count; ++i) {
    std::string s(std::uniform_int_distribution<int>(0, max_len)(rng), ' ');
    for (char& c : s) c = alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
    out.push_back(std::move(s));
  }
}

}  // namespace regexd::testing
