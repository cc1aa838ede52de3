// Cost check: is a prefilter-tier pattern cheaper in PCRE2 alone?
//
// A prefilter is Hyperscan's approximation of a pattern it cannot run as
// written.  Usually it scans at hundreds of MB/s and fires rarely, so PCRE2
// only confirms a few buffers.  But for some patterns (SpamAssassin's
// FUZZY_PHARMACY and kin: `\W{0,2}` between look-alike classes repeated
// {1,2}) the approximation leaves Hyperscan without a literal to anchor on
// and it crawls at ~80 MB/s, several times slower than PCRE2 JIT running the
// real pattern over the same bytes.  Nothing in the pattern text predicts it
// (tagged rules built the same way scan fast), so it is measured: each
// prefilter pattern is compiled alone and both engines scan a fixed,
// generated mail-like text.
//
// Only speed depends on the outcome, never an answer: both tiers end in
// PCRE2's verdict.  To keep the tiering stable from run to run the bar is
// high (Hyperscan 3x slower than PCRE2 AND slower than 256 MB/s; the rules
// this moves are ~10x and ~80 MB/s, everything else measured far from it), and
// the result is stored with the compiled set, so a cache hit never measures.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "regexd/engine/engine.h"
#include "regexd/engine/rule.h"

namespace regexd::engine::detail {

// The calibration text: 64 KiB of deterministic, mail-like lines (common
// words, punctuation, digits, a URL, some UTF-8), the same on every machine.
std::string_view calibration_text();

struct CostSample {
  double hs_ns = 0;     // best of a few scans of the calibration text
  double pcre2_ns = 0;  // likewise, PCRE2 (JIT) looking for the first match
  bool hs_fired = false;  // the prefilter matched the calibration text
};

// Measures `rule` as a prefilter alone (its Hyperscan expression, or
// `expression` when given: a rewrite of it).  Returns false when Hyperscan
// or PCRE2 refuses it here (the class compile then decides as before).
bool measure_prefilter(const Rule& rule, std::uint32_t pcre2_match_limit, std::uint32_t pcre2_depth_limit,
                       CostSample* out, const std::string* expression = nullptr);

// A Hyperscan expression alone with these hs flags over the calibration text.
// False when Hyperscan refuses it.
struct HsSample {
  double ns = -1;
  bool fired = false;
  double compile_ms = 0;  // hs_compile of the expression alone
};
bool measure_hs_expression(const std::string& expression, unsigned hs_flags, HsSample* out);

// PCRE2 alone (JIT unless the rule has O) looking for the first match in
// the calibration text.  False when PCRE2 refuses the rule.
bool measure_pcre2(const Rule& rule, std::uint32_t pcre2_match_limit, std::uint32_t pcre2_depth_limit, double* ns);

// One RE2::Set of `patterns` (RE2 syntax, re2_translate.h) over the
// calibration text: best of a few scans after a warm-up (the lazy DFA is
// built on the first), and whether any pattern matched.  False when RE2
// refuses the patterns or runs out of memory on the text.
// The planner measures RE2 with the scanner's DFA memory (kRe2SetMaxMem) to
// decide whether a rule pays in RE2, and with this much less to decide
// whether rules may share a set: 64 KiB of text cannot fill 8 MiB of DFA
// states, while a day of mail fills it and then rebuilds states again and
// again.  With a small cache a state-hungry set thrashes on the calibration
// text already, as it would on mail (sets of rules with long gaps measured
// 4x their rules' sum on the corpus and no more than the sum on this text
// with the scanner's memory).
inline constexpr long long kRe2MeasureMaxMem = 1 << 20;
struct Re2Sample {
  double ns = 0;
  bool fired = false;
};
bool measure_re2(const std::vector<std::string>& patterns, Re2Sample* out, long long max_mem);

// For a prefilter that exists only through a superset rewrite (a rule that
// would otherwise be PCRE2's alone): worth it only when it scans faster than
// PCRE2 and does not fire on the calibration text, since a prefilter that
// fires on ordinary mail costs its own scan plus PCRE2's confirmation on
// nearly every message.  Sets *why when it is not worth it.
bool rewrite_pays(const CostSample& sample, std::size_t bytes, std::string* why);

// The decision, kept apart so it is testable without a clock: true when
// PCRE2 alone should answer for the rule.  Sets *why to a one-line reason.
bool prefer_pcre2(const CostSample& sample, std::size_t bytes, std::string* why);

}  // namespace regexd::engine::detail
