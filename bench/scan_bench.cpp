// Scan throughput: regexd vs its peers, on the same rules and messages, with
// the same answers checked.
//
// Peers:
//   pcre2_loop  every rule in turn with PCRE2 (JIT), what Rspamd does without
//               Hyperscan; also the reference answer for the checks.
//   re2_set     one RE2::Set per class, on the rules RE2 can run with
//               PCRE2's answers (see Re2Compat below); the others are counted.
//   regexd      Scanner::scan(class, message) for every class, matched or
//               not (ScanOptions::count_hits = false).
//   regexd_cold  regexd's scans with every message new to the scanner's lazy
//               DFAs, as mail reaching a daemon is: each pass runs on a
//               thread of its own (the scanner keeps DFA states per thread,
//               so they start empty) and is timed by that thread's CPU clock
//               (manual time).  The other rows pass over the same messages
//               again and again, so after the first pass every DFA state a
//               message needs is built; lazy DFAs (regexd's RE2 sets, the
//               re2_set peer) look cheaper there than on new mail, Hyperscan
//               does not.  No peer has this row: the re2_set peer's DFA lives
//               in its RE2::Set, which cannot be emptied without rebuilding.
//   regexd_counting  the same scans counting hits as Rspamd's plugin and
//               SpamAssassin do: a `tflags multiple` rule up to its maxhits
//               (default ScanOptions).  Extra work no peer does: it shows
//               what counting costs, it is not the comparison.
// Every buffer is the raw message text: each class's rules run over the whole
// message, so the three engines compared do exactly the same work (every rule
// once per message) and report "matched or not".  Before 2026-12-02 the
// regexd row counted (regexd_counting's work) while the peers did not.
//
// Checking: before timing, each benchmark answers every (rule, message) pair
// and compares with the PCRE2 loop; a pair PCRE2 cannot decide (match limit)
// or regexd reports as limited is left out and counted.  Any disagreement
// skips the benchmark with an error (and the binary exits non-zero).  The
// timed loop then must reproduce the same number of hits on every pass.
//
// Benchmarks:
//   scan/<set>/<class|all>/<engine>   per class and for all classes
//   bysize/<engine>/<N>               N rules (same subset for all engines)
// Counters besides the hits: for re2_set, `heap_growth_mb`, how much heap the
// program allocated from just before the answer check to the end of the
// timed loop: the sets' DFA caches (regexd's scanner is built once and
// shared by its benchmarks, so such a figure would only show the run that
// first used it; the daemon's memory is regexd_pss_bench's); for regexd,
// `hs_ms`, `re2_ms`, `pcre2_ms`: one untimed pass with
// ScanOptions::measure_engines, per pass over the messages.
// Sets: "sa" (SpamAssassin body/rawbody/full/uri rules, per-kind classes;
// header rules need header extraction, which the peers lack, so they are out)
// and "sample" (rules/sample.rules).  REGEXD_BENCH_SMOKE=1 runs only the
// sample set on a few messages.
#include <benchmark/benchmark.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <time.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_util.h"
#include "pcre2_reference.h"  // tests/support: the same PCRE2 the tests check against
#include "regexd/engine/engine.h"

namespace {

using namespace regexd;

// Indices into Workload::rules.
using RuleList = std::vector<std::uint32_t>;

struct Answer {
  RuleList hits;       // rules that matched
  RuleList undecided;  // rules the engine could not decide (resource limit)
  void clear() {
    hits.clear();
    undecided.clear();
  }
};

const std::vector<std::string>& messages();  // the corpus sample, below

class Matcher {
 public:
  virtual ~Matcher() = default;
  // Answers one message; false (and error()) if the engine itself failed.
  virtual bool match(std::string_view msg, Answer& out) const = 0;
  // Sets engine-specific counters; called after the timed loop with the
  // heap the program grew by since just before the answer check.
  virtual void add_counters(benchmark::State&, double /*heap_growth_mb*/) const {}
  const std::string& error() const { return error_; }

