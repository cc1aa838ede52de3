// Soak (issue 14): good clients scanning while hostile ones attack a real
// regexd process.  Not a timed test: it prints figures for docs/benchmarks.md.
//
//   quiet run:  G good clients scan corpus messages for Q seconds;
//   attack run: the same G good clients for A seconds while H hostile ones
//               (slow, oversize, non-reading, garbage, rule pushers, huge
//               scans) attack; each reconnects whenever the daemon closes it.
// Every good reply is compared with the in-process answer of the same rules
// (engine::MessagePlan over the same buffers): any difference is a wrong
// answer.  The daemon's RSS is sampled every 250 ms.
//
// usage: regexd_soak_bench REGEXD_BINARY [--good 64] [--hostile 64] [--quiet 20] [--attack 60]
//        [--check]   (exit 1 on any wrong answer or failed good request: a few-second ctest)
//        [--compile-nice N] [--heavy-nice N]   (the daemon's compile.nice / server.heavy_nice;
//                     default: the daemon's defaults; 0 and 0: the priorities before issue 14's fix)
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "regexd/engine/message.h"
#include "regexd/server/client.h"

namespace {

using namespace regexd;
namespace fs = std::filesystem;
namespace p = regexd::server::protocol;
using Clock = std::chrono::steady_clock;

struct Shared {
  std::string socket;
  std::vector<std::string> messages;
  std::vector<std::string> classes;
  std::vector<std::vector<std::pair<std::string, std::uint32_t>>> expected;  // per message
  std::atomic<bool> stop{false};
};

struct GoodStats {
  std::vector<double> us;
  std::uint64_t wrong = 0, failed = 0;
};

p::ScanRequest request_for(const Shared& s, std::size_t i) {
  p::ScanRequest q;
  q.ruleset = "soak";
  for (const auto& cls : s.classes) q.buffers.emplace_back(cls, s.messages[i]);
  return q;
}

void good_client(Shared& s, int seed, GoodStats& out) {
  std::unique_ptr<server::Client> c;
  std::size_t i = static_cast<std::size_t>(seed) * 7;
  while (!s.stop) {
    if (!c) {
      auto got = server::Client::connect(s.socket, std::chrono::seconds(30));
      if (!got) {
        ++out.failed;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      c = std::move(*got);
    }
    std::size_t m = i++ % s.messages.size();
    auto t0 = Clock::now();
    auto r = c->scan(request_for(s, m));
    double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (!r) {
      ++out.failed;
      c.reset();
      continue;
    }
    out.us.push_back(us);
    if (r->hits != s.expected[m] || !r->limited.empty()) ++out.wrong;
  }
}

int raw_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}
bool send_some(int fd, std::string_view b) { return ::send(fd, b.data(), b.size(), MSG_NOSIGNAL) > 0; }
// Reads whatever comes until the daemon closes (or `limit` passes).
void read_until_closed(int fd, const std::atomic<bool>& stop, std::chrono::seconds limit) {
  char buf[65536];
  auto end = Clock::now() + limit;
  while (!stop && Clock::now() < end) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return;
  }
}

enum Kind { kSlow, kOversize, kNonReading, kGarbage, kPusher, kHugeScan, kKinds };
const char* kKindNames[] = {"slow", "oversize", "non-reading", "garbage", "rule pusher", "huge scan"};

