// regexd::cache::Store: a directory of compiled rule sets, one subdirectory
// per platform (docs/cache-format.md).
//
// Guarantees: a file that fails any check is never handed to Hyperscan; a
// failed check is a miss with a one-line reason, never an error for the
// caller; saves are atomic; two processes missing the same key compile once.
//
// Thread safety: a Store may be used from several threads at once (the set
// of loaded keys is guarded by a mutex).  Several processes may share one
// root.
//
// Directories: open() checks the root and this platform's directory and
// keeps both open (DirFd); every later read, write, rename, unlink and
// listing goes through those descriptors with O_NOFOLLOW/AT_SYMLINK_NOFOLLOW.
// A directory renamed or swapped for a symbolic link after open() is not
// followed: the store keeps using the directories it checked, and a file
// that is a link is a miss ("is a symbolic link, not a cache file").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "regexd/cache/dir_fd.h"
#include "regexd/cache/entry.h"
#include "regexd/cache/key.h"
#include "regexd/cache/remote_store.h"
#include "regexd/engine/engine.h"

namespace regexd::cache {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
using LogFn = std::function<void(LogLevel, const std::string&)>;

// The default cache root: $XDG_CACHE_HOME/regexd (or ~/.cache/regexd), or
// /var/lib/regexd when running as root.
std::filesystem::path default_cache_root();

struct StoreOptions {
  std::filesystem::path root = default_cache_root();
  // Keep deserialized databases in .rxdimg files that processes map
  // read-only and share (see docs/cache-format.md); put() then writes the
  // new entry's image too.  Default off here (a library user opts in); the
  // daemon's cache.shared_images defaults to on.
  bool shared_images = false;
  // How long a process waits for another one compiling the same key.
  std::chrono::milliseconds lock_timeout = std::chrono::minutes(30);
  // Files larger than this are not read (corruption guard).
  std::uint64_t max_entry_size = 4ull << 30;
  // Log sink; default: one line to stderr per event.
  LogFn log;
  // Optional second tier shared by hosts (regexd/cache/remote_store.h): a
  // local miss asks it, a compile publishes to it.  Shared so the owner can
  // read its stats.
  std::shared_ptr<RemoteStore> remote;
};

struct LoadResult {
  std::shared_ptr<const engine::Scanner> scanner;
  enum class Source { kCache, kSharedImage, kCompiled } source = Source::kCompiled;
  std::string miss_reason;  // why the cache was not used (empty on a hit)
  double load_ms = 0;       // cache load, or compile + save
  engine::CompileReport report;  // filled when compiled
  std::string save_error;   // non-empty if compiled but the save failed
  bool from_remote = false; // a cache hit whose entry came from the remote tier
};

struct EntryStatus {
  std::filesystem::path path;
  bool this_platform = false;
  bool ok = false;
  std::string problem;  // empty when ok
};

struct PruneOptions {
  std::optional<std::uint64_t> max_size;  // bytes, total of this platform's entries
  std::optional<std::chrono::seconds> max_age;
  bool foreign = false;  // remove other platforms' directories
  bool dry_run = false;
};

struct PruneReport {
  std::vector<std::filesystem::path> removed;
  std::uint64_t bytes_removed = 0, bytes_kept = 0;
  std::size_t kept = 0;
  // Lock files of keys that have no entry (any more), removed while held
  // free; not in `removed`.  A dry run removes none.
  std::size_t locks_removed = 0;
};

class Store {
 public:
  // Creates/checks the root and this platform's directory; cleans stale temp
  // files.  If other platforms' directories hold entries (a shared volume, a
  // backup restored on another architecture), logs one info line saying they
  // are ignored; they are never opened.  Errors: kPermission (unsafe
  // directory), kIo.
  static Result<std::unique_ptr<Store>> open(StoreOptions options);

  // Loads the entry for `key` if present and valid.  An error is a miss; its
  // message is the one-line reason (kIo "no entry" when simply absent).
  // With a remote tier, a local miss asks it (*from_remote: the entry came
  // from there and is now in the local directory).  *read_ahead: a
  // prefetch (below) had loaded it.
  Result<std::shared_ptr<const engine::Scanner>> get(const CacheKey& key, LoadResult::Source* source = nullptr,
                                                     bool* from_remote = nullptr, bool* read_ahead = nullptr);

