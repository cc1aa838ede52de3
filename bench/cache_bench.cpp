// Cache: compile vs save vs load (deserialize) vs shared-image load, on the
// full SpamAssassin rule set.  The target: loading from the cache is
// at least 1000x faster than compiling, in one run of this binary; after the
// benchmarks it prints the ratios of the medians as "summary:" lines.
// REGEXD_BENCH_SMOKE=1 uses the bundled sample rules instead.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "regexd/cache/store.h"

namespace {

using namespace regexd;
namespace fs = std::filesystem;

const engine::RuleSet& rules() {
  static const engine::RuleSet r = bench::smoke() ? bench::sample_rules() : bench::spamassassin_rules();
  return r;
}

fs::path bench_root() {
  static const fs::path p = [] {
    fs::path d = fs::temp_directory_path() / ("regexd_cache_bench_" + std::to_string(::getpid()));
    fs::remove_all(d);
    return d;
  }();
  return p;
}

std::unique_ptr<cache::Store> open(bool shared) {
  cache::StoreOptions o;
  o.root = bench_root();
  o.shared_images = shared;
  o.log = [](cache::LogLevel, const std::string&) {};
  auto store = cache::Store::open(o);
  if (!store) {
    std::fprintf(stderr, "cache bench: %s\n", store.error().message.c_str());
    std::exit(1);
  }
  return std::move(store.value());
}

void BM_CompileSpamAssassin(benchmark::State& state) {
  for (auto _ : state) {
    engine::CompileReport report;
    auto s = engine::Scanner::compile(rules(), {}, &report);
    if (!s) state.SkipWithError(s.error().message.c_str());
    state.counters["rules"] = static_cast<double>(report.rules_total);
  }
}

// One compiled scanner, the reference for the loads' answers.
const std::shared_ptr<const engine::Scanner>& compiled() {
  static const std::shared_ptr<const engine::Scanner> s = [] {
    auto r = engine::Scanner::compile(rules(), {}, nullptr);
    if (!r) {
      std::fprintf(stderr, "cache bench: cannot compile the rules: %s\n", r.error().message.c_str());
      std::exit(1);
    }
    return std::move(*r);
  }();
  return s;
}

// Every class of `got` and `want` over a few raw corpus messages (or the
// sample message): empty if all answers agree, else the first difference.
std::string compare_answers(const engine::Scanner& got, const engine::Scanner& want) {
  static const std::vector<std::string> msgs = [] {
    auto m = bench::corpus_messages(20);
    m.push_back(bench::slurp(fs::path(REGEXD_SOURCE_DIR) / "rules" / "sample-message.eml"));
    return m;
  }();
  if (got.classes() != want.classes()) return "the loaded scanner has other classes";
  for (std::size_t k = 0; k < msgs.size(); ++k)
    for (const auto& cls : want.classes()) {
      auto a = got.scan(cls, msgs[k]), b = want.scan(cls, msgs[k]);
      if (!a || !b || a->hits != b->hits || a->limited != b->limited)
        return "class " + cls + ", message " + std::to_string(k) + ": the loaded scanner answers differently";
    }
  return {};
}

bool g_failed = false;

void BM_SaveSpamAssassin(benchmark::State& state) {
  auto store = open(false);
  auto key = store->key_for(rules(), {});
  const engine::Scanner& scanner = *compiled();  // compiled before the clock starts
  for (auto _ : state)
    if (auto st = store->put(key, scanner, "spamassassin"); !st) state.SkipWithError(st.error().message.c_str());
}

// Loads the entry (made once if missing) again and again; `shared` loads
// through the mapped shared image instead of deserializing.  The loaded
// scanner must come from where it should and answer like the compiled one.
void load_benchmark(benchmark::State& state, bool shared) {
  auto store = open(shared);
  auto key = store->key_for(rules(), {});
  if (!store->get(key) && !store->put(key, *compiled(), "spamassassin")) {
    g_failed = true;
    state.SkipWithError("cannot save the entry");
    return;
  }
  auto want = shared ? cache::LoadResult::Source::kSharedImage : cache::LoadResult::Source::kCache;
  std::shared_ptr<const engine::Scanner> last;
  for (auto _ : state) {
    cache::LoadResult::Source src{};
    auto s = store->get(key, &src);
    if (!s || src != want) {
      g_failed = true;
      state.SkipWithError(s ? "loaded from the wrong source" : s.error().message.c_str());
      break;
    }
    last = std::move(*s);
  }
  if (last)
    if (auto err = compare_answers(*last, *compiled()); !err.empty()) {
      g_failed = true;
      state.SkipWithError(err.c_str());
    }
}
void BM_LoadSpamAssassin(benchmark::State& state) { load_benchmark(state, false); }
void BM_LoadSharedImageSpamAssassin(benchmark::State& state) { load_benchmark(state, true); }

BENCHMARK(BM_CompileSpamAssassin)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_SaveSpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoadSpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoadSharedImageSpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  bench::RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(bench_root(), ec);

  const char* set = bench::smoke() ? "sample" : "SpamAssassin";
  double compile = reporter.median("BM_CompileSpamAssassin");
  for (const char* load : {"BM_LoadSpamAssassin", "BM_LoadSharedImageSpamAssassin"}) {
    double t = reporter.median(load);
    if (compile > 0 && t > 0)
      std::printf("summary: %s rules: compile %.1f ms, %s %.3f ms: load is %.0fx faster (target 1000x: %s)\n", set,
                  compile * 1e3, load, t * 1e3, compile / t, compile / t >= 1000 ? "met" : "NOT met");
  }
  return g_failed ? 1 : 0;
}
