// Cache entries and the store: a wrong file is never loaded.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "regexd/cache/entry.h"
#include "regexd/cache/fs.h"
#include "regexd/cache/store.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/serialize.h"
#include "hostile_entry.h"

namespace fs = std::filesystem;
using namespace regexd;
using namespace regexd::cache;

namespace {

engine::RuleSet small_rules() {
  return engine::parse_native(
      "WIN body /you\\s+won/i\n"
      "BACKREF body /(\\w{3})\\1/\n"
      "EMPTY body /x*/\n"
      "UTF body /caf\\w/u\n"
      "SUBJ header:Subject /^re:/i\n",
      "small.rules");
}

const std::vector<std::string>& samples() {
  static const std::vector<std::string> s = {"you WON a prize", "abcabc", "caf\xc3\xa9", "Re: hello", "nothing",
                                             "caf\xff"};
  return s;
}

// Answers of a scanner on every sample in every class, as one comparable value.
std::vector<std::vector<std::pair<std::string, unsigned>>> answers(const engine::Scanner& s) {
  std::vector<std::vector<std::pair<std::string, unsigned>>> out;
  for (const auto& cls : s.classes())
    for (const auto& m : samples()) out.push_back(s.scan(cls, m)->hits);
  return out;
}

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("regexd_cache_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<Store> open_store(bool shared = false) {
    StoreOptions o;
    o.root = root_;
    o.shared_images = shared;
    o.log = [this](LogLevel level, const std::string& msg) { logs_.emplace_back(level, msg); };
    auto s = Store::open(o);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s.ok() ? std::move(*s) : nullptr;
  }

  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }

  std::size_t count_logs(LogLevel level) const {
    std::size_t n = 0;
    for (const auto& [l, m] : logs_) n += l == level;
    return n;
  }

  fs::path root_;
  std::vector<std::pair<LogLevel, std::string>> logs_;
};

TEST_F(CacheTest, RoundTripGivesTheSameAnswersAndTiers) {
  auto store = open_store();
  auto rules = small_rules();
  auto first = store->get_or_compile(rules, {}, "small");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->source, LoadResult::Source::kCompiled);
  EXPECT_EQ(first->miss_reason, "no entry");
  EXPECT_TRUE(first->save_error.empty()) << first->save_error;
  auto second = store->get_or_compile(rules, {}, "small");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->source, LoadResult::Source::kCache);
  EXPECT_EQ(answers(*second->scanner), answers(*first->scanner));
  EXPECT_EQ(second->scanner->tiers(), first->scanner->tiers());
  // The entry is named by its key and carries mode 0640.
  fs::path entry = store->entry_path(store->key_for(rules, {}));
  struct stat st {};
  ASSERT_EQ(::stat(entry.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  auto info = inspect_entry(slurp(entry));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->rules, 5u);
  EXPECT_EQ(info->rule_set_name, "small");
  EXPECT_EQ(info->tags.dir_name(), store->platform_dir().filename().string());
}

TEST_F(CacheTest, KeyChangesWithEveryRuleField) {
  auto tags = *current_tags();
  auto base = small_rules();
  auto k0 = compute_key(base, {}, tags);
  auto changed = [&](auto mutate) {
    auto r = base;
    mutate(r.rules[1]);
    return compute_key(r, {}, tags);
  };
  EXPECT_NE(k0, changed([](engine::Rule& r) { r.id += "X"; }));
  EXPECT_NE(k0, changed([](engine::Rule& r) { r.cls = "rawbody"; }));
  EXPECT_NE(k0, changed([](engine::Rule& r) { r.pattern += "x"; }));
  EXPECT_NE(k0, changed([](engine::Rule& r) { r.flags ^= engine::kCaseless; }));
  EXPECT_NE(k0, changed([](engine::Rule& r) { r.max_hits = 3; }));
  EXPECT_EQ(k0, changed([](engine::Rule& r) { r.line += 10; }));  // location is not identity
  auto other = tags;
  other.hs_version = "5.4.9 2099-01-01";
  EXPECT_NE(k0, compute_key(base, {}, other));
  engine::CompileOptions limits;
  limits.pcre2_match_limit = 5;
  EXPECT_NE(k0, compute_key(base, limits, tags));
  // The cost check decides tiers, so a set built without it is another entry.
  engine::CompileOptions no_cost_check;
  no_cost_check.cost_check = false;
  EXPECT_NE(k0, compute_key(base, no_cost_check, tags));
  // Issue 14: another entry layout is another key (two regexd versions on one root).
  EXPECT_EQ(k0, compute_key(base, {}, tags, kFormatVersion));
  EXPECT_NE(k0, compute_key(base, {}, tags, kFormatVersion + 1));
}

