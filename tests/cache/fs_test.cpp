// Tests of the cache's filesystem primitives: atomic replacement (including
// writers killed with SIGKILL mid-write), stale temp file cleanup, flock
// between processes, and the permission rules of cache directories.
//
// Every test works in its own mkdtemp() directory under the temp directory,
// removed afterwards.  Cross-process behaviour is tested with fork(): the
// children never use GoogleTest assertions (they would report into the
// child's copy of the test); they return an exit code the parent checks.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "regexd/cache/fs.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using regexd::ErrorCode;
using regexd::cache::check_private_dir;
using regexd::cache::ensure_private_dir;
using regexd::cache::FileLock;
using regexd::cache::is_temp_file_name;
using regexd::cache::read_file;
using regexd::cache::remove_stale_temp_files;
using regexd::cache::write_file_atomic;

namespace {

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return static_cast<mode_t>(-1);
  return st.st_mode & 07777;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void put(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
}

// A child process, killed and reaped on destruction if the parent's test
// returns early, so that a failed assertion never leaves a process behind.
class Child {
 public:
  // Runs `body` in a forked child whose exit code is body's result.
  explicit Child(const std::function<int()>& body) {
    pid_ = ::fork();
    if (pid_ == 0) ::_exit(body());
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { kill(); }
  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  // SIGKILL and reap, if still running.  (Never kill(-1, ...): that would
  // signal every process we may signal.)
  // Returns the waitpid() status (0 if already reaped).
  int kill() {
    if (pid_ <= 0) return 0;
    ::kill(pid_, SIGKILL);
    return wait();
  }
  // Waits for the child; returns the waitpid() status.
  int wait() {
    int status = 0;
    if (pid_ <= 0) return status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }
  // Has the child ended?  Reaps it if so.
  bool ended(int* status) {
    if (pid_ <= 0) return true;
    if (::waitpid(pid_, status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }

 private:
  pid_t pid_ = -1;
};

// One-byte signals between parent and child.
class Pipe {
 public:
  Pipe() {
    if (::pipe2(fds_, O_CLOEXEC) != 0) fds_[0] = fds_[1] = -1;
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() {
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  bool valid() const { return fds_[0] >= 0; }
  bool signal() { char c = 's'; return ::write(fds_[1], &c, 1) == 1; }
  // False if the other side closed its end (e.g. died) without signalling.
  bool wait() {
    char c;
    ssize_t n;
    do n = ::read(fds_[0], &c, 1);
    while (n < 0 && errno == EINTR);
    return n == 1;
  }
  void close_write_end() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2] = {-1, -1};
};

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "regexd-fs-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << tmpl << ": " << std::strerror(errno);
    dir_ = tmpl;
    // A known umask, so that tests about modes do not depend on the shell.
    saved_umask_ = ::umask(022);
  }
  void TearDown() override {
    ::umask(saved_umask_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path dir_;
  mode_t saved_umask_ = 022;
};

// ---------------------------------------------------------------- writes

TEST_F(FsTest, AtomicWriteSetsExactModeWhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}}) {
    ::umask(mask);
    fs::path p = dir_ / ("entry-umask-" + std::to_string(mask));
    auto st = write_file_atomic(p, "content");
    ASSERT_TRUE(st.ok()) << st.error().message;
    EXPECT_EQ(mode_of(p), 0640) << "umask " << std::oct << mask;
    auto got = read_file(p);
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(*got, "content");

    fs::path q = dir_ / ("other-mode-" + std::to_string(mask));
    ASSERT_TRUE(write_file_atomic(q, "x", 0604).ok());
    EXPECT_EQ(mode_of(q), 0604) << "umask " << std::oct << mask;
  }
}

TEST_F(FsTest, AtomicWriteReplacesAndLeavesNoTempFile) {
  fs::path p = dir_ / "entry";
  ASSERT_TRUE(write_file_atomic(p, "first version, the longer one").ok());
  ::chmod(p.c_str(), 0600);
  struct stat before {};
  ASSERT_EQ(::stat(p.c_str(), &before), 0);
  // A reader that opened the old file keeps seeing all of the old content.
  std::ifstream old_reader(p, std::ios::binary);

  auto st = write_file_atomic(p, "second");
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(*read_file(p), "second");
  EXPECT_EQ(mode_of(p), 0640);
  struct stat after {};
  ASSERT_EQ(::stat(p.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino) << "replaced in place, not by rename";
  std::string old_content((std::istreambuf_iterator<char>(old_reader)), std::istreambuf_iterator<char>());
  EXPECT_EQ(old_content, "first version, the longer one");
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"entry"});
}

TEST_F(FsTest, AtomicWriteFromPieces) {
  fs::path p = dir_ / "entry";
  std::string big(1 << 20, 'z');
  auto st = write_file_atomic(p, std::vector<std::string_view>{"head:", "", big, ":tail"});
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(*read_file(p), "head:" + big + ":tail");
  EXPECT_EQ(mode_of(p), 0640);

  ASSERT_TRUE(write_file_atomic(p, std::vector<std::string_view>{}, 0600).ok());
  EXPECT_EQ(*read_file(p), "");
  EXPECT_EQ(mode_of(p), 0600);
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"entry"});
}

