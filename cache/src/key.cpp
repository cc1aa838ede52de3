#include "regexd/cache/key.h"

#include <xxhash.h>

#include <cstdio>
#include <memory>

#include "regexd/cache/entry.h"
#include "regexd/engine/calibration.h"
#include "regexd/engine/serialize.h"

namespace regexd::cache {
namespace {

// Streams length-prefixed fields into XXH3-128 so that ("ab","c") and
// ("a","bc") can never hash alike.
class KeyHasher {
 public:
  KeyHasher() : st_(XXH3_createState(), &XXH3_freeState) { XXH3_128bits_reset(st_.get()); }
  void str(std::string_view s) {
    u64(s.size());
    XXH3_128bits_update(st_.get(), s.data(), s.size());
  }
  void u32(std::uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    XXH3_128bits_update(st_.get(), b, 4);
  }
  void u64(std::uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    XXH3_128bits_update(st_.get(), b, 8);
  }
  CacheKey digest() {
    XXH128_hash_t h = XXH3_128bits_digest(st_.get());
    return {h.high64, h.low64};
  }

 private:
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st_;
};

std::string first_token(const std::string& s) { return s.substr(0, s.find(' ')); }

}  // namespace

std::string PlatformTags::dir_name() const {
  unsigned char b[12];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>(tune >> (8 * i));
  for (int i = 0; i < 8; ++i) b[4 + i] = static_cast<unsigned char>(features >> (8 * i));
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(XXH3_64bits(b, sizeof b) >> 32));
  return arch + "-" + flavor + "-" + first_token(hs_version) + "-" + hex;
}

const Result<PlatformTags>& current_tags() {
  static const Result<PlatformTags> tags = []() -> Result<PlatformTags> {
    const auto& info = engine::engine_info();
    auto platform = engine::current_platform();
    if (!platform) return platform.error();
    PlatformTags t;
    t.arch = info.arch;
    t.flavor = info.flavor;
    t.hs_version = info.runtime_version;
    t.pcre2_version = info.pcre2_version;
    t.tune = platform->tune;
    t.features = platform->cpu_features;
    return t;
  }();
  return tags;
}

std::string CacheKey::hex() const {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

std::optional<CacheKey> CacheKey::from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  std::uint64_t parts[2] = {0, 0};
  for (std::size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return std::nullopt;
    parts[i / 16] = (parts[i / 16] << 4) | static_cast<std::uint64_t>(v);
  }
  return CacheKey{parts[0], parts[1]};
}

CacheKey compute_key(const engine::RuleSet& rules, const engine::CompileOptions& options, const PlatformTags& tags) {
  return compute_key(rules, options, tags, kFormatVersion);
}

CacheKey compute_key(const engine::RuleSet& rules, const engine::CompileOptions& options, const PlatformTags& tags,
                     std::uint32_t entry_format) {
  KeyHasher h;
  h.str("regexd-cache-key/2");
  h.u32(entry_format);
  h.u32(kImageVersion);  // images are named after the key too
  h.u32(kEngineFormat);
  h.u64(rules.rules.size());
  for (const auto& r : rules.rules) {
    h.str(r.id);
    h.str(r.cls);
    h.str(r.pattern);
    h.u32(r.flags);
    h.u32(r.max_hits);
  }
  h.str(tags.flavor);
  h.str(tags.hs_version);
  h.str(tags.arch);
  h.u32(tags.tune);
  h.u64(tags.features);
  h.str(tags.pcre2_version);
  h.u32(options.pcre2_match_limit);
  h.u32(options.pcre2_depth_limit);
  h.u32(options.pcre2_only ? 1 : 0);
  h.u32(options.cost_check ? 1 : 0);
  h.u32(options.re2_tier ? 1 : 0);
  // An operator's calibration sample chooses other engines (a different
  // plan, so a different entry); the built-in text adds nothing, so keys of
  // entries compiled before the option existed stay valid.
  if (options.calibration && !options.calibration->empty() &&
      *options.calibration != engine::builtin_calibration_text()) {
    h.str("calibration");
    h.str(*options.calibration);
  }
  return h.digest();
}

}  // namespace regexd::cache
