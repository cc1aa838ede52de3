#include "regexd/server/registry.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <future>
#include <algorithm>
#include <cmath>
#include <tuple>
#include <unordered_set>

#include "compile_child.h"
#include "priority.h"

namespace regexd::server {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::shared_ptr<RuleSetVersion> make_version(const std::string& name, std::uint32_t number,
                                             std::shared_ptr<const engine::Scanner> scanner, std::string state,
                                             std::string source, std::string origin,
                                             std::shared_ptr<RuleSetStats> stats,
                                             std::shared_ptr<const engine::MessagePlan> plan) {
  auto v = std::make_shared<RuleSetVersion>();
  v->plan = std::move(plan);
  v->name = name;
  v->origin = std::move(origin);
  v->number = number;
  v->state = std::move(state);
  v->source = std::move(source);
  v->stats = std::move(stats);
  for (const auto& [id, tier] : scanner->tiers()) {
    (void)id;
    switch (tier) {
      case engine::Tier::kNative: ++v->native; break;
      case engine::Tier::kPrefilter: ++v->prefilter; break;
      case engine::Tier::kPcre2: ++v->pcre2; break;
      case engine::Tier::kRe2: ++v->re2; break;
      case engine::Tier::kRe2Prefilter: ++v->re2_prefilter; break;
    }
  }
  v->classes = scanner->classes();
  for (const auto& cls : v->classes) v->class_stats.emplace_back(cls, v->stats->for_class(cls));
  std::sort(v->class_stats.begin(), v->class_stats.end());
  v->scanner = std::move(scanner);
  return v;
}

// What a compile of `rules` would reject, for a cache hit `loaded` (entries
// hold only the rules that compiled).  Entries written since 2026-12-01 keep
// the compile's list; for older ones, only the rules missing from the entry
// are compiled again (PCRE2 only): SpamAssassin's set has a dozen of them, and
// compiling all ~1,500 rules for that was a third of a warm start.  A missing
// rule whose id the entry has is the later copy of a duplicate, which the
// full compile rejects as such; the rest get PCRE2's own error, and the list
// is in file order as the compile's.
std::vector<engine::RuleError> rejected_from_cache(const engine::RuleSet& rules, const engine::Scanner& loaded,
                                                   const engine::CompileOptions& options) {
  auto by_file_order = [](std::vector<engine::RuleError>& v) {
    std::stable_sort(v.begin(), v.end(), [](const engine::RuleError& a, const engine::RuleError& b) {
      return std::tie(a.source, a.line) < std::tie(b.source, b.line);
    });
  };
  // Entries keep the compile's own list (CompiledSet::rejected).  It is
  // used when it accounts for exactly the rules the entry lacks: as many
  // positions as rules are missing, distinct and in range (the key covers
  // the rules in order, so the positions are this rule set's).
  if (const auto& kept = loaded.compiled().rejected;
      kept && loaded.rule_count() + kept->size() == rules.rules.size()) {
    std::vector<engine::RuleError> out = rules.rejected;
    std::unordered_set<std::uint32_t> seen;
    bool ok = true;
    for (const auto& r : *kept) {
      if (r.index >= rules.rules.size() || !seen.insert(r.index).second) {
        ok = false;
        break;
      }
      const engine::Rule& rule = rules.rules[r.index];
      out.push_back({rule.source, rule.line, rule.id, r.message});
    }
    if (ok) {
      by_file_order(out);
      return out;
    }
  }
  std::unordered_set<std::string> have;
  for (const auto& [id, tier] : loaded.tiers()) have.insert(id);
  engine::RuleSet missing;
  missing.rejected = rules.rejected;
  std::vector<engine::RuleError> duplicates;
  for (const auto& r : rules.rules) {
    if (!have.count(r.id))
      missing.rules.push_back(r);
    else if (!have.insert(r.id + '\0').second)  // this id was seen before: a later copy
      duplicates.push_back({r.source, r.line, r.id, "duplicate rule id"});
  }
  engine::CompileOptions probe = options;
  probe.pcre2_only = true;
  engine::CompileReport report;
  if (!engine::Scanner::compile(missing, probe, &report)) return rules.rejected;
  std::vector<engine::RuleError> out = std::move(report.rejected);
  out.insert(out.end(), duplicates.begin(), duplicates.end());
  by_file_order(out);
  return out;
}

}  // namespace

void LatencyHistogram::record(double us) {
  int idx = 0;
  if (us >= 1.0 / kSub) {
    int octave = std::ilogb(us * kSub);  // >= 0
    double base = std::ldexp(1.0, octave);
    int sub = static_cast<int>((us * kSub - base) / base * kSub);
    idx = std::min(octave * kSub + std::clamp(sub, 0, kSub - 1) + 1, static_cast<int>(buckets_.size()) - 1);
  }
  buckets_[static_cast<std::size_t>(idx)].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::max(0.0, us) * 1000.0 + 0.5), std::memory_order_relaxed);
}

