// regexctl: compile, scan and inspect regexd rule sets from the shell.
//
// Exit codes: 0 success, 1 usage error, 2 rules error (nothing usable, or a
// file that cannot be read), 3 runtime failure.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <filesystem>
#include <functional>
#include <map>
#include <fstream>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include "cache_transfer.h"
#include "regexd/cache/store.h"
#include "regexd/cache/target.h"
#include "regexd/cache/units.h"
#include "regexd/engine/calibration.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"
#include "regexd/engine/message.h"
#include "regexd/server/client.h"

namespace {

using regexd::engine::CompileReport;
using regexd::engine::RuleFormat;
using regexd::engine::RuleSet;
using json = nlohmann::ordered_json;

constexpr int kExitUsage = 1;
constexpr int kExitRules = 2;
constexpr int kExitRuntime = 3;

struct RulesArgs {
  std::vector<std::string> files;
  std::string format = "native";
  std::string cls;
};

// `class_flag` names the option that sets the rules' class: "--class" for
// compile (as in the docs), "--rules-class" for scan, whose --class is the
// class to scan.
void add_rules_options(CLI::App* cmd, RulesArgs& a, const std::string& class_flag) {
  cmd->add_option("--rules", a.files, "rules file(s)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--format", a.format, "native | spamassassin | rspamd-map")
      ->check(CLI::IsMember({"native", "spamassassin", "rspamd-map"}));
  cmd->add_option(class_flag, a.cls,
                  "class for rspamd-map rules; forced class for SpamAssassin body/rawbody/full/uri rules");
}

RuleSet load(const RulesArgs& a) {
  return regexd::engine::load_rules_files(a.files, *regexd::engine::parse_rule_format(a.format), a.cls);
}

// Valid JSON from arbitrary bytes (file names and rule text need not be UTF-8).
std::string text(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";  // visible, lossless for humans, valid UTF-8
      const char* hex = "0123456789abcdef";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

json report_json(const CompileReport& r) {
  json j;
  j["rules"] = r.rules_total;
  j["classify_ms"] = r.classify_ms;
  j["total_ms"] = r.total_ms;
  std::size_t n = 0, p = 0, c = 0, r2 = 0, r2p = 0;
  json classes = json::array();
  for (const auto& cr : r.classes) {
    classes.push_back({{"class", text(cr.cls)}, {"native", cr.native}, {"prefilter", cr.prefilter},
                       {"pcre2", cr.pcre2}, {"re2", cr.re2}, {"re2_prefilter", cr.re2_prefilter},
                       {"re2_sets", cr.re2_sets}, {"compile_ms", cr.compile_ms},
                       {"database_bytes", cr.database_bytes}, {"byte_parts", cr.byte_parts}});
    n += cr.native;
    p += cr.prefilter;
    c += cr.pcre2;
    r2 += cr.re2;
    r2p += cr.re2_prefilter;
  }
  j["tiers"] = {{"native", n}, {"prefilter", p}, {"pcre2", c}, {"re2", r2}, {"re2_prefilter", r2p}};
  j["classes"] = classes;
  json rej = json::array();
  for (const auto& e : r.rejected)
    rej.push_back({{"source", text(e.source)}, {"line", e.line}, {"rule", text(e.rule_id)}, {"reason", text(e.message)}});
  j["rejected"] = rej;
  json skipped = json::object();
  for (const auto& [kind, count] : r.skipped) skipped[kind] = count;
  j["skipped"] = skipped;
  json dem = json::array();
  for (const auto& [id, why] : r.demoted) dem.push_back({{"rule", text(id)}, {"reason", text(why)}});
  j["demoted"] = dem;
  json plan = json::array();
  auto ns = [](float v) { return v < 0 ? json(nullptr) : json(std::round(v)); };
  for (const auto& rp : r.plan)
    plan.push_back({{"rule", text(rp.id)}, {"class", text(rp.cls)}, {"engine", std::string(tier_name(rp.tier))},
                    {"hs_ns", ns(rp.cost.hs_ns)}, {"re2_ns", ns(rp.cost.re2_ns)}, {"pcre2_ns", ns(rp.cost.pcre2_ns)},
                    {"why", text(rp.why)}});
  j["plan"] = plan;
  return j;
}

void print_report_text(const CompileReport& r) {
  std::size_t n = 0, p = 0, c = 0, r2 = 0, r2p = 0;
  std::printf("%-28s %8s %9s %6s %5s %8s %11s %14s\n", "class", "native", "prefilter", "pcre2", "re2", "re2-sets",
              "compile_ms", "database_bytes");
  for (const auto& cr : r.classes) {
    std::printf("%-28s %8zu %9zu %6zu %5zu %8zu %11.1f %14zu\n", text(cr.cls).c_str(), cr.native, cr.prefilter,
                cr.pcre2, cr.re2 + cr.re2_prefilter, cr.re2_sets, cr.compile_ms, cr.database_bytes);
    n += cr.native;
    p += cr.prefilter;
    c += cr.pcre2;
    r2 += cr.re2;
    r2p += cr.re2_prefilter;
  }
  std::printf("total: %zu rules (native %zu, prefilter %zu, pcre2 %zu, re2 %zu, re2-prefilter %zu), %zu rejected, "
              "plan+classify %.1f ms, total %.1f ms\n",
              r.rules_total, n, p, c, r2, r2p, r.rejected.size(), r.classify_ms, r.total_ms);
  for (const auto& [kind, count] : r.skipped) std::printf("skipped %s: %zu\n", kind.c_str(), count);
  for (const auto& e : r.rejected) std::printf("rejected: %s\n", text(e.to_string()).c_str());
}

// The plan as stored in the compiled set (so a cache hit shows it too); the
// reasons exist only when this run compiled it.
void print_plan(const regexd::engine::Scanner& scanner, const CompileReport& report, bool as_json) {
  const auto& set = scanner.compiled();
  std::map<std::string, std::string> why;
  for (const auto& p : report.plan) why[p.id] = p.why;
  std::vector<long> set_of(set.rules.size(), -1);
  for (const auto& c : set.classes)
    for (std::size_t k = 0; k < c.re2_sets.size(); ++k)
      for (auto id : c.re2_sets[k]->rules()) set_of[id] = static_cast<long>(k);
  auto us = [](float ns) { return ns < 0 ? json(nullptr) : json(std::round(ns / 100.0) / 10.0); };
  if (!as_json)
    std::printf("%-34s %-24s %-13s %10s %10s %10s %4s  %s\n", "rule", "class", "engine", "hs_us", "re2_us", "pcre2_us",
                "set", "why");
  for (std::size_t i = 0; i < set.rules.size(); ++i) {
    const auto& r = set.rules[i];
    auto it = why.find(r.rule.id);
    std::string reason = it == why.end() ? "" : it->second;
    if (as_json) {
      json j{{"rule", text(r.rule.id)}, {"class", text(r.rule.cls)}, {"engine", std::string(tier_name(r.tier))},
             {"hs_us", us(r.cost.hs_ns)}, {"re2_us", us(r.cost.re2_ns)}, {"pcre2_us", us(r.cost.pcre2_ns)},
             {"re2_set", set_of[i] < 0 ? json(nullptr) : json(set_of[i])}, {"why", text(reason)}};
      std::cout << j.dump() << "\n";
      continue;
    }
    auto cell = [](float ns) {
      char b[32];
      if (ns < 0) return std::string("-");
      std::snprintf(b, sizeof b, "%.1f", ns / 1e3);
      return std::string(b);
    };
    std::printf("%-34s %-24s %-13s %10s %10s %10s %4s  %s\n", text(r.rule.id).c_str(), text(r.rule.cls).c_str(),
                std::string(tier_name(r.tier)).c_str(), cell(r.cost.hs_ns).c_str(), cell(r.cost.re2_ns).c_str(),
                cell(r.cost.pcre2_ns).c_str(), set_of[i] < 0 ? "-" : std::to_string(set_of[i]).c_str(),
                text(reason).c_str());
  }
}

bool read_file(const std::string& path, std::string* out, std::string* err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *err = path + ": cannot read: " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = std::move(ss).str();
  return true;
}



using regexd::cache::parse_age;
using regexd::cache::parse_size;

std::unique_ptr<regexd::cache::Store> open_store(const std::string& dir, int* rc) {
  regexd::cache::StoreOptions so;
  if (!dir.empty()) so.root = dir;
  auto store = regexd::cache::Store::open(so);
  if (!store) {
    std::fprintf(stderr, "regexctl: cache %s: %s\n", so.root.c_str(), store.error().message.c_str());
    *rc = kExitRuntime;
    return nullptr;
  }
  return std::move(*store);
}

const char* source_name(regexd::cache::LoadResult::Source s) {
  switch (s) {
    case regexd::cache::LoadResult::Source::kCache: return "hit";
    case regexd::cache::LoadResult::Source::kSharedImage: return "hit (shared image)";
    case regexd::cache::LoadResult::Source::kCompiled: return "compiled";
  }
  return "?";
}

// Compiles `rules`, through the cache when `cache_dir` is set.  Prints
// rejected rules to stderr.  Returns null (and sets *rc) on failure.
std::shared_ptr<const regexd::engine::Scanner> build(const RuleSet& rules, const std::string& cache_dir,
                                                     bool use_cache, const regexd::engine::CompileOptions& opts,
                                                     CompileReport* report, int* rc, std::string* how = nullptr) {
  std::shared_ptr<const regexd::engine::Scanner> scanner;
  if (use_cache) {
    auto store = open_store(cache_dir, rc);
    if (!store) return nullptr;
    auto res = store->get_or_compile(rules, opts, rules.rules.empty() ? "" : rules.rules.front().source);
    if (!res) {
      std::fprintf(stderr, "regexctl: %s\n", res.error().message.c_str());
      *rc = kExitRules;
      return nullptr;
    }
    if (how) *how = source_name(res->source);
    *report = res->report;
    if (res->source != regexd::cache::LoadResult::Source::kCompiled) {
      // A cache hit has no compile report; parse errors still apply.
      report->rejected = rules.rejected;
      report->skipped = rules.skipped;
      report->rules_total = res->scanner->rule_count();
    }
    scanner = res->scanner;
  } else {
    auto s = regexd::engine::Scanner::compile(rules, opts, report);
    if (!s) {
      std::fprintf(stderr, "regexctl: %s\n", s.error().message.c_str());
      *rc = kExitRules;
      return nullptr;
    }
    scanner = *s;
  }
  for (const auto& e : report->rejected) std::fprintf(stderr, "regexctl: %s\n", text(e.to_string()).c_str());
  return scanner;
}

json entry_json(const regexd::cache::EntryInfo& e) {
  json classes = json::array();
  for (const auto& c : e.classes)
    classes.push_back({{"class", text(c.cls)}, {"native", c.native}, {"prefilter", c.prefilter}, {"pcre2", c.pcre2},
                       {"re2", c.re2}, {"re2_prefilter", c.re2_prefilter}, {"re2_sets", c.re2_sets},
                       {"bytes_db_size", c.bytes_db_size}, {"bytes_db_info", c.bytes_db_info},
                       {"utf8_db_size", c.utf8_db_size}, {"utf8_db_info", c.utf8_db_info},
                       {"more_db_sizes", c.more_db_sizes}, {"compile_ms", c.compile_ms}});
  return {{"format_version", e.format_version}, {"key_scheme", e.key_scheme}, {"key", e.key.hex()},
          {"arch", e.tags.arch}, {"flavor", e.tags.flavor}, {"hs_version", e.tags.hs_version},
          {"platform_tune", e.tags.tune}, {"platform_features", e.tags.features},
          {"platform_dir", e.tags.dir_name()}, {"pcre2_version", e.tags.pcre2_version},
          {"producer", e.producer}, {"rule_set_name", text(e.rule_set_name)}, {"created_unix", e.created_unix},
          {"pcre2_match_limit", e.pcre2_match_limit}, {"pcre2_depth_limit", e.pcre2_depth_limit},
          {"rules", e.rules}, {"file_size", e.file_size}, {"header_size", e.header_size},
          {"payload_size", e.payload_size}, {"pcre2_programs", e.pcre2_programs},
          {"pcre2_programs_size", e.pcre2_programs_size}, {"checksum", e.checksum_hex}, {"classes", classes}};
}

}  // namespace

int fail_remote(const regexd::Error& e) {
  std::fprintf(stderr, "regexctl: %s\n", e.message.c_str());
  return e.code == regexd::ErrorCode::kIo || e.code == regexd::ErrorCode::kCorrupt ? kExitRuntime : kExitUsage;
}

void print_stats(const std::string& text, bool raw) {
  if (raw) {
    std::cout << text << "\n";
    return;
  }
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    std::cout << text << "\n";
    return;
  }
  std::printf("uptime %.0f s, connections %s now / %s total / %s rejected, requests %s (%s errors)\n",
              j["uptime_s"].get<double>(), j["connections"]["current"].dump().c_str(),
              j["connections"]["total"].dump().c_str(), j["connections"]["rejected"].dump().c_str(),
              j["requests"]["total"].dump().c_str(), j["requests"]["errors"].dump().c_str());
  std::printf("%-16s %7s %-9s %-8s %-10s %6s %7s %9s %6s %5s %10s %12s %9s %9s\n", "ruleset", "version", "state",
              "source", "origin", "rules", "native", "prefilter", "pcre2", "re2", "compile_ms", "scans", "p50_us",
              "p99_us");
  for (const auto& r : j["rulesets"]) {
    // re2 + re2-prefilter; absent from daemons before the planner.
    auto re2 = r["tiers"].value("re2", 0) + r["tiers"].value("re2_prefilter", 0);
    std::printf("%-16s %7s %-9s %-8s %-10s %6s %7s %9s %6s %5d %10.1f %12s %9.1f %9.1f\n",
                r["name"].get<std::string>().c_str(), r["version"].dump().c_str(),
                r["state"].get<std::string>().c_str(), r["source"].get<std::string>().c_str(),
                r.value("origin", std::string("-")).c_str(),  // absent from daemons before it
                r["rules"].dump().c_str(), r["tiers"]["native"].dump().c_str(), r["tiers"]["prefilter"].dump().c_str(),
                r["tiers"]["pcre2"].dump().c_str(), re2, r["compile_ms"].get<double>(), r["scans"].dump().c_str(),
                r["latency_us"]["p50"].get<double>(), r["latency_us"]["p99"].get<double>());
  }
}

