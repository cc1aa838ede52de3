// Meta rules and the message-level scan: the meta language against literal
// expectations and against SpamAssassin 4.0.1's own compiled metas
// (tests/support/sa_meta_eval.pl); the SpamAssassin importer's scores,
// tflags, header tests and conditionals; MessagePlan over several buffers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "regexd/engine/engine.h"
#include "regexd/engine/message.h"
#include "regexd/engine/meta.h"

namespace {

using namespace regexd::engine;

// Evaluates one meta `expr` named M over `hits`; returns its value or 0.
double eval(const std::string& expr, const std::vector<std::pair<std::string, unsigned>>& hits = {},
            std::vector<RuleError>* errors = nullptr) {
  MetaProgram p = MetaProgram::compile({MetaRule{"M", expr, "t.cf", 1}}, errors);
  for (auto& [id, v] : p.evaluate(hits))
    if (id == "M") return v;
  return 0;
}

TEST(MetaLanguage, PerlValueSemantics) {
  const std::vector<std::pair<std::string, unsigned>> h = {{"A", 1}, {"B", 3}};
  EXPECT_EQ(eval("A && B", h), 3);   // && returns the right operand when the left is true
  EXPECT_EQ(eval("B || A", h), 3);   // || returns the left operand when it is true
  EXPECT_EQ(eval("C || B", h), 3);
  EXPECT_EQ(eval("A && C", h), 0);
  EXPECT_EQ(eval("!C", h), 1);
  EXPECT_EQ(eval("!A", h), 0);
  EXPECT_EQ(eval("A + B > 3", h), 1);
  EXPECT_EQ(eval("A + B > 4", h), 0);
  EXPECT_EQ(eval("(A + B) * 2", h), 8);
  EXPECT_EQ(eval("A + B * 2", h), 7);  // * before +
  EXPECT_EQ(eval("!A + 1", h), 1);     // ! binds tighter than +
  EXPECT_EQ(eval("A ^ B", h), 2);      // integer xor
  EXPECT_EQ(eval("A == 1 && B != 1", h), 1);
  EXPECT_EQ(eval("B >= 3 ? 5 : 6", h), 5);
  EXPECT_EQ(eval("C ? 5 : 6", h), 6);
  EXPECT_EQ(eval("B / 2", h), 1.5);
  EXPECT_EQ(eval("B / C", h), 0);       // Perl would die; never a hit here
  EXPECT_EQ(eval("-A", h), 1);          // true; got_hit counts a value <= 0 as 1
  EXPECT_EQ(eval("local_tests_only", h), 1);
  EXPECT_EQ(eval("()", h), 0);          // "meta NAME ()" declares a rule for plugins
  EXPECT_EQ(eval("UNKNOWN_RULE", h), 0);
}

TEST(MetaLanguage, MetasReadMetasInAnyDefinitionOrder) {
  MetaProgram p = MetaProgram::compile({MetaRule{"TOP", "__SUM > 2", "t.cf", 1},
                                        MetaRule{"__SUM", "__A + __B + __C", "t.cf", 2}},
                                       nullptr);
  auto hits = p.evaluate(std::vector<std::pair<std::string, unsigned>>{{"__A", 1}, {"__B", 1}, {"__C", 1}});
  std::map<std::string, double> got(hits.begin(), hits.end());
  EXPECT_EQ(got["__SUM"], 3);
  EXPECT_EQ(got["TOP"], 1);
}

TEST(MetaLanguage, BadExpressionsAndLoopsAreReportedAndNeverHit) {
  std::vector<RuleError> errors;
  MetaProgram p = MetaProgram::compile(
      {MetaRule{"BAD1", "A &&", "x.cf", 3}, MetaRule{"BAD2", "A $ B", "x.cf", 4},
       MetaRule{"LOOP1", "LOOP2 || A", "x.cf", 5}, MetaRule{"LOOP2", "LOOP1", "x.cf", 6},
       MetaRule{"BEHIND", "LOOP1 || A", "x.cf", 7}, MetaRule{"GOOD", "A", "x.cf", 8}},
      &errors);
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_EQ(errors[0].to_string(), "x.cf:3: rule BAD1: meta expression ends early: 'A &&'");
  EXPECT_NE(errors[1].to_string().find("x.cf:4: rule BAD2: invalid character '$'"), std::string::npos);
  EXPECT_NE(errors[2].to_string().find("rule LOOP1: excluded: meta dependency loop through LOOP2"),
            std::string::npos);
  auto hits = p.evaluate(std::vector<std::pair<std::string, unsigned>>{{"A", 1}});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].first, "GOOD");
}