void hostile_client(Shared& s, int n, std::atomic<std::uint64_t>& attacks) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(n) * 7919);
  Kind kind = static_cast<Kind>(n % kKinds);
  std::string huge(3u << 20, 'x');
  for (std::size_t i = 0; i < huge.size(); i += 97) huge[i] = ' ';
  int pushes = 0;
  while (!s.stop) {
    int fd = raw_connect(s.socket);
    if (fd < 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    attacks.fetch_add(1, std::memory_order_relaxed);
    std::string frame;
    switch (kind) {
      case kSlow: {  // a frame, one byte every 200 ms
        frame = p::encode_frame(1, p::kPing, 0, std::string(4000, 'x'));
        for (char ch : frame)
          if (s.stop || !send_some(fd, std::string_view(&ch, 1))) break;
          else std::this_thread::sleep_for(std::chrono::milliseconds(200));
        break;
      }
      case kOversize: {  // a length over max_frame, then bytes
        std::uint32_t len = 0x7fffffff;
        frame.assign(reinterpret_cast<const char*>(&len), 4);
        frame += std::string(60000, 'y');
        send_some(fd, frame);
        read_until_closed(fd, s.stop, std::chrono::seconds(5));
        break;
      }
      case kNonReading: {  // pipelines SCANs, reads nothing
        frame = p::encode_frame(1, p::kScan, 0, p::encode_scan(request_for(s, static_cast<std::size_t>(n) % s.messages.size())));
        while (!s.stop && send_some(fd, frame)) {
        }
        break;
      }
      case kGarbage: {
        std::string junk(4096, '\0');
        for (auto& ch : junk) ch = static_cast<char>(rng());
        send_some(fd, junk);
        read_until_closed(fd, s.stop, std::chrono::seconds(5));
        break;
      }
      case kPusher: {  // new names, many rules, some hostile
        std::string text;
        // Appended piece by piece: `"R" + std::to_string(r)` trips GCC 12's
        // -Wrestrict false positive at -O3 (GCC bug 105329) in the bench preset.
        for (int r = 0; r < 2000; ++r)
          text.append("R").append(std::to_string(r)).append(" body /p").append(std::to_string(rng() % 100000))
              .append("[a-z]{1,20}q/\n");
        std::string groups;
        for (int g = 0; g < 3000; ++g) groups += "(x)?";
        text += "H body /" + groups + "(?:a|b)*c/O\n";
        frame = p::encode_frame(1, p::kLoadRules, 0,
                                p::encode_load_rules({"push" + std::to_string(n) + "_" + std::to_string(pushes++),
                                                      "native", "", text}));
        send_some(fd, frame);
        read_until_closed(fd, s.stop, std::chrono::seconds(2));
        break;
      }
      case kHugeScan: {  // 3 MiB SCANs (heavy requests), replies read
        p::ScanRequest q;
        q.ruleset = "soak";
        q.buffers = {{s.classes.front(), huge}};
        frame = p::encode_frame(1, p::kScan, 0, p::encode_scan(q));
        for (int k = 0; k < 5 && !s.stop; ++k) {
          if (!send_some(fd, frame)) break;
          char buf[4096];
          if (::recv(fd, buf, sizeof(buf), 0) <= 0) break;
        }
        break;
      }
      case kKinds: break;
    }
    ::close(fd);
  }
}

long rss_kib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  return -1;
}

struct RunResult {
  double p50 = 0, p99 = 0;
  std::uint64_t scans = 0, wrong = 0, failed = 0, attacks = 0;
  long rss_max = 0;
};

