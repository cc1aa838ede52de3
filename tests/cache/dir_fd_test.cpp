// Cache files through directory descriptors (cache/include/regexd/cache/dir_fd.h;
// issue 14, Low): the directories checked at open are the ones used, and no
// file or directory swapped for a symbolic link afterwards redirects a read,
// a write or a prune.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "regexd/cache/dir_fd.h"
#include "regexd/cache/entry.h"
#include "regexd/cache/fs.h"
#include "regexd/cache/store.h"
#include "regexd/cache/target.h"

namespace fs = std::filesystem;
using namespace regexd;
using namespace regexd::cache;

namespace {

engine::RuleSet rules(const std::string& word = "alpha") {
  return engine::parse_native("A body /" + word + "/\nB body /(\\w{3})\\1/\n", "r");
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class DirFdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("regexd_dir_fd_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::permissions(dir_, fs::perms(0750));
    root_ = dir_ / "cache";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> open_store() {
    StoreOptions o;
    o.root = root_;
    o.log = [this](LogLevel, const std::string& msg) { logs_.push_back(msg); };
    auto s = Store::open(o);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Renames the store's platform directory away and puts a link to a fresh
  // directory `other` in its place: what an attacker who can write the root
  // (or a restore gone wrong) does after the check at open.
  fs::path swap_platform_dir(const Store& store, const fs::path& moved) {
    fs::path other = dir_ / "other";
    fs::create_directories(other);
    fs::rename(store.platform_dir(), moved);
    fs::create_directory_symlink(other, store.platform_dir());
    return other;
  }

  fs::path dir_, root_;
  std::vector<std::string> logs_;
};

TEST_F(DirFdTest, OpenPrivateRefusesALinkAndAnUnsafeDirectory) {
  fs::create_directories(dir_ / "real");
  fs::permissions(dir_ / "real", fs::perms(0750));
  ASSERT_TRUE(DirFd::open_private(dir_ / "real").ok());
  fs::create_directory_symlink(dir_ / "real", dir_ / "link");
  auto link = DirFd::open_private(dir_ / "link");
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.error().message.find("a symbolic link is not followed"), std::string::npos) << link.error().message;
  fs::permissions(dir_ / "real", fs::perms(0777));
  auto open = DirFd::open_private(dir_ / "real");
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.error().code, ErrorCode::kPermission);
  EXPECT_NE(open.error().message.find("writable by group/others"), std::string::npos) << open.error().message;
}

// An entry replaced by a link to a file elsewhere, after open: the load
// refuses it with one line that says so, verify() reports it, and the file
// it points to is neither read as an entry nor touched.
TEST_F(DirFdTest, AnEntryReplacedByALinkIsRefusedWithOneLine) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto r = rules();
  ASSERT_TRUE(store->get_or_compile(r, {}, "r").ok());
  auto key = store->key_for(r, {});
  fs::path entry = store->entry_path(key), elsewhere = dir_ / "elsewhere.rxdb";
  fs::rename(entry, elsewhere);
  fs::create_symlink(elsewhere, entry);
  auto mtime = fs::last_write_time(elsewhere);
  auto got = store->get(key);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().message, entry.string() + ": is a symbolic link, not a cache file; not followed");
  EXPECT_EQ(fs::last_write_time(elsewhere), mtime);  // no LRU touch through the link
  auto report = store->verify();
  ASSERT_EQ(report.size(), 1u);
  EXPECT_FALSE(report[0].ok);
  EXPECT_EQ(report[0].problem, got.error().message);
  // The next compile replaces the link itself, not what it points to.
  auto again = store->get_or_compile(r, {}, "r");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->source, LoadResult::Source::kCompiled);
  EXPECT_FALSE(fs::is_symlink(entry));
  EXPECT_EQ(fs::last_write_time(elsewhere), mtime);
}

// A FIFO planted as an entry: open() of it for reading used to wait for a
// writer, holding the loading thread forever.  Now it is a one-line miss.
TEST_F(DirFdTest, AnEntryThatIsAFifoIsAMissNotAStall) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto r = rules();
  auto key = store->key_for(r, {});
  const fs::path entry = store->entry_path(key);
  ASSERT_EQ(::mkfifo(entry.c_str(), 0640), 0);
  auto got = std::async(std::launch::async, [&] { return store->get(key); });
  if (got.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    int w = ::open(entry.c_str(), O_WRONLY | O_NONBLOCK);  // release the reader, then fail
    got.wait();
    ::close(w);
    FAIL() << "get() of a FIFO entry blocked";
  }
  auto res = got.get();
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().message, entry.string() + ": not a regular file");
}