TEST(MetaLanguage, AMetaReadingASwitchedOffMetaNeverRuns) {
  MetaRule off{"__OFF", "A", "t.cf", 1};
  off.disabled = true;
  MetaProgram p = MetaProgram::compile(
      {off, MetaRule{"NOT_OFF", "!__OFF", "t.cf", 2}, MetaRule{"CHAIN", "NOT_OFF || A", "t.cf", 3},
       MetaRule{"PLAIN", "!B", "t.cf", 4}},
      nullptr);
  auto hits = p.evaluate(std::vector<std::pair<std::string, unsigned>>{{"A", 1}});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].first, "PLAIN");
}

RuleSet sa(const std::string& text, SpamAssassinOptions options = {}) {
  return parse_spamassassin(text, "t.cf", options);
}

const Rule* find_rule(const RuleSet& set, const std::string& id) {
  for (const Rule& r : set.rules)
    if (r.id == id) return &r;
  return nullptr;
}
const MetaRule* find_meta(const RuleSet& set, const std::string& id) {
  for (const MetaRule& m : set.metas)
    if (m.id == id) return &m;
  return nullptr;
}

TEST(ParseSpamAssassinMeta, MetasScoresAndTflags) {
  RuleSet set = sa(R"(
body __A /a/
body __B /b/   # comment
body MULTI /m/
tflags MULTI multiple maxhits=3
body ALLSETS /x/
score ALLSETS 0
body NETONLY /y/
score NETONLY 0 1.5 0 1.5
meta TOP (__A && __B) # comment
score TOP 2.5
meta GONE __A
score GONE 0
body LATER /z/
meta LATER __A || __B
meta RM __A + rules_matching(__B*) + rules_matching(NOPE*)
body __B2 /b2/
)");
  EXPECT_TRUE(set.rejected.empty()) << set.rejected.front().to_string();
  ASSERT_NE(find_rule(set, "__A"), nullptr);
  EXPECT_EQ(find_rule(set, "__A")->max_hits, 1u);   // SpamAssassin counts a rule once ...
  EXPECT_EQ(find_rule(set, "MULTI")->max_hits, 3u);  // ... unless it runs multiple
  EXPECT_EQ(find_rule(set, "ALLSETS"), nullptr);     // score 0 switches it off
  EXPECT_EQ(find_rule(set, "NETONLY"), nullptr);     // 0 in score set 0
  SpamAssassinOptions net;
  net.score_set = 1;
  EXPECT_NE(find_rule(sa("body NETONLY /y/\nscore NETONLY 0 1.5 0 1.5\n", net), "NETONLY"), nullptr);
  ASSERT_NE(find_meta(set, "TOP"), nullptr);
  EXPECT_EQ(find_meta(set, "TOP")->expression, "(__A && __B)");
  ASSERT_NE(find_meta(set, "GONE"), nullptr);
  EXPECT_TRUE(find_meta(set, "GONE")->disabled);
  EXPECT_EQ(find_rule(set, "LATER"), nullptr);  // the later definition (a meta) wins
  ASSERT_NE(find_meta(set, "LATER"), nullptr);
  EXPECT_EQ(find_meta(set, "RM")->expression, "__A +  (__B+__B2)  +  (0) ");
  EXPECT_EQ(set.skipped["score 0"], 3u);
}

