// regexd::server::MetricsHttp: the opt-in /metrics listener (config section
// [metrics], docs/daemon.md): a minimal HTTP/1.0-1.1 server on a loopback TCP
// address and/or a Unix socket that answers `GET /metrics` with the
// Prometheus text of metrics::render().
//
// Bounded by construction: its own thread and io_context (a scrape never
// runs on, or waits for, a scan thread); at most `max_connections` at once
// (more are closed on accept); a request head of at most `max_request` bytes
// that must arrive within `timeout` (else 431 / closed); one request per
// connection (Connection: close).  Anything but GET or HEAD is 405, any
// other path 404.
//
// Thread safety: bind(), start() and stop() from one controlling thread;
// `render` is called on the listener's thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "regexd/engine/result.h"
#include "regexd/server/config.h"  // MetricsConfig

namespace regexd::server {

class MetricsHttp {
 public:
  MetricsHttp(MetricsConfig config, std::function<std::string()> render);
  ~MetricsHttp();  // stop()s
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  // Binds what the config names.  Errors (kInvalidArgument: not loopback,
  // a live socket at the path, not a socket; kIo) name the address.  A stale
  // socket file from a crashed run is replaced.
  Status bind();
  void start();
  // Closes the listeners and every connection, joins the thread, removes the
  // socket file.  Idempotent.
  void stop();

  // The bound TCP port (the one picked for port 0); 0 without TCP.
  unsigned short port() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace regexd::server