TEST_F(FsTest, AtomicWriteIntoMissingDirectoryNamesThePath) {
  fs::path p = dir_ / "missing" / "entry";
  auto st = write_file_atomic(p, "data");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_NE(st.error().message.find(p.string()), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("No such file or directory"), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
}

TEST_F(FsTest, AtomicWriteFailureRemovesTheTempFile) {
  // rename() of a file over a directory fails after the temp file was
  // written: the error path must clean it up.
  fs::path p = dir_ / "entry";
  fs::create_directory(p);
  auto st = write_file_atomic(p, "data");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_NE(st.error().message.find(p.string() + ": "), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("Is a directory"), std::string::npos) << st.error().message;
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"entry"});
}

TEST_F(FsTest, AtomicWriteRejectsInvalidArguments) {
  EXPECT_EQ(write_file_atomic("", "x").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_file_atomic(dir_.string() + "/", "x").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_file_atomic(dir_ / "entry", "x", 010000).error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(names_in(dir_).empty());
}

// A writer that dies inside write() (here: SIGXFSZ from a file size limit,
// which kills it at a known point) leaves the old content intact and exactly
// one temp file, named by the documented pattern with its pid.
TEST_F(FsTest, WriterDyingMidWriteLeavesOldContentAndANamedTempFile) {
  fs::path p = dir_ / "entry";
  ASSERT_TRUE(write_file_atomic(p, "old content").ok());
  const std::string big(1 << 20, 'n');
  Child child([&] {
    struct rlimit no_core {0, 0}, small {4096, 4096};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::setrlimit(RLIMIT_FSIZE, &small);
    ::signal(SIGXFSZ, SIG_DFL);
    (void)write_file_atomic(p, big);
    return 1;  // not reached: the write past 4096 bytes raises SIGXFSZ
  });
  ASSERT_TRUE(child.started());
  pid_t pid = child.pid();
  int status = child.wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) << "status " << status;

  EXPECT_EQ(*read_file(p), "old content");
  auto names = names_in(dir_);
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0], "entry");
  const std::string& tmp = names[1];
  EXPECT_TRUE(is_temp_file_name(tmp)) << tmp;
  std::string prefix = "entry.tmp." + std::to_string(pid) + ".";
  EXPECT_EQ(tmp.rfind(prefix, 0), 0u) << tmp;
  EXPECT_EQ(tmp.size(), prefix.size() + 8) << tmp;
  EXPECT_EQ(mode_of(dir_ / tmp), 0640);

  EXPECT_EQ(remove_stale_temp_files(dir_), 1u);
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"entry"});
}

// The property the cache relies on: whenever a writer is killed, readers see
// one complete version.  A child rewrites the file in a loop with two large
// contents of different sizes (so a torn or truncated file cannot pass); the
// parent kills it with SIGKILL after varying delays.
TEST_F(FsTest, AtomicWriteSurvivesSigkillAtAnyMoment) {
  const fs::path p = dir_ / "entry";
  const std::string a = std::string(8 << 20, 'a') + "\nend of version A\n";
  const std::string b = std::string(6 << 20, 'b') + "\nend of version B\n";
  std::mt19937 rng(20261123);  // fixed seed: the same delays on every run
  std::uniform_int_distribution<int> delay_us(0, 40000);
  int rounds_with_b = 0, rounds_with_temp = 0;
  for (int round = 0; round < 20; ++round) {
    Pipe ready;
    ASSERT_TRUE(ready.valid());
    Child child([&] {
      // The first complete write happens before "ready", so the file
      // exists whenever the parent can kill the child.
      if (!write_file_atomic(p, a).ok()) return 2;
      if (!ready.signal()) return 3;
      for (bool use_b = true;; use_b = !use_b)
        if (!write_file_atomic(p, use_b ? b : a).ok()) return 4;
    });
    ASSERT_TRUE(child.started());
    ready.close_write_end();
    ASSERT_TRUE(ready.wait()) << "round " << round << ": writer failed, status " << child.wait();
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    int status = child.kill();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": writer ended by itself, status " << status;

    auto got = read_file(p);
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_TRUE(*got == a || *got == b) << "round " << round << ": torn file of " << got->size() << " bytes";
    if (*got == b) ++rounds_with_b;
    for (const auto& name : names_in(dir_)) {
      if (name == "entry") continue;
      EXPECT_TRUE(is_temp_file_name(name)) << "unexpected file " << name;
      ++rounds_with_temp;
    }
    // Every leftover belongs to a dead writer, whatever its age.
    remove_stale_temp_files(dir_);
    ASSERT_EQ(names_in(dir_), std::vector<std::string>{"entry"}) << "round " << round;
  }
  // Which version won and where the kill hit depends on disk speed; the
  // outcome checked above does not.
  std::printf("[          ] %d/20 rounds ended with version B, %d left a temp file\n", rounds_with_b,
              rounds_with_temp);
}

