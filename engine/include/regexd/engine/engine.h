// regexd::engine: compile a RuleSet into one Hyperscan/Vectorscan database per
// class and scan buffers with answers equal to PCRE2's.
//
// Tiers.  Every rule that PCRE2 accepts lands in exactly one tier:
//   native    - in the class's Hyperscan database; a Hyperscan match is final.
//   prefilter - in the database with HS_FLAG_PREFILTER; a Hyperscan match is
//               a candidate, confirmed by PCRE2 on the whole buffer.
//   pcre2     - PCRE2 (JIT) alone, run on every buffer of its class.
// Rules that PCRE2 rejects are not compiled; they are listed in the report.
//
// Correctness contract: for every rule and buffer, Scanner reports the rule as
// matched exactly when pcre2_match() of the rule's pattern and flags matches
// the buffer.  A rule whose PCRE2 run hits the match or depth limit is
// reported in ScanResult::limited, never silently dropped.
//
// Hit counts: ScanResult::hits[id] is the number of non-overlapping PCRE2
// matches (the loop Perl's //g makes), capped at the rule's max_hits or
// ScanOptions::max_hits.  A cap of 1 costs nothing beyond the match itself.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "regexd/engine/result.h"
#include "regexd/engine/rule.h"

namespace regexd::engine {

namespace detail {
class LazyFixedCounter;  // engine/src/fixed_counter.h
}  // namespace detail

// How a rule is answered (docs/rules.md, "Tiers" and "Planner"):
//  kNative       Hyperscan's report is the answer (PCRE2 only counts hits);
//  kPrefilter    Hyperscan runs an approximation, PCRE2 confirms;
//  kPcre2        PCRE2 alone, on every buffer of the class;
//  kRe2          an exact RE2 translation in one of the class's RE2::Sets
//                answers (PCRE2 only counts hits);
//  kRe2Prefilter a superset RE2 translation in an RE2::Set, PCRE2 confirms.
enum class Tier : std::uint8_t { kNative = 0, kPrefilter = 1, kPcre2 = 2, kRe2 = 3, kRe2Prefilter = 4 };
inline constexpr std::uint8_t kMaxTier = 4;
inline bool is_re2_tier(Tier t) { return t == Tier::kRe2 || t == Tier::kRe2Prefilter; }
inline bool is_hs_tier(Tier t) { return t == Tier::kNative || t == Tier::kPrefilter; }
std::string_view tier_name(Tier tier);

// Facts about the Hyperscan-compatible library this process runs with.
struct EngineInfo {
  std::string flavor;           // "hyperscan" or "vectorscan" (build-time choice)
  std::string runtime_version;  // hs_version() of the library actually loaded
  std::string arch;             // "x86_64", "aarch64", ...
  std::string pcre2_version;
  // The malloc this process runs with, found at run time (so a preload
  // counts too): "jemalloc <version>" when jemalloc's mallctl() is in the
  // process, else "glibc <version>".  The regexd and regexctl programs link
  // jemalloc; cmake/RegexdAllocator.cmake says why.
  std::string allocator;
  // The library's scan code this process calls: "hs_scan" (its own choice
  // for this CPU) or, when that code gave answers other than PCRE2's on
  // regexd's check at start, the narrower copy that did not (e.g. "corei7"
  // for Vectorscan 5.4.9's avx512 code; docs/rules.md, "Scan code").
  std::string scan_code;
  // Empty, or one line on what the library's own choice got wrong.
  std::string scan_code_note;
};
const EngineInfo& engine_info();

// A CPU platform Hyperscan compiles for (hs_platform_info_t: tune family and
// HS_CPU_FEATURES_* bits).  {0, 0} is the generic platform
// (HS_TUNE_FAMILY_GENERIC, no optional features), which every CPU of the
// architecture runs.
struct PlatformInfo {
  std::uint32_t tune = 0;
  std::uint64_t cpu_features = 0;
  // A short human form, e.g. "tune=6 features=avx2".
  std::string describe() const;
  bool operator==(const PlatformInfo&) const = default;
};

struct CompileOptions {
  // Threads for compiling class databases; 0 = std::thread::hardware_concurrency().
  unsigned threads = 0;
  // The platform the Hyperscan databases are compiled for; unset = this CPU
  // (hs_populate_platform).  regexd::cache sets the generic platform when it
  // writes entries for another machine (docs/cache-format.md, "Target
  // entries").  Not a cache-key input by itself: the key has the platform
  // tags, which the cache sets to the same values.
  std::optional<PlatformInfo> platform;
  // Wall-clock bound for classifying one pattern.  The probe runs in a forked
  // child, so a pattern that makes Hyperscan's analysis explode is killed
  // after this and lands in the pcre2 tier.  (Rspamd's own probe allows 1 s.)
  std::chrono::milliseconds probe_timeout{1000};
  // PCRE2 limits applied when scanning (pcre2_set_match_limit / depth_limit;
  // the heap limit is kPcre2HeapLimitKiB, below).
  std::uint32_t pcre2_match_limit = 1'000'000;
  std::uint32_t pcre2_depth_limit = 10'000;
  // Put every rule in the pcre2 tier: no probe, no Hyperscan compile, so a
  // set of thousands of rules builds in milliseconds.  Answers are the same
  // (PCRE2 is the reference), scans are slower.  The daemon serves with such
  // a build while the real one compiles, as Rspamd falls back to PCRE until
  // its Hyperscan databases are ready.
  bool pcre2_only = false;
  // Measure every prefilter-tier pattern alone (Hyperscan prefilter vs PCRE2
  // on the calibration text: the built-in 64 KiB, or `calibration`) and let PCRE2 alone answer for those
  // where Hyperscan is >= 3x slower and under 256 MB/s.  Answers are the same
  // either way; this trades ~0.1-0.4 s of compile per prefilter pattern for
  // scan speed (SpamAssassin: nine FUZZY_* rules, body scans ~40% faster).
  // Off = tiers decided by the pattern text alone.  Part of the cache key.
  bool cost_check = true;
  // The planner (docs/rules.md, "Planner"): measure every rule that has an
  // RE2 translation (engine/src/re2_translate.h) against its Hyperscan or
  // PCRE2 cost on the calibration text and move it to a partitioned
  // RE2::Set where that is cheaper.  Needs cost_check; part of the cache key.
  bool re2_tier = true;
  // Split classes (docs/rules.md, "Split classes"; engine/src/split.h): a
  // class whose byte-mode Hyperscan rules took at least this long to compile
  // alone, summed (ms, measured with the cost check), is compiled as up to
  // `threads` databases at once, each scanned.  Hyperscan's compile time
  // grows faster than its rule count, so a split saves work as well as wall
  // time; but every part is one more pass of Hyperscan over the buffer.
  // 5000: SpamAssassin's body as the planner leaves it (320-390 Hyperscan
  // rules, ~2000 ms by this sum, 2.4-3.0 s to compile as one database)
  // scanned 500 corpus messages in 33-35 ms of Hyperscan unsplit and 36-47
  // split, in halves that depend on timing noise (docs/benchmarks.md,
  // 2026-12-03); at 2000 it was split in some compiles and not others.  The
  // body of before the planner (533 rules, 5,000-7,000 ms, 29 s as one
  // database) is still split.  Negative: never split.  Only compile and
  // scan speed depend on it, never an answer, so it is not part of the
  // cache key.
  double split_min_ms = 5000;
  // The text every measurement above runs on (docs/rules.md, "Planner"):
  // null or empty = the built-in mail-like text; else an operator's own
  // sample, e.g. from load_calibration_dir() (regexd/engine/calibration.h).
  // Shared and immutable: copies of the options share one text, and a
  // compile only reads it (no copy is kept after compile() returns).  It
  // decides which engine answers each rule, so compile and scan speed;
  // never an answer (every engine gives PCRE2's).  Part of the cache key
  // when it differs from the built-in text (a default key stays the same).
  std::shared_ptr<const std::string> calibration;
};

// PCRE2's interpreter (rules with the O flag, or where JIT is unavailable)
// keeps its backtracking frames on the heap, each frame as large as the
// pattern's capture vector, and each thread's matcher keeps that memory for
// its next match: a pattern with thousands of groups reached ~470 MB per
// thread at the depth limit.  Every matcher sets this heap limit (KiB), far
// above what the depth limit lets a pattern with a few dozen groups use; a
// match that reaches it is "limited" (answer unknown), like the other limits.
inline constexpr std::uint32_t kPcre2HeapLimitKiB = 16 * 1024;

// Bounds on one rule, for rules a daemon accepts from clients (LOAD_RULES)
// rather than from its own configuration: the pattern's length and its
// number of capture groups (what PCRE2's frame size grows with).
struct PatternLimits {
  std::size_t max_bytes = 32 * 1024;
  std::uint32_t max_captures = 64;
};
// Empty when `rule` is within `limits`, else why not (one line).  A pattern
// PCRE2 cannot compile passes: the compile rejects it with its own reason.
std::string exceeds_pattern_limits(const Rule& rule, const PatternLimits& limits);

// What the planner measured for one rule on the calibration text and chose.
// Costs are nanoseconds for one pass over the text; negative = not measured.
struct PlanCost {
  float hs_ns = -1;     // the rule alone in Hyperscan (native or prefilter)
  float re2_ns = -1;    // its RE2 translation alone
  float pcre2_ns = -1;  // PCRE2 alone, first match
};
struct RulePlan {
  std::string id, cls;
  Tier tier = Tier::kPcre2;
  PlanCost cost;
  std::string why;  // one line: why this engine
};

struct ClassReport {
  std::string cls;
  std::size_t native = 0, prefilter = 0, pcre2 = 0;
  std::size_t re2 = 0, re2_prefilter = 0;  // rules in the class's RE2::Sets
  std::size_t re2_sets = 0;                // partitions
  // Hyperscan compile time of the class's databases, summed (a split class's
  // parts compile at the same time on several threads: its wall time is
  // about the longest part).
  double compile_ms = 0;
  std::size_t database_bytes = 0;  // sum of hs_database_size() of the class's databases
  std::size_t byte_parts = 0;      // byte-mode Hyperscan databases: 0, 1, or K for a split class (split.h)
};

struct CompileReport {
  std::vector<ClassReport> classes;  // sorted by class name
  std::vector<RuleError> rejected;   // parse errors + rules PCRE2 or Hyperscan refused
  std::map<std::string, std::size_t> skipped;
  // Rules demoted from a higher tier, with the reason (id -> reason).
  std::vector<std::pair<std::string, std::string>> demoted;
  // The planner's choice for every compiled rule, in rule order.
  std::vector<RulePlan> plan;
  double classify_ms = 0;
  double total_ms = 0;
  std::size_t rules_total = 0;  // rules compiled into some tier
};

struct ScanOptions {
  // Default cap on hit counts (rules with their own max_hits use theirs).
  unsigned max_hits = 100;
  // False: every hit count is 1, a rule's own max_hits included: only
  // "matched or not" is wanted.  That is the cheapest scan: a Hyperscan
  // native match is final, a prefilter's confirmation looks near Hyperscan's
  // reported ends only, and nothing counts matches past the first (a
  // SpamAssassin `tflags multiple` rule counted to its maxhits costs a PCRE2
  // or byte-loop pass of its own).  MessagePlan::scan always counts (metas
  // read the counts).
  bool count_hits = true;
  // Fill ScanResult::time: where this scan spent its time, per engine.
  // Costs two clock reads per Hyperscan pass, per RE2 set and per PCRE2 run,
  // so it is off by default; the benchmarks turn it on for one untimed pass.
  bool measure_engines = false;
};

// Wall time one scan spent in each engine (ScanOptions::measure_engines),
// in nanoseconds.  `pcre2` covers every PCRE2 run: rules PCRE2 answers alone,
// confirmations of prefilter hits, hit counting, and fallbacks, and the
// JIT compile of a rule's program where this scan is its first use; building
// an RE2 set on its first use is in none of them.
struct EngineTimes {
  std::uint64_t hyperscan = 0;
  std::uint64_t re2 = 0;
  std::uint64_t pcre2 = 0;

