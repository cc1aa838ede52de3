// A cache entry that passes the checksum but not the layout checks, as a
// hostile writer (or a damaged file that was resealed) produces: the offset
// of its last database blob is moved far past the end of the file.  Reading
// that blob without the layout check throws std::out_of_range (substr).
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "regexd/cache/entry.h"

namespace regexd::test {

// The epilogue is XXH3-128 of everything before it, high then low half, LE.
inline void reseal_entry(std::string& e) {
  XXH128_hash_t h = XXH3_128bits(e.data(), e.size() - 16);
  std::memcpy(e.data() + e.size() - 16, &h.high64, 8);  // little-endian hosts, as the format
  std::memcpy(e.data() + e.size() - 8, &h.low64, 8);
}

// Empty when the entry has fewer than two blobs or the offset is not found
// in its header, or found more than twice.  Twice is normal with exactly two
// blobs: Hyperscan databases are 8-byte multiples, so the second blob's
// offset equals the first one's size, and both are moved (a blob of 2^40
// bytes, and one at 2^40: either is outside the file).  That happens when a
// rule of the test's set lands in PCRE2 instead of Hyperscan, e.g. when the
// probe child is killed (an ASan build's forked child can hang in malloc).
inline std::string with_blob_outside_the_file(std::string entry) {
  auto info = cache::inspect_entry(entry);
  if (!info) return {};
  // Blobs are laid out in class order, bytes then UTF-8, each 8-aligned.
  std::uint64_t at = 0, last = 0;
  for (const auto& c : info->classes)
    for (std::uint64_t size : {c.bytes_db_size, c.utf8_db_size})
      if (size) {
        at = (at + 7) / 8 * 8;
        last = at;
        at += size;
      }
  if (last == 0) return {};
  std::uint32_t hlen = 0;
  std::memcpy(&hlen, entry.data() + 12, 4);
  std::vector<std::size_t> found;
  for (std::size_t i = 16; i + 8 <= 16 + std::size_t{hlen}; ++i)
    if (std::memcmp(entry.data() + i, &last, 8) == 0) found.push_back(i);
  if (found.empty() || found.size() > 2) return {};
  const std::uint64_t far = std::uint64_t{1} << 40;
  for (std::size_t i : found) std::memcpy(entry.data() + i, &far, 8);
  reseal_entry(entry);
  return entry;
}

}  // namespace regexd::test