std::vector<std::uint64_t> LatencyHistogram::cumulative(const std::vector<double>& edges_us) const {
  std::vector<std::uint64_t> out(edges_us.size() + 1, 0);
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    std::uint64_t n = buckets_[i].load(std::memory_order_relaxed);
    if (n == 0) continue;
    // Bucket i holds values below `upper` (and at least the previous edge).
    double upper = 1.0 / kSub;
    if (i > 0) {
      int octave = static_cast<int>(i - 1) / kSub, sub = static_cast<int>(i - 1) % kSub;
      double base = std::ldexp(1.0, octave);
      upper = (base + base * (sub + 1) / kSub) / kSub;
    }
    if (i + 1 == buckets_.size()) upper = HUGE_VAL;  // the last bucket also takes everything above
    for (std::size_t e = 0; e < edges_us.size(); ++e)
      if (upper <= edges_us[e]) out[e] += n;
    out.back() += n;
  }
  return out;
}

ClassStats* RuleSetStats::for_class(std::string_view cls) {
  std::lock_guard lock(mu_);
  auto it = classes_.find(cls);
  if (it == classes_.end()) it = classes_.emplace(std::string(cls), std::make_unique<ClassStats>()).first;
  return it->second.get();
}

std::vector<std::pair<std::string, const ClassStats*>> RuleSetStats::classes() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, const ClassStats*>> out;
  for (const auto& [cls, st] : classes_) out.emplace_back(cls, st.get());
  return out;
}

double LatencyHistogram::percentile(double q) const {
  std::uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  rank = std::max<std::uint64_t>(rank, 1);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (seen >= rank) {
      if (i == 0) return 1.0 / kSub;
      int octave = static_cast<int>(i - 1) / kSub, sub = static_cast<int>(i - 1) % kSub;
      double base = std::ldexp(1.0, octave);
      return (base + base * (sub + 1) / kSub) / kSub;  // the bucket's upper edge
    }
  }
  return 0;
}

Registry::Registry(Options options) : options_(std::move(options)), thread_([this] { worker(); }) {}

Registry::~Registry() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    jobs_.clear();
    if (child_ > 0) ::kill(child_, SIGKILL);  // compile_in_child reaps it
  }
  cv_.notify_all();
  thread_.join();
}

