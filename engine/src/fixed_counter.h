// Counting hits without PCRE2 (issue 13): rules whose matches are a few
// fixed byte sequences.
//
// SpamAssassin wants some rules' number of hits (`tflags multiple
// maxhits=N`), and only PCRE2 counts them the way Perl's //g loop does (the
// next search starts where the last match ended), so the scanner used to
// call PCRE2 once per hit.  Its two dearest such rules are one byte or a
// few byte pairs: __LOWER_E /e/ (maxhits=230) and __E_LIKE_LETTER, `e` or
// one of ~20 UTF-8 look-alikes (maxhits=320).  Over the 500 corpus messages
// PCRE2 counted them in 3.3 and 3.7 ms per pass, a ninth of body's PCRE2
// time, most of it call overhead (29 ns per hit).
//
// Exactness.  A rule whose matches are the alternatives of a set of fixed
// byte-set sequences (re2_translate.h fixed_alternatives(): no variable
// repeat, assertion or anything else that looks outside the match or
// depends on backtracking beyond trying alternatives in order) matches at
// a start exactly when one of its expanded alternatives does there, and
// PCRE2 returns the first of them in its order of trial (the expansion
// keeps that order).  The counter does what the //g loop does with that:
// it tries starts left to right; at the first start where an alternative
// matches it counts one and moves past that alternative's bytes, else it
// moves one byte.  No alternative is empty, so the loop never needs PCRE2's
// retry of an empty match.  Byte mode only (the reader refuses `u`).
//
// Where.  The scanner counts with it only a rule whose match another engine
// has already established (Hyperscan native, RE2 exact): on a buffer the
// rule may not match at all, PCRE2's first-byte and required-byte searches
// (memchr and the like) rule it out far faster than this byte loop
// (SpamAssassin's rawbody __SPAN_BEG_TEXT /[a-z]{2}<(?i:span)\s/ on 500
// messages: 0.2 ms in PCRE2, ~10 ms here).  Made on first use (a
// LazyFixedCounter per rule), for rules that ask for a count
// (Rule::max_hits > 1) only: reading a rule costs ~50 us (PCRE2 compiles it
// first), ~2.5 ms for SpamAssassin's 50 counted rules, which a cache load
// should not pay before its first scan.
//
// Thread safety: immutable after make(); count() may run concurrently.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "regexd/engine/rule.h"

namespace regexd::engine::detail {

class FixedCounter {
 public:
  // Limits of the expansion: beyond them the rule is left to PCRE2.
  static constexpr std::size_t kMaxAlternatives = 256;
  static constexpr std::size_t kMaxLength = 64;

  // Null when `rule` is not such a rule (see above).
  static std::unique_ptr<const FixedCounter> make(const Rule& rule);

  // Non-overlapping matches in `data`, counted as PCRE2's count loop does,
  // stopping at `cap` (cap >= 1).  Never fails: no limits apply.
  unsigned count(std::string_view data, unsigned cap) const;

 private:
  struct Alternative {
    std::uint32_t rest;  // its bytes after the first: rest_[rest .. rest + length - 1)
    std::uint32_t length;
  };
  std::vector<Alternative> alternatives_;
  std::vector<std::bitset<256>> rest_;
  // by_first_[first_[b] .. first_[b + 1]): the alternatives that can start
  // with byte b, in PCRE2's order.
  std::array<std::uint32_t, 257> first_{};
  std::vector<std::uint32_t> by_first_;
  std::array<std::uint8_t, 256> lead_{};  // 1: some alternative starts with the byte
  int only_lead_ = -1;                    // the one such byte, if there is one (memchr finds it)
};

// A rule's FixedCounter, made on the first get().
class LazyFixedCounter {
 public:
  // Thread-safe; the first call makes it (other callers wait).  Null when
  // the rule has none.
  const FixedCounter* get(const Rule& rule) const;

 private:
  mutable std::once_flag once_;
  mutable std::unique_ptr<const FixedCounter> counter_;
};

}  // namespace regexd::engine::detail