// ---------------------------------------------------------------- reads

TEST_F(FsTest, ReadFileReturnsExactBytes) {
  fs::path p = dir_ / "bin";
  std::string data("\0\x01\xff binary\n\0", 12);
  put(p, data);
  auto got = read_file(p);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(*got, data);

  put(dir_ / "empty", "");
  EXPECT_EQ(*read_file(dir_ / "empty"), "");
}

TEST_F(FsTest, ReadFileRefusesFilesOverTheLimit) {
  fs::path p = dir_ / "hundred";
  put(p, std::string(100, 'h'));
  EXPECT_TRUE(read_file(p, 100).ok());
  auto got = read_file(p, 99);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::kIo);
  EXPECT_NE(got.error().message.find(p.string()), std::string::npos) << got.error().message;
  EXPECT_NE(got.error().message.find("100 bytes"), std::string::npos) << got.error().message;
}

TEST_F(FsTest, ReadFileErrorsNameThePath) {
  auto missing = read_file(dir_ / "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
  EXPECT_EQ(missing.error().message, (dir_ / "missing").string() + ": cannot open: No such file or directory");

  auto directory = read_file(dir_);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().message, dir_.string() + ": not a regular file");

  // A FIFO would block a reader forever; it is refused before any read().
  fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Child opener([&] {
    // open(O_RDONLY) of a FIFO waits for a writer: provide one.
    int fd = ::open(fifo.c_str(), O_WRONLY);
    ::pause();
    return fd < 0;
  });
  ASSERT_TRUE(opener.started());
  auto got = read_file(fifo);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().message, fifo.string() + ": not a regular file");
}

// ---------------------------------------------------------------- temp files

TEST_F(FsTest, TempFileNamePattern) {
  EXPECT_TRUE(is_temp_file_name("abc.entry.tmp.123.0123abcd"));
  EXPECT_TRUE(is_temp_file_name("x.tmp.4194304.deadbeef"));
  EXPECT_TRUE(is_temp_file_name("x.tmp.1.00000000"));

  EXPECT_FALSE(is_temp_file_name("abc.entry"));
  EXPECT_FALSE(is_temp_file_name(""));
  EXPECT_FALSE(is_temp_file_name(".tmp.123.0123abcd"));        // no target name
  EXPECT_FALSE(is_temp_file_name("x.tmp.123.0123abc"));        // 7 hex digits
  EXPECT_FALSE(is_temp_file_name("x.tmp.123.0123abcde"));      // 9 hex digits
  EXPECT_FALSE(is_temp_file_name("x.tmp.123.0123abcg"));       // not hex
  EXPECT_FALSE(is_temp_file_name("x.tmp.123.0123ABCD"));       // writer uses lowercase
  EXPECT_FALSE(is_temp_file_name("x.tmp..0123abcd"));          // no pid
  EXPECT_FALSE(is_temp_file_name("x.tmp.12a.0123abcd"));       // pid not decimal
  EXPECT_FALSE(is_temp_file_name("x.tmp.12345678901.0123abcd"));  // longer than any pid
  EXPECT_FALSE(is_temp_file_name("x.tmp-123.0123abcd"));
  EXPECT_FALSE(is_temp_file_name("x.tmp.123_0123abcd"));
  EXPECT_FALSE(is_temp_file_name("x.tmp.123.0123abcd.entry"));
}

