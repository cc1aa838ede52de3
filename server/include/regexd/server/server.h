// regexd::server::Server: the socket front of the daemon (docs/protocol.md).
//
// A fixed pool of threads (config.workers, default: cores) runs one Asio
// io_context.  Each connection's work is serialized on its own strand, and a
// request is answered on the thread that read it (no hand-off, which would
// cost two context switches per request), scanning with that thread's own
// scratch (engine::Scanner keeps per-thread state).  Different connections
// run in parallel.  A connection reads only when it needs bytes for its next
// frame and pauses while 32 replies wait for a client that does not read
// them, so back-pressure reaches the client and no queue grows unbounded.
//
// Thread safety: start() and stop() from one controlling thread; stats_json()
// from anywhere.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "regexd/engine/result.h"
#include "regexd/server/config.h"
#include "regexd/server/registry.h"

namespace regexd::server {

class Server {
 public:
  Server(ServerConfig config, Registry& registry);
  ~Server();  // stop()s if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the Unix socket (and the TCP listener if configured) without
  // accepting yet.  The socket appears at its path with its final mode and
  // group in one rename, so there is no moment when it is wider.  A stale
  // socket from a crashed run is replaced; a live one is an error.
  Status bind();
  // Starts the threads and accepting.
  void start();
  // Graceful stop: no new connections, requests in flight are answered,
  // connections closed, the socket file removed.  Waits at most `grace` for
  // in-flight requests.  Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  std::string stats_json() const;
  const ServerConfig& config() const { return config_; }

  struct Impl;

 private:
  ServerConfig config_;
  Registry& registry_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace regexd::server
