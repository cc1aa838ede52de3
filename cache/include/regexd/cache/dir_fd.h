// regexd::cache::DirFd: a cache directory held open, so that every file
// operation after the permission check happens in the directory that was
// checked.
//
// Why: Store::open checks the root and the platform directory (owner, mode,
// not a symbolic link).  Opening files by path afterwards re-resolves the
// path each time, so a directory swapped for a symbolic link after the check
// (by whoever can write its parent, or a restored backup) would redirect
// reads and writes elsewhere.  A DirFd is opened with O_DIRECTORY |
// O_NOFOLLOW and checked through fstat() of the descriptor itself; files are
// then reached with openat()/renameat()/unlinkat() relative to it, with
// O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, so a file swapped for a link is refused
// and a renamed directory is still the one used.
//
// Ownership: a DirFd owns its descriptor (closed by the destructor) and is
// move-only.  Thread safety: const members may be called from several threads
// at once; list() opens a fresh description of the directory each time, so
// concurrent listings do not share a read offset.
//
// Errors: Result/Status with one line naming the path (path_of(name)).
// Nothing here throws except std::bad_alloc.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/engine/result.h"

namespace regexd::cache {

class DirFd {
 public:
  DirFd() = default;
  // Opens `path` itself (a final symbolic link is refused: ELOOP) and checks
  // the opened directory as check_private_dir() does, through fstat().
  static Result<DirFd> open_private(const std::filesystem::path& path);
  // Opens the subdirectory `name` of this one without following a link;
  // with `check_private`, checks it like open_private().  A missing
  // directory is kIo "...: cannot open directory: No such file or directory".
  Result<DirFd> open_subdir(std::string_view name, bool check_private) const;
  // Takes ownership of `fd`, an open directory; `path` is for messages.
  static DirFd adopt(int fd, std::filesystem::path path) { return DirFd(fd, std::move(path)); }

  DirFd(DirFd&& other) noexcept;
  DirFd& operator=(DirFd&& other) noexcept;
  DirFd(const DirFd&) = delete;
  DirFd& operator=(const DirFd&) = delete;
  ~DirFd();

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // The path it was opened as; for messages only, never for access.
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path path_of(std::string_view name) const { return path_ / std::string(name); }

  // lstat() of `name` in this directory (a link is described, not followed);
  // nullopt if it does not exist or cannot be stat'ed.
  std::optional<struct stat> stat(std::string_view name) const;
  bool exists(std::string_view name) const { return stat(name).has_value(); }
  // Names in the directory, "." and ".." left out; empty if unreadable.
  std::vector<std::string> list() const;
  // Opens `name` with `flags` | O_NOFOLLOW | O_CLOEXEC (a link is ELOOP);
  // the caller owns the descriptor.  -1 with errno on failure.
  int open_file(std::string_view name, int flags, unsigned mode = 0) const;
  // unlinkat(); a missing file is not an error.  A link is removed itself.
  Status remove(std::string_view name) const;
  // renameat() within this directory.
  Status rename(std::string_view from, std::string_view to) const;
  // Sets the modification time of `name` to now, without following a link.
  void touch(std::string_view name) const;
  // Removes `name` and, if it is a directory, everything under it; links are
  // removed, never followed.  Returns false if something could not be removed.
  bool remove_tree(std::string_view name) const;
  // Bytes of the regular files at or under `name` (links not followed).
  std::uint64_t tree_size(std::string_view name) const;

 private:
  DirFd(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace regexd::cache
