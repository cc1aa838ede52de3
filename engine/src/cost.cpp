#include "cost.h"

#include <hs.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>

#include "hs_runtime.h"
#include "regexd/engine/serialize.h"
#include "pcre2_util.h"
#include "re2_partition.h"
#include "utf8.h"

namespace regexd::engine::detail {
namespace {

constexpr std::size_t kCalibrationBytes = 64 * 1024;
// The bar (see cost.h): Hyperscan must be this many times slower than PCRE2,
// and slower than this in absolute terms, before PCRE2 alone takes the rule.
constexpr double kMinRatio = 3.0;
constexpr double kMaxHsMBps = 256.0;

std::string make_calibration_text() {
  // Words and fragments as they appear in mail bodies: plain English, markup
  // leftovers, money and numbers, a URL, a signature, non-ASCII names.
  static constexpr std::string_view kWords[] = {
      "the", "of", "and", "to", "a", "in", "is", "you", "that", "it", "for", "your", "on", "with", "this", "are",
      "be", "as", "at", "have", "from", "or", "by", "not", "we", "will", "can", "our", "all", "if", "more",
      "please", "email", "click", "here", "free", "money", "order", "now", "offer", "information", "business",
      "list", "one", "time", "mail", "new", "message", "http://www.example.com/page?id=42", "Thanks,", "Best",
      "regards", "unsubscribe", "remove", "receive", "credit", "company", "account", "2002", "$100", "10%",
      "Re:", "--", "<br>", "<p>", "&nbsp;", "caf\xc3\xa9", "na\xc3\xafve", "\xe2\x82\xac" "50", "Jos\xc3\xa9",
      "M\xc3\xbcller", "\xe2\x80\x94", "\xe2\x80\x9cquoted\xe2\x80\x9d", "(see", "below)", "e.g.", "U.S.",
      "FREE!!!", "CLICK", "HERE", "Dear", "friend,", "meeting", "tomorrow", "project", "report", "attached",
      "file", "version", "linux", "server", "kernel", "patch"};
  std::string s;
  s.reserve(kCalibrationBytes + 64);
  std::uint64_t x = 88172645463325252ull;  // xorshift64: same sequence everywhere
  std::size_t col = 0;
  // Lines as raw mail has them besides prose (the rawbody, full and url
  // classes see them): HTML markup with links, base64 and quoted-printable.
  // Without them the text under-predicted rules on markup and URLs (the
  // planner moved url and rawbody rules to RE2 that then scanned the corpus
  // 2-3x slower than Hyperscan had).
  static constexpr std::string_view kMarkup[] = {
      "<a href=\"http://www.example-shop.com/p/12345?ref=mail&amp;id=99\">Click here</a>",
      "<font face=\"Arial, Helvetica\" size=\"2\" color=\"#ff0000\"><b>Special offer</b></font>",
      "<td width=\"100%\" align=\"center\" bgcolor=\"#FFFFFF\"><img src=\"http://img.example.net/a/b.gif\" "
      "width=\"1\" height=\"1\" border=\"0\"></td>",
      "<p style=\"margin:0;font-size:12px\">To unsubscribe <a href=\"https://lists.example.org/u?e=joe%40example.com"
      "\">click here</a>.</p>",
      "Visit=20us=20at=20http://www.example.com/index.html=3Fsrc=3Dnews =",
      "</div></td></tr></table><br><br>",
  };
  static constexpr std::string_view kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t line = 0;
  while (s.size() < kCalibrationBytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (col == 0 && line++ % 4 == 3) {
      // Every fourth line: markup or encoded text.
      if ((x >> 32) % 3 == 0) {
        for (int k = 0; k < 76; ++k) s += kB64[(x >> (k % 58)) % 64 ^ (k * 7 % 64)];
      } else {
        s += kMarkup[x % std::size(kMarkup)];
      }
      s += '\n';
      continue;
    }
    std::string_view w = kWords[x % std::size(kWords)];
    s += w;
    col += w.size();
    if (x % 11 == 0) s += ".";
    if (col > 68) {
      s += '\n';
      col = 0;
    } else {
      s += ' ';
      ++col;
    }
  }
  // Cut on a line end so the text stays valid UTF-8 (UTF-8 patterns are
  // scanned by Hyperscan only on valid input).
  s.resize(s.rfind('\n', kCalibrationBytes) + 1);
  return s;
}

template <typename F>
double best_ns(const Calibration& cal, F&& f) {
  // CPU time of this thread, not wall time: a compile runs beside scans and
  // other compiles, and a measurement that the scheduler interrupts would
  // count the other work too.  On a loaded 2-core machine wall-clock
  // measurements moved RE2 and PCRE2 decisions from run to run.
  auto timed = [&f] {
    const double t0 = thread_cpu_ns();
    f();
    return thread_cpu_ns() - t0;
  };
  return best_time(cal.scale() >= 2, timed);
}

}  // namespace

double clock_ns(clockid_t clock) {
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return -1;
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double thread_cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

double best_time(bool long_text, const std::function<double()>& timed) {
  // The first pass warms caches and lazy JIT/scratch/DFA state.  On a text
  // at least twice the built-in one (an operator's sample) one more pass is
  // timed, and the warm-up counts too (it can only be slower): a 256 KiB
  // sample scanned 4 times per measurement is 16 built-in texts' worth.
  // With this and the compile bounded apart from the scans (probe.h),
  // planning SpamAssassin's rules on a 256 KiB sample took 23-24 s against
  // 21-23 s on the built-in text (docs/rules.md).
  const double first = timed();
  if (long_text) return std::min(first, timed());
  // On the built-in text, passes are timed until kMinTimedNs has gone by
  // (at least kRuns, at most kMaxRuns).  Most single rules scan it in a few
  // microseconds, and with only 3 passes a burst of other load (the other
  // compile thread, a neighbour on the host) lifted some rules' costs by 40%
  // for a whole compile; three compiles of SpamAssassin's rules planned 33
  // body rules differently, 15 with this (and 8 with planner.cpp's
  // cost_step), for ~1 s more compile.
  double best = 1e300, spent = 0;
  for (int i = 0; i < kMaxRuns && (i < kRuns || spent < kMinTimedNs); ++i) {
    const double t = timed();
    spent += t;
    best = std::min(best, t);
  }
  return best;
}

namespace {

int ignore_match(unsigned, unsigned long long, unsigned long long, unsigned, void*) { return 0; }
int note_match(unsigned, unsigned long long, unsigned long long, unsigned, void* fired) {
  *static_cast<bool*>(fired) = true;
  return 1;  // one match answers the question
}

}  // namespace

std::string_view calibration_text() {
  static const std::string text = make_calibration_text();
  return text;
}

std::string utf8_safe(std::string_view s) {
  std::string out(s);
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    // valid_utf8 of a sequence's proper prefix is false: the first length
    // that passes is the sequence.
    std::size_t n = 2;
    while (n <= 4 && !valid_utf8(s.substr(i, n))) ++n;
    if (n <= 4 && i + n <= s.size()) {
      i += n;
    } else {
      out[i++] = '?';
    }
  }
  return out;
}

Calibration::Calibration(const CompileOptions& options) : text_(calibration_text()) {
  if (!options.calibration || options.calibration->empty()) return;
  keep_ = options.calibration;
  text_ = *keep_;
  if (!valid_utf8(text_)) utf8_ = utf8_safe(text_);
}

const Calibration& Calibration::builtin() {
  static const Calibration cal;
  return cal;
}

std::string_view Calibration::text_for(unsigned hs_flags) const {
  return (hs_flags & HS_FLAG_UTF8) && !utf8_.empty() ? std::string_view(utf8_) : text_;
}

double Calibration::scale() const {
  return std::max(1.0, static_cast<double>(text_.size()) / static_cast<double>(calibration_text().size()));
}


namespace {

// The platform the chosen scan code runs (hs_runtime.h): the rule set's
// databases are compiled for it, so every measured database is too.
hs_platform_info_t scan_platform() {
  hs_platform_info_t platform{};
  if (auto p = current_platform()) {
    platform.tune = p->tune;
    platform.cpu_features = p->cpu_features;
  }
  return platform;
}

// `db` (owned from here) over `text` with the chosen scan code: *ns the best
// of a few scans, *fired whether it matched (when not null).  False when
// the scratch cannot be allocated or a scan fails.
bool time_database(hs_database_t* raw_db, std::string_view text, const Calibration& cal, double* ns, bool* fired) {
  HsDatabasePtr db(raw_db);
  hs_scratch_t* raw_scratch = nullptr;
  if (hs_alloc_scratch(db.get(), &raw_scratch) != HS_SUCCESS) return false;
  HsScratchPtr scratch(raw_scratch);
  const HsScanFn scan = hs_runtime().scan;
  bool ok = true;
  *ns = best_ns(cal, [&] {
    ok &= scan(db.get(), text.data(), static_cast<unsigned>(text.size()), 0, scratch.get(), ignore_match,
               nullptr) == HS_SUCCESS;
  });
  if (fired) {
    *fired = false;
    scan(db.get(), text.data(), static_cast<unsigned>(text.size()), 0, scratch.get(), note_match, fired);
  }
  return ok;
}

}  // namespace

bool measure_hs_expression(const std::string& expression, unsigned hs_flags, const Calibration& cal, HsSample* out,
                           const std::function<void()>& compiled) {
  hs_database_t* raw_db = nullptr;
  hs_compile_error_t* err = nullptr;
  const hs_platform_info_t platform = scan_platform();
  const double t0 = thread_cpu_ns();
  const hs_error_t rc = hs_compile(expression.c_str(), hs_flags, HS_MODE_BLOCK, &platform, &raw_db, &err);
  if (compiled) compiled();
  if (rc != HS_SUCCESS) {
    hs_free_compile_error(err);
    return false;
  }
  out->compile_ms = (thread_cpu_ns() - t0) / 1e6;
  return time_database(raw_db, cal.text_for(hs_flags), cal, &out->ns, &out->fired);
}

bool measure_hs_database(const std::vector<std::string>& expressions, const std::vector<unsigned>& flags,
                         const Calibration& cal, double* ns) {
  *ns = 0;
  if (expressions.empty()) return true;
  std::vector<const char*> exprs;
  std::vector<unsigned> ids;
  for (std::size_t i = 0; i < expressions.size(); ++i) {
    exprs.push_back(expressions[i].c_str());
    ids.push_back(static_cast<unsigned>(i));
  }
  const hs_platform_info_t platform = scan_platform();
  hs_database_t* raw_db = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK,
                       &platform, &raw_db, &err) != HS_SUCCESS) {
    hs_free_compile_error(err);
    return false;
  }
  return time_database(raw_db, cal.text(), cal, ns, nullptr);
}

