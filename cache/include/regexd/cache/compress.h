// zstd compression of cache entries (the remote tier and archives always;
// local entries are not compressed: docs/benchmarks.md, "Entry compression").
//
// Decompression is bounded: the size the frame declares is checked against
// the caller's cap and against the size the caller expects before any buffer
// is allocated, so a small hostile input cannot make us allocate gigabytes.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "regexd/engine/result.h"

namespace regexd::cache {

inline constexpr int kCompressionLevel = 3;

// One zstd frame with its content size recorded.  kInternal on zstd failure.
Result<std::string> compress_zstd(std::string_view data, int level = kCompressionLevel);

// Decompresses one zstd frame that must declare exactly `expected_size`
// bytes (<= max_size).  kResourceLimit when over the cap, kCorrupt on any
// other mismatch or zstd error.
Result<std::string> decompress_zstd(std::string_view frame, std::uint64_t expected_size, std::uint64_t max_size);

}  // namespace regexd::cache
