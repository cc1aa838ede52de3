// SCAN over the Unix socket with 1, 2 and 8 clients, next to in-process
// scans of the same messages, on SpamAssassin's rules and the public corpus.
// The target: at the median message size the socket round trip adds
// under 10% to the in-process scan (compare BM_Median/InProcess with
// BM_Median/Socket; the binary prints the ratio at the end).
//
// Environment: REGEXD_BENCH_MESSAGES (default 400) messages from the corpus.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "bench_util.h"
#include "regexd/server/client.h"
#include "regexd/server/registry.h"
#include "regexd/server/server.h"

namespace {

using namespace regexd;
namespace fs = std::filesystem;
namespace p = regexd::server::protocol;

// The classes a message is scanned with: SpamAssassin's body-type rules see
// the message text; the same buffers go in-process and over the socket.
constexpr const char* kClasses[] = {"body", "rawbody", "full"};

struct Fixture {
  std::vector<std::string> messages;
  std::string median;
  fs::path dir;
  std::unique_ptr<server::Registry> registry;
  std::unique_ptr<server::Server> srv;
  server::ServerConfig cfg;

  Fixture() {
    std::size_t n = std::stoul(bench::env_or("REGEXD_BENCH_MESSAGES", "400"));
    messages = bench::corpus_messages(n);
    if (messages.empty()) {
      std::fprintf(stderr, "server bench: no corpus (run scripts/fetch-corpus.sh or set REGEXD_CORPUS_DIR)\n");
      std::exit(1);
    }
    std::vector<std::string> sorted = messages;
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
    median = sorted[sorted.size() / 2];
    registry = std::make_unique<server::Registry>(server::Registry::Options{});
    if (!registry->load("sa", bench::spamassassin_rules(false))) std::exit(1);
    registry->wait_idle();  // Hyperscan, not the PCRE2 stand-in
    dir = fs::temp_directory_path() / ("rxsb_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    cfg.socket = dir / "s.sock";
    srv = std::make_unique<server::Server>(cfg, *registry);
    if (auto st = srv->bind(); !st) {
      std::fprintf(stderr, "server bench: %s\n", st.error().message.c_str());
      std::exit(1);
    }
    srv->start();
  }
  ~Fixture() {
    srv->stop();
    fs::remove_all(dir);
  }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

std::size_t scan_in_process(const engine::Scanner& s, const std::string& msg) {
  std::size_t hits = 0;
  for (const char* cls : kClasses) hits += s.scan(cls, msg)->hits.size();
  return hits;
}

std::size_t scan_socket(server::Client& c, const std::string& msg) {
  p::ScanRequest q;
  q.ruleset = "sa";
  for (const char* cls : kClasses) q.buffers.emplace_back(cls, msg);
  auto r = c.scan(q);
  if (!r) {
    std::fprintf(stderr, "server bench: %s\n", r.error().message.c_str());
    std::exit(1);
  }
  return r->hits.size();
}

void set_latency_counters(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = benchmark::Counter(us[us.size() / 2], benchmark::Counter::kAvgThreads);
  state.counters["p99_us"] = benchmark::Counter(us[us.size() * 99 / 100], benchmark::Counter::kAvgThreads);
}

void BM_Corpus_InProcess(benchmark::State& state) {
  auto& f = fx();
  auto v = f.registry->find("sa");
  std::size_t i = 0, bytes = 0;
  std::vector<double> us;
  for (auto _ : state) {
    const auto& m = f.messages[i++ % f.messages.size()];
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(scan_in_process(*v->scanner, m));
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    bytes += m.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  set_latency_counters(state, us);
}

void BM_Corpus_Socket(benchmark::State& state) {
  auto& f = fx();
  auto c = server::Client::connect(f.cfg.socket.string());
  if (!c) {
    state.SkipWithError(c.error().message.c_str());
    return;
  }
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919, bytes = 0;
  std::vector<double> us;
  for (auto _ : state) {
    const auto& m = f.messages[i++ % f.messages.size()];
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(scan_socket(**c, m));
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    bytes += m.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  set_latency_counters(state, us);
}

void BM_Median_InProcess(benchmark::State& state) {
  auto& f = fx();
  auto v = f.registry->find("sa");
  for (auto _ : state) benchmark::DoNotOptimize(scan_in_process(*v->scanner, f.median));
  state.counters["bytes"] = static_cast<double>(f.median.size());
}

// state.range(0): the client's busy-poll time in microseconds (0: it blocks
// in recv like Rspamd's event loop; 5000: it polls, so what is measured is
// the round trip without the waking of a halted client CPU).
void BM_Median_Socket(benchmark::State& state) {
  auto& f = fx();
  auto c = server::Client::connect(f.cfg.socket.string());
  if (!c) {
    state.SkipWithError(c.error().message.c_str());
    return;
  }
  (*c)->set_busy_poll(std::chrono::microseconds(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(scan_socket(**c, f.median));
  state.counters["bytes"] = static_cast<double>(f.median.size());
}

BENCHMARK(BM_Corpus_InProcess)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Corpus_Socket)->Threads(1)->Threads(2)->Threads(8)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Median_InProcess)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Median_Socket)->ArgName("busy_poll_us")->Arg(0)->Arg(5000)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Prints the socket overhead at the median message size after the run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      double t = r.GetAdjustedRealTime();
      if (r.benchmark_name().rfind("BM_Median_InProcess", 0) == 0) in_ = t;
      if (r.benchmark_name().rfind("BM_Median_Socket/busy_poll_us:0/", 0) == 0) sock_ = t;
      if (r.benchmark_name().rfind("BM_Median_Socket/busy_poll_us:5000/", 0) == 0) poll_ = t;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    if (in_ > 0 && sock_ > 0)
      std::printf("socket overhead at the median message size (%zu bytes): %+.1f%% (target: under +10%%)\n",
                  fx().median.size(), (sock_ / in_ - 1) * 100);
    if (in_ > 0 && poll_ > 0)
      std::printf("socket overhead at the median message size with a polling client: %+.1f%%\n",
                  (poll_ / in_ - 1) * 100);
  }

 private:
  double in_ = 0, sock_ = 0, poll_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
