// libFuzzer target for the cache entry decoder (scripts/fuzz-entries.sh
// builds and runs it).
//
// A random file dies at the checksum, which the unit tests already cover
// byte by byte.  What a checksum cannot stop is a file that is internally
// consistent but wrong: a buggy or hostile writer, or a damaged file that
// was resealed.  So the input here is a list of edits to a valid entry, and
// the checksum is recomputed after them: every input reaches the FlatBuffers
// verifier and regexd's own checks (rule/class indices, tiers, blob bounds,
// tags, key) and, when they pass, Hyperscan's deserializer and a scan.
// Whatever the edits, decode_entry must return an error or a set that
// scans without a memory error.
//
// Every edited entry also goes down the store's shared-image path
// (validate, build an image from it, attach, scan), and build_image alone.
// Inputs with an odd first byte edit the shared image (.rxdimg) built from
// the seed instead, within its header and record table (the bytes regexd
// interprets; the databases themselves are Hyperscan's bytecode, which
// nobody validates beyond the checksum: docs/cache-format.md), reseal it and
// attach it to the entry as a reader mapping it would.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "regexd/cache/entry.h"
#include "regexd/cache/key.h"
#include "regexd/engine/engine.h"

using namespace regexd;

namespace {

struct Seed {
  std::string entry;
  std::string image;
  cache::CacheKey key;
  cache::PlatformTags tags;
};

const Seed& seed() {
  static const Seed s = [] {
    engine::RuleSet rules;
    auto add = [&](const char* id, const char* cls, const char* pattern, std::uint32_t flags) {
      engine::Rule r;
      r.id = id;
      r.cls = cls;
      r.pattern = pattern;
      r.flags = flags;
      rules.rules.push_back(r);
    };
    // Every tier, both database kinds, two classes.
    add("NATIVE", "body", "viagra\\d+", engine::kCaseless);
    add("PREFILTER", "body", "foo(?!bar)\\w+baz", 0);
    add("PCRE2", "body", "(\\w)\\1x", 0);
    add("UTF8", "body", "caf\\x{e9}\\b", engine::kUtf8);
    add("URL", "url", "https?://[a-z]+\\.example", 0);
    engine::CompileOptions options;
    options.cost_check = false;  // the same tiers every run
    auto scanner = engine::Scanner::compile(rules, options, nullptr);
    const auto& tags = cache::current_tags();
    if (!scanner.ok() || !tags.ok()) {
      std::fprintf(stderr, "entry_fuzzer: cannot build the seed entry\n");
      std::abort();
    }
    Seed out;
    out.tags = *tags;
    out.key = cache::compute_key(rules, options, out.tags);
    auto bytes = cache::encode_entry((*scanner)->compiled(), out.key, out.tags, "fuzz");
    if (!bytes.ok() || !cache::decode_entry(*bytes, out.key, out.tags).ok()) {
      std::fprintf(stderr, "entry_fuzzer: the seed entry does not decode\n");
      std::abort();
    }
    out.entry = std::move(*bytes);
    auto image = cache::build_image(out.entry);
    if (!image.ok()) {
      std::fprintf(stderr, "entry_fuzzer: cannot build the seed image\n");
      std::abort();
    }
    out.image = std::move(*image);
    return out;
  }();
  return s;
}

// The epilogue is XXH3-128 of everything before it, high then low half, LE.
void reseal(std::string& e) {
  constexpr std::size_t kEpilogue = 16;
  XXH128_hash_t h = XXH3_128bits(e.data(), e.size() - kEpilogue);
  for (int i = 0; i < 8; ++i) {
    e[e.size() - 16 + static_cast<std::size_t>(i)] = static_cast<char>(h.high64 >> (8 * i));
    e[e.size() - 8 + static_cast<std::size_t>(i)] = static_cast<char>(h.low64 >> (8 * i));
  }
}

void scan_all(const engine::Scanner& scanner) {
  for (const auto& cls : scanner.classes()) {
    (void)scanner.scan(cls, "Viagra123 foo_x_baz aax caf\xc3\xa9 http://www.example.com/");
    (void)scanner.scan(cls, "\xff\xfe not UTF-8");
  }
}

// Applies the input's edits to `bytes[0, limit)`: 4 bytes each, a 24-bit
// position (modulo limit) and the byte to write there.  Returns how many
// input bytes were used.
std::size_t apply_edits(std::string& bytes, std::size_t limit, const std::uint8_t* data, std::size_t size) {
  std::size_t i = 0;
  for (; i + 4 <= size; i += 4) {
    std::size_t pos = (data[i] | (data[i + 1] << 8) | (static_cast<std::size_t>(data[i + 2]) << 16)) % limit;
    bytes[pos] = static_cast<char>(data[i + 3]);
  }
  return i;
}

// Readers map images page-aligned; give a copy in memory the same alignment.
std::shared_ptr<char> page_aligned_copy(const std::string& img) {
  std::shared_ptr<char> mem(static_cast<char*>(std::aligned_alloc(4096, (img.size() + 4095) / 4096 * 4096)),
                            &std::free);
  std::memcpy(mem.get(), img.data(), img.size());
  return mem;
}

void fuzz_image(const Seed& s, const std::uint8_t* data, std::size_t size) {
  std::string img = s.image;
  std::uint32_t records = 0;
  std::memcpy(&records, img.data() + 12, 4);  // little-endian hosts only, as the format
  apply_edits(img, 32 + 24 * static_cast<std::size_t>(records), data, size);
  reseal(img);
  auto mem = page_aligned_copy(img);
  cache::DecodeOptions no_dbs;
  no_dbs.skip_databases = true;
  auto set = cache::decode_entry(s.entry, s.key, s.tags, no_dbs);
  if (!set.ok()) std::abort();  // the entry itself is untouched
  if (!cache::attach_image(**set, s.entry, std::string_view(mem.get(), img.size()), mem).ok()) return;
  auto scanner = engine::Scanner::from_compiled(std::move(*set));
  if (scanner.ok()) scan_all(**scanner);
}

// The store's path with shared images on (Store::load_image): validate the
// entry without its databases, build an image from it, attach the image and
// scan.  build_image is also called on the unvalidated entry: it must refuse
// what decode_entry refuses, not read out of bounds or throw.
void shared_image_path(const Seed& s, const std::string& entry) {
  (void)cache::build_image(entry);
  cache::DecodeOptions no_dbs;
  no_dbs.skip_databases = true;
  auto set = cache::decode_entry(entry, s.key, s.tags, no_dbs);
  if (!set.ok()) return;
  auto image = cache::build_image(entry);
  if (!image.ok()) return;
  auto mem = page_aligned_copy(*image);
  if (!cache::attach_image(**set, entry, std::string_view(mem.get(), image->size()), mem).ok()) return;
  auto scanner = engine::Scanner::from_compiled(std::move(*set));
  if (scanner.ok()) scan_all(**scanner);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Seed& s = seed();
  if (size > 0 && (data[0] & 1)) {
    fuzz_image(s, data + 1, size - 1);
    return 0;
  }
  std::string e = s.entry;
  // A trailing 1-3 bytes, if any, cut the file short by 8 bytes times the
  // first one's value, just before the epilogue.
  std::size_t body = e.size() - 16;
  std::size_t used = apply_edits(e, body, data, size);
  if (used < size) {
    std::size_t cut = std::min<std::size_t>(body - 1, static_cast<std::size_t>(data[used]) * 8);
    e.erase(body - cut, cut);
  }
  reseal(e);

  (void)cache::inspect_entry(e);
  shared_image_path(s, e);
  auto set = cache::decode_entry(e, s.key, s.tags);
  if (!set.ok()) return 0;
  auto scanner = engine::Scanner::from_compiled(std::move(*set));
  if (scanner.ok()) scan_all(**scanner);
  return 0;
}
