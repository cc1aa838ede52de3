#include "regexd/server/metrics_http.h"

#include <sys/stat.h>

#include <asio.hpp>
#include <array>
#include <optional>
#include <spdlog/spdlog.h>
#include <thread>

namespace regexd::server {

namespace fs = std::filesystem;

struct MetricsHttp::Impl {
  Impl(MetricsConfig c, std::function<std::string()> r) : cfg(std::move(c)), render(std::move(r)) {}

  MetricsConfig cfg;
  std::function<std::string()> render;
  asio::io_context io{1};
  std::optional<asio::ip::tcp::acceptor> tcp;
  std::optional<asio::local::stream_protocol::acceptor> unix_sock;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;
  std::size_t active = 0;  // connections open; only touched on `thread`
  std::pair<dev_t, ino_t> bound_id{};
  bool started = false, stopped = false;

  Status bind_tcp();
  Status bind_unix();
  template <typename Acceptor>
  void accept_loop(Acceptor& acceptor);
};

namespace {

// One request, one reply, then close.  Every handler runs on the listener's
// thread, so nothing here needs a lock.
template <typename Socket>
class HttpConnection : public std::enable_shared_from_this<HttpConnection<Socket>> {
 public:
  HttpConnection(MetricsHttp::Impl& impl, Socket sock) : impl_(impl), sock_(std::move(sock)), deadline_(impl.io) {}

  void start() {
    ++impl_.active;
    // The whole exchange, reading the request and writing the reply, must
    // end within the timeout: a client that sends nothing, or reads nothing,
    // holds a slot no longer.
    deadline_.expires_after(impl_.cfg.timeout);
    deadline_.async_wait([weak = this->weak_from_this()](std::error_code ec) {
      if (auto self = weak.lock(); self && !ec) self->close();
    });
    read();
  }

 private:
  void read() {
    sock_.async_read_some(asio::buffer(chunk_), [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
      if (ec) return self->close();
      self->head_.append(self->chunk_.data(), n);
      if (self->head_.find("\r\n\r\n") != std::string::npos || self->head_.find("\n\n") != std::string::npos)
        return self->answer();
      if (self->head_.size() >= self->impl_.cfg.max_request)
        return self->respond(431, "Request Header Fields Too Large", "request head over the limit\n", false);
      self->read();
    });
  }

  void answer() {
    std::string_view head(head_);
    std::string_view line = head.substr(0, head.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1 || line.substr(sp2 + 1).substr(0, 7) != "HTTP/1.")
      return respond(400, "Bad Request", "not an HTTP/1.x request line\n", false);
    std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    bool head_only = method == "HEAD";
    if (method != "GET" && !head_only) return respond(405, "Method Not Allowed", "GET /metrics only\n", false);
    if (target.substr(0, target.find('?')) != "/metrics")
      return respond(404, "Not Found", "GET /metrics only\n", head_only);
    std::string body;
    try {
      body = impl_.render();
    } catch (const std::exception& e) {  // bad_alloc and the like: this scrape fails, the daemon does not
      spdlog::warn("metrics: {}", e.what());
      return respond(500, "Internal Server Error", "metrics could not be rendered\n", head_only);
    }
    respond(200, "OK", std::move(body), head_only, "text/plain; version=0.0.4; charset=utf-8");
  }

  void respond(int code, std::string_view reason, std::string body, bool head_only,
               std::string_view type = "text/plain; charset=utf-8") {
    reply_ = "HTTP/1.1 " + std::to_string(code) + " " + std::string(reason) + "\r\nContent-Type: " + std::string(type) +
             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    if (!head_only) reply_ += body;
    asio::async_write(sock_, asio::buffer(reply_),
                      [self = this->shared_from_this()](std::error_code, std::size_t) { self->close(); });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    --impl_.active;
    deadline_.cancel();
    std::error_code ec;
    sock_.shutdown(Socket::shutdown_both, ec);
    sock_.close(ec);
  }

  MetricsHttp::Impl& impl_;
  Socket sock_;
  asio::steady_timer deadline_;
  std::array<char, 2048> chunk_{};
  std::string head_, reply_;
  bool closed_ = false;
};

Error listen_error(const std::string& what, const std::error_code& ec) {
  return make_error(ErrorCode::kIo, "metrics " + what + ": cannot listen: " + ec.message());
}

}  // namespace

template <typename Acceptor>
void MetricsHttp::Impl::accept_loop(Acceptor& acceptor) {
  acceptor.async_accept([this, &acceptor](std::error_code ec, typename Acceptor::protocol_type::socket sock) {
    if (ec == asio::error::operation_aborted || stopped) return;
    if (ec) {
      // EMFILE and friends: pause rather than spin.
      spdlog::warn("metrics accept: {}", ec.message());
      auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(100));
      t->async_wait([this, &acceptor, t](std::error_code) { accept_loop(acceptor); });
      return;
    }
    if (active >= cfg.max_connections) {
      std::error_code ignore;
      sock.close(ignore);  // a scraper retries; a flood holds nothing
    } else {
      std::make_shared<HttpConnection<typename Acceptor::protocol_type::socket>>(*this, std::move(sock))->start();
    }
    accept_loop(acceptor);
  });
}

