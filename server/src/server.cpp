#include "regexd/server/server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <spdlog/spdlog.h>
#include <thread>
#include <type_traits>

#include "regexd/cache/fs.h"
#include "regexd/server/metrics.h"
#include "regexd/server/protocol.h"
#include "work_pool.h"

namespace regexd::server {

namespace fs = std::filesystem;
namespace p = protocol;
using Clock = std::chrono::steady_clock;

namespace {

struct Reply {
  std::string bytes;
  bool close = false;  // the request was malformed: close after this reply
};

// A live regexd answers on the socket; a stale file from a crashed run
// refuses the connection.
bool socket_is_live(const fs::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return live;
}

// A name from the configuration or a rule text may hold bytes that are not
// UTF-8 (client input is checked, but not all input is client input): a
// reply must never throw over it, so such bytes become U+FFFD.
std::string dump_json(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

// A rule pushed by a client is held to more than the configuration's rules:
// its class (from the text: header:NAME) is checked like the class field,
// and its pattern against the daemon's length and capture-group limits
// (PCRE2's memory per match grows with the groups).  Such a rule is
// rejected and named in the report; the others load.
void reject_unsafe_pushed_rules(engine::RuleSet& rules, const engine::PatternLimits& limits) {
  std::erase_if(rules.rules, [&](const engine::Rule& r) {
    std::string why;
    if (auto st = p::check_name("class", r.cls); !st) why = st.error().message;
    else why = engine::exceeds_pattern_limits(r, limits);
    if (!why.empty()) rules.rejected.push_back({r.source, r.line, r.id, why});
    return !why.empty();
  });
}

// What the server knows of a connection's peer: its credentials on the Unix
// socket (SO_PEERCRED), nothing on TCP.
struct Peer {
  bool tcp = false;
  std::optional<ucred> cred;
};

std::optional<ucred> peer_credentials(int fd) {
  ucred c{};
  socklen_t len = sizeof(c);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0 || len != sizeof(c)) return std::nullopt;
  return c;
}

Error sys_error(const std::string& what) { return make_error(ErrorCode::kIo, what + ": " + std::strerror(errno)); }

}  // namespace

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  // Stop reading; close once the replies already due are written.  Safe to
  // call from any thread.
  virtual void drain() = 0;
  // Whose connection it is, for max_connections_per_uid: the peer's uid on
  // the Unix socket, -1 for every TCP peer together.
  std::int64_t owner = -1;
};

struct Server::Impl {
  Impl(Registry& r, const ServerConfig& c)
      : registry(r), cfg(c), threads(c.workers ? c.workers : std::max(1u, std::thread::hardware_concurrency())) {}

  Registry& registry;
  const ServerConfig& cfg;
  unsigned threads;
  // One io_context per thread, each connection bound to one of them for its
  // whole life: its handlers never hop between threads (a hop costs a
  // wake-up, which dominates a small request's round trip) and need no strand.
  std::vector<std::unique_ptr<asio::io_context>> contexts = make_contexts(threads);
  std::atomic<std::size_t> next_context{0};
  asio::io_context& io = *contexts.front();  // acceptors, timers of the server itself
  asio::local::stream_protocol::acceptor unix_acceptor{io};
  std::optional<asio::ip::tcp::acceptor> tcp_acceptor;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> pool;
  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(unsigned n) {
    std::vector<std::unique_ptr<asio::io_context>> v;
    for (unsigned i = 0; i < n; ++i) v.push_back(std::make_unique<asio::io_context>(1));
    return v;
  }
  std::mutex conns_mu;
  std::set<std::shared_ptr<ConnectionBase>> conns;
  fs::path bound_path;
  std::pair<dev_t, ino_t> bound_id{};  // of the socket file at bound_path
  bool started = false, stopped = false;
  std::atomic<bool> stopping{false};
  Clock::time_point start_time = Clock::now();
  std::chrono::system_clock::time_point start_wall = std::chrono::system_clock::now();
  std::atomic<std::uint64_t> conn_current{0}, conn_total{0}, requests{0};
  // By reason, for /metrics; STATS reports their totals (metrics.h).
  metrics::RejectionCounters conn_rejected;
  metrics::ErrorCounters errors;
  std::map<std::int64_t, std::size_t> conns_per_owner;  // under conns_mu
  // Bytes of partial frames held by all connections (max_buffered).
  std::atomic<std::uint64_t> buffered{0};
  // Heavy requests run here, not on the I/O threads (declared after
  // `contexts`: destroyed first, while the executors its jobs post to live).
  WorkPool heavy{cfg.heavy_workers ? cfg.heavy_workers : 2, cfg.heavy_nice};
  // Heavy requests dropped because their client had gone, or answered BUSY
  // because they waited longer than request_timeout for a heavy worker.
  std::atomic<std::uint64_t> heavy_dropped{0}, heavy_timed_out{0};
  bool is_heavy(const p::Frame& f) const {
    return f.opcode == p::kLoadRules || (f.opcode == p::kScan && f.body.size() >= cfg.heavy_request);
  }
  std::uint64_t buffer_budget() const { return std::max<std::uint64_t>(cfg.max_buffered, cfg.max_frame); }
  std::size_t per_owner_cap() const {
    return cfg.max_connections_per_uid ? cfg.max_connections_per_uid : cfg.max_connections;
  }

