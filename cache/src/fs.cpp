// Filesystem primitives of the cache (see fs.h for the contract).
//
// Everything is done with POSIX calls on file descriptors rather than
// std::filesystem, because the guarantees we need (O_EXCL creation, fsync of
// the file and of its directory, flock, lstat without following links) are
// not expressible there, and because std::filesystem reports errors through
// exceptions or error_codes whose messages do not name the path.
#include "regexd/cache/fs.h"

#include "regexd/cache/dir_fd.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <limits>
#include <new>
#include <system_error>
#include <thread>

namespace regexd::cache {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTempMarker = ".tmp.";
constexpr std::size_t kTempRandomDigits = 8;

// strerror() is not thread-safe; the generic category uses strerror_r.
std::string errno_text(int err) { return std::generic_category().message(err); }

ErrorCode code_for_errno(int err) {
  return (err == EACCES || err == EPERM) ? ErrorCode::kPermission : ErrorCode::kIo;
}

// "<path>: <what>: <strerror>", coded after errno.
Error sys_error(const fs::path& path, std::string_view what, int err) {
  std::string msg = path.string();
  msg += ": ";
  msg += what;
  msg += ": ";
  msg += errno_text(err);
  return make_error(code_for_errno(err), std::move(msg));
}

// Quotes a path for the "run: ..." hints so that they can be pasted into a
// shell as they are; plain paths stay unquoted to keep messages readable.
std::string shell_quote(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("/._-+:,@%=").find(c) != std::string_view::npos;
    if (!ok) {
      plain = false;
      break;
    }
  }
  if (plain) return s;
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  out += '\'';
  return out;
}

std::string octal_mode(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// close() that keeps errno of an earlier failure intact; used on error paths
// where the first error is the one worth reporting.
void close_quietly(int fd) {
  int saved = errno;
  ::close(fd);
  errno = saved;
}

// 32 random bits for temp names.  getrandom() is fork-safe (a forked child
// does not repeat its parent's sequence) and needs no shared state; the
// fallback only has to make collisions unlikely, because O_EXCL catches them.
std::uint32_t random32() {
  std::uint32_t v = 0;
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof v)) return v;
  static std::atomic<std::uint32_t> counter{0};
  auto t = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return static_cast<std::uint32_t>(t ^ (t >> 32)) ^ (counter.fetch_add(0x9e3779b9u) + 1);
}

std::string temp_name_for(const std::string& file_name) {
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, ".tmp.%ld.%08x", static_cast<long>(::getpid()),
                static_cast<unsigned>(random32()));
  return file_name + suffix;
}

