// The regexd binary as a process: TOML config, cache warm start, reload on
// file change and SIGHUP, SIGTERM, and config errors that name the line.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "regexd/engine/engine.h"
#include "regexd/server/client.h"

namespace {

namespace fs = std::filesystem;
using namespace regexd::server;
namespace p = regexd::server::protocol;

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = fs::temp_directory_path() / ("rxd_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    sock_ = (dir_ / "s.sock").string();
  }
  void TearDown() override {
    stop(SIGKILL);
    fs::remove_all(dir_);
  }
  void write(const fs::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
  }
  // Starts regexd with `args`; stderr goes to dir_/log.
  void start(std::vector<std::string> args) {
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      std::string log = (dir_ / "log").string();
      FILE* f = std::freopen(log.c_str(), "a", stderr);
      (void)f;
      std::vector<char*> argv{const_cast<char*>(REGEXD_PATH)};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(REGEXD_PATH, argv.data());
      ::_exit(127);
    }
  }
  std::unique_ptr<Client> connect() {
    for (int i = 0; i < 500; ++i) {
      if (auto c = Client::connect(sock_, std::chrono::seconds(20))) return std::move(*c);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "regexd did not come up; log:\n" << log();
    return nullptr;
  }
  int stop(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  std::string log() {
    std::ifstream in(dir_ / "log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static std::vector<std::string> hit_ids(Client& c, const std::string& data) {
    p::ScanRequest q;
    q.ruleset = "mail";
    q.buffers = {{"body", data}};
    auto r = c.scan(q);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    std::vector<std::string> ids;
    if (r) for (auto& [id, n] : r->hits) ids.push_back(id);
    return ids;
  }
  // Polls until `data` makes exactly `want` match (reloads are asynchronous).
  bool eventually(Client& c, const std::string& data, const std::vector<std::string>& want) {
    for (int i = 0; i < 300; ++i) {
      if (hit_ids(c, data) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  fs::path dir_;
  std::string sock_;
  pid_t pid_ = -1;
};

TEST_F(DaemonTest, ConfigReloadOnChangeAndSighupThenSigtermRemovesTheSocket) {
  write(dir_ / "mail.rules", "VIAGRA body /viagra/i\n");
  write(dir_ / "regexd.toml",
        "[server]\nsocket = \"" + sock_ + "\"\nworkers = 2\nwatch_interval = 200\n"
        "[cache]\nroot = \"" + (dir_ / "cache").string() + "\"\n"
        "[rulesets.mail]\nformat = \"native\"\nfiles = [\"mail.rules\"]\n");
  start({"--config", (dir_ / "regexd.toml").string()});
  auto c = connect();
  ASSERT_TRUE(c);
  EXPECT_EQ(hit_ids(*c, "cheap VIAGRA"), std::vector<std::string>{"VIAGRA"});

  // The file changes: the next version is picked up without a signal.
  write(dir_ / "mail.rules", "VIAGRA body /viagra/i\nCASINO body /casino/i\n");
  EXPECT_TRUE(eventually(*c, "viagra casino", {"CASINO", "VIAGRA"})) << log();
  // SIGHUP re-reads the config: a second file joins the rule set.
  write(dir_ / "more.rules", "LOTTO body /lotto/i\n");
  write(dir_ / "regexd.toml",
        "[server]\nsocket = \"" + sock_ + "\"\nworkers = 2\nwatch_interval = 200\n"
        "[cache]\nroot = \"" + (dir_ / "cache").string() + "\"\n"
        "[rulesets.mail]\nformat = \"native\"\nfiles = [\"mail.rules\", \"more.rules\"]\n");
  ::kill(pid_, SIGHUP);
  EXPECT_TRUE(eventually(*c, "lotto", {"LOTTO"})) << log();
  // Let the background Hyperscan build finish (and reach the cache).
  for (int i = 0; i < 500; ++i) {
    auto l = c->list_rulesets();
    if (l && l->find("\"state\":\"hyperscan\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  c.reset();
  int status = stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << log();
  EXPECT_FALSE(fs::exists(sock_));
  EXPECT_NE(log().find("SIGTERM: stopping"), std::string::npos) << log();

  // Warm start: the same rules come from the cache, straight to Hyperscan.
  start({"--config", (dir_ / "regexd.toml").string()});
  c = connect();
  ASSERT_TRUE(c);
  auto list = c->list_rulesets();
  ASSERT_TRUE(list.ok());
  EXPECT_NE(list->find("\"state\":\"hyperscan\""), std::string::npos) << *list;
  EXPECT_NE(log().find("loaded from the cache"), std::string::npos) << log();
}

// `regexd --prewarm`: the configured rule sets are compiled into the cache
// under the keys the daemon looks up, so its next start is warm; a rule set
// that cannot be read makes the exit status 1.
TEST_F(DaemonTest, PrewarmFillsTheCacheForTheNextStart) {
  write(dir_ / "mail.rules", "VIAGRA body /viagra/i\nLOOK body /foo(?!bar)\\w+/\n");
  std::string head = "[server]\nsocket = \"" + sock_ + "\"\n[cache]\nroot = \"" + (dir_ / "cache").string() + "\"\n";
  write(dir_ / "regexd.toml", head + "[rulesets.mail]\nformat = \"native\"\nfiles = [\"mail.rules\"]\n");
  start({"--config", (dir_ / "regexd.toml").string(), "--prewarm"});
  int status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << log();
  EXPECT_NE(log().find("prewarm: rule set mail: compiled in"), std::string::npos) << log();
  // No scans to leave cores to: all of them (compile.threads unset).
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_NE(log().find("rules, " + std::to_string(cores) + " threads)"), std::string::npos) << log();
  EXPECT_FALSE(fs::exists(sock_));  // nothing was served

  start({"--config", (dir_ / "regexd.toml").string(), "--prewarm"});
  status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << log();
  EXPECT_NE(log().find("prewarm: rule set mail: already in the cache"), std::string::npos) << log();

  // The daemon starts on the prewarmed entry: Hyperscan at once.
  start({"--config", (dir_ / "regexd.toml").string()});
  auto c = connect();
  ASSERT_TRUE(c);
  auto list = c->list_rulesets();
  ASSERT_TRUE(list.ok());
  EXPECT_NE(list->find("\"state\":\"hyperscan\""), std::string::npos) << *list;
  EXPECT_NE(log().find("rule set mail version 1: 2 rules loaded from the cache"), std::string::npos) << log();
  c.reset();
  stop(SIGTERM);

  // compile.cost_check is part of the key: without it, the set is another entry.
  std::string log_before = log();
  write(dir_ / "text.toml", head + "[compile]\ncost_check = false\n[rulesets.mail]\nformat = \"native\"\n"
                                   "files = [\"mail.rules\"]\n");
  start({"--config", (dir_ / "text.toml").string(), "--prewarm"});
  status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << log();
  EXPECT_NE(log().find("prewarm: rule set mail: compiled in", log_before.size()), std::string::npos) << log();

  write(dir_ / "broken.toml",
        head + "[rulesets.mail]\nformat = \"native\"\nfiles = [\"mail.rules\"]\n"
               "[rulesets.gone]\nformat = \"native\"\nfiles = [\"missing.rules\"]\n");
  start({"--config", (dir_ / "broken.toml").string(), "--prewarm"});
  status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << "\n" << log();
  EXPECT_NE(log().find("missing.rules"), std::string::npos) << log();

  start({"--config", (dir_ / "regexd.toml").string(), "--prewarm", "--no-cache"});
  status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status << "\n" << log();
}

// A start on a prewarmed entry reads it while the rules are parsed
// (cache::Store::prefetch), and a client that was waiting for the daemon
// (`regexctl query --wait`) gets its answer from it.  A changed rule file
// makes the guess wrong: the entry read ahead is dropped, the new rules
// answer.
TEST_F(DaemonTest, AStartReadsItsLastEntryAheadAndAWaitingClientGetsItsAnswer) {
  write(dir_ / "mail.rules", "VIAGRA body /viagra/i\nLOOK body /foo(?!bar)\\w+/\n");
  write(dir_ / "msg.txt", "cheap viagra and foobaz");
  std::string head = "[server]\nsocket = \"" + sock_ + "\"\n[cache]\nroot = \"" + (dir_ / "cache").string() + "\"\n";
  write(dir_ / "regexd.toml", head + "[rulesets.mail]\nformat = \"native\"\nfiles = [\"mail.rules\"]\n");
  start({"--config", (dir_ / "regexd.toml").string(), "--prewarm"});
  ASSERT_EQ(stop(0), 0) << log();
  auto query = [&] {
    std::string cmd = std::string(REGEXCTL_PATH) + " query --wait 60 --socket " + sock_ +
                      " --ruleset mail --class body " + (dir_ / "msg.txt").string() + " 2>&1";
    return ::popen(cmd.c_str(), "r");
  };
  auto read_all = [](FILE* f) {
    std::string out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    EXPECT_EQ(::pclose(f), 0) << out;
    return out;
  };
  FILE* waiting = query();  // before the daemon exists
  ASSERT_NE(waiting, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  start({"--config", (dir_ / "regexd.toml").string()});
  std::string out = read_all(waiting);
  EXPECT_NE(out.find("\"hits\":{\"LOOK\":1,\"VIAGRA\":1}"), std::string::npos) << out;
  EXPECT_NE(log().find("2 rules loaded from the cache in"), std::string::npos) << log();
  EXPECT_NE(log().find("(read ahead while its files were parsed)"), std::string::npos) << log();
  stop(SIGTERM);

  write(dir_ / "mail.rules", "VIAGRA body /viagra/i\nCHEAP body /cheap/\n");
  std::string log_before = log();
  waiting = query();
  ASSERT_NE(waiting, nullptr);
  start({"--config", (dir_ / "regexd.toml").string()});
  out = read_all(waiting);
  EXPECT_NE(out.find("\"hits\":{\"CHEAP\":1,\"VIAGRA\":1}"), std::string::npos) << out;
  EXPECT_EQ(log().find("read ahead", log_before.size()), std::string::npos) << log();
}

// compile.calibrate: the daemon compiles with, and looks up, the key of
// `regexctl prewarm --calibrate DIR`, so an entry prewarmed on an operator's
// sample is found at start; a bad directory is a config error naming it.
TEST_F(DaemonTest, CalibrateFindsTheEntryRegexctlPrewarmedWithTheSameSample) {
  write(dir_ / "mail.rules", "VIAGRA body /v[i1]agra/i\nLOOK body /foo(?!bar)\\w+/\n");
  fs::create_directories(dir_ / "sample");
  write(dir_ / "sample" / "1.eml", "Subject: hi\n\nv1agra foobaz and more\n");
  const std::string cache = (dir_ / "cache").string();
  std::string cmd = std::string(REGEXCTL_PATH) + " prewarm --rules " + (dir_ / "mail.rules").string() + " --cache " +
                    cache + " --calibrate " + (dir_ / "sample").string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  std::string head = "[server]\nsocket = \"" + sock_ + "\"\n[cache]\nroot = \"" + cache + "\"\n";
  // Relative to the config file, as the rules files are.
  write(dir_ / "regexd.toml", head + "[compile]\ncalibrate = \"sample\"\n[rulesets.mail]\nformat = \"native\"\n"
                                     "files = [\"mail.rules\"]\n");
  start({"--config", (dir_ / "regexd.toml").string()});
  auto c = connect();
  ASSERT_TRUE(c);
  c.reset();
  stop(SIGTERM);
  EXPECT_NE(log().find("rule set mail version 1: 2 rules loaded from the cache"), std::string::npos) << log();

  write(dir_ / "bad.toml", head + "[compile]\ncalibrate = \"no-such-dir\"\n");
  start({"--config", (dir_ / "bad.toml").string()});
  int status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
  EXPECT_NE(log().find("bad.toml:6: compile.calibrate: calibration sample " + (dir_ / "no-such-dir").string() +
                       ": no such directory"),
            std::string::npos)
      << log();
}

TEST(DaemonVersion, NamesVersionFlavorLibraryAndArchitecture) {
  FILE* p = ::popen((std::string(REGEXD_PATH) + " --version").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512] = {};
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, p);
  EXPECT_EQ(::pclose(p), 0);
  std::string out(buf, n);
  const auto& info = regexd::engine::engine_info();
  EXPECT_EQ(out.rfind("regexd ", 0), 0u) << out;
  for (const std::string& part : {info.flavor, info.runtime_version, info.arch})
    EXPECT_NE(out.find(part), std::string::npos) << part << " not in " << out;
}

TEST_F(DaemonTest, ConfigErrorsNameFileLineAndKey) {
  write(dir_ / "bad.toml", "[server]\nsocket = \"/tmp/x.sock\"\nsocket_mdoe = \"0660\"\n");
  start({"--config", (dir_ / "bad.toml").string()});
  int status = stop(0);  // waits for the exit
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
  EXPECT_NE(log().find("bad.toml:3: server.socket_mdoe: unknown key"), std::string::npos) << log();

  write(dir_ / "bad2.toml", "[rulesets.x]\nformat = \"perl\"\nfiles = [\"a\"]\n");
  start({"--config", (dir_ / "bad2.toml").string()});
  status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
  EXPECT_NE(log().find("bad2.toml:2: rulesets.x.format: unknown format 'perl'"), std::string::npos) << log();

  write(dir_ / "bad3.toml", "[server]\nworkers = \"two\"\n");
  start({"--config", (dir_ / "bad3.toml").string()});
  status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
  EXPECT_NE(log().find("bad3.toml:2: server.workers: wrong type"), std::string::npos) << log();

  write(dir_ / "bad4.toml", "[compile]\ncost_check = \"no\"\n");
  start({"--config", (dir_ / "bad4.toml").string()});
  status = stop(0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
  EXPECT_NE(log().find("bad4.toml:2: compile.cost_check: wrong type"), std::string::npos) << log();
}

TEST_F(DaemonTest, EmbeddedDefaultsServeTheDefaultRuleSet) {
  start({"--socket", sock_, "--cache", (dir_ / "cache").string()});
  auto c = connect();
  ASSERT_TRUE(c);
  auto list = c->list_rulesets();
  ASSERT_TRUE(list.ok());
  EXPECT_NE(list->find("\"name\":\"default\""), std::string::npos) << *list;
  EXPECT_EQ(stop(SIGINT) >> 8, 0);
}

// Issue 14 item 7: pushed rule sets (and edits of rules files) add cache
// entries while the daemon runs; the quota was applied at start-up only.
// Now every cache.prune_interval: with a quota of 1 KiB, the entries this
// run built are pruned while it runs (they are in memory; a restart would
// compile them again), and scans go on.
TEST_F(DaemonTest, TheCacheQuotaIsEnforcedWhileTheDaemonRuns) {
  write(dir_ / "mail.rules", "VIAGRA body /viagra/i\n");
  fs::path cache = dir_ / "cache";
  write(dir_ / "regexd.toml",
        "[server]\nsocket = \"" + sock_ + "\"\nworkers = 1\nwatch_interval = 200\n"
        "[cache]\nroot = \"" + cache.string() + "\"\nmax_size = \"1K\"\nprune_interval = \"1s\"\n"
        // Tiers from the text: every entry holds a Hyperscan database (over
        // 1K), also where the planner would give a one-rule class to PCRE2.
        "[compile]\ncost_check = false\n"
        "[rulesets.mail]\nformat = \"native\"\nfiles = [\"mail.rules\"]\n");
  start({"--config", (dir_ / "regexd.toml").string()});
  auto c = connect();
  ASSERT_TRUE(c);
  for (int i = 0; i < 3; ++i) {
    std::string rules = "P" + std::to_string(i) + " body /push" + std::to_string(i) + "/\n";
    ASSERT_TRUE(c->load_rules({"p" + std::to_string(i), "native", "", rules}).ok());
  }
  auto entries = [&] {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(cache, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      n += it->path().extension() == ".rxdb";
    return n;
  };
  // All four built (and saved), then pruned.
  bool built = false;
  for (int i = 0; i < 1500 && !built; ++i) {
    auto list = c->list_rulesets();
    built = list.ok() && list->find("\"pcre2\"") == std::string::npos;
    if (!built) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(built) << log();
  bool pruned = false;
  for (int i = 0; i < 500 && !pruned; ++i) {
    pruned = entries() == 0 && log().find("cache: pruned") != std::string::npos;
    if (!pruned) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(pruned) << entries() << " entries left; log:\n" << log();
  EXPECT_EQ(hit_ids(*c, "viagra"), std::vector<std::string>{"VIAGRA"});
}

// Issue 14, low: SIGHUP replaced a --rules override with the config file's
// rule sets, and changed [server]/[cache]/[compile] keys were ignored
// without a word.
TEST_F(DaemonTest, SighupKeepsARulesOverrideAndNamesTheKeysItCannotApply) {
  write(dir_ / "conf.rules", "CONF body /conf/\n");
  write(dir_ / "cli.rules", "CLI body /cli/\n");
  auto config = [&](int workers) {
    write(dir_ / "regexd.toml", "[server]\nsocket = \"" + sock_ + "\"\nworkers = " + std::to_string(workers) +
                                    "\n[cache]\nenabled = false\n"
                                    "[rulesets.mail]\nformat = \"native\"\nfiles = [\"conf.rules\"]\n");
  };
  config(1);
  start({"--config", (dir_ / "regexd.toml").string(), "--rules", (dir_ / "cli.rules").string(), "--name", "mail"});
  auto c = connect();
  ASSERT_TRUE(c);
  EXPECT_EQ(hit_ids(*c, "cli conf"), std::vector<std::string>{"CLI"});
  config(2);
  ::kill(pid_, SIGHUP);
  bool logged = false;
  for (int i = 0; i < 500 && !logged; ++i) {
    logged = log().find("SIGHUP: reloading rule sets") != std::string::npos;
    if (!logged) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(logged) << log();
  EXPECT_NE(log().find("SIGHUP: server.workers changed in " + (dir_ / "regexd.toml").string() +
                       "; it takes effect at the next restart"),
            std::string::npos)
      << log();
  EXPECT_EQ(log().find("cache.enabled changed"), std::string::npos) << log();  // --no-cache-like keys unchanged
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a reload of the wrong files would show now
  EXPECT_EQ(hit_ids(*c, "cli conf"), std::vector<std::string>{"CLI"});
}

}  // namespace