// An entry whose checksum is right but whose databases do not belong to the
// classes that hold them (a writer bug, a resealed damaged file): a match
// for a rule outside the class must be an error, not a write past the end of
// the scanner's per-rule state (found by scripts/fuzz-entries.sh).
TEST_F(CacheTest, ADatabaseReportingAnotherClassRuleIsAnErrorNotACrash) {
  auto rules = engine::parse_native(
      "A body /alpha/\n"
      "B body /beta/\n"
      "S header:Subject /subject\\d/\n",
      "swap.rules");
  // Both classes must have a Hyperscan database to swap: tiers from the
  // pattern text, whatever the planner would measure (it may give a class of
  // one rule to PCRE2).
  engine::CompileOptions text_tiers;
  text_tiers.cost_check = false;
  auto compiled = engine::Scanner::compile(rules, text_tiers, nullptr);
  ASSERT_TRUE(compiled.ok());
  auto tags = *current_tags();
  auto key = compute_key(rules, text_tiers, tags);
  auto bytes = encode_entry((*compiled)->compiled(), key, tags, "swap");
  ASSERT_TRUE(bytes.ok());
  auto set = decode_entry(*bytes, key, tags);
  ASSERT_TRUE(set.ok()) << set.error().message;
  ASSERT_EQ((*set)->classes.size(), 2u);
  std::swap((*set)->classes[0].bytes_db, (*set)->classes[1].bytes_db);
  auto scanner = engine::Scanner::from_compiled(std::move(*set));
  ASSERT_TRUE(scanner.ok());
  // `body` now scans with the Subject database, which reports rule S.
  auto res = (*scanner)->scan("body", "subject1");
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("not one of its rules"), std::string::npos) << res.error().message;
  // A buffer that does not match is answered, and the scanner stays usable.
  auto quiet = (*scanner)->scan("body", "nothing here");
  ASSERT_TRUE(quiet.ok());
  EXPECT_TRUE(quiet->hits.empty());
}

TEST_F(CacheTest, EveryFlippedByteIsCaughtBeforeHyperscan) {
  auto store = open_store();
  auto rules = small_rules();
  ASSERT_TRUE(store->get_or_compile(rules, {}, "small").ok());
  CacheKey key = store->key_for(rules, {});
  const std::string good = slurp(store->entry_path(key));
  ASSERT_GT(good.size(), 100u);
  const auto& tags = *current_tags();
  for (std::size_t off = 0; off < good.size(); ++off) {
    std::string bad = good;
    bad[off] = static_cast<char>(bad[off] ^ (1 << (off % 8)));
    auto r = decode_entry(bad, key, tags);
    ASSERT_FALSE(r.ok()) << "flip at offset " << off << " was loaded";
    // Our own checks caught it: no message comes from a Hyperscan call.
    EXPECT_EQ(r.error().message.find("hs_"), std::string::npos) << off << ": " << r.error().message;
  }
}

TEST_F(CacheTest, EveryTruncationIsCaught) {
  auto store = open_store();
  auto rules = small_rules();
  ASSERT_TRUE(store->get_or_compile(rules, {}, "small").ok());
  CacheKey key = store->key_for(rules, {});
  const std::string good = slurp(store->entry_path(key));
  for (std::size_t len = 0; len < good.size(); ++len) {
    auto r = decode_entry(std::string_view(good).substr(0, len), key, *current_tags());
    ASSERT_FALSE(r.ok()) << "truncation to " << len << " bytes was loaded";
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt) << len << ": " << r.error().message;
  }
}

