#include "compile_child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "regexd/cache/entry.h"
#include "regexd/cache/key.h"
#include "priority.h"

namespace regexd::server {
namespace {

using Clock = std::chrono::steady_clock;

// What the child writes, in order: u8 status, u32 message length, message,
// u64 entry length, entry bytes (status 'C' compiled, 'H' found in the
// cache, 'E' error: the message says why, no entry follows).
constexpr char kCompiled = 'C', kHit = 'H', kFailed = 'E';

bool write_all(int fd, const void* buf, std::size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// The child's log: straight to stderr with write(2).  The parent's logger
// may have been locked by another thread at the moment of the fork, and
// that lock would never be released in the child.
void child_log(cache::LogLevel level, const std::string& msg) {
  if (level < cache::LogLevel::kWarning) return;
  std::string line = "regexd compile child[" + std::to_string(::getpid()) + "]: " + msg + "\n";
  (void)write_all(2, line.data(), line.size());
}

// The build itself, in whichever process runs it: through `store` when
// there is one (another process may have compiled the entry already), else
// straight from the rules.
Result<ChildBuild> build_here(const engine::RuleSet& rules, const engine::CompileOptions& options,
                              std::string_view name, cache::Store* store) {
  ChildBuild out;
  if (!store) {
    auto got = engine::Scanner::compile(rules, options, nullptr);
    if (!got) return got.error();
    out.scanner = std::move(*got);
    return out;
  }
  auto got = store->get_or_compile(rules, options, name);
  if (!got) return got.error();
  out.from_cache = got->source != cache::LoadResult::Source::kCompiled;
  out.save_error = got->save_error;
  out.scanner = std::move(got->scanner);
  if (out.from_cache && !pcre2_limits_mismatch(*out.scanner, options).empty()) {
    // A resealed entry under this key: compile and replace it.
    auto fresh = engine::Scanner::compile(rules, options, nullptr);
    if (!fresh) return fresh.error();
    out.scanner = std::move(*fresh);
    out.from_cache = false;
    auto st = store->put(store->key_for(rules, options), *out.scanner, name);
    out.save_error = st ? "" : st.error().message;
  }
  return out;
}

[[noreturn]] void child_main(int fd, const engine::RuleSet& rules, const engine::CompileOptions& options,
                             std::string_view name, const cache::Store* parent_store) {
  auto send = [&](char status, const std::string& msg, std::string_view entry) {
    auto len = static_cast<std::uint32_t>(msg.size());
    auto entry_len = static_cast<std::uint64_t>(entry.size());
    bool ok = write_all(fd, &status, 1) && write_all(fd, &len, 4) && write_all(fd, msg.data(), len) &&
              write_all(fd, &entry_len, 8) && write_all(fd, entry.data(), entry.size());
    ::_exit(ok ? 0 : 1);
  };
  try {
    const auto& tags = cache::current_tags();
    if (!tags) send(kFailed, tags.error().message, {});
    std::string note;
    // A Store of its own on the parent's root (the parent's logs through
    // spdlog, see child_log).  With the parent's shared_images, so that its
    // put() writes the new entry's image too: the parent's next start maps
    // it instead of making it (the parent itself scans from the child's
    // databases until then).
    std::unique_ptr<cache::Store> store;
    if (parent_store) {
      cache::StoreOptions so;
      so.root = parent_store->root();
      so.shared_images = parent_store->shared_images();
      so.log = child_log;
      // The remote tier too (a connection of its own: the parent's may be
      // mid-request in another thread at the fork), so the child's compile
      // takes the cross-host lock and publishes its entry.
      if (const cache::RemoteStore* r = parent_store->remote()) so.remote = r->reopen(child_log);
      auto opened = cache::Store::open(so);
      if (opened) store = std::move(*opened);
      else note = "cache: " + opened.error().message;
    }
    auto built = build_here(rules, options, name, store.get());
    if (!built) send(kFailed, built.error().message, {});
    if (store) note = built->save_error;
    auto bytes =
        cache::encode_entry(built->scanner->compiled(), cache::compute_key(rules, options, *tags), *tags, name);
    if (!bytes) send(kFailed, bytes.error().message, {});
    send(built->from_cache ? kHit : kCompiled, note, *bytes);
  } catch (const std::exception& e) {
    send(kFailed, e.what(), {});
  }
  ::_exit(1);  // send() exits; not reached
}

// Reads exactly n bytes before `deadline`; false on timeout, EOF or error.
bool read_all(int fd, void* buf, std::size_t n, Clock::time_point deadline) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    int pr = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 60'000)) + 1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return false;
    if (pr == 0) continue;  // re-check the deadline
    ssize_t r = ::read(fd, p, std::min<std::size_t>(n, 1u << 20));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Owns the child: killed (if still running) and reaped on every path.
class Child {
 public:
  Child(pid_t pid, const std::function<void(pid_t)>& on_child) : pid_(pid), on_child_(on_child) {
    if (on_child_) on_child_(pid_);
  }
  ~Child() {
    // The owner forgets the pid before it is reaped: until then it cannot
    // name another process.
    if (on_child_) on_child_(-1);
    ::kill(pid_, SIGKILL);  // a no-op when it has exited but is not reaped yet
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

 private:
  pid_t pid_;
  const std::function<void(pid_t)>& on_child_;
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string pcre2_limits_mismatch(const engine::Scanner& scanner, const engine::CompileOptions& options) {
  const auto& set = scanner.compiled();
  if (set.pcre2_match_limit == options.pcre2_match_limit && set.pcre2_depth_limit == options.pcre2_depth_limit)
    return {};
  return "PCRE2 match/depth limits " + std::to_string(set.pcre2_match_limit) + "/" +
         std::to_string(set.pcre2_depth_limit) + " differ from " + std::to_string(options.pcre2_match_limit) + "/" +
         std::to_string(options.pcre2_depth_limit) + ", the options in its key";
}

Result<ChildBuild> compile_in_child(const engine::RuleSet& rules, const engine::CompileOptions& options,
                                    std::string_view name, cache::Store* store,
                                    std::chrono::milliseconds timeout, const std::function<void(pid_t)>& on_child,
                                    int nice) {
  const auto& tags = cache::current_tags();
  if (!tags) return tags.error();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return make_error(ErrorCode::kInternal, std::string("cannot start a compile child: pipe: ") + std::strerror(errno));
  Fd read_end{fds[0]}, write_end{fds[1]};
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0)
    return make_error(ErrorCode::kInternal, std::string("cannot start a compile child: fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
    // Nothing of the daemon's but stdio (child_log) and the pipe: not its
    // listening socket, client connections or other children's pipes, which
    // the compile's own children (the probe) would inherit too.  The child
    // opens its own cache directory and remote connection.
    if (write_end.fd > 3) ::close_range(3, static_cast<unsigned>(write_end.fd) - 1, 0);
    ::close_range(static_cast<unsigned>(write_end.fd) + 1, ~0u, 0);
    // Before the compiler starts its threads, which inherit it.
    lower_thread_priority(nice);
    child_main(write_end.fd, rules, options, name, store);
  }
  Child child(pid, on_child);
  ::close(write_end.fd);
  write_end.fd = -1;
  const auto deadline = Clock::now() + timeout;
  auto overran = [&] {
    return make_error(ErrorCode::kResourceLimit, "compile did not finish within " +
                                                     std::to_string(timeout.count()) + " ms (compile.timeout); killed");
  };
  char status = 0;
  std::uint32_t len = 0;
  if (!read_all(read_end.fd, &status, 1, deadline) || !read_all(read_end.fd, &len, 4, deadline)) {
    if (Clock::now() >= deadline) return overran();
    return make_error(ErrorCode::kInternal, "the compile child died without an answer");
  }
  if (len > (1u << 20)) return make_error(ErrorCode::kCorrupt, "compile child: message too long");
  std::string msg(len, '\0');
  std::uint64_t entry_len = 0;
  if (!read_all(read_end.fd, msg.data(), len, deadline) || !read_all(read_end.fd, &entry_len, 8, deadline))
    return Clock::now() >= deadline ? overran() : make_error(ErrorCode::kInternal, "compile child: short answer");
  if (status == kFailed) return make_error(ErrorCode::kCompileFailed, msg);
  if ((status != kCompiled && status != kHit) || entry_len > cache::StoreOptions{}.max_entry_size)
    return make_error(ErrorCode::kCorrupt, "compile child: malformed answer");
  std::string entry(entry_len, '\0');
  if (!read_all(read_end.fd, entry.data(), entry.size(), deadline))
    return Clock::now() >= deadline ? overran() : make_error(ErrorCode::kInternal, "compile child: short entry");
  ChildBuild out;
  out.from_cache = status == kHit;
  out.save_error = std::move(msg);
  // The same checks as a cache file: the bytes crossed a process boundary.
  // (Not store->get(): that would mark the entry as used by this process,
  // which keeps it from the quota's scheduled prune until a restart, and a
  // daemon serving pushed sets would then keep every one it ever built.)
  auto set = cache::decode_entry(entry, cache::compute_key(rules, options, *tags), *tags);
  if (!set) return set.error();
  auto scanner = engine::Scanner::from_compiled(std::move(*set));
  if (!scanner) return scanner.error();
  if (std::string why = pcre2_limits_mismatch(**scanner, options); !why.empty())
    return make_error(ErrorCode::kCorrupt, "compile child: " + why);
  out.scanner = std::move(*scanner);
  return out;
}

Result<ChildBuild> compile_in_process(const engine::RuleSet& rules, const engine::CompileOptions& options,
                                      std::string_view name, cache::Store* store) {
  try {
    return build_here(rules, options, name, store);
  } catch (const std::exception& e) {  // std::bad_alloc: the rules' databases did not fit
    return make_error(ErrorCode::kCompileFailed, e.what());
  }
}

}  // namespace regexd::server