// write() until everything is written; EINTR and short writes are retried.
bool write_all(int fd, std::string_view data) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    // Linux transfers at most ~2 GiB per call anyway; asking for less keeps
    // the count representable in ssize_t everywhere.
    std::size_t chunk = left < (std::size_t{1} << 30) ? left : (std::size_t{1} << 30);
    ssize_t n = ::write(fd, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {  // cannot happen for regular files; do not spin if it does
      errno = EIO;
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

// fsync() of the directory makes the rename durable.  Some filesystems
// cannot sync directories and say EINVAL; the rename is then as durable as
// that filesystem can make it, which is not an error of ours.
Status sync_directory(const fs::path& target, const DirFd& dir) {
  int rc;
  do rc = ::fsync(dir.fd());
  while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EINVAL)
    return sys_error(target, "replaced, but cannot sync directory " + dir.path().string(), errno);
  return {};
}

// The temp file, the rename and the sync all go through `dir`'s descriptor:
// the file lands in the directory that descriptor names, whatever its path
// names by now.  `path` is for messages.
Status write_atomic_at(const DirFd& dir, const std::string& file_name, const fs::path& path,
                       const std::string_view* pieces, std::size_t count, unsigned mode) {
  if (mode > 07777) {
    return make_error(ErrorCode::kInvalidArgument,
                      path.string() + ": invalid file mode " + octal_mode(static_cast<mode_t>(mode)));
  }
  if (file_name.empty() || file_name == "." || file_name == ".." || file_name.find('/') != std::string::npos)
    return make_error(ErrorCode::kInvalidArgument, path.string() + ": not a file name in its directory");

  std::string tmp;
  int fd = -1;
  // A name collision needs the same pid and the same 32 random bits: retry a
  // few times rather than fail on the astronomically unlikely case.
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    tmp = temp_name_for(file_name);
    do fd = dir.open_file(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return sys_error(path, "cannot create temp file " + tmp, errno);

  auto fail = [&](std::string_view what) -> Status {
    int err = errno;
    if (fd >= 0) ::close(fd);
    ::unlinkat(dir.fd(), tmp.c_str(), 0);
    return sys_error(path, what, err);
  };

  // open() applied the umask; fchmod() makes the mode exactly `mode`, so that
  // a restrictive umask cannot hide entries from the group that shares the
  // cache and a permissive one cannot expose them further.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return fail("cannot set mode of temp file");
  for (std::size_t i = 0; i < count; ++i)
    if (!write_all(fd, pieces[i])) return fail("cannot write temp file");
  // Without fsync before rename, a crash could leave the new name pointing
  // at a file whose data never reached the disk (zero length on ext4).
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) return fail("cannot sync temp file");
  rc = ::close(fd);
  // On Linux the descriptor is gone even when close() fails; EINTR only means
  // the close was interrupted after the data was already synced above.
  int close_errno = errno;
  fd = -1;
  if (rc != 0 && close_errno != EINTR) {
    errno = close_errno;
    return fail("cannot close temp file");
  }
  if (::renameat(dir.fd(), tmp.c_str(), dir.fd(), file_name.c_str()) != 0)
    return fail("cannot rename temp file over it");
  return sync_directory(path, dir);
}

// By path: the parent directory is opened (following links, as a path
// given by the caller means) and the rest happens through it.
Status write_atomic_impl(const fs::path& path, const std::string_view* pieces, std::size_t count, unsigned mode) {
  if (path.empty()) return make_error(ErrorCode::kInvalidArgument, "write_file_atomic: empty path");
  if (!path.has_filename())
    return make_error(ErrorCode::kInvalidArgument, path.string() + ": not a file path (ends with a separator)");
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  int dfd;
  do dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (dfd < 0 && errno == EINTR);
  if (dfd < 0) return sys_error(path, "cannot open its directory", errno);
  return write_atomic_at(DirFd::adopt(dfd, parent), path.filename().string(), path, pieces, count, mode);
}

// Parses the "<pid>" of a temp name; is_temp_file_name() must hold.
long long temp_name_pid(std::string_view name) {
  std::string_view rest = name.substr(0, name.size() - kTempRandomDigits - 1);
  std::size_t dot = rest.rfind('.');
  long long pid = 0;
  for (char c : rest.substr(dot + 1)) pid = pid * 10 + (c - '0');
  return pid;
}

bool process_gone(long long pid) {
  // pid 0 and negative pids address process groups in kill(); a name with
  // such a pid was not made by write_file_atomic and has no live writer.
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return true;
  // EPERM means the process exists but belongs to another user.
  return ::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH;
}

std::chrono::nanoseconds age_of(const struct stat& st) {
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  auto to_ns = [](const struct timespec& ts) {
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  return to_ns(now) - to_ns(st.st_mtim);
}

// Where a lock file is: `name` relative to `dirfd` (a cache directory's
// descriptor, or AT_FDCWD with the whole path); `path` names it in messages.
struct LockPlace {
  int dirfd;
  const char* name;
  const fs::path& path;
};

Result<int> open_lock_file(const LockPlace& at) {
  int fd;
  do fd = ::openat(at.dirfd, at.name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return sys_error(at.path, "cannot open lock file", errno);
  return fd;
}

// flock() locks the inode behind `fd`.  If the lock file was removed or
// replaced between our open() and flock(), another process may open the new
// file and lock that one: both would believe they hold the lock.  So a lock
// only counts if `path` still names the locked inode.
bool still_names(const LockPlace& at, int fd) {
  struct stat by_fd {}, by_path {};
  if (::fstat(fd, &by_fd) != 0 || ::fstatat(at.dirfd, at.name, &by_path, AT_SYMLINK_NOFOLLOW) != 0) return false;
  return by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

enum class LockAttempt { kTaken, kBusy, kRetry, kFailed };

// One non-blocking attempt.  On kTaken *fd_out holds the locked descriptor;
// on kFailed *error says why.
LockAttempt try_lock_once(const LockPlace& at, int* fd_out, Error* error) {
  auto fd = open_lock_file(at);
  if (!fd) {
    *error = fd.error();
    return LockAttempt::kFailed;
  }
  int rc;
  do rc = ::flock(*fd, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    ::close(*fd);
    if (err == EWOULDBLOCK) return LockAttempt::kBusy;
    *error = sys_error(at.path, "cannot lock", err);
    return LockAttempt::kFailed;
  }
  if (!still_names(at, *fd)) {
    ::close(*fd);
    return LockAttempt::kRetry;
  }
  *fd_out = *fd;
  return LockAttempt::kTaken;
}

Result<std::string> read_open_file(int fd, const fs::path& path, std::uint64_t max_size);
Status check_private_stat(const std::string& name, const struct stat& st);

}  // namespace

Status write_file_atomic(const fs::path& path, std::string_view data, unsigned mode) {
  return write_atomic_impl(path, &data, 1, mode);
}

Status write_file_atomic(const fs::path& path, const std::vector<std::string_view>& pieces, unsigned mode) {
  return write_atomic_impl(path, pieces.data(), pieces.size(), mode);
}

Status write_file_atomic(const DirFd& dir, std::string_view name, std::string_view data, unsigned mode) {
  return write_atomic_at(dir, std::string(name), dir.path_of(name), &data, 1, mode);
}

Result<std::string> read_file(const fs::path& path, std::uint64_t max_size, bool no_follow) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (no_follow ? O_NOFOLLOW : 0));
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return sys_error(path, "cannot open", errno);
  return read_open_file(fd, path, max_size);
}

Result<std::string> read_file(const DirFd& dir, std::string_view name, std::uint64_t max_size) {
  const fs::path path = dir.path_of(name);
  int fd;
  // O_NONBLOCK: a FIFO planted as a cache file would block open() (and the
  // daemon's thread) until a writer came; regular files ignore the flag.
  do fd = dir.open_file(name, O_RDONLY | O_NONBLOCK);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    // O_NOFOLLOW says ELOOP, whose text ("Too many levels of symbolic
    // links") hides what happened.
    if (errno == ELOOP) return make_error(ErrorCode::kIo, path.string() + ": is a symbolic link, not a cache file; not followed");
    return sys_error(path, "cannot open", errno);
  }
  return read_open_file(fd, path, max_size);
}

