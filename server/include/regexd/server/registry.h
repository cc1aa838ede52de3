// regexd::server::Registry: the named rule sets a daemon serves, each with an
// immutable current version that is swapped atomically.
//
// Loading a version never blocks scans: it is installed from the cache when
// the cache has it (milliseconds), otherwise as a PCRE2-only build
// (milliseconds, same answers) while the Hyperscan build runs on a background
// thread and then replaces it under the same version number.  Scans hold a
// shared_ptr to the version they started with, so requests in flight finish
// on it and its memory is released when the last one ends.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "regexd/cache/store.h"
#include "regexd/engine/engine.h"
#include "regexd/engine/message.h"
#include "regexd/engine/rule.h"

namespace regexd::server {

// Latency percentiles without locks: buckets of 1/8 of a power of two in
// microseconds (12.5% resolution), 0.125 us to about 9 minutes.  The same
// buckets feed STATS (percentiles) and /metrics (cumulative counts at
// power-of-two edges, which are bucket edges, so those counts are exact).
class LatencyHistogram {
 public:
  void record(double us);
  double percentile(double q) const;  // q in [0, 1]; 0 when empty
  // Recorded values below each of `edges_us` (ascending), then the count of
  // all values as the last element (one pass, so the counts agree).
  std::vector<std::uint64_t> cumulative(const std::vector<double>& edges_us) const;
  double sum_seconds() const { return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9; }

 private:
  static constexpr int kSub = 8, kOctaves = 32;
  std::array<std::atomic<std::uint64_t>, kSub * kOctaves + 1> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// What one class of a rule set scanned (SCAN buffers of that class).
struct ClassStats {
  std::atomic<std::uint64_t> buffers{0}, bytes{0};
  LatencyHistogram latency;  // engine time of each buffer
};

// The counters of one rule-set name, from its first load until it is
// removed: every version of the name (PCRE2 and Hyperscan builds, reloads)
// adds to the same object, so counters only grow (docs/daemon.md, Metrics).
struct RuleSetStats {
  std::atomic<std::uint64_t> scans{0}, bytes{0}, loads{0};
  // Cache lookups at load: a hit, else a miss; of the misses, `corrupt`
  // entries (failed a check, moved aside) and `refused` ones (well-formed but
  // made for another platform or version, or unreadable).
  std::atomic<std::uint64_t> cache_hits{0}, cache_misses{0}, cache_corrupt{0}, cache_refused{0};
  // Rule answers a PCRE2 resource limit (match, depth or heap) stopped, and
  // the SCAN requests that had at least one.
  std::atomic<std::uint64_t> limited_rules{0}, limited_scans{0};
  // RE2::Sets that gave up (DFA out of memory) on a buffer; PCRE2 answered.
  std::atomic<std::uint64_t> re2_fallbacks{0};
  LatencyHistogram latency;  // whole SCAN requests, decode to reply

