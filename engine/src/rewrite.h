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
// even as prefilters, and takes seconds to compile others, because of their
// bounded repeats.  This turns every bounded repeat "{n}" and "{m,n}" into
// "{m,}" (lazy "?" kept) and drops every negative look-around ("(?!...)",
// "(?<!...)") whole.  Superset: each repeat then accepts every count it
// accepted before, and a negative look-around only ever rejects a way of
// matching (it consumes nothing and captures nothing a later part could
// use), so every way the original matches is a way the result matches;
// PCRE2 explores every way (it backtracks), so "some way matches" is its
// answer.  That holds provided nothing in the pattern can turn "more
// accepted" into "less matched" by committing to one way ("(?>a{1,2})a"
// matches "aaa", "(?>a{1,})a" does not).  So atomic groups become ordinary
// groups ("(?>X)" -> "(?:X)") and possessive quantifiers greedy ones
// ("X*+" -> "X*", "X{m,n}+" -> "X{m,}"): an atomic group matches only the
// first way its content matches, which is one of the ways the ordinary
// group matches, so this too only adds ways; it would remove some inside a
// negative look-around, but those are dropped whole.  (The regex
// SpamAssassin's `__FILL_THIS_FORM_PARTIAL_RAW` opens with "(?>\s{0,50})".)
// A conditional, a backtracking verb, a back-reference or a subroutine
// call, or extended syntax (x, where '#' and spaces change meaning),
// returns nullopt.  A negative look-around followed by a quantifier also
// returns nullopt.  Returns nullopt too when nothing changed.  Usable only
// as a prefilter.
std::optional<std::string> loosen_for_prefilter(const Rule& rule, std::string_view expression);

}  // namespace regexd::engine::detail
