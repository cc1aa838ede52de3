// Shared inputs of the benchmarks: SpamAssassin's rules (Debian package
// spamassassin) and the public corpus (scripts/fetch-corpus.sh).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "regexd/engine/rule.h"

namespace regexd::bench {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// All SpamAssassin regex rules, with their per-kind classes (body, rawbody,
// full, url, header:*), later definitions winning as in SpamAssassin.
inline engine::RuleSet spamassassin_rules(bool headers = true, const char* force_class = nullptr) {
  std::filesystem::path dir = env_or("REGEXD_SA_RULES_DIR", "/usr/share/spamassassin");
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".cf") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  engine::SpamAssassinOptions o;
  o.include_headers = headers;
  if (force_class) o.force_class = force_class;
  engine::RuleSet set;
  for (const auto& f : files)
    set.merge(engine::parse_spamassassin(slurp(f), f.string(), o), engine::RuleSet::OnDuplicate::kLaterWins);
  return set;
}

// Up to `n` corpus messages, spread evenly over the manifest.
inline std::vector<std::string> corpus_messages(std::size_t n) {
  std::filesystem::path root = env_or("REGEXD_CORPUS_DIR", "");
  if (root.empty()) root = std::filesystem::path(env_or("HOME", "/root")) / ".cache/regexd/corpus";
  std::vector<std::string> paths;
  std::ifstream manifest(root / "MANIFEST.tsv");
  std::string line;
  while (std::getline(manifest, line)) {
    auto a = line.find('\t'), b = line.find('\t', a + 1);
    if (a != std::string::npos && b != std::string::npos) paths.push_back(line.substr(a + 1, b - a - 1));
  }
  std::vector<std::string> out;
  if (paths.empty()) return out;
  double step = std::max(1.0, static_cast<double>(paths.size()) / static_cast<double>(n));
  for (double i = 0; i < static_cast<double>(paths.size()) && out.size() < n; i += step)
    out.push_back(slurp(root / paths[static_cast<std::size_t>(i)]));
  return out;
}

}  // namespace regexd::bench