// Store::prefetch: the entry a rule set used last is read ahead of its
// get(); only a get() with that very key takes it.
TEST_F(CacheTest, APrefetchAnswersTheGetOfItsKeyAndNoOther) {
  auto rules = small_rules();
  auto other = engine::parse_native("OTHER body /other\\s+rule/\n", "other.rules");
  CacheKey small_key, other_key;
  std::vector<std::vector<std::pair<std::string, unsigned>>> want;
  {
    auto store = open_store();
    auto a = store->get_or_compile(rules, {}, "small");
    ASSERT_TRUE(a.ok());
    want = answers(*a->scanner);
    ASSERT_TRUE(store->get_or_compile(other, {}, "other").ok());
    small_key = store->key_for(rules, {});
    other_key = store->key_for(other, {});
  }
  for (bool shared : {false, true}) {
    auto store = open_store(shared);  // a new process
    store->prefetch("small");
    LoadResult::Source src{};
    bool ahead = false;
    auto got = store->get(small_key, &src, nullptr, &ahead);
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_TRUE(ahead);
    EXPECT_EQ(store->prefetch_hits(), 1u);
    EXPECT_EQ(src, shared ? LoadResult::Source::kSharedImage : LoadResult::Source::kCache);
    EXPECT_EQ(answers(**got), want);
    // A prefetch for one name, a get() for another key: dropped, and the
    // get() loads its own entry as without it.
    store->prefetch("other");
    got = store->get(small_key, nullptr, nullptr, &ahead);
    ASSERT_TRUE(got.ok());
    EXPECT_FALSE(ahead);
    EXPECT_EQ(store->prefetch_hits(), 1u);
    EXPECT_EQ(answers(**got), want);
    // A name no entry records, and an empty one: nothing to prefetch.
    store->prefetch("nobody");
    store->prefetch("");
    ASSERT_TRUE(store->get(other_key).ok());
    EXPECT_EQ(store->prefetch_hits(), 1u);
    // The next prefetch of a name works again after all that.
    store->prefetch("other");
    ASSERT_TRUE(store->get(other_key).ok());
    EXPECT_EQ(store->prefetch_hits(), 2u);
  }
}

// The name a prefetch goes by comes from the entry's head alone, never read
// past it (the ASan build would see it), and a damaged head is an error or a
// wrong name at worst (a hint: get() checks everything).
TEST_F(CacheTest, TheRuleSetNameIsReadFromTheHeadAloneAndNeverPastIt) {
  auto store = open_store();
  auto rules = small_rules();
  ASSERT_TRUE(store->get_or_compile(rules, {}, "small").ok());
  const std::string bytes = slurp(store->entry_path(store->key_for(rules, {})));
  std::size_t n = entry_head_size(bytes.substr(0, kEntryPrologue));
  ASSERT_GT(n, kEntryPrologue);
  ASSERT_LT(n, bytes.size());
  auto name = peek_rule_set_name(bytes.substr(0, n));
  ASSERT_TRUE(name.ok()) << name.error().message;
  EXPECT_EQ(*name, "small");
  EXPECT_EQ(entry_head_size(bytes.substr(0, kEntryPrologue - 1)), 0u);
  for (std::size_t k = 0; k < n; k += 7) EXPECT_FALSE(peek_rule_set_name(bytes.substr(0, k)).ok()) << k;
  for (std::size_t off = 0; off < n; ++off) {
    std::string head = bytes.substr(0, n);
    head[off] = static_cast<char>(~head[off]);
    std::size_t m = entry_head_size(head);
    if (m > head.size()) continue;  // a longer head claimed: the store reads no more than the file holds
    (void)peek_rule_set_name(head);
  }
}

// A prefetched entry that fails its checks is not trusted with the verdict:
// get() reads it again and treats it as any corrupt entry (moved aside,
// warned about), and a store destroyed with a prefetch pending waits for it.
TEST_F(CacheTest, APrefetchedCorruptEntryIsReportedByGetAsAnyOther) {
  auto rules = small_rules();
  CacheKey key;
  {
    auto store = open_store();
    ASSERT_TRUE(store->get_or_compile(rules, {}, "small").ok());
    key = store->key_for(rules, {});
  }
  fs::path entry = open_store()->entry_path(key);
  std::string bytes = slurp(entry);
  bytes[bytes.size() - 17] = static_cast<char>(~bytes[bytes.size() - 17]);  // the payload's last byte
  spit(entry, bytes);
  {
    auto store = open_store();
    store->prefetch("small");  // the header still names it
  }  // destroyed with the prefetch pending or done: joined, nothing leaks
  auto store = open_store();
  store->prefetch("small");
  auto got = store->get(key);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(store->prefetch_hits(), 0u);
  EXPECT_TRUE(fs::exists(entry.string() + ".corrupt"));
  EXPECT_GT(count_logs(LogLevel::kWarning), 0u);
}

