#include "regexd/server/config.h"

#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <tuple>
#include <toml++/toml.h>

#include "regexd/cache/signing.h"
#include "regexd/cache/units.h"
#include "regexd/engine/calibration.h"

namespace regexd::server {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSpamAssassinGlob = "/usr/share/spamassassin/*.cf";

std::string where(const fs::path& file, const toml::node& node, std::string_view key) {
  return file.string() + ":" + std::to_string(node.source().begin.line) + ": " + std::string(key);
}

// Every key of `table` must be in `known`; typos are errors, not silence.
Status check_keys(const fs::path& file, const toml::table& table, std::string_view section,
                  std::initializer_list<std::string_view> known) {
  for (const auto& [k, v] : table) {
    if (std::find(known.begin(), known.end(), k.str()) == known.end())
      return make_error(ErrorCode::kInvalidArgument,
                        where(file, v, std::string(section) + "." + std::string(k.str())) + ": unknown key");
  }
  return {};
}

// One table of the file, read in one pass: typed reads remember the first
// wrong type, so the section is checked once after reading it.
struct Section {
  const fs::path& file;
  const toml::table& table;
  std::string name;  // "server", "rulesets.NAME"
  std::optional<Error> error;

  template <typename T>
  std::optional<T> get(std::string_view key) {
    const toml::node* n = table.get(key);
    if (!n || error) return std::nullopt;
    auto v = n->template value<T>();
    if (!v)
      error = make_error(ErrorCode::kInvalidArgument, where(file, *n, name + "." + std::string(key)) + ": wrong type");
    return v;
  }
  // A bad value of `key` (present in the table).
  Error invalid(std::string_view key, const std::string& why) const {
    return make_error(ErrorCode::kInvalidArgument,
                      where(file, *table.get(key), name + "." + std::string(key)) + ": " + why);
  }
};

// server.load_rules: "any", "new", "off", or a list of rule-set names.
Status read_load_rules(Section& s, ServerConfig& out) {
  const toml::node* n = s.table.get("load_rules");
  if (!n) return {};
  if (auto word = n->value<std::string>()) {
    if (*word == "any") out.load_rules = LoadRulesPolicy::kAny;
    else if (*word == "new") out.load_rules = LoadRulesPolicy::kNew;
    else if (*word == "off") out.load_rules = LoadRulesPolicy::kOff;
    else return s.invalid("load_rules", "expected \"any\", \"new\", \"off\" or a list of rule-set names");
    return {};
  }
  const toml::array* names = n->as_array();
  if (!names) return s.invalid("load_rules", "expected \"any\", \"new\", \"off\" or a list of rule-set names");
  out.load_rules = LoadRulesPolicy::kListed;
  for (const auto& e : *names) {
    auto name = e.value<std::string>();
    if (!name || name->empty()) return s.invalid("load_rules", "expected rule-set names (non-empty strings)");
    out.load_rules_names.push_back(*name);
  }
  return {};
}

// server.allowed_uids / allowed_gids: numbers, or user / group names.
template <typename Id>
Status read_ids(Section& s, std::string_view key, bool users, std::vector<Id>& out) {
  const toml::node* n = s.table.get(key);
  if (!n) return {};
  const toml::array* list = n->as_array();
  if (!list) return s.invalid(key, "expected a list of ids or names");
  for (const auto& e : *list) {
    if (auto id = e.value<std::int64_t>(); id && *id >= 0 && *id < 0xffffffffll) {
      out.push_back(static_cast<Id>(*id));
    } else if (auto name = e.value<std::string>()) {
      if (users) {
        const passwd* pw = ::getpwnam(name->c_str());
        if (!pw) return s.invalid(key, "no such user '" + *name + "'");
        out.push_back(static_cast<Id>(pw->pw_uid));
      } else {
        const group* gr = ::getgrnam(name->c_str());
        if (!gr) return s.invalid(key, "no such group '" + *name + "'");
        out.push_back(static_cast<Id>(gr->gr_gid));
      }
    } else {
      return s.invalid(key, "expected a list of ids or names");
    }
  }
  return {};
}

// "0660" and the like; nullopt when not an octal mode.
std::optional<mode_t> parse_mode(const std::string& text) {
  char* end = nullptr;
  unsigned long m = std::strtoul(text.c_str(), &end, 8);
  if (text.empty() || *end || m > 0777) return std::nullopt;
  return static_cast<mode_t>(m);
}

// [metrics]: where the /metrics listener listens (docs/daemon.md, Metrics).
Status read_metrics(const fs::path& file, const toml::table& t, MetricsConfig& out) {
  if (auto st = check_keys(file, t, "metrics", {"listen", "socket", "socket_mode", "max_connections", "timeout"}); !st)
    return st;
  Section s{file, t, "metrics", std::nullopt};
  auto listen = s.get<std::string>("listen");
  auto socket = s.get<std::string>("socket");
  auto mode = s.get<std::string>("socket_mode");
  auto max_conn = s.get<std::int64_t>("max_connections");
  auto timeout = s.get<std::string>("timeout");
  if (s.error) return *s.error;
  if (listen) {
    // The address itself is checked when it is bound (numeric, loopback).
    if (listen->find(':') == std::string::npos) return s.invalid("listen", "expected a loopback HOST:PORT such as \"127.0.0.1:9339\"");
    out.listen = *listen;
  }
  if (socket) {
    if (socket->empty() || socket->size() > 107) return s.invalid("socket", "expected a path of 1 to 107 bytes");
    out.socket = *socket;
  }
  if (mode) {
    auto m = parse_mode(*mode);
    if (!m) return s.invalid("socket_mode", "expected an octal mode such as \"0660\"");
    out.socket_mode = *m;
  }
  if (max_conn) {
    if (*max_conn < 1 || *max_conn > 1024) return s.invalid("max_connections", "expected 1..1024");
    out.max_connections = static_cast<std::size_t>(*max_conn);
  }
  if (timeout) {
    auto v = cache::parse_age(*timeout);
    if (!v || v->count() == 0 || v->count() > 300) return s.invalid("timeout", "expected a duration from 1s to 300s, e.g. \"5s\"");
    out.timeout = *v;
  }
  return {};
}

// [remote]: the shared Redis cache tier (docs/daemon.md, "Remote cache").
// Key files are read here, so a missing or loose secret key or a bad
// trusted key is a configuration error naming the file, line and key.
Status read_remote(const fs::path& file, const toml::table& t, RemoteConfig& out) {
  if (auto st = check_keys(file, t, "remote",
                           {"redis", "connect_timeout", "timeout", "ttl", "max_entry_size", "key_prefix",
                            "lock_expiry", "wait", "retry_after", "signing_key", "trusted_keys"});
      !st)
    return st;
  Section s{file, t, "remote", std::nullopt};
  auto redis = s.get<std::string>("redis");
  auto prefix = s.get<std::string>("key_prefix");
  auto max_entry = s.get<std::string>("max_entry_size");
  auto signing = s.get<std::string>("signing_key");
  if (s.error) return *s.error;
  cache::RemoteOptions& o = out.options;
  // Durations in ms ("250ms") or the cache's units ("2s", "10m", "30d").
  auto duration = [&](std::string_view key, std::chrono::milliseconds lo, std::chrono::milliseconds hi,
                      std::chrono::milliseconds& field) -> Status {
    auto text = s.get<std::string>(key);
    if (s.error) return *s.error;
    if (!text) return {};
    std::optional<std::chrono::milliseconds> v;
    if (text->size() > 2 && text->substr(text->size() - 2) == "ms") {
      if (auto n = cache::parse_size(text->substr(0, text->size() - 2))) v = std::chrono::milliseconds(*n);
    } else if (auto a = cache::parse_age(*text)) {
      v = std::chrono::duration_cast<std::chrono::milliseconds>(*a);
    }
    if (!v || *v < lo || *v > hi)
      return s.invalid(key, "expected a duration from " + std::to_string(lo.count()) + " ms to " +
                                std::to_string(hi.count() / 1000) + " s, e.g. \"500ms\" or \"10m\"");
    field = *v;
    return {};
  };
  using std::chrono::milliseconds;
  constexpr milliseconds kDay{86400000}, kYear{kDay * 366};
  std::chrono::milliseconds ttl = o.ttl;
  for (auto [key, lo, hi, field] : {std::tuple{"connect_timeout", milliseconds(1), milliseconds(60000), &o.connect_timeout},
                                    std::tuple{"timeout", milliseconds(1), milliseconds(60000), &o.io_timeout},
                                    std::tuple{"ttl", milliseconds(1000), kYear, &ttl},
                                    std::tuple{"lock_expiry", milliseconds(1000), kDay, &o.lock_expiry},
                                    std::tuple{"wait", milliseconds(0), kDay, &o.wait},
                                    std::tuple{"retry_after", milliseconds(100), kDay, &o.retry_after}})
    if (auto st = duration(key, lo, hi, *field); !st) return st;
  o.ttl = std::chrono::duration_cast<std::chrono::seconds>(ttl);
  if (!redis || redis->empty()) return make_error(ErrorCode::kInvalidArgument, where(file, t, "remote.redis") +
                                                      ": missing (a Unix socket path or host:port)");
  o.endpoint = *redis;
  if (prefix) o.key_prefix = *prefix;
  if (max_entry) {
    auto v = cache::parse_size(*max_entry);
    if (!v || *v < 1024) return s.invalid("max_entry_size", "expected a size such as \"512M\"");
    o.max_entry_size = *v;
  }
  if (signing) {
    fs::path p = *signing;
    if (p.is_relative()) p = file.parent_path() / p;
    auto key = cache::read_secret_key(p);
    if (!key) return s.invalid("signing_key", key.error().message);
    o.signing_key = std::move(*key);
  }
  const toml::array* trusted = t.get_as<toml::array>("trusted_keys");
  if (!trusted || trusted->empty())
    return make_error(ErrorCode::kInvalidArgument,
                      where(file, trusted ? static_cast<const toml::node&>(*trusted) : t, "remote.trusted_keys") +
                          ": expected a non-empty list of public keys (files from `regexctl keygen`, or 64 hex digits)");
  for (const auto& e : *trusted) {
    auto text = e.value<std::string>();
    if (!text) return s.invalid("trusted_keys", "expected strings");
    std::string v = *text;
    if (v.size() != 64 && fs::path(v).is_relative()) v = (file.parent_path() / v).string();
    auto key = cache::parse_public_key(v);
    if (!key) return s.invalid("trusted_keys", key.error().message);
    o.trusted.push_back(*key);
  }
  out.enabled = true;
  return {};
}

}  // namespace