namespace {

// Reads all of `fd` (closed on return); `path` names it in messages.
Result<std::string> read_open_file(int fd, const fs::path& path, std::uint64_t max_size) {
  // Closes on every return, including the bad_alloc ones.
  struct FdGuard {
    int fd;
    ~FdGuard() { close_quietly(fd); }
  } guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return sys_error(path, "cannot stat", errno);
  // A FIFO or device would block or never end; cache files are regular.
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::kIo, path.string() + ": not a regular file");
  auto too_big = [&](std::uint64_t size) {
    return make_error(ErrorCode::kIo, path.string() + ": " + std::to_string(size) +
                                          " bytes, more than the limit of " + std::to_string(max_size) + " bytes");
  };
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_size) return too_big(size);
  std::string out;
  try {
    // One byte more than the size, so that a file that grew since fstat()
    // is noticed, and one that did not ends with a single read() of 0.
    out.resize(static_cast<std::size_t>(size) + 1);
    std::size_t have = 0;
    for (;;) {
      if (have == out.size()) {
        if (have > max_size) return too_big(have);
        out.resize(out.size() + out.size() / 2 + 4096);
      }
      ssize_t n = ::read(fd, out.data() + have, out.size() - have);
      if (n < 0) {
        if (errno == EINTR) continue;
        return sys_error(path, "cannot read", errno);
      }
      if (n == 0) break;
      have += static_cast<std::size_t>(n);
    }
    if (have > max_size) return too_big(have);
    out.resize(have);
  } catch (const std::exception&) {  // bad_alloc, or length_error past max_size()
    return make_error(ErrorCode::kResourceLimit,
                      path.string() + ": " + std::to_string(size) + " bytes do not fit in memory");
  }
  return out;
}

}  // namespace

