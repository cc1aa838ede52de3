// regexctl end to end: real processes, real files, parsed output.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct Run {
  int status = -1;
  std::string out;
};

// Runs regexctl with `args` (already shell-quoted where needed); stderr goes
// to `err_file` when given.
Run regexctl(const std::string& args, const std::string& err_file = "/dev/null") {
  std::string cmd = std::string(REGEXCTL_PATH) + " " + args + " 2>" + err_file;
  Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("regexctl_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& content) {
    auto p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  std::string read(const std::string& name) {
    std::ifstream in(dir_ / name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

const std::string kSource = REGEXD_SOURCE_DIR;

TEST_F(CliTest, ScanOfTheBundledSampleGivesOneSortedJsonLinePerFile) {
  std::string other = write("ham.eml", "Subject: lunch\n\nSee you at noon.\n");
  auto r = regexctl("scan --rules " + kSource + "/rules/sample.rules --class body " + kSource +
                    "/rules/sample-message.eml " + other);
  ASSERT_EQ(r.status, 0) << r.out;
  std::istringstream lines(r.out);
  std::string l1, l2, l3;
  ASSERT_TRUE(std::getline(lines, l1));
  ASSERT_TRUE(std::getline(lines, l2));
  EXPECT_FALSE(std::getline(lines, l3));
  auto spam = json::parse(l1), ham = json::parse(l2);
  EXPECT_EQ(spam["file"], kSource + "/rules/sample-message.eml");
  std::vector<std::string> m = spam["matches"];
  EXPECT_TRUE(std::is_sorted(m.begin(), m.end()));
  EXPECT_EQ(m, (std::vector<std::string>{"CLICK_HERE", "FREE_MONEY", "LOTTERY_WINNER", "PRICE_EURO", "REPEATED_WORD",
                                         "UNSUBSCRIBE_LINK", "URGENT_REPLY"}));
  EXPECT_EQ(spam["hits"]["CLICK_HERE"], 1);
  EXPECT_GT(spam["bytes"].get<int>(), 300);
  EXPECT_TRUE(spam["scan_us"].is_number());
  EXPECT_TRUE(ham["matches"].empty());
}

TEST_F(CliTest, HitsAreCounted) {
  std::string rules = write("r.rules", "WORD body /free/i\n");
  std::string msg = write("m.txt", "free FREE Free");
  auto r = regexctl("scan --rules " + rules + " --class body " + msg);
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(json::parse(r.out)["hits"]["WORD"], 3);
}

TEST_F(CliTest, EngineTimesAreReportedOnlyWhenAskedFor) {
  std::string rules = write("r.rules", "WORD body /free/i\n");
  std::string msg = write("m.txt", std::string(1 << 20, 'x') + " free");
  auto plain = regexctl("scan --rules " + rules + " --class body " + msg);
  ASSERT_EQ(plain.status, 0) << plain.out;
  EXPECT_FALSE(json::parse(plain.out).contains("engine_us"));
  auto timed = regexctl("scan --engine-times --rules " + rules + " --class body " + msg);
  ASSERT_EQ(timed.status, 0) << timed.out;
  auto j = json::parse(timed.out);
  ASSERT_TRUE(j.contains("engine_us")) << timed.out;
  for (const char* e : {"hyperscan", "re2", "pcre2"}) EXPECT_GE(j["engine_us"][e].get<double>(), 0.0) << e;
  // WORD is counted by PCRE2 (hits up to the cap) once some engine saw it;
  // whichever engine the planner chose, scanning a MiB took some time.
  EXPECT_GT(j["engine_us"]["hyperscan"].get<double>() + j["engine_us"]["re2"].get<double>() +
                j["engine_us"]["pcre2"].get<double>(),
            0.0);
  EXPECT_EQ(j["hits"]["WORD"], 1);
}

TEST_F(CliTest, CompileReportCountsTiersAndListsRejectedRulesWithFileAndLine) {
  std::string rules = write("r.rules", "A body /abc/\nB body /foo(?!bar)\\w+baz/\n# c\nC body /(unclosed/\nD body /x/q\n");
  std::string err = (dir_ / "err.txt").string();
  auto r = regexctl("compile --json --rules " + rules, err);
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["rules"], 2);
  // A is native by its text, B a prefilter; the planner (docs/rules.md) may
  // still give A to RE2, or to PCRE2 in a class this small, and B to PCRE2
  // or RE2 where it measures Hyperscan slow (under qemu it does), and says why.
  const auto& tiers = j["tiers"];
  EXPECT_EQ(tiers["native"].get<int>() + tiers["re2"].get<int>() + tiers["prefilter"].get<int>() +
                tiers["pcre2"].get<int>() + tiers["re2_prefilter"].get<int>(),
            2) << j;
  EXPECT_LE(tiers["native"].get<int>(), 1) << j;  // B's look-ahead is never native
  ASSERT_EQ(j["plan"].size(), 2u);
  for (const auto& p : j["plan"]) {
    if (p["engine"] == "native" || p["engine"] == "prefilter") continue;
    EXPECT_FALSE(p["why"].get<std::string>().empty()) << p;
  }
  ASSERT_EQ(j["rejected"].size(), 2u);
  EXPECT_EQ(j["rejected"][0]["rule"], "C");
  EXPECT_EQ(j["rejected"][0]["line"], 4);
  EXPECT_EQ(j["rejected"][1]["line"], 5);
  std::string errors = read("err.txt");
  EXPECT_NE(errors.find(rules + ":4: rule C:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("unknown flag 'q'"), std::string::npos) << errors;
  auto t = regexctl("compile --rules " + rules);
  EXPECT_EQ(t.status, 0);
  EXPECT_NE(t.out.find("total: 2 rules (native "), std::string::npos) << t.out;
}

TEST_F(CliTest, RspamdMapAndSpamAssassinFormats) {
  std::string map = write("bad_words.map", "/casino/i\n# comment\n/pharm[a4]cy/ some value\n");
  std::string msg = write("m.txt", "Online CASINO");
  auto r = regexctl("scan --format rspamd-map --rules " + map + " --class body " + msg);
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(json::parse(r.out)["matches"], json::array({"bad_words:1"}));

  std::string cf = write("local.cf", "body LOCAL_CASINO /\\bcasino\\b/i\ndescribe LOCAL_CASINO Casino\nmeta M (LOCAL_CASINO)\n");
  r = regexctl("scan --format spamassassin --rules " + cf + " --class body " + msg);
  ASSERT_EQ(r.status, 0);
  // The meta over the rule is evaluated with it.
  EXPECT_EQ(json::parse(r.out)["matches"], json::array({"LOCAL_CASINO", "M"}));

  std::string metas = write("metas.cf",
                            "body __A /a/\nheader __B Subject =~ /b/\nheader EV eval:check_x()\n"
                            "meta TOP __A && (__B || EV)\nmeta BROKEN (__A &&\n");
  r = regexctl("compile --json --format spamassassin --rules " + metas, (dir_ / "err.txt").string());
  ASSERT_EQ(r.status, 0);
  auto j = json::parse(r.out);
  EXPECT_EQ(j["metas"], 1);
  EXPECT_EQ(j["unsupported"], json({{"EV", "eval"}}));
  EXPECT_EQ(j["metas_reading_unsupported"], json({{"TOP", {"EV"}}}));
  std::string err = read("err.txt");
  EXPECT_NE(err.find("metas.cf:5: rule BROKEN: meta expression ends early: '(__A &&'"), std::string::npos) << err;
}

TEST_F(CliTest, ExitCodes) {
  EXPECT_EQ(regexctl("").status, 1);
  EXPECT_EQ(regexctl("scan --class body").status, 1);
  EXPECT_EQ(regexctl("frobnicate").status, 1);
  std::string bad = write("bad.rules", "X body /(/\n");
  std::string msg = write("m.txt", "x");
  EXPECT_EQ(regexctl("scan --rules " + bad + " --class body " + msg).status, 2);
  std::string good = write("good.rules", "X body /x/\n");
  EXPECT_EQ(regexctl("scan --rules " + good + " --class nosuchclass " + msg).status, 1);
  EXPECT_EQ(regexctl("compile --format rspamd-map --rules " + good).status, 1);
}

TEST_F(CliTest, VersionNamesFlavorAndRuntimeVersion) {
  auto r = regexctl("version --json");
  ASSERT_EQ(r.status, 0);
  auto j = json::parse(r.out);
  EXPECT_TRUE(j["flavor"] == "hyperscan" || j["flavor"] == "vectorscan");
  EXPECT_FALSE(j["hs_version"].get<std::string>().empty());
  EXPECT_FALSE(j["arch"].get<std::string>().empty());
  // The allocator the build links (cmake/RegexdAllocator.cmake), as the
  // running program finds it: fails if the linker dropped jemalloc.
  const std::string allocator = j["allocator"];
  const std::string want = REGEXD_EXPECT_ALLOCATOR == std::string("jemalloc") ? "jemalloc " : "glibc ";
  EXPECT_EQ(allocator.substr(0, want.size()), want) << allocator;
  // The scan code in use (engine/src/hs_runtime.h): the library's own choice,
  // or a narrower copy with the reason.
  const std::string code = j["scan_code"];
  const std::string note = j["scan_code_note"];
  EXPECT_TRUE(code == "hs_scan" ? note.empty() : note.find("scanning with its " + code + " code") != std::string::npos)
      << code << ": " << note;
}

// Drops the timing field so two runs can be compared byte for byte.
std::string without_timing(const std::string& jsonl) {
  std::istringstream in(jsonl);
  std::string line, out;
  while (std::getline(in, line)) {
    auto j = json::parse(line);
    j.erase("scan_us");
    out += j.dump() + "\n";
  }
  return out;
}

TEST_F(CliTest, WarmStartFromTheCacheGivesTheSameAnswersForSpamAssassin) {
  std::string cache = (dir_ / "cache").string();
  std::string sa = std::string(REGEXD_SA_RULES_DIR) + "/*.cf";
  // A few corpus messages when present, else the bundled sample.
  std::string msgs = kSource + "/rules/sample-message.eml";
  if (fs::exists(fs::path(REGEXD_CORPUS_DIR) / "messages")) {
    int n = 0;
    for (const auto& e : fs::directory_iterator(fs::path(REGEXD_CORPUS_DIR) / "messages" / "spam-2"))
      if (n++ < 20) msgs += " " + e.path().string();
  }
  std::string args = "scan --format spamassassin --rules " + sa + " --class body --cache " + cache + " " + msgs;
  auto cold = regexctl(args);
  ASSERT_EQ(cold.status, 0);
  auto warm = regexctl(args);
  ASSERT_EQ(warm.status, 0);
  EXPECT_EQ(without_timing(warm.out), without_timing(cold.out));
  EXPECT_NE(cold.out.find("\"matches\":[\""), std::string::npos) << "nothing matched: a weak comparison";
  auto report = regexctl("compile --json --format spamassassin --rules " + sa + " --cache " + cache);
  ASSERT_EQ(report.status, 0);
  EXPECT_EQ(json::parse(report.out)["cache"], "hit");
}

TEST_F(CliTest, PrewarmTogetherWarmsTheMultiFileRuleSet) {
  std::string cache = (dir_ / "cache").string();
  // SpamAssassin-style: the tag is defined in one file, used in the other.
  std::string a = write("20_rules.cf", "body FUZZY /<A>lpha/\n");
  std::string b = write("25_replace.cf", "replace_tag A [a4]\nreplace_rules FUZZY\n");
  auto r = regexctl("prewarm --together --format spamassassin --rules " + a + " " + b + " --cache " + cache);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("(+1 files): compiled (1 rules"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 rule sets, 1 usable"), std::string::npos) << r.out;
  // The same files as one set (what a daemon rule set listing both compiles) are now a cache hit.
  r = regexctl("compile --json --format spamassassin --rules " + a + " " + b + " --cache " + cache);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["cache"], "hit");
  std::string msg = write("m.txt", "4lpha\n");
  r = regexctl("scan --format spamassassin --rules " + a + " " + b + " --class body --cache " + cache + " " + msg);
  EXPECT_NE(r.out.find("FUZZY"), std::string::npos) << r.out;  // the tag was expanded across files
}

TEST_F(CliTest, CalibrateDirIsPartOfTheCacheKeyAndBadDirsAreOneLineErrors) {
  std::string cache = (dir_ / "cache").string();
  std::string rules = write("r.rules", "A body /alpha\\d/\nB body /v[i1]agra/i\n");
  fs::create_directory(dir_ / "mail");
  std::ofstream(dir_ / "mail" / "1.eml") << "Subject: hi\n\nalpha1 and v1agra\n";
  std::ofstream(dir_ / "mail" / "2.eml") << "Subject: ho\n\nnothing\n";
  const std::string mail = (dir_ / "mail").string();
  auto r = regexctl("prewarm --rules " + rules + " --cache " + cache + " --calibrate " + mail);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("r.rules: compiled"), std::string::npos) << r.out;
  // The same sample finds the entry (what the daemon's compile.calibrate does); no sample is another key.
  r = regexctl("compile --json --rules " + rules + " --cache " + cache + " --calibrate " + mail);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["cache"], "hit");
  r = regexctl("compile --json --rules " + rules + " --cache " + cache);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["cache"], "compiled");
  // Answers are the same with or without it.
  std::string msg = write("m.txt", "alpha7 V1AGRA\n");
  auto with = regexctl("scan --rules " + rules + " --class body --calibrate " + mail + " " + msg);
  auto without = regexctl("scan --rules " + rules + " --class body " + msg);
  ASSERT_EQ(with.status, 0);
  EXPECT_EQ(json::parse(with.out)["matches"], json::parse(without.out)["matches"]);
  EXPECT_EQ(json::parse(with.out)["matches"], (json{"A", "B"}));

  std::string err = (dir_ / "err.txt").string();
  const std::string missing = (dir_ / "no-such").string();
  r = regexctl("plan --rules " + rules + " --calibrate " + missing, err);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(read("err.txt"), "regexctl: --calibrate: calibration sample " + missing + ": no such directory\n");
  fs::create_directory(dir_ / "empty");
  r = regexctl("compile --rules " + rules + " --calibrate " + (dir_ / "empty").string(), err);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(read("err.txt").find((dir_ / "empty").string() + ": empty"), std::string::npos) << read("err.txt");
}

TEST_F(CliTest, PrewarmInspectVerifyPrune) {
  std::string cache = (dir_ / "cache").string();
  std::string a = write("a.rules", "A body /alpha/\n");
  std::string b = write("b.rules", "B body /beta/\n");
  std::string bad = write("bad.rules", "X body /(/\n");
  auto r = regexctl("prewarm --rules " + a + " " + b + " --cache " + cache);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("a.rules: compiled"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 usable, 0 failed"), std::string::npos) << r.out;
  r = regexctl("prewarm --rules " + a + " " + b + " --cache " + cache);
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("a.rules: hit"), std::string::npos) << r.out;

  fs::path entry;  // a.rules' or b.rules' entry: one rule either way
  for (const auto& e : fs::recursive_directory_iterator(cache))
    if (e.path().extension() == ".rxdb") entry = e.path();
  ASSERT_FALSE(entry.empty());
  EXPECT_EQ(regexctl("prewarm --rules " + a + " " + bad + " --cache " + cache).status, 2);
  r = regexctl("inspect --json " + entry.string());
  ASSERT_EQ(r.status, 0);
  auto j = json::parse(r.out);
  EXPECT_EQ(j["key"].get<std::string>() + ".rxdb", entry.filename().string());
  EXPECT_EQ(j["platform_dir"], entry.parent_path().filename().string());
  EXPECT_EQ(j["rules"], 1);
  EXPECT_EQ(j["format_version"], 3);

  r = regexctl("verify " + cache);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("0 corrupt"), std::string::npos) << r.out;
  {
    std::fstream f(entry, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x7f');
  }
  r = regexctl("verify " + cache);
  EXPECT_EQ(r.status, 3) << r.out;
  EXPECT_NE(r.out.find("CORRUPT"), std::string::npos) << r.out;
  EXPECT_EQ(regexctl("inspect " + entry.string()).status, 3);

  fs::create_directories(fs::path(cache) / "aarch64-vectorscan-5.4.9-0badf00d");
  r = regexctl("prune " + cache + " --foreign");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_FALSE(fs::exists(fs::path(cache) / "aarch64-vectorscan-5.4.9-0badf00d"));
  r = regexctl("prune " + cache + " --max-size 1");
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("kept 0 entries"), std::string::npos) << r.out;
  EXPECT_EQ(regexctl("prune " + cache + " --max-size lots").status, 1);
}

}  // namespace
