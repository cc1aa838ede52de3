// The remote tier against a real redis-server (started here, private Unix
// socket): two hosts share entries, only signed entries load, a dead or hung
// Redis costs at most its timeout, export/import archives.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "redis_server.h"
#include "regexd/cache/archive.h"
#include "regexd/cache/compress.h"
#include "regexd/cache/entry.h"
#include "regexd/cache/remote_store.h"
#include "regexd/cache/signing.h"
#include "regexd/cache/store.h"

namespace fs = std::filesystem;
using namespace regexd;
using namespace regexd::cache;
using Clock = std::chrono::steady_clock;

namespace {

engine::RuleSet rules(int variant = 0) {
  return engine::parse_native("WIN body /you\\s+won/i\n"
                              "BACKREF body /(\\w{3})\\1/\n"
                              "SUBJ header:Subject /^re:/i\n"
                              "V" + std::to_string(variant) + " body /variant" + std::to_string(variant) + "/\n",
                              "remote.rules");
}

std::vector<std::vector<std::pair<std::string, unsigned>>> answers(const engine::Scanner& s) {
  std::vector<std::vector<std::pair<std::string, unsigned>>> out;
  for (const auto& cls : s.classes())
    for (const char* m : {"you WON", "abcabc", "Re: x", "variant0", "nothing"}) out.push_back(s.scan(cls, m)->hits);
  return out;
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh private directory named after the running test.
fs::path fresh_test_dir(const std::string& prefix) {
  fs::path d = fs::temp_directory_path() / (prefix + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (regexd::testing::RedisServer::binary().empty())
      GTEST_SKIP() << "redis-server is not installed (scripts/setup-deps.sh --test installs it)";
    dir_ = fresh_test_dir("regexd_remote_");
    redis_ = std::make_unique<regexd::testing::RedisServer>(dir_ / "redis");
    ASSERT_TRUE(redis_->running()) << "redis-server did not start; see " << (dir_ / "redis" / "redis.log");
    auto k1 = generate_key_pair();
    auto k2 = generate_key_pair();
    ASSERT_TRUE(k1.ok() && k2.ok());
    key_ = *k1;
    other_key_ = *k2;
  }
  void TearDown() override {
    redis_.reset();
    fs::remove_all(dir_);
  }

  RemoteOptions remote_options(bool sign, std::vector<PublicKey> trusted) {
    RemoteOptions o;
    o.endpoint = redis_->socket();
    o.connect_timeout = std::chrono::milliseconds(300);
    o.io_timeout = std::chrono::milliseconds(300);
    o.retry_after = std::chrono::milliseconds(200);
    o.wait = std::chrono::milliseconds(3000);
    o.poll_interval = std::chrono::milliseconds(20);
    o.key_prefix = "test:";
    if (sign) o.signing_key = key_.secret;
    o.trusted = std::move(trusted);
    return o;
  }

  // A "host": its own cache root, the shared Redis.
  std::unique_ptr<Store> host(const std::string& name, RemoteOptions ro) {
    StoreOptions so;
    so.root = dir_ / name;
    so.log = [this, name](LogLevel level, const std::string& msg) { logs_.emplace_back(level, name + ": " + msg); };
    auto remote = RemoteStore::open_redis(std::move(ro), so.log);
    EXPECT_TRUE(remote.ok());
    so.remote = std::move(*remote);
    auto s = Store::open(so);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s.ok() ? std::move(*s) : nullptr;
  }

  std::size_t count_logs(const std::string& needle, LogLevel level) const {
    std::size_t n = 0;
    for (const auto& [l, m] : logs_) n += l == level && m.find(needle) != std::string::npos;
    return n;
  }

  // Direct access to the shared Redis (what another host, or an attacker, writes).
  std::unique_ptr<RemoteBackend> raw() { return make_redis_backend(remote_options(false, {})); }
  std::string redis_key(const Store& s, const CacheKey& k) {
    return "test:" + s.platform_dir().filename().string() + ":" + k.hex();
  }

  fs::path dir_;
  std::unique_ptr<regexd::testing::RedisServer> redis_;
  KeyPair key_, other_key_;
  std::vector<std::pair<LogLevel, std::string>> logs_;
};

TEST_F(RemoteTest, SecondHostStartsWarmWithZeroCompiles) {
  auto a = host("a", remote_options(true, {key_.public_key}));
  auto b = host("b", remote_options(false, {key_.public_key}));
  auto first = a->get_or_compile(rules(), {}, "r");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->source, LoadResult::Source::kCompiled);
  EXPECT_EQ(a->remote()->stats().published.load(), 1u);

  auto second = b->get_or_compile(rules(), {}, "r");
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->source, LoadResult::Source::kCompiled) << "host b compiled";
  EXPECT_TRUE(second->from_remote);
  EXPECT_EQ(b->remote()->stats().hits.load(), 1u);
  EXPECT_EQ(answers(*second->scanner), answers(*first->scanner));
  // Copied into b's own cache: the next load is local.
  auto key = b->key_for(rules(), {});
  EXPECT_EQ(slurp(b->entry_path(key)), slurp(a->entry_path(key)));
  bool from_remote = true;
  ASSERT_TRUE(b->get(key, nullptr, &from_remote).ok());
  EXPECT_FALSE(from_remote);
  EXPECT_EQ(b->remote()->stats().hits.load(), 1u);
  // b has no signing key: it publishes nothing.
  auto other = b->get_or_compile(rules(1), {}, "r1");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->source, LoadResult::Source::kCompiled);
  EXPECT_EQ(b->remote()->stats().published.load(), 0u);
}

