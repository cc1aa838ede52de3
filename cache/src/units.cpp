#include "regexd/cache/units.h"

#include <charconv>
#include <initializer_list>
#include <utility>

namespace regexd::cache {
namespace {

// "<digits><unit>" where `units` maps each accepted suffix ("" for none) to
// its multiplier; overflow is refused.
std::optional<std::uint64_t> parse_scaled(std::string_view s,
                                          std::initializer_list<std::pair<std::string_view, std::uint64_t>> units) {
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  std::string_view unit(end, static_cast<std::size_t>(s.data() + s.size() - end));
  for (const auto& [u, mult] : units)
    if (unit == u) {
      if (n > UINT64_MAX / mult) return std::nullopt;
      return n * mult;
    }
  return std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view s) {
  return parse_scaled(s, {{"", 1}, {"B", 1}, {"K", 1ull << 10}, {"k", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30}});
}

std::optional<std::chrono::seconds> parse_age(std::string_view s) {
  auto n = parse_scaled(s, {{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}});
  if (!n || *n > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
  return std::chrono::seconds(static_cast<std::int64_t>(*n));
}

}  // namespace regexd::cache