bool is_temp_file_name(std::string_view name) {
  // "<name>.tmp.<pid>.<8 lowercase hex>", <name> non-empty.
  if (name.size() < kTempRandomDigits + 1) return false;
  std::string_view random = name.substr(name.size() - kTempRandomDigits);
  for (char c : random)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  std::string_view rest = name.substr(0, name.size() - kTempRandomDigits);
  if (rest.back() != '.') return false;
  rest.remove_suffix(1);
  std::size_t digits = 0;
  while (digits < rest.size() && rest[rest.size() - 1 - digits] >= '0' && rest[rest.size() - 1 - digits] <= '9')
    ++digits;
  // pid_t is 32 bits: more than 10 digits cannot be a pid.
  if (digits == 0 || digits > 10) return false;
  rest.remove_suffix(digits);
  if (rest.size() <= kTempMarker.size() || rest.substr(rest.size() - kTempMarker.size()) != kTempMarker) return false;
  return true;
}

std::size_t remove_stale_temp_files(const fs::path& dir, std::chrono::seconds min_age) {
  int dfd;
  do dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (dfd < 0 && errno == EINTR);
  if (dfd < 0) return 0;
  return remove_stale_temp_files(DirFd::adopt(dfd, dir), min_age);
}

std::size_t remove_stale_temp_files(const DirFd& dir, std::chrono::seconds min_age) {
  std::size_t removed = 0;
  for (const std::string& name : dir.list()) {
    if (!is_temp_file_name(name)) continue;
    // lstat: a symlink that happens to have a temp name is judged (and
    // removed) itself; its target is never touched.
    auto st = dir.stat(name);
    if (!st || S_ISDIR(st->st_mode)) continue;
    // The age test covers a recycled pid: a writer never takes as long as
    // min_age, so an old temp file is abandoned whoever has its pid now.
    bool stale = process_gone(temp_name_pid(name)) || age_of(*st) >= min_age;
    if (stale && ::unlinkat(dir.fd(), name.c_str(), 0) == 0) ++removed;
  }
  return removed;
}

namespace {

// FileLock::acquire: the locked descriptor.
Result<int> lock_at(const LockPlace& at, std::chrono::milliseconds timeout) {
  const fs::path& path = at.path;
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int fd = -1;
    Error error;
    switch (try_lock_once(at, &fd, &error)) {
      case LockAttempt::kTaken: return fd;
      case LockAttempt::kFailed: return error;
      case LockAttempt::kRetry: continue;  // the file was replaced; lock the new one
      case LockAttempt::kBusy: break;
    }
    auto now = Clock::now();
    if (now >= deadline) {
      return make_error(ErrorCode::kResourceLimit, path.string() + ": still locked by another holder after " +
                                                       std::to_string(timeout.count()) + " ms");
    }
    // flock() cannot wait with a timeout, and a blocking flock() interrupted
    // by an alarm signal would disturb the caller's signal handling; polling
    // every 15 ms costs nothing next to a compile that takes seconds.
    auto nap = std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(15));
    std::this_thread::sleep_for(std::min(nap, deadline - now));
  }
}

}  // namespace

Result<FileLock> FileLock::acquire(const fs::path& path, std::chrono::milliseconds timeout) {
  auto fd = lock_at(LockPlace{AT_FDCWD, path.c_str(), path}, timeout);
  if (!fd) return fd.error();
  return FileLock(*fd);
}

Result<FileLock> FileLock::acquire(const DirFd& dir, std::string_view name, std::chrono::milliseconds timeout) {
  const std::string n(name);
  const fs::path path = dir.path_of(name);
  auto fd = lock_at(LockPlace{dir.fd(), n.c_str(), path}, timeout);
  if (!fd) return fd.error();
  return FileLock(*fd);
}

