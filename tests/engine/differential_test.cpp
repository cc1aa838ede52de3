// The correctness contract, on real data: SpamAssassin's own body, rawbody,
// full and uri rules (all those PCRE2 accepts), compiled as one class "full"
// and scanned over whole raw messages of the SpamAssassin public corpus.  For
// every rule and message, regexd's answer must equal plain PCRE2's.  Every
// disagreement fails the test and is printed with rule and file.
//
// Inputs: REGEXD_SA_RULES_DIR (Debian package spamassassin) and
// REGEXD_CORPUS_DIR (scripts/fetch-corpus.sh).  Both are required: the test
// fails, rather than skips, when they are missing, because a skipped contract
// test proves nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "pcre2_reference.h"
#include "regexd/engine/engine.h"

namespace fs = std::filesystem;
using namespace regexd::engine;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

// Deterministic sample over the corpus manifest: every k-th message.
std::vector<fs::path> sample_messages(std::size_t want) {
  fs::path root = REGEXD_CORPUS_DIR;
  std::vector<fs::path> all;
  std::ifstream manifest(root / "MANIFEST.tsv");
  std::string line;
  while (std::getline(manifest, line)) {
    std::istringstream fields(line);
    std::string subset, rel;
    if (std::getline(fields, subset, '\t') && std::getline(fields, rel, '\t')) all.push_back(root / rel);
  }
  if (all.size() <= want) return all;
  std::vector<fs::path> out;
  double step = static_cast<double>(all.size()) / static_cast<double>(want);
  for (std::size_t i = 0; i < want; ++i) out.push_back(all[static_cast<std::size_t>(static_cast<double>(i) * step)]);
  return out;
}

RuleSet load_sa_rules() {
  RuleSet set;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(REGEXD_SA_RULES_DIR))
    if (e.path().extension() == ".cf") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  SpamAssassinOptions opts;
  opts.force_class = "full";
  opts.include_headers = false;
  for (const auto& f : files)
    set.merge(parse_spamassassin(slurp(f), f.string(), opts), RuleSet::OnDuplicate::kLaterWins);
  return set;
}

TEST(Differential, SpamAssassinRulesOverTheCorpusAgreeWithPcre2) {
  ASSERT_TRUE(fs::is_directory(REGEXD_SA_RULES_DIR)) << "SpamAssassin rules not found at " << REGEXD_SA_RULES_DIR;
  ASSERT_TRUE(fs::exists(fs::path(REGEXD_CORPUS_DIR) / "MANIFEST.tsv"))
      << "corpus not found at '" << REGEXD_CORPUS_DIR << "': run scripts/fetch-corpus.sh and configure with "
      << "-DREGEXD_CORPUS_DIR=...";
  RuleSet rules = load_sa_rules();
  CompileReport report;
  auto scanner = Scanner::compile(rules, {}, &report);
  ASSERT_TRUE(scanner.ok()) << scanner.error().message;
  ASSERT_GT(report.rules_total, 700u) << "too few SpamAssassin rules compiled";

  // Reference programs for every compiled rule (rejected ones are not in the set).
  std::set<std::string> rejected;
  for (const auto& e : report.rejected) rejected.insert(e.rule_id);
  std::vector<const Rule*> compiled;
  std::vector<std::unique_ptr<regexd::testing::Pcre2Reference>> refs;
  for (const auto& r : rules.rules) {
    if (rejected.count(r.id)) continue;
    auto ref = std::make_unique<regexd::testing::Pcre2Reference>(r);
    ASSERT_TRUE(ref->valid()) << r.id << " compiled by regexd but not by the reference";
    compiled.push_back(&r);
    refs.push_back(std::move(ref));
  }
  ASSERT_EQ(compiled.size(), report.rules_total);

  auto messages = sample_messages(600);
  ASSERT_GE(messages.size(), 500u) << "corpus too small";
  std::size_t disagreements = 0, undecided = 0, total_matches = 0;
  std::set<std::string> rules_that_matched;
  ScanOptions one;
  one.max_hits = 1;
  for (const auto& path : messages) {
    std::string msg = slurp(path);
    auto res = (*scanner)->scan("full", msg, one);
    ASSERT_TRUE(res.ok()) << res.error().message;
    std::set<std::string> got;
    for (const auto& [id, n] : res->hits) got.insert(id);
    std::set<std::string> limited(res->limited.begin(), res->limited.end());
    for (std::size_t i = 0; i < compiled.size(); ++i) {
      auto want = refs[i]->matches(msg);
      const std::string& id = compiled[i]->id;
      if (!want) {
        ++undecided;  // PCRE2 itself cannot answer: regexd must say "limited", not a verdict
        if (!limited.count(id) && got.count(id)) ++disagreements;
        continue;
      }
      if (*want) {
        ++total_matches;
        rules_that_matched.insert(id);
      }
      if (*want != static_cast<bool>(got.count(id))) {
        ++disagreements;
        if (disagreements <= 50)
          ADD_FAILURE() << "rule " << id << " (/" << compiled[i]->pattern << "/" << flags_to_string(compiled[i]->flags)
                        << ") on " << path << ": pcre2 says " << *want << ", regexd says " << !*want
                        << (limited.count(id) ? " (limited)" : "");
      }
    }
  }
  std::size_t n = 0, p = 0, c = 0;
  for (const auto& cr : report.classes) n += cr.native, p += cr.prefilter, c += cr.pcre2;
  std::printf("compile: classify %.0f ms, total %.0f ms, %zu demoted\n", report.classify_ms, report.total_ms,
              report.demoted.size());
  std::printf("differential: %zu rules (native %zu, prefilter %zu, pcre2 %zu) x %zu messages: %zu matches by "
              "%zu distinct rules, %zu undecided by pcre2, %zu disagreements\n",
              compiled.size(), n, p, c, messages.size(), total_matches, rules_that_matched.size(), undecided,
              disagreements);
  EXPECT_EQ(disagreements, 0u);
  // A differential test where nothing matches proves little.
  EXPECT_GT(rules_that_matched.size(), 100u);
}

}  // namespace