  Reply handle(const p::Frame& f, const Peer& peer);
  Reply handle_scan(const p::Frame& f);
  Reply handle_load(const p::Frame& f, const Peer& peer);
  // The policy of docs/daemon.md, "Security model".
  bool may_load_rules(const Peer& peer) const {
    return cfg.load_rules != LoadRulesPolicy::kOff && (!peer.tcp || cfg.tcp_load_rules);
  }
  std::optional<std::string> refuse_load_of(const std::string& name) const;
  bool peer_allowed(const ucred& c) const;
  std::string stats_json() const;
  std::string metrics_text() const;
  std::string list_json() const;
  // `msg` may quote client bytes: it goes out as one line of valid UTF-8.
  Reply error(const p::Frame& f, p::WireError code, const std::string& msg, bool close = false) {
    errors.add(static_cast<std::size_t>(code));
    return {p::encode_frame(f.id, p::kError, 0,
                            p::encode_error({static_cast<std::uint32_t>(code), p::printable(msg, 4096)})),
            close};
  }
  void forget(const std::shared_ptr<ConnectionBase>& c) {
    std::lock_guard lock(conns_mu);
    if (!conns.erase(c)) return;
    conn_current.fetch_sub(1, std::memory_order_relaxed);
    if (auto it = conns_per_owner.find(c->owner); it != conns_per_owner.end() && --it->second == 0)
      conns_per_owner.erase(it);
  }
  template <typename Acceptor>
  void accept_loop(Acceptor& acceptor);
};

namespace {

// One client connection.  Every handler runs on the one thread of the
// connection's io_context, so its state needs no lock; different connections
// run on different threads.
// A request is answered on the thread that read it: no hand-off to another
// pool, which would cost two context switches per request.  The connection
// reads only when it needs bytes for the next frame, and stops answering
// while kMaxQueuedReplies replies wait for a client that does not read them:
// back-pressure reaches the client and nothing grows without bound.
template <typename Socket>
class Connection final : public ConnectionBase, public std::enable_shared_from_this<Connection<Socket>> {
 public:
  Connection(Server::Impl& impl, Socket socket, Peer peer)
      : impl_(impl),
        sock_(std::move(socket)),
        peer_(std::move(peer)),
        idle_(sock_.get_executor()),
        frame_deadline_(sock_.get_executor()),
        decoder_(impl.cfg.max_frame) {}

  void start() {
    asio::dispatch(sock_.get_executor(), [self = this->shared_from_this()] {
      p::Hello h;
      h.max_frame = self->impl_.cfg.max_frame;
      h.capabilities = (self->impl_.may_load_rules(self->peer_) ? p::kCapLoadRules : 0) | p::kCapMessage |
                       (self->impl_.cfg.tcp.empty() ? 0 : p::kCapTcp);
      const auto& info = engine::engine_info();
      h.server = std::string("regexd ") + REGEXD_VERSION + " " + info.flavor + " " + info.runtime_version + " " + info.arch;
      self->enqueue(p::encode_frame(0, p::kHello, 0, p::encode_hello(h)));
      self->arm_idle();
      self->read_more();
    });
  }

  void drain() override {
    asio::dispatch(sock_.get_executor(), [self = this->shared_from_this()] {
      self->draining_ = true;
      std::error_code ec;
      self->sock_.cancel(ec);  // a pending read ends with operation_aborted
      self->maybe_close();
    });
  }

 private:
  static constexpr std::size_t kMaxQueuedReplies = 32;
  static constexpr int kBurst = 8;

  void read_more() {
    if (closed_ || draining_ || reading_) return;
    reading_ = true;
    sock_.async_read_some(asio::buffer(buf_), [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
      self->reading_ = false;
      if (ec) {
        // EOF, reset or cancel: the client is gone (possibly mid-frame) or
        // the server is stopping.
        self->draining_ = true;
        self->maybe_close();
        return;
      }
      self->decoder_.feed(std::string_view(self->buf_.data(), n));
      // Bytes alone do not make a client active (the idle timer restarts
      // on complete requests only), and a partial frame has its deadline.
      if (!self->account_buffered()) return;
      self->burst_ = 0;
      self->process_one();
    });
  }

