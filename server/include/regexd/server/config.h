// regexd::server::Config: what the daemon serves and how, from embedded
// defaults, an optional TOML file (toml++) and command-line overrides.
// The file's keys are documented in docs/daemon.md.
//
// Thread safety: plain values.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "regexd/engine/engine.h"
#include "regexd/engine/result.h"
#include "regexd/engine/rule.h"
#include "regexd/server/client.h"  // default_socket_path()
#include "regexd/server/remote_config.h"

namespace regexd::server {

struct RuleSetConfig {
  std::string name;
  engine::RuleFormat format = engine::RuleFormat::kNative;
  std::string cls;                 // class for rspamd-map; forced class for SpamAssassin
  std::vector<std::string> files;  // paths or glob patterns, in order
  std::string inline_text;         // used when `files` is empty (embedded sample)
  bool watch = true;               // reload when a file changes
};

// Which rule sets a client may create or replace with LOAD_RULES
// (server.load_rules; docs/daemon.md, "Security model").
enum class LoadRulesPolicy {
  kAny,     // "any": every name, the configured ones included (the Rspamd plugin's
            // rules_file may replace the set the daemon starts with)
  kNew,     // "new": only names the configuration does not define
  kListed,  // ["a", "b"]: only these names
  kOff,     // "off": LOAD_RULES is refused
};

struct ServerConfig {
  std::filesystem::path socket;
  mode_t socket_mode = 0660;
  std::string socket_group;  // empty: the process's group
  std::string tcp;           // "127.0.0.1:11339"; empty: none
  unsigned workers = 0;      // 0: number of cores
  std::uint32_t max_frame = 64u << 20;
  std::size_t max_connections = 256;
  std::chrono::seconds idle_timeout{60};
  std::chrono::milliseconds watch_interval{2000};
  // Pattern length and capture groups of each rule pushed by LOAD_RULES
  // (server.max_pattern, server.max_captures); a rule over them is rejected.
  engine::PatternLimits pushed_rule_limits;
  LoadRulesPolicy load_rules = LoadRulesPolicy::kAny;
  std::vector<std::string> load_rules_names;  // kListed
  // Names of the configured rule sets (set by the daemon from Config::rulesets):
  // never replaceable under kNew, even before they first load.
  std::vector<std::string> configured_names;
  // Peers of the Unix socket (SO_PEERCRED): when either list is non-empty, a
  // peer whose uid is not in allowed_uids and whose gid is not in
  // allowed_gids is disconnected at once (root and the daemon's own uid are
  // always let in).  Empty: whoever the socket's mode and group let connect.
  std::vector<uid_t> allowed_uids;
  std::vector<gid_t> allowed_gids;
  // The TCP listener only scans unless this is true (no peer credentials there).
  bool tcp_load_rules = false;
  // Bytes of partial frames all connections together may hold (at least
  // max_frame); a connection that would go over gets BUSY and is closed.
  std::uint64_t max_buffered = 256u << 20;
  // Longest time from a frame's first byte to its last.
  std::chrono::milliseconds frame_timeout{30000};
  // Connections one uid may hold (every TCP peer together counts as one);
  // 0: no cap below max_connections (with the default socket mode only
  // Rspamd's user and regexd's connect, and Rspamd needs them all).
  std::size_t max_connections_per_uid = 0;
  // Heavy requests (LOAD_RULES, and SCANs of at least heavy_request bytes)
  // run on heavy_workers threads of their own (0: 2), not on the I/O thread
  // of their connection; one that waited longer than request_timeout for
  // such a thread is answered BUSY, one whose client has gone is dropped.
  unsigned heavy_workers = 0;
  std::uint32_t heavy_request = 1u << 20;
  // Nice value of the heavy workers' threads (0..19): small SCANs on the
  // I/O threads go first when the CPU is short.
  int heavy_nice = 10;
  // Rule sets LOAD_RULES may create (each stays in memory until a restart);
  // a push of one more new name gets BUSY.  Pushing to an existing name is
  // always possible.
  std::size_t max_pushed_rulesets = 64;
  std::chrono::milliseconds request_timeout{30000};
};

// The /metrics listener (section [metrics]; MetricsHttp).  Off unless
// `listen` or `socket` is set.
struct MetricsConfig {
  std::string listen;            // loopback "127.0.0.1:9339" / "[::1]:9339"; port 0 picks one; empty: none
  std::filesystem::path socket;  // Unix socket path; empty: none
  mode_t socket_mode = 0660;
  std::size_t max_connections = 8;  // more are closed on accept
  std::size_t max_request = 8192;   // bytes of request head
  std::chrono::milliseconds timeout{5000};  // for the whole exchange
  bool enabled() const { return !listen.empty() || !socket.empty(); }
};

struct CacheConfig {
  bool enabled = true;
  std::filesystem::path root;  // empty: cache::default_cache_root()
  // Map the databases from .rxdimg files (cache::StoreOptions): a warm start
  // then reads no database into fresh memory (~12 ms of SpamAssassin's
  // start on a VM) and processes share one copy, as Rspamd's .unser files.
  bool shared_images = true;
  // The quota: at start-up and every prune_interval, the oldest entries
  // (not the ones this process uses) go until this platform's entries fit.
  // Every pushed rule set and every edit of a rules file saves an entry, so
  // without it the cache grows without bound.  "0" in the file: no quota.
  std::optional<std::uint64_t> max_size = 1ull << 30;
  std::optional<std::chrono::seconds> max_age;  // same schedule
  std::chrono::seconds prune_interval{3600};
};

// How rule sets are compiled (engine::CompileOptions the daemon exposes).
struct CompileConfig {
  bool cost_check = true;  // docs/rules.md, "Cost check"
  // Threads of one Hyperscan build (class databases in parallel); 0: half
  // the cores (at least 1), so a compile leaves the other half to scans.
  unsigned threads = 0;
  // Pushed rule sets waiting for a background build (Registry::Options).
  std::size_t max_queue = 16;
  // Longest background build before its child process is killed.
  std::chrono::seconds timeout{15 * 60};
  // Nice value of the compile child (0..19): on a busy machine a build
  // takes the CPU time scans leave (Registry::Options::compile_nice).
  int nice = 19;
  // compile.calibrate: a directory of the operator's own messages the
  // planner measures on (regexd/engine/calibration.h), relative to the
  // config file; empty = the built-in text.  Read when the config is loaded
  // (calibration: its text), so the daemon and its --prewarm compile with,
  // and look up, the same cache key as `regexctl prewarm --calibrate DIR`.
  std::filesystem::path calibrate;
  std::shared_ptr<const std::string> calibration;
};

struct Config {
  ServerConfig server;
  CacheConfig cache;
  CompileConfig compile;
  RemoteConfig remote;  // [remote]: the shared cache tier
  MetricsConfig metrics;
  std::vector<RuleSetConfig> rulesets;
  std::filesystem::path path;  // the file it came from, if any
};

// Embedded defaults: SpamAssassin's rules when installed
// (/usr/share/spamassassin/*.cf), else the bundled sample rules, as the rule
// set "default".
Config default_config();

// Reads a TOML file over the defaults.  A file that defines [rulesets]
// replaces the default rule set.  Errors name the file, line and key.
Result<Config> load_config(const std::filesystem::path& path);

// The [server], [cache] and [compile] keys whose values differ between `a`
// and `b` ("server.workers", ...), in file order.  SIGHUP applies rule sets
// only; the daemon names each of these as needing a restart.
std::vector<std::string> changed_settings(const Config& a, const Config& b);

// Expands the glob patterns of `rs.files` (sorted, in pattern order).  A
// pattern that matches nothing is an error naming it.
Result<std::vector<std::string>> expand_files(const RuleSetConfig& rs);

// Reads and parses every file of `rs` (or its inline text).
engine::RuleSet load_rules(const RuleSetConfig& rs, const std::vector<std::string>& files);

// The bundled sample rules (rules/sample.rules, compiled in).
std::string_view sample_rules();

}  // namespace regexd::server