TEST(ParseSpamAssassinMeta, HeaderTestsNegatedExistsAndIfUnset) {
  RuleSet set = sa(R"(
header NEG   Subject !~ /^Re:/
header UNSET From =~ /unset/ [if-unset: unset@unset.unset]
header HAS   exists:Message-Id
header HASC  exists:X-Foo # comment
header EV    eval:check_for_missing_to_header()
)");
  EXPECT_TRUE(set.rejected.empty()) << set.rejected.front().to_string();
  EXPECT_TRUE(find_rule(set, "NEG")->negate);
  EXPECT_EQ(find_rule(set, "UNSET")->if_unset, "unset@unset.unset");
  EXPECT_EQ(find_rule(set, "HAS")->cls, "header:Message-Id");
  EXPECT_EQ(find_rule(set, "HAS")->kind, "exists");
  EXPECT_EQ(find_rule(set, "HASC")->cls, "header:X-Foo");
  EXPECT_EQ(set.unsupported.at("EV"), "eval");
  SpamAssassinOptions no_headers;
  no_headers.include_headers = false;
  RuleSet bodies = sa("header HAS exists:Message-Id\nheader NEG Subject !~ /x/\nbody B /b/\n", no_headers);
  ASSERT_EQ(bodies.rules.size(), 1u);
  EXPECT_EQ(bodies.rules[0].id, "B");
}

TEST(ParseSpamAssassinMeta, ConditionalsAsSpamAssassinEvaluatesThem) {
  RuleSet set = sa(R"(
ifplugin Mail::SpamAssassin::Plugin::ReplaceTags
body IN_PLUGIN /a/
else
body IN_ELSE /a/
endif
if !plugin(Mail::SpamAssassin::Plugin::ReplaceTags)
body NOT_PLUGIN /a/
endif
ifplugin Mail::SpamAssassin::Plugin::NotInstalled
body MISSING /a/
  if (version >= 3.004000)
  body NESTED /a/
  endif
endif
if (version >= 3.004002)
body NEW_ENOUGH /a/
endif
if (version < 4.000000)
body TOO_OLD /a/
endif
if can(Mail::SpamAssassin::Conf::feature_capture_rules)
body CAN /a/
endif
if can(Mail::SpamAssassin::Plugin::DecodeShortURLs::has_get)
body CANNOT /a/
endif
loadplugin Mail::SpamAssassin::Plugin::Extra
ifplugin Mail::SpamAssassin::Plugin::Extra
body LOADED_HERE /a/
endif
)");
  EXPECT_TRUE(set.rejected.empty()) << set.rejected.front().to_string();
  std::set<std::string> ids;
  for (const Rule& r : set.rules) ids.insert(r.id);
  EXPECT_EQ(ids, (std::set<std::string>{"IN_PLUGIN", "NEW_ENOUGH", "CAN", "LOADED_HERE"}));
}

TEST(ParseSpamAssassinMeta, CapturedTagsAreRejectedWithAReason) {
  RuleSet set = sa("uri URI_TAG m{^https?://x/%{GB_TO_ADDR}}i\nheader CAP To =~ /(?<GB_TO_ADDR>\\S+)/\n");
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_NE(set.rejected[0].to_string().find("t.cf:1: rule URI_TAG: uses the captured tag %{GB_TO_ADDR}"),
            std::string::npos);
  EXPECT_NE(find_rule(set, "CAP"), nullptr);  // the rule that captures is a plain rule
}

struct PlanFixture {
  RuleSet rules;
  std::shared_ptr<const Scanner> scanner;
  std::shared_ptr<const MessagePlan> plan;
  explicit PlanFixture(const std::string& cf) {
    rules = parse_spamassassin(cf, "t.cf");
    CompileOptions o;
    o.pcre2_only = true;  // answers are the same; the plan is what is tested
    scanner = Scanner::compile(rules, o, nullptr).value();
    plan = MessagePlan::build(rules, nullptr);
  }
  std::map<std::string, unsigned> scan(std::vector<MessageBuffer> buffers, bool whole = true) const {
    MessageScanOptions o;
    o.whole_message = whole;
    auto r = plan->scan(*scanner, buffers, o);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return std::map<std::string, unsigned>(r->hits.begin(), r->hits.end());
  }
};