Config default_config() {
  Config c;
  c.server.socket = default_socket_path();
  RuleSetConfig rs;
  rs.name = "default";
  glob_t g{};
  bool have_sa = ::glob(kSpamAssassinGlob, 0, nullptr, &g) == 0 && g.gl_pathc > 0;
  ::globfree(&g);
  if (have_sa) {
    rs.format = engine::RuleFormat::kSpamAssassin;
    rs.files = {kSpamAssassinGlob};
  } else {
    rs.inline_text = std::string(sample_rules());
    rs.watch = false;
  }
  c.rulesets.push_back(std::move(rs));
  return c;
}

Result<Config> load_config(const fs::path& path) {
  Config c = default_config();
  c.path = path;
  toml::table root;
  try {
    root = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    return make_error(ErrorCode::kInvalidArgument, path.string() + ":" + std::to_string(e.source().begin.line) +
                                                       ": " + std::string(e.description()));
  }
  auto invalid = [&](const toml::node& n, std::string_view key, std::string why) -> Error {
    return make_error(ErrorCode::kInvalidArgument, where(path, n, key) + ": " + why);
  };
  if (auto st = check_keys(path, root, "", {"server", "cache", "compile", "metrics", "remote", "rulesets"}); !st) return st.error();

  if (const toml::table* t = root["server"].as_table()) {
    if (auto st = check_keys(path, *t, "server",
                             {"socket", "socket_mode", "socket_group", "tcp", "workers", "max_frame",
                              "max_connections", "idle_timeout", "watch_interval", "max_pattern", "max_captures", "load_rules", "allowed_uids",
                              "allowed_gids", "tcp_load_rules", "max_buffered", "frame_timeout",
                              "max_connections_per_uid", "heavy_workers", "heavy_request", "request_timeout",
                              "max_pushed_rulesets", "heavy_nice"});
        !st)
      return st.error();
    Section s{path, *t, "server", std::nullopt};
    auto socket = s.get<std::string>("socket");
    auto mode = s.get<std::string>("socket_mode");
    auto group = s.get<std::string>("socket_group");
    auto tcp = s.get<std::string>("tcp");
    auto workers = s.get<std::int64_t>("workers");
    auto max_frame = s.get<std::string>("max_frame");
    auto max_conn = s.get<std::int64_t>("max_connections");
    auto idle = s.get<std::string>("idle_timeout");
    auto watch = s.get<std::int64_t>("watch_interval");
    auto max_pattern = s.get<std::string>("max_pattern");
    auto max_captures = s.get<std::int64_t>("max_captures");
    auto tcp_load_rules = s.get<bool>("tcp_load_rules");
    auto max_buffered = s.get<std::string>("max_buffered");
    auto frame_timeout = s.get<std::string>("frame_timeout");
    auto per_uid = s.get<std::int64_t>("max_connections_per_uid");
    auto heavy_workers = s.get<std::int64_t>("heavy_workers");
    auto heavy_request = s.get<std::string>("heavy_request");
    auto request_timeout = s.get<std::string>("request_timeout");
    auto max_pushed = s.get<std::int64_t>("max_pushed_rulesets");
    auto heavy_nice = s.get<std::int64_t>("heavy_nice");
    if (s.error) return *s.error;
    if (heavy_nice) {
      if (*heavy_nice < 0 || *heavy_nice > 19) return s.invalid("heavy_nice", "expected a nice value 0..19");
      c.server.heavy_nice = static_cast<int>(*heavy_nice);
    }
    if (max_pushed) {
      if (*max_pushed < 0 || *max_pushed > 100000) return s.invalid("max_pushed_rulesets", "expected 0..100000");
      c.server.max_pushed_rulesets = static_cast<std::size_t>(*max_pushed);
    }
    if (heavy_workers) {
      if (*heavy_workers < 0 || *heavy_workers > 1024) return s.invalid("heavy_workers", "expected 0..1024");
      c.server.heavy_workers = static_cast<unsigned>(*heavy_workers);
    }
    if (heavy_request) {
      auto v = cache::parse_size(*heavy_request);
      if (!v || *v > 0xffffffffull) return s.invalid("heavy_request", "expected a size such as \"1M\"");
      c.server.heavy_request = static_cast<std::uint32_t>(*v);
    }
    if (request_timeout) {
      auto v = cache::parse_age(*request_timeout);
      if (!v || v->count() == 0) return s.invalid("request_timeout", "expected a duration such as \"30s\"");
      c.server.request_timeout = *v;
    }
    if (max_buffered) {
      auto v = cache::parse_size(*max_buffered);
      if (!v || *v < 1024) return s.invalid("max_buffered", "expected a size such as \"256M\"");
      c.server.max_buffered = *v;
    }
    if (frame_timeout) {
      auto v = cache::parse_age(*frame_timeout);
      if (!v || v->count() == 0) return s.invalid("frame_timeout", "expected a duration such as \"30s\"");
      c.server.frame_timeout = *v;
    }
    if (per_uid) {
      if (*per_uid < 0 || *per_uid > 100000) return s.invalid("max_connections_per_uid", "expected 0..100000");
      c.server.max_connections_per_uid = static_cast<std::size_t>(*per_uid);
    }
    if (tcp_load_rules) c.server.tcp_load_rules = *tcp_load_rules;
    if (auto st = read_load_rules(s, c.server); !st) return st.error();
    if (auto st = read_ids(s, "allowed_uids", true, c.server.allowed_uids); !st) return st.error();
    if (auto st = read_ids(s, "allowed_gids", false, c.server.allowed_gids); !st) return st.error();
    if (socket) c.server.socket = *socket;
    if (mode) {
      auto m = parse_mode(*mode);
      if (!m) return s.invalid("socket_mode", "expected an octal mode such as \"0660\"");
      c.server.socket_mode = *m;
    }
    if (group) {
      if (!::getgrnam(group->c_str())) return s.invalid("socket_group", "no such group '" + *group + "'");
      c.server.socket_group = *group;
    }
    if (tcp) {
      if (tcp->rfind("127.", 0) != 0 && tcp->rfind("[::1]:", 0) != 0 && tcp->rfind("localhost:", 0) != 0)
        return s.invalid("tcp", "'" + *tcp + "' is not a loopback address (127.x.x.x:PORT or [::1]:PORT)");
      c.server.tcp = *tcp;
    }
    if (workers) {
      if (*workers < 0 || *workers > 1024) return s.invalid("workers", "expected 0..1024");
      c.server.workers = static_cast<unsigned>(*workers);
    }
    if (max_frame) {
      auto v = cache::parse_size(*max_frame);
      if (!v || *v < 1024 || *v > 0xffffffffull)
        return s.invalid("max_frame", "expected a size from 1K to 4095M, e.g. \"64M\"");
      c.server.max_frame = static_cast<std::uint32_t>(*v);
    }
    if (max_conn) {
      if (*max_conn < 1 || *max_conn > 100000) return s.invalid("max_connections", "expected 1..100000");
      c.server.max_connections = static_cast<std::size_t>(*max_conn);
    }
    if (idle) {
      auto v = cache::parse_age(*idle);
      if (!v || v->count() == 0) return s.invalid("idle_timeout", "expected a duration such as \"60s\"");
      c.server.idle_timeout = *v;
    }
    if (watch) {
      if (*watch < 100) return s.invalid("watch_interval", "expected >= 100 (ms)");
      c.server.watch_interval = std::chrono::milliseconds(*watch);
    }
    if (max_pattern) {
      auto v = cache::parse_size(*max_pattern);
      if (!v || *v < 16 || *v > (16u << 20)) return s.invalid("max_pattern", "expected a size from 16 to 16M, e.g. \"32K\"");
      c.server.pushed_rule_limits.max_bytes = static_cast<std::size_t>(*v);
    }
    if (max_captures) {
      if (*max_captures < 0 || *max_captures > 65535) return s.invalid("max_captures", "expected 0..65535");
      c.server.pushed_rule_limits.max_captures = static_cast<std::uint32_t>(*max_captures);
    }
  } else if (root.contains("server")) {
    return invalid(*root.get("server"), "server", "expected a table");
  }

  if (const toml::table* t = root["cache"].as_table()) {
    if (auto st = check_keys(path, *t, "cache", {"enabled", "root", "shared_images", "max_size", "max_age", "prune_interval"}); !st)
      return st.error();
    Section s{path, *t, "cache", std::nullopt};
    auto enabled = s.get<bool>("enabled");
    auto dir = s.get<std::string>("root");
    auto shared = s.get<bool>("shared_images");
    auto max_size = s.get<std::string>("max_size");
    auto max_age = s.get<std::string>("max_age");
    auto prune_interval = s.get<std::string>("prune_interval");
    if (s.error) return *s.error;
    if (prune_interval) {
      auto v = cache::parse_age(*prune_interval);
      if (!v || v->count() == 0) return s.invalid("prune_interval", "expected a duration such as \"1h\"");
      c.cache.prune_interval = *v;
    }
    if (enabled) c.cache.enabled = *enabled;
    if (dir) c.cache.root = *dir;
    if (shared) c.cache.shared_images = *shared;
    if (max_size) {
      c.cache.max_size = cache::parse_size(*max_size);
      if (!c.cache.max_size) return s.invalid("max_size", "expected a size such as \"500M\" (\"0\": no quota)");
      if (*c.cache.max_size == 0) c.cache.max_size.reset();
    }
    if (max_age) {
      c.cache.max_age = cache::parse_age(*max_age);
      if (!c.cache.max_age) return s.invalid("max_age", "expected an age such as \"30d\"");
    }
  }

  if (const toml::table* t = root["compile"].as_table()) {
    if (auto st = check_keys(path, *t, "compile",
                             {"cost_check", "threads", "max_queue", "timeout", "nice", "calibrate"});
        !st)
      return st.error();
    Section s{path, *t, "compile", std::nullopt};
    auto cost_check = s.get<bool>("cost_check");
    auto threads = s.get<std::int64_t>("threads");
    auto max_queue = s.get<std::int64_t>("max_queue");
    auto timeout = s.get<std::string>("timeout");
    auto nice = s.get<std::int64_t>("nice");
    auto calibrate = s.get<std::string>("calibrate");
    if (s.error) return *s.error;
    if (calibrate) {
      if (calibrate->empty()) return s.invalid("calibrate", "expected a directory of messages");
      fs::path dir = *calibrate;
      if (dir.is_relative()) dir = path.parent_path() / dir;
      auto sample = engine::load_calibration_dir(dir);
      if (!sample) return s.invalid("calibrate", sample.error().message);
      c.compile.calibrate = std::move(dir);
      c.compile.calibration = std::move(*sample);
    }
    if (nice) {
      if (*nice < 0 || *nice > 19) return s.invalid("nice", "expected a nice value 0..19");
      c.compile.nice = static_cast<int>(*nice);
    }
    if (cost_check) c.compile.cost_check = *cost_check;
    if (threads) {
      if (*threads < 0 || *threads > 1024) return s.invalid("threads", "expected 0..1024");
      c.compile.threads = static_cast<unsigned>(*threads);
    }
    if (max_queue) {
      if (*max_queue < 0 || *max_queue > 100000) return s.invalid("max_queue", "expected 0..100000");
      c.compile.max_queue = static_cast<std::size_t>(*max_queue);
    }
    if (timeout) {
      auto v = cache::parse_age(*timeout);
      if (!v || v->count() == 0) return s.invalid("timeout", "expected a duration such as \"15m\"");
      c.compile.timeout = *v;
    }
  } else if (root.contains("compile")) {
    return invalid(*root.get("compile"), "compile", "expected a table");
  }

  if (const toml::table* t = root["metrics"].as_table()) {
    if (auto st = read_metrics(path, *t, c.metrics); !st) return st.error();
  } else if (root.contains("metrics")) {
    return invalid(*root.get("metrics"), "metrics", "expected a table");
  }

  if (const toml::table* t = root["remote"].as_table()) {
    if (auto st = read_remote(path, *t, c.remote); !st) return st.error();
  } else if (root.contains("remote")) {
    return invalid(*root.get("remote"), "remote", "expected a table");
  }

  if (const toml::table* rsets = root["rulesets"].as_table()) {
    c.rulesets.clear();
    for (const auto& [name, node] : *rsets) {
      std::string section = "rulesets." + std::string(name.str());
      const toml::table* t = node.as_table();
      if (!t) return invalid(node, section, "expected a table");
      if (auto st = check_keys(path, *t, section, {"format", "files", "class", "watch"}); !st) return st.error();
      RuleSetConfig rs;
      rs.name = std::string(name.str());
      Section s{path, *t, section, std::nullopt};
      auto format = s.get<std::string>("format");
      auto cls = s.get<std::string>("class");
      auto watch = s.get<bool>("watch");
      if (s.error) return *s.error;
      if (format) {
        auto f = engine::parse_rule_format(*format);
        if (!f) return s.invalid("format", "unknown format '" + *format + "' (native, spamassassin, rspamd-map)");
        rs.format = *f;
      }
      if (cls) rs.cls = *cls;
      if (watch) rs.watch = *watch;
      const toml::array* files = t->get_as<toml::array>("files");
      if (!files || files->empty())
        return invalid(node, section + ".files", "expected a non-empty list of files or glob patterns");
      for (const auto& f : *files) {
        auto file = f.value<std::string>();
        if (!file) return invalid(f, section + ".files", "expected strings");
        fs::path p = *file;
        // Relative paths are relative to the config file, as users expect.
        if (p.is_relative()) p = path.parent_path() / p;
        rs.files.push_back(p.string());
      }
      if (rs.format == engine::RuleFormat::kRspamdMap && rs.cls.empty())
        return invalid(node, section + ".class", "rspamd-map rule sets need a class");
      c.rulesets.push_back(std::move(rs));
    }
  }
  return c;
}

