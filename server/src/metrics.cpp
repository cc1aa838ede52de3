#include "regexd/server/metrics.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "regexd/engine/engine.h"
#include "regexd/engine/utf8.h"
#include "regexd/server/protocol.h"

namespace regexd::server::metrics {

namespace {

// Label values are UTF-8 with \\, \" and \n escaped.  A rule-set name from
// the configuration may hold other bytes (client names are checked): those
// are shown as \xNN, as in error lines, rather than make the page invalid.
std::string label_value(std::string_view v) {
  std::string text = engine::valid_utf8(v) ? std::string(v) : protocol::printable(v, 1024);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
std::string number(std::uint64_t v) { return std::to_string(v); }

// Builds the page family by family: each family's samples stay together
// after its HELP and TYPE lines, as the format requires.
class Page {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // constant text of this file: no \ or newline
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // `labels`: name/value pairs; values are escaped here.
  template <typename V>
  void sample(std::string_view name, std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
              V value, std::string_view extra_label = {}, std::string_view extra_value = {}) {
    out_ += name;
    bool any = false;
    auto add = [&](std::string_view k, std::string_view v) {
      out_ += any ? ',' : '{';
      any = true;
      out_ += k;
      out_ += "=\"";
      out_ += label_value(v);
      out_ += '"';
    };
    for (const auto& [k, v] : labels) add(k, v);
    if (!extra_label.empty()) add(extra_label, extra_value);
    if (any) out_ += '}';
    out_ += ' ';
    out_ += number(value);
    out_ += '\n';
  }
  void histogram(std::string_view name, std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
                 const LatencyHistogram& h) {
    const auto& edges = bucket_edges_seconds();
    static const std::vector<double> edges_us = [] {
      std::vector<double> v;
      for (double s : bucket_edges_seconds()) v.push_back(s * 1e6);
      return v;
    }();
    std::vector<std::uint64_t> counts = h.cumulative(edges_us);
    std::string bucket = std::string(name) + "_bucket";
    for (std::size_t i = 0; i < edges.size(); ++i) sample(bucket, labels, counts[i], "le", number(edges[i]));
    sample(bucket, labels, counts.back(), "le", "+Inf");
    sample(std::string(name) + "_sum", labels, h.sum_seconds());
    sample(std::string(name) + "_count", labels, counts.back());
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string_view error_reason(std::size_t code) {
  switch (static_cast<protocol::WireError>(code)) {
    case protocol::WireError::kMalformed: return "malformed";
    case protocol::WireError::kTooLarge: return "too_large";
    case protocol::WireError::kUnknownOpcode: return "unknown_opcode";
    case protocol::WireError::kUnknownRuleset: return "unknown_ruleset";
    case protocol::WireError::kUnknownClass: return "unknown_class";
    case protocol::WireError::kBadRules: return "bad_rules";
    case protocol::WireError::kBusy: return "busy";
    case protocol::WireError::kInternal: return "internal";
    case protocol::WireError::kForbidden: return "forbidden";
  }
  return "other";
}

constexpr std::string_view kRejectionReasons[] = {"not_allowed", "max_connections", "max_connections_per_uid"};

}  // namespace

const std::vector<double>& bucket_edges_seconds() {
  static const std::vector<double> edges = [] {
    std::vector<double> v;
    for (int k = 3; k <= 21; ++k) v.push_back(std::ldexp(1.0, k) * 1e-6);
    return v;
  }();
  return edges;
}

void record_scan(const RuleSetVersion& v, std::span<const engine::MessageBuffer> buffers,
                 std::span<const std::uint64_t> buffer_ns, double request_us, std::size_t limited,
                 unsigned re2_fallbacks) {
  RuleSetStats& s = *v.stats;
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    bytes += buffers[i].data.size();
    auto it = std::lower_bound(v.class_stats.begin(), v.class_stats.end(), buffers[i].cls,
                               [](const auto& e, std::string_view k) { return e.first < k; });
    if (it == v.class_stats.end() || it->first != buffers[i].cls) continue;  // not a class of v: not scanned
    it->second->buffers.fetch_add(1, std::memory_order_relaxed);
    it->second->bytes.fetch_add(buffers[i].data.size(), std::memory_order_relaxed);
    if (i < buffer_ns.size()) it->second->latency.record(static_cast<double>(buffer_ns[i]) / 1000.0);
  }
  s.scans.fetch_add(1, std::memory_order_relaxed);
  s.bytes.fetch_add(bytes, std::memory_order_relaxed);
  if (limited) {
    s.limited_rules.fetch_add(limited, std::memory_order_relaxed);
    s.limited_scans.fetch_add(1, std::memory_order_relaxed);
  }
  if (re2_fallbacks) s.re2_fallbacks.fetch_add(re2_fallbacks, std::memory_order_relaxed);
  s.latency.record(request_us);
}

std::string render(const ServerSample& x) {
  Page p;
  const auto& info = engine::engine_info();
  p.family("regexd_build_info", "gauge", "Always 1; the labels name the build, its regex engine, PCRE2 and malloc.");
  p.sample("regexd_build_info",
           {{"version", REGEXD_VERSION}, {"engine", info.flavor}, {"engine_version", info.runtime_version},
            {"arch", info.arch}, {"pcre2", info.pcre2_version}, {"allocator", info.allocator},
            {"scan_code", info.scan_code}},
           std::uint64_t{1});
  p.family("regexd_start_time_seconds", "gauge", "When the server started, in seconds since the Unix epoch.");
  p.sample("regexd_start_time_seconds", {}, x.start_time_unix);

  p.family("regexd_connections_open", "gauge", "Client connections open now.");
  p.sample("regexd_connections_open", {}, x.connections_current);
  p.family("regexd_connections_total", "counter", "Client connections accepted.");
  p.sample("regexd_connections_total", {}, x.connections_total);
  p.family("regexd_connections_rejected_total", "counter",
           "Connections closed before their greeting, by reason (not_allowed: allowed_uids/allowed_gids).");
  for (std::size_t r = 0; r < RejectionCounters::size(); ++r)
    p.sample("regexd_connections_rejected_total", {{"reason", kRejectionReasons[r]}},
             x.rejected ? x.rejected->at(r) : 0);
  p.family("regexd_buffered_bytes", "gauge", "Bytes of partial request frames held by all connections.");
  p.sample("regexd_buffered_bytes", {}, x.buffered_bytes);
  p.family("regexd_requests_total", "counter", "Requests read (every opcode).");
  p.sample("regexd_requests_total", {}, x.requests);
  p.family("regexd_requests_rejected_total", "counter",
           "Requests answered with an error reply, by protocol error (docs/protocol.md).");
  for (std::size_t code = 1; code <= static_cast<std::size_t>(protocol::WireError::kForbidden); ++code)
    p.sample("regexd_requests_rejected_total", {{"reason", error_reason(code)}}, x.errors ? x.errors->at(code) : 0);
  if (x.errors && (x.errors->at(0) || x.errors->at(ErrorCounters::size() - 1)))
    p.sample("regexd_requests_rejected_total", {{"reason", "other"}},
             x.errors->at(0) + x.errors->at(ErrorCounters::size() - 1));

  p.family("regexd_rulesets", "gauge", "Rule sets loaded.");
  p.sample("regexd_rulesets", {}, static_cast<std::uint64_t>(x.rulesets.size()));

  // Per rule set: one family at a time, every rule set in it.
  auto per_set = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    p.family(name, type, help);
    for (const auto& v : x.rulesets) p.sample(name, {{"ruleset", v->name}}, value(*v));
  };
  p.family("regexd_ruleset_info", "gauge",
           "Always 1; state (hyperscan, pcre2), source (cache, compiled, pcre2) and origin (config, load_rules) "
           "of the current version.");
  for (const auto& v : x.rulesets)
    p.sample("regexd_ruleset_info",
             {{"ruleset", v->name}, {"state", v->state}, {"source", v->source}, {"origin", v->origin}},
             std::uint64_t{1});
  per_set("regexd_ruleset_version", "gauge", "Version number of the rule set answering scans.",
          [](const RuleSetVersion& v) { return std::uint64_t{v.number}; });
  p.family("regexd_ruleset_rules", "gauge", "Compiled rules of the current version, by tier (native, prefilter, pcre2, re2, re2-prefilter).");
  for (const auto& v : x.rulesets) {
    p.sample("regexd_ruleset_rules", {{"ruleset", v->name}, {"tier", "native"}}, std::uint64_t{v->native});
    p.sample("regexd_ruleset_rules", {{"ruleset", v->name}, {"tier", "prefilter"}}, std::uint64_t{v->prefilter});
    p.sample("regexd_ruleset_rules", {{"ruleset", v->name}, {"tier", "re2"}}, std::uint64_t{v->re2});
    p.sample("regexd_ruleset_rules", {{"ruleset", v->name}, {"tier", "re2-prefilter"}}, std::uint64_t{v->re2_prefilter});
    p.sample("regexd_ruleset_rules", {{"ruleset", v->name}, {"tier", "pcre2"}}, std::uint64_t{v->pcre2});
  }
  per_set("regexd_ruleset_build_seconds", "gauge",
          "Hyperscan compile (or cache load) time of the current version; 0 while it compiles.",
          [](const RuleSetVersion& v) { return v.build_ms / 1000.0; });
  per_set("regexd_ruleset_loads_total", "counter", "Versions installed (start-up, reloads, LOAD_RULES).",
          [](const RuleSetVersion& v) { return v.stats->loads.load(std::memory_order_relaxed); });
  per_set("regexd_cache_hits_total", "counter", "Loads whose compiled databases came from the cache.",
          [](const RuleSetVersion& v) { return v.stats->cache_hits.load(std::memory_order_relaxed); });
  per_set("regexd_cache_misses_total", "counter",
          "Loads that found no usable cache entry (corrupt and refused entries included).",
          [](const RuleSetVersion& v) { return v.stats->cache_misses.load(std::memory_order_relaxed); });
  per_set("regexd_cache_corrupt_total", "counter", "Cache entries that failed a check and were moved aside.",
          [](const RuleSetVersion& v) { return v.stats->cache_corrupt.load(std::memory_order_relaxed); });
  per_set("regexd_cache_refused_total", "counter",
          "Cache entries not used: made for another platform or version, or unreadable.",
          [](const RuleSetVersion& v) { return v.stats->cache_refused.load(std::memory_order_relaxed); });
  per_set("regexd_scans_total", "counter", "SCAN requests answered.",
          [](const RuleSetVersion& v) { return v.stats->scans.load(std::memory_order_relaxed); });
  per_set("regexd_scanned_bytes_total", "counter", "Bytes of the buffers of answered SCAN requests.",
          [](const RuleSetVersion& v) { return v.stats->bytes.load(std::memory_order_relaxed); });
  per_set("regexd_pcre2_limited_total", "counter",
          "Rule answers unknown because PCRE2 stopped at its match, depth or heap limit.",
          [](const RuleSetVersion& v) { return v.stats->limited_rules.load(std::memory_order_relaxed); });
  per_set("regexd_pcre2_limited_scans_total", "counter", "SCAN requests with at least one such rule.",
          [](const RuleSetVersion& v) { return v.stats->limited_scans.load(std::memory_order_relaxed); });
  per_set("regexd_re2_fallbacks_total", "counter",
          "RE2 sets that gave up on a buffer (DFA out of memory); PCRE2 answered their rules.",
          [](const RuleSetVersion& v) { return v.stats->re2_fallbacks.load(std::memory_order_relaxed); });
  p.family("regexd_scan_duration_seconds", "histogram", "SCAN requests inside the server, decode to reply.");
  for (const auto& v : x.rulesets) p.histogram("regexd_scan_duration_seconds", {{"ruleset", v->name}}, v->stats->latency);

  // Per class: the classes every version of the set has had.
  std::vector<std::vector<std::pair<std::string, const ClassStats*>>> classes;
  for (const auto& v : x.rulesets) classes.push_back(v->stats->classes());
  auto per_class = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    p.family(name, type, help);
    for (std::size_t i = 0; i < x.rulesets.size(); ++i)
      for (const auto& [cls, st] : classes[i])
        p.sample(name, {{"ruleset", x.rulesets[i]->name}, {"class", cls}}, value(*st));
  };
  per_class("regexd_class_buffers_total", "counter", "Buffers of this class scanned.",
            [](const ClassStats& c) { return c.buffers.load(std::memory_order_relaxed); });
  per_class("regexd_class_scanned_bytes_total", "counter", "Bytes of buffers of this class scanned.",
            [](const ClassStats& c) { return c.bytes.load(std::memory_order_relaxed); });
  p.family("regexd_class_scan_duration_seconds", "histogram",
           "Engine time of one buffer of this class (Hyperscan and PCRE2, without metas).");
  for (std::size_t i = 0; i < x.rulesets.size(); ++i)
    for (const auto& [cls, st] : classes[i])
      p.histogram("regexd_class_scan_duration_seconds", {{"ruleset", x.rulesets[i]->name}, {"class", cls}},
                  st->latency);
  return p.take();
}

}  // namespace regexd::server::metrics