  // The stats of `cls`, created on first use; the pointer lives as long as
  // this object.  Takes a lock: call it when a version is built, not per scan.
  ClassStats* for_class(std::string_view cls);
  // (class, stats) sorted by class, under the lock.
  std::vector<std::pair<std::string, const ClassStats*>> classes() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<ClassStats>, std::less<>> classes_;
};

struct RuleSetVersion {
  std::string name;
  std::uint32_t number = 0;
  std::shared_ptr<const engine::Scanner> scanner;
  // Metas, negated header tests and absent-header values of this version's
  // rules (never null); scans go through plan->scan(*scanner, ...).
  std::shared_ptr<const engine::MessagePlan> plan;
  std::string state;   // "hyperscan" or "pcre2" (while Hyperscan compiles, or if it failed)
  std::string source;  // "cache", "compiled" or "pcre2"
  std::string origin;  // who installed it: "config" (start-up, SIGHUP, file change) or "load_rules"
  double build_ms = 0; // Hyperscan compile or cache load (0 while pending)
  std::size_t native = 0, prefilter = 0, pcre2 = 0, re2 = 0, re2_prefilter = 0;
  std::vector<std::string> classes;
  std::shared_ptr<RuleSetStats> stats;  // shared by every version of this name
  // (class, its stats in `stats`), sorted by class: a scan finds a buffer's
  // counters without a lock.
  std::vector<std::pair<std::string, ClassStats*>> class_stats;
};

struct LoadOutcome {
  std::shared_ptr<const RuleSetVersion> version;
  std::vector<engine::RuleError> rejected;  // parse + compile rejections
};

class Registry {
 public:
  struct Options {
    cache::Store* store = nullptr;  // optional; not owned
    engine::CompileOptions compile;
    // Background builds of rule sets pushed with LOAD_RULES (origin
    // "load_rules") that may be queued or running at once; a push over it is
    // refused (kResourceLimit).  Configured sets always queue: the
    // configuration bounds them.  compile.max_queue in the daemon.
    std::size_t max_queue = 16;
    // Longest background build; it runs in a child process (compile_child.h)
    // that is killed after this, and PCRE2 keeps answering for that version.
    std::chrono::milliseconds compile_timeout = std::chrono::minutes(15);
    // Nice value of that child (compile.nice in the daemon): on a busy
    // machine the build gets the CPU time scans leave.  0: the daemon's.
    int compile_nice = 0;
    // Nice value of the thread that warms a newly loaded version up
    // (Scanner::warm_up): scans meanwhile answer through quick paths and
    // should get the CPU first.  server.heavy_nice in the daemon.
    int warm_up_nice = 10;
    // false: the build runs on the registry's own thread instead, with no
    // compile_timeout (hs_compile_multi cannot be interrupted), a crash of
    // the compiler taking the process down, and the destructor waiting for
    // a build in progress instead of killing it.  Only for hosts where fork of a
    // threaded process is unreliable: qemu-user (7.2 trips an assertion in the
    // child, or deadlocks it) runs the arm64 tests that way.
    bool isolate_compile = true;
  };
  explicit Registry(Options options);
  ~Registry();  // drops queued compiles, kills the running one (waits for it without isolate_compile)
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Installs a new version of `name` (creating it if needed) and returns once
  // that version answers scans.  `origin` is reported by LIST_RULESETS/STATS
  // ("config" or "load_rules").  Errors: kInvalidArgument when no rule of
  // `rules` can be compiled (the current version stays).
  // kResourceLimit when a "load_rules" load would need a background build
  // and max_queue builds already wait (nothing changes).
  Result<LoadOutcome> load(const std::string& name, engine::RuleSet rules, std::string origin = "config");
  // Removes `name`; scans in flight finish on their version.
  bool remove(const std::string& name);

  std::shared_ptr<const RuleSetVersion> find(std::string_view name) const;
  std::vector<std::shared_ptr<const RuleSetVersion>> all() const;  // sorted by name

  // Blocks until no background compile is queued or running.
  void wait_idle();

  // The cache this registry loads through (null without one): STATS reports
  // its remote tier.
  cache::Store* store() const { return options_.store; }

 private:
  struct Job {
    std::string name;
    std::uint32_t number;
    engine::RuleSet rules;
    std::string origin;
  };
  void worker();
  void run_job(Job& job);
  // Replaces the current version when it still has `number`.
  void swap_if_current(const std::string& name, std::uint32_t number, std::shared_ptr<const RuleSetVersion> v);
  // Builds `scanner`'s lazily built parts on a thread of their own
  // (Scanner::warm_up), so the first SCANs after a load do not wait for them.
  void start_warm_up(std::shared_ptr<const engine::Scanner> scanner);

  Options options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const RuleSetVersion>, std::less<>> current_;
  std::map<std::string, std::uint32_t> next_number_;
  std::map<std::string, std::shared_ptr<RuleSetStats>> stats_;  // per name, until remove()
  std::deque<Job> jobs_;
  bool busy_ = false, stop_ = false;
  pid_t child_ = -1;  // the running build's process, under mu_
  bool running_pushed_ = false;  // the running build is of a "load_rules" set
  std::condition_variable cv_, idle_cv_;
  std::thread thread_;
  // Warm-up threads (under mu_); finished ones are dropped when the next
  // starts, the rest are stopped and joined with the registry.  At most
  // kMaxWarmUps run at once.
  static constexpr std::size_t kMaxWarmUps = 2;
  struct Warmer {
    std::shared_ptr<std::atomic<bool>> done;
    std::jthread thread;
  };
  std::vector<Warmer> warmers_;
};

}  // namespace regexd::server