TEST_F(RemoteTest, EntriesWithAValidChecksumButABadSignatureAreRefused) {
  auto a = host("a", remote_options(true, {key_.public_key}));
  ASSERT_TRUE(a->get_or_compile(rules(), {}, "r").ok());
  auto key = a->key_for(rules(), {});
  auto backend = raw();
  auto sealed = backend->get(redis_key(*a, key), 1u << 30);
  ASSERT_TRUE(sealed.ok() && sealed->has_value());
  std::string entry = slurp(a->entry_path(key));  // a valid entry: checksum and all
  std::string platform = a->platform_dir().filename().string();

  // 1. Signed by a key b does not trust.
  {
    auto b = host("b1", remote_options(false, {other_key_.public_key}));
    auto got = b->get_or_compile(rules(), {}, "r");
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->source, LoadResult::Source::kCompiled);
    EXPECT_EQ(b->remote()->stats().refused.load(), 1u);
    EXPECT_EQ(count_logs("b1: remote entry " + platform + "/" + key.hex() + " refused: signed by untrusted key", LogLevel::kWarning), 1u);
  }
  // 2. The trusted signer's key in the header, another key's signature.
  {
    auto forged = seal_entry(platform, key, entry, other_key_.secret);
    ASSERT_TRUE(forged.ok());
    std::memcpy(forged->data() + 32, key_.public_key.bytes.data(), 32);
    ASSERT_TRUE(backend->set(redis_key(*a, key), *forged, std::chrono::seconds(60)).ok());
    auto b = host("b2", remote_options(false, {key_.public_key}));
    auto got = b->get_or_compile(rules(), {}, "r");
    ASSERT_TRUE(got.ok());
    EXPECT_FALSE(got->from_remote);
    EXPECT_EQ(b->remote()->stats().refused.load(), 1u);
    EXPECT_EQ(count_logs("b2: remote entry " + platform + "/" + key.hex() + " refused: bad signature", LogLevel::kWarning), 1u);
  }
  // 3. A genuine entry of the trusted key, one byte changed (payload, size
  //    field, signature): the entry inside would still pass its checksum.
  for (std::size_t off : {std::size_t{20}, std::size_t{70}, sealed->value().size() - 1}) {
    std::string bad = **sealed;
    bad[off] = static_cast<char>(bad[off] ^ 0x01);
    ASSERT_TRUE(backend->set(redis_key(*a, key), bad, std::chrono::seconds(60)).ok());
    auto b = host("b3_" + std::to_string(off), remote_options(false, {key_.public_key}));
    ASSERT_TRUE(b->get(key).ok() == false);
    EXPECT_EQ(b->remote()->stats().refused.load(), 1u) << "byte " << off;
    EXPECT_FALSE(fs::exists(b->entry_path(key)));
  }
  // 4. Replayed under another key: a genuine entry copied to the key of
  //    another rule set is refused (the signature covers the key).
  {
    auto other_key = a->key_for(rules(7), {});
    ASSERT_TRUE(backend->set(redis_key(*a, other_key), **sealed, std::chrono::seconds(60)).ok());
    auto b = host("b4", remote_options(false, {key_.public_key}));
    EXPECT_FALSE(b->get(other_key).ok());
    EXPECT_EQ(b->remote()->stats().refused.load(), 1u);
  }
  // 5. Unsigned bytes (a plain entry written straight into Redis).
  {
    ASSERT_TRUE(backend->set(redis_key(*a, key), entry, std::chrono::seconds(60)).ok());
    auto b = host("b5", remote_options(false, {key_.public_key}));
    EXPECT_FALSE(b->get(key).ok());
    EXPECT_EQ(b->remote()->stats().refused.load(), 1u);
    EXPECT_EQ(count_logs("b5: remote entry " + platform + "/" + key.hex() + " refused: not a signed entry", LogLevel::kWarning), 1u);
  }
}

