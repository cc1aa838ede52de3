// The differential contract through the cache: a subset of SpamAssassin's
// rules is loaded with Store::get_or_compile and its answers over a corpus
// sample must equal plain PCRE2's, whether the scanner was just compiled or
// deserialized from an entry.
//
// Standalone (ctest) it uses a fresh root: compile, then reopen and load.
// tests/cross/cross_cache_test.sh runs the same binary of each flavor
// (x86_64 Hyperscan, x86_64 Vectorscan, aarch64 Vectorscan under qemu) in turn
// against ONE root, with
//   REGEXD_SHARED_ROOT=DIR          the shared cache root
//   REGEXD_EXPECT_SOURCE=compiled   this flavor's entry must not exist yet, or
//                       =cache      it must be loaded from the entry
// so that a flavor that loaded, damaged or deleted another's entries fails.
// For target entries (docs/cache-format.md) the x86_64 Vectorscan binary runs
// with REGEXD_TARGET=aarch64 instead: it writes the aarch64 entry of the same
// rule set (cache::TargetStore) and checks nothing else; the aarch64 binary
// then runs with REGEXD_EXPECT_SOURCE=cache.  REGEXD_SA_ALL=1 takes every
// SpamAssassin file instead of the subset, REGEXD_MESSAGES=N that many
// messages (bench-sized runs: docs/arm64.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "regexd/cache/store.h"
#include "regexd/cache/target.h"
#include "sa_corpus.h"

namespace fs = std::filesystem;
using namespace regexd;
using namespace regexd::cache;

namespace {

// Body and URI rules of a few files: every tier occurs, and the set compiles
// in seconds even under qemu (the whole rule set is the differential test's).
const std::vector<std::string> kRuleFiles = {"20_advance_fee.cf", "20_body_tests.cf", "20_drugs.cf",
                                             "20_html_tests.cf", "20_phrases.cf", "25_url_shortener.cf"};
constexpr std::size_t kMessages = 150;

engine::RuleSet rules_under_test() {
  const char* all = std::getenv("REGEXD_SA_ALL");
  return regexd::testing::load_sa_rules(all && std::string(all) == "1" ? std::vector<std::string>{} : kRuleFiles);
}

std::size_t messages_under_test() {
  const char* n = std::getenv("REGEXD_MESSAGES");
  return n ? std::strtoul(n, nullptr, 10) : kMessages;
}

const char* source_name(LoadResult::Source s) {
  switch (s) {
    case LoadResult::Source::kCache: return "cache";
    case LoadResult::Source::kSharedImage: return "shared-image";
    case LoadResult::Source::kCompiled: return "compiled";
  }
  return "?";
}

// One load through the store at `root` and the comparison with PCRE2.
void load_and_compare(const fs::path& root, const char* expect_source) {
  auto rules = rules_under_test();
  ASSERT_GT(rules.rules.size(), 100u) << "too few rules in " << ::testing::PrintToString(kRuleFiles);
  std::vector<std::string> logs;
  StoreOptions o;
  o.root = root;
  o.log = [&](LogLevel, const std::string& m) { logs.push_back(m); };
  auto store = Store::open(o);
  ASSERT_TRUE(store.ok()) << root << ": " << store.error().message;
  const auto& tags = *current_tags();
  EXPECT_EQ((*store)->platform_dir().filename().string().rfind(tags.arch + "-" + tags.flavor + "-", 0), 0u)
      << (*store)->platform_dir();
  auto res = (*store)->get_or_compile(rules, {}, "sa-subset");
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_TRUE(res->save_error.empty()) << res->save_error;
  const std::string got = source_name(res->source);
  EXPECT_EQ(got, expect_source) << "entry " << (*store)->entry_path((*store)->key_for(rules, {}))
                                << ", miss reason: " << res->miss_reason;
  if (got == "compiled") {
    // Its own directory had no entry: nothing of another platform was read.
    EXPECT_EQ(res->miss_reason, "no entry") << (*store)->platform_dir();
  }
  for (const auto& m : logs)
    EXPECT_EQ(m.find("corrupt"), std::string::npos) << "cache log: " << m;

  auto messages = regexd::testing::sample_messages(messages_under_test());
  ASSERT_EQ(messages.size(), messages_under_test()) << "corpus too small";
  auto a = regexd::testing::compare_with_pcre2(*res->scanner, rules, messages);
  std::printf("shared-root: %s %s: %zu rules x %zu messages, %zu matches by %zu rules, %zu disagreements\n",
              (*store)->platform_dir().filename().c_str(), got.c_str(), a.rules, a.messages, a.total_matches,
              a.rules_that_matched.size(), a.disagreements);
  EXPECT_GT(a.rules, 100u);
  EXPECT_EQ(a.disagreements, 0u);
  EXPECT_GT(a.rules_that_matched.size(), 10u) << "a comparison where almost nothing matches proves little";
}

// REGEXD_TARGET: the entry that a regexd on that architecture loads.
void write_target_entry(const fs::path& root, const std::string& target) {
  auto tags = target_tags(*current_tags(), target);
  ASSERT_TRUE(tags.ok()) << tags.error().message;
  auto store = TargetStore::open(root, *tags);
  ASSERT_TRUE(store.ok()) << root << ": " << store.error().message;
  auto res = (*store)->get_or_compile(rules_under_test(), {}, "sa-subset");
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_EQ(res->source, TargetResult::Source::kCompiled) << res->path << " existed";
  std::printf("shared-root: %s target entry: %zu rules compiled in %.0f ms\n", tags->dir_name().c_str(), res->rules,
              res->ms);
}

TEST(SharedRoot, SpamAssassinSubsetThroughTheCacheAgreesWithPcre2) {
  ASSERT_TRUE(regexd::testing::inputs_present());
  if (const char* target = std::getenv("REGEXD_TARGET")) {
    const char* shared = std::getenv("REGEXD_SHARED_ROOT");
    ASSERT_TRUE(shared) << "REGEXD_TARGET needs REGEXD_SHARED_ROOT";
    write_target_entry(shared, target);
    return;
  }
  if (const char* shared = std::getenv("REGEXD_SHARED_ROOT")) {
    const char* expect = std::getenv("REGEXD_EXPECT_SOURCE");
    ASSERT_TRUE(expect && (std::string(expect) == "compiled" || std::string(expect) == "cache"))
        << "REGEXD_SHARED_ROOT needs REGEXD_EXPECT_SOURCE=compiled|cache";
    load_and_compare(shared, expect);
    return;
  }
  fs::path root = fs::temp_directory_path() / ("regexd_shared_root_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  load_and_compare(root, "compiled");
  load_and_compare(root, "cache");
  fs::remove_all(root);
}

}  // namespace
