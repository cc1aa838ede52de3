// /metrics (issue 16): a server on a private Unix socket with its metrics
// listener on loopback port 0 and on a private Unix socket; known traffic
// (scans of known bytes, rejected requests, a cache miss, hit and corrupt
// entry); the scraped text must parse as strict Prometheus text exposition
// 0.0.4 and carry exactly those counts.  regexctl stats --prometheus prints
// the same families through the daemon socket (METRICS).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "regexd/cache/store.h"
#include "regexd/server/metrics_http.h"
#include "regexd/server/protocol.h"
#include "socket_server_fixture.h"

namespace {

namespace fs = std::filesystem;
using namespace regexd;
namespace p = regexd::server::protocol;
using Labels = std::map<std::string, std::string>;

// ---- A strict reader of the text exposition format (0.0.4) -------------

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter, gauge, histogram
  std::vector<Sample> samples;

  std::optional<double> get(const std::string& name, const Labels& labels = {}) const {
    for (const auto& s : samples)
      if (s.name == name && s.labels == labels) return s.value;
    return std::nullopt;
  }
};

bool metric_name(const std::string& n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
  return true;
}
bool label_name(const std::string& n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0])) || n.rfind("__", 0) == 0) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

// The family a sample belongs to: a histogram's _bucket/_sum/_count go to
// the histogram's name.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      std::string base = name.substr(0, name.size() - s.size());
      if (auto it = types.find(base); it != types.end() && it->second == "histogram") return base;
    }
  }
  return name;
}

