// Little-endian integer fields of the cache's binary formats (sealed
// entries, archives).  Private to the cache library.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace regexd::cache::le {

inline void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
inline void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
inline std::uint64_t get(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
inline std::uint32_t get_u32(const char* p) { return static_cast<std::uint32_t>(get(p, 4)); }
inline std::uint64_t get_u64(const char* p) { return get(p, 8); }
// A u64 length, then the bytes.
inline void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

}  // namespace regexd::cache::le
