// Split classes in cache entries (format 3, docs/cache-format.md): the
// parts round-trip through an entry and a shared image and answer as
// before; a damaged or missing part is refused with a one-line error; an
// entry of the format before is refused as a version mismatch.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include <cstring>

#include "hostile_entry.h"
#include "regexd/cache/entry.h"
#include "regexd/cache/key.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"

namespace {

using namespace regexd;

engine::Rule make_rule(std::string id, std::string pattern) {
  engine::Rule r;
  r.id = std::move(id);
  r.cls = "body";
  r.pattern = std::move(pattern);
  r.source = "entry_split_test";
  return r;
}

// Nine Hyperscan rules in one class, split into three parts.
std::shared_ptr<const engine::Scanner> split_scanner() {
  engine::RuleSet rs;
  const char* pats[] = {"alpha\\d+", "bravo|charlie", "delta\\s+echo", "fox(?=trot)", "golf[a-z]{2}",
                        "hotel\\b",  "india.{0,4}juliet", "kilo\\W+lima", "mike[0-9]{2,3}"};
  int n = 0;
  for (const char* p : pats) rs.rules.push_back(make_rule("R" + std::to_string(n++), p));
  engine::CompileOptions o;
  o.threads = 3;
  o.split_min_ms = 0;
  o.re2_tier = false;  // keep the nine in Hyperscan, also where it measures slow (qemu)
  engine::CompileReport rep;
  auto s = engine::Scanner::compile(rs, o, &rep);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(rep.classes.at(0).byte_parts, 3u);
  return s.ok() ? *s : nullptr;
}

const char* kText = "alpha7 charlie delta  echo foxtrot golfxy hotel india--juliet kilo, lima mike123";
constexpr std::size_t kAllHits = 9;

cache::CacheKey key() { return {0xabc, 0xdef}; }

std::string entry_of(const engine::Scanner& s) {
  auto bytes = cache::encode_entry(s.compiled(), key(), *cache::current_tags(), "split");
  EXPECT_TRUE(bytes.ok()) << (bytes.ok() ? "" : bytes.error().message);
  return bytes.ok() ? *bytes : std::string();
}

std::size_t hits(std::unique_ptr<engine::CompiledSet> set) {
  auto scanner = engine::Scanner::from_compiled(std::move(set));
  EXPECT_TRUE(scanner.ok());
  auto r = (*scanner)->scan("body", kText);
  EXPECT_TRUE(r.ok());
  return r.ok() ? r->hits.size() : 0;
}

// The entry decoded without databases, then `image` attached to it.
Result<std::unique_ptr<engine::CompiledSet>> with_image(const std::string& bytes, std::string image) {
  cache::DecodeOptions skip;
  skip.skip_databases = true;
  auto bare = cache::decode_entry(bytes, key(), *cache::current_tags(), skip);
  if (!bare) return bare.error();
  // The image is used in place, and Hyperscan's bytecode needs the 64-byte
  // alignment the store's page-aligned mapping gives; a std::string's heap
  // buffer is only 16-aligned (Vectorscan's AVX-512 scan crashed on it now
  // and then).
  std::size_t size = (image.size() + 63) / 64 * 64;
  std::shared_ptr<char> keep(static_cast<char*>(std::aligned_alloc(64, size ? size : 64)), std::free);
  if (!keep) return make_error(ErrorCode::kInternal, "out of memory");
  std::memcpy(keep.get(), image.data(), image.size());
  if (auto st = cache::attach_image(**bare, bytes, std::string_view(keep.get(), image.size()), keep); !st)
    return st.error();
  return std::move(*bare);
}

TEST(EntrySplit, PartsRoundTripThroughAnEntryAndAnImage) {
  auto s = split_scanner();
  ASSERT_TRUE(s);
  std::string bytes = entry_of(*s);
  auto info = cache::inspect_entry(bytes);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->format_version, 3u);
  ASSERT_EQ(info->classes.size(), 1u);
  EXPECT_EQ(info->classes[0].more_db_sizes.size(), 2u);
  EXPECT_EQ(info->classes[0].native + info->classes[0].prefilter, 9u);