Result<LoadOutcome> Registry::load(const std::string& name, engine::RuleSet rules, std::string origin) {
  LoadOutcome out;
  out.rejected = rules.rejected;
  std::uint32_t number = 0;
  std::shared_ptr<RuleSetStats> stats;
  {
    // One counter set per name, kept across versions (counters never go back).
    std::lock_guard lock(mu_);
    auto& slot = stats_[name];
    if (!slot) slot = std::make_shared<RuleSetStats>();
    stats = slot;
  }
  // Metas and header defaults: built once per version, shared by its PCRE2
  // and Hyperscan builds (they are not in the compiled databases).
  // Built on another thread while the cache is probed (SpamAssassin's set:
  // ~8 ms, a sixth of a warm start); plan_now() waits for it.
  std::vector<engine::RuleError> meta_errors;
  // (launch::deferred too: without a thread to spare it is built on first
  // use rather than throwing.)
  auto plan_future = std::async(std::launch::async | std::launch::deferred, [&rules, &meta_errors] {
    return engine::MessagePlan::build(rules, &meta_errors);
  });
  std::shared_ptr<const engine::MessagePlan> plan;
  auto plan_now = [&] {
    if (plan_future.valid()) plan = plan_future.get();
    return plan;
  };
  auto add_meta_errors = [&] {
    plan_now();  // meta_errors is complete
    out.rejected.insert(out.rejected.end(), meta_errors.begin(), meta_errors.end());
  };
  // 1. The cache may have the Hyperscan build already.
  if (options_.store) {
    auto t0 = std::chrono::steady_clock::now();
    auto key = options_.store->key_for(rules, options_.compile);
    bool read_ahead = false;  // the log line says so
    auto hit = options_.store->get(key, nullptr, nullptr, &read_ahead);
    if (hit) {
      if (std::string why = pcre2_limits_mismatch(**hit, options_.compile); !why.empty()) {
        spdlog::warn("rule set {}: cache entry {} not used: {}", name, key.hex(), why);
        hit = make_error(ErrorCode::kCorrupt, why);
      }
    }
    if (hit && (*hit)->rule_count() > 0) {
      stats->cache_hits++;
      auto v = make_version(name, 0, std::move(*hit), "hyperscan", "cache", origin, stats, plan_now());
      v->build_ms = ms_since(t0);
      // Counted as warming before it is published: its first scans must not
      // build RE2::Sets or JIT programs themselves (Scanner::warm_up).
      start_warm_up(v->scanner);
      {
        // The number is taken where the version is installed, under one
        // lock: a load that took it before the probe above could otherwise
        // install an older version over a newer one that was loaded during
        // the probe.  Numbers are therefore installation order.
        std::lock_guard lock(mu_);
        v->number = number = ++next_number_[name];
        current_[name] = v;
      }
      // Rules PCRE2 rejected are not in the entry: name them.  After the
      // version is published, so that scans need not wait for it (~5 ms).
      if (v->scanner->rule_count() != rules.rules.size())
        out.rejected = rejected_from_cache(rules, *v->scanner, options_.compile);
      stats->loads++;
      spdlog::info("rule set {} version {}: {} rules loaded from the cache in {:.1f} ms{}", name, number,
                   v->scanner->rule_count(), v->build_ms, read_ahead ? " (read ahead while its files were parsed)" : "");
      out.version = std::move(v);
      add_meta_errors();
      return out;
    }
    stats->cache_misses++;
    if (!hit && hit.error().message != "no entry") {
      // The store moved a damaged entry aside (kCorrupt); anything else but
      // absence is an entry it would not use here.
      (hit.error().code == ErrorCode::kCorrupt ? stats->cache_corrupt : stats->cache_refused)++;
      spdlog::info("rule set {}: cache miss ({})", name, hit.error().message);
    }
  }
  // 2. PCRE2 alone answers at once; Hyperscan follows in the background.
  engine::CompileOptions quick = options_.compile;
  quick.pcre2_only = true;
  engine::CompileReport report;
  auto scanner = engine::Scanner::compile(rules, quick, &report);
  if (!scanner) return scanner.error();
  out.rejected = report.rejected;
  plan_now();  // before `rules` moves into the job, and outside the lock
  if ((*scanner)->rule_count() == 0)
    return make_error(ErrorCode::kInvalidArgument, "rule set " + name + ": no usable rule (" +
                                                       std::to_string(report.rejected.size()) + " rejected)");
  {
    std::lock_guard lock(mu_);
    // A client pushing many distinct names must not queue compiles without
    // bound (each holds its rules until it runs); a new version of a name
    // already waiting takes that one's place.
    if (origin == "load_rules" && !std::any_of(jobs_.begin(), jobs_.end(), [&](const Job& j) { return j.name == name; }) &&
        (running_pushed_ ? 1u : 0u) + static_cast<std::size_t>(std::count_if(jobs_.begin(), jobs_.end(), [](const Job& j) {
          return j.origin == "load_rules";
        })) >= options_.max_queue) {
      spdlog::warn("rule set {}: refused, {} pushed rule sets are queued or compiling (compile.max_queue)", name,
                   options_.max_queue);
      return make_error(ErrorCode::kResourceLimit, "rule set " + name + ": " + std::to_string(options_.max_queue) +
                                                       " pushed rule sets are queued or compiling; retry later");
    }
    number = ++next_number_[name];
    auto v = make_version(name, number, std::move(*scanner), "pcre2", "pcre2", origin, stats, plan_now());
    current_[name] = v;
    out.version = std::move(v);
    // A queued compile of an older version of this set is no longer wanted.
    std::erase_if(jobs_, [&](const Job& j) { return j.name == name; });
    jobs_.push_back({name, number, std::move(rules), std::move(origin)});
  }
  stats->loads++;
  cv_.notify_all();
  spdlog::info("rule set {} version {}: {} rules answered by PCRE2 while Hyperscan compiles", name, number,
               out.version->scanner->rule_count());
  add_meta_errors();
  return out;
}

bool Registry::remove(const std::string& name) {
  std::lock_guard lock(mu_);
  std::erase_if(jobs_, [&](const Job& j) { return j.name == name; });
  stats_.erase(name);
  return current_.erase(name) > 0;
}

std::shared_ptr<const RuleSetVersion> Registry::find(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = current_.find(name);
  return it == current_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const RuleSetVersion>> Registry::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const RuleSetVersion>> out;
  for (const auto& [name, v] : current_) out.push_back(v);
  return out;
}

void Registry::wait_idle() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return jobs_.empty() && !busy_; });
}

