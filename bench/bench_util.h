// Shared inputs of the benchmarks: SpamAssassin's rules (Debian package
// spamassassin) and the public corpus (scripts/fetch-corpus.sh).
#pragma once

#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "regexd/engine/rule.h"

namespace regexd::bench {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// REGEXD_BENCH_SMOKE=1: the ctest smoke run.  Benchmarks then use the bundled
// sample rules and a handful of messages, so the whole suite runs in seconds
// and only proves that it still builds, runs and agrees with its peers.
inline bool smoke() {
  const char* v = std::getenv("REGEXD_BENCH_SMOKE");
  return v && *v && std::string(v) != "0";
}

// Number of corpus messages a scan benchmark uses (REGEXD_BENCH_MESSAGES).
inline std::size_t message_count(std::size_t full, std::size_t smoke_count) {
  const char* v = std::getenv("REGEXD_BENCH_MESSAGES");
  if (v && *v) return static_cast<std::size_t>(std::strtoull(v, nullptr, 10));
  return smoke() ? smoke_count : full;
}

// The bundled sample rule set (rules/sample.rules), native format.
inline engine::RuleSet sample_rules() {
  std::filesystem::path p = std::filesystem::path(REGEXD_SOURCE_DIR) / "rules" / "sample.rules";
  return engine::parse_native(slurp(p), p.string());
}

// All SpamAssassin regex rules, with their per-kind classes (body, rawbody,
// full, url, header:*), later definitions winning as in SpamAssassin.
inline engine::RuleSet spamassassin_rules(bool headers = true, const char* force_class = nullptr) {
  std::filesystem::path dir = env_or("REGEXD_SA_RULES_DIR", "/usr/share/spamassassin");
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".cf") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  engine::SpamAssassinOptions o;
  o.include_headers = headers;
  if (force_class) o.force_class = force_class;
  return engine::load_spamassassin_files(files, o);
}

// The rules of `set` for which `keep(rule)` is true, in order.
template <typename Pred>
engine::RuleSet filter_rules(const engine::RuleSet& set, Pred keep) {
  engine::RuleSet out;
  for (const auto& r : set.rules)
    if (keep(r)) out.rules.push_back(r);
  return out;
}

// Up to `n` corpus messages, spread evenly over the manifest.
inline std::vector<std::string> corpus_messages(std::size_t n) {
  std::filesystem::path root = env_or("REGEXD_CORPUS_DIR", "");
  if (root.empty()) root = std::filesystem::path(env_or("HOME", "/root")) / ".cache/regexd/corpus";
  std::vector<std::string> paths;
  std::ifstream manifest(root / "MANIFEST.tsv");
  std::string line;
  while (std::getline(manifest, line)) {
    auto a = line.find('\t'), b = line.find('\t', a + 1);
    if (a != std::string::npos && b != std::string::npos) paths.push_back(line.substr(a + 1, b - a - 1));
  }
  std::vector<std::string> out;
  if (paths.empty()) return out;
  double step = std::max(1.0, static_cast<double>(paths.size()) / static_cast<double>(n));
  for (double i = 0; i < static_cast<double>(paths.size()) && out.size() < n; i += step)
    out.push_back(slurp(root / paths[static_cast<std::size_t>(i)]));
  return out;
}

// Console reporter that also remembers the time per iteration of every
// non-aggregate run, so a binary can print ratios between benchmarks of the
// same run (e.g. "load is N times faster than compile") after they finish.
// The time is the one the benchmark reports: wall time for UseRealTime()
// benchmarks (multi-threaded compiles, I/O), else CPU time (single-threaded
// scans, less disturbed by other load on the machine), as bench/compare does.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  RecordingReporter() : ConsoleReporter(OO_Tabular) {}  // no colours: the summary lines get grepped
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_type == Run::RT_Iteration && !r.error_occurred && r.iterations > 0) {
        double t = r.run_name.time_type.empty() ? r.cpu_accumulated_time : r.real_accumulated_time;
        seconds_[r.run_name.function_name].push_back(t / static_cast<double>(r.iterations));
      }
    ConsoleReporter::ReportRuns(runs);
  }
  // Median seconds per iteration over the repetitions of `name`; 0 if it did not run.
  double median(const std::string& name) const {
    auto it = seconds_.find(name);
    if (it == seconds_.end() || it->second.empty()) return 0;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

 private:
  std::map<std::string, std::vector<double>> seconds_;
};

// Megabytes the program holds allocated on the heap: jemalloc's
// stats.allocated when the binary runs on jemalloc (looked up, not linked),
// else glibc's mallinfo2().  Unlike the resident size it falls when memory is
// freed, so a benchmark that builds its own matcher measures that matcher's
// growth afresh even after an earlier one was freed.
inline double heap_mb() {
  using mallctl_fn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
  static auto* mallctl = reinterpret_cast<mallctl_fn>(::dlsym(RTLD_DEFAULT, "mallctl"));
  if (mallctl) {
    std::uint64_t epoch = 1;
    std::size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);  // refresh the statistics
    std::size_t allocated = 0;
    len = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) == 0)
      return static_cast<double>(allocated) / (1024.0 * 1024.0);
  }
  const struct mallinfo2 mi = ::mallinfo2();
  return static_cast<double>(mi.uordblks + mi.hblkhd) / (1024.0 * 1024.0);
}

}  // namespace regexd::bench
