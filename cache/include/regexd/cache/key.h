// Cache keys and platform tags (docs/cache-format.md, "Cache key").
//
// Thread safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "regexd/engine/engine.h"
#include "regexd/engine/result.h"

namespace regexd::cache {

inline constexpr std::uint32_t kKeyScheme = 2;
// Bumped whenever the engine's tiering or chosen Hyperscan flags change, so
// that old entries (valid, but built by other rules) are not reused.
// 3: escaped high bytes compacted, loosened prefilters (engine/src/rewrite.h).
// 4: the planner (engine/src/planner.h): RE2 tiers, rules measured alone.
inline constexpr std::uint32_t kEngineFormat = 4;

// Everything about the running process that decides whether a compiled
// database is usable here.
struct PlatformTags {
  std::string arch, flavor, hs_version, pcre2_version;
  std::uint32_t tune = 0;
  std::uint64_t features = 0;
  // "<arch>-<flavor>-<hsversion>-<8 hex>": the platform's directory name.
  std::string dir_name() const;
};
// Tags of this process (computed once).
const Result<PlatformTags>& current_tags();

struct CacheKey {
  std::uint64_t hi = 0, lo = 0;
  std::string hex() const;  // 32 lowercase hex digits
  // The inverse of hex(): nullopt unless `hex` is exactly 32 lowercase hex digits.
  static std::optional<CacheKey> from_hex(std::string_view hex);
  bool operator==(const CacheKey&) const = default;
};

// The key of `rules` compiled with `options` on the platform `tags`, for an
// entry in this build's layout (kFormatVersion): two regexd versions with
// different entry layouts sharing one root keep apart instead of each
// overwriting the other's entries and images.
CacheKey compute_key(const engine::RuleSet& rules, const engine::CompileOptions& options, const PlatformTags& tags);
// The same for an entry layout `entry_format` (tests: what another version would use).
CacheKey compute_key(const engine::RuleSet& rules, const engine::CompileOptions& options, const PlatformTags& tags,
                     std::uint32_t entry_format);

}  // namespace regexd::cache
