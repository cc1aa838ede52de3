// regexd::cache::RemoteStore: the second cache tier, shared by hosts (Redis).
//
// Lookup order of a Store that has one: local entry -> remote entry (checked,
// then written into the local cache atomically, as a local save) -> compile
// (then published).  One compile per key across hosts: the compiling host
// holds a lock in Redis with an expiry (SET NX PX), as the flock does across
// processes; a host that finds the lock taken polls for the entry up to
// `wait`, then compiles itself.
//
// Trust: remote bytes are sealed entries (regexd/cache/signing.h).  Nothing
// is loaded unless signed by one of `trusted` for exactly this platform and
// key; a refused entry is one log line and counts in stats().refused.  Only
// a host with a signing key publishes.
//
// Failure: a remote error is never an error of a load, only a miss.  Every
// request is bounded by connect_timeout + io_timeout; after a failure the
// remote is skipped for `retry_after` (so a dead or hanging Redis costs a
// start at most one timeout, not one per rule set), logged once when it goes
// away and once when it is back.  A refused entry is not fetched again for
// `retry_after` either (one log line, not one per lookup of that key).
//
// Thread safety: every member may be called from any thread (one connection,
// guarded by a mutex).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/cache/key.h"
#include "regexd/cache/signing.h"
#include "regexd/engine/result.h"

namespace regexd::cache {

enum class LogLevel;
using LogFn = std::function<void(LogLevel, const std::string&)>;

struct RemoteOptions {
  // "/run/redis/redis.sock" (a path: Unix socket) or "host:port".
  std::string endpoint;
  std::chrono::milliseconds connect_timeout{200};
  std::chrono::milliseconds io_timeout{500};
  // Redis expiry of published entries (refreshed when republished).
  std::chrono::seconds ttl{std::chrono::hours(24 * 30)};
  // Sealed entries larger than this are neither published nor read.
  std::uint64_t max_entry_size = 512ull << 20;
  std::string key_prefix = "regexd:";
  // Expiry of the compile lock (a host that dies while compiling frees the
  // key after this), and how long another host waits for its entry.
  std::chrono::milliseconds lock_expiry{std::chrono::minutes(10)};
  std::chrono::milliseconds wait{std::chrono::minutes(5)};
  std::chrono::milliseconds poll_interval{250};
  // After a failed request the remote is left alone this long.
  std::chrono::milliseconds retry_after{std::chrono::seconds(30)};
  std::optional<SecretKey> signing_key;  // publish only when set
  std::vector<PublicKey> trusted;        // signers whose entries are loaded
};

// The wire under a RemoteStore (Redis; anything with these four verbs).
// Errors are kIo with a one-line message; a member call never takes longer
// than the backend's configured timeouts.
class RemoteBackend {
 public:
  virtual ~RemoteBackend() = default;
  // The value of `key`, nullopt if absent; kResourceLimit if longer than `max_size`.
  virtual Result<std::optional<std::string>> get(const std::string& key, std::uint64_t max_size) = 0;
  virtual Status set(const std::string& key, std::string_view value, std::chrono::milliseconds ttl) = 0;
  // Creates `key` = `token` with an expiry unless it exists; true if created.
  virtual Result<bool> lock(const std::string& key, const std::string& token, std::chrono::milliseconds expiry) = 0;
  // Deletes `key` only if it still holds `token`.
  virtual Status unlock(const std::string& key, const std::string& token) = 0;
};

// Redis through hiredis (cache/src/redis_store.cpp).  Connects lazily.
std::unique_ptr<RemoteBackend> make_redis_backend(const RemoteOptions& options);

struct RemoteStats {
  std::atomic<std::uint64_t> hits{0}, misses{0}, refused{0}, errors{0}, published{0}, lock_waits{0};
};

class RemoteStore {
 public:
  RemoteStore(RemoteOptions options, std::unique_ptr<RemoteBackend> backend, LogFn log = {});
  // Redis at options.endpoint.  kInvalidArgument if the endpoint is empty.
  static Result<std::unique_ptr<RemoteStore>> open_redis(RemoteOptions options, LogFn log = {});
  // A copy with a connection of its own, for a forked child (the parent's
  // connection may be mid-request in another thread at the fork): same
  // options, the same outage and refusal memory, stats from zero.
  std::shared_ptr<RemoteStore> reopen(LogFn log) const;

  // The entry bytes (.rxdb, verified signature, decompressed) of `key` in
  // `platform`'s directory; nullopt when absent, refused or unreachable.
  std::optional<std::string> fetch(std::string_view platform, const CacheKey& key);
  // Seals and stores `entry` (no-op without a signing key).
  void publish(std::string_view platform, const CacheKey& key, std::string_view entry);

  // The cross-host compile lock; released (if still ours) when destroyed.
  class Lock {
   public:
    Lock(Lock&&) noexcept;
    Lock& operator=(Lock&&) = delete;
    ~Lock();

   private:
    friend class RemoteStore;
    Lock(RemoteStore* owner, std::string key, std::string token) : owner_(owner), key_(std::move(key)), token_(std::move(token)) {}
    RemoteStore* owner_;
    std::string key_, token_;
  };
  // Takes the lock, or, when another host holds it, waits up to
  // options.wait for that host's entry: `entry` is set when it came.  A
  // returned Lock means "compile now" (it holds nothing when the remote is
  // unreachable: compiling locally is then the answer).
  std::optional<Lock> lock_or_wait(std::string_view platform, const CacheKey& key, std::optional<std::string>* entry);

  const RemoteStats& stats() const { return stats_; }
  // A signed entry whose contents do not match what it was stored as.
  void note_bad_entry() { stats_.errors++; }
  const RemoteOptions& options() const { return options_; }
  bool available() const;  // false while backing off after a failure

 private:
  std::string redis_key(std::string_view platform, const CacheKey& key) const;
  bool usable();                          // not backing off
  void failed(const std::string& what);  // logs once per outage, starts backing off
  void succeeded();                       // logs once when back
  void log(LogLevel level, const std::string& msg) const;

  RemoteOptions options_;
  std::unique_ptr<RemoteBackend> backend_;
  LogFn log_;
  RemoteStats stats_;
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point down_until_{};
  bool down_ = false;
  std::map<std::string, std::chrono::steady_clock::time_point> refused_until_;  // redis key -> when to ask again
};

}  // namespace regexd::cache