RunResult run(Shared& s, pid_t daemon, int good, int hostile, int seconds) {
  s.stop = false;
  std::vector<GoodStats> stats(static_cast<std::size_t>(good));
  std::atomic<std::uint64_t> attacks{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < good; ++i) threads.emplace_back(good_client, std::ref(s), i, std::ref(stats[static_cast<std::size_t>(i)]));
  for (int i = 0; i < hostile; ++i) threads.emplace_back(hostile_client, std::ref(s), i, std::ref(attacks));
  RunResult r;
  auto end = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    r.rss_max = std::max(r.rss_max, rss_kib(daemon, "VmRSS:"));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  s.stop = true;
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& g : stats) {
    all.insert(all.end(), g.us.begin(), g.us.end());
    r.wrong += g.wrong;
    r.failed += g.failed;
  }
  std::sort(all.begin(), all.end());
  r.scans = all.size();
  if (!all.empty()) {
    r.p50 = all[all.size() / 2];
    r.p99 = all[all.size() * 99 / 100];
  }
  r.attacks = attacks.load();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s REGEXD_BINARY [--good N] [--hostile N] [--quiet S] [--attack S] [--check]\n", argv[0]);
    return 2;
  }
  std::string regexd = argv[1];
  int good = 64, hostile = 64, quiet = 20, attack = 60;
  bool check = false;
  int compile_nice = -1, heavy_nice = -1;  // -1: the daemon's default
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--good") good = next();
    else if (a == "--hostile") hostile = next();
    else if (a == "--quiet") quiet = next();
    else if (a == "--attack") attack = next();
    else if (a == "--check") check = true;
    else if (a == "--compile-nice") compile_nice = next();
    else if (a == "--heavy-nice") heavy_nice = next();
  }
  ::signal(SIGPIPE, SIG_IGN);
  Shared s;
  s.messages = bench::corpus_messages(bench::message_count(200, 20));
  if (s.messages.empty())
    for (int i = 0; i < 50; ++i) s.messages.push_back("Subject: hello " + std::to_string(i) + "\n\ncheap viagra casino " + std::string(static_cast<std::size_t>(i) * 100, 'z'));
  // The rules: the bundled sample set (the daemon serves the same file).
  fs::path dir = fs::temp_directory_path() / ("rxsoak_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all);
  fs::path rules_file = fs::path(REGEXD_SOURCE_DIR) / "rules" / "sample.rules";
  engine::RuleSet rules = engine::parse_native(bench::slurp(rules_file), rules_file.string());
  engine::CompileOptions pcre2_only;
  pcre2_only.pcre2_only = true;  // the reference: PCRE2's answer
  auto scanner = engine::Scanner::compile(rules, pcre2_only, nullptr);
  auto plan = engine::MessagePlan::build(rules, nullptr);
  if (!scanner) return 1;
  s.classes = (*scanner)->classes();
  for (const auto& m : s.messages) {
    std::vector<engine::MessageBuffer> b;
    for (const auto& cls : s.classes) b.push_back({cls, m});
    auto r = plan->scan(**scanner, b, {});
    if (!r) return 1;
    s.expected.emplace_back(r->hits.begin(), r->hits.end());
  }
  s.socket = (dir / "s.sock").string();
  std::ofstream(dir / "regexd.toml") << "[server]\nsocket = \"" << s.socket << "\"\nload_rules = \"new\"\n"
                                     << "max_frame = \"8M\"\nframe_timeout = \"5s\"\nidle_timeout = \"10s\"\n"
                                     << "max_buffered = \"64M\"\n"
                                     << (heavy_nice >= 0 ? "heavy_nice = " + std::to_string(heavy_nice) + "\n" : "")
                                     << "[cache]\nroot = \"" << (dir / "cache").string()
                                     << "\"\nmax_size = \"64M\"\nprune_interval = \"10s\"\n[compile]\nmax_queue = 4\n"
                                     << "timeout = \"20s\"\n"
                                     << (compile_nice >= 0 ? "nice = " + std::to_string(compile_nice) + "\n" : "");
  pid_t daemon = ::fork();
  if (daemon == 0) {
    int devnull = ::open((dir / "log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(devnull, 2);
    ::execl(regexd.c_str(), regexd.c_str(), "--config", (dir / "regexd.toml").c_str(), "--rules", rules_file.c_str(),
            "--name", "soak", "--log-level", "warning", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 500 && !server::Client::connect(s.socket, std::chrono::seconds(5)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the Hyperscan build of the sample set
  long rss_start = rss_kib(daemon, "VmRSS:");
  std::printf("soak: %zu messages, %zu classes, %d good clients, %d hostile, quiet %d s, attack %d s, %u cores, "
              "compile.nice %s, heavy_nice %s\n",
              s.messages.size(), s.classes.size(), good, hostile, quiet, attack, std::thread::hardware_concurrency(),
              compile_nice >= 0 ? std::to_string(compile_nice).c_str() : "default",
              heavy_nice >= 0 ? std::to_string(heavy_nice).c_str() : "default");
  RunResult q = run(s, daemon, good, 0, quiet);
  std::printf("quiet:  %8lu scans  p50 %8.0f us  p99 %8.0f us  wrong %lu  failed %lu  RSS max %ld KiB\n", q.scans, q.p50,
              q.p99, q.wrong, q.failed, q.rss_max);
  RunResult a = run(s, daemon, good, hostile, attack);
  std::printf("attack: %8lu scans  p50 %8.0f us  p99 %8.0f us  wrong %lu  failed %lu  RSS max %ld KiB  (%lu hostile connections:",
              a.scans, a.p50, a.p99, a.wrong, a.failed, a.rss_max, a.attacks);
  for (int k = 0; k < kKinds && k < hostile; ++k) std::printf(" %s", kKindNames[k]);
  std::printf(")\n");
  auto c = server::Client::connect(s.socket, std::chrono::seconds(10));
  std::string stats = c ? ((*c)->stats().ok() ? *(*c)->stats() : "") : "";
  std::printf("p99 attack/quiet %.2f; RSS start %ld KiB, max %ld KiB, peak (VmHWM) %ld KiB\nSTATS %s\n",
              q.p99 > 0 ? a.p99 / q.p99 : 0.0, rss_start, std::max(q.rss_max, a.rss_max), rss_kib(daemon, "VmHWM:"),
              stats.c_str());
  ::kill(daemon, SIGTERM);
  int status = 0;
  ::waitpid(daemon, &status, 0);
  fs::remove_all(dir);
  if (check && (q.wrong || a.wrong || q.failed || a.failed || a.scans == 0)) {
    std::fprintf(stderr, "soak: FAIL: wrong answers or failed good requests\n");
    return 1;
  }
  return 0;
}