TEST_F(RemoteTest, RedisKilledMidRunScansGoOnAndTheNextStartCompilesLocally) {
  auto a = host("a", remote_options(true, {key_.public_key}));
  auto first = a->get_or_compile(rules(), {}, "r");
  ASSERT_TRUE(first.ok());
  auto before = answers(*first->scanner);
  redis_->kill();
  // Scanning never touches the remote.
  EXPECT_EQ(answers(*first->scanner), before);
  // Loads: every one succeeds by compiling; one warning for the outage.
  auto b = host("b", remote_options(true, {key_.public_key}));
  for (int v = 0; v < 3; ++v) {
    auto got = b->get_or_compile(rules(v), {}, "r");
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->source, LoadResult::Source::kCompiled);
    EXPECT_FALSE(got->from_remote);
  }
  EXPECT_EQ(count_logs("b: remote " + redis_->socket(), LogLevel::kWarning), 1u);
  EXPECT_GE(b->remote()->stats().errors.load(), 1u);
  // Back: the next request after retry_after reconnects and says so once.
  redis_->start();
  ASSERT_TRUE(redis_->running());
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  auto c = b->get_or_compile(rules(5), {}, "r");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(count_logs("b: remote " + redis_->socket() + ": reachable again", LogLevel::kInfo), 1u);
  EXPECT_EQ(b->remote()->stats().published.load(), 1u);
}

// A Redis that accepts and never answers (a frozen server; a listener that
// never reads): one request waits for io_timeout, later ones skip the remote
// until retry_after.  The bounds are loose on purpose (a loaded machine);
// what matters is that the wait is bounded and paid once, not per lookup.
TEST_F(RemoteTest, AHangingRedisCostsAtMostTheTimeout) {
  auto check = [&](const std::string& name, const std::string& endpoint) {
    auto ro = remote_options(true, {key_.public_key});
    ro.endpoint = endpoint;
    ro.retry_after = std::chrono::seconds(60);
    auto s = host(name, ro);
    auto t0 = Clock::now();
    EXPECT_FALSE(s->get(s->key_for(rules(), {})).ok());
    double first = ms_since(t0);
    EXPECT_GE(first, 250) << name << ": did not wait for the answer at all?";
    EXPECT_LT(first, 300 + 300 + 2000) << name;
    t0 = Clock::now();
    for (int v = 1; v < 6; ++v) EXPECT_FALSE(s->get(s->key_for(rules(v), {})).ok());
    EXPECT_LT(ms_since(t0), 250) << name << ": later lookups waited again";
    EXPECT_FALSE(s->remote()->available());
    EXPECT_EQ(count_logs(name + ": remote " + endpoint + ": redis: no answer within 300 ms", LogLevel::kWarning), 1u);
  };
  redis_->pause();
  check("stopped", redis_->socket());
  redis_->resume();
  regexd::testing::SilentListener silent((dir_ / "silent.sock").string());
  ASSERT_TRUE(silent.ok());
  check("silent", (dir_ / "silent.sock").string());
}

