// Issue 14: hostile clients, hostile rules and damaged inputs against the
// daemon's socket server and registry.  Each test failed before its fix.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <spdlog/spdlog.h>
#include <sstream>
#include <string>
#include <thread>

#include "hostile_entry.h"

#include "regexd/server/client.h"
#include "regexd/server/registry.h"
#include "regexd/server/server.h"

namespace {

namespace fs = std::filesystem;
using namespace regexd;
using namespace regexd::server;
namespace p = regexd::server::protocol;

class HardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);  // some tests load a rule set a thousand times
    static int n = 0;  // short: a Unix socket path has at most 107 bytes
    dir_ = fs::temp_directory_path() / ("rxh_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::permissions(dir_, fs::perms::owner_all);
    registry_ = std::make_unique<Registry>(Registry::Options{});
    cfg_.socket = dir_ / "s.sock";
    cfg_.workers = 2;
    cfg_.max_frame = 1 << 20;
  }
  void TearDown() override {
    server_.reset();
    registry_.reset();
    fs::remove_all(dir_);
  }
  void start() {
    server_ = std::make_unique<Server>(cfg_, *registry_);
    auto st = server_->bind();
    ASSERT_TRUE(st.ok()) << st.error().message;
    server_->start();
  }
  std::unique_ptr<Client> client() {
    auto c = Client::connect(cfg_.socket.string(), std::chrono::seconds(20));
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    return c.ok() ? std::move(*c) : nullptr;
  }

  fs::path dir_;
  ServerConfig cfg_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Server> server_;
};

// Item 8: a resealed hostile entry in a cache with shared images is a miss
// for the registry (the load on the caller's thread and the background build
// on the worker), never an exception that ends the daemon.
TEST_F(HardeningTest, AHostileCacheEntryWithSharedImagesIsAMissNotACrash) {
  cache::StoreOptions o;
  o.root = dir_ / "cache";
  o.shared_images = true;
  o.log = [](cache::LogLevel, const std::string&) {};
  auto store = cache::Store::open(o);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto rules = engine::parse_native("A body /alpha/\nU body /caf\\w/u\nS header:Subject /s\\d/\n", "r");
  auto key = (*store)->key_for(rules, {});
  {
    o.shared_images = false;
    auto plain = cache::Store::open(o);
    ASSERT_TRUE(plain.ok() && (*plain)->get_or_compile(rules, {}, "r").ok());
  }
  std::stringstream entry;
  entry << std::ifstream((*store)->entry_path(key), std::ios::binary).rdbuf();
  std::string hostile = test::with_blob_outside_the_file(entry.str());
  ASSERT_FALSE(hostile.empty());
  std::ofstream((*store)->entry_path(key), std::ios::binary | std::ios::trunc) << hostile;

  Registry reg(Registry::Options{store->get(), {}});
  auto loaded = reg.load("r", rules);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->version->state, "pcre2");
  reg.wait_idle();
  auto v = reg.find("r");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, "hyperscan");
  EXPECT_EQ(v->scanner->scan("body", "alpha")->hits.size(), 1u);
}

// Item 9: a load that took its version number before a slow step (here the
// PCRE2 pass that names the rules a cached build lacks) and installed after
// it put an older version over the newer ones loaded meanwhile.  Versions
// are now numbered when installed: the current one always has the highest
// number any load returned.
TEST_F(HardeningTest, ConcurrentLoadsOfOneNameNeverInstallAnOlderVersion) {
  cache::StoreOptions o;
  o.root = dir_ / "cache";
  o.log = [](cache::LogLevel, const std::string&) {};
  auto store = cache::Store::open(o);
  ASSERT_TRUE(store.ok()) << store.error().message;
  engine::CompileOptions fast;
  fast.cost_check = false;
  Registry reg(Registry::Options{store->get(), fast});
  // Many rules and one PCRE2 rejects: a cache hit of this set runs the
  // PCRE2 pass over all of them before installing.
  std::string big;
  for (int i = 0; i < 3000; ++i) big += "R" + std::to_string(i) + " body /w" + std::to_string(i) + "x\\d+(y|z)/\n";
  big += "BAD body /(/\n";
  ASSERT_TRUE(reg.load("n", engine::parse_native(big, "big")).ok());
  reg.wait_idle();  // in the cache now
  std::atomic<bool> done{false};
  std::atomic<std::uint32_t> highest{0};
  auto note = [&](const Result<LoadOutcome>& r) {
    ASSERT_TRUE(r.ok()) << r.error().message;
    std::uint32_t n = r->version->number, seen = highest.load();
    while (n > seen && !highest.compare_exchange_weak(seen, n)) {
    }
  };
  // The current version's number must never go down.
  std::atomic<int> decreases{0};
  std::thread watcher([&] {
    for (std::uint32_t last = 0; !done;) {
      std::uint32_t n = reg.find("n")->number;
      if (n < last) ++decreases;
      last = std::max(last, n);
    }
  });
  std::thread slow([&] {
    note(reg.load("n", engine::parse_native(big, "big")));
    done = true;
  });
  int small = 0;
  while (!done) {
    note(reg.load("n", engine::parse_native("S body /s/\n", "small")));
    ++small;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // room for the watcher
  }
  slow.join();
  watcher.join();
  ASSERT_GT(small, 0);
  EXPECT_EQ(decreases.load(), 0) << small << " small loads during the slow one";
  EXPECT_EQ(reg.find("n")->number, highest.load());
  reg.wait_idle();
  EXPECT_EQ(reg.find("n")->number, highest.load());
}

}  // namespace
