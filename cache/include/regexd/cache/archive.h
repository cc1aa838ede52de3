// Export/import of one platform directory as a single signed archive, for
// hosts without the shared Redis (ship a cache with a backup, bake it into an
// image).  Format: docs/cache-format.md, "Archive".
//
// import_archive() checks the archive's signature against `trusted` before it
// parses anything else, then every entry (each is a sealed entry, signed for
// its platform and key, and then checked as a cache file: structure,
// checksum, key, platform), and only when all pass writes them, each
// atomically.  Anything malformed: an error with a one-line reason, nothing
// written.
//
// Thread safety: plain functions; they touch only the given paths.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "regexd/cache/signing.h"
#include "regexd/engine/result.h"

namespace regexd::cache {

struct ArchiveSummary {
  std::string platform;        // the platform directory's name
  std::size_t entries = 0;     // exported / imported
  std::uint64_t entry_bytes = 0, archive_bytes = 0;
  std::vector<std::string> skipped;  // export: "<file>: <reason>" for entries left out
  PublicKey signer;
};

// Writes every valid entry of `platform_dir` (<root>/<platform>) to `out`
// (atomically, mode 0640), sealed and signed with `key`.
Result<ArchiveSummary> export_archive(const std::filesystem::path& platform_dir, const std::filesystem::path& out,
                                      const SecretKey& key);

// Verifies `archive` and writes its entries under <root>/<platform>/.
// `max_size` caps the archive file and each entry (decompressed).
Result<ArchiveSummary> import_archive(const std::filesystem::path& archive, const std::filesystem::path& root,
                                      const std::vector<PublicKey>& trusted, std::uint64_t max_size = 4ull << 30);

}  // namespace regexd::cache
