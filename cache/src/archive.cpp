#include "regexd/cache/archive.h"

#include <algorithm>
#include <cstring>

#include "bytes.h"
#include "regexd/cache/entry.h"
#include "regexd/cache/fs.h"

namespace regexd::cache {

namespace fs = std::filesystem;

namespace {

constexpr char kArchiveMagic[8] = {'R', 'X', 'D', 'A', 'R', 'C', 'H', 'V'};
constexpr std::uint32_t kArchiveVersion = 1;
constexpr std::string_view kArchiveContext = std::string_view("regexd-archive/1\0", 17);
constexpr std::size_t kTrailer = 32 + 64;  // signer public key, signature
constexpr std::uint32_t kMaxEntries = 1u << 20;
constexpr std::size_t kMaxPlatformName = 255;

Error malformed(const fs::path& p, const std::string& why) {
  return make_error(ErrorCode::kCorrupt, p.string() + ": " + why);
}

bool valid_platform_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxPlatformName || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

// A sealed entry's bytes, opened and checked as a cache file of `platform`.
Result<std::string> checked_entry(const fs::path& archive, std::string_view platform, const CacheKey& key,
                                  std::string_view sealed, const std::vector<PublicKey>& trusted,
                                  std::uint64_t max_size) {
  auto entry = open_sealed_entry(platform, key, sealed, trusted, SealLimits{max_size});
  if (!entry) return malformed(archive, "entry " + key.hex() + ": " + entry.error().message);
  auto info = inspect_entry(*entry);
  if (!info) return malformed(archive, "entry " + key.hex() + ": " + info.error().message);
  if (!(info->key == key)) return malformed(archive, "entry " + key.hex() + ": its header names key " + info->key.hex());
  if (info->tags.dir_name() != platform)
    return malformed(archive, "entry " + key.hex() + ": its header names platform " + info->tags.dir_name());
  return entry;
}

}  // namespace

Result<ArchiveSummary> export_archive(const fs::path& platform_dir, const fs::path& out, const SecretKey& key) {
  ArchiveSummary sum;
  sum.platform = platform_dir.filename().string();
  if (sum.platform.empty()) sum.platform = platform_dir.parent_path().filename().string();  // trailing slash
  if (!valid_platform_name(sum.platform))
    return make_error(ErrorCode::kInvalidArgument, platform_dir.string() + ": not a platform directory name");
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& f : fs::directory_iterator(platform_dir, ec)) {
    std::string name = f.path().filename().string();
    if (name.size() == 32 + 5 && name.substr(32) == ".rxdb") files.push_back(f.path());
  }
  if (ec) return make_error(ErrorCode::kIo, platform_dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::string body(kArchiveMagic, sizeof kArchiveMagic);
  le::put_u32(body, kArchiveVersion);
  le::put_u32(body, 0);  // entry count, set below
  le::put_str(body, sum.platform);
  std::uint32_t count = 0;
  for (const auto& f : files) {
    auto bytes = read_file(f);
    if (!bytes) {
      sum.skipped.push_back(f.string() + ": " + bytes.error().message);
      continue;
    }
    auto info = inspect_entry(*bytes);
    std::string problem;
    if (!info) problem = info.error().message;
    else if (info->key.hex() + ".rxdb" != f.filename().string()) problem = "file name does not match its key";
    else if (info->tags.dir_name() != sum.platform) problem = "entry of platform " + info->tags.dir_name();
    if (!problem.empty()) {
      sum.skipped.push_back(f.string() + ": " + problem);
      continue;
    }
    auto sealed = seal_entry(sum.platform, info->key, *bytes, key);
    if (!sealed) return make_error(sealed.error().code, f.string() + ": " + sealed.error().message);
    body += info->key.hex();
    le::put_u64(body, sealed->size());
    body += *sealed;
    sum.entry_bytes += bytes->size();
    ++count;
  }
  std::string count_bytes;
  le::put_u32(count_bytes, count);
  body.replace(12, 4, count_bytes);
  sum.entries = count;
  sum.signer = key.public_key();
  auto sig = sign_detached(kArchiveContext, body, key);
  body.append(reinterpret_cast<const char*>(sum.signer.bytes.data()), 32);
  body.append(reinterpret_cast<const char*>(sig.data()), sig.size());
  sum.archive_bytes = body.size();
  if (auto st = write_file_atomic(out, body); !st) return st.error();
  return sum;
}

Result<ArchiveSummary> import_archive(const fs::path& archive, const fs::path& root,
                                      const std::vector<PublicKey>& trusted, std::uint64_t max_size) {
  auto file = read_file(archive, max_size);
  if (!file) return file.error();
  std::string_view bytes = *file;
  ArchiveSummary sum;
  sum.archive_bytes = bytes.size();
  // The signature first: nothing but its position is read before it holds.
  if (bytes.size() < 16 + 8 + kTrailer || std::memcmp(bytes.data(), kArchiveMagic, 8) != 0)
    return make_error(ErrorCode::kPermission, archive.string() + ": not a regexd cache archive");
  std::string_view body = bytes.substr(0, bytes.size() - kTrailer);
  std::memcpy(sum.signer.bytes.data(), bytes.data() + body.size(), 32);
  if (std::find(trusted.begin(), trusted.end(), sum.signer) == trusted.end())
    return make_error(ErrorCode::kPermission, archive.string() + ": signed by untrusted key " + sum.signer.id());
  if (!verify_detached(kArchiveContext, body, reinterpret_cast<const unsigned char*>(bytes.data() + body.size() + 32),
                       sum.signer))
    return make_error(ErrorCode::kPermission, archive.string() + ": bad signature (key " + sum.signer.id() + ")");

  if (le::get_u32(body.data() + 8) != kArchiveVersion)
    return malformed(archive, "archive version " + std::to_string(le::get_u32(body.data() + 8)) + " is not 1");
  std::uint32_t count = le::get_u32(body.data() + 12);
  std::uint64_t name_len = le::get_u64(body.data() + 16);
  if (count > kMaxEntries) return malformed(archive, std::to_string(count) + " entries is over the limit");
  if (name_len > kMaxPlatformName || 24 + name_len > body.size()) return malformed(archive, "bad platform name length");
  sum.platform = std::string(body.substr(24, name_len));
  if (!valid_platform_name(sum.platform)) return malformed(archive, "bad platform name");
  std::size_t at = 24 + name_len;
  std::vector<std::pair<CacheKey, std::string>> entries;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (body.size() - at < 32 + 8) return malformed(archive, "truncated at entry " + std::to_string(i));
    CacheKey key;
    auto parsed = CacheKey::from_hex(body.substr(at, 32));
    if (!parsed) return malformed(archive, "bad key at entry " + std::to_string(i));
    key = *parsed;
    std::uint64_t len = le::get_u64(body.data() + at + 32);
    at += 40;
    if (len > body.size() - at) return malformed(archive, "entry " + key.hex() + " runs past the end");
    auto entry = checked_entry(archive, sum.platform, key, body.substr(at, len), trusted, max_size);
    if (!entry) return entry.error();
    at += len;
    sum.entry_bytes += entry->size();
    entries.emplace_back(key, std::move(*entry));
  }
  if (at != body.size()) return malformed(archive, "trailing bytes after the last entry");
  if (auto st = ensure_private_dir(root); !st) return st.error();
  fs::path dir = root / sum.platform;
  if (auto st = ensure_private_dir(dir); !st) return st.error();
  for (const auto& [key, entry] : entries)
    if (auto st = write_file_atomic(dir / (key.hex() + ".rxdb"), entry); !st) return st.error();
  sum.entries = entries.size();
  return sum;
}

}  // namespace regexd::cache