  auto back = cache::decode_entry(bytes, key(), *cache::current_tags());
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ((*back)->classes[0].bytes_more.size(), 2u);
  std::size_t rules = (*back)->classes[0].bytes_rules.size();
  for (const auto& p : (*back)->classes[0].bytes_more) rules += p.rules.size();
  EXPECT_EQ(rules, 9u);
  EXPECT_EQ(hits(std::move(*back)), kAllHits);

  // The shared image holds every part; a set decoded without databases
  // gets them all from it.
  auto image = cache::build_image(bytes);
  ASSERT_TRUE(image.ok()) << image.error().message;
  auto bare = with_image(bytes, std::move(*image));
  ASSERT_TRUE(bare.ok()) << bare.error().message;
  for (const auto& p : (*bare)->classes[0].bytes_more) EXPECT_TRUE(p.db);
  EXPECT_EQ(hits(std::move(*bare)), kAllHits);
}

TEST(EntrySplit, ADamagedPartIsRefusedNamingIt) {
  auto s = split_scanner();
  ASSERT_TRUE(s);
  std::string bytes = entry_of(*s);
  auto info = cache::inspect_entry(bytes);
  ASSERT_TRUE(info.ok());
  // Blobs follow the header 8-aligned, in order: bytes_db, then the parts.
  std::uint32_t hlen = 0;
  std::memcpy(&hlen, bytes.data() + 12, 4);
  std::size_t at = 16 + (hlen + 7) / 8 * 8;
  at += (info->classes[0].bytes_db_size + 7) / 8 * 8;
  at += (info->classes[0].more_db_sizes[0] + 7) / 8 * 8;  // the last part starts here
  for (int i = 0; i < 8; ++i) bytes[at + i] = static_cast<char>(~bytes[at + i]);
  test::reseal_entry(bytes);
  auto back = cache::decode_entry(bytes, key(), *cache::current_tags());
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.error().message.find("class body: split part 3"), std::string::npos) << back.error().message;
  EXPECT_FALSE(cache::build_image(bytes).ok());
}

TEST(EntrySplit, AnImageWithoutOneOfThePartsIsRefused) {
  auto s = split_scanner();
  ASSERT_TRUE(s);
  std::string bytes = entry_of(*s);
  auto image = cache::build_image(bytes);
  ASSERT_TRUE(image.ok());
  // Drop the last record (the last part): count at offset 12, then reseal.
  std::uint32_t n = 0;
  std::memcpy(&n, image->data() + 12, 4);
  ASSERT_EQ(n, 3u);
  --n;
  std::memcpy(image->data() + 12, &n, 4);
  test::reseal_entry(*image);
  auto bare = with_image(bytes, std::move(*image));
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.error().message.find("a database is missing"), std::string::npos) << bare.error().message;
}

TEST(EntrySplit, APartWithoutADatabaseIsNotWritten) {
  auto s = split_scanner();
  ASSERT_TRUE(s);
  // A hand-made set whose second part lost its database.
  auto bytes = entry_of(*s);
  auto set = cache::decode_entry(bytes, key(), *cache::current_tags());
  ASSERT_TRUE(set.ok());
  (*set)->classes[0].bytes_more[0].db.reset();
  auto again = cache::encode_entry(**set, key(), *cache::current_tags(), "split");
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("split part"), std::string::npos) << again.error().message;
}

TEST(EntrySplit, AnEntryOfTheFormatBeforeIsAVersionMismatch) {
  auto s = split_scanner();
  ASSERT_TRUE(s);
  std::string bytes = entry_of(*s);
  std::uint32_t v = 2;
  std::memcpy(bytes.data() + 8, &v, 4);
  test::reseal_entry(bytes);
  auto back = cache::decode_entry(bytes, key(), *cache::current_tags());
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code, ErrorCode::kMismatch);
  EXPECT_NE(back.error().message.find("entry format version 2"), std::string::npos) << back.error().message;
}

}  // namespace
