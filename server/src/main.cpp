// regexd: the daemon.  Embedded defaults with no arguments; see docs/daemon.md.
#include <signal.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <cstdlib>
#include <map>
#include <thread>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "regexd/cache/store.h"
#include "regexd/cache/target.h"
#include "regexd/server/config.h"
#include "regexd/server/metrics_http.h"
#include "regexd/server/registry.h"
#include "regexd/server/server.h"

namespace {

using namespace regexd;
using server::Config;
using server::RuleSetConfig;

// What a rule set's files looked like when last loaded: a change in any
// (or a file appearing or vanishing under a glob) triggers a reload.
struct FileStamp {
  std::string path;
  std::int64_t mtime_ns = 0;
  std::int64_t size = -1;
  ino_t ino = 0;
  bool operator==(const FileStamp&) const = default;
};

std::vector<FileStamp> stamp(const RuleSetConfig& rs) {
  std::vector<FileStamp> out;
  auto files = server::expand_files(rs);
  if (!files) return out;
  for (const auto& f : *files) {
    struct stat st {};
    FileStamp s{f};
    if (::stat(f.c_str(), &st) == 0) {
      s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
      s.size = st.st_size;
      s.ino = st.st_ino;
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Reads one configured rule set's files; nullopt (logged) when its globs
// cannot be expanded.
std::optional<engine::RuleSet> read_ruleset(const RuleSetConfig& rs) {
  std::vector<std::string> files;
  if (!rs.files.empty()) {
    auto expanded = server::expand_files(rs);
    if (!expanded) {
      spdlog::error("{}", expanded.error().message);
      return std::nullopt;
    }
    files = std::move(*expanded);
  }
  return server::load_rules(rs, files);
}

// Loads one configured rule set into the registry.  Returns false (logged)
// when nothing could be installed; the previous version then stays.
bool load_ruleset(server::Registry& registry, const RuleSetConfig& rs) {
  auto rules = read_ruleset(rs);
  if (!rules) return false;
  auto loaded = registry.load(rs.name, std::move(*rules));
  if (!loaded) {
    spdlog::error("{}", loaded.error().message);
    return false;
  }
  for (const auto& e : loaded->rejected) spdlog::warn("rule set {}: {}", rs.name, e.to_string());
  return true;
}

// The compile options of every rule set, for the registry and --prewarm
// alike: the cache key depends on them, so both must use this.  The thread
// count is not in the key: by default a running daemon's builds take half
// the cores (the rest are the scans'), while --prewarm, which serves no
// scans, takes them all.
engine::CompileOptions compile_options(const Config& cfg, bool prewarm = false) {
  engine::CompileOptions o;
  o.cost_check = cfg.compile.cost_check;
  o.calibration = cfg.compile.calibration;  // compile.calibrate, read with the config
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  o.threads = cfg.compile.threads ? cfg.compile.threads : prewarm ? cores : std::max(1u, cores / 2);
  return o;
}

// What --prewarm did with one rule set, through this machine's Store or
// (--target) a TargetStore.
struct Prewarmed {
  bool compiled = false;
  std::size_t rules = 0;
  std::string save_error;  // compiled but not saved: why
};
using PrewarmFn =
    std::function<Result<Prewarmed>(const engine::RuleSet&, const engine::CompileOptions&, const std::string&)>;

PrewarmFn prewarm_into(cache::Store& store) {
  return [&store](const engine::RuleSet& rules, const engine::CompileOptions& o,
                  const std::string& name) -> Result<Prewarmed> {
    auto got = store.get_or_compile(rules, o, name);
    if (!got) return got.error();
    return Prewarmed{got->source == cache::LoadResult::Source::kCompiled, got->scanner->rule_count(), got->save_error};
  };
}

PrewarmFn prewarm_into(cache::TargetStore& store) {
  return [&store](const engine::RuleSet& rules, const engine::CompileOptions& o,
                  const std::string& name) -> Result<Prewarmed> {
    auto got = store.get_or_compile(rules, o, name);
    if (!got) return got.error();
    if (got->published) spdlog::info("prewarm: rule set {}: entry published to the remote tier", name);
    return Prewarmed{got->source == cache::TargetResult::Source::kCompiled, got->rules, {}};
  };
}

// The cache quota (cache.max_size, max_age), at start-up and then every
// cache.prune_interval: pushed rule sets and edits of rules files add entries
// while the daemon runs.
void prune_cache(cache::Store& store, const server::CacheConfig& c) {
  if (!c.max_size && !c.max_age) return;
  cache::PruneOptions po;
  po.max_size = c.max_size;
  po.max_age = c.max_age;
  auto rep = store.prune(po);
  if (!rep.removed.empty())
    spdlog::info("cache: pruned {} files, {} bytes; {} bytes kept", rep.removed.size(), rep.bytes_removed,
                 rep.bytes_kept);
}

// --prewarm: compiles every configured rule set that the cache lacks, with
// the options the registry uses (so the daemon's next start finds them), and
// returns the exit status: 0 all present or compiled, 1 any failed.
int prewarm(const PrewarmFn& get_or_compile, const Config& cfg) {
  int failed = 0;
  for (const auto& rs : cfg.rulesets) {
    auto rules = read_ruleset(rs);
    if (!rules) {
      ++failed;
      continue;
    }
    for (const auto& e : rules->rejected) spdlog::warn("rule set {}: {}", rs.name, e.to_string());
    auto t0 = std::chrono::steady_clock::now();
    const engine::CompileOptions options = compile_options(cfg, /*prewarm=*/true);
    auto got = get_or_compile(*rules, options, rs.name);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!got || got->rules == 0) {
      spdlog::error("prewarm: rule set {}: {}", rs.name, got ? "no usable rule" : got.error().message);
      ++failed;
      continue;
    }
    const bool compiled = got->compiled;
    spdlog::info("prewarm: rule set {}: {} in {:.0f} ms ({} rules{}){}", rs.name,
                 compiled ? "compiled" : "already in the cache", ms, got->rules,
                 compiled ? ", " + std::to_string(options.threads) + " threads" : "",
                 compiled && !got->save_error.empty() ? "; not saved: " + got->save_error : "");
    if (compiled && !got->save_error.empty()) ++failed;
  }
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"regexd: regex compile-and-scan sidecar for Rspamd (docs/daemon.md)"};
  std::string config_path, socket, cache_dir, tcp, metrics_listen, log_level = "info", name = "default",
      format = "native", cls;
  std::vector<std::string> rules;
  int workers = -1;
  bool no_cache = false, do_prewarm = false;
  app.add_option("--config", config_path, "TOML config file")->check(CLI::ExistingFile);
  app.add_option("--socket", socket, "Unix socket path (overrides the config)");
  app.add_option("--tcp", tcp, "also listen on this loopback host:port");
  app.add_option("--metrics", metrics_listen, "serve GET /metrics on this loopback host:port (metrics.listen)");
  app.add_option("--cache", cache_dir, "cache root (overrides the config)");
  app.add_flag("--no-cache", no_cache, "do not use the on-disk cache");
  app.add_option("--workers", workers, "worker threads (0: number of cores)");
  app.add_option("--rules", rules, "serve these rules files as one rule set instead of the config's");
  app.add_option("--format", format, "format of --rules files")
      ->check(CLI::IsMember({"native", "spamassassin", "rspamd-map"}));
  app.add_option("--class", cls, "class for rspamd-map rules / forced class for SpamAssassin");
  app.add_option("--name", name, "name of the --rules rule set");
  app.add_flag("--prewarm", do_prewarm,
               "compile the configured rule sets into the cache and exit (0: all there; 1: some failed)");
  std::string target;
  app.add_option("--target", target,
                 "with --prewarm: write the entries another machine looks up (aarch64 from an x86_64 Vectorscan "
                 "build; docs/cache-format.md, Target entries)");
  app.add_option("--log-level", log_level, "debug, info, warning, error")
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  // The same facts as the greeting's server string: what an operator (or a
  // package test) needs to tell which build and library this is.
  const auto& info = engine::engine_info();
  app.set_version_flag("--version", std::string("regexd ") + REGEXD_VERSION + " " + info.flavor + " " +
                                        info.runtime_version + " " + info.arch + " pcre2 " + info.pcre2_version + " " +
                                        info.allocator);
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_logger_mt("regexd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e regexd[%P] %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level == "warning" ? "warn" : log_level));
  spdlog::flush_on(spdlog::level::debug);
  // The library's own scan code gave answers other than PCRE2's: regexd runs
  // a narrower copy (engine/src/hs_runtime.h), slower but right.
  if (!info.scan_code_note.empty())
    spdlog::warn("{} {}: {}", info.flavor, info.runtime_version, info.scan_code_note);

  Config cfg;
  if (config_path.empty()) {
    cfg = server::default_config();
  } else {
    auto loaded = server::load_config(config_path);
    if (!loaded) {
      std::fprintf(stderr, "regexd: %s\n", loaded.error().message.c_str());
      return 2;
    }
    cfg = std::move(*loaded);
  }
  // As the file says, before command-line overrides: what SIGHUP compares with.
  Config file_cfg = cfg;
  if (!socket.empty()) cfg.server.socket = socket;
  if (!tcp.empty()) cfg.server.tcp = tcp;
  if (!metrics_listen.empty()) cfg.metrics.listen = metrics_listen;
  if (workers >= 0) cfg.server.workers = static_cast<unsigned>(workers);
  if (!cache_dir.empty()) cfg.cache.root = cache_dir;
  if (no_cache) cfg.cache.enabled = false;
  if (!rules.empty()) {
    RuleSetConfig rs;
    rs.name = name;
    rs.format = *engine::parse_rule_format(format);
    rs.cls = cls;
    rs.files = rules;
    cfg.rulesets = {rs};
  }

  // Signals are taken synchronously by this thread; every thread started
  // below inherits the mask.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  const cache::LogFn cache_log = [](cache::LogLevel level, const std::string& msg) {
    switch (level) {
      case cache::LogLevel::kDebug: spdlog::debug("cache: {}", msg); break;
      case cache::LogLevel::kInfo: spdlog::info("cache: {}", msg); break;
      case cache::LogLevel::kWarning: spdlog::warn("cache: {}", msg); break;
      case cache::LogLevel::kError: spdlog::error("cache: {}", msg); break;
    }
  };
  // Entries for another machine: nothing of this machine's own directory is
  // opened, pruned or served.
  if (!target.empty()) {
    if (!do_prewarm || !cfg.cache.enabled) {
      spdlog::error("--target needs --prewarm and a cache");
      return 2;
    }
    const auto& host = cache::current_tags();
    auto tags = host ? cache::target_tags(*host, target) : host;
    if (!tags) {
      spdlog::error("prewarm --target: {}", tags.error().message);
      return 2;
    }
    auto ts = cache::TargetStore::open(cfg.cache.root.empty() ? cache::default_cache_root() : cfg.cache.root, *tags,
                                       cache_log);
    if (!ts) {
      spdlog::error("prewarm: cache: {}", ts.error().message);
      return 2;
    }
    spdlog::info("prewarm: entries for {} in {}", target, (*ts)->platform_dir().string());
    if (cfg.remote.enabled && !cfg.remote.options.signing_key) {
      spdlog::warn("prewarm: remote tier {}: not publishing: no signing_key", cfg.remote.options.endpoint);
    } else if (cfg.remote.enabled) {
      // The target's entries also go to the shared tier, where the boards'
      // Store looks on a local miss (docs/arm64.md, the fleet).  (Without a
      // signing key nothing would be published: no connection then.)
      auto remote = cache::RemoteStore::open_redis(cfg.remote.options, cache_log);
      if (!remote) {
        spdlog::warn("prewarm: remote tier disabled: {}", remote.error().message);
      } else {
        spdlog::info("prewarm: publishing {}'s entries to {}", target, cfg.remote.options.endpoint);
        (*ts)->set_remote(std::move(*remote));
      }
    }
    return prewarm(prewarm_into(**ts), cfg);
  }

  std::unique_ptr<cache::Store> store;
  if (cfg.cache.enabled) {
    cache::StoreOptions so;
    if (!cfg.cache.root.empty()) so.root = cfg.cache.root;
    so.shared_images = cfg.cache.shared_images;
    so.log = cache_log;
    if (cfg.remote.enabled) {
      // A remote that cannot be set up is a miss source less, never a
      // reason not to serve (docs/daemon.md, "Remote cache").
      auto remote = cache::RemoteStore::open_redis(cfg.remote.options, so.log);
      if (remote) {
        so.remote = std::move(*remote);
        spdlog::info("cache: remote tier {} ({} trusted key(s), {})", cfg.remote.options.endpoint,
                     cfg.remote.options.trusted.size(),
                     cfg.remote.options.signing_key ? "publishing" : "not publishing: no signing_key");
      } else {
        spdlog::warn("cache: remote tier disabled: {}", remote.error().message);
      }
    }
    auto opened = cache::Store::open(so);
    if (!opened) {
      spdlog::warn("cache disabled: {}", opened.error().message);
    } else {
      store = std::move(*opened);
      spdlog::info("cache: {}", store->platform_dir().string());
      prune_cache(*store, cfg.cache);
    }
  }

  if (do_prewarm) {
    if (!store) {
      spdlog::error("prewarm: no cache to fill ({})", cfg.cache.enabled ? "it could not be opened" : "--no-cache");
      return 2;
    }
    return prewarm(prewarm_into(*store), cfg);
  }

  server::Registry registry({store.get(), compile_options(cfg), cfg.compile.max_queue,
                             std::chrono::duration_cast<std::chrono::milliseconds>(cfg.compile.timeout),
                             cfg.compile.nice, cfg.server.heavy_nice});
  for (const auto& rs : cfg.rulesets) cfg.server.configured_names.push_back(rs.name);
  server::Server srv(cfg.server, registry);
  if (auto st = srv.bind(); !st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  // Its own thread, reading the counters the server keeps (docs/daemon.md, Metrics).
  std::optional<server::MetricsHttp> metrics;
  if (cfg.metrics.enabled()) {
    metrics.emplace(cfg.metrics, [&srv] { return srv.metrics_text(); });
    if (auto st = metrics->bind(); !st) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
  }
  std::map<std::string, std::vector<FileStamp>> stamps;
  for (const auto& rs : cfg.rulesets) {
    stamps[rs.name] = stamp(rs);
    // Its entry from the last run is read while its files are parsed
    // (cache::Store::prefetch); not on reloads, which come because the
    // files changed.
    if (store) store->prefetch(rs.name);
    load_ruleset(registry, rs);
  }
  srv.start();
  if (metrics) metrics->start();

  auto reload = [&](const Config& c, bool only_changed) {
    for (const auto& rs : c.rulesets) {
      auto now = stamp(rs);
      if (only_changed && (!rs.watch || rs.files.empty() || now == stamps[rs.name])) continue;
      spdlog::info("rule set {}: {}", rs.name, only_changed ? "files changed, reloading" : "reloading");
      stamps[rs.name] = std::move(now);
      load_ruleset(registry, rs);
    }
  };
  auto next_prune = std::chrono::steady_clock::now() + cfg.cache.prune_interval;
  for (;;) {
    timespec ts{};
    auto interval = cfg.server.watch_interval;
    ts.tv_sec = static_cast<time_t>(interval.count() / 1000);
    ts.tv_nsec = static_cast<long>((interval.count() % 1000) * 1'000'000);
    int sig = ::sigtimedwait(&sigs, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if (sig == SIGHUP) {
      Config fresh = cfg;
      if (!cfg.path.empty()) {
        auto again = server::load_config(cfg.path);
        if (!again) {
          spdlog::error("SIGHUP: {}; keeping the running configuration", again.error().message);
          continue;
        }
        // Rule sets are reloaded; the other settings need a restart: each
        // changed one is named, so an operator does not believe it applied.
        for (const auto& key : server::changed_settings(file_cfg, *again))
          spdlog::warn("SIGHUP: {} changed in {}; it takes effect at the next restart", key, cfg.path.string());
        file_cfg = *again;
        // --rules replaces the file's rule sets, on SIGHUP as at start-up.
        fresh.rulesets = rules.empty() ? again->rulesets : cfg.rulesets;
        for (const auto& v : registry.all()) {
          bool kept = false;
          for (const auto& rs : fresh.rulesets) kept |= rs.name == v->name;
          if (!kept && stamps.count(v->name)) {
            registry.remove(v->name);
            stamps.erase(v->name);
            spdlog::info("rule set {}: removed from the configuration", v->name);
          }
        }
        cfg.rulesets = fresh.rulesets;
      }
      spdlog::info("SIGHUP: reloading rule sets");
      reload(cfg, false);
      continue;
    }
    reload(cfg, true);
    if (store && std::chrono::steady_clock::now() >= next_prune) {
      prune_cache(*store, cfg.cache);
      next_prune = std::chrono::steady_clock::now() + cfg.cache.prune_interval;
    }
  }
  if (metrics) metrics->stop();
  srv.stop();
  // A Hyperscan compile cannot be interrupted and may run for minutes; the
  // registry's destructor would wait for it.  Nothing is lost by leaving it:
  // cache saves are atomic (temp file + rename), so a save cut short leaves
  // at most a temp file that the next start removes.
  spdlog::shutdown();
  std::fflush(nullptr);
  std::_Exit(0);
}