int remote_load(regexd::server::Client& c, const RulesArgs& a, const std::string& name) {
  if (a.files.size() != 1) {
    std::fprintf(stderr, "regexctl: load takes exactly one --rules file\n");
    return kExitUsage;
  }
  std::string text, err;
  if (!read_file(a.files[0], &text, &err)) {
    std::fprintf(stderr, "regexctl: %s\n", err.c_str());
    return kExitRuntime;
  }
  auto r = c.load_rules({name, a.format, a.cls, text});
  if (!r) return fail_remote(r.error());
  std::fputs(r->report.c_str(), stderr);
  std::printf("%s: version %u, %u rules, %u rejected, %s\n", name.c_str(), r->version, r->rules, r->rejected,
              r->state.c_str());
  return 0;
}

int remote_query(regexd::server::Client& c, const std::string& ruleset, const std::string& cls,
                 const std::vector<std::string>& files) {
  for (const auto& f : files) {
    std::string data, err;
    if (!read_file(f, &data, &err)) {
      std::fprintf(stderr, "regexctl: %s\n", err.c_str());
      return kExitRuntime;
    }
    regexd::server::protocol::ScanRequest q;
    q.ruleset = ruleset;
    q.buffers.emplace_back(cls, data);
    auto r = c.scan(q);
    if (!r) return fail_remote(r.error());
    json hits = json::object();
    for (const auto& [id, n] : r->hits) hits[id] = n;
    std::cout << json{{"file", text(f)}, {"version", r->version}, {"state", r->state}, {"hits", hits},
                      {"limited", r->limited}}
                     .dump()
              << "\n";
  }
  return 0;
}

