// regexd::engine message-level scan: one message's buffers (every class of
// it) scanned with a Scanner, then what only a whole message can answer:
// hit counts summed over buffers and capped per rule, negated header tests,
// absent headers (SpamAssassin's [if-unset: VALUE]), and meta rules over all
// of it.  regexctl, the daemon and any embedding get the same answer here.
//
// A MessagePlan is built from the same RuleSet as the Scanner, but it is not
// part of the compiled databases or the cache entry: metas and header
// defaults change no compiled byte, so editing a meta never recompiles.
//
// Thread safety: scan() may be called from any number of threads at once
// (it uses the Scanner's per-thread state).  A MessagePlan is immutable once
// built, apart from its header tests' absent-header answers, which the
// first whole-message scan computes behind a std::once_flag.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "regexd/engine/engine.h"
#include "regexd/engine/meta.h"
#include "regexd/engine/result.h"
#include "regexd/engine/rule.h"

namespace regexd::engine {

struct MessageBuffer {
  std::string_view cls;
  std::string_view data;
};

struct MessageScanOptions {
  // Cap on a rule's summed hit count when the rule has no max_hits of its own.
  unsigned max_hits = 100;
  // The buffers are one whole message.  Then a header class with no buffer
  // is an absent header: its SpamAssassin header tests match their
  // [if-unset: VALUE] (or the empty string, as SpamAssassin's undef does),
  // negated tests (!~) hit unless that value matches, and exists: tests do
  // not hit.  Without it, classes without a buffer are simply not scanned.
  bool whole_message = false;
  // When it has one element per buffer: each buffer's scan time in
  // nanoseconds is written there (the daemon's per-class metrics).  Empty:
  // nothing is timed.
  std::span<std::uint64_t> buffer_ns;
  // ScanOptions::measure_engines for every buffer; the result's `time` is
  // their sum (meta evaluation is not counted in it).
  bool measure_engines = false;
};

class MessagePlan {
 public:
  // Builds the plan of `rules` (compiles its metas).  Every SpamAssassin
  // header test is matched against its absent-header value once, with
  // PCRE2, the reference, by the first whole-message scan: that is ~6 ms for
  // SpamAssassin's 684 header tests, which a daemon's start need not wait
  // for.  Metas that cannot be used are reported in *errors (may be null)
  // and never hit.
  static std::shared_ptr<const MessagePlan> build(const RuleSet& rules, std::vector<RuleError>* errors);

  // Scans every buffer with the rules of its class and returns, per rule and
  // meta that hit, its value: rule hits summed over the buffers and capped
  // at the rule's max_hits (or options.max_hits); a negated header test 1;
  // a meta its value rounded down, at least 1.  Sorted by id.  Errors: those
  // of Scanner::scan (an unknown class is kUnknownClass).
  Result<ScanResult> scan(const Scanner& scanner, std::span<const MessageBuffer> buffers,
                          const MessageScanOptions& options = {}) const;

  std::size_t meta_count() const { return metas_.size(); }
  // Metas that read tests regexd cannot run (RuleSet::unsupported), with
  // those tests: they see 0 there, as SpamAssassin with those tests off.
  const std::vector<std::pair<std::string, std::vector<std::string>>>& metas_with_unsupported() const {
    return metas_with_unsupported_;
  }

 private:
  struct RuleInfo {
    std::string cls;
    unsigned max_hits = 0;
    bool negate = false;
  };
  std::unordered_map<std::string, RuleInfo> rules_;
  std::vector<std::string> negated_;  // rule ids with negate
  // The header tests' answers when their header is absent.
  struct Absent {
    // Class -> the (not negated) tests that hit when the header is absent.
    std::map<std::string, std::vector<std::string>> hits;
    // Negated tests whose pattern matches their absent-header value.
    std::unordered_set<std::string> negated_match;
  };
  const Absent& absent() const;  // computes them on first use
  mutable std::vector<Rule> header_tests_;  // SpamAssassin header tests, until absent() has read them
  mutable std::once_flag absent_once_;
  mutable Absent absent_;
  MetaProgram metas_;
  std::vector<std::pair<std::string, std::vector<std::string>>> metas_with_unsupported_;
};

}  // namespace regexd::engine
