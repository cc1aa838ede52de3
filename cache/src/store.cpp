#include "regexd/cache/store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "regexd/cache/fs.h"

namespace regexd::cache {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kEntryExt = ".rxdb";
constexpr std::string_view kImageExt = ".rxdimg";
constexpr std::string_view kLockExt = ".lock";
constexpr std::string_view kCorruptExt = ".corrupt";

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A read-only shared mapping of a whole file; the databases of a shared
// image point into it.
struct Mapping {
  void* addr = MAP_FAILED;
  std::size_t size = 0;
  ~Mapping() {
    if (addr != MAP_FAILED) ::munmap(addr, size);
  }
  std::string_view view() const { return {static_cast<const char*>(addr), size}; }
};

Result<std::shared_ptr<Mapping>> map_file(const DirFd& dir, const std::string& name) {
  const fs::path path = dir.path_of(name);
  int fd = dir.open_file(name, O_RDONLY | O_NONBLOCK);  // O_NOFOLLOW and O_NONBLOCK, as read_file
  if (fd < 0) return make_error(ErrorCode::kIo, path.string() + ": " + std::strerror(errno));
  struct stat st {};
  auto m = std::make_shared<Mapping>();
  if (::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::kIo, path.string() + ": not a regular file");
  }
  if (st.st_size > 0) {
    m->size = static_cast<std::size_t>(st.st_size);
    // MAP_POPULATE: attach_image reads every page at once (its checksum),
    // and mapping them in one call is cheaper than a fault per 64 KiB of
    // them; on a virtual machine the image's 11 MB took 8-15 ms to checksum
    // through faults against ~5 ms populated, the longest step of a warm
    // start (docs/benchmarks.md, "Warm start").
    m->addr = ::mmap(nullptr, m->size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  }
  int saved = errno;
  ::close(fd);
  if (m->addr == MAP_FAILED) return make_error(ErrorCode::kIo, path.string() + ": cannot map: " + std::strerror(saved));
  return m;
}

// The age of a file's mtime, on the clock prune() compares with max_age.
std::chrono::nanoseconds mtime_of(const struct stat& st) {
  return std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
}

}  // namespace

fs::path default_cache_root() {
  if (::geteuid() == 0) return "/var/lib/regexd";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x == '/') return fs::path(x) / "regexd";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "regexd";
  return fs::temp_directory_path() / ("regexd-" + std::to_string(::geteuid()));
}

Store::Store(StoreOptions options, PlatformTags tags, DirFd root_dir, DirFd dir)
    : options_(std::move(options)),
      tags_(std::move(tags)),
      platform_dir_(dir.path()),
      root_dir_(std::move(root_dir)),
      dir_(std::move(dir)) {}

Result<std::unique_ptr<Store>> Store::open(StoreOptions options) {
  const auto& tags = current_tags();
  if (!tags) return tags.error();
  // Created (if missing) and checked by path, then opened without following
  // a link and checked again through the descriptors, which every later
  // file operation goes through (dir_fd.h says why).
  if (auto st = ensure_private_dir(options.root); !st) return st.error();
  auto root = DirFd::open_private(options.root);
  if (!root) return root.error();
  const std::string name = tags->dir_name();
  if (auto st = ensure_private_dir(options.root / name); !st) return st.error();
  auto dir = root->open_subdir(name, /*check_private=*/true);
  if (!dir) return dir.error();
  remove_stale_temp_files(*dir);
  std::unique_ptr<Store> store(new Store(std::move(options), *tags, std::move(*root), std::move(*dir)));
  store->note_foreign_entries();
  return store;
}

std::string Store::entry_file(const CacheKey& key) { return key.hex() + std::string(kEntryExt); }

// A root shared with other platforms (one volume for x86 and arm64 installs,
// or a backup restored on another architecture) is normal: their entries are
// never opened here.  Say so once, at open, so that an operator who wonders
// why everything is being recompiled after a restore finds the reason.
void Store::note_foreign_entries() const {
  std::size_t entries = 0;
  std::vector<std::string> dirs;
  for (const auto& name : foreign_dirs()) {
    auto sub = root_dir_.open_subdir(name, /*check_private=*/false);
    if (!sub) continue;
    std::size_t n = 0;
    for (const auto& f : sub->list())
      if (ends_with(f, kEntryExt)) ++n;
    if (n == 0) continue;
    entries += n;
    dirs.push_back(name);
  }
  if (entries == 0) return;
  std::sort(dirs.begin(), dirs.end());
  std::string list;
  for (const auto& d : dirs) list += (list.empty() ? "" : ", ") + d;
  log(LogLevel::kInfo, options_.root.string() + ": ignoring " + std::to_string(entries) +
                           " entries of other platforms (" + list + "); this is " + platform_dir_.filename().string() +
                           "; `regexctl prune --foreign` removes them");
}