// The platform directory swapped for a link to another directory after
// open: writes still land in the directory that was checked (wherever it
// was renamed to), and nothing is written to, read from or listed in the
// other one.
TEST_F(DirFdTest, AnEntriesDirectorySwappedForALinkIsNotFollowed) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const fs::path moved = dir_ / "moved";
  fs::path other = swap_platform_dir(*store, moved);
  // A valid entry planted in the other directory is not what get() finds.
  auto r = rules();
  auto key = store->key_for(r, {});
  auto compiled = engine::Scanner::compile(r, {}, nullptr);
  ASSERT_TRUE(compiled.ok());
  auto planted = encode_entry((*compiled)->compiled(), key, *current_tags(), "r");
  ASSERT_TRUE(planted.ok());
  std::ofstream(other / (key.hex() + ".rxdb"), std::ios::binary) << *planted;
  auto miss = store->get(key);
  ASSERT_FALSE(miss.ok());
  EXPECT_EQ(miss.error().message, "no entry");

  auto res = store->get_or_compile(rules("beta"), {}, "beta");
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_TRUE(res->save_error.empty()) << res->save_error;
  const std::string beta = store->key_for(rules("beta"), {}).hex() + ".rxdb";
  EXPECT_TRUE(fs::exists(moved / beta));
  EXPECT_FALSE(fs::exists(other / beta));
  EXPECT_EQ(names_in(other), std::vector<std::string>{key.hex() + ".rxdb"});
  // And it is read back from there.
  auto hit = store->get_or_compile(rules("beta"), {}, "beta");
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->source, LoadResult::Source::kCache);
}

// Prune goes through the descriptors and never follows a link: not a
// platform directory swapped for one, not a link planted as an entry, not a
// link to a directory in the root (prune --foreign).
TEST_F(DirFdTest, PruneFollowsNoLink) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const fs::path outside = dir_ / "outside";
  fs::create_directories(outside);
  std::ofstream(outside / "precious.rxdb") << "keep me";
  std::ofstream(outside / "precious.corrupt") << "keep me too";
  const auto old = fs::file_time_type::clock::now() - std::chrono::hours(24 * 365);
  fs::last_write_time(outside / "precious.rxdb", old);
  // A link planted as an entry, and one to a directory among the platforms.
  fs::create_symlink(outside / "precious.rxdb", store->platform_dir() / "0000000000000000.rxdb");
  fs::create_directory_symlink(outside, root_ / "x86_64-linked-platform");

  PruneOptions all;
  all.max_size = 0;
  all.foreign = true;
  store->prune(all);
  EXPECT_FALSE(fs::is_symlink(store->platform_dir() / "0000000000000000.rxdb"));  // the link itself went
  EXPECT_TRUE(fs::is_symlink(root_ / "x86_64-linked-platform"));                 // not a directory of ours
  EXPECT_EQ(names_in(outside), (std::vector<std::string>{"precious.corrupt", "precious.rxdb"}));

  // Now the platform directory itself becomes a link to `outside`.
  fs::path other = swap_platform_dir(*store, dir_ / "moved");
  fs::copy_file(outside / "precious.rxdb", other / "1111111111111111.rxdb");
  fs::copy_file(outside / "precious.corrupt", other / "1111111111111111.corrupt");
  fs::last_write_time(other / "1111111111111111.rxdb", old);
  PruneOptions aged;
  aged.max_age = std::chrono::seconds(1);
  auto rep = store->prune(aged);
  EXPECT_EQ(names_in(other), (std::vector<std::string>{"1111111111111111.corrupt", "1111111111111111.rxdb"}));
  for (const auto& p : rep.removed) EXPECT_EQ(p.string().find(other.string()), std::string::npos) << p;
}

// TargetStore (regexctl prewarm --target) too: an entry that is a link is
// not "present", and rewriting it replaces the link, not its target.
TEST_F(DirFdTest, ATargetEntryThatIsALinkIsRewrittenNotFollowed) {
  const auto& host = current_tags();
  ASSERT_TRUE(host.ok());
  auto ts = TargetStore::open(root_, *host, [](LogLevel, const std::string&) {});
  ASSERT_TRUE(ts.ok()) << ts.error().message;
  auto r = rules();
  auto first = (*ts)->get_or_compile(r, {}, "r");
  ASSERT_TRUE(first.ok()) << first.error().message;
  const fs::path elsewhere = dir_ / "elsewhere.rxdb";
  fs::rename(first->path, elsewhere);
  fs::create_symlink(elsewhere, first->path);
  const std::string before = slurp(elsewhere);
  auto second = (*ts)->get_or_compile(r, {}, "r");
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->source, TargetResult::Source::kCompiled);
  EXPECT_FALSE(fs::is_symlink(first->path));
  EXPECT_EQ(slurp(elsewhere), before);
}

}  // namespace
