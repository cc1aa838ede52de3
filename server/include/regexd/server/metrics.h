// regexd::server::metrics: the daemon's counters in the Prometheus text
// exposition format (version 0.0.4), and the cheap hooks that count on the
// scan path.  docs/daemon.md ("Metrics") lists every metric.
//
// One source of truth: the counters are the ones STATS reports (the
// server's connection and request counters, each rule set's RuleSetStats);
// this file only reads them.  /metrics (metrics_http.h) and the METRICS
// request (`regexctl stats --prometheus`) return the same render().
//
// Thread safety: the counters are relaxed atomics; render() may run on any
// thread while scans count (a scrape sees each counter at some moment of the
// scrape, never a torn value).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/engine/message.h"
#include "regexd/server/registry.h"

namespace regexd::server::metrics {

// Counters indexed by a small reason number (0..N-1); a reason out of range
// is counted in the last slot.
template <std::size_t N>
class ReasonCounters {
 public:
  void add(std::size_t reason) { v_[reason < N ? reason : N - 1].fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t at(std::size_t reason) const { return v_[reason].load(std::memory_order_relaxed); }
  std::uint64_t total() const {
    std::uint64_t t = 0;
    for (const auto& x : v_) t += x.load(std::memory_order_relaxed);
    return t;
  }
  static constexpr std::size_t size() { return N; }

 private:
  std::array<std::atomic<std::uint64_t>, N> v_{};
};

// Error replies by protocol code (protocol::WireError 1..9; slot 0 and the
// last slot take codes the table does not know).
using ErrorCounters = ReasonCounters<11>;

// Why a connection was closed before its greeting.
enum ConnectionRejection : std::size_t {
  kPeerNotAllowed = 0,     // allowed_uids / allowed_gids
  kMaxConnections = 1,     // server.max_connections
  kMaxConnectionsPerUid = 2,  // server.max_connections_per_uid
};
using RejectionCounters = ReasonCounters<3>;

// What the server holds besides the rule sets, read at one scrape.
struct ServerSample {
  double start_time_unix = 0;  // seconds since the epoch when the server was made
  std::uint64_t connections_current = 0, connections_total = 0, buffered_bytes = 0, requests = 0;
  const RejectionCounters* rejected = nullptr;
  const ErrorCounters* errors = nullptr;
  std::vector<std::shared_ptr<const RuleSetVersion>> rulesets;
};

// The exposition text: HELP and TYPE before each family, label values
// escaped (\\, \", \n), histograms with cumulative _bucket{le=...}, _sum and
// _count.  Families with no series (no rule set yet) still get HELP/TYPE.
std::string render(const ServerSample& sample);

// The scan path's hook: counts one answered SCAN of `v` (request time in
// microseconds, decode to reply; `buffer_ns` from MessageScanOptions, one
// per buffer, or empty; `limited` rule answers stopped by a PCRE2 limit).
// A few relaxed atomic adds and one binary search per buffer; no lock.
void record_scan(const RuleSetVersion& v, std::span<const engine::MessageBuffer> buffers,
                 std::span<const std::uint64_t> buffer_ns, double request_us, std::size_t limited,
                 unsigned re2_fallbacks);

// The histogram edges of /metrics, in seconds: powers of two microseconds
// from 8 us to about 2.1 s (exact edges of LatencyHistogram).
const std::vector<double>& bucket_edges_seconds();

}  // namespace regexd::server::metrics
