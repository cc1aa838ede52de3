// regexctl: compile, scan and inspect regexd rule sets from the shell.
//
// Exit codes: 0 success, 1 usage error, 2 rules error (nothing usable, or a
// file that cannot be read), 3 runtime failure.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "regexd/engine/engine.h"

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
  RuleSet set;
  auto format = *regexd::engine::parse_rule_format(a.format);
  for (const auto& f : a.files)
    set.merge(regexd::engine::load_rules_file(f, format, a.cls), regexd::engine::duplicate_policy_for(format));
  return set;
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
  std::size_t n = 0, p = 0, c = 0;
  json classes = json::array();
  for (const auto& cr : r.classes) {
    classes.push_back({{"class", text(cr.cls)}, {"native", cr.native}, {"prefilter", cr.prefilter},
                       {"pcre2", cr.pcre2}, {"compile_ms", cr.compile_ms}, {"database_bytes", cr.database_bytes}});
    n += cr.native;
    p += cr.prefilter;
    c += cr.pcre2;
  }
  j["tiers"] = {{"native", n}, {"prefilter", p}, {"pcre2", c}};
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
  return j;
}

void print_report_text(const CompileReport& r) {
  std::size_t n = 0, p = 0, c = 0;
  std::printf("%-28s %8s %9s %6s %11s %14s\n", "class", "native", "prefilter", "pcre2", "compile_ms", "database_bytes");
  for (const auto& cr : r.classes) {
    std::printf("%-28s %8zu %9zu %6zu %11.1f %14zu\n", text(cr.cls).c_str(), cr.native, cr.prefilter, cr.pcre2,
                cr.compile_ms, cr.database_bytes);
    n += cr.native;
    p += cr.prefilter;
    c += cr.pcre2;
  }
  std::printf("total: %zu rules (native %zu, prefilter %zu, pcre2 %zu), %zu rejected, classify %.1f ms, total %.1f ms\n",
              r.rules_total, n, p, c, r.rejected.size(), r.classify_ms, r.total_ms);
  for (const auto& [kind, count] : r.skipped) std::printf("skipped %s: %zu\n", kind.c_str(), count);
  for (const auto& e : r.rejected) std::printf("rejected: %s\n", text(e.to_string()).c_str());
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"regexctl: compile and scan regexd rule sets"};
  app.require_subcommand(1);
  unsigned threads = 0;
  app.add_option("--threads", threads, "compile threads (0 = all cores)");

  auto* version_cmd = app.add_subcommand("version", "print the engine flavor and library versions");
  bool version_json = false;
  version_cmd->add_flag("--json", version_json, "JSON output");

  RulesArgs compile_args;
  bool compile_json = false;
  auto* compile_cmd = app.add_subcommand("compile", "compile a rule set and print the report");
  add_rules_options(compile_cmd, compile_args, "--class");
  compile_cmd->add_flag("--json", compile_json, "JSON report");

  RulesArgs scan_args;
  std::string scan_class;
  std::vector<std::string> scan_files;
  unsigned max_hits = 100;
  auto* scan_cmd = app.add_subcommand("scan", "scan files; one JSON object per file per line");
  add_rules_options(scan_cmd, scan_args, "--rules-class");
  scan_cmd->add_option("--class", scan_class, "class of rules to run over each file")->required();
  scan_cmd->add_option("--max-hits", max_hits, "cap on each rule's hit count")->check(CLI::PositiveNumber);
  scan_cmd->add_option("files", scan_files, "files to scan")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }

  const auto& info = regexd::engine::engine_info();
  if (*version_cmd) {
    if (version_json) {
      std::cout << json{{"regexd", REGEXD_VERSION}, {"flavor", info.flavor}, {"hs_version", info.runtime_version},
                        {"arch", info.arch}, {"pcre2", info.pcre2_version}}
                       .dump()
                << "\n";
    } else {
      std::printf("regexd %s\nengine: %s %s\narch: %s\npcre2: %s\n", REGEXD_VERSION, info.flavor.c_str(),
                  info.runtime_version.c_str(), info.arch.c_str(), info.pcre2_version.c_str());
    }
    return 0;
  }

  RulesArgs& ra = *compile_cmd ? compile_args : scan_args;
  if (ra.format == "rspamd-map" && ra.cls.empty() && *compile_cmd) {
    std::fprintf(stderr, "regexctl: --format rspamd-map needs --class\n");
    return kExitUsage;
  }
  if (ra.format == "rspamd-map" && ra.cls.empty()) ra.cls = scan_class;
  RuleSet rules = load(ra);
  regexd::engine::CompileOptions opts;
  opts.threads = threads;
  CompileReport report;
  auto scanner = regexd::engine::Scanner::compile(rules, opts, &report);
  for (const auto& e : report.rejected) std::fprintf(stderr, "regexctl: %s\n", text(e.to_string()).c_str());
  if (!scanner) {
    std::fprintf(stderr, "regexctl: %s\n", scanner.error().message.c_str());
    return kExitRules;
  }
  if (*compile_cmd) {
    if (compile_json)
      std::cout << report_json(report).dump(2) << "\n";
    else
      print_report_text(report);
    return report.rules_total == 0 ? kExitRules : 0;
  }

  // scan
  if (report.rules_total == 0) {
    std::fprintf(stderr, "regexctl: no usable rules\n");
    return kExitRules;
  }
  regexd::engine::ScanOptions sopts;
  sopts.max_hits = max_hits;
  int rc = 0;
  for (const auto& f : scan_files) {
    std::string data, err;
    if (!read_file(f, &data, &err)) {
      std::fprintf(stderr, "regexctl: %s\n", err.c_str());
      rc = kExitRuntime;
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto res = (*scanner)->scan(scan_class, data, sopts);
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
    std::cout << line.dump() << "\n";
  }
  return rc;
}
