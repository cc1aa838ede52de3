// PCRE2 pattern -> RE2 pattern, for the planner's RE2 tier.
//
// RE2 runs a rule only through one of these translations, never through the
// rule's text as written: RE2 and PCRE2 read the same syntax differently in
// corners that matter for mail (RE2's \s lacks \v, its \v is a character and
// not a class, RE2 folds case over Latin-1 where PCRE2 without `u` folds only
// ASCII, non-multiline `$` is \z in RE2 and (?=\n?\z) in PCRE2, ...).  The
// translator reads the PCRE2 syntax itself, token by token, and refuses
// whatever it does not know: a refusal only costs speed (the rule stays with
// Hyperscan or PCRE2), a wrong translation would cost answers.
//
// Two strengths:
//  - exact: RE2 (Latin-1, options below) matches a buffer if and only if
//    PCRE2 matches it, for every byte string.  RE2's answer is final.
//  - superset: RE2 matches every buffer PCRE2 matches (and maybe more), so it
//    may serve as a prefilter that PCRE2 confirms.  Used for rules RE2 cannot
//    run exactly (look-arounds, back-references, ...).
//
// Every rewrite step states in re2_translate.cpp why it is an equivalence or
// a superset; tests/engine/re2_translate_test.cpp checks each one against
// PCRE2 on edge-case inputs.
//
// Thread safety: pure functions.
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <vector>

#include "regexd/engine/rule.h"

#include <re2/re2.h>

namespace regexd::engine::detail {

enum class Re2Strength { kExact, kSuperset };

struct Re2Translation {
  std::string pattern;  // RE2 syntax, flags inline; compile with re2_options()
  Re2Strength strength = Re2Strength::kExact;
};

// Exact translation of `rule`, or nullopt with *why set (one line) when the
// translator cannot prove one (UTF-8 and extended-syntax rules are refused).
std::optional<Re2Translation> re2_exact(const Rule& rule, std::string* why);

// Exact translation when there is one, else a superset translation, else
// nullopt with *why set.
std::optional<Re2Translation> re2_translate(const Rule& rule, std::string* why);

// The translator's reader, for fixed_counter.h: the rule's matches as
// alternatives of fixed byte-set sequences, in the order PCRE2 tries them,
// when the rule is only that (classes, literals, groups, alternations and
// `{n}` repeats; no other repeat, assertion, look-around, back-reference,
// atomic group, possessive quantifier or \K, no alternative that can match
// the empty string), with at most `max_alternatives` alternatives of at most
// `max_length` bytes after expansion.  Else nullopt with *why set.
using FixedSequence = std::vector<std::bitset<256>>;
std::optional<std::vector<FixedSequence>> fixed_alternatives(const Rule& rule, std::size_t max_alternatives,
                                                             std::size_t max_length, std::string* why);

// How the translator writes a set of bytes in RE2 syntax: a single byte as
// itself, escaped or \xHH (bytes >= 0x80 behind an empty group, see the
// definition), else the shorter of [...] and [^...] with ranges; the empty
// set as [^\x00-\xff].  lockstep_dfa.h reads exactly this syntax.
std::string re2_byte_set(const std::bitset<256>& s);

// The RE2 options every translated pattern assumes: Latin-1 encoding (one
// byte = one character, as PCRE2 without `u`), no logging, `max_mem` bytes for
// the compiled program and its DFA cache.
re2::RE2::Options re2_options(long long max_mem = 8 << 20);

}  // namespace regexd::engine::detail