  // Answers the next buffered frame, then yields (so a client pipelining
  // many requests does not starve the others on this thread) and continues.
  void process_one() {
    if (heavy_pending_) return;  // finish_heavy() continues
    if (closed_ || draining_) return maybe_close();
    if (queue_.size() >= kMaxQueuedReplies) {
      blocked_on_writes_ = true;  // write_next() resumes
      return;
    }
    p::Frame f;
    auto got = decoder_.next(f);
    if (!got) {
      spdlog::warn("connection {}: {}; closing it", id_, got.error().message);
      impl_.errors.add(static_cast<std::size_t>(decoder_.failure()));
      enqueue(p::encode_frame(decoder_.failed_id(), p::kError, 0,
                              p::encode_error({static_cast<std::uint32_t>(decoder_.failure()), got.error().message})));
      draining_ = true;
      return maybe_close();
    }
    if (!*got) {
      if (decoder_.buffered() > 0 && !frame_pending_) arm_frame_deadline();
      return read_more();
    }
    disarm_frame_deadline();
    account_buffered(/*enforce=*/false);  // only ever less than before
    if (f.flags & p::kFlagClose) draining_ = true;
    impl_.requests.fetch_add(1, std::memory_order_relaxed);
    if (impl_.is_heavy(f)) return run_heavy(std::move(f));
    Reply r = impl_.handle(f, peer_);
    if (r.close) draining_ = true;
    enqueue(std::move(r.bytes));
    arm_idle();
    // Straight on to the next frame (or the next read), but yield to other
    // connections on this thread every few pipelined frames.
    if (++burst_ < kBurst) return process_one();
    burst_ = 0;
    asio::post(sock_.get_executor(), [self = this->shared_from_this()] { self->process_one(); });
  }

  void enqueue(std::string bytes) {
    if (closed_) return;
    queue_.push_back(std::move(bytes));
    if (!writing_) write_next();
  }

  void write_next() {
    writing_ = true;
    asio::async_write(sock_, asio::buffer(queue_.front()),
                      [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (ec) return self->close_now();
                        ++self->writes_done_;
                        self->queue_.pop_front();
                        if (!self->queue_.empty()) self->write_next();
                        if (self->blocked_on_writes_ && self->queue_.size() < kMaxQueuedReplies) {
                          self->blocked_on_writes_ = false;
                          self->process_one();
                        }
                        self->maybe_close();
                      });
  }

  // A heavy request goes to the heavy workers; this connection reads and
  // answers nothing else until its reply is back (replies stay in request
  // order, and a client has at most one heavy request queued).  Meanwhile
  // the socket is watched for a hang-up, so a request whose client left is
  // dropped before it runs.  Other connections on this I/O thread go on.
  void run_heavy(p::Frame f) {
    heavy_pending_ = true;
    gone_ = std::make_shared<std::atomic<bool>>(false);
    watch_hangup();
    impl_.heavy.post([self = this->shared_from_this(), f = std::move(f), gone = gone_, queued = Clock::now()] {
      auto& impl = self->impl_;
      Reply r;
      if (gone->load() || impl.stopping.load()) {
        impl.heavy_dropped.fetch_add(1, std::memory_order_relaxed);
        r.close = true;  // nothing to send
      } else if (Clock::now() - queued > impl.cfg.request_timeout) {
        impl.heavy_timed_out.fetch_add(1, std::memory_order_relaxed);
        r = impl.error(f, p::WireError::kBusy,
                       "request waited more than request_timeout (" +
                           std::to_string(impl.cfg.request_timeout.count()) + " ms) for a worker; retry");
      } else {
        r = impl.handle(f, self->peer_);
      }
      asio::post(self->sock_.get_executor(), [self, r = std::move(r)]() mutable { self->finish_heavy(std::move(r)); });
    });
  }
  void finish_heavy(Reply r) {
    heavy_pending_ = false;
    gone_.reset();
    if (closed_) return;
    if (r.close) draining_ = true;
    if (!r.bytes.empty()) enqueue(std::move(r.bytes));
    arm_idle();
    process_one();
  }
  // Readable while a heavy request is pending: either the client pipelined
  // more (left unread) or it hung up (recv gives 0, or an error).
  void watch_hangup() {
    sock_.async_wait(Socket::wait_read, [self = this->shared_from_this(), gone = gone_](std::error_code ec) {
      if (ec || self->closed_ || gone != self->gone_) return;
      char c;
      ssize_t n = ::recv(self->sock_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) gone->store(true);
    });
  }

  void maybe_close() {
    if (heavy_pending_) return;  // finish_heavy() decides
    if (draining_ && queue_.empty() && !writing_) close_now();
  }

  void close_now() {
    if (closed_) return;
    closed_ = true;
    if (gone_) gone_->store(true);
    std::error_code ec;
    sock_.shutdown(Socket::shutdown_both, ec);
    sock_.close(ec);
    idle_.cancel();
    frame_deadline_.cancel();
    impl_.buffered.fetch_sub(accounted_, std::memory_order_relaxed);
    accounted_ = 0;
    impl_.forget(this->shared_from_this());
  }