TEST_F(FsTest, RemoveStaleKeepsYoungTempFilesOfLiveWriters) {
  const std::string live = "e.entry.tmp." + std::to_string(::getpid()) + ".0badcafe";
  put(dir_ / live, "in progress");
  put(dir_ / "e.entry", "entry");
  put(dir_ / "notes.tmp.1", "not a temp name");
  fs::create_directory(dir_ / "d.tmp.1.00000000");  // a directory is never removed
  // Old non-temp files are not this function's business.
  auto old = fs::file_time_type::clock::now() - 3h;
  fs::last_write_time(dir_ / "e.entry", old);
  fs::last_write_time(dir_ / "notes.tmp.1", old);
  fs::last_write_time(dir_ / "d.tmp.1.00000000", old);

  EXPECT_EQ(remove_stale_temp_files(dir_, 1h), 0u);
  EXPECT_TRUE(fs::exists(dir_ / live));

  // Older than min_age: abandoned even though the pid runs (pid reuse).
  fs::last_write_time(dir_ / live, fs::file_time_type::clock::now() - 2h);
  EXPECT_EQ(remove_stale_temp_files(dir_, 1h), 1u);
  EXPECT_EQ(names_in(dir_), (std::vector<std::string>{"d.tmp.1.00000000", "e.entry", "notes.tmp.1"}));
}

TEST_F(FsTest, RemoveStaleRemovesTempFilesOfDeadWriters) {
  Child gone([] { return 0; });
  ASSERT_TRUE(gone.started());
  const pid_t dead = gone.pid();
  gone.wait();
  put(dir_ / ("a.tmp." + std::to_string(dead) + ".12345678"), "");
  // Pids that kill() would take for process groups, and one beyond pid_t,
  // count as dead writers rather than being signalled.
  put(dir_ / "b.tmp.0.12345678", "");
  put(dir_ / "c.tmp.4294967295.12345678", "");
  put(dir_ / "a", "target");

  EXPECT_EQ(remove_stale_temp_files(dir_, 1h), 3u);
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"a"});
  EXPECT_EQ(remove_stale_temp_files(dir_ / "missing"), 0u);
}

// ---------------------------------------------------------------- locks

TEST_F(FsTest, LockTimesOutInAnotherProcessWhileHeld) {
  const fs::path p = dir_ / "key.lock";
  auto held = FileLock::acquire(p, 1s);
  ASSERT_TRUE(held.ok()) << held.error().message;
  EXPECT_EQ(mode_of(p), 0640);
  Child other([&] {
    auto t0 = std::chrono::steady_clock::now();
    auto waited = FileLock::acquire(p, 100ms);
    auto elapsed = std::chrono::steady_clock::now() - t0;
    if (waited.ok()) return 10;
    if (waited.error().code != ErrorCode::kResourceLimit) return 11;
    if (waited.error().message.find(p.string()) == std::string::npos) return 12;
    if (elapsed < 100ms) return 13;
    auto tried = FileLock::try_acquire(p);
    if (tried.ok()) return 14;
    if (tried.error().code != ErrorCode::kResourceLimit) return 15;
    return 0;
  });
  ASSERT_TRUE(other.started());
  int status = other.wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(FsTest, LockIsTakenByAWaiterAfterRelease) {
  const fs::path p = dir_ / "key.lock";
  // The child is forked before the parent locks: a child forked later would
  // inherit the locked descriptor and keep the lock alive after release.
  Pipe go;
  ASSERT_TRUE(go.valid());
  Child waiter([&] {
    go.close_write_end();
    if (!go.wait()) return 20;
    auto lock = FileLock::acquire(p, 10s);
    return lock.ok() ? 0 : 21;
  });
  ASSERT_TRUE(waiter.started());
  std::optional<FileLock> held;
  {
    auto r = FileLock::acquire(p, 1s);
    ASSERT_TRUE(r.ok()) << r.error().message;
    held.emplace(std::move(r).value());
  }
  ASSERT_TRUE(go.signal());
  std::this_thread::sleep_for(100ms);
  int status = 0;
  EXPECT_FALSE(waiter.ended(&status)) << "the waiter got the lock while it was held";
  held.reset();
  status = waiter.wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(FsTest, LockIsReleasedWhenItsHolderIsKilled) {
  const fs::path p = dir_ / "key.lock";
  Pipe locked;
  ASSERT_TRUE(locked.valid());
  Child holder([&] {
    auto lock = FileLock::acquire(p, 1s);
    if (!lock.ok() || !locked.signal()) return 30;
    for (;;) ::pause();
  });
  ASSERT_TRUE(holder.started());
  locked.close_write_end();
  ASSERT_TRUE(locked.wait());
  auto busy = FileLock::try_acquire(p);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, ErrorCode::kResourceLimit);

  holder.kill();
  auto free_now = FileLock::try_acquire(p);
  EXPECT_TRUE(free_now.ok()) << free_now.error().message;
}

TEST_F(FsTest, TryAcquireAndMovesInOneProcess) {
  const fs::path p1 = dir_ / "one.lock", p2 = dir_ / "two.lock";
  auto is_free = [](const fs::path& p) { return FileLock::try_acquire(p).ok(); };

  auto a = FileLock::try_acquire(p1);
  ASSERT_TRUE(a.ok()) << a.error().message;
  // Each FileLock has its own open file description, so two in one process
  // exclude each other like two processes do.
  auto again = FileLock::try_acquire(p1);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kResourceLimit);
  EXPECT_EQ(again.error().message.find(p1.string() + ": "), 0u) << again.error().message;
  auto zero_wait = FileLock::acquire(p1, 0ms);
  ASSERT_FALSE(zero_wait.ok());
  EXPECT_EQ(zero_wait.error().code, ErrorCode::kResourceLimit);

  {
    FileLock moved(std::move(a).value());
    EXPECT_FALSE(is_free(p1)) << "move construction released the lock";
    auto b = FileLock::try_acquire(p2);
    ASSERT_TRUE(b.ok());
    moved = std::move(b).value();  // releases p1, takes over p2
    EXPECT_TRUE(is_free(p1));
    EXPECT_FALSE(is_free(p2));
    moved = std::move(moved);  // self-move keeps the lock
    EXPECT_FALSE(is_free(p2));
  }
  EXPECT_TRUE(is_free(p2));
}

