// RemoteBackend over Redis (hiredis, synchronous, one connection).
//
// Every request is bounded: the connect by connect_timeout, each read and
// write by io_timeout (SO_RCVTIMEO/SO_SNDTIMEO through redisSetTimeout).  A
// failed request drops the connection; the next one reconnects.  Values are
// read with GETRANGE 0 max, so a value over the cap never crosses the wire in
// full.
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>

#include <ctime>
#include <mutex>

#include "regexd/cache/remote_store.h"

namespace regexd::cache {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// hiredis writes with write(2): a Redis that went away would raise SIGPIPE,
// which kills any process that did not ignore it (regexctl, tests).  Block it
// on this thread for the request and swallow one that became pending.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      timespec zero{};
      sigtimedwait(&pipe, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_{};
  bool was_pending_ = false;
};

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};

class RedisBackend final : public RemoteBackend {
 public:
  explicit RedisBackend(const RemoteOptions& o)
      : endpoint_(o.endpoint), connect_timeout_(o.connect_timeout), io_timeout_(o.io_timeout) {}

  Result<std::optional<std::string>> get(const std::string& key, std::uint64_t max_size) override {
    std::string end = std::to_string(max_size);  // GETRANGE's end is inclusive: max_size + 1 bytes at most
    auto r = command({"GETRANGE", key, "0", end});
    if (!r) return r.error();
    if ((*r)->type != REDIS_REPLY_STRING) return unexpected(**r);
    if ((*r)->len == 0) return std::optional<std::string>();  // absent (entries are never empty)
    if (static_cast<std::uint64_t>((*r)->len) > max_size)
      return make_error(ErrorCode::kResourceLimit, "value over the size limit of " + std::to_string(max_size) + " bytes");
    return std::optional<std::string>(std::string((*r)->str, (*r)->len));
  }

  Status set(const std::string& key, std::string_view value, std::chrono::milliseconds ttl) override {
    auto r = command({"SET", key, value, "PX", std::to_string(std::max<long long>(1, ttl.count()))});
    if (!r) return r.error();
    if ((*r)->type != REDIS_REPLY_STATUS) return unexpected(**r);
    return {};
  }

  Result<bool> lock(const std::string& key, const std::string& token, std::chrono::milliseconds expiry) override {
    auto r = command({"SET", key, token, "NX", "PX", std::to_string(std::max<long long>(1, expiry.count()))});
    if (!r) return r.error();
    if ((*r)->type == REDIS_REPLY_NIL) return false;
    if ((*r)->type != REDIS_REPLY_STATUS) return unexpected(**r);
    return true;
  }

  Status unlock(const std::string& key, const std::string& token) override {
    // Compare and delete in one step: a lock that expired and was taken by
    // another host is not ours to delete.
    static constexpr std::string_view kScript =
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
    auto r = command({"EVAL", kScript, "1", key, token});
    if (!r) return r.error();
    if ((*r)->type != REDIS_REPLY_INTEGER) return unexpected(**r);
    return {};
  }

 private:
  Error unexpected(const redisReply& r) {
    std::string what = r.type == REDIS_REPLY_ERROR ? std::string(r.str, r.len) : "unexpected reply type " + std::to_string(r.type);
    return make_error(ErrorCode::kIo, "redis: " + what);
  }

  Status connect() {
    if (ctx_) return {};
    redisContext* c = nullptr;
    timeval tv = to_timeval(connect_timeout_);
    if (endpoint_.find('/') != std::string::npos) {
      c = redisConnectUnixWithTimeout(endpoint_.c_str(), tv);
    } else {
      auto colon = endpoint_.rfind(':');
      if (colon == std::string::npos || colon == 0)
        return make_error(ErrorCode::kInvalidArgument, "redis endpoint '" + endpoint_ + "' is not host:port or a socket path");
      std::string host = endpoint_.substr(0, colon);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      c = redisConnectWithTimeout(host.c_str(), std::atoi(endpoint_.c_str() + colon + 1), tv);
    }
    if (!c) return make_error(ErrorCode::kIo, "redis: cannot allocate a connection");
    std::unique_ptr<redisContext, ContextFree> owned(c);
    if (c->err) return make_error(ErrorCode::kIo, std::string("redis connect: ") + c->errstr);
    if (redisSetTimeout(c, to_timeval(io_timeout_)) != REDIS_OK)
      return make_error(ErrorCode::kIo, std::string("redis: cannot set the timeout: ") + c->errstr);
    ctx_ = std::move(owned);
    return {};
  }

  Result<Reply> command(std::initializer_list<std::string_view> args) {
    std::lock_guard lock(mu_);
    SigpipeBlock no_sigpipe;
    if (auto st = connect(); !st) return st.error();
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (auto a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* raw = static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!raw) {
      // Timeout, reset, protocol error: the connection is unusable now.
      std::string why = ctx_->errstr[0] ? ctx_->errstr : "no reply";
      if (ctx_->err == REDIS_ERR_IO && (why.find("temporarily unavailable") != std::string::npos ||
                                        why.find("timed out") != std::string::npos))
        why = "no answer within " + std::to_string(io_timeout_.count()) + " ms";
      ctx_.reset();
      return make_error(ErrorCode::kIo, "redis: " + why);
    }
    return Reply(raw);
  }

  std::string endpoint_;
  std::chrono::milliseconds connect_timeout_, io_timeout_;
  std::mutex mu_;
  std::unique_ptr<redisContext, ContextFree> ctx_;
};

}  // namespace

std::unique_ptr<RemoteBackend> make_redis_backend(const RemoteOptions& options) {
  return std::make_unique<RedisBackend>(options);
}

}  // namespace regexd::cache