TEST_F(CacheTest, ACorruptEntryIsAMissMovedAsideAndReplaced) {
  auto store = open_store();
  auto rules = small_rules();
  auto first = store->get_or_compile(rules, {}, "small");
  ASSERT_TRUE(first.ok());
  fs::path entry = store->entry_path(store->key_for(rules, {}));
  const std::string good = slurp(entry);
  // Through the whole store path, at a spread of offsets (all offsets are
  // covered by the decode test above).
  for (std::size_t off = 0; off < good.size(); off += std::max<std::size_t>(1, good.size() / 40)) {
    std::string bad = good;
    bad[off] = static_cast<char>(~bad[off]);
    spit(entry, bad);
    auto r = store->get_or_compile(rules, {}, "small");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->source, LoadResult::Source::kCompiled) << off;
    EXPECT_FALSE(r->miss_reason.empty());
    EXPECT_EQ(answers(*r->scanner), answers(*first->scanner)) << off;
    auto again = store->get_or_compile(rules, {}, "small");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->source, LoadResult::Source::kCache) << "not replaced after flip at " << off;
  }
  EXPECT_TRUE(fs::exists(entry.string() + ".corrupt"));
  EXPECT_GT(count_logs(LogLevel::kWarning), 0u);
}

TEST_F(CacheTest, EntriesForAnotherPlatformAreNeverLoaded) {
  auto store = open_store();
  auto rules = small_rules();
  auto compiled = engine::Scanner::compile(rules, {}, nullptr);
  ASSERT_TRUE(compiled.ok());
  const PlatformTags here = *current_tags();
  CacheKey key = store->key_for(rules, {});
  struct Variant {
    const char* what;
    void (*mutate)(PlatformTags&);
  };
  const Variant variants[] = {
      {"arch", [](PlatformTags& t) { t.arch = t.arch == "aarch64" ? "x86_64" : "aarch64"; }},
      {"flavor", [](PlatformTags& t) { t.flavor = t.flavor == "vectorscan" ? "hyperscan" : "vectorscan"; }},
      {"library version", [](PlatformTags& t) { t.hs_version = "5.4.9 2023-03-03"; }},
      {"platform", [](PlatformTags& t) { t.features ^= 4; }},
      {"pcre2", [](PlatformTags& t) { t.pcre2_version = "10.99"; }},
  };
  for (const auto& v : variants) {
    PlatformTags other = here;
    v.mutate(other);
    // Planted under this platform's name for this key: the tags still say no.
    auto bytes = encode_entry((*compiled)->compiled(), key, other, "foreign");
    ASSERT_TRUE(bytes.ok());
    auto r = decode_entry(*bytes, key, here);
    ASSERT_FALSE(r.ok()) << v.what;
    EXPECT_EQ(r.error().code, ErrorCode::kMismatch) << v.what;
    ASSERT_TRUE(write_file_atomic(store->entry_path(key), *bytes).ok());
    auto got = store->get_or_compile(rules, {}, "small");
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->source, LoadResult::Source::kCompiled) << v.what;
    EXPECT_NE(got->miss_reason.find(v.what == std::string("platform") ? "CPU platform" : ""), std::string::npos);
  }
  // Expected mismatches are logged at info level once per directory.
  EXPECT_EQ(count_logs(LogLevel::kInfo), 1u);
  EXPECT_EQ(count_logs(LogLevel::kWarning), 0u);
  // A wrong key in the header (entry copied to another name) is refused too.
  CacheKey wrong{key.hi ^ 1, key.lo};
  auto bytes = encode_entry((*compiled)->compiled(), wrong, here, "x");
  ASSERT_FALSE(decode_entry(*bytes, key, here).ok());
}