TEST_F(RemoteTest, OneCompilePerKeyAcrossHosts) {
  auto a = host("a", remote_options(true, {key_.public_key}));
  auto b = host("b", remote_options(false, {key_.public_key}));
  auto key = b->key_for(rules(), {});
  auto backend = raw();
  // Another host holds the compile lock of this key ...
  ASSERT_TRUE(backend->lock(redis_key(*b, key) + ":lock", "elsewhere", std::chrono::seconds(30)).value());
  // ... and publishes its entry a moment later: b waits for it, no compile.
  std::thread publisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto compiled = engine::Scanner::compile(rules(), {}, nullptr);
    ASSERT_TRUE(compiled.ok());
    ASSERT_TRUE(a->put(key, **compiled, "r").ok());
  });
  auto got = b->get_or_compile(rules(), {}, "r");
  publisher.join();
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->from_remote);
  EXPECT_NE(got->source, LoadResult::Source::kCompiled);
  EXPECT_EQ(b->remote()->stats().lock_waits.load(), 1u);

  // A holder that never publishes: b gives up after `wait` and compiles.
  auto ro = remote_options(false, {key_.public_key});
  ro.wait = std::chrono::milliseconds(300);
  auto c = host("c", ro);
  auto key2 = c->key_for(rules(2), {});
  ASSERT_TRUE(backend->lock(redis_key(*c, key2) + ":lock", "elsewhere", std::chrono::seconds(30)).value());
  auto t0 = Clock::now();
  auto own = c->get_or_compile(rules(2), {}, "r");
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->source, LoadResult::Source::kCompiled);
  EXPECT_GE(ms_since(t0), 300);
  // Our own lock is released after the compile, theirs is left alone.
  EXPECT_FALSE(backend->lock(redis_key(*c, key2) + ":lock", "x", std::chrono::seconds(1)).value());
  auto mine = a->get_or_compile(rules(3), {}, "r");
  ASSERT_TRUE(mine.ok());
  EXPECT_TRUE(backend->lock(redis_key(*a, a->key_for(rules(3), {})) + ":lock", "x", std::chrono::seconds(1)).value());
}

class SigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_test_dir("regexd_signing_");
    auto k = generate_key_pair();
    ASSERT_TRUE(k.ok());
    key_ = *k;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A cache root with two entries of this platform.
  std::unique_ptr<Store> filled_store(const fs::path& root) {
    StoreOptions so;
    so.root = root;
    auto s = Store::open(so);
    EXPECT_TRUE(s.ok());
    for (int v = 0; v < 2; ++v) EXPECT_TRUE((*s)->get_or_compile(rules(v), {}, "r").ok());
    return std::move(*s);
  }

  fs::path dir_;
  KeyPair key_;
};

TEST_F(SigningTest, KeyFilesRoundTripAndTheSecretKeyMustBePrivate) {
  ASSERT_TRUE(write_secret_key(dir_ / "k.key", key_.secret).ok());
  ASSERT_TRUE(write_public_key(dir_ / "k.pub", key_.public_key).ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto sk = read_secret_key(dir_ / "k.key");
  ASSERT_TRUE(sk.ok()) << sk.error().message;
  EXPECT_EQ(sk->public_key(), key_.public_key);
  auto pk = read_public_key(dir_ / "k.pub");
  ASSERT_TRUE(pk.ok());
  EXPECT_EQ(*pk, key_.public_key);
  EXPECT_EQ(parse_public_key(key_.public_key.hex()).value(), key_.public_key);
  EXPECT_EQ(parse_public_key((dir_ / "k.pub").string()).value(), key_.public_key);
  ::chmod((dir_ / "k.key").c_str(), 0640);
  auto loose = read_secret_key(dir_ / "k.key");
  ASSERT_FALSE(loose.ok());
  EXPECT_NE(loose.error().message.find("chmod 600"), std::string::npos) << loose.error().message;
  std::ofstream(dir_ / "bad.pub") << "regexd-ed25519-public-key-1 zz\n";
  EXPECT_FALSE(read_public_key(dir_ / "bad.pub").ok());
}

TEST_F(SigningTest, DecompressionIsBoundedBeforeAllocating) {
  std::string data(1 << 20, 'a');
  auto z = compress_zstd(data);
  ASSERT_TRUE(z.ok());
  EXPECT_LT(z->size(), data.size() / 100);
  EXPECT_EQ(decompress_zstd(*z, data.size(), data.size()).value(), data);
  auto over = decompress_zstd(*z, data.size(), data.size() - 1);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, ErrorCode::kResourceLimit);
  // The frame declares 1 MiB: a header that claims otherwise is refused.
  EXPECT_EQ(decompress_zstd(*z, 10, 1u << 30).error().code, ErrorCode::kCorrupt);
  EXPECT_FALSE(decompress_zstd("not zstd", 8, 1u << 30).ok());
}