  // Charges this connection's partial-frame bytes to the server's budget
  // (max_buffered).  A connection holding more than one read's worth when
  // the budget is spent gets BUSY and is closed: its bytes are what would
  // grow, and small requests of other clients still pass.  False if closed.
  bool account_buffered(bool enforce = true) {
    std::size_t now = decoder_.buffered();
    if (now >= accounted_) impl_.buffered.fetch_add(now - accounted_, std::memory_order_relaxed);
    else impl_.buffered.fetch_sub(accounted_ - now, std::memory_order_relaxed);
    accounted_ = now;
    if (!enforce || now <= buf_.size() || impl_.buffered.load(std::memory_order_relaxed) <= impl_.buffer_budget())
      return true;
    spdlog::warn("connection {}: partial frames of all connections exceed max_buffered ({} bytes); closing it", id_,
                 impl_.buffer_budget());
    impl_.errors.add(static_cast<std::size_t>(p::WireError::kBusy));
    enqueue(p::encode_frame(0, p::kError, 0,
                            p::encode_error({static_cast<std::uint32_t>(p::WireError::kBusy),
                                             "the server's memory for partial frames (max_buffered) is in use; retry"})));
    fail_frame();
    return false;
  }

  // Stop reading, drop the partial frame (and its share of the budget),
  // close once the error already queued is written.
  void fail_frame() {
    draining_ = true;
    std::error_code ec;
    sock_.cancel(ec);
    decoder_ = p::FrameDecoder(impl_.cfg.max_frame);
    account_buffered(/*enforce=*/false);
    maybe_close();
  }

  // A frame must be complete within frame_timeout of its first byte: a
  // client trickling bytes holds a connection and its buffer for no longer.
  void arm_frame_deadline() {
    frame_pending_ = true;
    frame_deadline_.expires_after(impl_.cfg.frame_timeout);
    frame_deadline_.async_wait([weak = this->weak_from_this(), gen = ++frame_gen_](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->closed_ || gen != self->frame_gen_ || !self->frame_pending_) return;
      spdlog::info("connection {}: frame not complete {} ms after its first byte; closing", self->id_,
                   self->impl_.cfg.frame_timeout.count());
      self->impl_.errors.add(static_cast<std::size_t>(p::WireError::kMalformed));
      self->enqueue(p::encode_frame(0, p::kError, 0,
                                    p::encode_error({static_cast<std::uint32_t>(p::WireError::kMalformed),
                                                     "frame not complete within frame_timeout"})));
      self->fail_frame();
    });
  }
  void disarm_frame_deadline() {
    if (!frame_pending_) return;
    frame_pending_ = false;
    ++frame_gen_;
    frame_deadline_.cancel();
  }

  // Armed at the greeting and after each request, not on every byte.
  void arm_idle() {
    idle_.expires_after(impl_.cfg.idle_timeout);
    idle_.async_wait([weak = this->weak_from_this(), writes = writes_done_](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->closed_) return;
      if (self->heavy_pending_) return self->arm_idle();  // the server, not the client, is busy
      if (self->queue_.empty() && !self->writing_) {
        spdlog::debug("connection {}: idle, closing", self->id_);
        self->draining_ = true;
        self->close_now();
      } else if (self->writes_done_ != writes) {
        self->arm_idle();  // a client slow to read its replies is not idle...
      } else {
        // ...but one that read none of them for a whole idle_timeout is gone.
        spdlog::info("connection {}: no reply read for {} s, closing", self->id_, self->impl_.cfg.idle_timeout.count());
        self->close_now();
      }
    });
  }

  Server::Impl& impl_;
  Socket sock_;
  const Peer peer_;
  asio::steady_timer idle_, frame_deadline_;
  p::FrameDecoder decoder_;
  std::array<char, 64 * 1024> buf_{};
  std::deque<std::string> queue_;
  bool reading_ = false, writing_ = false, draining_ = false, closed_ = false, blocked_on_writes_ = false;
  bool heavy_pending_ = false;                   // run_heavy() until finish_heavy()
  std::shared_ptr<std::atomic<bool>> gone_;      // the pending heavy request's client left
  bool frame_pending_ = false;     // a partial frame is buffered; frame_deadline_ runs
  std::uint64_t frame_gen_ = 0;    // tells a stale frame deadline from the current one
  std::uint64_t writes_done_ = 0;  // replies fully written
  std::size_t accounted_ = 0;      // bytes charged to impl_.buffered
  int burst_ = 0;
  std::uint64_t id_ = impl_.conn_total.load();
};

}  // namespace

