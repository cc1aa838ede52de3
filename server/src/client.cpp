#include "regexd/server/client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace regexd::server {

namespace p = protocol;

namespace {

Error io_error(const std::string& what) { return make_error(ErrorCode::kIo, what + ": " + std::strerror(errno)); }

Result<int> open_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return make_error(ErrorCode::kInvalidArgument, path + ": socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return io_error("socket");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Error e = io_error("connect " + path);
    ::close(fd);
    return e;
  }
  return fd;
}

Result<int> open_tcp(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return make_error(ErrorCode::kInvalidArgument, address + ": expected host:port");
  std::string host = address.substr(0, colon), port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return make_error(ErrorCode::kIo, address + ": " + ::gai_strerror(rc));
  Error last = make_error(ErrorCode::kIo, address + ": no address");
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      ::freeaddrinfo(res);
      return fd;
    }
    last = io_error("connect " + address);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return last;
}

ErrorCode local_code(std::uint32_t wire) {
  switch (static_cast<p::WireError>(wire)) {
    case p::WireError::kUnknownClass: return ErrorCode::kUnknownClass;
    case p::WireError::kUnknownRuleset:
    case p::WireError::kBadRules:
    case p::WireError::kUnknownOpcode: return ErrorCode::kInvalidArgument;
    case p::WireError::kMalformed: return ErrorCode::kCorrupt;
    case p::WireError::kTooLarge:
    case p::WireError::kBusy: return ErrorCode::kResourceLimit;
    case p::WireError::kForbidden: return ErrorCode::kPermission;
    default: return ErrorCode::kInternal;
  }
}

}  // namespace

std::filesystem::path default_socket_path() {
  namespace fs = std::filesystem;
  if (::geteuid() == 0) return "/run/regexd/regexd.sock";
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x == '/') return fs::path(x) / "regexd" / "regexd.sock";
  return fs::temp_directory_path() / ("regexd-" + std::to_string(::geteuid())) / "regexd.sock";
}

Result<std::unique_ptr<Client>> Client::connect(const std::string& address, std::chrono::milliseconds timeout) {
  auto fd = address.find('/') != std::string::npos ? open_unix(address) : open_tcp(address);
  if (!fd) return fd.error();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::unique_ptr<Client> c(new Client(*fd));
  auto greeting = c->receive();
  if (!greeting) return greeting.error();
  if (greeting->opcode != p::kHello)
    return make_error(ErrorCode::kCorrupt, address + ": expected a greeting, got opcode " +
                                               std::to_string(greeting->opcode));
  auto hello = p::decode_hello(greeting->body);
  if (!hello) return hello.error();
  if (hello->version != p::kVersion)
    return make_error(ErrorCode::kMismatch, address + ": server speaks protocol " + std::to_string(hello->version) +
                                                ", this client " + std::to_string(p::kVersion));
  c->hello_ = std::move(*hello);
  return c;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

Status Client::send_bytes(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return io_error("send");
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Status Client::send(std::uint32_t id, std::uint8_t opcode, std::string_view body, std::uint8_t flags) {
  return send_bytes(p::encode_frame(id, opcode, flags, body));
}

Result<p::Frame> Client::receive() {
  p::Frame f;
  char buf[64 * 1024];
  for (;;) {
    auto got = decoder_.next(f);
    if (!got) return got.error();
    if (*got) return f;
    ssize_t n = -1;
    if (busy_poll_.count() > 0) {
      auto until = std::chrono::steady_clock::now() + busy_poll_;
      do n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      while (n < 0 && (errno == EAGAIN || errno == EINTR) && std::chrono::steady_clock::now() < until);
    }
    if (n < 0) n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(errno == EAGAIN ? "receive timed out" : "receive");
    if (n == 0) return make_error(ErrorCode::kIo, "connection closed by the server");
    decoder_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  }
}

Result<p::Frame> Client::call(std::uint8_t opcode, std::string_view body) {
  std::uint32_t id = next_id_++;
  if (auto st = send(id, opcode, body); !st) return st.error();
  for (;;) {
    auto f = receive();
    if (!f) return f.error();
    if (f->id != id) continue;  // a reply to an earlier pipelined request
    if (f->opcode == p::kError) {
      auto e = p::decode_error(f->body);
      if (!e) return e.error();
      return make_error(local_code(e->code), std::string(p::wire_error_name(e->code)) + ": " + e->message);
    }
    if (f->opcode != (opcode | p::kReplyBit))
      return make_error(ErrorCode::kCorrupt, "reply opcode " + std::to_string(f->opcode) + " to request " +
                                                 std::to_string(opcode));
    return f;
  }
}

Status Client::ping() {
  auto f = call(p::kPing, {});
  if (!f) return f.error();
  return {};
}

Result<p::ScanReply> Client::scan(const p::ScanRequest& request) {
  auto f = call(p::kScan, p::encode_scan(request));
  if (!f) return f.error();
  return p::decode_scan_reply(f->body);
}

Result<p::LoadRulesReply> Client::load_rules(const p::LoadRulesRequest& request) {
  auto f = call(p::kLoadRules, p::encode_load_rules(request));
  if (!f) return f.error();
  return p::decode_load_rules_reply(f->body);
}

Result<std::string> Client::stats() {
  auto f = call(p::kStats, {});
  if (!f) return f.error();
  return p::decode_text(f->body);
}

Result<std::string> Client::metrics() {
  auto f = call(p::kMetrics, {});
  if (!f) return f.error();
  return p::decode_text(f->body);
}

Result<std::string> Client::list_rulesets() {
  auto f = call(p::kListRulesets, {});
  if (!f) return f.error();
  return p::decode_text(f->body);
}

}  // namespace regexd::server
