#include "hs_runtime.h"

#include <string_view>

#include "pcre2_util.h"
#include "regexd/engine/compiled_set.h"
#include "regexd/engine/rule.h"

// The per-instruction-set copies of hs_scan a fat runtime exports next to
// its dispatching hs_scan (Hyperscan's and Vectorscan's src/dispatcher.c).
// Weak: a library built without the fat runtime (or for another
// architecture) has none of them, and they read as null.
#if defined(__x86_64__)
extern "C" {
#define REGEXD_HS_VARIANT(prefix)                                                                   \
  hs_error_t prefix##_hs_scan(const hs_database_t*, const char*, unsigned, unsigned, hs_scratch_t*, \
                              match_event_handler, void*) __attribute__((weak));
REGEXD_HS_VARIANT(avx512vbmi)
REGEXD_HS_VARIANT(avx512)
REGEXD_HS_VARIANT(avx2)
REGEXD_HS_VARIANT(corei7)
REGEXD_HS_VARIANT(core2)
#undef REGEXD_HS_VARIANT
}
#endif

namespace regexd::engine::detail {

namespace {

// The battery: each case is a pattern and buffers of 'a' * n followed by a
// tail, n = 0..kMaxPad, so that the interesting bytes fall on every offset
// of a 16-, 32- and 64-byte vector and in buffers shorter and longer than
// one.  Every pattern here is one Vectorscan 5.4.9's wide code got wrong
// (hs_runtime.h); the 'a' padding matches none of them, so the answer moves
// with the tail.  Expected answers are PCRE2's, computed here.
struct BatteryCase {
  std::string_view pattern;
  bool dotall;
  std::string_view prefix;  // before the padding
  std::string_view tails[3];
};
constexpr BatteryCase kBattery[] = {
    {"e", false, "", {"e", "ae", "ea"}},                           // avx512: last byte of 65
    {"(?:>$|>,)", false, "", {">\n", ">,", "> "}},                 // avx2 and avx512: ">\n" at the end
    {"\".*\"\\s*\\<", false, "aaaa\"", {"\"<", "\" <", "\"\n<"}},  // avx2 and avx512
    {"\\(.*\\)", true, "", {"()", "(\n)", "("}},                   // avx512
    {"\\S+<\\w+", false, "", {"<a", " <a", "<"}},                  // avx512
};
constexpr unsigned kMaxPad = 130;

int note_match(unsigned, unsigned long long, unsigned long long, unsigned, void* ctx) {
  *static_cast<bool*>(ctx) = true;
  return 0;
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::vector<HsScanCandidate> library_candidates() {
  std::vector<HsScanCandidate> out{{"hs_scan", hs_scan, ~std::uint64_t{0}}};
#if defined(__x86_64__)
  __builtin_cpu_init();
  // Narrowest last; each needs what its dispatcher checks for it.
  const std::uint64_t avx2 = HS_CPU_FEATURES_AVX2, avx512 = avx2 | HS_CPU_FEATURES_AVX512;
#ifdef HS_CPU_FEATURES_AVX512VBMI
  const std::uint64_t vbmi = avx512 | HS_CPU_FEATURES_AVX512VBMI;
#else
  const std::uint64_t vbmi = avx512;
#endif
  auto add = [&](const char* name, HsScanFn fn, bool cpu_has, std::uint64_t features) {
    if (fn && cpu_has) out.push_back({name, fn, features});
  };
  const bool has512 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  add("avx512vbmi", avx512vbmi_hs_scan, has512 && __builtin_cpu_supports("avx512vbmi"), vbmi);
  add("avx512", avx512_hs_scan, has512, avx512);
  add("avx2", avx2_hs_scan, __builtin_cpu_supports("avx2"), avx2);
  add("corei7", corei7_hs_scan, __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt"), 0);
  add("core2", core2_hs_scan, __builtin_cpu_supports("ssse3"), 0);
#endif
  return out;
}

// The battery compiled once, for the generic platform (every copy of the
// scan code runs it; the defects above show on generic databases too), with
// PCRE2's answer for every buffer.
struct BatteryBuffer {
  std::string text;
  std::string_view tail;  // what follows the padding, for messages
  bool pcre2_matches;
};
struct CompiledCase {
  std::string pattern;
  // Without and with SINGLEMATCH: regexd compiles both kinds (compile.cpp).
  HsDatabasePtr dbs[2];
  std::vector<BatteryBuffer> buffers;
};
struct CompiledBattery {
  std::vector<CompiledCase> cases;
  HsScratchPtr scratch;  // fits every case's database
  std::string error;     // non-empty: no battery
};

CompiledBattery compile_battery() {
  CompiledBattery out;
  Pcre2Matcher matcher(100000, 1000);
  const hs_platform_info_t generic{};
  hs_scratch_t* scratch = nullptr;
  for (const auto& bc : kBattery) {
    Rule rule;
    rule.id = "battery";
    rule.pattern = std::string(bc.pattern);
    rule.flags = bc.dotall ? std::uint32_t{kDotall} : 0u;
    std::string error;
    Pcre2CodePtr code = pcre2_compile_rule(rule, &error);
    if (!code) {
      out.error = "battery /" + rule.pattern + "/: " + error;
      break;
    }
    CompiledCase cc{rule.pattern, {}, {}};
    for (unsigned n = 0; n <= kMaxPad; ++n)
      for (std::string_view tail : bc.tails) {
        std::string buf(bc.prefix);
        buf.append(n, 'a');
        buf.append(tail);
        const bool want = matcher.count(code.get(), buf, 1, false) > 0;
        cc.buffers.push_back({std::move(buf), tail, want});
      }
    for (int single = 0; single < 2 && out.error.empty(); ++single) {
      hs_database_t* raw = nullptr;
      hs_compile_error_t* err = nullptr;
      const unsigned flags = (bc.dotall ? HS_FLAG_DOTALL : 0) | (single ? HS_FLAG_SINGLEMATCH : 0);
      if (hs_compile(rule.pattern.c_str(), flags, HS_MODE_BLOCK, &generic, &raw, &err) != HS_SUCCESS) {
        out.error = "battery /" + rule.pattern + "/ does not compile: " + (err && err->message ? err->message : "?");
        hs_free_compile_error(err);
        break;
      }
      cc.dbs[single].reset(raw);
      if (hs_alloc_scratch(raw, &scratch) != HS_SUCCESS) out.error = "cannot allocate scratch";
    }
    if (!out.error.empty()) break;
    out.cases.push_back(std::move(cc));
  }
  out.scratch.reset(scratch);
  return out;
}

}  // namespace

std::string hs_battery_failure(const HsScanCandidate& c) {
  static const CompiledBattery battery = compile_battery();
  if (!battery.error.empty()) return battery.error;
  for (const auto& cc : battery.cases)
    for (const auto& db : cc.dbs)
      for (const auto& b : cc.buffers) {
        bool got = false;
        if (c.scan(db.get(), b.text.data(), static_cast<unsigned>(b.text.size()), 0, battery.scratch.get(), note_match,
                   &got) != HS_SUCCESS)
          return "hs_scan failed on /" + cc.pattern + "/";
        if (got != b.pcre2_matches)
          return std::string(got ? "matched" : "missed") + " /" + cc.pattern + "/ in a " +
                 std::to_string(b.text.size()) + "-byte buffer ending \"" + printable(b.tail) +
                 "\" (PCRE2: " + (b.pcre2_matches ? "match" : "no match") + ")";
      }
  return {};
}

HsRuntime choose_hs_runtime(const std::vector<HsScanCandidate>& candidates,
                            const std::function<std::string(const HsScanCandidate&)>& first_failure) {
  auto take = [](const HsScanCandidate& c, std::string note) { return HsRuntime{c.scan, c.name, c.features, note}; };
  if (candidates.empty()) return HsRuntime{};
  std::string failures;
  for (const auto& c : candidates) {
    std::string why = first_failure(c);
    if (why.empty()) return take(c, failures.empty() ? "" : failures + "; scanning with its " + c.name + " code");
    failures += (failures.empty() ? "" : "; ") + c.name + " " + why;
  }
  return take(candidates.front(), failures + "; no code of this library agrees with PCRE2, answers may be wrong");
}

const HsRuntime& hs_runtime() {
  static const HsRuntime runtime = [] {
    // Vectorscan on x86_64 only (hs_runtime.h): Hyperscan's copies agree,
    // and aarch64 has one copy.
    if (std::string_view(REGEXD_HS_FLAVOR_NAME) == "vectorscan")
      if (auto candidates = library_candidates(); candidates.size() > 1)
        return choose_hs_runtime(candidates, hs_battery_failure);
    return HsRuntime{hs_scan, "hs_scan", ~std::uint64_t{0}, ""};
  }();
  return runtime;
}

}  // namespace regexd::engine::detail