TEST(MessagePlan, HitsSumOverBuffersCappedAsSpamAssassinCountsThem) {
  PlanFixture f(R"(
body ONCE /x/
body MANY /x/
tflags MANY multiple
body CAPPED /x/
tflags CAPPED multiple maxhits=3
meta COUNTED MANY > 3
)");
  auto hits = f.scan({{"body", "x x"}, {"body", "x"}, {"body", "xx"}});
  EXPECT_EQ(hits["ONCE"], 1u);
  EXPECT_EQ(hits["MANY"], 5u);
  EXPECT_EQ(hits["CAPPED"], 3u);
  EXPECT_EQ(hits["COUNTED"], 1u);
}

TEST(MessagePlan, MetasSeeEveryClassOfTheMessage) {
  PlanFixture f(R"(
body __BODY /money/
uri __URI /example\.com/
header __SUBJ Subject =~ /win/i
meta ALL3 __BODY && __URI && __SUBJ
meta ANY2 (__BODY + __URI + __SUBJ) >= 2
)");
  auto hits = f.scan({{"body", "send money"}, {"url", "http://example.com/"}, {"header:Subject", "You WIN"}});
  EXPECT_EQ(hits.count("ALL3"), 1u);
  EXPECT_EQ(hits.count("ANY2"), 1u);
  hits = f.scan({{"body", "send money"}, {"url", "http://other.org/"}});
  EXPECT_EQ(hits.count("ALL3"), 0u);
  EXPECT_EQ(hits.count("ANY2"), 0u);
}

TEST(MessagePlan, AbsentAndNegatedHeadersAsSpamAssassinSeesThem) {
  PlanFixture f(R"(
header NOT_RE      Subject !~ /^Re:/
header EMPTY_SUBJ  Subject =~ /^$/
header UNSET_FROM  From =~ /unset\.unset/ [if-unset: unset@unset.unset]
header HAS_MID     exists:Message-Id
header NEG_EMPTY   Message-Id !~ /^$/
body   B /./
)");
  // Subject present and not a reply; From, Message-Id absent.
  auto hits = f.scan({{"header:Subject", "Hello"}, {"body", "x"}});
  EXPECT_EQ(hits.count("NOT_RE"), 1u);
  EXPECT_EQ(hits.count("EMPTY_SUBJ"), 0u);
  EXPECT_EQ(hits.count("UNSET_FROM"), 1u);  // the if-unset value matched
  EXPECT_EQ(hits.count("HAS_MID"), 0u);
  EXPECT_EQ(hits.count("NEG_EMPTY"), 0u);   // absent: "" matches /^$/, so !~ is false
  // A reply, with From and Message-Id present.
  hits = f.scan({{"header:Subject", "Re: hello"}, {"header:From", "a@b.c"}, {"header:Message-Id", "<1@b>"}});
  EXPECT_EQ(hits.count("NOT_RE"), 0u);
  EXPECT_EQ(hits.count("UNSET_FROM"), 0u);
  EXPECT_EQ(hits.count("HAS_MID"), 1u);
  EXPECT_EQ(hits.count("NEG_EMPTY"), 1u);
  // Subject absent: SpamAssassin matches "" (undef), so the negated test hits.
  hits = f.scan({{"body", "x"}});
  EXPECT_EQ(hits.count("NOT_RE"), 1u);
  EXPECT_EQ(hits.count("EMPTY_SUBJ"), 1u);
  // Not a whole message: absent classes are just not scanned.
  hits = f.scan({{"body", "x"}}, false);
  EXPECT_EQ(hits.count("NOT_RE"), 0u);
  EXPECT_EQ(hits.count("UNSET_FROM"), 0u);
  EXPECT_EQ(hits.count("EMPTY_SUBJ"), 0u);
}

