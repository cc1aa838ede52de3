// Encoding and decoding of cache entry files (.rxdb) and shared images
// (.rxdimg); the grammar is docs/cache-format.md.
//
// decode_entry() runs every check of the "Validation on load" list before any
// byte reaches Hyperscan.  Its error code tells the caller what kind of miss
// it was: kMismatch (another platform/library/key: expected, quiet) or
// kCorrupt (anything else: warn, move aside).
//
// Thread safety: pure functions; concurrent calls are fine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/cache/key.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/result.h"

namespace regexd::cache {

inline constexpr std::uint32_t kFormatVersion = 3;  // 3: split classes; 2: RE2 tiers and plan costs (docs/cache-format.md)
inline constexpr std::uint32_t kImageVersion = 3;  // 3: split classes' parts; 2: records deserialized 64-aligned
inline constexpr std::uint64_t kMaxHeaderSize = 16u << 20;

// Header facts, for inspect and verify (no Hyperscan involved).
struct EntryInfo {
  std::uint32_t format_version = 0;
  std::uint32_t key_scheme = 0;
  CacheKey key;
  PlatformTags tags;
  std::string producer, rule_set_name;
  std::int64_t created_unix = 0;
  std::uint32_t pcre2_match_limit = 0, pcre2_depth_limit = 0;
  struct Class {
    std::string cls;
    std::size_t native = 0, prefilter = 0, pcre2 = 0;
    std::size_t re2 = 0, re2_prefilter = 0, re2_sets = 0;
    std::uint64_t bytes_db_size = 0, utf8_db_size = 0;
    std::string bytes_db_info, utf8_db_info;
    std::vector<std::uint64_t> more_db_sizes;  // a split class's other byte-mode databases
    double compile_ms = 0;
  };
  std::vector<Class> classes;
  std::size_t rules = 0;
  std::uint64_t file_size = 0, header_size = 0, payload_size = 0;
  std::uint64_t pcre2_programs = 0, pcre2_programs_size = 0;  // stored PCRE2 programs, their bytes
  std::string checksum_hex;  // XXH3-128 epilogue
};

// Serializes `set` into entry bytes.
Result<std::string> encode_entry(const engine::CompiledSet& set, const CacheKey& key, const PlatformTags& tags,
                                 std::string_view rule_set_name);

// Structure-only checks (size, magic, version, checksum, FlatBuffers,
// bounds) and the header facts.  Used by inspect/verify for any platform.
Result<EntryInfo> inspect_entry(std::string_view bytes);

struct DecodeOptions {
  // When true, databases are not deserialized (CompiledSet classes carry no
  // databases); used when a shared image will provide them.
  bool skip_databases = false;
};

// Full validation against the running process and `expected_key`, then
// deserialization.  The returned set is ready for Scanner::from_compiled.
Result<std::unique_ptr<engine::CompiledSet>> decode_entry(std::string_view bytes, const CacheKey& expected_key,
                                                          const PlatformTags& tags, const DecodeOptions& options = {});

// The rule-set name recorded in an entry, read from the start of its file
// alone: entry_head_size() says from its first kEntryPrologue bytes how many
// bytes the prologue and header take (0: not an entry of this format), and
// peek_rule_set_name() checks those bytes' structure (magic, version,
// FlatBuffers) but not the checksum, which covers the whole file.  A hint for
// Store::prefetch, never a reason to trust the entry: decode_entry() checks
// everything when it is loaded.
inline constexpr std::size_t kEntryPrologue = 16;
std::size_t entry_head_size(std::string_view prologue);
Result<std::string> peek_rule_set_name(std::string_view head);

// The epilogue checksum of entry bytes (already validated).
std::string entry_checksum(std::string_view bytes);

// Shared images: builds image bytes for an entry that decode_entry accepted
// (the store decodes first).  It repeats the structure and layout checks
// itself, so a damaged entry is an error here too, never a wild read.
Result<std::string> build_image(std::string_view entry_bytes);
// Attaches the databases of a mapped image (`image` must stay mapped while
// the set lives; pass its owner as keepalive) to a set decoded with
// skip_databases.  Fails (kCorrupt) on any mismatch; the caller then falls
// back to a normal load.
Status attach_image(engine::CompiledSet& set, std::string_view entry_bytes, std::string_view image,
                    std::shared_ptr<const void> keepalive);

}  // namespace regexd::cache
