#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <hs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>

#include "confirm_window.h"
#include "fixed_counter.h"
#include "hs_runtime.h"
#include "lockstep_dfa.h"
#include "parallel.h"
#include "pcre2_util.h"
#include "re2_partition.h"
#include "scanner_state.h"
#include "regexd/engine/compiled_set.h"
#include "utf8.h"

#ifndef REGEXD_HS_FLAVOR_NAME
#error "REGEXD_HS_FLAVOR_NAME must be set by the build (hyperscan or vectorscan)"
#endif

namespace regexd::engine {
namespace {

std::atomic<std::uint64_t> next_scanner_uid{1};

// Everything one thread needs to scan with one Scanner.
struct ThreadState {
  std::uint64_t uid = 0;
  std::weak_ptr<const int> owner;  // the scanner's alive_
  HsScratchPtr scratch;
  detail::Pcre2Matcher matcher;
  std::vector<std::uint8_t> hit;           // per rule: reported by Hyperscan in this scan
  std::vector<std::uint32_t> end_lo, end_hi;  // per rule with hit set: least and greatest reported end
  std::vector<std::uint32_t> candidates;   // rules with hit set, to reset cheaply
  std::vector<int> re2_matched;            // one RE2::Set's answer
  // Per class: `scratch` has been sized for its databases.  Scratch grows
  // class by class, as a thread first scans each: sizing it for all of
  // SpamAssassin's ~65 classes at once took ~3 ms of a daemon's first scan.
  std::vector<std::uint8_t> scratch_fits;
  // Per class, per RE2 partition: this thread's lazy DFA (lockstep_dfa.h),
  // made on the class's first scan; each holds at most kRe2SetMaxMem.
  std::vector<std::vector<std::unique_ptr<detail::DfaCache>>> dfas;
  detail::Lockstep lockstep;
  std::vector<detail::DfaCache*> dfa_run;  // this scan's DFAs ...
  std::vector<std::size_t> dfa_part;       // ... and their partitions
  std::vector<std::uint8_t> part_done;     // per partition: answered by its DFA
  ThreadState(std::uint64_t u, std::weak_ptr<const int> o, const CompiledSet& set)
      : uid(u),
        owner(std::move(o)),
        matcher(set.pcre2_match_limit, set.pcre2_depth_limit),
        hit(set.rules.size(), 0),
        end_lo(set.rules.size(), 0),
        end_hi(set.rules.size(), 0),
        scratch_fits(set.classes.size(), 0),
        dfas(set.classes.size()) {}
};

// A thread keeps the state of the few scanners it used last.  The state of
// a scanner that has been destroyed (e.g. replaced by a hot swap) is dropped
// on the thread's next scan: its DFA states alone are ~15 MB for
// SpamAssassin's rules.  Old entries of live scanners fall out as new ones
// arrive, so memory stays bounded without any cross-thread bookkeeping.
constexpr std::size_t kThreadCacheSize = 4;
thread_local std::vector<std::unique_ptr<ThreadState>> tls_states;

struct HsContext {
  ThreadState* st;
  const CompiledSet* set;
  std::uint32_t class_index;
  unsigned bad_id = UINT_MAX;  // set when the database reports a rule it does not hold
};

int on_match(unsigned int id, unsigned long long, unsigned long long to, unsigned int, void* ctx_ptr) {
  auto* ctx = static_cast<HsContext*>(ctx_ptr);
  auto* st = ctx->st;
  // A database only reports the rule indices it was compiled with, but one
  // read from a cache file is trusted no further than the header that
  // describes it: ids outside this class's rules stop the scan instead of
  // indexing past `hit` (found by scripts/fuzz-entries.sh).
  if (id >= st->hit.size() || ctx->set->rules[id].class_index != ctx->class_index) {
    ctx->bad_id = id;
    return 1;  // HS_SCAN_TERMINATED
  }
  // Buffers are under 4 GiB (scan() checks), so an end fits.
  const auto end = static_cast<std::uint32_t>(to);
  if (!st->hit[id]) {
    st->hit[id] = 1;
    st->candidates.push_back(id);
    st->end_lo[id] = st->end_hi[id] = end;
  } else {
    // Only rules without HS_FLAG_SINGLEMATCH (a windowed confirmation) are
    // reported more than once, in no promised order.
    st->end_lo[id] = std::min(st->end_lo[id], end);
    st->end_hi[id] = std::max(st->end_hi[id], end);
  }
  return 0;
}

// Rule `id`'s scan-time PCRE2 program: JIT-compiled, or (`quick`) the
// interpreter's while a warm-up runs (LazyPcre2).  The one place that
// chooses its compile options, so every caller builds the same program.
const pcre2_code* pcre2_program(const CompiledSet& set, std::uint32_t id, bool quick) {
  const CompiledRule& cr = set.rules[id];
  const std::uint32_t extra = detail::pcre2_extra_options(cr);
  return quick ? set.pcre2[id].get_quick(cr.rule, extra) : set.pcre2[id].get(cr.rule, extra);
}

// jemalloc answers mallctl("version"); glibc's malloc has no such symbol.
// Looked up, not linked: the engine library works with either.
std::string allocator_name() {
  using mallctl_fn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
  if (auto* fn = reinterpret_cast<mallctl_fn>(::dlsym(RTLD_DEFAULT, "mallctl"))) {
    const char* version = nullptr;
    std::size_t len = sizeof version;
    // "5.3.0-0-g<commit>": the release is enough.
    if (fn("version", &version, &len, nullptr, 0) == 0 && version)
      return "jemalloc " + std::string(version, std::strcspn(version, "-"));
    return "jemalloc";
  }
  return std::string("glibc ") + gnu_get_libc_version();
}

}  // namespace

const EngineInfo& engine_info() {
  static const EngineInfo info = [] {
    EngineInfo i;
    i.flavor = REGEXD_HS_FLAVOR_NAME;
    i.runtime_version = hs_version();
#if defined(__x86_64__)
    i.arch = "x86_64";
#elif defined(__aarch64__)
    i.arch = "aarch64";
#else
    i.arch = "unknown";
#endif
    char buf[64] = {};
    pcre2_config(PCRE2_CONFIG_VERSION, buf);
    i.pcre2_version = buf;
    i.allocator = allocator_name();
    i.scan_code = detail::hs_runtime().code;
    i.scan_code_note = detail::hs_runtime().note;
    return i;
  }();
  return info;
}

Scanner::Scanner(std::unique_ptr<CompiledSet> set)
    : set_(std::move(set)),
      uid_(next_scanner_uid.fetch_add(1)),
      counters_(std::make_unique<detail::LazyFixedCounter[]>(set_->rules.size())) {}
Scanner::~Scanner() = default;

Result<std::shared_ptr<const Scanner>> Scanner::from_compiled(std::unique_ptr<CompiledSet> set) {
  if (!set) return make_error(ErrorCode::kInvalidArgument, "no compiled set");
  if (!set->pcre2) set->init_pcre2_slots();
  // Scratch is not allocated here: every thread allocates its own on its
  // first scan (and reports a failure there as kResourceLimit), so a trial
  // allocation now would only add ~2 ms to every cache load of a large set.
  return std::shared_ptr<const Scanner>(new Scanner(std::move(set)));
}

void Scanner::warm(std::stop_token stop) const {
  // The RE2 partitions first: a scan meanwhile runs PCRE2 for them.  Their
  // lockstep programs take microseconds; an RE2::Set only where there is
  // none (the scanner builds one for a DFA that gives up when it happens).
  for (const auto& c : set_->classes)
    for (const auto& part : c.re2_sets) {
      if (stop.stop_requested()) break;
      if (!part->dfa(*set_)) (void)part->get(*set_);
    }
  for (std::size_t i = 0; i < set_->rules.size() && !stop.stop_requested(); ++i) {
    if (set_->rules[i].tier != Tier::kNative) (void)pcre2_program(*set_, static_cast<std::uint32_t>(i), false);
    if (set_->rules[i].rule.max_hits > 1) (void)counters_[i].get(set_->rules[i].rule);
  }
}

void Scanner::warm_up(std::stop_token stop) const {
  warming_.fetch_add(1);
  warm(stop);
  warming_.fetch_sub(1);
}

std::jthread Scanner::warm_up_async(std::shared_ptr<const Scanner> scanner, std::function<void()> on_start,
                                    std::function<void()> on_end) {
  scanner->warming_.fetch_add(1);  // before the thread exists: see the header
  return std::jthread([scanner = std::move(scanner), on_start = std::move(on_start),
                       on_end = std::move(on_end)](std::stop_token stop) {
    if (on_start) on_start();
    scanner->warm(stop);
    scanner->warming_.fetch_sub(1);
    if (on_end) on_end();
  });
}

void Scanner::prepare_quick(unsigned threads) const {
  std::vector<std::uint32_t> ids;
  for (const auto& c : set_->classes)
    for (const auto& part : c.re2_sets)
      for (auto id : part->rules())
        if (id < set_->rules.size()) ids.push_back(id);
  detail::parallel_for(ids.size(), std::max(1u, threads),
                       [&](std::size_t k) { (void)pcre2_program(*set_, ids[k], true); });
}

std::vector<std::string> Scanner::classes() const {
  std::vector<std::string> out;
  for (const auto& c : set_->classes) out.push_back(c.cls);
  return out;
}

std::size_t Scanner::rule_count() const { return set_->rules.size(); }

std::vector<std::pair<std::string, Tier>> Scanner::tiers() const {
  std::vector<std::pair<std::string, Tier>> out;
  for (const auto& r : set_->rules) out.emplace_back(r.rule.id, r.tier);
  return out;
}

Result<ScanResult> Scanner::scan(std::string_view cls, std::string_view data, const ScanOptions& options) const {
  const CompiledSet& set = *set_;
  auto it = std::lower_bound(set.classes.begin(), set.classes.end(), cls,
                             [](const ClassDatabases& c, std::string_view k) { return c.cls < k; });
  if (it == set.classes.end() || it->cls != cls)
    return make_error(ErrorCode::kUnknownClass, "no rules for class '" + std::string(cls) + "'");
  if (data.size() > UINT_MAX) return make_error(ErrorCode::kInvalidArgument, "buffer larger than 4 GiB");
  const ClassDatabases& cdb = *it;

  // Find (or make) this thread's state for this scanner.
  ThreadState* st = nullptr;
  std::erase_if(tls_states, [](const auto& s) { return s->owner.expired(); });
  for (auto& s : tls_states)
    if (s->uid == uid_) st = s.get();
  if (!st) {
    if (tls_states.size() >= kThreadCacheSize) tls_states.erase(tls_states.begin());
    tls_states.push_back(std::make_unique<ThreadState>(uid_, alive_, set));
    st = tls_states.back().get();
  }
  if (const auto ci = static_cast<std::size_t>(it - set.classes.begin()); !st->scratch_fits[ci]) {
    std::vector<const hs_database_t*> dbs{cdb.bytes_db.get(), cdb.utf8_db.get()};
    for (const auto& part : cdb.bytes_more) dbs.push_back(part.db.get());
    // hs_alloc_scratch grows the scratch it is given so that it fits every
    // database seen so far.  After a failure the scratch (valid or null) is
    // dropped and every class starts over.
    hs_scratch_t* scratch = st->scratch.release();
    for (const auto* db : dbs)
      if (db && hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
        hs_free_scratch(scratch);
        std::fill(st->scratch_fits.begin(), st->scratch_fits.end(), 0);
        return make_error(ErrorCode::kResourceLimit, "cannot allocate Hyperscan scratch");
      }
    st->scratch.reset(scratch);
    st->scratch_fits[ci] = 1;
  }

  // ScanOptions::measure_engines: a clock read only when asked for.
  const bool measure = options.measure_engines;
  auto now_ns = [measure]() -> std::uint64_t {
    if (!measure) return 0;
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  };
  EngineTimes times;
  const std::uint64_t hs_start = now_ns();
  HsContext ctx{st, &set, static_cast<std::uint32_t>(it - set.classes.begin())};
  st->candidates.clear();
  const detail::HsScanFn hs_scan_code = detail::hs_runtime().scan;
  auto run_hs = [&](const HsDatabasePtr& db) -> bool {
    if (!db) return true;
    hs_error_t rc = hs_scan_code(db.get(), data.data(), static_cast<unsigned>(data.size()), 0, st->scratch.get(),
                            on_match, &ctx);
    return rc == HS_SUCCESS;
  };
  bool hs_ok = run_hs(cdb.bytes_db);
  // A split class's other parts (split.h): the same buffer, the same hits.
  for (std::size_t k = 0; hs_ok && k < cdb.bytes_more.size(); ++k) hs_ok = run_hs(cdb.bytes_more[k].db);
  // Hyperscan's UTF-8 mode is only defined on valid UTF-8.
  bool utf8_via_hs = cdb.utf8_db && detail::valid_utf8(data);
  if (hs_ok && utf8_via_hs) hs_ok = run_hs(cdb.utf8_db);
  if (!hs_ok) {
    for (auto id : st->candidates) st->hit[id] = 0;
    if (ctx.bad_id != UINT_MAX)
      return make_error(ErrorCode::kInternal, "hyperscan database of class '" + std::string(cls) +
                                                  "' reported rule index " + std::to_string(ctx.bad_id) +
                                                  ", which is not one of its rules (damaged cache entry?)");
    return make_error(ErrorCode::kInternal, "hyperscan scan failed for class '" + std::string(cls) + "'");
  }

  times.hyperscan = now_ns() - hs_start;

  ScanResult result;
  // While a warm-up runs, nothing slow is built here (see warm_up()).
  const bool warming = warming_.load(std::memory_order_relaxed) > 0;
  // `window`: confirm a prefilter hit near Hyperscan's reported ends only
  // (confirm_window.h); a yes/no answer only.
  // `known_match`: another engine's answer is final and only the count is
  // wanted; then a counted rule's FixedCounter counts, if it has one (PCRE2
  // finds a first match, or none, far faster than a byte loop does: its
  // first-byte and required-byte searches).  Its time counts as PCRE2's,
  // whose work it does.
  auto count_hits = [&](std::uint32_t id, unsigned cap, const detail::ConfirmWindow* window,
                        bool known_match) -> long {
    const CompiledRule& cr = set.rules[id];
    const std::uint64_t t0 = now_ns();  // a first call's compile counts as PCRE2's time
    const detail::FixedCounter* counter =
        known_match && !window && cr.rule.max_hits > 1 ? counters_[id].get(cr.rule) : nullptr;
    long n;
    if (counter) {
      n = counter->count(data, cap);  // what PCRE2 would count (fixed_counter.h)
    } else {
      const pcre2_code* code = pcre2_program(set, id, warming);
      n = window ? st->matcher.first_in(code, data, window->start, window->limit)
                 : st->matcher.count(code, data, cap, (cr.rule.flags & kUtf8) != 0);
    }
    times.pcre2 += now_ns() - t0;
    return n;
  };
  auto decide = [&](std::uint32_t id, bool known_match, bool hs_reported = false) {
    const CompiledRule& cr = set.rules[id];
    const unsigned cap =
        !options.count_hits ? 1u : cr.rule.max_hits ? cr.rule.max_hits : std::max(1u, options.max_hits);
    detail::ConfirmWindow window;
    const bool windowed = hs_reported && cap == 1 && cr.tier == Tier::kPrefilter && cr.confirm_max != 0;
    if (windowed) window = detail::confirm_window(st->end_lo[id], st->end_hi[id], {cr.confirm_min, cr.confirm_max});
    long n = known_match && cap == 1 ? 1 : count_hits(id, cap, windowed ? &window : nullptr, known_match);
    // When a native match is counted and PCRE2 finds none, PCRE2 (the
    // reference) wins; the differential test exists to catch such rules.
    if (n < 0)
      result.limited.push_back(cr.rule.id);
    else if (n > 0)
      result.hits.emplace_back(cr.rule.id, static_cast<unsigned>(n));
  };
  for (auto id : st->candidates) {
    st->hit[id] = 0;
    decide(id, set.rules[id].tier == Tier::kNative, true);
  }
  if (cdb.utf8_db && !utf8_via_hs)
    for (auto id : cdb.utf8_rules) decide(id, false);
  // The RE2 partitions: those with a lockstep program all together, in one
  // pass over the buffer (lockstep_dfa.h); the others, and any whose DFA
  // gave up on this buffer, through their RE2::Set.
  const auto class_index = static_cast<std::size_t>(it - set.classes.begin());
  auto& dfas = st->dfas[class_index];
  if (dfas.size() < cdb.re2_sets.size()) dfas.resize(cdb.re2_sets.size());
  st->dfa_run.clear();
  st->dfa_part.clear();
  st->part_done.assign(cdb.re2_sets.size(), 0);
  for (std::size_t k = 0; k < cdb.re2_sets.size(); ++k) {
    const Re2Partition& part = *cdb.re2_sets[k];
    if (!part.dfa_built() && warming) continue;
    const detail::DfaProgram* program = part.dfa(set);
    if (!program) continue;
    if (!dfas[k]) dfas[k] = std::make_unique<detail::DfaCache>(*program, detail::kRe2SetMaxMem);
    st->dfa_run.push_back(dfas[k].get());
    st->dfa_part.push_back(k);
  }
  if (!st->dfa_run.empty()) {
    const std::uint64_t t0 = now_ns();
    st->lockstep.run(st->dfa_run, data);
    times.re2 += now_ns() - t0;
    for (std::size_t j = 0; j < st->dfa_run.size(); ++j) {
      if (!st->lockstep.answered(j)) continue;
      const std::size_t k = st->dfa_part[j];
      const auto& ids = cdb.re2_sets[k]->rules();
      st->part_done[k] = 1;
      for (std::uint32_t m : st->lockstep.matched(j))
        if (m < ids.size()) decide(ids[m], set.rules[ids[m]].tier == Tier::kRe2);
    }
  }
  for (std::size_t k = 0; k < cdb.re2_sets.size(); ++k) {
    if (st->part_done[k]) continue;
    const auto& part = cdb.re2_sets[k];
    const auto& ids = part->rules();
    if (!part->built() && warming) {
      // warm_up() builds it; PCRE2 answers meanwhile rather than wait.
      for (auto id : ids) decide(id, false);
      continue;
    }
    const Re2Program* prog = part->get(set);
    const std::uint64_t t0 = now_ns();
    const bool re2_answered = prog && detail::re2_match(*prog, data, &st->re2_matched);
    times.re2 += now_ns() - t0;
    if (re2_answered) {
      for (int m : st->re2_matched)
        if (m >= 0 && static_cast<std::size_t>(m) < ids.size()) decide(ids[m], set.rules[ids[m]].tier == Tier::kRe2);
      continue;
    }
    // No program (it could not be built) or RE2 gave up on this buffer:
    // PCRE2 answers for the whole partition.
    if (prog) ++result.re2_fallbacks;
    for (auto id : ids) decide(id, false);
  }
  for (auto id : cdb.pcre2_rules) decide(id, false);
  std::sort(result.hits.begin(), result.hits.end());
  std::sort(result.limited.begin(), result.limited.end());
  result.time = times;
  return result;
}

std::size_t detail::thread_scanner_states() { return tls_states.size(); }

}  // namespace regexd::engine