std::vector<std::string> changed_settings(const Config& a, const Config& b) {
  std::vector<std::string> out;
  auto cmp = [&](const char* key, const auto& x, const auto& y) {
    if (!(x == y)) out.emplace_back(key);
  };
  const ServerConfig &s = a.server, &t = b.server;
  cmp("server.socket", s.socket, t.socket);
  cmp("server.socket_mode", s.socket_mode, t.socket_mode);
  cmp("server.socket_group", s.socket_group, t.socket_group);
  cmp("server.tcp", s.tcp, t.tcp);
  cmp("server.workers", s.workers, t.workers);
  cmp("server.max_frame", s.max_frame, t.max_frame);
  cmp("server.max_connections", s.max_connections, t.max_connections);
  cmp("server.idle_timeout", s.idle_timeout, t.idle_timeout);
  cmp("server.watch_interval", s.watch_interval, t.watch_interval);
  cmp("server.max_pattern", s.pushed_rule_limits.max_bytes, t.pushed_rule_limits.max_bytes);
  cmp("server.max_captures", s.pushed_rule_limits.max_captures, t.pushed_rule_limits.max_captures);
  cmp("server.load_rules", std::tie(s.load_rules, s.load_rules_names), std::tie(t.load_rules, t.load_rules_names));
  cmp("server.allowed_uids", s.allowed_uids, t.allowed_uids);
  cmp("server.allowed_gids", s.allowed_gids, t.allowed_gids);
  cmp("server.tcp_load_rules", s.tcp_load_rules, t.tcp_load_rules);
  cmp("server.max_buffered", s.max_buffered, t.max_buffered);
  cmp("server.frame_timeout", s.frame_timeout, t.frame_timeout);
  cmp("server.max_connections_per_uid", s.max_connections_per_uid, t.max_connections_per_uid);
  cmp("server.heavy_workers", s.heavy_workers, t.heavy_workers);
  cmp("server.heavy_nice", s.heavy_nice, t.heavy_nice);
  cmp("server.heavy_request", s.heavy_request, t.heavy_request);
  cmp("server.request_timeout", s.request_timeout, t.request_timeout);
  cmp("server.max_pushed_rulesets", s.max_pushed_rulesets, t.max_pushed_rulesets);
  cmp("cache.enabled", a.cache.enabled, b.cache.enabled);
  cmp("cache.root", a.cache.root, b.cache.root);
  cmp("cache.shared_images", a.cache.shared_images, b.cache.shared_images);
  cmp("cache.max_size", a.cache.max_size, b.cache.max_size);
  cmp("cache.max_age", a.cache.max_age, b.cache.max_age);
  cmp("cache.prune_interval", a.cache.prune_interval, b.cache.prune_interval);
  cmp("compile.cost_check", a.compile.cost_check, b.compile.cost_check);
  cmp("compile.threads", a.compile.threads, b.compile.threads);
  cmp("compile.max_queue", a.compile.max_queue, b.compile.max_queue);
  cmp("compile.timeout", a.compile.timeout, b.compile.timeout);
  cmp("compile.nice", a.compile.nice, b.compile.nice);
  cmp("compile.calibrate", a.compile.calibrate, b.compile.calibrate);
  return out;
}

Result<std::vector<std::string>> expand_files(const RuleSetConfig& rs) {
  std::vector<std::string> out;
  for (const auto& pattern : rs.files) {
    glob_t g{};
    int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    if (rc != 0 || g.gl_pathc == 0) {
      ::globfree(&g);
      return make_error(ErrorCode::kIo, "rule set " + rs.name + ": " + pattern + ": no such file");
    }
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
  }
  return out;
}

engine::RuleSet load_rules(const RuleSetConfig& rs, const std::vector<std::string>& files) {
  if (files.empty()) return engine::parse_native(rs.inline_text, "<bundled sample rules>");
  return engine::load_rules_files(files, rs.format, rs.cls);
}

}  // namespace regexd::server
