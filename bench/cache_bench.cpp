// Cache: compile vs save vs load (deserialize) vs shared-image load, on the
// full SpamAssassin rule set.  The target: loading from the cache is
// at least 1000x faster than compiling, in one run of this binary.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bench_util.h"
#include "regexd/cache/store.h"

namespace {

using namespace regexd;
namespace fs = std::filesystem;

const engine::RuleSet& rules() {
  static const engine::RuleSet r = bench::spamassassin_rules();
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

void BM_SaveSpamAssassin(benchmark::State& state) {
  auto store = open(false);
  auto scanner = *engine::Scanner::compile(rules(), {}, nullptr);
  auto key = store->key_for(rules(), {});
  for (auto _ : state)
    if (auto st = store->put(key, *scanner, "spamassassin"); !st) state.SkipWithError(st.error().message.c_str());
}

// Loads the entry (made once if missing) again and again; `shared` loads
// through the mapped shared image instead of deserializing.
void load_benchmark(benchmark::State& state, bool shared) {
  auto store = open(shared);
  auto key = store->key_for(rules(), {});
  if (!store->get(key) && !store->put(key, **engine::Scanner::compile(rules(), {}, nullptr), "spamassassin"))
    state.SkipWithError("cannot save the entry");
  for (auto _ : state) {
    auto s = store->get(key);
    if (!s) state.SkipWithError(s.error().message.c_str());
    benchmark::DoNotOptimize(s);
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
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(bench_root(), ec);
  return 0;
}
