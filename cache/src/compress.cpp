#include "regexd/cache/compress.h"

#include <zstd.h>

namespace regexd::cache {

Result<std::string> compress_zstd(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  std::size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n)) return make_error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Result<std::string> decompress_zstd(std::string_view frame, std::uint64_t expected_size, std::uint64_t max_size) {
  if (expected_size > max_size)
    return make_error(ErrorCode::kResourceLimit, "declared size " + std::to_string(expected_size) +
                                                     " bytes is over the limit of " + std::to_string(max_size));
  // The frame's own declaration must agree with the sealed header's before
  // a byte is allocated for it.
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN)
    return make_error(ErrorCode::kCorrupt, "not a zstd frame with a declared size");
  if (declared != expected_size)
    return make_error(ErrorCode::kCorrupt, "zstd frame declares " + std::to_string(declared) + " bytes, header " +
                                               std::to_string(expected_size));
  if (ZSTD_findFrameCompressedSize(frame.data(), frame.size()) != frame.size())
    return make_error(ErrorCode::kCorrupt, "trailing bytes after the zstd frame");
  std::string out(expected_size, '\0');
  std::size_t n = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n)) return make_error(ErrorCode::kCorrupt, std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != expected_size) return make_error(ErrorCode::kCorrupt, "zstd frame shorter than declared");
  return out;
}

}  // namespace regexd::cache
