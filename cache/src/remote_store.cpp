// The remote tier (RemoteStore) and the Store's hooks into it: what to do on a
// local miss, after a compile, and around the compile lock.  store.cpp only
// calls these three hooks, so that a Store without a remote is unchanged.
#include "regexd/cache/remote_store.h"

#include <cstdio>
#include <random>
#include <thread>

#include "regexd/cache/entry.h"
#include "regexd/cache/fs.h"
#include "regexd/cache/store.h"

namespace regexd::cache {

namespace {

std::string random_token() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

}  // namespace

RemoteStore::RemoteStore(RemoteOptions options, std::unique_ptr<RemoteBackend> backend, LogFn log)
    : options_(std::move(options)), backend_(std::move(backend)), log_(std::move(log)) {}

Result<std::unique_ptr<RemoteStore>> RemoteStore::open_redis(RemoteOptions options, LogFn log) {
  if (options.endpoint.empty())
    return make_error(ErrorCode::kInvalidArgument, "remote store: no endpoint (a Unix socket path or host:port)");
  auto backend = make_redis_backend(options);
  return std::make_unique<RemoteStore>(std::move(options), std::move(backend), std::move(log));
}

std::shared_ptr<RemoteStore> RemoteStore::reopen(LogFn log) const {
  auto copy = std::make_shared<RemoteStore>(options_, make_redis_backend(options_), std::move(log));
  std::lock_guard lock(mu_);
  copy->down_ = down_;
  copy->down_until_ = down_until_;
  copy->refused_until_ = refused_until_;
  return copy;
}

void RemoteStore::log(LogLevel level, const std::string& msg) const {
  if (log_) {
    log_(level, "remote " + msg);
    return;
  }
  if (level == LogLevel::kDebug) return;
  std::fprintf(stderr, "regexd cache remote: %s\n", msg.c_str());
}

std::string RemoteStore::redis_key(std::string_view platform, const CacheKey& key) const {
  return options_.key_prefix + std::string(platform) + ":" + key.hex();
}

bool RemoteStore::usable() {
  std::lock_guard lock(mu_);
  return !down_ || std::chrono::steady_clock::now() >= down_until_;
}

bool RemoteStore::available() const {
  std::lock_guard lock(mu_);
  return !down_ || std::chrono::steady_clock::now() >= down_until_;
}

void RemoteStore::failed(const std::string& what) {
  stats_.errors++;
  bool first = false;
  {
    std::lock_guard lock(mu_);
    first = !down_;
    down_ = true;
    down_until_ = std::chrono::steady_clock::now() + options_.retry_after;
  }
  // Once per outage: a dead Redis must not fill the log with a line per
  // rule set or per retry.
  log(first ? LogLevel::kWarning : LogLevel::kDebug,
      options_.endpoint + ": " + what + "; compiling locally (next try in " + seconds_text(options_.retry_after) + ")");
}

void RemoteStore::succeeded() {
  bool was_down = false;
  {
    std::lock_guard lock(mu_);
    was_down = down_;
    down_ = false;
  }
  if (was_down) log(LogLevel::kInfo, options_.endpoint + ": reachable again");
}

std::optional<std::string> RemoteStore::fetch(std::string_view platform, const CacheKey& key) {
  // Without a trusted key nothing fetched could be loaded.
  if (options_.trusted.empty() || !usable()) return std::nullopt;
  std::string rkey = redis_key(platform, key);
  {
    std::lock_guard lock(mu_);
    auto it = refused_until_.find(rkey);
    if (it != refused_until_.end() && std::chrono::steady_clock::now() < it->second) return std::nullopt;
  }
  auto got = backend_->get(rkey, options_.max_entry_size);
  if (!got) {
    if (got.error().code == ErrorCode::kResourceLimit) {
      stats_.errors++;
      log(LogLevel::kWarning, "entry " + std::string(platform) + "/" + key.hex() + ": " + got.error().message);
    } else {
      failed(got.error().message);
    }
    return std::nullopt;
  }
  succeeded();
  if (!*got) {
    stats_.misses++;
    return std::nullopt;
  }
  auto opened = open_sealed_entry(platform, key, **got, options_.trusted, SealLimits{options_.max_entry_size});
  if (!opened) {
    // One line per refused entry: a refusal is an event an operator must see
    // (a misconfigured key, or someone writing into the shared Redis).
    if (opened.error().code == ErrorCode::kPermission) stats_.refused++;
    else stats_.errors++;
    {
      std::lock_guard lock(mu_);
      auto now = std::chrono::steady_clock::now();
      if (refused_until_.size() >= 1024) std::erase_if(refused_until_, [&](const auto& e) { return e.second <= now; });
      if (refused_until_.size() < 1024) refused_until_[rkey] = now + options_.retry_after;
    }
    log(LogLevel::kWarning,
        "entry " + std::string(platform) + "/" + key.hex() + " refused: " + opened.error().message);
    return std::nullopt;
  }
  stats_.hits++;
  return std::move(*opened);
}

void RemoteStore::publish(std::string_view platform, const CacheKey& key, std::string_view entry) {
  if (!options_.signing_key || !usable()) return;
  if (entry.size() > options_.max_entry_size) {
    log(LogLevel::kInfo, "entry " + key.hex() + " (" + std::to_string(entry.size()) +
                             " bytes) is over max_entry_size; not published");
    return;
  }
  auto sealed = seal_entry(platform, key, entry, *options_.signing_key);
  if (!sealed) {
    log(LogLevel::kWarning, "entry " + key.hex() + ": " + sealed.error().message + "; not published");
    return;
  }
  if (auto st = backend_->set(redis_key(platform, key), *sealed, options_.ttl); !st) {
    failed(st.error().message);
    return;
  }
  succeeded();
  stats_.published++;
  log(LogLevel::kDebug, "published " + std::string(platform) + "/" + key.hex() + " (" +
                            std::to_string(sealed->size()) + " bytes sealed, " + std::to_string(entry.size()) +
                            " plain)");
}

RemoteStore::Lock::Lock(Lock&& o) noexcept : owner_(o.owner_), key_(std::move(o.key_)), token_(std::move(o.token_)) {
  o.token_.clear();
}

RemoteStore::Lock::~Lock() {
  if (token_.empty() || !owner_->usable()) return;
  if (auto st = owner_->backend_->unlock(key_, token_); !st) owner_->failed(st.error().message);
}

std::optional<RemoteStore::Lock> RemoteStore::lock_or_wait(std::string_view platform, const CacheKey& key,
                                                           std::optional<std::string>* entry) {
  if (!usable()) return Lock(this, "", "");
  std::string lock_key = redis_key(platform, key) + ":lock", token = random_token();
  auto took = backend_->lock(lock_key, token, options_.lock_expiry);
  if (!took) {
    failed(took.error().message);
    return Lock(this, "", "");
  }
  succeeded();
  if (*took) return Lock(this, lock_key, token);
  stats_.lock_waits++;
  log(LogLevel::kInfo, "entry " + key.hex() + " is being compiled by another host; waiting up to " +
                           seconds_text(options_.wait));
  auto deadline = std::chrono::steady_clock::now() + options_.wait;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(options_.poll_interval);
    if (auto got = fetch(platform, key)) {
      *entry = std::move(got);
      return std::nullopt;
    }
    if (!usable()) return Lock(this, "", "");
    // The holder may have died (the lock expired) or given up without
    // publishing: then this host compiles, under the lock.
    auto again = backend_->lock(lock_key, token, options_.lock_expiry);
    if (again && *again) return Lock(this, lock_key, token);
  }
  log(LogLevel::kInfo, "waited " + seconds_text(options_.wait) + " for entry " + key.hex() +
                           " from another host; compiling here");
  return Lock(this, "", "");
}

