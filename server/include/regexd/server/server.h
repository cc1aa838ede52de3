// regexd::server::Server: the socket front of the daemon (docs/protocol.md).
//
// A fixed pool of threads (config.workers, default: cores), each running its
// own Asio io_context; every connection is pinned to one of them (round
// robin) for its whole life, so its handlers never hop between threads and
// need no lock.  A request is answered on that thread, scanning with the
// thread's own scratch (engine::Scanner keeps per-thread state); different
// connections run in parallel.  A connection reads only when it needs bytes
// for its next frame and pauses while 32 replies wait for a client that does
// not read them, so back-pressure reaches the client and nothing grows
// without bound.
//
// Thread safety: start() and stop() from one controlling thread; stats_json()
// and metrics_text() from anywhere.
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
  // socket from a crashed run is replaced; a live one is an error.  The
  // socket's directory (created 0755 if missing) must belong to this user or
  // root and not be writable by group or others (kPermission says the fix).
  Status bind();
  // Starts the threads and accepting.
  void start();
  // Graceful stop: no new connections, requests in flight are answered,
  // connections closed, the socket file removed if it is still the one
  // bind() made (same device and inode).  Waits at most `grace` for
  // in-flight requests.  Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  std::string stats_json() const;
  // The Prometheus text of metrics::render() over the same counters as
  // stats_json() (served by METRICS and by MetricsHttp).
  std::string metrics_text() const;
  const ServerConfig& config() const { return config_; }

  struct Impl;

 private:
  ServerConfig config_;
  Registry& registry_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace regexd::server