TEST_F(SigningTest, ExportImportRoundTrip) {
  auto src = filled_store(dir_ / "src");
  auto sum = export_archive(src->platform_dir(), dir_ / "cache.rxda", key_.secret);
  ASSERT_TRUE(sum.ok()) << sum.error().message;
  EXPECT_EQ(sum->entries, 2u);
  EXPECT_TRUE(sum->skipped.empty());
  EXPECT_LT(sum->archive_bytes, sum->entry_bytes);  // compressed
  auto in = import_archive(dir_ / "cache.rxda", dir_ / "dst", {key_.public_key});
  ASSERT_TRUE(in.ok()) << in.error().message;
  EXPECT_EQ(in->entries, 2u);
  EXPECT_EQ(in->platform, src->platform_dir().filename().string());
  // The importing host loads both without compiling.
  StoreOptions so;
  so.root = dir_ / "dst";
  auto dst = Store::open(so);
  ASSERT_TRUE(dst.ok());
  for (int v = 0; v < 2; ++v) {
    auto got = (*dst)->get_or_compile(rules(v), {}, "r");
    ASSERT_TRUE(got.ok());
    EXPECT_NE(got->source, LoadResult::Source::kCompiled);
    EXPECT_EQ(slurp((*dst)->entry_path((*dst)->key_for(rules(v), {}))),
              slurp(src->entry_path(src->key_for(rules(v), {}))));
  }
}

TEST_F(SigningTest, ImportRefusesTamperedTruncatedAndUntrustedArchives) {
  auto src = filled_store(dir_ / "src");
  ASSERT_TRUE(export_archive(src->platform_dir(), dir_ / "a.rxda", key_.secret).ok());
  std::string good = slurp(dir_ / "a.rxda");
  auto other = generate_key_pair();
  ASSERT_TRUE(other.ok());
  auto try_import = [&](const std::string& bytes, const std::vector<PublicKey>& trusted) {
    fs::remove_all(dir_ / "dst");
    std::ofstream(dir_ / "t.rxda", std::ios::binary | std::ios::trunc) << bytes;
    auto r = import_archive(dir_ / "t.rxda", dir_ / "dst", trusted);
    if (!r.ok()) {
      EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
      EXPECT_NE(r.error().message.find("t.rxda"), std::string::npos) << r.error().message;
      EXPECT_FALSE(fs::exists(dir_ / "dst")) << "something was written";
    }
    return r.ok();
  };
  EXPECT_TRUE(try_import(good, {key_.public_key}));
  EXPECT_FALSE(try_import(good, {other->public_key}));
  // Every 997th byte flipped, and the last one: all caught (the signature
  // covers everything but itself; a flipped signature byte fails it too).
  std::vector<std::size_t> offsets;
  for (std::size_t off = 0; off < good.size(); off += 997) offsets.push_back(off);
  offsets.push_back(good.size() - 1);
  for (std::size_t off : offsets) {
    std::string bad = good;
    bad[off] = static_cast<char>(bad[off] ^ 0x20);
    EXPECT_FALSE(try_import(bad, {key_.public_key})) << "flip at " << off;
  }
  for (std::size_t len : {std::size_t{0}, std::size_t{10}, good.size() / 2, good.size() - 1})
    EXPECT_FALSE(try_import(good.substr(0, len), {key_.public_key})) << "truncated to " << len;
  // Re-signed by a trusted key but with a bad entry inside: the entry's own
  // signature and checks still refuse it.
  std::string body = good.substr(0, good.size() - 96);
  body[body.size() - 1] = static_cast<char>(body[body.size() - 1] ^ 1);  // inside the last sealed entry
  auto sig = sign_detached(std::string_view("regexd-archive/1\0", 17), body, key_.secret);
  std::string resealed = body + std::string(reinterpret_cast<const char*>(key_.public_key.bytes.data()), 32) +
                         std::string(reinterpret_cast<const char*>(sig.data()), 64);
  EXPECT_FALSE(try_import(resealed, {key_.public_key}));
}

}  // namespace