TEST_F(FsTest, LockInMissingDirectoryFails) {
  const fs::path p = dir_ / "missing" / "key.lock";
  auto lock = FileLock::acquire(p, 50ms);
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.error().code, ErrorCode::kIo);
  EXPECT_EQ(lock.error().message, p.string() + ": cannot open lock file: No such file or directory");
}

// ---------------------------------------------------------------- directories

TEST_F(FsTest, CheckPrivateDirAcceptsDirsOnlyTheOwnerCanWrite) {
  for (mode_t mode : {mode_t{0750}, mode_t{0700}, mode_t{0755}, mode_t{0555}}) {
    fs::path d = dir_ / ("mode-" + std::to_string(mode));
    ASSERT_EQ(::mkdir(d.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(d.c_str(), mode), 0);
    auto st = check_private_dir(d);
    EXPECT_TRUE(st.ok()) << st.error().message;
  }
}

TEST_F(FsTest, CheckPrivateDirRejectsGroupOrOtherWritableDirs) {
  for (mode_t mode : {mode_t{0770}, mode_t{0757}, mode_t{0777}, mode_t{01777}}) {
    fs::path d = dir_ / ("mode-" + std::to_string(mode));
    ASSERT_EQ(::mkdir(d.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(d.c_str(), mode), 0);
    auto st = check_private_dir(d);
    ASSERT_FALSE(st.ok()) << std::oct << mode;
    EXPECT_EQ(st.error().code, ErrorCode::kPermission);
    char mode_text[8];
    std::snprintf(mode_text, sizeof mode_text, "%04o", static_cast<unsigned>(mode));
    EXPECT_EQ(st.error().message,
              d.string() + ": writable by group/others (mode " + mode_text + "); run: chmod go-w " + d.string());
  }
  // The fix command can be pasted into a shell even for awkward names.
  fs::path odd = dir_ / "cache dir";
  ASSERT_EQ(::mkdir(odd.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(odd.c_str(), 0770), 0);
  auto st = check_private_dir(odd);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("run: chmod go-w '" + odd.string() + "'"), std::string::npos)
      << st.error().message;
}

TEST_F(FsTest, CheckPrivateDirRejectsSymlinksFilesAndMissingDirs) {
  fs::path real = dir_ / "real";
  ASSERT_EQ(::mkdir(real.c_str(), 0750), 0);
  fs::path link = dir_ / "link";
  fs::create_directory_symlink(real, link);
  auto st = check_private_dir(link);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kPermission);
  EXPECT_EQ(st.error().message, link.string() + ": is a symbolic link, not a directory; use " + real.string() +
                                    " instead");

  fs::path file = dir_ / "file";
  put(file, "");
  st = check_private_dir(file);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, file.string() + ": not a directory; remove it or choose another directory");

  fs::path missing = dir_ / "missing";
  st = check_private_dir(missing);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_EQ(st.error().message, missing.string() + ": does not exist; run: mkdir -p -m 0750 " + missing.string());
}