int main(int argc, char** argv) {
  CLI::App app{"regexctl: compile, scan and manage regexd rule sets and caches"};
  app.require_subcommand(1);
  unsigned threads = 0;
  app.add_option("--threads", threads, "compile threads (0 = all cores)");

  auto* version_cmd = app.add_subcommand("version", "print the engine flavor and library versions");
  bool version_json = false;
  version_cmd->add_flag("--json", version_json, "JSON output");

  // --cache DIR uses DIR; a bare --cache uses the default root.
  std::string cache_dir;
  auto add_cache = [&](CLI::App* cmd) {
    return cmd->add_option("--cache", cache_dir, "cache root (default: $XDG_CACHE_HOME/regexd, /var/lib/regexd as root)")
        ->expected(0, 1);
  };

  RulesArgs compile_args;
  bool compile_json = false;
  auto* compile_cmd = app.add_subcommand("compile", "compile a rule set and print the report");
  add_rules_options(compile_cmd, compile_args, "--class");
  compile_cmd->add_flag("--json", compile_json, "JSON report");
  // --calibrate DIR: the planner measures on these messages instead of the
  // built-in text (docs/rules.md, "Planner"); part of the cache key, so the
  // daemon finds such entries only with the same compile.calibrate.
  std::string calibrate_dir;
  auto add_calibrate = [&](CLI::App* cmd) {
    cmd->add_option("--calibrate", calibrate_dir,
                    "measure engine costs on the messages in DIR (up to 256 KiB, files in name order) instead of "
                    "the built-in text; the daemon's compile.calibrate must name the same messages to hit the cache")
        ->type_name("DIR");
  };
  add_calibrate(compile_cmd);
  auto* compile_cache = add_cache(compile_cmd);

  RulesArgs plan_args;
  bool plan_json = false;
  auto* plan_cmd = app.add_subcommand(
      "plan", "compile (or load from --cache) and print every rule's engine, measured costs and why");
  add_rules_options(plan_cmd, plan_args, "--class");
  plan_cmd->add_flag("--json", plan_json, "one JSON object per rule per line");
  add_calibrate(plan_cmd);
  auto* plan_cache = add_cache(plan_cmd);

  RulesArgs scan_args;
  std::string scan_class;
  std::vector<std::string> scan_files;
  unsigned max_hits = 100;
  auto* scan_cmd = app.add_subcommand("scan", "scan files; one JSON object per file per line");
  add_rules_options(scan_cmd, scan_args, "--rules-class");
  scan_cmd->add_option("--class", scan_class, "class of rules to run over each file")->required();
  scan_cmd->add_option("--max-hits", max_hits, "cap on each rule's hit count")->check(CLI::PositiveNumber);
  bool engine_times = false;
  scan_cmd->add_flag("--engine-times", engine_times,
                     "add engine_us: the time each engine (hyperscan, re2, pcre2) spent on the file");
  scan_cmd->add_option("files", scan_files, "files to scan")->required();
  add_calibrate(scan_cmd);
  auto* scan_cache = add_cache(scan_cmd);

  RulesArgs prewarm_args;
  auto* prewarm_cmd = app.add_subcommand("prewarm", "compile into the cache every rule set (one per --rules file) that is missing");
  add_rules_options(prewarm_cmd, prewarm_args, "--class");
  add_cache(prewarm_cmd);
  add_calibrate(prewarm_cmd);
  bool prewarm_together = false;
  prewarm_cmd->add_flag("--together", prewarm_together,
                        "all files are ONE rule set, as a daemon rule set that lists several files "
                        "(e.g. SpamAssassin's rule directory)");
  std::string prewarm_target;
  prewarm_cmd->add_option("--target", prewarm_target,
                          "write the entries another machine looks up: aarch64 (arm64) from an x86_64 Vectorscan "
                          "build (docs/cache-format.md, Target entries)");

  std::string inspect_file;
  bool inspect_json = false;
  auto* inspect_cmd = app.add_subcommand("inspect", "print every header field of a cache entry");
  inspect_cmd->add_option("file", inspect_file, "a .rxdb file")->required();
  inspect_cmd->add_flag("--json", inspect_json, "JSON output");

  std::string verify_dir;
  auto* verify_cmd = app.add_subcommand("verify", "check every entry of every platform directory of a cache root");
  verify_cmd->add_option("dir", verify_dir, "cache root (default: the default root)");

  std::string prune_dir, prune_size, prune_age;
  bool prune_foreign = false, prune_dry = false;
  auto* prune_cmd = app.add_subcommand("prune", "remove old entries (LRU by size, by age) and other platforms' entries");
  prune_cmd->add_option("dir", prune_dir, "cache root (default: the default root)");
  prune_cmd->add_option("--max-size", prune_size, "keep at most this much, e.g. 500M, 2G");
  prune_cmd->add_option("--max-age", prune_age, "remove entries unused for longer, e.g. 30d, 12h");
  prune_cmd->add_flag("--foreign", prune_foreign, "remove other platforms' directories");
  prune_cmd->add_flag("--dry-run", prune_dry, "only list what would be removed");

  // Talking to a running daemon (docs/protocol.md).
  std::string socket_path = regexd::server::default_socket_path().string();
  double wait_seconds = 0;
  auto add_socket = [&](CLI::App* cmd) {
    cmd->add_option("--socket", socket_path, "daemon socket path, or host:port")->capture_default_str();
    cmd->add_option("--wait", wait_seconds,
                    "wait up to this many seconds for the daemon to accept (one that is starting); 0: fail at once")
        ->check(CLI::Range(0.0, 3600.0));
  };
  bool stats_json = false, stats_prometheus = false;
  auto* stats_cmd = app.add_subcommand("stats", "print a running daemon's statistics");
  add_socket(stats_cmd);
  stats_cmd->add_flag("--json", stats_json, "raw JSON");
  stats_cmd->add_flag("--prometheus", stats_prometheus,
                      "the daemon's /metrics text (Prometheus format; for a node_exporter textfile collector)")
      ->excludes("--json");
  auto* ping_cmd = app.add_subcommand("ping", "check that a daemon answers");
  add_socket(ping_cmd);
  RulesArgs load_args;
  std::string load_name;
  auto* load_cmd = app.add_subcommand("load", "replace (or create) a rule set of a running daemon");
  add_socket(load_cmd);
  add_rules_options(load_cmd, load_args, "--class");
  load_cmd->add_option("--name", load_name, "rule-set name")->required();
  std::string query_ruleset = "default", query_class;
  std::vector<std::string> query_files;
  auto* query_cmd = app.add_subcommand("query", "scan files through a running daemon; one JSON object per file per line");
  add_socket(query_cmd);
  query_cmd->add_option("--ruleset", query_ruleset, "rule-set name")->capture_default_str();
  query_cmd->add_option("--class", query_class, "class of rules to run over each file")->required();
  query_cmd->add_option("files", query_files, "files to scan")->required();

  regexd::cli::TransferCommands transfer;
  regexd::cli::add_transfer_commands(app, transfer);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }

  // The options of every compile below (compile, plan, scan, prewarm).
  regexd::engine::CompileOptions compile_opts;
  compile_opts.threads = threads;
  if (!calibrate_dir.empty()) {
    auto sample = regexd::engine::load_calibration_dir(calibrate_dir);
    if (!sample) {
      std::fprintf(stderr, "regexctl: --calibrate: %s\n", sample.error().message.c_str());
      return kExitUsage;
    }
    compile_opts.calibration = std::move(*sample);
  }

  const auto& info = regexd::engine::engine_info();
  if (*version_cmd) {
    if (version_json) {
      std::cout << json{{"regexd", REGEXD_VERSION}, {"flavor", info.flavor}, {"hs_version", info.runtime_version},
                        {"arch", info.arch}, {"pcre2", info.pcre2_version}, {"allocator", info.allocator},
                        {"scan_code", info.scan_code}, {"scan_code_note", info.scan_code_note}}
                       .dump()
                << "\n";
    } else {
      std::printf("regexd %s\nengine: %s %s\narch: %s\npcre2: %s\nallocator: %s\nscan code: %s%s%s\n",
                  REGEXD_VERSION, info.flavor.c_str(), info.runtime_version.c_str(), info.arch.c_str(),
                  info.pcre2_version.c_str(), info.allocator.c_str(), info.scan_code.c_str(),
                  info.scan_code_note.empty() ? "" : " -- ", info.scan_code_note.c_str());
    }
    return 0;
  }

  if (int transfer_rc = 0; regexd::cli::run_transfer_command(transfer, &transfer_rc)) return transfer_rc;

  if (*stats_cmd || *ping_cmd || *load_cmd || *query_cmd) {
    auto client = regexd::server::Client::connect(socket_path);
    // A daemon that is starting has no socket yet, or one it does not accept
    // on: try again every millisecond until --wait runs out.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
    while (!client && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      client = regexd::server::Client::connect(socket_path);
    }
    if (!client) {
      std::fprintf(stderr, "regexctl: %s: %s\n", socket_path.c_str(), client.error().message.c_str());
      return kExitRuntime;
    }
    auto& c = **client;
    if (*ping_cmd) {
      auto st = c.ping();
      if (!st) return fail_remote(st.error());
      std::printf("%s: %s\n", socket_path.c_str(), c.hello().server.c_str());
      return 0;
    }
    if (*stats_cmd && stats_prometheus) {
      // Rendered by the daemon (METRICS): the same text as its /metrics.
      auto text = c.metrics();
      if (!text) return fail_remote(text.error());
      std::cout << *text;
      return 0;
    }
    if (*stats_cmd) {
      auto st = c.stats();
      if (!st) return fail_remote(st.error());
      print_stats(*st, stats_json);
      return 0;
    }
    if (*load_cmd) return remote_load(c, load_args, load_name);
    return remote_query(c, query_ruleset, query_class, query_files);
  }

  int rc = 0;
  if (*inspect_cmd) {
    std::string bytes, err;
    if (!read_file(inspect_file, &bytes, &err)) {
      std::fprintf(stderr, "regexctl: %s\n", err.c_str());
      return kExitRuntime;
    }
    auto e = regexd::cache::inspect_entry(bytes);
    if (!e) {
      std::fprintf(stderr, "regexctl: %s: %s\n", inspect_file.c_str(), e.error().message.c_str());
      return kExitRuntime;
    }
    json j = entry_json(*e);
    if (inspect_json) {
      std::cout << j.dump(2) << "\n";
    } else {
      for (auto& [k, v] : j.items())
        if (k != "classes") std::printf("%-18s %s\n", k.c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
      for (auto& c : j["classes"]) std::printf("class %s\n", c.dump().c_str());
    }
    return 0;
  }

  if (*verify_cmd) {
    auto store = open_store(verify_dir, &rc);
    if (!store) return rc;
    std::size_t bad_here = 0, n = 0;
    for (const auto& s : store->verify()) {
      ++n;
      std::printf("%s %s%s%s\n", s.ok ? "ok     " : (s.this_platform ? "CORRUPT" : "bad    "), s.path.c_str(),
                  s.this_platform ? "" : " (other platform)", s.ok ? "" : (": " + s.problem).c_str());
      if (!s.ok && s.this_platform) ++bad_here;
    }
    std::printf("%zu entries checked, %zu corrupt on this platform (%s)\n", n, bad_here,
                store->platform_dir().filename().c_str());
    return bad_here ? kExitRuntime : 0;
  }

  if (*prune_cmd) {
    regexd::cache::PruneOptions po;
    po.foreign = prune_foreign;
    po.dry_run = prune_dry;
    if (!prune_size.empty() && !(po.max_size = parse_size(prune_size))) {
      std::fprintf(stderr, "regexctl: --max-size %s: expected a number with optional K, M or G\n", prune_size.c_str());
      return kExitUsage;
    }
    if (!prune_age.empty() && !(po.max_age = parse_age(prune_age))) {
      std::fprintf(stderr, "regexctl: --max-age %s: expected a number with d, h, m or s\n", prune_age.c_str());
      return kExitUsage;
    }
    auto store = open_store(prune_dir, &rc);
    if (!store) return rc;
    auto rep = store->prune(po);
    for (const auto& p : rep.removed) std::printf("%s %s\n", prune_dry ? "would remove" : "removed", p.c_str());
    std::printf("removed %zu files (%llu bytes); kept %zu entries (%llu bytes)\n", rep.removed.size(),
                static_cast<unsigned long long>(rep.bytes_removed), rep.kept,
                static_cast<unsigned long long>(rep.bytes_kept));
    if (rep.locks_removed) std::printf("removed %zu lock files of gone entries\n", rep.locks_removed);
    return 0;
  }

  if (*prewarm_cmd) {
    if (prewarm_args.format == "rspamd-map" && prewarm_args.cls.empty()) {
      std::fprintf(stderr, "regexctl: --format rspamd-map needs --class\n");
      return kExitUsage;
    }
    // One job: load or compile into this platform's directory, or (--target)
    // compile into the target's; "what" is the word printed for it.
    struct Outcome {
      std::string what;
      std::size_t rules = 0;
      double ms = 0;
      std::string error;  // failed: why; or compiled but not saved: why
    };
    std::function<Outcome(const RuleSet&, const std::string&)> prewarm_one;
    std::unique_ptr<regexd::cache::Store> store;
    std::unique_ptr<regexd::cache::TargetStore> target_store;
    const regexd::engine::CompileOptions& opts = compile_opts;
    if (prewarm_target.empty()) {
      store = open_store(cache_dir, &rc);
      if (!store) return rc;
      prewarm_one = [&](const RuleSet& rules, const std::string& name) {
        auto res = store->get_or_compile(rules, opts, name);
        if (!res) return Outcome{"failed", 0, 0, res.error().message};
        return Outcome{source_name(res->source), res->scanner->rule_count(), res->load_ms,
                       res->save_error.empty() ? "" : "not saved: " + res->save_error};
      };
    } else {
      const auto& host = regexd::cache::current_tags();
      auto tags = host ? regexd::cache::target_tags(*host, prewarm_target) : host;
      if (!tags) {
        std::fprintf(stderr, "regexctl: prewarm --target: %s\n", tags.error().message.c_str());
        return kExitUsage;
      }
      std::filesystem::path root =
          cache_dir.empty() ? regexd::cache::default_cache_root() : std::filesystem::path(cache_dir);
      auto opened = regexd::cache::TargetStore::open(root, *tags);
      if (!opened) {
        std::fprintf(stderr, "regexctl: cache %s: %s\n", root.c_str(), opened.error().message.c_str());
        return kExitRuntime;
      }
      target_store = std::move(*opened);
      prewarm_one = [&](const RuleSet& rules, const std::string& name) {
        auto res = target_store->get_or_compile(rules, opts, name);
        if (!res) return Outcome{"failed", 0, 0, res.error().message};
        bool present = res->source == regexd::cache::TargetResult::Source::kPresent;
        return Outcome{present ? "present" : "compiled", res->rules, res->ms, ""};
      };
    }
    const std::filesystem::path& dir = store ? store->platform_dir() : target_store->platform_dir();
    bool tty = ::isatty(STDOUT_FILENO);
    auto format = *regexd::engine::parse_rule_format(prewarm_args.format);
    // One job per file, or one for all of them (named by the first file).
    std::vector<std::vector<std::string>> jobs;
    if (prewarm_together)
      jobs.push_back(prewarm_args.files);
    else
      for (const auto& f : prewarm_args.files) jobs.push_back({f});
    std::size_t total = jobs.size(), done = 0, failed = 0;
    for (const auto& job : jobs) {
      std::string f = job.size() == 1 ? job[0] : job[0] + " (+" + std::to_string(job.size() - 1) + " files)";
      if (tty) std::printf("\r[%zu/%zu] %s ...\033[K", done, total, f.c_str()), std::fflush(stdout);
      RuleSet rules = regexd::engine::load_rules_files(job, format, prewarm_args.cls);
      Outcome res = prewarm_one(rules, f);
      ++done;
      bool usable = res.what != "failed" && res.rules > 0;
      if (!usable || !res.error.empty()) ++failed;
      if (tty) std::printf("\r\033[K");
      std::printf("[%zu/%zu] %s: %s", done, total, f.c_str(), usable ? res.what.c_str() : "failed");
      if (res.what != "failed")
        std::printf(" (%zu rules, %.1f ms%s%s)", res.rules, res.ms, res.error.empty() ? "" : ", ", res.error.c_str());
      else
        std::printf(": %s", res.error.c_str());
      std::printf("\n");
    }
    std::printf("prewarm: %zu rule sets, %zu usable, %zu failed; cache %s\n", total, total - failed, failed,
                dir.c_str());
    return failed ? kExitRules : 0;
  }

  if (*plan_cmd) {
    if (plan_args.format == "rspamd-map" && plan_args.cls.empty()) {
      std::fprintf(stderr, "regexctl: --format rspamd-map needs --class\n");
      return kExitUsage;
    }
    RuleSet rules = load(plan_args);
    CompileReport report;
    auto scanner = build(rules, cache_dir, plan_cache->count() > 0, compile_opts, &report, &rc);
    if (!scanner) return rc;
    print_plan(*scanner, report, plan_json);
    return 0;
  }

  RulesArgs& ra = *compile_cmd ? compile_args : scan_args;
  if (ra.format == "rspamd-map" && ra.cls.empty() && *compile_cmd) {
    std::fprintf(stderr, "regexctl: --format rspamd-map needs --class\n");
    return kExitUsage;
  }
  if (ra.format == "rspamd-map" && ra.cls.empty()) ra.cls = scan_class;
  RuleSet rules = load(ra);
  bool use_cache = *compile_cmd ? compile_cache->count() > 0 : scan_cache->count() > 0;
  CompileReport report;
  std::string how;
  auto scanner = build(rules, cache_dir, use_cache, compile_opts, &report, &rc, &how);
  if (!scanner) return rc;
  std::vector<regexd::engine::RuleError> meta_errors;
  auto plan = regexd::engine::MessagePlan::build(rules, &meta_errors);
  for (const auto& e : meta_errors) std::fprintf(stderr, "regexctl: %s\n", text(e.to_string()).c_str());
  report.rejected.insert(report.rejected.end(), meta_errors.begin(), meta_errors.end());
  if (*compile_cmd) {
    if (compile_json) {
      json j = report_json(report);
      j["metas"] = plan->meta_count();
      json unsupported = json::object();
      for (const auto& [name, kind] : rules.unsupported) unsupported[text(name)] = kind;
      j["unsupported"] = unsupported;
      json reads = json::object();
      for (const auto& [meta, deps] : plan->metas_with_unsupported()) {
        json d = json::array();
        for (const auto& dep : deps) d.push_back(text(dep));
        reads[text(meta)] = d;
      }
      j["metas_reading_unsupported"] = reads;
      if (use_cache) j["cache"] = how;
      std::cout << j.dump(2) << "\n";
    } else {
      print_report_text(report);
      std::printf("metas: %zu (%zu read tests regexd cannot run, which count as 0: %zu such tests, e.g. eval rules)\n",
                  plan->meta_count(), plan->metas_with_unsupported().size(), rules.unsupported.size());
      if (use_cache) std::printf("cache: %s\n", how.c_str());
    }
    return report.rules_total == 0 ? kExitRules : 0;
  }

  // scan
  if (scanner->rule_count() == 0) {
    std::fprintf(stderr, "regexctl: no usable rules\n");
    return kExitRules;
  }
  // Each file is one buffer of --class; metas are evaluated over its hits.
  regexd::engine::MessageScanOptions sopts;
  sopts.max_hits = max_hits;
  sopts.measure_engines = engine_times;
  for (const auto& f : scan_files) {
    std::string data, err;
    if (!read_file(f, &data, &err)) {
      std::fprintf(stderr, "regexctl: %s\n", err.c_str());
      rc = kExitRuntime;
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    const regexd::engine::MessageBuffer buffer{scan_class, data};
    auto res = plan->scan(*scanner, {&buffer, 1}, sopts);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
    if (!res) {
      std::fprintf(stderr, "regexctl: %s: %s\n", f.c_str(), res.error().message.c_str());
      return kExitUsage;  // unknown class: the same for every file
    }
    json matches = json::array();
    json hits = json::object();
    for (const auto& [id, n] : res->hits) {
      matches.push_back(text(id));
      hits[text(id)] = n;
    }
    json line{{"file", text(f)}, {"matches", matches}, {"hits", hits}, {"bytes", data.size()}, {"scan_us", us}};
    if (!res->limited.empty()) {
      json lim = json::array();
      for (const auto& id : res->limited) lim.push_back(text(id));
      line["limited"] = lim;
    }
    if (engine_times)
      line["engine_us"] = {{"hyperscan", static_cast<double>(res->time.hyperscan) / 1e3},
                           {"re2", static_cast<double>(res->time.re2) / 1e3},
                           {"pcre2", static_cast<double>(res->time.pcre2) / 1e3}};
    std::cout << line.dump() << "\n";
  }
  return rc;
}