// A backup restored on another architecture: the other platform's entries
// are named once at open (one info line), never opened, never deleted except
// by prune --foreign.
TEST_F(CacheTest, ForeignPlatformsInTheRootAreNamedOnceAndLeftAlone) {
  auto rules = small_rules();
  auto compiled = engine::Scanner::compile(rules, {}, nullptr);
  ASSERT_TRUE(compiled.ok());
  PlatformTags other = *current_tags();
  other.arch = other.arch == "aarch64" ? "x86_64" : "aarch64";
  const fs::path foreign_dir = root_ / other.dir_name();
  ASSERT_TRUE(ensure_private_dir(foreign_dir).ok());
  const fs::path foreign = foreign_dir / (compute_key(rules, {}, other).hex() + ".rxdb");
  auto bytes = encode_entry((*compiled)->compiled(), compute_key(rules, {}, other), other, "restored");
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(write_file_atomic(foreign, *bytes).ok());

  auto store = open_store();
  ASSERT_EQ(count_logs(LogLevel::kInfo), 1u) << "expected one info line naming the foreign entries";
  const std::string& line = logs_.front().second;
  EXPECT_NE(line.find("ignoring 1 entries of other platforms (" + other.dir_name() + ")"), std::string::npos) << line;
  EXPECT_NE(line.find("prune --foreign"), std::string::npos) << line;
  auto got = store->get_or_compile(rules, {}, "small");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->source, LoadResult::Source::kCompiled);
  EXPECT_EQ(got->miss_reason, "no entry");  // its own directory was empty; the foreign file was not read
  EXPECT_EQ(slurp(foreign), *bytes) << foreign << " was changed";
  EXPECT_EQ(count_logs(LogLevel::kInfo), 1u);
  EXPECT_EQ(count_logs(LogLevel::kWarning), 0u);
  // Verify reports it as another platform's, and well-formed.
  bool listed = false;
  for (const auto& st : store->verify())
    if (st.path == foreign) {
      listed = true;
      EXPECT_TRUE(st.ok && !st.this_platform) << st.path << ": " << st.problem;
    }
  EXPECT_TRUE(listed) << foreign << " not listed by verify";

  PruneOptions po;
  po.foreign = true;
  auto rep = store->prune(po);
  EXPECT_NE(std::find(rep.removed.begin(), rep.removed.end(), foreign_dir), rep.removed.end());
  EXPECT_FALSE(fs::exists(foreign_dir)) << foreign_dir << " survived prune --foreign";
  EXPECT_TRUE(fs::exists(store->entry_path(store->key_for(rules, {}))));
  logs_.clear();
  open_store();
  EXPECT_EQ(count_logs(LogLevel::kInfo), 0u) << "info line with no foreign entries left";
}

TEST_F(CacheTest, TwoProcessesMissingTheSameKeyCompileOnce) {
  auto rules = small_rules();
  // Both children open the store and ask at once; exit code 10 = compiled,
  // 11 = loaded from cache, anything else = failure.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  std::vector<pid_t> kids;
  for (int k = 0; k < 2; ++k) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      char c;
      if (::read(ready[0], &c, 1) != 1) _exit(1);
      StoreOptions o;
      o.root = root_;
      o.log = [](LogLevel, const std::string&) {};
      auto s = Store::open(o);
      if (!s) _exit(2);
      auto r = (*s)->get_or_compile(rules, {}, "race");
      if (!r || !r->save_error.empty()) _exit(3);
      _exit(r->source == LoadResult::Source::kCompiled ? 10 : 11);
    }
    kids.push_back(pid);
  }
  ASSERT_EQ(::write(ready[1], "xx", 2), 2);
  int compiled = 0, loaded = 0;
  for (pid_t pid : kids) {
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    compiled += WEXITSTATUS(st) == 10;
    loaded += WEXITSTATUS(st) == 11;
  }
  EXPECT_EQ(compiled, 1);
  EXPECT_EQ(loaded, 1);
  auto store = open_store();
  auto r = store->get(store->key_for(rules, {}));
  EXPECT_TRUE(r.ok());
}

TEST_F(CacheTest, SharedImagesAreMappedValidatedAndRebuilt) {
  auto rules = small_rules();
  auto plain = open_store()->get_or_compile(rules, {}, "small");
  ASSERT_TRUE(plain.ok());
  auto store = open_store(/*shared=*/true);
  LoadResult::Source src{};
  auto first = store->get(store->key_for(rules, {}), &src);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(src, LoadResult::Source::kSharedImage);
  EXPECT_EQ(answers(**first), answers(*plain->scanner));
  fs::path img = store->platform_dir() / (store->key_for(rules, {}).hex() + ".rxdimg");
  ASSERT_TRUE(fs::exists(img));
  // A damaged image is detected, rebuilt, and the answers stay right.
  std::string bytes = slurp(img);
  bytes[bytes.size() / 2] ^= 0x10;
  spit(img, bytes);
  auto second = store->get(store->key_for(rules, {}), &src);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(src, LoadResult::Source::kSharedImage);
  EXPECT_EQ(answers(**second), answers(*plain->scanner));
  EXPECT_NE(slurp(img), bytes);
  EXPECT_GT(count_logs(LogLevel::kWarning), 0u);
}