// Parses `text` or says, with the line number, why it is not valid.
std::optional<Exposition> parse_exposition(const std::string& text, std::string* why) {
  Exposition out;
  std::set<std::string> helped, finished;
  std::set<std::pair<std::string, Labels>> seen;
  std::string current;  // family of the previous line
  auto fail = [&](std::size_t line, const std::string& msg) {
    *why = "line " + std::to_string(line) + ": " + msg;
    return std::nullopt;
  };
  if (text.empty() || text.back() != '\n') return fail(0, "the text must end with a newline");
  std::size_t lineno = 0, pos = 0;
  auto enter = [&](const std::string& family) -> bool {
    if (family == current) return true;
    if (finished.count(family)) return false;  // a family's lines must be together
    if (!current.empty()) finished.insert(current);
    current = family;
    return true;
  };
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (line.empty()) return fail(lineno, "empty line");
    if (line[0] == '#') {
      std::istringstream in(line);
      std::string hash, kind, name;
      in >> hash >> kind >> name;
      if (hash != "#" || (kind != "HELP" && kind != "TYPE")) return fail(lineno, "a comment that is neither HELP nor TYPE");
      if (!metric_name(name)) return fail(lineno, "bad metric name '" + name + "'");
      if (!enter(name)) return fail(lineno, "family " + name + " appears twice");
      if (kind == "HELP") {
        if (!helped.insert(name).second) return fail(lineno, "second HELP for " + name);
        std::string rest = line.substr(std::min(line.size(), 7 + name.size() + 1));
        for (std::size_t i = 0; i < rest.size(); ++i)
          if (rest[i] == '\\' && (i + 1 == rest.size() || (rest[i + 1] != '\\' && rest[i + 1] != 'n')))
            return fail(lineno, "bad escape in HELP");
          else if (rest[i] == '\\') ++i;
      } else {
        std::string type, extra;
        in >> type;
        if (in >> extra) return fail(lineno, "junk after TYPE");
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
          return fail(lineno, "unknown type '" + type + "'");
        if (out.types.count(name)) return fail(lineno, "second TYPE for " + name);
        for (const auto& s : out.samples)
          if (family_of(s.name, {{name, type}}) == name) return fail(lineno, "TYPE after samples of " + name);
        out.types[name] = type;
      }
      continue;
    }
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!metric_name(s.name)) return fail(lineno, "bad metric name '" + s.name + "'");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) return fail(lineno, "label without '='");
        std::string key = line.substr(i, eq - i);
        if (!label_name(key)) return fail(lineno, "bad label name '" + key + "'");
        if (eq + 1 >= line.size() || line[eq + 1] != '"') return fail(lineno, "label value not quoted");
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] != '\\') {
            value += line[j];
            continue;
          }
          if (++j >= line.size()) return fail(lineno, "escape at the end of the line");
          if (line[j] == '\\') value += '\\';
          else if (line[j] == '"') value += '"';
          else if (line[j] == 'n') value += '\n';
          else return fail(lineno, std::string("bad escape \\") + line[j] + " in a label value");
        }
        if (j >= line.size()) return fail(lineno, "unterminated label value");
        if (!s.labels.emplace(key, value).second) return fail(lineno, "label " + key + " twice");
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
        else if (i >= line.size() || line[i] != '}') return fail(lineno, "expected ',' or '}' after a label");
      }
      if (i >= line.size()) return fail(lineno, "unterminated label set");
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') return fail(lineno, "expected one space before the value");
    std::string value = line.substr(i + 1);
    if (value.find(' ') != std::string::npos) return fail(lineno, "a timestamp or junk after the value");
    if (value == "+Inf") s.value = HUGE_VAL;
    else if (value == "-Inf") s.value = -HUGE_VAL;
    else if (value == "NaN") s.value = NAN;
    else {
      char* end = nullptr;
      s.value = std::strtod(value.c_str(), &end);
      if (value.empty() || *end || std::isinf(s.value) || std::isnan(s.value)) return fail(lineno, "bad value '" + value + "'");
    }
    std::string family = family_of(s.name, out.types);
    auto type = out.types.find(family);
    if (type == out.types.end()) return fail(lineno, s.name + " has no TYPE before it");
    if (!enter(family)) return fail(lineno, "family " + family + " appears twice");
    if (type->second == "counter" && (s.name.size() < 6 || s.name.substr(s.name.size() - 6) != "_total"))
      return fail(lineno, "counter " + s.name + " does not end in _total");
    if (type->second == "counter" && !(s.value >= 0)) return fail(lineno, "negative counter");
    if (s.name.size() > 7 && s.name.substr(s.name.size() - 7) == "_bucket" && !s.labels.count("le"))
      return fail(lineno, "bucket without le");
    if (!seen.insert({s.name, s.labels}).second) return fail(lineno, "series twice: " + s.name);
    out.samples.push_back(std::move(s));
  }
  // Histograms: le ascending with cumulative counts, +Inf == _count, a _sum.
  for (const auto& [family, type] : out.types) {
    if (type != "histogram") continue;
    std::map<Labels, std::vector<std::pair<double, double>>> buckets;
    for (const auto& s : out.samples) {
      if (s.name != family + "_bucket") continue;
      Labels l = s.labels;
      std::string le = l["le"];
      l.erase("le");
      char* end = nullptr;
      double edge = le == "+Inf" ? HUGE_VAL : std::strtod(le.c_str(), &end);
      if (le != "+Inf" && (le.empty() || *end)) return fail(0, family + ": bad le '" + le + "'");
      buckets[l].emplace_back(edge, s.value);
    }
    for (const auto& [labels, bs] : buckets) {
      for (std::size_t k = 1; k < bs.size(); ++k)
        if (!(bs[k].first > bs[k - 1].first) || bs[k].second < bs[k - 1].second)
          return fail(0, family + ": buckets not ascending and cumulative");
      if (bs.empty() || !std::isinf(bs.back().first)) return fail(0, family + ": no +Inf bucket");
      auto count = out.get(family + "_count", labels);
      if (!count || *count != bs.back().second) return fail(0, family + ": _count differs from the +Inf bucket");
      if (!out.get(family + "_sum", labels)) return fail(0, family + ": no _sum");
    }
  }
  return out;
}

// ---- HTTP by hand --------------------------------------------------------

struct HttpReply {
  std::string status_line, headers, body, raw;
};

