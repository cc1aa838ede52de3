// Store::prefetch: reading the entry a rule set used last while its rules are
// still being parsed.  The cache key is a hash of the parsed rules, so a
// daemon cannot ask for its entry before parsing them; but the entry it will
// ask for is, nearly always, the one the same rule set used last time.  That
// one is read, checked and deserialized on a thread of its own meanwhile, and
// get() takes it if the key turns out to be the same (ccache's "direct mode"
// has the same shape: a guess from cheap facts, confirmed by the real key).
// A wrong guess costs a core for the length of a load and nothing else.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>

#include "regexd/cache/fs.h"
#include "regexd/cache/store.h"

namespace regexd::cache {

namespace {

// Fills `out` from `fd` at `offset`; false on a short read or an error.
bool read_at(int fd, std::string& out, std::size_t offset) {
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

// The rule-set name an entry file records, from its prologue and header only.
std::optional<std::string> recorded_name(const DirFd& dir, const std::string& file) {
  int fd = dir.open_file(file, O_RDONLY | O_NONBLOCK);  // O_NOFOLLOW, no FIFO block: as read_file
  if (fd < 0) return std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  std::string head(kEntryPrologue, '\0');
  if (!read_at(fd, head, 0)) return std::nullopt;
  std::size_t n = entry_head_size(head);
  if (n == 0 || n > static_cast<std::uint64_t>(st.st_size)) return std::nullopt;
  head.resize(n);
  if (!read_at(fd, head, 0)) return std::nullopt;
  auto name = peek_rule_set_name(head);
  if (!name) return std::nullopt;
  return std::move(*name);
}

}  // namespace

struct Store::Prefetch {
  CacheKey key;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool wanted = true;  // false: get() asked for another key; drop the result
  std::optional<Result<Loaded>> result;
};

std::optional<CacheKey> Store::newest_entry_for(std::string_view rule_set_name) const {
  struct Candidate {
    std::string file;
    CacheKey key;
    std::int64_t mtime_ns;
  };
  std::vector<Candidate> entries;
  for (auto& f : dir_.list()) {
    // Entries only: "<key hex>.rxdb", nothing else of the directory.
    auto key = CacheKey::from_hex(std::string_view(f).substr(0, 32));
    if (!key || entry_file(*key) != f) continue;
    auto st = dir_.stat(f);
    if (!st || !S_ISREG(st->st_mode)) continue;
    entries.push_back(
        {std::move(f), *key, static_cast<std::int64_t>(st->st_mtim.tv_sec) * 1'000'000'000 + st->st_mtim.tv_nsec});
  }
  std::sort(entries.begin(), entries.end(), [](const Candidate& a, const Candidate& b) {
    return a.mtime_ns != b.mtime_ns ? a.mtime_ns > b.mtime_ns : a.file < b.file;
  });
  if (entries.size() > kPrefetchProbes) entries.resize(kPrefetchProbes);
  for (const auto& e : entries)
    if (recorded_name(dir_, e.file) == rule_set_name) return e.key;
  return std::nullopt;
}

void Store::prefetch(std::string_view rule_set_name) {
  {
    std::lock_guard lock(mu_);
    if (prefetch_) return;  // one pending already
  }
  auto key = newest_entry_for(rule_set_name);
  if (!key) return;
  auto p = std::make_shared<Prefetch>();
  p->key = *key;
  std::lock_guard lock(mu_);
  if (prefetch_) return;
  // The previous prefetch's thread has delivered its result (it was taken
  // or dropped, or prefetch_ would be set); it is at most unwinding.
  if (prefetch_thread_.joinable()) prefetch_thread_.join();
  prefetch_ = p;
  prefetch_thread_ = std::jthread([this, p] {
    Result<Loaded> r = make_error(ErrorCode::kIo, "prefetch: not read");
    auto bytes = read_file(dir_, entry_file(p->key), options_.max_entry_size);
    if (bytes) r = decode_local(p->key, *bytes);
    // What a first scan would otherwise compile is compiled here, on two
    // threads: the caller is done parsing by now on SpamAssassin's set and
    // waits for this, its core otherwise idle.
    if (r) r->scanner->prepare_quick(2);
    std::lock_guard plock(p->mu);
    if (p->wanted) p->result = std::move(r);
    p->done = true;
    p->cv.notify_all();
    // Unwanted: `r` (a whole deserialized rule set) is freed here, on this
    // thread, not by whoever dropped it.
  });
}

std::optional<Result<Store::Loaded>> Store::take_prefetch(const CacheKey& key) {
  std::shared_ptr<Prefetch> p;
  {
    std::lock_guard lock(mu_);
    p = std::move(prefetch_);
  }
  if (!p) return std::nullopt;
  std::unique_lock plock(p->mu);
  if (!(p->key == key)) {
    p->wanted = false;
    p->result.reset();
    return std::nullopt;
  }
  p->cv.wait(plock, [&] { return p->done; });
  return std::move(p->result);
}

}  // namespace regexd::cache