// With shared images, a put writes the entry's image too, so that the next
// start maps it instead of building and writing it before its first answer;
// an entry put without them leaves no image (an old one is removed).
TEST_F(CacheTest, APutWithSharedImagesWritesTheImage) {
  auto rules = small_rules();
  auto compiled = open_store()->get_or_compile(rules, {}, "small");
  ASSERT_TRUE(compiled.ok());
  auto store = open_store(/*shared=*/true);
  const CacheKey key = store->key_for(rules, {});
  fs::path img = store->platform_dir() / (key.hex() + ".rxdimg");
  ASSERT_FALSE(fs::exists(img));
  ASSERT_TRUE(store->put(key, *compiled->scanner, "small").ok());
  ASSERT_TRUE(fs::exists(img));
  const std::string written = slurp(img);
  LoadResult::Source src{};
  auto back = store->get(key, &src);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(src, LoadResult::Source::kSharedImage);
  EXPECT_EQ(answers(**back), answers(*compiled->scanner));
  EXPECT_EQ(slurp(img), written);  // used as written, not rebuilt
  ASSERT_TRUE(open_store()->put(key, *compiled->scanner, "small").ok());
  EXPECT_FALSE(fs::exists(img));
}

// Issue 14 item 8: with shared images on, an entry is validated before an
// image is built from it.  A resealed entry whose blob lies outside the file
// made build_image throw std::out_of_range, which killed the daemon's
// registry thread; now it is a corrupt entry: moved aside, a miss.
TEST_F(CacheTest, AResealedHostileEntryIsRefusedBeforeAnImageIsBuilt) {
  auto rules = small_rules();
  // The entry must hold a Hyperscan database to edit: tiers from the pattern
  // text, whatever the planner would measure (under qemu it measures
  // Hyperscan slow and gives these rules to RE2; a small class may go to PCRE2).
  engine::CompileOptions hs_only;
  hs_only.cost_check = false;
  ASSERT_TRUE(open_store()->get_or_compile(rules, hs_only, "small").ok());
  auto store = open_store(/*shared=*/true);
  CacheKey key = store->key_for(rules, hs_only);
  std::string hostile = test::with_blob_outside_the_file(slurp(store->entry_path(key)));
  ASSERT_FALSE(hostile.empty()) << "the test could not find the blob offset to edit";
  spit(store->entry_path(key), hostile);
  EXPECT_FALSE(build_image(hostile).ok());
  auto got = store->get(key);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::kCorrupt) << got.error().message;
  EXPECT_FALSE(fs::exists(store->platform_dir() / (key.hex() + ".rxdimg")));
  EXPECT_TRUE(fs::exists(store->entry_path(key).string() + ".corrupt"));
  // The next compile replaces it, and the image follows.
  auto again = store->get_or_compile(rules, hs_only, "small");
  ASSERT_TRUE(again.ok()) << again.error().message;
  LoadResult::Source src{};
  ASSERT_TRUE(store->get(key, &src).ok());
  EXPECT_EQ(src, LoadResult::Source::kSharedImage);
}

// Hyperscan places a database's bytecode at the first 64-aligned address after
// its header and records that distance in the database, so a deserialized
// database only works at an address with the same remainder mod 64 as where
// it was deserialized (elsewhere hs_scan's aligned loads crash).  Images are
// mapped page-aligned with 64-aligned records, so each record must hold the
// database exactly as deserialized at a 64-aligned address.
TEST_F(CacheTest, SharedImageRecordsAreDeserializedAtCacheLineAlignment) {
  auto rules = small_rules();
  auto store = open_store();
  auto loaded = store->get_or_compile(rules, {}, "small");
  ASSERT_TRUE(loaded.ok());
  std::string entry = slurp(store->entry_path(store->key_for(rules, {})));
  // The serialized databases, in the image's record order (class, then bytes/utf8).
  std::vector<std::string> blobs;
  for (const auto& c : loaded->scanner->compiled().classes)
    for (const auto* db : {c.bytes_db.get(), c.utf8_db.get()})
      if (db) {
        auto blob = regexd::engine::serialize_database(db);
        ASSERT_TRUE(blob.ok());
        blobs.push_back(*blob);
      }
  for (int round = 0; round < 8; ++round) {  // a fresh build buffer each time
    auto image = build_image(entry);
    ASSERT_TRUE(image.ok()) << image.error().message;
    std::uint32_t n = 0;
    std::memcpy(&n, image->data() + 12, 4);
    ASSERT_EQ(n, blobs.size());
    for (std::uint32_t i = 0; i < n; ++i) {
      std::uint64_t off = 0, size = 0;
      std::memcpy(&off, image->data() + 32 + 24 * i + 8, 8);
      std::memcpy(&size, image->data() + 32 + 24 * i + 16, 8);
      ASSERT_EQ(off % 64, 0u);
      void* mem = std::aligned_alloc(64, (size + 63) / 64 * 64);
      ASSERT_TRUE(regexd::engine::deserialize_database_at(blobs[i], mem).ok());
      EXPECT_EQ(std::memcmp(image->data() + off, mem, size), 0) << "record " << i << " in round " << round;
      std::free(mem);
    }
  }
}