void Store::log(LogLevel level, const std::string& msg) const {
  if (options_.log) {
    options_.log(level, msg);
    return;
  }
  static const char* names[] = {"debug", "info", "warning", "error"};
  if (level == LogLevel::kDebug) return;
  std::fprintf(stderr, "regexd cache %s: %s\n", names[static_cast<int>(level)], msg.c_str());
}

fs::path Store::entry_path(const CacheKey& key) const { return platform_dir_ / entry_file(key); }

std::vector<std::string> Store::foreign_dirs() const {
  std::vector<std::string> out;
  const std::string mine = platform_dir_.filename().string();
  for (auto& name : root_dir_.list()) {
    auto st = root_dir_.stat(name);  // a link to a directory is not one of ours
    if (name != mine && st && S_ISDIR(st->st_mode)) out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

CacheKey Store::key_for(const engine::RuleSet& rules, const engine::CompileOptions& options) const {
  return compute_key(rules, options, tags_);
}

void Store::note_loaded(const CacheKey& key) {
  std::lock_guard lock(mu_);
  loaded_.insert(key.hex());
}

Result<std::shared_ptr<const engine::Scanner>> Store::load_image(const CacheKey& key, const std::string& bytes) {
  const std::string img_name = key.hex() + std::string(kImageExt);
  const fs::path img = dir_.path_of(img_name);
  for (int attempt = 0; attempt < 2; ++attempt) {
    // The entry is validated in full (everything but deserializing its
    // databases) before an image is built from it: build_image trusts what
    // it reads, and a resealed hostile entry must end here as a miss.
    auto set = decode_entry(bytes, key, tags_, DecodeOptions{true});
    if (!set) return set.error();
    if (!dir_.exists(img_name)) {
      auto image = build_image(bytes);
      if (!image) return image.error();
      if (auto st = write_file_atomic(dir_, img_name, *image); !st) return st.error();
    }
    auto map = map_file(dir_, img_name);
    if (!map) return map.error();
    auto st = attach_image(**set, bytes, (*map)->view(), *map);
    if (st) return engine::Scanner::from_compiled(std::move(*set));
    log(LogLevel::kWarning, img.string() + ": " + st.error().message + "; rebuilding it");
    (void)dir_.remove(img_name);
  }
  return make_error(ErrorCode::kCorrupt, img.string() + ": shared image could not be built");
}

Result<Store::Loaded> Store::decode_local(const CacheKey& key, const std::string& bytes) {
  if (options_.shared_images)
    if (auto scanner = load_image(key, bytes)) return Loaded{std::move(*scanner), LoadResult::Source::kSharedImage};
  auto set = decode_entry(bytes, key, tags_);
  if (!set) return set.error();
  auto scanner = engine::Scanner::from_compiled(std::move(*set));
  if (!scanner) return make_error(ErrorCode::kInternal, scanner.error().message);
  return Loaded{std::move(*scanner), LoadResult::Source::kCache};
}

Result<std::shared_ptr<const engine::Scanner>> Store::get(const CacheKey& key, LoadResult::Source* source, bool* from_remote,
                                                         bool* read_ahead) {
  const std::string name = entry_file(key);
  const fs::path path = dir_.path_of(name);
  bool remote_hit = false;
  std::optional<Loaded> loaded;
  if (read_ahead) *read_ahead = false;
  // A prefetch that failed is not trusted with the reason: the normal path
  // below reads the entry again and reports (or moves aside) as usual.
  if (auto pre = take_prefetch(key); pre && *pre) {
    loaded = std::move(**pre);
    prefetch_hits_.fetch_add(1, std::memory_order_relaxed);
    if (read_ahead) *read_ahead = true;
  }
  if (!loaded) {
    if (!dir_.exists(name) && !(remote_hit = fetch_remote(key))) return make_error(ErrorCode::kIo, "no entry");
    auto bytes = read_file(dir_, name, options_.max_entry_size);
    if (!bytes) return make_error(ErrorCode::kIo, bytes.error().message);
    auto got = decode_local(key, *bytes);
    if (!got) {
      const Error& e = got.error();
      if (e.code == ErrorCode::kInternal) return e;
      if (e.code == ErrorCode::kMismatch) {
        // Expected after an upgrade or a restore from another machine: say
        // so once per directory, not once per entry.
        bool first = false;
        {
          std::lock_guard lock(mu_);
          first = !mismatch_logged_;
          mismatch_logged_ = true;
        }
        log(first ? LogLevel::kInfo : LogLevel::kDebug,
            path.string() + ": not usable here (" + e.message + "); recompiling");
      } else {
        log(LogLevel::kWarning, path.string() + ": corrupt (" + e.message + "); moved aside, recompiling");
        (void)dir_.rename(name, name + std::string(kCorruptExt));
      }
      return make_error(e.code, e.message);
    }
    loaded = std::move(*got);
  }
  dir_.touch(name);  // LRU: a hit refreshes the entry's mtime (atime is often noatime)
  note_loaded(key);
  if (source) *source = loaded->source;
  if (from_remote) *from_remote = remote_hit;
  return std::move(loaded->scanner);
}

Status Store::put(const CacheKey& key, const engine::Scanner& scanner, std::string_view rule_set_name) {
  auto bytes = encode_entry(scanner.compiled(), key, tags_, rule_set_name);
  if (!bytes) return bytes.error();
  if (auto st = write_file_atomic(dir_, entry_file(key), *bytes); !st) return st;
  // An image made from the previous entry no longer matches; drop it now
  // rather than let the next reader find out.
  const std::string img_name = key.hex() + std::string(kImageExt);
  (void)dir_.remove(img_name);
  // With shared images, the image of the new entry is made now, while its
  // bytes are at hand, so that the next start maps it instead of building
  // and writing it on the way to its first answer.  Best effort: a load
  // builds a missing image anyway.
  if (options_.shared_images) {
    auto image = build_image(*bytes);
    if (!image || !write_file_atomic(dir_, img_name, *image))
      log(LogLevel::kDebug, dir_.path_of(img_name).string() + ": image not written now; the next load makes it");
  }
  note_loaded(key);
  publish_remote(key, *bytes);
  return {};
}

Result<LoadResult> Store::get_or_compile(const engine::RuleSet& rules, const engine::CompileOptions& options,
                                         std::string_view rule_set_name) {
  auto t0 = std::chrono::steady_clock::now();
  CacheKey key = key_for(rules, options);
  LoadResult out;
  auto hit = get(key, &out.source, &out.from_remote);
  if (hit) {
    out.scanner = std::move(*hit);
    out.load_ms = ms_since(t0);
    return out;
  }
  out.miss_reason = hit.error().message;
  // One compile per key across processes: whoever holds the lock compiles;
  // the others wait and then find the entry.
  auto lock = FileLock::acquire(dir_, key.hex() + std::string(kLockExt), options_.lock_timeout);
  if (!lock) log(LogLevel::kWarning, "cache lock for " + key.hex() + ": " + lock.error().message + "; compiling anyway");
  // Another local process may have saved it meanwhile (the remote was asked
  // already; asking again would only repeat a refusal's log line).
  if (lock && dir_.exists(entry_file(key))) {
    auto again = get(key, &out.source, &out.from_remote);
    if (again) {
      out.scanner = std::move(*again);
      out.load_ms = ms_since(t0);
      return out;
    }
  }
  // The same across hosts, when there is a remote tier.
  bool arrived = false;
  auto remote_lock = remote_turn(key, &arrived);
  if (arrived) {
    if (auto got = get(key, &out.source)) {
      out.from_remote = true;
      out.scanner = std::move(*got);
      out.load_ms = ms_since(t0);
      return out;
    }
  }
  auto compiled = engine::Scanner::compile(rules, options, &out.report);
  if (!compiled) return compiled.error();
  out.scanner = std::move(*compiled);
  out.source = LoadResult::Source::kCompiled;
  if (auto st = put(key, *out.scanner, rule_set_name); !st) {
    out.save_error = st.error().message;
    log(LogLevel::kWarning, "cannot save cache entry " + entry_path(key).string() + ": " + out.save_error);
  }
  out.load_ms = ms_since(t0);
  return out;
}

std::vector<EntryStatus> Store::verify() const {
  std::vector<EntryStatus> out;
  // This platform's directory is the one held open, whatever its name in the
  // root names now; the others are opened without following links.
  const std::string mine_name = platform_dir_.filename().string();
  std::vector<std::string> dirs = foreign_dirs();
  dirs.push_back(mine_name);
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir_name : dirs) {
    bool mine = dir_name == mine_name;
    DirFd other;
    if (!mine) {
      auto sub = root_dir_.open_subdir(dir_name, /*check_private=*/false);
      if (!sub) continue;
      other = std::move(*sub);
    }
    const DirFd& dir = mine ? dir_ : other;
    std::vector<std::string> files;
    for (auto& f : dir.list())
      if (ends_with(f, kEntryExt)) files.push_back(std::move(f));
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      EntryStatus s{dir.path_of(f), mine, false, {}};
      auto bytes = read_file(dir, f, options_.max_entry_size);
      if (!bytes) {
        s.problem = bytes.error().message;
      } else if (auto info = inspect_entry(*bytes); !info) {
        s.problem = info.error().message;
      } else if (info->key.hex() + std::string(kEntryExt) != f) {
        s.problem = "file name does not match the key in its header";
      } else if (info->tags.dir_name() != dir_name) {
        s.problem = "entry for platform " + info->tags.dir_name() + " in directory " + dir_name;
      } else if (mine) {
        auto set = decode_entry(*bytes, info->key, tags_);
        if (!set) s.problem = set.error().message;
        else s.ok = true;
      } else {
        s.ok = true;
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

// Everything goes through the descriptors of the root and of this
// platform's directory, with unlinkat() and lstat-like fstatat(): a link is
// removed (or left alone), never followed, and a directory swapped for a link
// after open is not the one pruned.
PruneReport Store::prune(const PruneOptions& options) {
  PruneReport rep;
  auto remove = [&](const DirFd& dir, const std::string& name, std::uint64_t size) {
    if (!options.dry_run) dir.remove_tree(name);
    rep.removed.push_back(dir.path_of(name));
    rep.bytes_removed += size;
  };
  if (options.foreign)
    for (const auto& name : foreign_dirs()) remove(root_dir_, name, root_dir_.tree_size(name));
  remove_stale_temp_files(dir_);
  struct Entry {
    std::string name;
    std::string key;
    std::chrono::nanoseconds mtime;
    std::uint64_t size;
  };
  auto regular_size = [](const std::optional<struct stat>& st) -> std::uint64_t {
    return st && S_ISREG(st->st_mode) ? static_cast<std::uint64_t>(st->st_size) : 0;
  };
  std::vector<Entry> entries;
  for (const auto& name : dir_.list()) {
    auto st = dir_.stat(name);
    if (!st) continue;
    if (ends_with(name, kCorruptExt)) {
      remove(dir_, name, regular_size(st));
      continue;
    }
    if (!ends_with(name, kEntryExt)) continue;
    // A link (or anything but a file) named as an entry is never loaded
    // (get() refuses it): junk, like a .corrupt file.  The link goes, not
    // what it points to.
    if (!S_ISREG(st->st_mode)) {
      remove(dir_, name, 0);
      continue;
    }
    std::string key = name.substr(0, name.size() - kEntryExt.size());
    std::uint64_t size = regular_size(st) + regular_size(dir_.stat(key + std::string(kImageExt)));
    entries.push_back({name, key, mtime_of(*st), size});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.mtime < b.mtime; });
  std::uint64_t total = 0;
  for (const auto& e : entries) total += e.size;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  std::set<std::string> loaded;
  {
    std::lock_guard lock(mu_);
    loaded = loaded_;
  }
  for (const auto& e : entries) {
    bool too_old = options.max_age && now - e.mtime > *options.max_age;
    bool too_big = options.max_size && total > *options.max_size;
    if ((too_old || too_big) && !loaded.count(e.key)) {
      remove(dir_, e.name, e.size);
      const std::string img = e.key + std::string(kImageExt);
      if (dir_.exists(img)) remove(dir_, img, 0);  // its size is counted in the entry's
      total -= e.size;
    } else {
      rep.kept++;
      rep.bytes_kept += e.size;
    }
  }
  // Lock files of keys without an entry (pruned now, or a compile that never
  // finished) would otherwise pile up.  One is removed only while this
  // process holds it: a process that was waiting on it then finds that its
  // lock no longer names the path (FileLock checks) and locks the new file,
  // so two compiles of one key never hold "the" lock together.
  if (options.dry_run) return rep;
  for (const auto& name : dir_.list()) {
    if (!ends_with(name, kLockExt)) continue;
    std::string key = name.substr(0, name.size() - kLockExt.size());
    if (dir_.exists(key + std::string(kEntryExt))) continue;
    auto held = FileLock::try_acquire(dir_, name);
    if (!held) continue;  // a compile of that key is running
    if (::unlinkat(dir_.fd(), name.c_str(), 0) == 0) rep.locks_removed++;
  }
  return rep;
}

}  // namespace regexd::cache
