// Filesystem primitives of the cache: atomic replacement of a file, advisory
// locks between processes, and the permission rules of the cache directories.
//
// Errors are returned as Result/Status with a one-line message that names the
// path and says what to do; nothing here throws.  Every function is safe to
// call from any thread; AtomicFile and FileLock objects belong to one thread
// at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/cache/dir_fd.h"
#include "regexd/engine/result.h"

namespace regexd::cache {

// Writes a file so that readers see either the old content or the whole new
// content, never a part: data goes to a temp file in the same directory
// ("<name>.tmp.<pid>.<random>"), is fsync()ed, renamed over the target, and
// the directory is fsync()ed.  A writer killed at any moment leaves at most a
// stale temp file, which remove_stale_temp_files() cleans up.
//
// `mode` is applied at creation (0640 by default for cache entries).
Status write_file_atomic(const std::filesystem::path& path, std::string_view data, unsigned mode = 0640);

// Like write_file_atomic, for content produced in pieces (avoids one big copy).
Status write_file_atomic(const std::filesystem::path& path, const std::vector<std::string_view>& pieces,
                         unsigned mode = 0640);

// The same in the directory `dir` holds open (dir_fd.h): the temp file, the
// rename and the sync go through its descriptor, and a temp name that is a
// link is refused, so the file lands in the directory that was checked.
// `name` is a plain file name (no '/'), else kInvalidArgument.
Status write_file_atomic(const DirFd& dir, std::string_view name, std::string_view data, unsigned mode = 0640);

// Reads a whole file.  Refuses (kIo) files larger than `max_size`, and with
// `no_follow` a path whose last component is a symbolic link (O_NOFOLLOW:
// the cache's own files, whose directory was checked, must be real files
// there, not links to anything else the daemon's user can read).
Result<std::string> read_file(const std::filesystem::path& path, std::uint64_t max_size = UINT64_MAX,
                              bool no_follow = false);
// Reads `name` in `dir`, never following a link: a link is kIo
// "<path>: is a symbolic link, not a cache file; not followed".
Result<std::string> read_file(const DirFd& dir, std::string_view name, std::uint64_t max_size = UINT64_MAX);

// Is this a temp file name made by write_file_atomic?
bool is_temp_file_name(std::string_view file_name);

// Removes temp files in `dir` whose writer is gone: the pid in the name no
// longer runs, or the file is older than `min_age` (pid reuse).  Returns how
// many were removed.
std::size_t remove_stale_temp_files(const std::filesystem::path& dir,
                                    std::chrono::seconds min_age = std::chrono::hours(1));
std::size_t remove_stale_temp_files(const DirFd& dir, std::chrono::seconds min_age = std::chrono::hours(1));

// An exclusive advisory lock (flock) on "<path>", created 0640 if missing.
// Used so that two processes missing the same cache key compile it once: the
// first takes the lock and compiles, the other waits, then finds the entry.
// The lock is released by the destructor, or by the kernel if the process dies.
class FileLock {
 public:
  // Waits up to `timeout` for the lock (polls; flock has no timeout).
  // kResourceLimit on timeout, kIo / kPermission on other failures.
  static Result<FileLock> acquire(const std::filesystem::path& path, std::chrono::milliseconds timeout);
  // Takes the lock only if free right now; nullopt-like error kResourceLimit if held.
  static Result<FileLock> try_acquire(const std::filesystem::path& path);
  // The lock file `name` in `dir` (opened relative to it, never through a link).
  static Result<FileLock> acquire(const DirFd& dir, std::string_view name, std::chrono::milliseconds timeout);
  static Result<FileLock> try_acquire(const DirFd& dir, std::string_view name);
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Creates `dir` (and parents) with mode 0750 if missing, then checks it with
// check_private_dir().
Status ensure_private_dir(const std::filesystem::path& dir);

// A cache directory must belong to the current user (or root) and must not be
// writable by group or others: otherwise another user could plant a file that
// we would hand to Hyperscan, which trusts its bytecode.  The daemon checks
// its socket's directory the same way (another user could replace the
// socket, or pre-create the directory, and receive every client's mail).  kPermission with a
// message that says how to fix it, e.g.
//   "/var/lib/regexd: writable by group/others (mode 0777); run: chmod go-w /var/lib/regexd"
//   "/var/lib/regexd: owned by uid 1001, not by this user (uid 0); run: chown 0 /var/lib/regexd"
Status check_private_dir(const std::filesystem::path& dir);
// The same rules on a directory held open (fstat of its descriptor): what is
// checked is what is used afterwards.
Status check_private_dir(const DirFd& dir);

}  // namespace regexd::cache