TEST_F(CacheTest, UnsafeDirectoriesAreRefusedWithAFix) {
  fs::create_directories(root_);
  fs::permissions(root_, fs::perms(0777));
  StoreOptions o;
  o.root = root_;
  auto s = Store::open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kPermission);
  EXPECT_NE(s.error().message.find("chmod go-w"), std::string::npos) << s.error().message;
  fs::permissions(root_, fs::perms(0750));
  EXPECT_TRUE(Store::open(o).ok());
}

TEST_F(CacheTest, PruneBySizeAgeAndForeignButNeverALoadedEntry) {
  auto store = open_store();
  std::vector<CacheKey> keys;
  for (int i = 0; i < 4; ++i) {
    auto rules = engine::parse_native("R" + std::to_string(i) + " body /rule" + std::to_string(i) + "/\n", "p");
    auto r = store->get_or_compile(rules, {}, "p");
    ASSERT_TRUE(r.ok());
    keys.push_back(store->key_for(rules, {}));
    // Distinct, ordered mtimes: entry 0 is the least recently used.
    fs::last_write_time(store->entry_path(keys.back()),
                        fs::file_time_type::clock::now() - std::chrono::hours(100 - i));
  }
  // This process has loaded all four; a fresh store (another process) has not.
  auto prune_opts = [](std::optional<std::uint64_t> size, std::optional<std::chrono::seconds> age, bool foreign) {
    PruneOptions o;
    o.max_size = size;
    o.max_age = age;
    o.foreign = foreign;
    return o;
  };
  auto rep = store->prune(prune_opts(1, std::nullopt, false));
  EXPECT_TRUE(rep.removed.empty());
  auto other = open_store();
  fs::create_directories(root_ / "aarch64-vectorscan-5.4.9-deadbeef");
  spit(root_ / "aarch64-vectorscan-5.4.9-deadbeef" / "x.rxdb", "foreign");
  // Entries need not be the same size: each rule's engine is chosen by
  // measured cost, and under qemu a one-rule class may go to PCRE2 (no
  // database) in one entry and stay in Hyperscan in the next.  Room for
  // entries 2 and 3 and half of entry 1: the two least recently used go.
  auto size_of = [&](int i) { return static_cast<std::uint64_t>(fs::file_size(store->entry_path(keys[i]))); };
  rep = other->prune(prune_opts(size_of(2) + size_of(3) + size_of(1) / 2, std::nullopt, false));
  ASSERT_EQ(rep.removed.size(), 2u);
  EXPECT_FALSE(fs::exists(store->entry_path(keys[0])));
  EXPECT_FALSE(fs::exists(store->entry_path(keys[1])));
  EXPECT_TRUE(fs::exists(store->entry_path(keys[2])));
  EXPECT_TRUE(fs::exists(root_ / "aarch64-vectorscan-5.4.9-deadbeef"));
  rep = other->prune(prune_opts(std::nullopt, std::chrono::hours(98), false));
  ASSERT_EQ(rep.removed.size(), 1u);
  EXPECT_FALSE(fs::exists(store->entry_path(keys[2])));
  EXPECT_TRUE(fs::exists(store->entry_path(keys[3])));
  rep = other->prune(prune_opts(std::nullopt, std::nullopt, true));
  EXPECT_FALSE(fs::exists(root_ / "aarch64-vectorscan-5.4.9-deadbeef"));
  EXPECT_TRUE(fs::exists(store->entry_path(keys[3])));
}

