// Memory cost of N processes loading the same cache entry (issue 3: "the
// second process's PSS for the database must be under 5% of the database
// size").
//
// The parent compiles the rule set once into a private cache root, then for
// each mode and each N starts N fresh processes (fork + exec of this binary,
// so nothing is inherited copy-on-write).  Each child opens a Store, get()s
// the entry, scans the sample message once in every class (the databases are
// used, not just loaded), reports ready and waits; when all N are ready the
// parent asks every child to read /proc/self/smaps while all are alive.
//
// Modes:
//   shared  StoreOptions::shared_images: the databases live in the .rxdimg
//           file mapped read-only (MAP_SHARED).  Reported: that mapping's
//           Rss, Pss, Shared_Clean, Private_Clean, Private_Dirty.
//   heap    plain load: hs_deserialize_database copies the databases into
//           each process's heap.  Reported: heap growth (malloc in use,
//           including mmap'ed chunks) during get().
// In both modes the heap growth is printed: in shared mode it is the part of
// a loaded scanner that is not the databases (rule table, PCRE2 programs).
//
// PSS divides each shared page by the number of processes mapping it, so with
// N processes the PSS of a fully shared mapping is size/N by definition.
// What a further process costs is its private bytes (Private_Clean +
// Private_Dirty of the mapping; for the heap mode, its heap growth).  The
// summary lines state both against the database size (hs_database_size()).
//
// usage: regexd_pss_bench [--rules sa|sample] [--processes 1,2,4,8]
#include <fcntl.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "regexd/cache/store.h"

namespace {

using namespace regexd;
namespace fs = std::filesystem;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "pss bench: %s\n", msg.c_str());
  std::exit(1);
}

engine::RuleSet load_rules(const std::string& which) {
  if (which == "sample") return bench::sample_rules();
  if (which == "sa") return bench::spamassassin_rules();
  die("--rules must be sa or sample, not " + which);
}

std::unique_ptr<cache::Store> open_store(const fs::path& root, bool shared) {
  cache::StoreOptions o;
  o.root = root;
  o.shared_images = shared;
  o.log = [](cache::LogLevel, const std::string&) {};
  auto s = cache::Store::open(o);
  if (!s) die(s.error().message);
  return std::move(*s);
}

std::size_t heap_in_use() {
  struct mallinfo2 mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;  // small chunks + chunks malloc mmap'ed on its own
}

// Sums the smaps fields (in bytes) of every mapping whose path ends in `suffix`.
std::map<std::string, std::size_t> smaps_of(const std::string& suffix) {
  std::ifstream in("/proc/self/smaps");
  std::map<std::string, std::size_t> sum;
  std::string line;
  bool in_mapping = false;
  while (std::getline(in, line)) {
    // A mapping header: "start-end perms offset dev inode [path]".
    auto dash = line.find('-');
    if (dash != std::string::npos && dash > 0 && line.find(':') > line.find(' ')) {
      in_mapping = line.size() >= suffix.size() && line.compare(line.size() - suffix.size(), suffix.size(), suffix) == 0;
      if (in_mapping) ++sum["mappings"];
      continue;
    }
    if (!in_mapping) continue;
    std::istringstream f(line);
    std::string key, unit;
    std::size_t kb = 0;
    if (f >> key >> kb >> unit && unit == "kB" && key.back() == ':') sum[key.substr(0, key.size() - 1)] += kb * 1024;
  }
  return sum;
}

// The child: load, use, report ready; on "measure", print one result line;
// exit when stdin closes.
int child(const fs::path& root, const std::string& which, bool shared) {
  auto rules = load_rules(which);
  auto store = open_store(root, shared);
  std::string msg = bench::slurp(fs::path(REGEXD_SOURCE_DIR) / "rules" / "sample-message.eml");
  std::size_t before = heap_in_use();
  cache::LoadResult::Source src{};
  auto scanner = store->get(store->key_for(rules, {}), &src);
  if (!scanner) die("child: " + scanner.error().message);
  if (src != (shared ? cache::LoadResult::Source::kSharedImage : cache::LoadResult::Source::kCache))
    die("child: the entry was not loaded the expected way");
  std::size_t hits = 0;
  for (const auto& cls : (*scanner)->classes()) {
    auto r = (*scanner)->scan(cls, msg);
    if (!r) die("child: scan: " + r.error().message);
    hits += r->hits.size();
  }
  std::size_t heap = heap_in_use() - before;
  std::printf("ready\n");
  std::fflush(stdout);
  std::string cmd;
  if (!std::getline(std::cin, cmd) || cmd != "measure") return 1;
  auto m = smaps_of(".rxdimg");
  std::printf("heap=%zu hits=%zu mappings=%zu size=%zu rss=%zu pss=%zu shared_clean=%zu shared_dirty=%zu "
              "private_clean=%zu private_dirty=%zu\n",
              heap, hits, m["mappings"], m["Size"], m["Rss"], m["Pss"], m["Shared_Clean"], m["Shared_Dirty"],
              m["Private_Clean"], m["Private_Dirty"]);
  std::fflush(stdout);
  std::getline(std::cin, cmd);  // until the parent closes our stdin
  return 0;
}

struct Child {
  pid_t pid = -1;
  FILE* to = nullptr;    // child's stdin
  FILE* from = nullptr;  // child's stdout
};

Child spawn(const std::vector<std::string>& args) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC)) die(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  return {pid, ::fdopen(in[1], "w"), ::fdopen(out[0], "r")};
}

