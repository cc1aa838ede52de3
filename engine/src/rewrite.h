// Pattern rewrites that let Hyperscan take a rule it would refuse as
// written.  Each one states why its result is an equivalence (the Hyperscan
// match is final) or a superset (a prefilter, confirmed by PCRE2 on the
// original pattern); a rewrite that cannot prove that for a pattern returns
// nullopt and the pattern is left alone.  PCRE2 always runs the original.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "regexd/engine/rule.h"

namespace regexd::engine::detail {

// Hyperscan limits a pattern's length ("Pattern length exceeds limit").
// SpamAssassin's ReplaceTags rules spell every look-alike byte as "\xHH",
// often alone in a class ("[\xc3]"): four to six characters where one byte
// would do.  For a byte-mode rule (no u, no x, no \Q) this writes every
// escaped byte >= 0x80 as the raw byte, and a class holding only such a
// byte as that byte.  Equivalence: in byte mode a byte >= 0x80 is an
// ordinary literal for both engines wherever it appears (it is no
// metacharacter, digit, letter or space, so it cannot join the text around
// it into another token, unlike an escaped digit after "\1"), and a class of
// one literal matches exactly that literal; caseless matching does not
// touch bytes >= 0x80 in either engine without UCP.  Returns the rewritten
// pattern when it is shorter.
std::optional<std::string> compact_escaped_bytes(const Rule& rule);

// Hyperscan refuses some large patterns outright ("Pattern is too large"),
// even as prefilters, because of their bounded repeats.  This turns every
// bounded repeat "{n}" and "{m,n}" into "{m,}" (lazy "?" kept).  Superset:
// each repeat then accepts every count it accepted before, so every way the
// original matches is a way the result matches, provided nothing in the
// pattern can turn "more accepted" into "less matched": a negative
// look-around, an atomic group, a possessive quantifier, a conditional, a
// backtracking verb or a back-reference; any of those, or extended syntax
// (x, where '#' and spaces change meaning), returns nullopt.  Returns
// nullopt too when nothing was bounded.  Usable only as a prefilter.
std::optional<std::string> loosen_bounded_repeats(const Rule& rule, std::string_view expression);

}  // namespace regexd::engine::detail
