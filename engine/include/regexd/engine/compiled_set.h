// The compiled form of a rule set: what the scanner runs and what the cache
// layer serializes.  Exposed (rather than hidden in engine/src) because
// regexd::cache writes and reads it; other code should treat it as opaque and
// go through Scanner.
//
// Ownership: a CompiledSet owns its Hyperscan databases and PCRE2 programs
// through the RAII handles below; it is immutable once handed to a Scanner,
// apart from PCRE2 programs, which are compiled lazily on first use behind a
// std::once_flag (safe from any thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "regexd/engine/engine.h"

struct hs_database;
struct hs_scratch;
struct pcre2_real_code_8;

namespace regexd::engine {

// A database is either allocated by Hyperscan (owned: freed with
// hs_free_database) or lives inside a read-only shared mapping of a cache
// image (not owned: the mapping is released with the CompiledSet).
struct HsDatabaseDeleter {
  bool owned = true;
  void operator()(hs_database* db) const;
};
struct HsScratchDeleter { void operator()(hs_scratch* s) const; };
struct Pcre2CodeDeleter { void operator()(pcre2_real_code_8* c) const; };
using HsDatabasePtr = std::unique_ptr<hs_database, HsDatabaseDeleter>;
using HsScratchPtr = std::unique_ptr<hs_scratch, HsScratchDeleter>;
using Pcre2CodePtr = std::unique_ptr<pcre2_real_code_8, Pcre2CodeDeleter>;

// A rule's PCRE2 program, compiled (and JIT-compiled unless the rule has the
// O flag) on first use.  Compilation cannot fail for a rule that reached a
// CompiledSet, because compile() rejects patterns PCRE2 refuses; a failure
// anyway (e.g. out of memory) leaves code null and the rule reported as limited.
//
// While a scanner warms up (Scanner::warm_up), scans call get_quick(): the
// JIT program if it is ready, else a second program compiled once without
// JIT.  JIT compilation is most of a program's build (SpamAssassin's 97 body
// rules that live in RE2::Sets: 7.5 ms to compile, 34 ms with JIT), and a
// scan that waits for it is a daemon's first answer waiting.  The
// interpreter gives the same answers (PCRE2 guarantees it; only a pattern
// that reaches the match limit, which JIT and interpreter count differently,
// can differ, and it is reported as limited either way).  A JIT program is
// never created while another thread may match with it: each program is
// built whole behind its own once_flag before any caller sees it.
class LazyPcre2 {
 public:
  // `extra_options`: PCRE2 compile options beyond the rule's flags
  // (PCRE2_USE_OFFSET_LIMIT for a windowed confirmation); the first call
  // decides, so every caller passes the same for a rule (the scanner's
  // pcre2_program() is the one that does).
  const pcre2_real_code_8* get(const Rule& rule, std::uint32_t extra_options = 0) const;
  const pcre2_real_code_8* get_quick(const Rule& rule, std::uint32_t extra_options = 0) const;

  // Gives the slot a program decoded from a cache entry (pcre2_programs.h),
  // compiled without JIT as get_quick() would: get_quick() returns it, and
  // get() JIT-compiles a copy instead of compiling the pattern (JIT never
  // touches a program another thread may be matching with).  Only before
  // the set is shared; a slot adopts at most once.
  void adopt(Pcre2CodePtr code) { adopted_ = std::move(code); }
  bool has_adopted() const { return adopted_ != nullptr; }

 private:
  mutable std::once_flag once_, quick_once_;
  mutable Pcre2CodePtr code_, quick_;
  Pcre2CodePtr adopted_;  // set before the set is shared, then read-only
  mutable std::atomic<bool> ready_{false};  // code_ is built
};

struct CompiledRule {
  Rule rule;
  Tier tier = Tier::kPcre2;
  std::uint32_t class_index = 0;
  PlanCost cost;         // what the planner measured (kept in cache entries)
  // RE2 tiers: the RE2 pattern the planner measured (re2_translate.h),
  // stored in cache entries so a load builds the RE2::Set without
  // re-translating (translation checks each candidate by compiling it in RE2,
  // most of a warm start's first scan).  Empty: translated on first use.
  std::string re2_pattern{};
  // Hyperscan tiers: the expression the class database was compiled from
  // when it is not hs_expression_for(rule), i.e. a prefilter's superset
  // rewrite (rewrite.h).  Only the compile reads it; not in cache entries.
  std::string hs_expression{};
  // Prefilter tier: every match of the rule consumes confirm_min to
  // confirm_max bytes (its superset's widths, engine/src/confirm_window.h),
  // so PCRE2 confirms a hit only near Hyperscan's reported ends; the class
  // database then reports every end of the rule (no HS_FLAG_SINGLEMATCH),
  // and its PCRE2 program allows an offset limit.  confirm_max 0: no
  // window, PCRE2 searches the whole buffer.  Kept in cache entries.
  std::uint32_t confirm_min = 0;
  std::uint32_t confirm_max = 0;
};

// One RE2::Set of a class: the RE2 translations (re2_translate.h) of
// `rules` (CompiledRule::re2_pattern, or translated from the rule's text),
// built on first use, so cache entries store only the partition and the
// patterns, never RE2's internal form.  A build that fails (RE2
// refuses a translation it accepted at compile time: a damaged entry, or out
// of memory) leaves the program null and the scanner answers those rules with
// PCRE2.
//
// The scanner runs the partitions of a class through its own lazy DFAs
// (engine/src/lockstep_dfa.h), all of them together over the buffer, and
// uses the RE2::Set only for a partition whose DFA gave up on a buffer or
// could not be built.
struct Re2Program;  // re2::RE2::Set, defined in re2_partition.cpp
struct Re2ProgramDeleter { void operator()(Re2Program* p) const; };
namespace detail {
class DfaProgram;  // engine/src/lockstep_dfa.h
struct DfaProgramDeleter { void operator()(const DfaProgram* p) const; };
}  // namespace detail
class Re2Partition {
 public:
  explicit Re2Partition(std::vector<std::uint32_t> rules) : rules_(std::move(rules)) {}
  const std::vector<std::uint32_t>& rules() const { return rules_; }
  // Thread-safe; builds on the first call (other callers wait for it).
  const Re2Program* get(const struct CompiledSet& set) const;
  // Thread-safe, never waits: whether get() has finished building (the
  // program may still be null if the build failed).
  bool built() const { return built_.load(std::memory_order_acquire); }
  // The same for the lockstep runner's program of the partition (null: the
  // translations use syntax it does not read; RE2::Set answers instead).
  const detail::DfaProgram* dfa(const struct CompiledSet& set) const;
  bool dfa_built() const { return dfa_built_.load(std::memory_order_acquire); }

