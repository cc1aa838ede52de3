#include "regexd/server/config.h"

#include <glob.h>
#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <toml++/toml.h>

#include "regexd/cache/units.h"

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

template <typename T>
Result<std::optional<T>> get(const fs::path& file, const toml::table& t, std::string_view section,
                             std::string_view key) {
  const toml::node* n = t.get(key);
  if (!n) return std::optional<T>();
  auto v = n->value<T>();
  if (!v)
    return make_error(ErrorCode::kInvalidArgument,
                      where(file, *n, std::string(section) + "." + std::string(key)) + ": wrong type");
  return std::optional<T>(*v);
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
  if (auto st = check_keys(path, root, "", {"server", "cache", "rulesets"}); !st) return st.error();

  if (const toml::table* s = root["server"].as_table()) {
    if (auto st = check_keys(path, *s, "server",
                             {"socket", "socket_mode", "socket_group", "tcp", "workers", "max_frame",
                              "max_connections", "idle_timeout", "watch_interval"});
        !st)
      return st.error();
    auto socket = get<std::string>(path, *s, "server", "socket");
    auto mode = get<std::string>(path, *s, "server", "socket_mode");
    auto group = get<std::string>(path, *s, "server", "socket_group");
    auto tcp = get<std::string>(path, *s, "server", "tcp");
    auto workers = get<std::int64_t>(path, *s, "server", "workers");
    auto max_frame = get<std::string>(path, *s, "server", "max_frame");
    auto max_conn = get<std::int64_t>(path, *s, "server", "max_connections");
    auto idle = get<std::string>(path, *s, "server", "idle_timeout");
    auto watch = get<std::int64_t>(path, *s, "server", "watch_interval");
    for (const Error* e : {socket ? nullptr : &socket.error(), mode ? nullptr : &mode.error(),
                           group ? nullptr : &group.error(), tcp ? nullptr : &tcp.error(),
                           workers ? nullptr : &workers.error(), max_frame ? nullptr : &max_frame.error(),
                           max_conn ? nullptr : &max_conn.error(), idle ? nullptr : &idle.error(),
                           watch ? nullptr : &watch.error()})
      if (e) return *e;
    if (*socket) c.server.socket = **socket;
    if (*mode) {
      char* end = nullptr;
      unsigned long m = std::strtoul((*mode)->c_str(), &end, 8);
      if ((*mode)->empty() || *end || m > 0777)
        return invalid(*s->get("socket_mode"), "server.socket_mode", "expected an octal mode such as \"0660\"");
      c.server.socket_mode = static_cast<mode_t>(m);
    }
    if (*group) {
      if (!::getgrnam((*group)->c_str()))
        return invalid(*s->get("socket_group"), "server.socket_group", "no such group '" + **group + "'");
      c.server.socket_group = **group;
    }
    if (*tcp) {
      const std::string& t = **tcp;
      if (t.rfind("127.", 0) != 0 && t.rfind("[::1]:", 0) != 0 && t.rfind("localhost:", 0) != 0)
        return invalid(*s->get("tcp"), "server.tcp", "'" + t + "' is not a loopback address (127.x.x.x:PORT or [::1]:PORT)");
      c.server.tcp = t;
    }
    if (*workers) {
      if (**workers < 0 || **workers > 1024) return invalid(*s->get("workers"), "server.workers", "expected 0..1024");
      c.server.workers = static_cast<unsigned>(**workers);
    }
    if (*max_frame) {
      auto v = cache::parse_size(**max_frame);
      if (!v || *v < 1024 || *v > 0xffffffffull)
        return invalid(*s->get("max_frame"), "server.max_frame", "expected a size from 1K to 4095M, e.g. \"64M\"");
      c.server.max_frame = static_cast<std::uint32_t>(*v);
    }
    if (*max_conn) {
      if (**max_conn < 1 || **max_conn > 100000)
        return invalid(*s->get("max_connections"), "server.max_connections", "expected 1..100000");
      c.server.max_connections = static_cast<std::size_t>(**max_conn);
    }
    if (*idle) {
      auto v = cache::parse_age(**idle);
      if (!v || v->count() == 0)
        return invalid(*s->get("idle_timeout"), "server.idle_timeout", "expected a duration such as \"60s\"");
      c.server.idle_timeout = *v;
    }
    if (*watch) {
      if (**watch < 100) return invalid(*s->get("watch_interval"), "server.watch_interval", "expected >= 100 (ms)");
      c.server.watch_interval = std::chrono::milliseconds(**watch);
    }
  } else if (root.contains("server")) {
    return invalid(*root.get("server"), "server", "expected a table");
  }

  if (const toml::table* t = root["cache"].as_table()) {
    if (auto st = check_keys(path, *t, "cache", {"enabled", "root", "shared_images", "max_size", "max_age"}); !st)
      return st.error();
    auto enabled = get<bool>(path, *t, "cache", "enabled");
    auto dir = get<std::string>(path, *t, "cache", "root");
    auto shared = get<bool>(path, *t, "cache", "shared_images");
    auto max_size = get<std::string>(path, *t, "cache", "max_size");
    auto max_age = get<std::string>(path, *t, "cache", "max_age");
    for (const Error* e : {enabled ? nullptr : &enabled.error(), dir ? nullptr : &dir.error(),
                           shared ? nullptr : &shared.error(), max_size ? nullptr : &max_size.error(),
                           max_age ? nullptr : &max_age.error()})
      if (e) return *e;
    if (*enabled) c.cache.enabled = **enabled;
    if (*dir) c.cache.root = **dir;
    if (*shared) c.cache.shared_images = **shared;
    if (*max_size) {
      c.cache.max_size = cache::parse_size(**max_size);
      if (!c.cache.max_size) return invalid(*t->get("max_size"), "cache.max_size", "expected a size such as \"500M\"");
    }
    if (*max_age) {
      c.cache.max_age = cache::parse_age(**max_age);
      if (!c.cache.max_age) return invalid(*t->get("max_age"), "cache.max_age", "expected an age such as \"30d\"");
    }
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
      auto format = get<std::string>(path, *t, section, "format");
      auto cls = get<std::string>(path, *t, section, "class");
      auto watch = get<bool>(path, *t, section, "watch");
      if (!format) return format.error();
      if (!cls) return cls.error();
      if (!watch) return watch.error();
      if (*format) {
        auto f = engine::parse_rule_format(**format);
        if (!f)
          return invalid(*t->get("format"), section + ".format",
                         "unknown format '" + **format + "' (native, spamassassin, rspamd-map)");
        rs.format = *f;
      }
      if (*cls) rs.cls = **cls;
      if (*watch) rs.watch = **watch;
      const toml::array* files = t->get_as<toml::array>("files");
      if (!files || files->empty())
        return invalid(node, section + ".files", "expected a non-empty list of files or glob patterns");
      for (const auto& f : *files) {
        auto s = f.value<std::string>();
        if (!s) return invalid(f, section + ".files", "expected strings");
        fs::path p = *s;
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
  engine::RuleSet set;
  for (const auto& f : files)
    set.merge(engine::load_rules_file(f, rs.format, rs.cls), engine::duplicate_policy_for(rs.format));
  return set;
}

}  // namespace regexd::server