bool measure_pcre2(const Rule& rule, std::uint32_t pcre2_match_limit, std::uint32_t pcre2_depth_limit,
                   const Calibration& cal, double* ns) {
  std::string error;
  Pcre2CodePtr code = pcre2_compile_rule(rule, &error);
  if (!code) return false;
  if (!(rule.flags & kNoOpt)) pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);
  Pcre2Matcher matcher(pcre2_match_limit, pcre2_depth_limit);
  // Raw bytes even for UTF-8 rules: PCRE2 matches invalid UTF-8 as the
  // scanner runs it (PCRE2_MATCH_INVALID_UTF).
  const std::string_view text = cal.text();
  *ns = best_ns(cal, [&] { matcher.count(code.get(), text, 1, (rule.flags & kUtf8) != 0); });
  return true;
}

bool measure_re2(const std::vector<std::string>& patterns, const Calibration& cal, Re2Sample* out,
                 long long max_mem) {
  return measure_re2(patterns, cal.text(), cal, out, max_mem);
}

bool measure_re2(const std::vector<std::string>& patterns, std::string_view text, const Calibration& cal,
                 Re2Sample* out, long long max_mem) {
  std::string why;
  auto program = build_re2_program(patterns, &why, max_mem);
  if (!program) return false;
  std::vector<int> matched;
  bool ok = true;
  // Warm (best of a few passes after one that builds the DFA states this
  // text needs): a set whose states fit its memory scans mail at about that
  // speed; one whose states do not is caught by measuring with little memory
  // (kRe2MeasureMaxMem), where it rebuilds states on every pass.
  out->ns = best_ns(cal, [&] { ok &= re2_match(*program, text, &matched); });
  out->fired = ok && !matched.empty();
  return ok;
}