  // Sums of several scans (a message's buffers, a pass over many messages).
  EngineTimes& operator+=(const EngineTimes& o) {
    hyperscan += o.hyperscan;
    re2 += o.re2;
    pcre2 += o.pcre2;
    return *this;
  }
};

struct ScanResult {
  // (rule id, hits), sorted by rule id.
  std::vector<std::pair<std::string, unsigned>> hits;
  // Rules whose PCRE2 run stopped on a resource limit (answer unknown).
  std::vector<std::string> limited;
  // RE2::Sets that ran out of DFA memory on this buffer; their rules were
  // answered by PCRE2 instead (same answers, slower).
  unsigned re2_fallbacks = 0;
  // Zero unless ScanOptions::measure_engines.
  EngineTimes time;
};

struct CompiledSet;  // see regexd/engine/compiled_set.h

// A compiled rule set, immutable once built.
//
// Thread safety: a Scanner is safe to use from any number of threads at once.
// Each thread gets its own Hyperscan scratch and PCRE2 match state (allocated
// on the thread's first scan and kept in thread-local storage), so the scan
// path takes no locks.  A scratch allocation failure is reported by that
// scan as kResourceLimit.
class Scanner {
 public:
  // Compiles `rules`.  Fails only when nothing usable could be built at all
  // (e.g. Hyperscan failed to allocate); individual bad rules are reported
  // in `report` and the rest still compile.
  static Result<std::shared_ptr<const Scanner>> compile(const RuleSet& rules,
                                                        const CompileOptions& options,
                                                        CompileReport* report);