 protected:
  mutable std::string error_;
};

// ---- PCRE2, each rule in turn -------------------------------------------

struct Pcre2Code {
  pcre2_code* code = nullptr;
  explicit Pcre2Code(const engine::Rule& r) : code(testing::compile_reference(r)) {
    if (code && !(r.flags & engine::kNoOpt)) pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  ~Pcre2Code() { pcre2_code_free(code); }
  Pcre2Code(const Pcre2Code&) = delete;
  Pcre2Code& operator=(const Pcre2Code&) = delete;
};

class Pcre2Loop final : public Matcher {
 public:
  Pcre2Loop(const std::vector<engine::Rule>& all, const RuleList& list) : list_(list) {
    for (auto i : list) codes_.push_back(std::make_unique<Pcre2Code>(all[i]));
    md_ = pcre2_match_data_create(1, nullptr);
    // The same limits and JIT stack as regexd's defaults (engine::CompileOptions,
    // pcre2_util.cpp), so both give up on the same pairs.
    engine::CompileOptions defaults;
    mctx_ = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(mctx_, defaults.pcre2_match_limit);
    pcre2_set_depth_limit(mctx_, defaults.pcre2_depth_limit);
    jit_ = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(mctx_, nullptr, jit_);
  }
  ~Pcre2Loop() override {
    pcre2_jit_stack_free(jit_);
    pcre2_match_context_free(mctx_);
    pcre2_match_data_free(md_);
  }
  bool compiled(std::size_t k) const { return codes_[k]->code != nullptr; }

  bool match(std::string_view msg, Answer& out) const override {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(msg.data());
    for (std::size_t k = 0; k < codes_.size(); ++k) {
      int rc = pcre2_match(codes_[k]->code, subject, msg.size(), 0, 0, md_, mctx_);
      if (rc >= 0)
        out.hits.push_back(list_[k]);
      else if (rc != PCRE2_ERROR_NOMATCH)
        out.undecided.push_back(list_[k]);
    }
    return true;
  }

