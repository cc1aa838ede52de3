// regexd::server::Client: a small blocking client for the regexd socket
// protocol (docs/protocol.md), used by regexctl and the tests.
//
// Thread safety: one Client per thread.  Errors: kIo for connection and
// timeout failures, kCorrupt for bytes that break the protocol, and for an
// ERROR reply the code closest to the server's (kUnknownClass,
// kInvalidArgument, ...) with "SERVER_CODE: message" as the message.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "regexd/engine/result.h"
#include "regexd/server/protocol.h"

namespace regexd::server {

// Where the daemon listens by default: /run/regexd/regexd.sock as root, else
// $XDG_RUNTIME_DIR/regexd/regexd.sock (or <tmp>/regexd-<uid>/regexd.sock).
std::filesystem::path default_socket_path();

class Client {
 public:
  // `address`: a Unix socket path (anything containing '/'), or "host:port"
  // for TCP.  Reads the greeting before returning.  `timeout` bounds every
  // later send and receive as well.
  static Result<std::unique_ptr<Client>> connect(const std::string& address,
                                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const protocol::Hello& hello() const { return hello_; }

  // Latency option: before blocking for a reply, poll the socket (without
  // sleeping) for up to `spin`.  A thread that blocks gives up its CPU, and
  // waking it again costs tens of microseconds on a virtual machine whose
  // idle vCPU halts (measured: 150 us per round trip on the 2-vCPU test VM);
  // spinning trades that for CPU time.  Default 0: always block.
  void set_busy_poll(std::chrono::microseconds spin) { busy_poll_ = spin; }

  // Raw access, for pipelining and for tests.
  Status send(std::uint32_t id, std::uint8_t opcode, std::string_view body, std::uint8_t flags = 0);
  Status send_bytes(std::string_view bytes);
  Result<protocol::Frame> receive();
  // Sends one request and waits for its reply; an ERROR reply is an Error.
  Result<protocol::Frame> call(std::uint8_t opcode, std::string_view body);

  Status ping();
  Result<protocol::ScanReply> scan(const protocol::ScanRequest& request);
  Result<protocol::LoadRulesReply> load_rules(const protocol::LoadRulesRequest& request);
  Result<std::string> stats();          // JSON
  Result<std::string> metrics();        // Prometheus text (METRICS)
  Result<std::string> list_rulesets();  // JSON

 private:
  explicit Client(int fd) : fd_(fd) {}
  int fd_ = -1;
  protocol::FrameDecoder decoder_{0xffffffffu};
  protocol::Hello hello_;
  std::uint32_t next_id_ = 1;
  std::chrono::microseconds busy_poll_{0};
};

}  // namespace regexd::server