Status MetricsHttp::Impl::bind_tcp() {
  auto colon = cfg.listen.rfind(':');
  if (colon == std::string::npos)
    return make_error(ErrorCode::kInvalidArgument, "metrics.listen '" + cfg.listen + "': expected HOST:PORT");
  std::string host = cfg.listen.substr(0, colon), port_text = cfg.listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  std::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  char* end = nullptr;
  unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (ec || port_text.empty() || *end || port > 65535)
    return make_error(ErrorCode::kInvalidArgument,
                      "metrics.listen '" + cfg.listen + "': expected a numeric loopback HOST:PORT such as 127.0.0.1:9339");
  if (!addr.is_loopback())
    return make_error(ErrorCode::kInvalidArgument, "metrics.listen '" + cfg.listen + "': not a loopback address");
  asio::ip::tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  tcp.emplace(io);
  tcp->open(ep.protocol(), ec);
  if (!ec) tcp->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) tcp->bind(ep, ec);
  if (!ec) tcp->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return listen_error(cfg.listen, ec);
  return {};
}

Status MetricsHttp::Impl::bind_unix() {
  const fs::path& path = cfg.socket;
  std::string where = "metrics.socket " + path.string();
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return make_error(ErrorCode::kInvalidArgument, where + ": exists and is not a socket");
    asio::local::stream_protocol::socket probe(io);
    std::error_code live;
    probe.connect(asio::local::stream_protocol::endpoint(path.string()), live);
    if (!live) return make_error(ErrorCode::kInvalidArgument, where + ": another process is listening there");
    ::unlink(path.c_str());  // stale, from a crashed run
  }
  if (path.string().size() >= 108)
    return make_error(ErrorCode::kInvalidArgument, where + ": too long (Unix sockets allow 107 bytes)");
  std::error_code ec;
  unix_sock.emplace(io);
  unix_sock->open(asio::local::stream_protocol(), ec);
  if (!ec) unix_sock->bind(asio::local::stream_protocol::endpoint(path.string()), ec);
  if (!ec) unix_sock->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return listen_error(path.string(), ec);
  // The numbers are not secret (counts and rule-set names), so the moment
  // between bind and chmod with the umask's mode is no leak.
  if (::chmod(path.c_str(), cfg.socket_mode) != 0 || ::lstat(path.c_str(), &st) != 0)
    return make_error(ErrorCode::kIo, where + ": cannot set its mode");
  bound_id = {st.st_dev, st.st_ino};
  return {};
}

MetricsHttp::MetricsHttp(MetricsConfig config, std::function<std::string()> render)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(render))) {}

MetricsHttp::~MetricsHttp() { stop(); }

Status MetricsHttp::bind() {
  if (!impl_->cfg.listen.empty())
    if (auto st = impl_->bind_tcp(); !st) return st;
  if (!impl_->cfg.socket.empty())
    if (auto st = impl_->bind_unix(); !st) return st;
  return {};
}

void MetricsHttp::start() {
  if (impl_->started) return;
  impl_->started = true;
  impl_->guard.emplace(asio::make_work_guard(impl_->io));
  if (impl_->tcp) impl_->accept_loop(*impl_->tcp);
  if (impl_->unix_sock) impl_->accept_loop(*impl_->unix_sock);
  impl_->thread = std::thread([this] { impl_->io.run(); });
  std::string where;  // the bound port, for port 0
  if (impl_->tcp) {
    std::error_code ec;
    auto ep = impl_->tcp->local_endpoint(ec);
    where = ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
    where += ":" + std::to_string(ep.port());
  }
  if (impl_->unix_sock) where += (where.empty() ? "" : " and ") + impl_->cfg.socket.string();
  spdlog::info("metrics: GET /metrics on {}", where);
}

void MetricsHttp::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  if (impl_->started) {
    impl_->guard.reset();
    impl_->io.stop();  // open connections are dropped with their handlers
    impl_->thread.join();
  }
  std::error_code ec;  // the thread is gone: no handler runs concurrently
  if (impl_->tcp) impl_->tcp->close(ec);
  if (impl_->unix_sock) impl_->unix_sock->close(ec);
  if (impl_->unix_sock) {
    struct stat st {};
    if (::lstat(impl_->cfg.socket.c_str(), &st) == 0 && std::pair{st.st_dev, st.st_ino} == impl_->bound_id)
      ::unlink(impl_->cfg.socket.c_str());
  }
}

unsigned short MetricsHttp::port() const {
  if (!impl_->tcp) return 0;
  std::error_code ec;
  auto ep = impl_->tcp->local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace regexd::server