 private:
  RuleList list_;
  std::vector<std::unique_ptr<Pcre2Code>> codes_;
  pcre2_match_data* md_ = nullptr;
  pcre2_match_context* mctx_ = nullptr;
  pcre2_jit_stack* jit_ = nullptr;
};

// ---- RE2::Set -------------------------------------------------------------

RE2::Options re2_options() {
  RE2::Options o;
  // Bytes, as regexd's and PCRE2's default (non-u) mode.
  o.set_encoding(RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  // A set of hundreds of patterns needs a large DFA budget, or Match() fails.
  o.set_max_mem(int64_t{1} << 30);
  return o;
}

// The pattern as RE2 should see it: i/m/s become inline flags; x and u have
// no RE2 equivalent within one Latin-1 set, so such rules are refused.
std::optional<std::string> re2_pattern(const engine::Rule& r) {
  if (r.flags & (engine::kExtended | engine::kUtf8)) return std::nullopt;
  std::string f;
  if (r.flags & engine::kCaseless) f += 'i';
  if (r.flags & engine::kMultiline) f += 'm';
  if (r.flags & engine::kDotall) f += 's';
  return f.empty() ? r.pattern : "(?" + f + ")" + r.pattern;
}

class Re2SetMatcher final : public Matcher {
 public:
  // `list` must hold only rules RE2 compiles (Workload::re2_ok).
  Re2SetMatcher(const std::vector<engine::Rule>& all, const RuleList& list) {
    std::map<std::string, std::size_t> by_class;
    for (auto i : list) {
      auto [it, fresh] = by_class.emplace(all[i].cls, sets_.size());
      if (fresh) sets_.push_back({std::make_unique<RE2::Set>(re2_options(), RE2::UNANCHORED), {}});
      auto& cs = sets_[it->second];
      std::string err;
      if (cs.set->Add(*re2_pattern(all[i]), &err) < 0) error_ = all[i].id + ": " + err;
      cs.rules.push_back(i);
    }
    for (auto& cs : sets_)
      if (!cs.set->Compile()) error_ = "RE2::Set::Compile failed (out of memory)";
  }
  bool match(std::string_view msg, Answer& out) const override {
    for (const auto& cs : sets_) {
      v_.clear();
      RE2::Set::ErrorInfo info{};
      if (!cs.set->Match(msg, &v_, &info) && info.kind != RE2::Set::kNoError) {
        error_ = "RE2::Set::Match failed (error kind " + std::to_string(static_cast<int>(info.kind)) + ")";
        return false;
      }
      for (int k : v_) out.hits.push_back(cs.rules[static_cast<std::size_t>(k)]);
    }
    return true;
  }
  // The sets are built anew for every run, so the growth is their DFA
  // caches filling up on these messages.
  void add_counters(benchmark::State& state, double heap_growth_mb) const override {
    state.counters["heap_growth_mb"] = heap_growth_mb;
  }

 private:
  struct ClassSet {
    std::unique_ptr<RE2::Set> set;
    RuleList rules;
  };
  std::vector<ClassSet> sets_;
  mutable std::vector<int> v_;
};

// ---- regexd ---------------------------------------------------------------

class RegexdMatcher final : public Matcher {
 public:
  // `count`: count hits up to each rule's own max_hits (SpamAssassin's
  // `tflags multiple ... maxhits=N`), else matched or not, as the peers.
  RegexdMatcher(std::shared_ptr<const engine::Scanner> s, std::vector<std::string> classes,
                const std::vector<engine::Rule>& all, bool count)
      : scanner_(std::move(s)), classes_(std::move(classes)) {
    for (std::uint32_t i = 0; i < all.size(); ++i) index_.emplace(all[i].id, i);
    opts_.max_hits = 1;  // rules without a cap of their own count once either way
    opts_.count_hits = count;
  }
  // One more pass with per-engine timing (untimed by the benchmark).
  void add_counters(benchmark::State& state, double) const override {
    engine::ScanOptions o = opts_;
    o.measure_engines = true;
    engine::EngineTimes t;
    for (const auto& msg : messages())
      for (const auto& cls : classes_)
        if (auto r = scanner_->scan(cls, msg, o)) t += r->time;
    state.counters["hs_ms"] = static_cast<double>(t.hyperscan) / 1e6;
    state.counters["re2_ms"] = static_cast<double>(t.re2) / 1e6;
    state.counters["pcre2_ms"] = static_cast<double>(t.pcre2) / 1e6;
  }
  bool match(std::string_view msg, Answer& out) const override {
    for (const auto& cls : classes_) {
      auto r = scanner_->scan(cls, msg, opts_);
      if (!r) {
        error_ = r.error().message;
        return false;
      }
      for (const auto& [id, n] : r->hits) out.hits.push_back(index_.at(id));
      for (const auto& id : r->limited) out.undecided.push_back(index_.at(id));
    }
    return true;
  }

 private:
  std::shared_ptr<const engine::Scanner> scanner_;
  std::vector<std::string> classes_;
  std::unordered_map<std::string, std::uint32_t> index_;
  engine::ScanOptions opts_;
};

// ---- inputs ---------------------------------------------------------------

const std::vector<std::string>& messages() {
  static const std::vector<std::string> m = bench::corpus_messages(bench::message_count(500, 20));
  return m;
}

std::size_t message_bytes() {
  static const std::size_t n = [] {
    std::size_t b = 0;
    for (const auto& m : messages()) b += m.size();
    return b;
  }();
  return n;
}

// A rule set with everything the benchmarks of it share: the PCRE2 reference
// answers for all its rules, and which rules RE2 can stand in for.
struct Workload {
  std::string name;
  std::vector<engine::Rule> rules;  // PCRE2 accepts them all
  std::size_t pcre2_refused = 0;
  // Reference answers per message: state[m][rule] = 0 no, 1 yes, 2 undecided.
  std::vector<std::vector<std::uint8_t>> ref;
  RuleList re2_ok;
  std::size_t re2_refused = 0, re2_differs = 0;
  std::shared_ptr<const engine::Scanner> scanner;  // all rules, compiled lazily

  RuleList all() const {
    RuleList l(rules.size());
    for (std::uint32_t i = 0; i < l.size(); ++i) l[i] = i;
    return l;
  }
  RuleList of_class(const std::string& cls) const {
    RuleList l;
    for (std::uint32_t i = 0; i < rules.size(); ++i)
      if (rules[i].cls == cls) l.push_back(i);
    return l;
  }
};

// PCRE2 answers for every rule and message, and the RE2 calibration: a rule
// joins the RE2 comparison only if RE2 compiles it and, run alone, gives
// PCRE2's answer on every message.  RE2's semantics differ from PCRE2's in
// places (`$` before a final newline, `\s` and `\v`, Latin-1 case folding),
// so a rule that RE2 accepts can still answer differently; such rules are
// counted (re2_differs), not silently compared on different terms.
Workload make_workload(std::string name, const engine::RuleSet& set) {
  Workload w;
  w.name = std::move(name);
  for (const auto& r : set.rules) {
    if (Pcre2Code(r).code)
      w.rules.push_back(r);
    else
      ++w.pcre2_refused;
  }
  Pcre2Loop ref(w.rules, w.all());
  Answer a;
  for (const auto& msg : messages()) {
    a.clear();
    ref.match(msg, a);
    std::vector<std::uint8_t> st(w.rules.size(), 0);
    for (auto i : a.hits) st[i] = 1;
    for (auto i : a.undecided) st[i] = 2;
    w.ref.push_back(std::move(st));
  }
  for (std::uint32_t i = 0; i < w.rules.size(); ++i) {
    auto pat = re2_pattern(w.rules[i]);
    std::unique_ptr<RE2> re = pat ? std::make_unique<RE2>(*pat, re2_options()) : nullptr;
    if (!re || !re->ok()) {
      ++w.re2_refused;
      continue;
    }
    bool same = true;
    for (std::size_t m = 0; m < messages().size() && same; ++m)
      if (w.ref[m][i] != 2) same = (w.ref[m][i] == 1) == RE2::PartialMatch(messages()[m], *re);
    if (same)
      w.re2_ok.push_back(i);
    else
      ++w.re2_differs;
  }
  std::fprintf(stderr,
               "scan bench: set %s: %zu rules (%zu refused by PCRE2); RE2 runs %zu of them (%zu refused by RE2, %zu "
               "answer differently from PCRE2 on these messages); %zu messages, %zu bytes\n",
               w.name.c_str(), w.rules.size(), w.pcre2_refused, w.re2_ok.size(), w.re2_refused, w.re2_differs,
               messages().size(), message_bytes());
  return w;
}

std::shared_ptr<const engine::Scanner> compile_regexd(const std::vector<engine::Rule>& rules, const RuleList& list) {
  engine::RuleSet set;
  for (auto i : list) set.rules.push_back(rules[i]);
  engine::CompileReport report;
  auto s = engine::Scanner::compile(set, {}, &report);
  if (!s || report.rules_total != list.size()) {
    std::fprintf(stderr, "scan bench: regexd compiled %zu of %zu rules%s%s\n", report.rules_total, list.size(),
                 s ? "" : ": ", s ? "" : s.error().message.c_str());
    std::exit(1);
  }
  return std::move(*s);
}

// Compares `m`'s answers on every message with the reference, restricted to
// `list`.  Returns an empty string if they agree, else the first disagreement.
// *hits_per_pass gets the number of hits one pass over the messages yields.
std::string check(const Workload& w, const RuleList& list, const Matcher& m, std::size_t* hits_per_pass,
                  std::size_t* undecided) {
  std::vector<std::uint8_t> got(w.rules.size());
  std::size_t disagreements = 0;
  std::string first;
  Answer a;
  *hits_per_pass = *undecided = 0;
  for (std::size_t k = 0; k < messages().size(); ++k) {
    a.clear();
    if (!m.match(messages()[k], a)) return m.error();
    std::fill(got.begin(), got.end(), 0);
    for (auto i : a.hits) got[i] = 1;
    for (auto i : a.undecided) got[i] = 2;
    *hits_per_pass += a.hits.size();
    for (auto i : list) {
      if (got[i] == 2 || w.ref[k][i] == 2) {
        ++*undecided;
        continue;
      }
      if (got[i] != w.ref[k][i] && disagreements++ == 0)
        first = "rule " + w.rules[i].id + " on message " + std::to_string(k) + ": pcre2 says " +
                std::to_string(w.ref[k][i]) + ", this engine " + std::to_string(got[i]);
    }
  }
  if (disagreements) return std::to_string(disagreements) + " disagreements with PCRE2, first: " + first;
  return {};
}

bool g_failed = false;

// One pass over the messages, adding up the hits.
void one_pass(const Matcher& m, std::size_t* hits) {
  Answer a;
  for (const auto& msg : messages()) {
    a.clear();
    m.match(msg, a);
    *hits += a.hits.size();
  }
}

// The same on a thread of its own (regexd_cold, see the top): the seconds of
// CPU that thread took.
double pass_on_fresh_thread(const Matcher& m, std::size_t* hits) {
  double seconds = 0;
  std::thread pass([&] {
    timespec t0{}, t1{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    one_pass(m, hits);
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    seconds = static_cast<double>(t1.tv_sec - t0.tv_sec) + static_cast<double>(t1.tv_nsec - t0.tv_nsec) / 1e9;
  });
  pass.join();
  return seconds;
}

// The timed part shared by every scan benchmark; `fresh_thread`: each pass
// on a new thread, timed by it (the benchmark uses manual time).
void run_scan(benchmark::State& state, const Workload& w, const RuleList& list, const Matcher& m,
              bool fresh_thread = false) {
  const double heap_before = bench::heap_mb();
  std::size_t per_pass = 0, undecided = 0;
  if (auto err = check(w, list, m, &per_pass, &undecided); !err.empty()) {
    g_failed = true;
    state.SkipWithError(err.c_str());
    for (auto _ : state) {
    }
    return;
  }
  std::size_t hits = 0;
  for (auto _ : state) {
    if (fresh_thread) {
      state.SetIterationTime(pass_on_fresh_thread(m, &hits));
    } else {
      one_pass(m, &hits);
    }
  }
  if (hits != per_pass * static_cast<std::size_t>(state.iterations())) {
    g_failed = true;
    state.SkipWithError("answers changed between passes");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(message_bytes()) * state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(messages().size()) * state.iterations());
  state.counters["rules"] = static_cast<double>(list.size());
  state.counters["hits_per_pass"] = static_cast<double>(per_pass);
  state.counters["undecided_pairs"] = static_cast<double>(undecided);
  // The per-engine pass runs on this thread, whose DFAs are warm: not what
  // a fresh thread's passes measured.
  if (!fresh_thread) m.add_counters(state, bench::heap_mb() - heap_before);
}

enum class Engine { kRegexd, kRegexdCounting, kPcre2, kRe2 };
const char* engine_name(Engine e) {
  switch (e) {
    case Engine::kRegexd:
      return "regexd";
    case Engine::kRegexdCounting:
      return "regexd_counting";
    case Engine::kPcre2:
      return "pcre2_loop";
    case Engine::kRe2:
      break;
  }
  return "re2_set";
}
bool is_regexd(Engine e) { return e == Engine::kRegexd || e == Engine::kRegexdCounting; }

std::unique_ptr<Matcher> make_matcher(Engine e, Workload& w, const RuleList& list,
                                      std::shared_ptr<const engine::Scanner> scanner) {
  switch (e) {
    case Engine::kPcre2:
      return std::make_unique<Pcre2Loop>(w.rules, list);
    case Engine::kRe2:
      return std::make_unique<Re2SetMatcher>(w.rules, list);
    case Engine::kRegexd:
    case Engine::kRegexdCounting: {
      std::set<std::string> classes;
      for (auto i : list) classes.insert(w.rules[i].cls);
      return std::make_unique<RegexdMatcher>(std::move(scanner),
                                             std::vector<std::string>(classes.begin(), classes.end()), w.rules,
                                             e == Engine::kRegexdCounting);
    }
  }
  return nullptr;
}

// One scan benchmark: `e` on the rules `list` of `w` (regexd runs `scanner`).
void scan_benchmark(benchmark::State& state, Workload& w, const RuleList& list, Engine e,
                    std::shared_ptr<const engine::Scanner> scanner) {
  auto m = make_matcher(e, w, list, std::move(scanner));
  if (!m->error().empty()) {
    g_failed = true;
    state.SkipWithError(m->error().c_str());
    return;
  }
  run_scan(state, w, list, *m);
}

RuleList intersect(const RuleList& a, const RuleList& b) {
  RuleList out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// scan/<set>/<class|all>/<engine> for every class of the set.
void register_per_class(Workload& w) {
  std::set<std::string> classes;
  for (const auto& r : w.rules) classes.insert(r.cls);
  std::vector<std::string> views(classes.begin(), classes.end());
  views.push_back("all");
  for (const auto& view : views) {
    for (Engine e : {Engine::kRegexd, Engine::kRegexdCounting, Engine::kPcre2, Engine::kRe2}) {
      std::string name = "scan/" + w.name + "/" + view + "/" + engine_name(e);
      benchmark::RegisterBenchmark(name.c_str(), [&w, view, e](benchmark::State& state) {
        RuleList list = view == "all" ? w.all() : w.of_class(view);
        if (e == Engine::kRe2) list = intersect(list, w.re2_ok);
        if (is_regexd(e) && !w.scanner) w.scanner = compile_regexd(w.rules, w.all());
        scan_benchmark(state, w, list, e, w.scanner);
      })->Unit(benchmark::kMillisecond);
    }
    std::string name = "scan/" + w.name + "/" + view + "/regexd_cold";
    benchmark::RegisterBenchmark(name.c_str(), [&w, view](benchmark::State& state) {
      RuleList list = view == "all" ? w.all() : w.of_class(view);
      if (!w.scanner) w.scanner = compile_regexd(w.rules, w.all());
      auto m = make_matcher(Engine::kRegexd, w, list, w.scanner);
      run_scan(state, w, list, *m, /*fresh_thread=*/true);
    })->Unit(benchmark::kMillisecond)->UseManualTime();
  }
}

// bysize/<engine>/<N>: the first N of the RE2-compatible rules, spread evenly
// over the set, so all three engines run exactly the same rules.
void register_by_size(Workload& w, std::vector<std::size_t> sizes) {
  const RuleList& pool = w.re2_ok;
  std::vector<std::size_t> ns;
  for (std::size_t n : sizes)
    if (n < pool.size()) ns.push_back(n);
  if (!pool.empty()) ns.push_back(pool.size());
  static std::map<std::size_t, std::shared_ptr<const engine::Scanner>> scanners;
  for (std::size_t n : ns) {
    RuleList list;
    for (std::size_t k = 0; k < n; ++k) list.push_back(pool[k * pool.size() / n]);
    for (Engine e : {Engine::kRegexd, Engine::kPcre2, Engine::kRe2}) {
      std::string name = std::string("bysize/") + engine_name(e) + "/" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), [&w, list, e, n](benchmark::State& state) {
        auto& s = scanners[n];
        if (e == Engine::kRegexd && !s) s = compile_regexd(w.rules, list);
        scan_benchmark(state, w, list, e, s);
      })->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (messages().empty()) {
    std::fprintf(stderr, "scan bench: no corpus messages; run scripts/fetch-corpus.sh or set REGEXD_CORPUS_DIR\n");
    return 1;
  }
  // Workloads live until the end of main; the benchmarks refer to them.
  std::vector<std::unique_ptr<Workload>> sets;
  sets.push_back(std::make_unique<Workload>(make_workload("sample", bench::sample_rules())));
  if (!bench::smoke()) {
    auto sa = bench::spamassassin_rules(/*headers=*/false);
    if (sa.rules.size() < 500) {
      std::fprintf(stderr, "scan bench: only %zu SpamAssassin rules found; install Debian's spamassassin\n",
                   sa.rules.size());
      return 1;
    }
    sets.push_back(std::make_unique<Workload>(make_workload("sa", sa)));
    // One class for the size series, as in the differential test.
    sets.push_back(std::make_unique<Workload>(make_workload("sa_full", bench::spamassassin_rules(false, "full"))));
  }
  for (std::size_t i = 0; i < sets.size() && i < 2; ++i) register_per_class(*sets[i]);
  if (bench::smoke())
    register_by_size(*sets[0], {2, 5});
  else
    register_by_size(*sets[2], {10, 50, 100, 250, 500});

  bench::RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  // The headline ratios, from the medians of this run.
  const std::string set = bench::smoke() ? "sample" : "sa";
  double rx = reporter.median("scan/" + set + "/all/regexd"), pc = reporter.median("scan/" + set + "/all/pcre2_loop");
  if (rx > 0 && pc > 0)
    std::printf("summary: scan/%s/all: regexd %.2f ms, pcre2_loop %.2f ms per pass: regexd is %.1fx faster "
                "(target 20x: %s)\n",
                set.c_str(), rx * 1e3, pc * 1e3, pc / rx, pc / rx >= 20 ? "met" : "NOT met");
  const Workload& sized = *sets.back();
  std::string n = std::to_string(sized.re2_ok.size());
  double bx = reporter.median("bysize/regexd/" + n), bp = reporter.median("bysize/pcre2_loop/" + n),
         b2 = reporter.median("bysize/re2_set/" + n);
  if (bx > 0 && bp > 0 && b2 > 0)
    std::printf("summary: bysize/%s (RE2-compatible rules): regexd %.2f ms, pcre2_loop %.2f ms, re2_set %.2f ms: "
                "regexd is %.1fx faster than the PCRE2 loop and %.1fx faster than RE2::Set\n",
                n.c_str(), bx * 1e3, bp * 1e3, b2 * 1e3, bp / bx, b2 / bx);
  if (g_failed) std::fprintf(stderr, "scan bench: some benchmarks failed their answer check (see above)\n");
  return g_failed ? 1 : 0;
}
