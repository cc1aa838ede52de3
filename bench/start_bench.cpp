// The in-process parts of a warm daemon start on SpamAssassin's rule set
// (bench/daemon_start.sh times the whole process): reading and parsing the
// .cf files, the cache key, and the per-version message plan (metas, header
// defaults) that the first SCAN waits for.  Each part is on the path from
// exec to the first answer, so a regression here is a regression of the
// issue-13 target "a warm daemon answers its first SCAN within 50 ms".
// REGEXD_BENCH_SMOKE=1 uses the bundled sample rules for the key and the plan.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "regexd/cache/store.h"
#include "regexd/engine/message.h"

namespace {

using namespace regexd;

const engine::RuleSet &rules() {
  static const engine::RuleSet r =
      bench::smoke() ? bench::sample_rules() : bench::spamassassin_rules();
  return r;
}

// SpamAssassin's files in smoke runs too: the format whose parse a warm
// start waits for (the spamassassin package is a test dependency).
void BM_ParseSpamAssassin(benchmark::State &state) {
  if (!std::filesystem::exists(
          bench::env_or("REGEXD_SA_RULES_DIR", "/usr/share/spamassassin") +
          "/72_active.cf")) {
    state.SkipWithError(
        "SpamAssassin's rules are not installed (package spamassassin)");
    return;
  }
  std::size_t n = 0;
  for (auto _ : state) {
    engine::RuleSet r = bench::spamassassin_rules();
    n = r.rules.size() + r.metas.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["rules+metas"] = static_cast<double>(n);
}

void BM_CacheKey(benchmark::State &state) {
  cache::StoreOptions o;
  o.root = std::filesystem::temp_directory_path() / "regexd_start_bench_unused";
  o.log = [](cache::LogLevel, const std::string &) {};
  auto store = cache::Store::open(o);
  if (!store) {
    state.SkipWithError(store.error().message.c_str());
    return;
  }
  const auto &r = rules();
  engine::CompileOptions co;
  for (auto _ : state)
    benchmark::DoNotOptimize((*store)->key_for(r, co));
  std::filesystem::remove_all(o.root);
}

void BM_MessagePlan(benchmark::State &state) {
  const auto &r = rules();
  for (auto _ : state) {
    std::vector<engine::RuleError> errors;
    benchmark::DoNotOptimize(engine::MessagePlan::build(r, &errors));
  }
}

BENCHMARK(BM_ParseSpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CacheKey)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MessagePlan)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
