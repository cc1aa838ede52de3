// Target entries (cache/include/regexd/cache/target.h): the tags and key of
// another platform, the refusal of unsafe targets, and TargetStore writing
// generic-platform entries that the target's ordinary lookup accepts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "regexd/cache/entry.h"
#include "regexd/cache/fs.h"
#include "regexd/cache/target.h"
#include "regexd/engine/compiled_set.h"

namespace fs = std::filesystem;
using namespace regexd;
using namespace regexd::cache;

namespace {

PlatformTags host(std::string arch, std::string flavor, std::string hs_version, std::uint32_t tune,
                  std::uint64_t features) {
  PlatformTags t;
  t.arch = std::move(arch);
  t.flavor = std::move(flavor);
  t.hs_version = std::move(hs_version);
  t.pcre2_version = "10.42 2022-12-11";
  t.tune = tune;
  t.features = features;
  return t;
}

// An x86_64 Vectorscan host with AVX512 (what this project's CI machine reports).
const PlatformTags kX86Vectorscan = host("x86_64", "vectorscan", "5.4.9 2023-03-23", 8, 0x1c);

engine::RuleSet rules() {
  return engine::parse_native(
      "WIN body /you\\s+won/i\n"
      "BACKREF body /(\\w{3})\\1/\n"
      "UTF body /caf\\w/u\n"
      "SUBJ header:Subject /^re:/i\n",
      "target.rules");
}

TEST(TargetTags, Aarch64FromX86VectorscanIsTheGenericPlatformOfTheSameLibrary) {
  auto t = target_tags(kX86Vectorscan, "aarch64");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->arch, "aarch64");
  EXPECT_EQ(t->flavor, "vectorscan");
  EXPECT_EQ(t->hs_version, kX86Vectorscan.hs_version);
  EXPECT_EQ(t->pcre2_version, kX86Vectorscan.pcre2_version);
  EXPECT_EQ(t->tune, 0u);
  EXPECT_EQ(t->features, 0u);
  EXPECT_EQ(t->dir_name().rfind("aarch64-vectorscan-5.4.9-", 0), 0u) << t->dir_name();
  auto alias = target_tags(kX86Vectorscan, "arm64");
  ASSERT_TRUE(alias);
  EXPECT_EQ(alias->dir_name(), t->dir_name());
}

// The whole point: the key an aarch64 regexd computes for itself.  Its tags
// are what Vectorscan 5.4.9 reports on aarch64 (tune 0, features 0 on every
// ARM CPU); on an aarch64 build this is checked against the running process.
TEST(TargetTags, KeyAndDirectoryAreThoseOfANativeAarch64Regexd) {
  PlatformTags arm = host("aarch64", "vectorscan", kX86Vectorscan.hs_version, 0, 0);
  const auto& here = current_tags();
  ASSERT_TRUE(here);
  if (here->arch == "aarch64" && here->flavor == "vectorscan") arm = *here;
  PlatformTags builder = kX86Vectorscan;
  builder.hs_version = arm.hs_version;
  builder.pcre2_version = arm.pcre2_version;
  auto t = target_tags(builder, "aarch64");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->dir_name(), arm.dir_name());
  engine::CompileOptions o;
  EXPECT_EQ(compute_key(rules(), o, *t), compute_key(rules(), o, arm));
  // ...and not the key of the builder's own platform.
  EXPECT_NE(compute_key(rules(), o, *t), compute_key(rules(), o, builder));
  EXPECT_NE(t->dir_name(), builder.dir_name());
}

TEST(TargetTags, OwnArchitectureIsThisMachinesOwnPlatform) {
  auto t = target_tags(kX86Vectorscan, "amd64");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->dir_name(), kX86Vectorscan.dir_name());
  EXPECT_EQ(t->features, kX86Vectorscan.features);
}

