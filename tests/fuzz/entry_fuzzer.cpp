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
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "regexd/cache/entry.h"
#include "regexd/cache/key.h"
#include "regexd/engine/engine.h"

using namespace regexd;

namespace {

struct Seed {
  std::string entry;
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Seed& s = seed();
  std::string e = s.entry;
  // Edits of 4 bytes: a 24-bit position (taken modulo the bytes before the
  // epilogue) and the byte to write there.  A trailing 1-3 bytes, if any,
  // cut the file short by that many units of 8 bytes times their value.
  std::size_t body = e.size() - 16;
  std::size_t i = 0;
  for (; i + 4 <= size; i += 4) {
    std::size_t pos = (data[i] | (data[i + 1] << 8) | (static_cast<std::size_t>(data[i + 2]) << 16)) % body;
    e[pos] = static_cast<char>(data[i + 3]);
  }
  if (i < size) {
    std::size_t cut = std::min<std::size_t>(body - 1, static_cast<std::size_t>(data[i]) * 8);
    e.erase(body - cut, cut);  // drop bytes just before the epilogue
  }
  reseal(e);

  (void)cache::inspect_entry(e);
  auto set = cache::decode_entry(e, s.key, s.tags);
  if (!set.ok()) return 0;
  auto scanner = engine::Scanner::from_compiled(std::move(*set));
  if (!scanner.ok()) return 0;
  for (const auto& cls : (*scanner)->classes()) {
    (void)(*scanner)->scan(cls, "Viagra123 foo_x_baz aax caf\xc3\xa9 http://www.example.com/");
    (void)(*scanner)->scan(cls, "\xff\xfe not UTF-8");
  }
  return 0;
}
