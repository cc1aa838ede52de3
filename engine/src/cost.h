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

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/engine/engine.h"
#include "regexd/engine/rule.h"

namespace regexd::engine::detail {

// The built-in calibration text: 64 KiB of deterministic, mail-like lines
// (common words, punctuation, digits, a URL, some UTF-8), the same on every
// machine.
std::string_view calibration_text();

// The text one compile measures on: CompileOptions::calibration when set and
// not empty, else the built-in text.  Hyperscan's UTF-8 mode is undefined on
// invalid UTF-8, and an operator's mail need not be valid, so UTF-8 patterns
// are measured on a copy whose invalid bytes are '?' (same length; the
// scanner sends such buffers to PCRE2, the copy keeps the cost of the rest).
// Holds a reference to the options' text: valid on its own, and readable
// from forked probe children (they inherit the parent's memory).
class Calibration {
 public:
  explicit Calibration(const CompileOptions& options);
  // The built-in text, for callers without options (tests).
  static const Calibration& builtin();
  std::string_view text() const { return text_; }
  // The text for a Hyperscan expression compiled with `hs_flags`.
  std::string_view text_for(unsigned hs_flags) const;
  std::size_t size() const { return text_.size(); }
  // How many times longer than the built-in text (at least 1): time bounds
  // that cover scans of the text grow by this.
  double scale() const;

 private:
  Calibration() : text_(calibration_text()) {}
  std::shared_ptr<const std::string> keep_;
  std::string_view text_;
  std::string utf8_;  // the UTF-8-safe copy; empty when text_ is valid UTF-8
};

// `s` with every byte that does not start a well-formed UTF-8 sequence
// replaced by '?' (same length).
std::string utf8_safe(std::string_view s);

// CPU time of the calling thread (ns).  Every cost and compile time the
// planner measures is CPU time, so that other work on the machine does not
// change a plan (the probe bounds its children the same way, probe.h).
double thread_cpu_ns();
// The time of `clock` (ns), or -1 when it cannot be read (a child's CPU
// clock, probe.cpp).
double clock_ns(clockid_t clock);

// How many passes one measurement times: the best of `timed()` (which runs
// the measured work once and returns its time, ns) over a warm-up and then
// at least kRuns passes, more while together they took less than
// kMinTimedNs, at most kMaxRuns; on a long text (an operator's sample at
// least twice the built-in text, `long_text`) the warm-up and one pass.
inline constexpr int kRuns = 3;
inline constexpr int kMaxRuns = 15;
inline constexpr double kMinTimedNs = 1e6;
double best_time(bool long_text, const std::function<double()>& timed);

struct CostSample {
  double hs_ns = 0;     // best of a few scans of the calibration text
  double pcre2_ns = 0;  // likewise, PCRE2 (JIT) looking for the first match
  bool hs_fired = false;  // the prefilter matched the calibration text
};

// Measures `rule` as a prefilter alone (its Hyperscan expression, or
// `expression` when given: a rewrite of it).  Returns false when Hyperscan
// or PCRE2 refuses it here (the class compile then decides as before).
bool measure_prefilter(const Rule& rule, std::uint32_t pcre2_match_limit, std::uint32_t pcre2_depth_limit,
                       const Calibration& cal, CostSample* out, const std::string* expression = nullptr);

// A Hyperscan expression alone with these hs flags over the calibration text.
// False when Hyperscan refuses it.
struct HsSample {
  double ns = -1;
  bool fired = false;
  double compile_ms = 0;  // hs_compile of the expression alone (CPU time)
};
// `compiled`, when given, is called once the compile is over (done or
// refused), before the scans: the probe's child tells its parent with it, so
// that the compile and the scans are bounded apart (probe.h).
bool measure_hs_expression(const std::string& expression, unsigned hs_flags, const Calibration& cal, HsSample* out,
                           const std::function<void()>& compiled = {});

// One byte-mode database of `expressions` (each with its hs flags) over the
// calibration text, compiled as the class databases are (platform of the
// chosen scan code).  False when Hyperscan refuses them.  An empty list costs
// nothing: a class without Hyperscan rules scans no database.
bool measure_hs_database(const std::vector<std::string>& expressions, const std::vector<unsigned>& flags,
                         const Calibration& cal, double* ns);

// PCRE2 alone (JIT unless the rule has O) looking for the first match in
// the calibration text.  False when PCRE2 refuses the rule.
bool measure_pcre2(const Rule& rule, std::uint32_t pcre2_match_limit, std::uint32_t pcre2_depth_limit,
                   const Calibration& cal, double* ns);

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
bool measure_re2(const std::vector<std::string>& patterns, const Calibration& cal, Re2Sample* out, long long max_mem);
// The same over `text` instead of the calibration text (e.g. trigger_text.h's).
bool measure_re2(const std::vector<std::string>& patterns, std::string_view text, const Calibration& cal,
                 Re2Sample* out, long long max_mem);

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
