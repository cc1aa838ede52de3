// Cache: compile vs save vs load (deserialize) vs shared-image load, on the
// full SpamAssassin rule set.  The target: loading from the cache is
// at least 1000x faster than compiling, in one run of this binary; after the
// benchmarks it prints the ratios of the medians as "summary:" lines.
// REGEXD_BENCH_SMOKE=1 uses the bundled sample rules instead.
//
// The remote tier (issue 15): a start that finds the entry in Redis (a
// private redis-server started here; skipped without one): fetch, signature
// check, decompression, atomic write into an empty local cache, load; next
// to the local hit and the compile, with the entry's size plain and sealed
// (zstd), and what decompressing it would cost a local load.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "redis_server.h"
#include "regexd/cache/compress.h"
#include "regexd/cache/remote_store.h"
#include "regexd/cache/signing.h"
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

// The entry's bytes (plain .rxdb), made once.
const std::string& entry_bytes() {
  static const std::string bytes = [] {
    auto tags = cache::current_tags();
    auto key = cache::compute_key(rules(), {}, *tags);
    auto b = cache::encode_entry(compiled()->compiled(), key, *tags, "spamassassin");
    if (!b) {
      std::fprintf(stderr, "cache bench: %s\n", b.error().message.c_str());
      std::exit(1);
    }
    return std::move(*b);
  }();
  return bytes;
}

std::uint64_t g_entry_bytes = 0, g_sealed_bytes = 0;

// A host with an empty local cache whose entry is in Redis: one start's
// load, each iteration on a fresh local root.
void BM_RemoteHitSpamAssassin(benchmark::State& state) {
  if (regexd::testing::RedisServer::binary().empty()) {
    state.SkipWithError("redis-server is not installed");
    return;
  }
  regexd::testing::RedisServer redis(bench_root() / "redis");
  auto keys = cache::generate_key_pair();
  if (!redis.running() || !keys) {
    g_failed = true;
    state.SkipWithError("cannot start redis-server");
    return;
  }
  cache::RemoteOptions ro;
  ro.endpoint = redis.socket();
  ro.io_timeout = std::chrono::seconds(10);
  ro.signing_key = keys->secret;
  ro.trusted = {keys->public_key};
  auto remote = cache::RemoteStore::open_redis(ro, [](cache::LogLevel, const std::string&) {});
  std::shared_ptr<cache::RemoteStore> shared = std::move(*remote);
  auto tags = cache::current_tags();
  auto key = cache::compute_key(rules(), {}, *tags);
  shared->publish(tags->dir_name(), key, entry_bytes());
  if (shared->stats().published.load() != 1) {
    g_failed = true;
    state.SkipWithError("could not publish the entry");
    return;
  }
  auto sealed = cache::seal_entry(tags->dir_name(), key, entry_bytes(), keys->secret);
  g_entry_bytes = entry_bytes().size();
  g_sealed_bytes = sealed->size();
  std::shared_ptr<const engine::Scanner> last;
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    cache::StoreOptions o;
    o.root = bench_root() / ("host" + std::to_string(n++));
    o.log = [](cache::LogLevel, const std::string&) {};
    o.remote = shared;
    auto store = cache::Store::open(o);
    state.ResumeTiming();
    bool from_remote = false;
    auto s = (*store)->get(key, nullptr, &from_remote);
    if (!s || !from_remote) {
      g_failed = true;
      state.SkipWithError(s ? "not loaded from the remote" : s.error().message.c_str());
      break;
    }
    last = std::move(*s);
    state.PauseTiming();
    std::error_code ec;
    fs::remove_all(o.root, ec);
    state.ResumeTiming();
  }
  state.counters["entry_bytes"] = static_cast<double>(g_entry_bytes);
  state.counters["sealed_bytes"] = static_cast<double>(g_sealed_bytes);
  if (last)
    if (auto err = compare_answers(*last, *compiled()); !err.empty()) {
      g_failed = true;
      state.SkipWithError(err.c_str());
    }
}

// What a compressed local file would add to every local load.
void BM_DecompressEntrySpamAssassin(benchmark::State& state) {
  auto z = cache::compress_zstd(entry_bytes());
  for (auto _ : state) {
    auto d = cache::decompress_zstd(*z, entry_bytes().size(), entry_bytes().size());
    if (!d) state.SkipWithError(d.error().message.c_str());
    benchmark::DoNotOptimize(d->data());
  }
  state.counters["zstd_bytes"] = static_cast<double>(z->size());
}

BENCHMARK(BM_CompileSpamAssassin)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_SaveSpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoadSpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoadSharedImageSpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RemoteHitSpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DecompressEntrySpamAssassin)->Unit(benchmark::kMillisecond)->UseRealTime();

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
  double local = reporter.median("BM_LoadSpamAssassin"), remote = reporter.median("BM_RemoteHitSpamAssassin"),
         unzstd = reporter.median("BM_DecompressEntrySpamAssassin");
  if (compile > 0 && local > 0 && remote > 0)
    std::printf("summary: %s rules: start from compile %.1f ms, from a local hit %.1f ms, from a remote hit %.1f ms "
                "(Redis fetch + signature + zstd + local save + load)\n",
                set, compile * 1e3, local * 1e3, remote * 1e3);
  if (g_entry_bytes > 0 && unzstd > 0)
    std::printf("summary: %s entry %llu bytes plain, %llu bytes sealed (zstd level %d, %.1f%%); decompressing "
                "costs %.1f ms per load, %.0f%% of a local hit\n",
                set, static_cast<unsigned long long>(g_entry_bytes), static_cast<unsigned long long>(g_sealed_bytes),
                cache::kCompressionLevel, 100.0 * static_cast<double>(g_sealed_bytes) / static_cast<double>(g_entry_bytes),
                unzstd * 1e3, local > 0 ? 100.0 * unzstd / local : 0.0);
  return g_failed ? 1 : 0;
}