template <typename Acceptor>
void Server::Impl::accept_loop(Acceptor& acceptor) {
  auto& ctx = *contexts[next_context.fetch_add(1, std::memory_order_relaxed) % contexts.size()];
  acceptor.async_accept(ctx, [this, &acceptor](std::error_code ec,
                                                                  typename Acceptor::protocol_type::socket socket) {
    if (stopping) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: pause rather than spin.
      spdlog::warn("accept: {}", ec.message());
      auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(100));
      t->async_wait([this, &acceptor, t](std::error_code) { accept_loop(acceptor); });
      return;
    }
    using Socket = typename Acceptor::protocol_type::socket;
    Peer peer;
    peer.tcp = !std::is_same_v<typename Acceptor::protocol_type, asio::local::stream_protocol>;
    if (!peer.tcp) peer.cred = peer_credentials(socket.native_handle());
    if (!peer.tcp && (!peer.cred || !peer_allowed(*peer.cred))) {
      // Not one of the allowed users or groups: closed before a greeting.
      if (peer.cred) spdlog::warn("connection from uid {} gid {} pid {}: not allowed, closed", peer.cred->uid,
                                  peer.cred->gid, peer.cred->pid);
      conn_rejected.add(metrics::kPeerNotAllowed);
      std::error_code ignore;
      socket.close(ignore);
      return accept_loop(acceptor);
    }
    std::shared_ptr<Connection<Socket>> c;
    std::int64_t owner = peer.cred ? std::int64_t{peer.cred->uid} : -1;
    auto cap = metrics::kMaxConnections;
    {
      std::lock_guard lock(conns_mu);
      // One user (or TCP, all of it) may hold at most max_connections_per_uid.
      if (conns.size() < cfg.max_connections && conns_per_owner[owner] < per_owner_cap()) {
        c = std::make_shared<Connection<Socket>>(*this, std::move(socket), std::move(peer));
        c->owner = owner;
        ++conns_per_owner[owner];
        conns.insert(c);
        conn_total.fetch_add(1, std::memory_order_relaxed);
        conn_current.fetch_add(1, std::memory_order_relaxed);
      } else if (conns.size() < cfg.max_connections) {
        cap = metrics::kMaxConnectionsPerUid;
      }
    }
    if (c) {
      c->start();
    } else {
      conn_rejected.add(cap);
      std::error_code ignore;
      socket.close(ignore);
    }
    accept_loop(acceptor);
  });
}

bool Server::Impl::peer_allowed(const ucred& c) const {
  if (cfg.allowed_uids.empty() && cfg.allowed_gids.empty()) return true;
  if (c.uid == 0 || c.uid == ::geteuid()) return true;  // they could bypass the socket anyway
  return std::find(cfg.allowed_uids.begin(), cfg.allowed_uids.end(), c.uid) != cfg.allowed_uids.end() ||
         std::find(cfg.allowed_gids.begin(), cfg.allowed_gids.end(), c.gid) != cfg.allowed_gids.end();
}

