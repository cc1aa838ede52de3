// Two regexd processes ("hosts", separate cache roots) sharing one real
// redis-server started here (private Unix socket): the second starts warm
// with zero compiles; a wrongly signed entry is refused and counted in STATS;
// a Redis killed mid-run changes nothing for scans and the next start
// compiles locally; [remote] config errors name the file, line and key.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "redis_server.h"
#include "regexd/cache/entry.h"
#include "regexd/cache/remote_store.h"
#include "regexd/cache/signing.h"
#include "regexd/engine/engine.h"
#include "regexd/server/client.h"
#include "regexd/server/config.h"

namespace {

namespace fs = std::filesystem;
using namespace regexd;
using namespace regexd::server;
using nlohmann::json;
namespace p = regexd::server::protocol;

// One daemon process; killed when destroyed.
class Daemon {
 public:
  Daemon(fs::path dir, const std::string& config) : dir_(std::move(dir)) {
    fs::create_directories(dir_);
    std::ofstream(dir_ / "regexd.toml") << config;
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string log = (dir_ / "log").string();
      FILE* f = std::freopen(log.c_str(), "a", stderr);
      (void)f;
      std::string cfg = (dir_ / "regexd.toml").string();
      ::execl(REGEXD_PATH, REGEXD_PATH, "--config", cfg.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Daemon() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::unique_ptr<Client> connect() {
    for (int i = 0; i < 1000; ++i) {
      if (auto c = Client::connect((dir_ / "s.sock").string(), std::chrono::seconds(20))) return std::move(*c);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "regexd did not come up; log:\n" << log();
    return nullptr;
  }
  std::string log() const {
    std::ifstream in(dir_ / "log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
};

json stats(Client& c) {
  auto s = c.stats();
  EXPECT_TRUE(s.ok());
  return s.ok() ? json::parse(*s) : json();
}

std::vector<std::string> hits(Client& c, const std::string& data) {
  p::ScanRequest q;
  q.ruleset = "mail";
  q.buffers = {{"body", data}};
  auto r = c.scan(q);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  std::vector<std::string> ids;
  if (r) for (auto& [id, n] : r->hits) ids.push_back(id);
  return ids;
}

// Waits until the rule set answers from Hyperscan (the background build or
// the cache); false after 60 s.
bool hyperscan_ready(Client& c) {
  for (int i = 0; i < 3000; ++i) {
    json j = stats(c);
    if (!j["rulesets"].empty() && j["rulesets"][0]["state"] == "hyperscan") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class RemoteDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (regexd::testing::RedisServer::binary().empty())
      GTEST_SKIP() << "redis-server is not installed (scripts/setup-deps.sh --test installs it)";
    dir_ = fs::temp_directory_path() / ("rxd_remote_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    redis_ = std::make_unique<regexd::testing::RedisServer>(dir_ / "redis");
    ASSERT_TRUE(redis_->running());
    for (const char* name : {"ci", "other"}) {
      auto kp = cache::generate_key_pair();
      ASSERT_TRUE(kp.ok());
      ASSERT_TRUE(cache::write_secret_key(dir_ / (std::string(name) + ".key"), kp->secret).ok());
      ASSERT_TRUE(cache::write_public_key(dir_ / (std::string(name) + ".pub"), kp->public_key).ok());
    }
    std::ofstream(dir_ / "mail.rules") << "VIAGRA body /viagra/i\nBACKREF body /(\\w{3})\\1/\n";
  }
  void TearDown() override {
    redis_.reset();
    fs::remove_all(dir_);
  }

  // A host's config: its own socket and cache root, the shared Redis.
  std::string config(const std::string& host, const std::string& remote_extra) {
    fs::path h = dir_ / host;
    return "[server]\nsocket = \"" + (h / "s.sock").string() + "\"\nworkers = 1\n"
           "[cache]\nroot = \"" + (h / "cache").string() + "\"\n"
           "[remote]\nredis = \"" + redis_->socket() + "\"\ntimeout = \"300ms\"\nconnect_timeout = \"300ms\"\n"
           "retry_after = \"60s\"\nkey_prefix = \"t:\"\n" + remote_extra +
           "[rulesets.mail]\nformat = \"native\"\nfiles = [\"" + (dir_ / "mail.rules").string() + "\"]\n";
  }
  std::string signer() { return "signing_key = \"" + (dir_ / "ci.key").string() + "\"\n"; }
  std::string trust(const std::string& name) { return "trusted_keys = [\"" + (dir_ / (name + ".pub")).string() + "\"]\n"; }

  // Host "a" compiles and publishes, then stops.
  void warm_redis() {
    Daemon a(dir_ / "a", config("a", signer() + trust("ci")));
    auto c = a.connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(hyperscan_ready(*c)) << a.log();
    // Published by the build (in the daemon or its compile child): wait
    // for it to reach Redis before stopping.
    for (int i = 0; i < 500 && !published(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(published()) << a.log();
  }
  bool published() {
    cache::RemoteOptions o;
    o.endpoint = redis_->socket();
    auto backend = cache::make_redis_backend(o);
    // Any entry under the prefix: the platform directory and key are the daemon's business.
    for (const auto& d : fs::directory_iterator(dir_ / "a" / "cache"))
      for (const auto& f : fs::directory_iterator(d.path()))
        if (f.path().extension() == ".rxdb") {
          auto got = backend->get("t:" + d.path().filename().string() + ":" + f.path().stem().string(), 1u << 30);
          if (got.ok() && got->has_value()) return true;
        }
    return false;
  }

  fs::path dir_;
  std::unique_ptr<regexd::testing::RedisServer> redis_;
};

TEST_F(RemoteDaemonTest, SecondHostStartsWarmWithZeroCompiles) {
  warm_redis();
  Daemon b(dir_ / "b", config("b", trust("ci")));
  auto c = b.connect();
  ASSERT_TRUE(c);
  // Hyperscan answers from the first STATS on: loaded, not compiled.
  json j = stats(*c);
  ASSERT_EQ(j["rulesets"].size(), 1u) << j.dump();
  EXPECT_EQ(j["rulesets"][0]["state"], "hyperscan") << b.log();
  EXPECT_EQ(j["rulesets"][0]["source"], "cache");
  EXPECT_EQ(j["remote"]["hits"], 1) << j.dump();
  EXPECT_EQ(j["remote"]["refused"], 0);
  EXPECT_EQ(count(b.log(), "Hyperscan build ready"), 0u) << b.log();
  EXPECT_EQ(hits(*c, "cheap VIAGRA abcabc"), (std::vector<std::string>{"BACKREF", "VIAGRA"}));
}

TEST_F(RemoteDaemonTest, AnEntrySignedByAnUntrustedKeyIsRefusedAndCounted) {
  warm_redis();
  Daemon b(dir_ / "b", config("b", trust("other")));
  auto c = b.connect();
  ASSERT_TRUE(c);
  json j = stats(*c);
  EXPECT_EQ(j["remote"]["refused"], 1) << j.dump();
  EXPECT_EQ(j["remote"]["hits"], 0);
  EXPECT_EQ(count(b.log(), "refused: signed by untrusted key"), 1u) << b.log();
  // It compiles for itself and answers the same.
  ASSERT_TRUE(hyperscan_ready(*c)) << b.log();
  EXPECT_EQ(hits(*c, "cheap VIAGRA abcabc"), (std::vector<std::string>{"BACKREF", "VIAGRA"}));
}

TEST_F(RemoteDaemonTest, RedisKilledMidRunScansGoOnAndTheNextStartCompilesLocally) {
  warm_redis();
  {
    Daemon b(dir_ / "b", config("b", trust("ci")));
    auto c = b.connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(hyperscan_ready(*c));
    redis_->kill();
    for (int i = 0; i < 20; ++i) EXPECT_EQ(hits(*c, "viagra"), std::vector<std::string>{"VIAGRA"});
  }
  // A third host starts with Redis gone: it compiles, says so once.
  Daemon d(dir_ / "d", config("d", trust("ci")));
  auto c = d.connect();
  ASSERT_TRUE(c);
  EXPECT_EQ(hits(*c, "viagra"), std::vector<std::string>{"VIAGRA"});
  ASSERT_TRUE(hyperscan_ready(*c)) << d.log();
  json j = stats(*c);
  EXPECT_GE(j["remote"]["errors"].get<int>(), 1) << j.dump();
  EXPECT_EQ(j["remote"]["available"], false);
  EXPECT_EQ(count(d.log(), "compiling locally"), 1u) << d.log();
}

TEST(RemoteConfigTest, ErrorsNameTheFileLineAndKey) {
  fs::path dir = fs::temp_directory_path() / ("rxd_remote_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto kp = cache::generate_key_pair();
  ASSERT_TRUE(kp.ok());
  ASSERT_TRUE(cache::write_secret_key(dir / "k.key", kp->secret).ok());
  ASSERT_TRUE(cache::write_public_key(dir / "k.pub", kp->public_key).ok());
  auto load = [&](const std::string& text) {
    std::ofstream(dir / "r.toml", std::ios::trunc) << text;
    return load_config(dir / "r.toml");
  };
  auto good = load("[remote]\nredis = \"127.0.0.1:6379\"\ntimeout = \"250ms\"\nttl = \"7d\"\n"
                   "signing_key = \"k.key\"\ntrusted_keys = [\"k.pub\", \"" + kp->public_key.hex() + "\"]\n");
  ASSERT_TRUE(good.ok()) << good.error().message;
  EXPECT_TRUE(good->remote.enabled);
  EXPECT_EQ(good->remote.options.io_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(good->remote.options.ttl, std::chrono::hours(24 * 7));
  EXPECT_EQ(good->remote.options.trusted.size(), 2u);
  ASSERT_TRUE(good->remote.options.signing_key.has_value());
  EXPECT_EQ(good->remote.options.signing_key->public_key(), kp->public_key);
  EXPECT_FALSE(load("").value().remote.enabled);

  auto expect_error = [&](const std::string& text, const std::string& needle) {
    auto r = load(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("r.toml:"), std::string::npos) << r.error().message;
  };
  expect_error("[remote]\ntrusted_keys = [\"k.pub\"]\n", "remote.redis: missing");
  expect_error("[remote]\nredis = \"x:1\"\n", "remote.trusted_keys: expected a non-empty list");
  expect_error("[remote]\nredis = \"x:1\"\ntrusted_keys = [\"nope.pub\"]\n", "remote.trusted_keys");
  expect_error("[remote]\nredis = \"x:1\"\ntimeout = \"forever\"\ntrusted_keys = [\"k.pub\"]\n", "remote.timeout");
  expect_error("[remote]\nredis = \"x:1\"\nttl = 5\ntrusted_keys = [\"k.pub\"]\n", "remote.ttl: wrong type");
  expect_error("[remote]\nredis = \"x:1\"\nsurprise = 1\ntrusted_keys = [\"k.pub\"]\n", "remote.surprise: unknown key");
  ::chmod((dir / "k.key").c_str(), 0644);
  expect_error("[remote]\nredis = \"x:1\"\nsigning_key = \"k.key\"\ntrusted_keys = [\"k.pub\"]\n",
               "remote.signing_key: " + (dir / "k.key").string() + ": secret key readable by group/others");
  fs::remove_all(dir);
}

}  // namespace

namespace {

// regexctl keygen / export / import as an operator runs them.
int run(const std::string& cmd, std::string* out) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  std::size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// `regexd --prewarm --target aarch64` on an x86_64 Vectorscan build publishes
// the boards' entries to the shared tier too: sealed, under the aarch64
// platform directory and key an aarch64 Store asks the remote for on a local
// miss, and the same bytes as the entry file it wrote (issue 15).  The
// aarch64 daemon loading it from Redis is tests/cross/cross_cache_test.sh's.
TEST_F(RemoteDaemonTest, TargetEntriesArePublishedForTheBoards) {
  const auto& info = engine::engine_info();
  if (info.flavor != "vectorscan" || info.arch != "x86_64")
    GTEST_SKIP() << "--target aarch64 needs an x86_64 Vectorscan build (scripts/flavors.sh runs this suite there)";
  const fs::path h = dir_ / "ci";
  fs::create_directories(h);
  std::ofstream(h / "regexd.toml") << config("ci", signer() + trust("ci"));
  std::string out;
  ASSERT_EQ(run(std::string(REGEXD_PATH) + " --config " + (h / "regexd.toml").string() + " --prewarm --target aarch64",
                &out),
            0)
      << out;
  EXPECT_NE(out.find("entry published to the remote tier"), std::string::npos) << out;
  fs::path entry;
  for (const auto& d : fs::directory_iterator(h / "cache"))
    if (d.path().filename().string().rfind("aarch64-vectorscan-", 0) == 0)
      for (const auto& f : fs::directory_iterator(d.path()))
        if (f.path().extension() == ".rxdb") entry = f.path();
  ASSERT_FALSE(entry.empty()) << out;
  std::ifstream in(entry, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  auto header = cache::inspect_entry(bytes);
  ASSERT_TRUE(header.ok()) << header.error().message;
  EXPECT_EQ(header->tags.arch, "aarch64");

  cache::RemoteOptions o;
  o.endpoint = redis_->socket();
  o.key_prefix = "t:";
  auto pub = cache::read_public_key(dir_ / "ci.pub");
  ASSERT_TRUE(pub.ok());
  o.trusted = {*pub};
  auto remote = cache::RemoteStore::open_redis(o);
  ASSERT_TRUE(remote.ok()) << remote.error().message;
  auto got = (*remote)->fetch(entry.parent_path().filename().string(), header->key);
  ASSERT_TRUE(got.has_value()) << "nothing under the aarch64 directory and key in Redis";
  EXPECT_EQ(*got, bytes);

  // Run again: the entry is present (no compile) and published again.
  ASSERT_EQ(run(std::string(REGEXD_PATH) + " --config " + (h / "regexd.toml").string() + " --prewarm --target aarch64",
                &out),
            0)
      << out;
  EXPECT_NE(out.find("entry published to the remote tier"), std::string::npos) << out;
  EXPECT_NE(out.find("rule set mail: already in the cache"), std::string::npos) << out;
}

TEST(RegexctlTransferTest, KeygenExportImportAndARefusedArchive) {
  fs::path dir = fs::temp_directory_path() / ("rxd_transfer_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "a.rules") << "VIAGRA body /viagra/i\n";
  const std::string rx = REGEXCTL_PATH, d = dir.string();
  std::string out;
  ASSERT_EQ(run(rx + " keygen " + d + "/ci", &out), 0) << out;
  struct stat st {};
  ASSERT_EQ(::stat((dir / "ci.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(run(rx + " keygen " + d + "/ci", &out), 0) << "overwrote a key";
  ASSERT_EQ(run(rx + " keygen " + d + "/other", &out), 0) << out;
  ASSERT_EQ(run(rx + " prewarm --rules " + d + "/a.rules --cache " + d + "/c1", &out), 0) << out;
  ASSERT_EQ(run(rx + " export --cache " + d + "/c1 --key " + d + "/ci.key -o " + d + "/c.rxda", &out), 0) << out;
  EXPECT_NE(out.find("exported 1 entries"), std::string::npos) << out;
  EXPECT_EQ(run(rx + " import " + d + "/c.rxda --cache " + d + "/c3 --trusted " + d + "/other.pub", &out), 3);
  EXPECT_NE(out.find("signed by untrusted key"), std::string::npos) << out;
  ASSERT_EQ(run(rx + " import " + d + "/c.rxda --cache " + d + "/c2 --trusted " + d + "/ci.pub", &out), 0) << out;
  // The imported cache answers without compiling.
  ASSERT_EQ(run(rx + " prewarm --rules " + d + "/a.rules --cache " + d + "/c2", &out), 0) << out;
  EXPECT_NE(out.find("a.rules: hit ("), std::string::npos) << out;
  EXPECT_EQ(run(rx + " verify " + d + "/c2", &out), 0) << out;
  EXPECT_NE(out.find("1 entries checked, 0 corrupt"), std::string::npos) << out;
  fs::remove_all(dir);
}

}  // namespace
