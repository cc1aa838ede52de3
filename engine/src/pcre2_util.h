// Internal PCRE2 helpers shared by compile and scan.  PCRE2 is the reference
// semantics of regexd: every tier must agree with what these functions say.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "regexd/engine/compiled_set.h"
#include "regexd/engine/rule.h"

namespace regexd::engine::detail {

// PCRE2 compile options for a rule's flags.  u means UTF-8 with Unicode
// properties (as Hyperscan's HS_FLAG_UTF8|HS_FLAG_UCP) and tolerates invalid
// UTF-8 subjects (PCRE2_MATCH_INVALID_UTF) so that mail with broken encoding
// is scanned, not refused.
std::uint32_t pcre2_options_for(std::uint32_t flags);

// Compiles a rule with PCRE2 (newline fixed to LF so '.' and '$' behave as in
// Hyperscan), with `extra_options` besides the rule's own.  On failure
// returns null and sets *error to PCRE2's message with the offset.
Pcre2CodePtr pcre2_compile_rule(const Rule& rule, std::string* error, std::uint32_t extra_options = 0);

// PCRE2's text for an error code (pcre2_get_error_message).
std::string pcre2_error_text(int code);

// The extra options of a rule's scan-time program (LazyPcre2): a windowed
// confirmation (confirm_window.h) needs PCRE2_USE_OFFSET_LIMIT.
inline std::uint32_t pcre2_extra_options(const CompiledRule& rule) {
  return rule.confirm_max ? PCRE2_USE_OFFSET_LIMIT : 0;
}

struct MatchDataDeleter { void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); } };
struct MatchContextDeleter { void operator()(pcre2_match_context* m) const { pcre2_match_context_free(m); } };
struct JitStackDeleter { void operator()(pcre2_jit_stack* s) const { pcre2_jit_stack_free(s); } };

// Per-thread PCRE2 state: match data, a match context with limits, a JIT stack.
class Pcre2Matcher {
 public:
  Pcre2Matcher(std::uint32_t match_limit, std::uint32_t depth_limit);
  // Counts non-overlapping matches of `code` in `data`, stopping at `cap`
  // (Perl's //g loop: an empty match is retried as non-empty at the same
  // place, then the start moves one character).  Returns the count, or -1 if
  // PCRE2 stopped on a limit or error before the answer was known.
  long count(const pcre2_code* code, std::string_view data, unsigned cap, bool utf);
  // Whether `code` (compiled with PCRE2_USE_OFFSET_LIMIT) matches `data`
  // starting at an offset in [start, limit]: 1, 0, or -1 if PCRE2 stopped on
  // a limit or error.  Byte-mode rules only (start need not be at a
  // character boundary).
  long first_in(const pcre2_code* code, std::string_view data, std::size_t start, std::size_t limit);

 private:
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md_;
  std::unique_ptr<pcre2_match_context, MatchContextDeleter> mctx_;
  std::unique_ptr<pcre2_jit_stack, JitStackDeleter> jit_stack_;
};

}  // namespace regexd::engine::detail