// Why `name` may not be created or replaced by LOAD_RULES (nullopt: it may).
std::optional<std::string> Server::Impl::refuse_load_of(const std::string& name) const {
  auto listed = [&](const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  switch (cfg.load_rules) {
    case LoadRulesPolicy::kAny: return std::nullopt;
    case LoadRulesPolicy::kOff: return "LOAD_RULES is off (server.load_rules)";
    case LoadRulesPolicy::kListed:
      if (listed(cfg.load_rules_names)) return std::nullopt;
      return "rule set '" + name + "' is not one that clients may load (server.load_rules)";
    case LoadRulesPolicy::kNew: {
      auto current = registry.find(name);
      if (!listed(cfg.configured_names) && !(current && current->origin == "config")) return std::nullopt;
      return "rule set '" + name + "' comes from the daemon's configuration and cannot be replaced (server.load_rules)";
    }
  }
  return "LOAD_RULES refused";
}

Reply Server::Impl::handle(const p::Frame& f, const Peer& peer) {
  try {
    switch (f.opcode) {
      case p::kPing: return {p::encode_frame(f.id, p::kPing | p::kReplyBit, 0, {})};
      case p::kScan: return handle_scan(f);
      case p::kLoadRules: return handle_load(f, peer);
      case p::kStats: return {p::encode_frame(f.id, p::kStats | p::kReplyBit, 0, p::encode_text(stats_json()))};
      case p::kMetrics:
        return {p::encode_frame(f.id, p::kMetrics | p::kReplyBit, 0, p::encode_text(metrics_text()))};
      case p::kListRulesets:
        return {p::encode_frame(f.id, p::kListRulesets | p::kReplyBit, 0, p::encode_text(list_json()))};
      default: return error(f, p::WireError::kUnknownOpcode, "unknown opcode " + std::to_string(f.opcode));
    }
  } catch (const std::exception& e) {  // bad_alloc on a huge request, and the like
    return error(f, p::WireError::kInternal, e.what());
  }
}

Reply Server::Impl::handle_scan(const p::Frame& f) {
  auto t0 = Clock::now();
  auto q = p::decode_scan(f.body);
  if (!q) return error(f, p::WireError::kMalformed, q.error().message, true);
  auto v = registry.find(q->ruleset);
  if (!v) return error(f, p::WireError::kUnknownRuleset, "no rule set '" + std::string(q->ruleset) + "'");
  std::vector<engine::MessageBuffer> buffers;
  buffers.reserve(q->buffers.size());
  for (const auto& [cls, data] : q->buffers) buffers.push_back({cls, data});
  engine::MessageScanOptions options;
  options.whole_message = (f.flags & p::kFlagMessage) != 0;
  std::vector<std::uint64_t> buffer_ns(buffers.size());  // per-class metrics
  options.buffer_ns = buffer_ns;
  auto r = v->plan->scan(*v->scanner, buffers, options);
  if (!r) {
    if (r.error().code == ErrorCode::kUnknownClass)
      return error(f, p::WireError::kUnknownClass, "rule set '" + v->name + "': " + r.error().message);
    return error(f, p::WireError::kInternal, r.error().message);
  }
  p::ScanReply a;
  a.version = v->number;
  a.state = v->state;
  a.hits.assign(r->hits.begin(), r->hits.end());
  a.limited = std::move(r->limited);
  std::string out = p::encode_frame(f.id, p::kScan | p::kReplyBit, 0, p::encode_scan_reply(a));
  metrics::record_scan(*v, buffers, buffer_ns, std::chrono::duration<double, std::micro>(Clock::now() - t0).count(),
                       a.limited.size(), r->re2_fallbacks);
  return {std::move(out)};
}

Reply Server::Impl::handle_load(const p::Frame& f, const Peer& peer) {
  if (!may_load_rules(peer))
    return error(f, p::WireError::kForbidden,
                 peer.tcp ? "LOAD_RULES is not accepted on the TCP listener (server.tcp_load_rules)"
                          : "LOAD_RULES is off (server.load_rules)");
  auto q = p::decode_load_rules(f.body);
  if (!q) return error(f, p::WireError::kMalformed, q.error().message, true);
  std::string name(q->name), cls(q->cls);
  // Names and classes come back in JSON replies and logs: text only.
  if (auto st = p::check_name("LOAD_RULES: rule-set name", name); !st)
    return error(f, p::WireError::kBadRules, st.error().message);
  if (auto why = refuse_load_of(name)) return error(f, p::WireError::kForbidden, *why);
  // Every pushed name stays in memory until a restart: a client making up
  // names would otherwise grow the daemon without bound.
  if (!registry.find(name)) {
    auto all = registry.all();
    auto pushed = std::count_if(all.begin(), all.end(), [](const auto& v) { return v->origin == "load_rules"; });
    if (static_cast<std::size_t>(pushed) >= cfg.max_pushed_rulesets)
      return error(f, p::WireError::kBusy,
                   "LOAD_RULES " + name + ": " + std::to_string(pushed) +
                       " pushed rule sets exist, the most server.max_pushed_rulesets allows; push to one of them");
  }
  if (!cls.empty())
    if (auto st = p::check_name("LOAD_RULES " + name + ": class", cls); !st)
      return error(f, p::WireError::kBadRules, st.error().message);
  auto format = engine::parse_rule_format(q->format);
  if (!format)
    return error(f, p::WireError::kBadRules,
                 "LOAD_RULES " + name + ": unknown format '" + std::string(q->format) + "'");
  if (*format == engine::RuleFormat::kRspamdMap && cls.empty())
    return error(f, p::WireError::kBadRules, "LOAD_RULES " + name + ": rspamd-map needs a class");
  engine::RuleSet rules = engine::parse_rules(q->text, name, *format, cls);
  reject_unsafe_pushed_rules(rules, cfg.pushed_rule_limits);
  auto loaded = registry.load(name, std::move(rules), "load_rules");
  if (!loaded)
    return error(f, loaded.error().code == ErrorCode::kResourceLimit ? p::WireError::kBusy : p::WireError::kBadRules,
                 loaded.error().message);
  p::LoadRulesReply a;
  a.version = loaded->version->number;
  a.rules = static_cast<std::uint32_t>(loaded->version->scanner->rule_count());
  a.rejected = static_cast<std::uint32_t>(loaded->rejected.size());
  a.state = loaded->version->state;
  for (const auto& e : loaded->rejected) a.report += e.to_string() + "\n";
  spdlog::info("LOAD_RULES {}: version {}, {} rules, {} rejected, {}", name, a.version, a.rules, a.rejected, a.state);
  return {p::encode_frame(f.id, p::kLoadRules | p::kReplyBit, 0, p::encode_load_rules_reply(a))};
}

std::string Server::Impl::stats_json() const {
  using nlohmann::json;
  json j;
  j["uptime_s"] = std::chrono::duration<double>(Clock::now() - start_time).count();
  j["connections"] = {{"current", conn_current.load()},
                      {"total", conn_total.load()},
                      {"rejected", conn_rejected.total()},
                      {"buffered_bytes", buffered.load()}};
  j["requests"] = {{"total", requests.load()}, {"errors", errors.total()}};
  j["requests"]["heavy_dropped"] = heavy_dropped.load();
  j["requests"]["heavy_timed_out"] = heavy_timed_out.load();
  j["rulesets"] = json::array();
  for (const auto& v : registry.all()) {
    j["rulesets"].push_back({{"name", v->name},
                             {"version", v->number},
                             {"state", v->state},
                             {"source", v->source},
                             {"origin", v->origin},
                             {"rules", v->scanner->rule_count()},
                             {"tiers", {{"native", v->native}, {"prefilter", v->prefilter}, {"pcre2", v->pcre2},
                                        {"re2", v->re2}, {"re2_prefilter", v->re2_prefilter}}},
                             {"cache", {{"hits", v->stats->cache_hits.load()}, {"misses", v->stats->cache_misses.load()}}},
                             {"compile_ms", v->build_ms},
                             {"scans", v->stats->scans.load()},
                             {"re2_fallbacks", v->stats->re2_fallbacks.load()},
                             {"bytes", v->stats->bytes.load()},
                             {"latency_us", {{"p50", v->stats->latency.percentile(0.5)},
                                             {"p99", v->stats->latency.percentile(0.99)}}}});
  }
  if (const cache::Store* store = registry.store(); store && store->remote()) {
    const cache::RemoteStore& r = *store->remote();
    j["remote"] = {{"endpoint", r.options().endpoint},
                   {"available", r.available()},
                   {"hits", r.stats().hits.load()},
                   {"misses", r.stats().misses.load()},
                   {"refused", r.stats().refused.load()},
                   {"errors", r.stats().errors.load()},
                   {"published", r.stats().published.load()},
                   {"lock_waits", r.stats().lock_waits.load()}};
  }
  return dump_json(j);
}

std::string Server::Impl::metrics_text() const {
  metrics::ServerSample x;
  x.start_time_unix = std::chrono::duration<double>(start_wall.time_since_epoch()).count();
  x.connections_current = conn_current.load();
  x.connections_total = conn_total.load();
  x.buffered_bytes = buffered.load();
  x.requests = requests.load();
  x.rejected = &conn_rejected;
  x.errors = &errors;
  x.rulesets = registry.all();
  return metrics::render(x);
}

std::string Server::Impl::list_json() const {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& v : registry.all())
    j.push_back({{"name", v->name}, {"version", v->number}, {"state", v->state}, {"origin", v->origin},
                 {"rules", v->scanner->rule_count()}, {"classes", v->classes}});
  return dump_json(j);
}