 private:
  std::vector<std::uint32_t> rules_;  // indices into CompiledSet::rules
  mutable std::once_flag once_, dfa_once_;
  mutable std::atomic<bool> built_{false}, dfa_built_{false};
  mutable std::unique_ptr<Re2Program, Re2ProgramDeleter> program_;
  mutable std::unique_ptr<const detail::DfaProgram, detail::DfaProgramDeleter> dfa_;
};

// A further byte-mode database of a split class and the rules compiled
// into it.
struct HsPart {
  HsDatabasePtr db;  // never null in a CompiledSet handed to a Scanner (unless decoded without databases)
  std::vector<std::uint32_t> rules;
};

// One class: its Hyperscan databases.  Hyperscan ids are indices into
// CompiledSet::rules.  UTF-8 rules get their own database because Hyperscan's
// UTF-8 mode is undefined on invalid UTF-8: when a buffer is not valid UTF-8,
// those rules are answered by PCRE2 instead.  A class with many byte-mode
// rules may be split (engine/src/split.h): bytes_db holds the first part,
// bytes_more the others, and the scanner runs them all.
struct ClassDatabases {
  std::string cls;
  HsDatabasePtr bytes_db;            // may be null (no byte-mode hs rules)
  HsDatabasePtr utf8_db;             // may be null (no UTF-8 hs rules)
  std::vector<std::uint32_t> bytes_rules;  // rules compiled into bytes_db
  std::vector<std::uint32_t> utf8_rules;   // rules compiled into utf8_db
  std::vector<HsPart> bytes_more;          // a split class's other byte-mode parts (empty: not split)
  std::vector<std::uint32_t> pcre2_rules;  // pcre2 tier: run on every buffer
  // re2 / re2-prefilter tiers, one RE2::Set each (unique_ptr: once_flag does not move).
  std::vector<std::unique_ptr<Re2Partition>> re2_sets;
  double compile_ms = 0;
};

struct CompiledSet {
  // Keeps alive whatever memory non-owned databases point into (a shared
  // mapping).  Declared first so it is destroyed last.
  std::shared_ptr<const void> keepalive;
  std::vector<CompiledRule> rules;     // in RuleSet order (rejected rules omitted)
  std::vector<ClassDatabases> classes;  // sorted by cls
  std::unique_ptr<LazyPcre2[]> pcre2;  // one per rule
  std::uint32_t pcre2_match_limit = 1'000'000;
  std::uint32_t pcre2_depth_limit = 10'000;
  // The rules of the compiled RuleSet that compile() left out (a duplicate
  // id, a pattern PCRE2 refuses), by position in RuleSet::rules, with the
  // reason.  Kept in cache entries, so that a load names them without
  // compiling them again (SpamAssassin's set: 8 rules, ~5 ms of a warm
  // start).  nullopt: not known (an entry written before it was kept).
  struct Rejection {
    std::uint32_t index;
    std::string message;
  };
  std::optional<std::vector<Rejection>> rejected;

  // Allocates the per-rule PCRE2 slots; call after `rules` is final.
  void init_pcre2_slots() { pcre2 = std::make_unique<LazyPcre2[]>(rules.size()); }
};

// Hyperscan compile flags and the expression text for a rule (the x flag has
// no hs flag, so it becomes a (?x) prefix).  Exposed for the cache key.
unsigned hs_flags_for(const Rule& rule, Tier tier);
std::string hs_expression_for(const Rule& rule);
// The expression a compiled rule's class database is built from: its
// prefilter rewrite (CompiledRule::hs_expression) if it has one.
inline std::string hs_expression_of(const CompiledRule& rule) {
  return rule.hs_expression.empty() ? hs_expression_for(rule.rule) : rule.hs_expression;
}

}  // namespace regexd::engine
