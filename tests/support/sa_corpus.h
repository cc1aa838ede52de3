// The differential contract on real data, shared by the tests that check it
// (tests/engine/differential_test.cpp in memory, tests/cache/shared_root_test.cpp
// through a cache root shared by several flavors): SpamAssassin's rules, a
// deterministic sample of the SpamAssassin public corpus, and the comparison
// of a scanner's answers with plain PCRE2's, rule by rule, message by message.
//
// Inputs: REGEXD_SA_RULES_DIR (Debian package spamassassin) and
// REGEXD_CORPUS_DIR (scripts/fetch-corpus.sh), compile definitions.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pcre2_reference.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/engine.h"

namespace regexd::testing {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

// Deterministic sample over the corpus manifest: every k-th message.
inline std::vector<std::filesystem::path> sample_messages(std::size_t want) {
  std::filesystem::path root = REGEXD_CORPUS_DIR;
  std::vector<std::filesystem::path> all;
  std::ifstream manifest(root / "MANIFEST.tsv");
  std::string line;
  while (std::getline(manifest, line)) {
    std::istringstream fields(line);
    std::string subset, rel;
    if (std::getline(fields, subset, '\t') && std::getline(fields, rel, '\t')) all.push_back(root / rel);
  }
  if (all.size() <= want) return all;
  std::vector<std::filesystem::path> out;
  double step = static_cast<double>(all.size()) / static_cast<double>(want);
  for (std::size_t i = 0; i < want; ++i) out.push_back(all[static_cast<std::size_t>(static_cast<double>(i) * step)]);
  return out;
}

// SpamAssassin's body/rawbody/full/uri rules as one class "full", from every
// .cf file of REGEXD_SA_RULES_DIR, or only from the files named in `only`.
inline engine::RuleSet load_sa_rules(const std::vector<std::string>& only = {}) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(REGEXD_SA_RULES_DIR))
    if (e.path().extension() == ".cf" &&
        (only.empty() || std::find(only.begin(), only.end(), e.path().filename().string()) != only.end()))
      files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  engine::SpamAssassinOptions opts;
  opts.force_class = "full";
  opts.include_headers = false;
  return engine::load_spamassassin_files(files, opts);
}

// Fails the calling test unless both inputs are present: a skipped contract
// test proves nothing.
inline ::testing::AssertionResult inputs_present() {
  if (!std::filesystem::is_directory(REGEXD_SA_RULES_DIR))
    return ::testing::AssertionFailure() << "SpamAssassin rules not found at " << REGEXD_SA_RULES_DIR;
  if (!std::filesystem::exists(std::filesystem::path(REGEXD_CORPUS_DIR) / "MANIFEST.tsv"))
    return ::testing::AssertionFailure() << "corpus not found at '" << REGEXD_CORPUS_DIR
                                         << "': run scripts/fetch-corpus.sh and configure with -DREGEXD_CORPUS_DIR=...";
  return ::testing::AssertionSuccess();
}

struct Agreement {
  std::size_t rules = 0, messages = 0;
  std::size_t disagreements = 0, undecided = 0, total_matches = 0;
  std::set<std::string> rules_that_matched;
};

// Scans every message with `scanner` (class "full", one hit per rule is
// enough) and compares each compiled rule's answer with plain PCRE2's.  Every
// disagreement is a test failure naming rule, pattern and file (the first 50
// are printed).  The rules of `rules` that are not in the scanner (rejected at
// compile time) are not compared.
inline Agreement compare_with_pcre2(const engine::Scanner& scanner, const engine::RuleSet& rules,
                                    const std::vector<std::filesystem::path>& messages) {
  Agreement a;
  std::set<std::string> in_scanner;
  for (const auto& cr : scanner.compiled().rules) in_scanner.insert(cr.rule.id);
  std::vector<const engine::Rule*> compiled;
  std::vector<std::unique_ptr<Pcre2Reference>> refs;
  for (const auto& r : rules.rules) {
    if (!in_scanner.count(r.id)) continue;
    auto ref = std::make_unique<Pcre2Reference>(r);
    if (!ref->valid()) {
      ADD_FAILURE() << r.id << " (" << r.source << ":" << r.line << ") compiled by regexd but not by the reference";
      continue;
    }
    compiled.push_back(&r);
    refs.push_back(std::move(ref));
  }
  a.rules = compiled.size();
  a.messages = messages.size();
  engine::ScanOptions one;
  one.max_hits = 1;
  for (const auto& path : messages) {
    std::string msg = slurp(path);
    auto res = scanner.scan("full", msg, one);
    if (!res.ok()) {
      ADD_FAILURE() << path << ": " << res.error().message;
      continue;
    }
    std::set<std::string> got;
    for (const auto& [id, n] : res->hits) got.insert(id);
    std::set<std::string> limited(res->limited.begin(), res->limited.end());
    for (std::size_t i = 0; i < compiled.size(); ++i) {
      auto want = refs[i]->matches(msg);
      const engine::Rule& r = *compiled[i];
      if (!want) {
        ++a.undecided;  // PCRE2 itself cannot answer: regexd must say "limited", not a verdict
        if (!limited.count(r.id) && got.count(r.id)) ++a.disagreements;
        continue;
      }
      if (*want) {
        ++a.total_matches;
        a.rules_that_matched.insert(r.id);
      }
      if (*want != static_cast<bool>(got.count(r.id))) {
        ++a.disagreements;
        if (a.disagreements <= 50)
          ADD_FAILURE() << "rule " << r.id << " (" << r.source << ":" << r.line << ", /" << r.pattern << "/"
                        << engine::flags_to_string(r.flags) << ") on " << path << ": pcre2 says " << *want
                        << ", regexd says " << !*want << (limited.count(r.id) ? " (limited)" : "");
      }
    }
  }
  return a;
}

}  // namespace regexd::testing