Server::Server(ServerConfig config, Registry& registry)
    : config_(std::move(config)), registry_(registry), impl_(std::make_unique<Impl>(registry_, config_)) {}

Server::~Server() { stop(std::chrono::seconds(2)); }

Status Server::bind() {
  const fs::path& path = config_.socket;
  std::error_code ec;
  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  if (!fs::exists(dir, ec)) {
    // Searchable by all: the socket's own mode decides who may connect.
    fs::create_directories(dir, ec);
    if (ec) return make_error(ErrorCode::kIo, dir.string() + ": cannot create: " + ec.message());
    ::chmod(dir.c_str(), 0755);
  }
  // Whoever can write the directory can replace the socket (and receive
  // every client's mail) or, for a fallback such as /tmp/regexd-UID, have
  // made the directory first: checked as the cache directory is.
  if (auto st = cache::check_private_dir(dir); !st)
    return make_error(st.error().code, "socket directory " + st.error().message);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return make_error(ErrorCode::kInvalidArgument, path.string() + ": exists and is not a socket; remove it or choose another path");
    if (socket_is_live(path))
      return make_error(ErrorCode::kInvalidArgument, path.string() + ": another regexd is already listening there");
    spdlog::info("{}: replacing a stale socket from an earlier run", path.string());
  }
  // Bind inside a private directory, set mode and group, then rename into
  // place: the socket is never reachable with a wider mode.
  std::string tmpl = (dir / ".regexd-bind-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return sys_error(dir.string() + ": cannot create a temporary directory");
  fs::path tmp_sock = fs::path(tmpl) / "s";
  auto cleanup = [&] {
    ::unlink(tmp_sock.c_str());
    ::rmdir(tmpl.c_str());
  };
  if (path.string().size() >= sizeof(sockaddr_un::sun_path) || tmp_sock.string().size() >= sizeof(sockaddr_un::sun_path)) {
    cleanup();
    return make_error(ErrorCode::kInvalidArgument, path.string() + ": socket path too long (Unix sockets allow 107 bytes)");
  }
  auto& acc = impl_->unix_acceptor;
  acc.open(asio::local::stream_protocol(), ec);
  if (!ec) acc.bind(asio::local::stream_protocol::endpoint(tmp_sock.string()), ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    cleanup();
    return make_error(ErrorCode::kIo, path.string() + ": cannot listen: " + ec.message());
  }
  if (!config_.socket_group.empty()) {
    group* g = ::getgrnam(config_.socket_group.c_str());
    if (!g || ::chown(tmp_sock.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
      Error e = sys_error(path.string() + ": cannot give the socket to group " + config_.socket_group);
      cleanup();
      return e;
    }
  }
  if (::chmod(tmp_sock.c_str(), config_.socket_mode) != 0 || ::rename(tmp_sock.c_str(), path.c_str()) != 0) {
    Error e = sys_error(path.string() + ": cannot put the socket in place");
    cleanup();
    return e;
  }
  ::rmdir(tmpl.c_str());
  impl_->bound_path = path;
  if (::lstat(path.c_str(), &st) == 0) impl_->bound_id = {st.st_dev, st.st_ino};

  if (!config_.tcp.empty()) {
    auto colon = config_.tcp.rfind(':');
    std::string host = config_.tcp.substr(0, colon), port = config_.tcp.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    asio::ip::tcp::resolver resolver(impl_->io);
    auto eps = resolver.resolve(host, port, ec);
    if (ec || eps.empty()) return make_error(ErrorCode::kInvalidArgument, config_.tcp + ": " + ec.message());
    auto ep = eps.begin()->endpoint();
    if (!ep.address().is_loopback())
      return make_error(ErrorCode::kInvalidArgument, config_.tcp + ": not a loopback address");
    impl_->tcp_acceptor.emplace(impl_->io);
    auto& t = *impl_->tcp_acceptor;
    t.open(ep.protocol(), ec);
    if (!ec) t.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) t.bind(ep, ec);
    if (!ec) t.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return make_error(ErrorCode::kIo, config_.tcp + ": cannot listen: " + ec.message());
  }
  return {};
}