TEST(TargetTags, UnsafeTargetsAreRefusedWithOneLineNamingWhy) {
  auto expect_refused = [](const PlatformTags& h, const char* target, const std::string& why) {
    auto t = target_tags(h, target);
    ASSERT_FALSE(t) << target << " accepted";
    EXPECT_EQ(t.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(t.error().message.find(why), std::string::npos) << t.error().message;
    EXPECT_EQ(t.error().message.find('\n'), std::string::npos);
  };
  // Intel Hyperscan: x86_64 only.
  expect_refused(host("x86_64", "hyperscan", "5.4.0 2021-01-26", 8, 0x1c), "aarch64",
                 "target aarch64: needs a Vectorscan build; this is hyperscan 5.4.0 2021-01-26 on x86_64");
  // Not verified: big-endian, other vector ISAs, made-up names.
  for (const char* t : {"s390x", "ppc64le", "riscv64", "armhf", "", "AARCH64", "aarch64 "})
    expect_refused(kX86Vectorscan, t, "unknown or unverified architecture");
  // An x86_64 regexd keys entries by its own CPU's features.
  expect_refused(host("aarch64", "vectorscan", "5.4.9 2023-03-23", 0, 0), "x86_64", "own CPU's tune and features");
}

class TargetStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("regexd_target_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    // The generic platform of this machine's own architecture: an entry
    // this process can also load and scan with (generic runs on every CPU).
    const auto& here = current_tags();
    ASSERT_TRUE(here);
    tags_ = *here;
    tags_.tune = 0;
    tags_.features = 0;
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  PlatformTags tags_;
};

TEST_F(TargetStoreTest, WritesAGenericEntryUnderTheTargetsKeyAndFindsItAgain) {
  auto store = TargetStore::open(root_, tags_);
  ASSERT_TRUE(store) << store.error().message;
  engine::CompileOptions o;
  auto first = (*store)->get_or_compile(rules(), o, "target.rules");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->source, TargetResult::Source::kCompiled);
  EXPECT_EQ(first->rules, 4u);
  CacheKey key = compute_key(rules(), o, tags_);
  EXPECT_EQ(first->path, root_ / tags_.dir_name() / (key.hex() + ".rxdb"));

  auto bytes = read_file(first->path);
  ASSERT_TRUE(bytes);
  auto info = inspect_entry(*bytes);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->key, key);
  EXPECT_EQ(info->tags.tune, 0u);
  EXPECT_EQ(info->tags.features, 0u);
  EXPECT_EQ(info->rule_set_name, "target.rules");
  // Compiled for the generic platform: Hyperscan's own header names no
  // optional CPU feature, whatever this CPU has.
  bool any_db = false;
  for (const auto& c : info->classes)
    for (const auto* db_info : {&c.bytes_db_info, &c.utf8_db_info}) {
      if (db_info->empty()) continue;
      any_db = true;
      EXPECT_EQ(db_info->find("AVX"), std::string::npos) << *db_info;
    }
  EXPECT_TRUE(any_db);

  // The target's own checks accept it (here the target is this architecture,
  // so the databases even deserialize and answer like a native compile).
  auto set = decode_entry(*bytes, key, tags_);
  ASSERT_TRUE(set) << set.error().message;
  auto loaded = engine::Scanner::from_compiled(std::move(*set));
  ASSERT_TRUE(loaded);
  auto native = engine::Scanner::compile(rules(), o, nullptr);
  ASSERT_TRUE(native);
  for (const char* text : {"you WON a prize", "abcabc", "caf\xc3\xa9", "nothing"})
    EXPECT_EQ((*loaded)->scan("body", text)->hits, (*native)->scan("body", text)->hits) << text;

  auto again = (*store)->get_or_compile(rules(), o, "target.rules");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->source, TargetResult::Source::kPresent);
  EXPECT_EQ(again->rules, 4u);
  EXPECT_EQ(*read_file(first->path), *bytes);
}

TEST_F(TargetStoreTest, ADamagedOrForeignFileUnderTheKeyIsRewritten) {
  auto store = TargetStore::open(root_, tags_);
  ASSERT_TRUE(store);
  engine::CompileOptions o;
  auto first = (*store)->get_or_compile(rules(), o, "target.rules");
  ASSERT_TRUE(first);
  auto good = *read_file(first->path);
  // A flipped byte: the checksum fails.
  std::string bad = good;
  bad[bad.size() / 2] ^= 1;
  ASSERT_TRUE(write_file_atomic(first->path, bad));
  std::vector<std::string> logged;
  auto logging = TargetStore::open(root_, tags_, [&](LogLevel, const std::string& m) { logged.push_back(m); });
  ASSERT_TRUE(logging);
  auto redone = (*logging)->get_or_compile(rules(), o, "target.rules");
  ASSERT_TRUE(redone);
  EXPECT_EQ(redone->source, TargetResult::Source::kCompiled);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find(first->path.string()), std::string::npos) << logged[0];
  EXPECT_NE(logged[0].find("rewriting it"), std::string::npos) << logged[0];
  auto info = inspect_entry(*read_file(first->path));
  ASSERT_TRUE(info) << info.error().message;
  // Another rule set's entry (other key in its header) under this name.
  auto other_rules = engine::parse_native("X body /other/\n", "other.rules");
  auto other = (*store)->get_or_compile(other_rules, o, "other.rules");
  ASSERT_TRUE(other);
  fs::copy_file(other->path, first->path, fs::copy_options::overwrite_existing);
  logged.clear();
  auto third = (*logging)->get_or_compile(rules(), o, "target.rules");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->source, TargetResult::Source::kCompiled);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find("header key"), std::string::npos) << logged[0];
}

TEST_F(TargetStoreTest, AnUnsafeRootIsRefused) {
  fs::create_directories(root_);
  fs::permissions(root_, fs::perms::others_write, fs::perm_options::add);
  auto store = TargetStore::open(root_, tags_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kPermission);
}

}  // namespace