Result<FileLock> FileLock::try_acquire(const fs::path& path) {
  auto lock = acquire(path, std::chrono::milliseconds(0));
  if (!lock && lock.error().code == ErrorCode::kResourceLimit)
    return make_error(ErrorCode::kResourceLimit, path.string() + ": locked by another holder");
  return lock;
}

Result<FileLock> FileLock::try_acquire(const DirFd& dir, std::string_view name) {
  auto lock = acquire(dir, name, std::chrono::milliseconds(0));
  if (!lock && lock.error().code == ErrorCode::kResourceLimit)
    return make_error(ErrorCode::kResourceLimit, dir.path_of(name).string() + ": locked by another holder");
  return lock;
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

// Closing the last descriptor of the open file description releases the
// flock; no explicit LOCK_UN, which would also release it for a forked child
// that still shares the description.
FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

Status ensure_private_dir(const fs::path& dir_in) {
  if (dir_in.empty()) return make_error(ErrorCode::kInvalidArgument, "cache directory: empty path");
  // "a/b/" names the same directory as "a/b"; drop the empty last component
  // so that parent_path() walks upwards.
  fs::path dir = dir_in.has_filename() ? dir_in : dir_in.parent_path();
  if (dir.empty()) dir = dir_in;

  // Find the missing components, deepest first.  Only these are created and
  // chmod()ed: an existing directory's mode is its owner's choice (and the
  // check below says what to change if it is unsafe).
  std::vector<fs::path> missing;
  for (fs::path cur = dir; !cur.empty();) {
    struct stat st {};
    if (::lstat(cur.c_str(), &st) == 0) break;
    if (errno != ENOENT) return sys_error(cur, "cannot stat", errno);
    missing.push_back(cur);
    fs::path parent = cur.parent_path();
    if (parent == cur) break;
    cur = std::move(parent);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0750) != 0) {
      if (errno == EEXIST) continue;  // made by a concurrent process: not ours to chmod
      return sys_error(*it, "cannot create directory", errno);
    }
    // mkdir() applied the umask; the cache's group must still be able to read.
    if (::chmod(it->c_str(), 0750) != 0) return sys_error(*it, "cannot set mode 0750", errno);
  }
  return check_private_dir(dir);
}

Status check_private_dir(const fs::path& dir) {
  const std::string name = dir.string();
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return make_error(ErrorCode::kIo,
                        name + ": does not exist; run: mkdir -p -m 0750 " + shell_quote(name));
    }
    return sys_error(dir, "cannot stat", err);
  }
  // A symlink could be re-pointed by whoever owns the directory holding it,
  // whatever the target's permissions are.
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    fs::path target = fs::read_symlink(dir, ec);
    std::string hint = ec ? std::string("the real directory") : shell_quote(target.string());
    return make_error(ErrorCode::kPermission,
                      name + ": is a symbolic link, not a directory; use " + hint + " instead");
  }
  return check_private_stat(name, st);
}

Status check_private_dir(const DirFd& dir) {
  struct stat st {};
  if (::fstat(dir.fd(), &st) != 0) return sys_error(dir.path(), "cannot stat", errno);
  return check_private_stat(dir.path().string(), st);
}

namespace {

// The owner and mode rules of check_private_dir() on a stat of the directory.
Status check_private_stat(const std::string& name, const struct stat& st) {
  if (!S_ISDIR(st.st_mode)) {
    return make_error(ErrorCode::kIo,
                      name + ": not a directory; remove it or choose another directory");
  }
  const uid_t me = ::geteuid();
  // Root can replace anything anyway, so a root-owned directory is as safe as
  // our own, provided the mode check below passes too.
  if (st.st_uid != me && st.st_uid != 0) {
    return make_error(ErrorCode::kPermission, name + ": owned by uid " + std::to_string(st.st_uid) +
                                                  ", not by this user (uid " + std::to_string(me) +
                                                  "); run: chown " + std::to_string(me) + " " + shell_quote(name));
  }
  if (st.st_mode & 022) {
    return make_error(ErrorCode::kPermission, name + ": writable by group/others (mode " + octal_mode(st.st_mode) +
                                                  "); run: chmod go-w " + shell_quote(name));
  }
  return {};
}

}  // namespace

}  // namespace regexd::cache