void Server::start() {
  if (impl_->started) return;
  impl_->started = true;
  for (auto& ctx : impl_->contexts) impl_->guards.push_back(asio::make_work_guard(*ctx));
  impl_->accept_loop(impl_->unix_acceptor);
  if (impl_->tcp_acceptor) impl_->accept_loop(*impl_->tcp_acceptor);
  for (auto& ctx : impl_->contexts) impl_->pool.emplace_back([c = ctx.get()] { c->run(); });
  spdlog::info("listening on {}{}{} ({} threads)", config_.socket.string(), config_.tcp.empty() ? "" : " and ",
               config_.tcp, impl_->threads);
}

void Server::stop(std::chrono::milliseconds grace) {
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping = true;
  asio::post(impl_->io, [this] {
    std::error_code ec;
    impl_->unix_acceptor.close(ec);
    if (impl_->tcp_acceptor) impl_->tcp_acceptor->close(ec);
  });
  std::vector<std::shared_ptr<ConnectionBase>> conns;
  {
    std::lock_guard lock(impl_->conns_mu);
    conns.assign(impl_->conns.begin(), impl_->conns.end());
  }
  for (const auto& c : conns) c->drain();
  conns.clear();
  auto deadline = Clock::now() + grace;
  while (impl_->conn_current.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (impl_->conn_current.load() > 0)
    spdlog::warn("stopping with {} connections still busy after {} ms", impl_->conn_current.load(), grace.count());
  impl_->guards.clear();
  for (auto& ctx : impl_->contexts) ctx->stop();
  for (auto& t : impl_->pool) t.join();
  {
    std::lock_guard lock(impl_->conns_mu);
    impl_->conns.clear();
  }
  // Only the socket this server bound: another regexd started on the same
  // path since (after this one was presumed dead) must keep its socket.
  if (!impl_->bound_path.empty()) {
    struct stat st {};
    if (::lstat(impl_->bound_path.c_str(), &st) == 0 && std::pair{st.st_dev, st.st_ino} == impl_->bound_id)
      ::unlink(impl_->bound_path.c_str());
    else
      spdlog::info("{}: no longer the socket this server bound; left in place", impl_->bound_path.string());
  }
  spdlog::info("stopped; {} requests served", impl_->requests.load());
}

std::string Server::stats_json() const { return impl_->stats_json(); }
std::string Server::metrics_text() const { return impl_->metrics_text(); }

}  // namespace regexd::server