  // Rebuilds a scanner from parts produced by serialize_parts() (the cache
  // layer's job; see regexd/engine/serialize.h).
  static Result<std::shared_ptr<const Scanner>> from_compiled(std::unique_ptr<CompiledSet> set);

  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // Scans `data` with the rules of class `cls`.  An unknown class is an error
  // (kUnknownClass); a class with rules that all failed is an empty result.
  Result<ScanResult> scan(std::string_view cls, std::string_view data,
                          const ScanOptions& options = {}) const;

  // Builds now what scans otherwise build on first use: every class's
  // RE2::Sets and the PCRE2 programs (JIT) of every rule Hyperscan does not
  // answer alone.  Meant for a thread of its own right after a load (the
  // daemon does this, through warm_up_async): while it runs, a scan builds
  // nothing slow itself.  It answers the rules of an RE2::Set that is not
  // built yet with PCRE2, and any PCRE2 program whose JIT is not ready with
  // the interpreter, compiled without JIT (the same answers; see LazyPcre2 in
  // compiled_set.h).  SpamAssassin's rules: the body class's 20 sets take
  // ~90 ms to build and the JIT of the 333 non-native rules ~80 ms; a first
  // body scan waiting for them took 70-110 ms, beside a warm-up ~10 ms.
  // Thread-safe; returns early when `stop` is requested; a second call finds
  // everything built.
  void warm_up(std::stop_token stop = {}) const;
  // warm_up() on a thread of its own.  The scanner counts as warming from
  // this call on, so a scan that starts as soon as it returns (a daemon
  // publishes the scanner right after) already takes the quick path.
  // `on_start` runs first on that thread (a daemon lowers its priority
  // there, so that first scans are not slowed by it), `on_end` when the
  // warm-up ends.  Destroying the returned thread requests a stop and joins it.
  static std::jthread warm_up_async(std::shared_ptr<const Scanner> scanner, std::function<void()> on_start = {},
                                    std::function<void()> on_end = {});