HttpReply exchange(int fd, const std::string& request) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  // A connection the server closed at once may refuse the bytes: what it
  // answered (nothing) is what the caller checks.
  if (!request.empty()) (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  HttpReply r;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) r.raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto end = r.raw.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  r.status_line = r.raw.substr(0, r.raw.find("\r\n"));
  r.headers = r.raw.substr(0, end);
  r.body = r.raw.substr(end + 4);
  return r;
}

int tcp_connect(unsigned short port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

int unix_connect(const fs::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

const std::string kGet = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";

class MetricsTest : public test::SocketServerTest {
 protected:
  void SetUp() override {
    make_dir("rxm", "s.sock");
    cache::StoreOptions so;
    so.root = dir_ / "cache";
    so.log = [](cache::LogLevel, const std::string&) {};
    auto store = cache::Store::open(so);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    registry_ = std::make_unique<server::Registry>(server::Registry::Options{store_.get(), {}});
    mcfg_.listen = "127.0.0.1:0";
    mcfg_.socket = dir_ / "m.sock";
  }
  void TearDown() override {
    http_.reset();
    SocketServerTest::TearDown();
    store_.reset();
  }
  void start_all() {
    start();
    http_ = std::make_unique<server::MetricsHttp>(mcfg_, [this] { return server_->metrics_text(); });
    auto st = http_->bind();
    ASSERT_TRUE(st.ok()) << st.error().message;
    http_->start();
    ASSERT_NE(http_->port(), 0);
  }
  Exposition scrape(int fd) {
    HttpReply r = exchange(fd, kGet);
    EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK") << r.raw.substr(0, 200);
    EXPECT_NE(r.headers.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"), std::string::npos);
    EXPECT_NE(r.headers.find("\r\nContent-Length: " + std::to_string(r.body.size()) + "\r"), std::string::npos)
        << r.headers;
    std::string why;
    auto e = parse_exposition(r.body, &why);
    EXPECT_TRUE(e) << why << "\n" << r.body;
    return e ? *e : Exposition{};
  }
  static constexpr const char* kRules = "A body /hello/\nB header:Subject /win/\n";

  server::MetricsConfig mcfg_;
  std::unique_ptr<cache::Store> store_;
  std::unique_ptr<server::MetricsHttp> http_;
};

TEST_F(MetricsTest, ScrapedCountersAreExactlyTheTraffic) {
  // A cache miss (compiled in the background, saved), then a hit.
  ASSERT_TRUE(registry_->load("a", engine::parse_native(kRules, "r")).ok());
  registry_->wait_idle();
  auto again = registry_->load("a", engine::parse_native(kRules, "r"));
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->version->source, "cache");
  start_all();

  auto c = client();
  ASSERT_TRUE(c);
  const std::string body = "hello world", subject = "you win";  // 11 + 7 bytes
  for (int i = 0; i < 5; ++i) {
    auto r = c->scan({"a", {{"body", body}, {"header:Subject", subject}}});
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->hits.size(), 2u);
  }
  EXPECT_FALSE(c->scan({"nosuchset", {{"body", body}}}).ok());  // UNKNOWN_RULESET, stays open
  EXPECT_FALSE(c->call(0x33, {}).ok());                         // UNKNOWN_OPCODE, stays open

  Exposition m = scrape(tcp_connect(http_->port()));
  const Labels a{{"ruleset", "a"}};
  EXPECT_EQ(m.get("regexd_scans_total", a), 5);
  EXPECT_EQ(m.get("regexd_scanned_bytes_total", a), 5 * 18);
  EXPECT_EQ(m.get("regexd_scan_duration_seconds_count", a), 5);
  EXPECT_GT(m.get("regexd_scan_duration_seconds_sum", a).value_or(0), 0);
  EXPECT_EQ(m.get("regexd_class_buffers_total", {{"ruleset", "a"}, {"class", "body"}}), 5);
  EXPECT_EQ(m.get("regexd_class_scanned_bytes_total", {{"ruleset", "a"}, {"class", "body"}}), 55);
  EXPECT_EQ(m.get("regexd_class_scanned_bytes_total", {{"ruleset", "a"}, {"class", "header:Subject"}}), 35);
  EXPECT_EQ(m.get("regexd_class_scan_duration_seconds_count", {{"ruleset", "a"}, {"class", "header:Subject"}}), 5);
  EXPECT_EQ(m.get("regexd_cache_misses_total", a), 1);
  EXPECT_EQ(m.get("regexd_cache_hits_total", a), 1);
  EXPECT_EQ(m.get("regexd_cache_corrupt_total", a), 0);
  EXPECT_EQ(m.get("regexd_cache_refused_total", a), 0);
  EXPECT_EQ(m.get("regexd_ruleset_loads_total", a), 2);
  EXPECT_EQ(m.get("regexd_ruleset_version", a), 2);
  EXPECT_EQ(m.get("regexd_ruleset_info", {{"ruleset", "a"}, {"state", "hyperscan"}, {"source", "cache"},
                                          {"origin", "config"}}),
            1);
  EXPECT_EQ(m.get("regexd_pcre2_limited_total", a), 0);
  EXPECT_EQ(m.get("regexd_rulesets"), 1);
  EXPECT_EQ(m.get("regexd_requests_rejected_total", {{"reason", "unknown_ruleset"}}), 1);
  EXPECT_EQ(m.get("regexd_requests_rejected_total", {{"reason", "unknown_opcode"}}), 1);
  EXPECT_EQ(m.get("regexd_requests_rejected_total", {{"reason", "malformed"}}), 0);
  EXPECT_EQ(m.get("regexd_requests_total"), 7);
  EXPECT_EQ(m.get("regexd_connections_total"), 1);
  EXPECT_EQ(m.get("regexd_connections_open"), 1);
  EXPECT_EQ(m.get("regexd_connections_rejected_total", {{"reason", "max_connections"}}), 0);
  EXPECT_EQ(m.types["regexd_scan_duration_seconds"], "histogram");
  EXPECT_EQ(m.types["regexd_scans_total"], "counter");

  // STATS reads the same counters.
  auto stats = c->stats();
  ASSERT_TRUE(stats.ok());
  auto j = nlohmann::json::parse(*stats);
  EXPECT_EQ(j["rulesets"][0]["scans"], 5);
  EXPECT_EQ(j["rulesets"][0]["bytes"], 90);
  EXPECT_EQ(j["requests"]["errors"], 2);

  // A damaged entry: a corrupt miss (moved aside), the set still loads.
  std::ofstream(store_->entry_path(store_->key_for(engine::parse_native(kRules, "r"), {})),
                std::ios::binary | std::ios::trunc)
      << std::string(4096, 'x');
  ASSERT_TRUE(registry_->load("a", engine::parse_native(kRules, "r")).ok());
  registry_->wait_idle();
  // The same page through the metrics Unix socket.
  Exposition u = scrape(unix_connect(mcfg_.socket));
  EXPECT_EQ(u.get("regexd_cache_corrupt_total", a), 1);
  EXPECT_EQ(u.get("regexd_cache_misses_total", a), 2);
  EXPECT_EQ(u.get("regexd_cache_hits_total", a), 1);
  EXPECT_EQ(u.get("regexd_ruleset_loads_total", a), 3);
  EXPECT_EQ(u.get("regexd_scans_total", a), 5) << "counters outlive versions";
}

TEST_F(MetricsTest, LabelValuesAreEscapedAndPcre2LimitsCounted) {
  // PCRE2 alone, with a low match limit: catastrophic backtracking stops.
  engine::CompileOptions o;
  o.pcre2_only = true;
  o.pcre2_match_limit = 1000;
  registry_ = std::make_unique<server::Registry>(server::Registry::Options{nullptr, o});
  const std::string odd = "odd \"set\" \\ name";
  ASSERT_TRUE(registry_->load(odd, engine::parse_native("EVIL body /^(\\w+\\s?)*$/\n", "r")).ok());
  start_all();
  auto c = client();
  ASSERT_TRUE(c);
  auto r = c->scan({odd, {{"body", std::string(40, 'a') + "!"}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->limited, std::vector<std::string>{"EVIL"});
  Exposition m = scrape(tcp_connect(http_->port()));
  EXPECT_EQ(m.get("regexd_pcre2_limited_total", {{"ruleset", odd}}), 1);
  EXPECT_EQ(m.get("regexd_pcre2_limited_scans_total", {{"ruleset", odd}}), 1);
  EXPECT_EQ(m.get("regexd_scans_total", {{"ruleset", odd}}), 1);
}

TEST_F(MetricsTest, TheListenerIsBounded) {
  mcfg_.max_connections = 2;
  mcfg_.timeout = std::chrono::seconds(2);
  mcfg_.max_request = 1024;
  start_all();
  auto status = [&](const std::string& request) { return exchange(tcp_connect(http_->port()), request).status_line; };
  EXPECT_EQ(status("GET /other HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(status("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_EQ(status("hello\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(status("GET /metrics HTTP/1.0\r\nX: " + std::string(2000, 'y')), "HTTP/1.1 431 Request Header Fields Too Large");
  HttpReply head = exchange(tcp_connect(http_->port()), "HEAD /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(head.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(head.body.empty());
  // Two silent clients hold both slots: a third is closed at once, without
  // a reply; the silent ones are closed at the timeout; then scrapes work.
  int s1 = tcp_connect(http_->port()), s2 = unix_connect(mcfg_.socket);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(exchange(tcp_connect(http_->port()), kGet).raw, "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500)) << "closed on accept, not at the timeout";
  EXPECT_EQ(exchange(s1, "").raw, "") << "closed by the timeout";
  EXPECT_EQ(exchange(s2, "").raw, "");
  EXPECT_EQ(scrape(tcp_connect(http_->port())).get("regexd_rulesets"), 0);
}

TEST_F(MetricsTest, BindRefusesANonLoopbackAddressAndALiveSocket) {
  start_all();
  server::MetricsConfig c;
  c.listen = "0.0.0.0:0";
  EXPECT_FALSE(server::MetricsHttp(c, [] { return std::string(); }).bind().ok());
  c.listen.clear();
  c.socket = mcfg_.socket;
  auto st = server::MetricsHttp(c, [] { return std::string(); }).bind();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("another process is listening"), std::string::npos) << st.error().message;
}

// regexctl stats --prometheus: the daemon renders it (METRICS), so it is the
// /metrics text, fetched over the regular socket.
TEST_F(MetricsTest, RegexctlStatsPrometheusPrintsTheSameText) {
  ASSERT_TRUE(registry_->load("a", engine::parse_native(kRules, "r")).ok());
  registry_->wait_idle();  // no Hyperscan swap between the two reads
  start_all();
  {
    auto c = client();
    ASSERT_TRUE(c);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->scan({"a", {{"body", "hello"}}}).ok());
  }
  std::string cmd = std::string(REGEXCTL_PATH) + " stats --prometheus --socket " + cfg_.socket.string();
  FILE* f = ::popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  ASSERT_EQ(::pclose(f), 0) << out;
  std::string why;
  auto cli = parse_exposition(out, &why);
  ASSERT_TRUE(cli) << why << "\n" << out;
  EXPECT_EQ(cli->get("regexd_scans_total", {{"ruleset", "a"}}), 3);
  EXPECT_EQ(cli->get("regexd_scanned_bytes_total", {{"ruleset", "a"}}), 15);
  Exposition http = scrape(tcp_connect(http_->port()));
  EXPECT_EQ(cli->types, http.types) << "same families";
  EXPECT_EQ(http.get("regexd_scans_total", {{"ruleset", "a"}}), 3);
  // Only the counters of the connections themselves differ between the two.
  std::set<std::string> differ;
  for (const auto& s : http.samples)
    if (cli->get(s.name, s.labels) != s.value) differ.insert(s.name);
  for (const auto& name : differ)
    EXPECT_TRUE(name == "regexd_requests_total" || name == "regexd_connections_total" ||
                name == "regexd_connections_open")
        << name;
}

}  // namespace