  // Starts reading and checking, on a thread of its own, the entry that the
  // next get() for rule set `rule_set_name` most likely asks for: the most
  // recently used entry of this platform recorded for that name (a hit
  // touches its entry; the newest kPrefetchProbes entries are looked at).
  // A daemon calls it before parsing the rule set, whose key needs the
  // parse, so that reading the entry overlaps parsing (SpamAssassin's set:
  // parse and load 40 ms one after the other, 28 ms overlapped).  get() with
  // that key takes the result, waiting for it if needed; get() with another
  // key drops it.  Never changes what get() returns: the entry went through
  // the same checks, and a failure is repeated by get() itself, which then
  // reports it as usual.  One prefetch at a time: another one requested
  // while one is pending is ignored.  Thread-safe.
  void prefetch(std::string_view rule_set_name);
  static constexpr std::size_t kPrefetchProbes = 3;
  // How many get()s a prefetch answered.
  std::uint64_t prefetch_hits() const { return prefetch_hits_.load(std::memory_order_relaxed); }

  // Saves `scanner` under `key` atomically.
  Status put(const CacheKey& key, const engine::Scanner& scanner, std::string_view rule_set_name);

  // get(), else compile under the key's lock and put().  Fails only if the
  // rules cannot be compiled at all.
  Result<LoadResult> get_or_compile(const engine::RuleSet& rules, const engine::CompileOptions& options,
                                    std::string_view rule_set_name);

  // Checks every entry of every platform directory (structure + checksum;
  // this platform's entries fully, including Hyperscan's own check).
  std::vector<EntryStatus> verify() const;

  PruneReport prune(const PruneOptions& options);

  const std::filesystem::path& root() const { return options_.root; }
  bool shared_images() const { return options_.shared_images; }
  const std::filesystem::path& platform_dir() const { return platform_dir_; }
  std::filesystem::path entry_path(const CacheKey& key) const;
  CacheKey key_for(const engine::RuleSet& rules, const engine::CompileOptions& options) const;
  RemoteStore* remote() const;  // null without a remote tier

 private:
  Store(StoreOptions options, PlatformTags tags, DirFd root_dir, DirFd dir);
  static std::string entry_file(const CacheKey& key);  // "<hex>.rxdb"
  // Names of the other platforms' directories in the root (real directories
  // only, sorted).
  std::vector<std::string> foreign_dirs() const;
  void log(LogLevel level, const std::string& msg) const;
  // One info line at open if other platforms' entries share the root.
  void note_foreign_entries() const;
  void note_loaded(const CacheKey& key);
  Result<std::shared_ptr<const engine::Scanner>> load_image(const CacheKey& key, const std::string& bytes);
  struct Loaded {
    std::shared_ptr<const engine::Scanner> scanner;
    LoadResult::Source source = LoadResult::Source::kCache;
  };
  // The part of get() a prefetch does ahead: an entry's bytes decoded (via
  // the shared image when on).  Errors: decode_entry's (kMismatch,
  // kCorrupt), or kInternal when no scanner could be made of the set.
  Result<Loaded> decode_local(const CacheKey& key, const std::string& bytes);
  // Prefetching (cache/src/prefetch.cpp).
  struct Prefetch;
  std::optional<CacheKey> newest_entry_for(std::string_view rule_set_name) const;
  // The pending prefetch's result if it was for `key` (waits for it), else
  // drops it; nullopt when there was none for `key`.
  std::optional<Result<Loaded>> take_prefetch(const CacheKey& key);
  // Remote hooks (cache/src/remote_store.cpp).  fetch_remote: a local miss
  // asks the remote; true when its entry is now in the local directory.
  bool fetch_remote(const CacheKey& key);
  bool install_fetched(const CacheKey& key, const std::string& bytes);
  void publish_remote(const CacheKey& key, std::string_view bytes);
  // Before compiling: the cross-host lock, or another host's entry
  // (*arrived, installed locally).
  std::optional<RemoteStore::Lock> remote_turn(const CacheKey& key, bool* arrived);

  StoreOptions options_;
  PlatformTags tags_;
  std::filesystem::path platform_dir_;  // for messages and callers; access goes through dir_
  DirFd root_dir_, dir_;
  mutable std::mutex mu_;
  std::set<std::string> loaded_;         // key hex of entries this process uses
  mutable bool mismatch_logged_ = false;  // info line once per directory
  std::shared_ptr<Prefetch> prefetch_;    // pending prefetch, guarded by mu_
  std::atomic<std::uint64_t> prefetch_hits_{0};
  std::jthread prefetch_thread_;  // last: joined before the members it uses go
};

}  // namespace regexd::cache
