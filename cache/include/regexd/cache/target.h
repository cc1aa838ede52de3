// Cache entries for another machine ("target entries"): `regexctl prewarm
// --target aarch64` and `regexd --prewarm --target aarch64` on an x86_64
// Vectorscan build write the entries an aarch64 regexd looks up, so that a
// small board loads SpamAssassin's rules instead of compiling them
// (docs/cache-format.md, "Target entries"; docs/arm64.md, the fleet).
//
// Why this is sound: Vectorscan's bytecode compiled for the generic platform
// (HS_TUNE_FAMILY_GENERIC, cpu_features 0) does not depend on the compiling
// machine's architecture, and Vectorscan 5.4.x on aarch64 reports exactly that
// platform for every ARM CPU (hs_populate_platform: tune 0, features 0;
// measured under qemu for cortex-a53, neoverse-n1, a64fx and max).  So an
// entry compiled on x86_64 for the generic platform and tagged aarch64 has
// the very tags, key and directory a native aarch64 regexd computes: it finds
// it with its ordinary lookup and its ordinary checks (tags, checksum,
// Vectorscan's own header check) still apply.
//
// Thread safety: target_tags is a pure function.  A TargetStore may be used
// from several threads; several processes may write into one root (the
// per-key lock file is the one Store uses).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "regexd/cache/dir_fd.h"
#include "regexd/cache/key.h"
#include "regexd/cache/remote_store.h"
#include "regexd/cache/store.h"
#include "regexd/engine/engine.h"

namespace regexd::cache {

// The tags a regexd running on `target` (an architecture name: "aarch64" or
// its alias "arm64", "x86_64" or "amd64") computes, as far as a build running
// with `host` tags can know them: the target runs the same library (flavor
// and hs_version) and the same PCRE2 version as this build.  If it does not,
// its key differs and it simply compiles, as it would without target entries.
//
// `target` naming the host's own architecture gives `host` unchanged (the
// ordinary entries of this machine).  Refused (kInvalidArgument, a one-line
// message naming the target and why):
//  - an unknown or unverified architecture (only little-endian targets whose
//    Vectorscan compiles for a platform known in advance are accepted);
//  - a foreign target on an Intel Hyperscan build (its databases run on
//    x86_64 only);
//  - x86_64 from another architecture: an x86_64 regexd keys its entries by
//    its own CPU's tune and features (AVX2, AVX512...), unknown here.
Result<PlatformTags> target_tags(const PlatformTags& host, std::string_view target);

struct TargetResult {
  enum class Source { kPresent, kCompiled } source = Source::kCompiled;
  std::filesystem::path path;  // the entry file
  std::size_t rules = 0;       // rules in the entry
  double ms = 0;               // check, or compile + save
  engine::CompileReport report;  // filled when compiled
  bool published = false;      // sealed and stored in the remote tier (set_remote)
};

// Writes entries for the platform `tags` (from target_tags) under
// `<root>/<tags.dir_name()>/`, keyed with compute_key(rules, options, tags):
// exactly the file the target's Store::get_or_compile looks for.  It never
// deserializes an entry (its bytecode is not meant for this machine):
// "present" means the file exists, passes the structure and checksum checks
// (inspect_entry) and its header carries this key and these tags.
class TargetStore {
 public:
  // Creates/checks the root and the target's directory (same permission
  // rules as Store::open) and keeps the directory open: files are read and
  // written through it, never through a link (dir_fd.h).  Errors:
  // kPermission, kIo.
  static Result<std::unique_ptr<TargetStore>> open(std::filesystem::path root, PlatformTags tags, LogFn log = {},
                                                   std::chrono::milliseconds lock_timeout = std::chrono::minutes(30));

  // The entry for `rules` if present, else compiles them for the target's
  // platform (options.platform is set from the tags) under the key's lock
  // and saves the entry atomically.  Errors: the rules cannot be compiled, or
  // the entry cannot be written (kIo).
  Result<TargetResult> get_or_compile(const engine::RuleSet& rules, engine::CompileOptions options,
                                      std::string_view rule_set_name);

  // Also publishes every entry get_or_compile finds or writes to `remote`
  // (sealed with its signing key; nothing without one), under the target's
  // platform directory and key: what the target's Store asks the remote tier
  // for on a local miss, so a board can start from Redis too.  Remote errors
  // never fail get_or_compile (RemoteStore logs them).
  void set_remote(std::shared_ptr<RemoteStore> remote) { remote_ = std::move(remote); }

  const PlatformTags& tags() const { return tags_; }
  const std::filesystem::path& platform_dir() const { return dir_.path(); }

 private:
  TargetStore(PlatformTags tags, DirFd dir, LogFn log, std::chrono::milliseconds lock_timeout);
  // Why the file `name` in the directory is not a usable entry for `key`
  // (empty: it is, and *rules and *entry, its bytes, are set).
  std::string problem(const std::string& name, const CacheKey& key, std::size_t* rules, std::string* entry) const;

  PlatformTags tags_;
  DirFd dir_;
  LogFn log_;
  std::chrono::milliseconds lock_timeout_;
  std::shared_ptr<RemoteStore> remote_;

  // Publishes `bytes` (the entry of `key`) when a remote is set; whether it was.
  bool publish(const CacheKey& key, std::string_view bytes);
};

}  // namespace regexd::cache
