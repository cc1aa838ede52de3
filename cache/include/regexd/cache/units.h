// Sizes and ages as people write them in configs and on command lines:
// "500M", "2G", "1024" (bytes); "30d", "12h", "45m", "90s", "60" (seconds).
// Used by regexctl prune and the daemon's config.  Pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace regexd::cache {

// Bytes, with an optional K/k, M or G suffix (powers of 1024) or B.
std::optional<std::uint64_t> parse_size(std::string_view s);
// Seconds, with an optional s, m, h or d suffix.
std::optional<std::chrono::seconds> parse_age(std::string_view s);

}  // namespace regexd::cache
