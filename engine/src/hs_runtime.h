// Which of the Hyperscan library's scan code this process runs, chosen once.
//
// Why this exists: a "fat runtime" build of Hyperscan or Vectorscan (the
// Debian x86_64 packages of both) carries one copy of its scan code per x86
// instruction set (core2, corei7, avx2, avx512, avx512vbmi) and hs_scan()
// jumps to the widest the CPU has.  Vectorscan 5.4.9 (Debian 12) misses
// matches in its 32- and 64-byte code: /e/ in 64 'a' then 'e', /(?:>$|>,)/
// in a 34-byte "...>\n" (SpamAssassin's __TO_NO_ARROWS_R on a To header).
// Measured over SpamAssassin 4.0.1's 1,213 Hyperscan-compilable patterns on
// 87,307 short corpus buffers: its avx512 code differs from its core2 code on
// 11 patterns, its avx2 code on 2, its corei7 code on none; Hyperscan 5.4.0's
// five copies all agree, and agree with Vectorscan's core2 code.
//
// So with Vectorscan on x86_64 the first use checks the library's own choice
// against PCRE2 (regexd's reference) on a small battery built from those
// failures, and steps down to narrower code until one agrees.  Databases are
// then compiled for the features the chosen code runs (current_platform()),
// since a database compiled for AVX2 may use engines only the avx2 code has.
// A Vectorscan that passes keeps its own dispatch.  Not checked, the
// library's own choice taken as it is: Hyperscan (its five copies agree on
// the whole sweep, and the check would cost every start ~15-20 ms, mostly
// the Hyperscan compiler's first-use set-up, on a warm start of ~45 ms), and
// aarch64 (Vectorscan has one copy there, nothing to step to, and the check
// would compile databases on a board that is meant to compile nothing:
// docs/arm64.md; the sweep under qemu agrees with Hyperscan's answers).
//
// Thread safety: hs_runtime() is safe to call concurrently; the first call
// runs the check where there is one (~20-40 ms: ten small compiles, ~2,000
// scans per copy tried).  Call it before fork()ing children that scan or
// compile (the compiler does), so that they inherit the answer instead of
// re-running it.
#pragma once

#include <hs.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace regexd::engine::detail {

using HsScanFn = hs_error_t (*)(const hs_database_t*, const char*, unsigned, unsigned, hs_scratch_t*,
                                match_event_handler, void*);

struct HsRuntime {
  HsScanFn scan = nullptr;
  // "hs_scan" (the library's own dispatch) or the code's name, e.g. "corei7".
  std::string code;
  // HS_CPU_FEATURES_* bits the chosen code runs; ~0 for the library's own
  // choice.
  std::uint64_t features = ~std::uint64_t{0};
  // Empty, or one line on why the library's own choice was not taken.
  std::string note;
};

const HsRuntime& hs_runtime();

// The selection itself, apart from the library, for tests.  `candidates` are
// tried in order (the library's own dispatch first); `first_failure` returns
// an empty string when a candidate agrees with PCRE2 on the battery, else
// what it got wrong.  The first candidate that agrees is chosen; when none
// does, the first is kept and the note says so.
struct HsScanCandidate {
  std::string name;
  HsScanFn scan;
  std::uint64_t features;
};
HsRuntime choose_hs_runtime(const std::vector<HsScanCandidate>& candidates,
                            const std::function<std::string(const HsScanCandidate&)>& first_failure);

// What `c` gets wrong on the battery (empty: nothing), checked against PCRE2.
std::string hs_battery_failure(const HsScanCandidate& c);

}  // namespace regexd::engine::detail