  // Compiles now, without JIT, the PCRE2 programs that scans use while a
  // warm-up has not built the RE2::Sets yet: those of the rules in RE2::Sets
  // (LazyPcre2::get_quick), on up to `threads` threads (the caller's
  // included).  For time to spare before the scanner's first scan: the
  // cache's prefetch (cache::Store::prefetch) calls it, which takes ~7 ms of
  // CPU off a daemon's first SpamAssassin scan.  Thread-safe; programs
  // already built, or adopted from a cache entry (pcre2_programs.h), are not
  // built again, so on an entry that carries them this costs nothing.
  void prepare_quick(unsigned threads = 1) const;

  // Classes with at least one compiled rule, sorted.
  std::vector<std::string> classes() const;
  std::size_t rule_count() const;
  // The tier each compiled rule landed in, in rule order.
  std::vector<std::pair<std::string, Tier>> tiers() const;
  const CompiledSet& compiled() const { return *set_; }

 private:
  explicit Scanner(std::unique_ptr<CompiledSet> set);
  std::unique_ptr<CompiledSet> set_;
  std::uint64_t uid_;  // identifies this scanner's thread-local scratch
  // Expires with the scanner: each thread drops its state for a scanner
  // that is gone on its next scan (scanner.cpp, ThreadState).
  std::shared_ptr<const int> alive_ = std::make_shared<const int>(0);
  // Per rule: counts its hits without PCRE2 where that is exact
  // (fixed_counter.h); made on first use, for counted rules only.
  std::unique_ptr<detail::LazyFixedCounter[]> counters_;
  void warm(std::stop_token stop) const;   // warm_up()'s work; the caller counts it in warming_
  mutable std::atomic<int> warming_{0};  // warm-ups started and not ended
};

}  // namespace regexd::engine
