// A cache directory held open (see dir_fd.h for the contract).
#include "regexd/cache/dir_fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "regexd/cache/fs.h"

namespace regexd::cache {

namespace fs = std::filesystem;

namespace {

// A cache holds one level of platform directories with files in them;
// anything deeper than this is not ours, and the bound keeps the recursion
// (and its descriptors) finite on a hostile tree.
constexpr int kMaxDepth = 16;

// `dirfd`/`name`: what failed to open, to tell a link (O_NOFOLLOW with
// O_DIRECTORY says ENOTDIR or ELOOP for one) from other failures.
Error open_error(int dirfd, const char* name, const fs::path& path, int err) {
  struct stat st {};
  if ((err == ELOOP || err == ENOTDIR) && ::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
    return make_error(ErrorCode::kPermission,
                      path.string() + ": is a symbolic link, not a directory; a symbolic link is not followed");
  return make_error((err == EACCES || err == EPERM) ? ErrorCode::kPermission : ErrorCode::kIo,
                    path.string() + ": cannot open directory: " + std::generic_category().message(err));
}

int open_dir_at(int dirfd, const char* name) {
  int fd;
  do fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  return fd;
}

bool remove_tree_at(int dirfd, const std::string& name, int depth) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return ::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT;
  if (depth >= kMaxDepth) return false;
  int fd = open_dir_at(dirfd, name.c_str());
  if (fd < 0) return false;
  DirFd sub = DirFd::adopt(fd, name);
  bool ok = true;
  for (const auto& child : sub.list()) ok = remove_tree_at(sub.fd(), child, depth + 1) && ok;
  return ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0 && ok;
}

std::uint64_t tree_size_at(int dirfd, const std::string& name, int depth) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
  if (S_ISREG(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
  if (!S_ISDIR(st.st_mode) || depth >= kMaxDepth) return 0;
  int fd = open_dir_at(dirfd, name.c_str());
  if (fd < 0) return 0;
  DirFd sub = DirFd::adopt(fd, name);
  std::uint64_t total = 0;
  for (const auto& child : sub.list()) total += tree_size_at(sub.fd(), child, depth + 1);
  return total;
}

}  // namespace

Result<DirFd> DirFd::open_private(const fs::path& path) {
  int fd = open_dir_at(AT_FDCWD, path.c_str());
  if (fd < 0) return open_error(AT_FDCWD, path.c_str(), path, errno);
  DirFd dir(fd, path);
  if (auto st = check_private_dir(dir); !st) return st.error();
  return dir;
}

Result<DirFd> DirFd::open_subdir(std::string_view name, bool check_private) const {
  const std::string n(name);
  int fd = open_dir_at(fd_, n.c_str());
  if (fd < 0) return open_error(fd_, n.c_str(), path_of(name), errno);
  DirFd dir(fd, path_of(name));
  if (check_private)
    if (auto st = check_private_dir(dir); !st) return st.error();
  return dir;
}

DirFd::DirFd(DirFd&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) { other.fd_ = -1; }

DirFd& DirFd::operator=(DirFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

DirFd::~DirFd() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<struct stat> DirFd::stat(std::string_view name) const {
  struct stat st {};
  const std::string n(name);
  if (::fstatat(fd_, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return std::nullopt;
  return st;
}

std::vector<std::string> DirFd::list() const {
  std::vector<std::string> names;
  // A new open file description of the same directory ("." through our
  // descriptor): a dup() would share its read offset with concurrent
  // listings on other threads.
  int fd = open_dir_at(fd_, ".");
  if (fd < 0) return names;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return names;
  }
  while (const dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);  // closes fd
  return names;
}

int DirFd::open_file(std::string_view name, int flags, unsigned mode) const {
  const std::string n(name);
  return ::openat(fd_, n.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, static_cast<mode_t>(mode));
}

Status DirFd::remove(std::string_view name) const {
  const std::string n(name);
  if (::unlinkat(fd_, n.c_str(), 0) == 0 || errno == ENOENT) return {};
  return make_error(ErrorCode::kIo, path_of(name).string() + ": cannot remove: " + std::generic_category().message(errno));
}

Status DirFd::rename(std::string_view from, std::string_view to) const {
  const std::string f(from), t(to);
  if (::renameat(fd_, f.c_str(), fd_, t.c_str()) == 0) return {};
  return make_error(ErrorCode::kIo, path_of(from).string() + ": cannot rename to " + t + ": " +
                                        std::generic_category().message(errno));
}

void DirFd::touch(std::string_view name) const {
  const std::string n(name);
  ::utimensat(fd_, n.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
}

bool DirFd::remove_tree(std::string_view name) const { return remove_tree_at(fd_, std::string(name), 0); }

std::uint64_t DirFd::tree_size(std::string_view name) const { return tree_size_at(fd_, std::string(name), 0); }

}  // namespace regexd::cache