std::string read_line(FILE* f) {
  char buf[1024];
  if (!std::fgets(buf, sizeof buf, f)) return {};
  std::string s(buf);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::map<std::string, double> parse_fields(const std::string& line) {
  std::map<std::string, double> m;
  std::istringstream in(line);
  std::string kv;
  while (in >> kv)
    if (auto eq = kv.find('='); eq != std::string::npos) m[kv.substr(0, eq)] = std::stod(kv.substr(eq + 1));
  return m;
}

// Runs N children in `mode`; returns one field map per child.
std::vector<std::map<std::string, double>> run(const fs::path& root, const std::string& which, bool shared,
                                               int n) {
  std::vector<Child> kids;
  for (int i = 0; i < n; ++i)
    kids.push_back(spawn({"regexd_pss_bench", "--child", root.string(), which, shared ? "shared" : "heap"}));
  for (auto& k : kids)
    if (read_line(k.from) != "ready") {
      int st = 0;
      ::waitpid(k.pid, &st, 0);
      die("a child failed before loading (exit status " + std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) + ")");
    }
  for (auto& k : kids) {
    std::fputs("measure\n", k.to);
    std::fflush(k.to);
  }
  std::vector<std::map<std::string, double>> res;
  for (auto& k : kids) res.push_back(parse_fields(read_line(k.from)));
  for (auto& k : kids) {
    std::fclose(k.to);
    std::fclose(k.from);
    int st = 0;
    ::waitpid(k.pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("a child exited with an error");
  }
  return res;
}

double mib(double b) { return b / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 4 && args[0] == "--child") return child(args[1], args[2], args[3] == "shared");

  std::string which = bench::smoke() ? "sample" : "sa";
  std::vector<int> counts = bench::smoke() ? std::vector<int>{2} : std::vector<int>{1, 2, 4, 8};
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--rules" && i + 1 < args.size()) {
      which = args[++i];
    } else if (args[i] == "--processes" && i + 1 < args.size()) {
      counts.clear();
      std::istringstream in(args[++i]);
      for (std::string n; std::getline(in, n, ',');) counts.push_back(std::max(1, std::atoi(n.c_str())));
    } else {
      die("usage: regexd_pss_bench [--rules sa|sample] [--processes 1,2,4,8]");
    }
  }

  fs::path root = fs::temp_directory_path() / ("regexd_pss_bench_" + std::to_string(::getpid()));
  fs::remove_all(root);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{root};

  // Compile and save once; build the shared image once, so the children
  // measure loading, not the first image build.
  auto rules = load_rules(which);
  engine::CompileReport report;
  auto scanner = engine::Scanner::compile(rules, {}, &report);
  if (!scanner) die(scanner.error().message);
  std::size_t db_bytes = 0;
  for (const auto& c : report.classes) db_bytes += c.database_bytes;
  {
    auto store = open_store(root, true);
    auto key = store->key_for(rules, {});
    if (auto st = store->put(key, **scanner, which); !st) die(st.error().message);
    if (auto s = store->get(key); !s) die(s.error().message);
  }
  std::printf("rule set %s: %zu rules, %zu classes, Hyperscan databases %.2f MiB (hs_database_size)\n",
              which.c_str(), report.rules_total, report.classes.size(), mib(static_cast<double>(db_bytes)));
  std::printf("%-6s %3s %4s %10s %10s %10s %10s %10s %10s\n", "mode", "N", "proc", "Rss MiB", "Pss MiB",
              "ShClean", "PrivClean", "PrivDirty", "heap MiB");

  bool ok = true;
  std::map<int, double> pss_sum;
  for (bool shared : {true, false}) {
    for (int n : counts) {
      auto res = run(root, which, shared, n);
      double sum = 0;
      for (int i = 0; i < n; ++i) {
        auto& r = res[static_cast<std::size_t>(i)];
        if (shared && r["mappings"] < 1) {
          std::fprintf(stderr, "pss bench: process %d has no .rxdimg mapping\n", i + 1);
          ok = false;
        }
        sum += r["pss"];
        std::printf("%-6s %3d %4d %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f\n", shared ? "shared" : "heap", n, i + 1,
                    mib(r["rss"]), mib(r["pss"]), mib(r["shared_clean"]), mib(r["private_clean"]),
                    mib(r["private_dirty"]), mib(r["heap"]));
      }
      if (shared) {
        pss_sum[n] = sum;
        std::printf("shared %3d  sum of Pss over the %d processes: %.2f MiB (%.1f%% of the databases)\n", n, n,
                    mib(sum), 100.0 * sum / static_cast<double>(db_bytes));
      }
      if (n >= 2) {
        auto& second = res[1];
        double priv = shared ? second["private_clean"] + second["private_dirty"] : second["heap"];
        double pct = 100.0 * priv / static_cast<double>(db_bytes);
        std::printf("summary: %s, %d processes: the second process's own database cost (%s) is %.3f MiB = %.2f%% "
                    "of the databases (%s); its Pss for the mapping is %.2f MiB = %.1f%%\n",
                    shared ? "shared image" : "heap (no shared image)", n,
                    shared ? "Private_Clean + Private_Dirty of the .rxdimg mapping" : "heap growth", mib(priv), pct,
                    !shared ? "for comparison" : pct < 5 ? "target < 5%: met" : "target < 5%: NOT met",
                    mib(second["pss"]), 100.0 * second["pss"] / static_cast<double>(db_bytes));
      }
    }
  }
  if (pss_sum.count(1))
    for (auto [n, sum] : pss_sum)
      if (n > 1)
        std::printf("summary: shared image: %d processes together account for %.2f MiB of Pss, %.2fx one process's "
                    "%.2f MiB\n",
                    n, mib(sum), sum / pss_sum[1], mib(pss_sum[1]));
  return ok ? 0 : 1;
}