void Registry::worker() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (stop_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    busy_ = true;
    running_pushed_ = job.origin == "load_rules";
    lock.unlock();
    // The job boundary: nothing a rules text or a cache file can make a
    // build throw may end this thread (std::terminate, the daemon with it).
    // PCRE2 keeps answering for that version, as after a failed build.
    try {
      run_job(job);  // run_job() logs a failure; a stop that killed its child is not one
    } catch (const std::exception& e) {
      spdlog::error("rule set {} version {}: Hyperscan build failed ({}); PCRE2 keeps answering", job.name,
                    job.number, e.what());
    }
    lock.lock();
    busy_ = false;
    running_pushed_ = false;
    if (jobs_.empty()) idle_cv_.notify_all();
  }
}

void Registry::run_job(Job& job) {
  {
    std::lock_guard lock(mu_);
    auto it = current_.find(job.name);
    if (it == current_.end() || it->second->number != job.number) return;  // superseded or removed
  }
  auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<const engine::Scanner> scanner;
  std::string source = "compiled";
  {
    // In a child with a deadline: hs_compile_multi cannot be interrupted
    // (on this thread only where the host cannot fork: isolate_compile).
    auto build = [&]() -> Result<ChildBuild> {
      if (!options_.isolate_compile) return compile_in_process(job.rules, options_.compile, job.name, options_.store);
      return compile_in_child(job.rules, options_.compile, job.name, options_.store, options_.compile_timeout,
                              [this](pid_t pid) {
                                std::lock_guard lock(mu_);
                                child_ = pid;
                                if (stop_ && pid > 0) ::kill(pid, SIGKILL);  // the destructor came first
                              },
                              options_.compile_nice);
    };
    auto got = build();
    // A child that died without an answer (killed by the OOM killer or an
    // operator, a crash; under qemu-user, fork in a threaded process
    // sometimes trips an assertion of the emulator) gets one more try.  Not a
    // timeout (kResourceLimit) or a compile error: those would end the same.
    if (!got && got.error().code == ErrorCode::kInternal) {
      bool again;
      {
        std::lock_guard lock(mu_);
        auto it = current_.find(job.name);
        again = !stop_ && it != current_.end() && it->second->number == job.number;
      }
      if (again) {
        spdlog::warn("rule set {} version {}: Hyperscan build failed ({}); trying once more", job.name, job.number,
                     got.error().message);
        got = build();
      }
    }
    if (!got) {
      std::lock_guard lock(mu_);
      if (!stop_)
        spdlog::error("rule set {} version {}: Hyperscan build failed ({}); PCRE2 keeps answering", job.name,
                      job.number, got.error().message);
      return;
    }
    if (got->from_cache) source = "cache";  // another process compiled it
    if (!got->save_error.empty())
      spdlog::warn("rule set {} version {}: not saved in the cache: {}", job.name, job.number, got->save_error);
    scanner = std::move(got->scanner);
  }
  std::shared_ptr<RuleSetStats> stats;
  std::shared_ptr<const engine::MessagePlan> plan;
  {
    std::lock_guard lock(mu_);
    auto it = current_.find(job.name);
    if (it == current_.end() || it->second->number != job.number) return;
    stats = it->second->stats;
    plan = it->second->plan;
  }
  // Built parts first, then the swap: the new version's first SCANs find its
  // RE2::Sets and PCRE2 programs ready (the PCRE2 version answers meanwhile).
  scanner->warm_up();
  auto v = make_version(job.name, job.number, std::move(scanner), "hyperscan", source, job.origin, stats, plan);
  v->build_ms = ms_since(t0);
  spdlog::info("rule set {} version {}: Hyperscan build ready in {:.0f} ms ({}; native {}, prefilter {}, pcre2 {}, re2 {}, re2-prefilter {})",
               job.name, job.number, v->build_ms, source, v->native, v->prefilter, v->pcre2, v->re2, v->re2_prefilter);
  swap_if_current(job.name, job.number, std::move(v));
}

void Registry::start_warm_up(std::shared_ptr<const engine::Scanner> scanner) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard lock(mu_);
  if (stop_) return;
  std::erase_if(warmers_, [](const Warmer& w) { return w.done->load(); });  // joins threads that have ended
  // Loads that come faster than warm-ups end (clients pushing rule sets
  // that hit the cache) must not pile up threads: past this many, a version
  // is not warmed up and its first scans build what they need, as without
  // a warm-up (the same answers).
  if (warmers_.size() >= kMaxWarmUps) return;
  warmers_.push_back({done, engine::Scanner::warm_up_async(
                                 std::move(scanner), [nice = options_.warm_up_nice] { lower_thread_priority(nice); },
                                 [done] { done->store(true); })});
}

void Registry::swap_if_current(const std::string& name, std::uint32_t number,
                               std::shared_ptr<const RuleSetVersion> v) {
  std::lock_guard lock(mu_);
  auto it = current_.find(name);
  if (it != current_.end() && it->second->number == number) it->second = std::move(v);
}

}  // namespace regexd::server