// ---- Store hooks ----

RemoteStore* Store::remote() const { return options_.remote.get(); }

bool Store::fetch_remote(const CacheKey& key) {
  if (!options_.remote) return false;
  std::string platform = platform_dir_.filename().string();
  auto bytes = options_.remote->fetch(platform, key);
  return bytes && install_fetched(key, *bytes);
}

bool Store::install_fetched(const CacheKey& key, const std::string& bytes) {
  // A signed entry is still checked as a local file would be (structure,
  // checksum, its key and platform) before it lands in the cache; the full
  // decode happens when get() loads it like any local entry.
  auto info = inspect_entry(bytes);
  std::string problem;
  if (!info) problem = info.error().message;
  else if (!(info->key == key)) problem = "its header names key " + info->key.hex();
  else if (info->tags.dir_name() != platform_dir_.filename().string())
    problem = "its header names platform " + info->tags.dir_name();
  if (!problem.empty()) {
    options_.remote->note_bad_entry();
    log(LogLevel::kWarning, "remote entry " + key.hex() + " not used: " + problem);
    return false;
  }
  if (auto st = write_file_atomic(dir_, entry_file(key), bytes); !st) {
    log(LogLevel::kWarning, "remote entry " + key.hex() + " not saved: " + st.error().message);
    return false;
  }
  return true;
}

void Store::publish_remote(const CacheKey& key, std::string_view bytes) {
  if (options_.remote) options_.remote->publish(platform_dir_.filename().string(), key, bytes);
}

std::optional<RemoteStore::Lock> Store::remote_turn(const CacheKey& key, bool* arrived) {
  *arrived = false;
  if (!options_.remote) return std::nullopt;
  std::optional<std::string> entry;
  auto lock = options_.remote->lock_or_wait(platform_dir_.filename().string(), key, &entry);
  if (entry) *arrived = install_fetched(key, *entry);
  return lock;
}

}  // namespace regexd::cache