bool measure_prefilter(const Rule& rule, std::uint32_t pcre2_match_limit, std::uint32_t pcre2_depth_limit,
                       const Calibration& cal, CostSample* out, const std::string* expression) {
  // Only "did it match" matters to the scanner; leftmost start tracking would
  // make the measurement slower than the scan it predicts.
  unsigned flags = (hs_flags_for(rule, Tier::kPrefilter) & ~HS_FLAG_SOM_LEFTMOST) | HS_FLAG_SINGLEMATCH;
  HsSample hs;
  if (!measure_hs_expression(expression ? *expression : hs_expression_for(rule), flags, cal, &hs)) return false;
  double pcre2_ns = 0;
  if (!measure_pcre2(rule, pcre2_match_limit, pcre2_depth_limit, cal, &pcre2_ns)) return false;
  out->hs_ns = hs.ns;
  out->hs_fired = hs.fired;
  out->pcre2_ns = pcre2_ns;
  return true;
}

bool rewrite_pays(const CostSample& s, std::size_t bytes, std::string* why) {
  if (s.hs_ns <= 0 || s.pcre2_ns <= 0 || bytes == 0) return false;
  char buf[200];
  if (s.hs_fired) {
    std::snprintf(buf, sizeof buf, "its rewritten prefilter fires on the calibration text (PCRE2 would confirm nearly every message)");
  } else if (s.hs_ns >= s.pcre2_ns) {
    std::snprintf(buf, sizeof buf, "its rewritten prefilter scans the calibration text at %.0f MB/s, PCRE2 alone at %.0f MB/s",
                  static_cast<double>(bytes) * 1e3 / s.hs_ns, static_cast<double>(bytes) * 1e3 / s.pcre2_ns);
  } else {
    return true;
  }
  *why = buf;
  return false;
}

bool prefer_pcre2(const CostSample& s, std::size_t bytes, std::string* why) {
  if (s.hs_ns <= 0 || s.pcre2_ns <= 0 || bytes == 0) return false;
  double hs_mbps = static_cast<double>(bytes) / 1e6 / (s.hs_ns / 1e9);
  double pcre2_mbps = static_cast<double>(bytes) / 1e6 / (s.pcre2_ns / 1e9);
  if (hs_mbps >= kMaxHsMBps || s.hs_ns < kMinRatio * s.pcre2_ns) return false;
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "hyperscan prefilter scans the calibration text at %.0f MB/s, PCRE2 alone at %.0f MB/s", hs_mbps,
                pcre2_mbps);
  *why = buf;
  return true;
}

}  // namespace regexd::engine::detail