TEST_F(CacheTest, PruneRemovesLockFilesOfGoneEntriesButNotAHeldOne) {
  auto store = open_store();
  auto rules = small_rules();
  ASSERT_TRUE(store->get_or_compile(rules, {}, "small").ok());
  fs::path entry = store->entry_path(store->key_for(rules, {}));
  fs::path entry_lock = entry;
  entry_lock.replace_extension(".lock");
  ASSERT_TRUE(fs::exists(entry_lock));  // left by the compile
  fs::path orphan = store->platform_dir() / "0123456789abcdef.lock";
  fs::path busy = store->platform_dir() / "fedcba9876543210.lock";
  spit(orphan, "");
  auto held = FileLock::acquire(busy, std::chrono::milliseconds(0));  // a compile of that key is running
  ASSERT_TRUE(held.ok());
  PruneOptions dry;
  dry.dry_run = true;
  EXPECT_EQ(store->prune(dry).locks_removed, 0u);
  EXPECT_TRUE(fs::exists(orphan));
  auto rep = store->prune({});
  EXPECT_EQ(rep.locks_removed, 1u);
  EXPECT_TRUE(rep.removed.empty());
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists(busy));
  EXPECT_TRUE(fs::exists(entry_lock));  // its entry is still there
  EXPECT_TRUE(fs::exists(entry));
}

TEST_F(CacheTest, VerifyChecksEveryPlatformAndFlagsCorruptionHere) {
  auto store = open_store();
  auto rules = small_rules();
  ASSERT_TRUE(store->get_or_compile(rules, {}, "small").ok());
  auto all = store->verify();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(all[0].ok) << all[0].problem;
  EXPECT_TRUE(all[0].this_platform);
  fs::path entry = store->entry_path(store->key_for(rules, {}));
  std::string bytes = slurp(entry);
  // The same valid entry under another platform's directory is reported
  // as misplaced, and a damaged copy here as corrupt.
  fs::create_directories(root_ / "aarch64-vectorscan-5.4.9-deadbeef");
  spit(root_ / "aarch64-vectorscan-5.4.9-deadbeef" / entry.filename(), bytes);
  bytes[bytes.size() - 1] ^= 1;
  spit(entry, bytes);
  all = store->verify();
  ASSERT_EQ(all.size(), 2u);
  for (const auto& s : all) {
    EXPECT_FALSE(s.ok);
    if (s.this_platform) EXPECT_NE(s.problem.find("checksum"), std::string::npos) << s.problem;
    else EXPECT_NE(s.problem.find("in directory"), std::string::npos) << s.problem;
  }
}

}  // namespace

namespace {

TEST_F(CacheTest, AWriterKilledAtAnyMomentLeavesTheOldOrTheNewEntryNeverAPartialOne) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto rules_a = small_rules();
  auto rules_b = engine::parse_native("OTHER body /prize|abc/\n", "b.rules");
  auto a = *engine::Scanner::compile(rules_a, {}, nullptr);
  auto b = *engine::Scanner::compile(rules_b, {}, nullptr);
  // Both versions go under one key, so a torn write would be a file that
  // passes the name check but holds parts of both.
  auto key = store->key_for(rules_a, {});
  ASSERT_TRUE(store->put(key, *a, "a").ok());
  const auto want_a = answers(*a), want_b = answers(*b);
  unsigned seed = 7;
  int saw_a = 0, saw_b = 0;
  for (int round = 0; round < 40; ++round) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Save B and A in turn until killed.
      for (int i = 0;; ++i) (void)store->put(key, i % 2 ? *a : *b, "x");
    }
    ::usleep(static_cast<useconds_t>(rand_r(&seed) % 20000));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    auto reopened = open_store();  // as a restarted process would: stale temp files go
    auto got = reopened->get(key);
    ASSERT_TRUE(got.ok()) << "round " << round << ": " << got.error().message;
    auto ans = answers(**got);
    ASSERT_TRUE(ans == want_a || ans == want_b) << "round " << round;
    (ans == want_a ? saw_a : saw_b)++;
    for (const auto& e : fs::directory_iterator(reopened->platform_dir()))
      EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  EXPECT_EQ(count_logs(LogLevel::kWarning), 0u);  // nothing was ever found corrupt
  EXPECT_GT(saw_a + saw_b, 0);
}

}  // namespace
