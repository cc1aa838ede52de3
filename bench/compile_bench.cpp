// Compile time per class and for the whole rule set (classification probes
// included, CompileOptions defaults: all cores).  Wall time, since compiling
// runs on several threads and in forked probe children.
//
// Benchmarks: compile/<set>/<class> and compile/<set>/all, for the
// SpamAssassin rules (header rules grouped as "header:*", one database per
// header name inside) and the bundled sample rules.  Counters give the tier
// split and the size of the Hyperscan databases.  REGEXD_BENCH_SMOKE=1: the
// sample rules only.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <set>
#include <string>

#include "bench_util.h"
#include "regexd/engine/engine.h"

namespace {

using namespace regexd;

void compile_benchmark(benchmark::State& state, const engine::RuleSet& rules) {
  engine::CompileReport report;
  for (auto _ : state) {
    report = {};
    auto s = engine::Scanner::compile(rules, {}, &report);
    if (!s) {
      state.SkipWithError(s.error().message.c_str());
      return;
    }
  }
  std::size_t native = 0, prefilter = 0, pcre2 = 0, re2 = 0, bytes = 0;
  for (const auto& c : report.classes) {
    native += c.native;
    prefilter += c.prefilter;
    pcre2 += c.pcre2;
    re2 += c.re2 + c.re2_prefilter;
    bytes += c.database_bytes;
  }
  state.counters["rules"] = static_cast<double>(report.rules_total);
  state.counters["classes"] = static_cast<double>(report.classes.size());
  state.counters["native"] = static_cast<double>(native);
  state.counters["prefilter"] = static_cast<double>(prefilter);
  state.counters["pcre2"] = static_cast<double>(pcre2);
  state.counters["re2"] = static_cast<double>(re2);
  state.counters["db_bytes"] = static_cast<double>(bytes);
}

// Header classes are many (one per header name) and small, so they are
// measured together.
std::string group_of(const engine::Rule& r) { return r.cls.rfind("header:", 0) == 0 ? "header:*" : r.cls; }

void register_set(const std::string& name, const engine::RuleSet& rules) {
  std::set<std::string> groups;
  for (const auto& r : rules.rules) groups.insert(group_of(r));
  for (const auto& g : groups) {
    auto subset = bench::filter_rules(rules, [g](const engine::Rule& r) { return group_of(r) == g; });
    benchmark::RegisterBenchmark(("compile/" + name + "/" + g).c_str(),
                                 [subset](benchmark::State& st) { compile_benchmark(st, subset); })
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark(("compile/" + name + "/all").c_str(),
                               [rules](benchmark::State& st) { compile_benchmark(st, rules); })
      ->Unit(benchmark::kMillisecond)
      ->Iterations(1)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_set("sample", bench::sample_rules());
  if (!bench::smoke()) {
    auto sa = bench::spamassassin_rules();
    if (sa.rules.size() < 500) {
      std::fprintf(stderr, "compile bench: only %zu SpamAssassin rules found; install Debian's spamassassin\n",
                   sa.rules.size());
      return 1;
    }
    register_set("sa", sa);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