// SpamAssassin 4.0.1's own meta subs, evaluated by tests/support/sa_meta_eval.pl
// over random hit sets, against MetaProgram over the same sets: every meta of
// SpamAssassin's rule set, its value included.
TEST(MetaReferee, SpamAssassinsOwnMetasEvaluateAsSpamAssassinItself) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(REGEXD_SA_RULES_DIR))
    if (e.path().extension() == ".cf") files.push_back(e.path().string());
  ASSERT_FALSE(files.empty()) << "no SpamAssassin rules in " << REGEXD_SA_RULES_DIR;
  std::sort(files.begin(), files.end());
  RuleSet set = load_rules_files(files, RuleFormat::kSpamAssassin);
  std::vector<RuleError> errors;
  MetaProgram program = MetaProgram::compile(set.metas, &errors);
  EXPECT_TRUE(errors.empty()) << errors.front().to_string();
  ASSERT_GT(program.size(), 500u);

  // Names a meta reads, with how a hit counts: rules regexd runs (a count
  // for "multiple" rules) and tests it cannot run (SpamAssassin's evals).
  std::vector<std::pair<std::string, unsigned>> names;
  for (const Rule& r : set.rules) names.emplace_back(r.id, r.max_hits == 1 ? 1 : 4);
  for (const auto& [name, kind] : set.unsupported) names.emplace_back(name, 1);
  std::mt19937 rng(20261130);
  const int kSets = 400;
  std::vector<std::vector<std::pair<std::string, unsigned>>> sets;
  std::string input;
  for (int i = 0; i < kSets; ++i) {
    // From sparse to dense, so that both "!X" and "X && Y" metas get hit.
    std::bernoulli_distribution pick(0.01 + 0.4 * i / kSets);
    std::vector<std::pair<std::string, unsigned>> hits;
    for (const auto& [name, most] : names)
      if (pick(rng)) hits.emplace_back(name, std::uniform_int_distribution<unsigned>(1, most)(rng));
    std::sort(hits.begin(), hits.end());
    for (const auto& [name, n] : hits) input += name + "=" + std::to_string(n) + " ";
    input += "\n";
    sets.push_back(std::move(hits));
  }
  auto dir = std::filesystem::temp_directory_path() / ("regexd-meta-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "in") << input; }
  std::string cmd = std::string("perl '") + REGEXD_SOURCE_DIR + "/tests/support/sa_meta_eval.pl' '" +
                    REGEXD_SA_RULES_DIR + "' /etc/spamassassin < '" + (dir / "in").string() + "' > '" +
                    (dir / "out").string() + "' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "SpamAssassin (Debian package spamassassin) failed: " << cmd;
  std::ifstream out(dir / "out");
  std::string line;
  std::size_t compared = 0, meta_hits = 0;
  for (int i = 0; i < kSets && std::getline(out, line); ++i) {
    std::map<std::string, double> theirs, ours;
    std::istringstream words(line);
    for (std::string w; words >> w;) theirs[w.substr(0, w.find('='))] = std::stod(w.substr(w.find('=') + 1));
    for (auto& [id, v] : program.evaluate(sets[i])) ours[id] = v;
    ++compared;
    meta_hits += theirs.size();
    for (const auto& [id, v] : theirs) {
      auto it = ours.find(id);
      if (it == ours.end()) {
        ADD_FAILURE() << "set " << i << ": SpamAssassin hits " << id << ", regexd does not";
      } else {
        EXPECT_NEAR(it->second, v, 1e-9) << "set " << i << ": value of " << id;
      }
    }
    for (const auto& [id, v] : ours)
      if (!theirs.count(id)) ADD_FAILURE() << "set " << i << ": regexd hits " << id << ", SpamAssassin does not";
  }
  std::filesystem::remove_all(dir);
  EXPECT_EQ(compared, static_cast<std::size_t>(kSets));
  EXPECT_GT(meta_hits, 1000u);  // the comparison saw real hits, not only empty sets
}

}  // namespace