// Ownership needs other uids: only root can make them, and the non-root
// side is tested in a child that drops its effective uid.
TEST_F(FsTest, CheckPrivateDirOwnership) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create directories owned by other users";
  constexpr uid_t kUser = 4242, kOther = 4243;
  ASSERT_EQ(::chmod(dir_.c_str(), 0711), 0);  // let the unprivileged child reach its dirs
  fs::path theirs = dir_ / "theirs", mine = dir_ / "mine", root_owned = dir_ / "root";
  for (const auto& d : {theirs, mine, root_owned}) ASSERT_EQ(::mkdir(d.c_str(), 0750), 0);
  ASSERT_EQ(::chown(theirs.c_str(), kOther, static_cast<gid_t>(-1)), 0);
  ASSERT_EQ(::chown(mine.c_str(), kUser, static_cast<gid_t>(-1)), 0);
  ASSERT_EQ(::chmod(root_owned.c_str(), 0755), 0);

  auto st = check_private_dir(theirs);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kPermission);
  EXPECT_EQ(st.error().message,
            theirs.string() + ": owned by uid 4243, not by this user (uid 0); run: chown 0 " + theirs.string());

  Child user([&] {
    if (::seteuid(kUser) != 0) return 40;
    if (!check_private_dir(mine).ok()) return 41;
    if (!check_private_dir(root_owned).ok()) return 42;  // root is trusted
    auto other = check_private_dir(theirs);
    if (other.ok()) return 43;
    if (other.error().message !=
        theirs.string() + ": owned by uid 4243, not by this user (uid 4242); run: chown 4242 " + theirs.string())
      return 44;
    // Root-owned but group-writable is still refused.
    if (::seteuid(0) != 0 || ::chmod(root_owned.c_str(), 0775) != 0 || ::seteuid(kUser) != 0) return 45;
    if (check_private_dir(root_owned).ok()) return 46;
    return 0;
  });
  ASSERT_TRUE(user.started());
  int status = user.wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(FsTest, EnsurePrivateDirCreatesNestedDirsWith0750) {
  // An existing parent keeps its mode: only created directories are chmod()ed.
  ASSERT_EQ(::chmod(dir_.c_str(), 0711), 0);
  for (mode_t mask : {mode_t{0}, mode_t{077}}) {
    ::umask(mask);
    fs::path base = dir_ / ("umask-" + std::to_string(mask));
    fs::path leaf = base / "a" / "b";
    auto st = ensure_private_dir(leaf);
    ASSERT_TRUE(st.ok()) << st.error().message;
    for (const auto& d : {base, base / "a", leaf}) EXPECT_EQ(mode_of(d), 0750) << d << " umask " << std::oct << mask;
    EXPECT_EQ(mode_of(dir_), 0711);
    // Again, now that everything exists; a trailing separator names the same dir.
    EXPECT_TRUE(ensure_private_dir(leaf).ok());
    EXPECT_TRUE(ensure_private_dir(leaf.string() + "/").ok());
  }
  ::umask(022);
  fs::path slash = dir_ / "with-slash" / "";
  ASSERT_TRUE(ensure_private_dir(slash).ok());
  EXPECT_EQ(mode_of(dir_ / "with-slash"), 0750);
}

TEST_F(FsTest, EnsurePrivateDirLeavesExistingDirsAlone) {
  fs::path shared = dir_ / "shared";
  ASSERT_EQ(::mkdir(shared.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(shared.c_str(), 0777), 0);
  auto st = ensure_private_dir(shared);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kPermission);
  EXPECT_NE(st.error().message.find("run: chmod go-w " + shared.string()), std::string::npos) << st.error().message;
  EXPECT_EQ(mode_of(shared), 0777) << "a pre-existing directory was chmod()ed";

  // A child of an unsafe directory is created, but the check is on `dir`
  // itself: the caller checks the parents it cares about (the cache root).
  ASSERT_TRUE(ensure_private_dir(shared / "sub").ok());

  fs::path file = dir_ / "file";
  put(file, "");
  st = ensure_private_dir(file / "sub");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_EQ(st.error().message, (file / "sub").string() + ": cannot stat: Not a directory");

  EXPECT_EQ(ensure_private_dir("").error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
