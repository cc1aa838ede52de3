// A compiled set's PCRE2 programs as bytes, for the cache layer: a cache
// entry carries them so that a load decodes what it would otherwise compile
// (docs/cache-format.md, "PCRE2 programs").
//
// Which programs: every rule the scanner may run through PCRE2, i.e. every
// tier but Hyperscan-native (prefilter confirmations, PCRE2-only rules, the
// RE2 tiers' fallbacks and first scans while a scanner warms up) and the
// native rules whose hits are counted (max_hits above 1), compiled
// without JIT exactly as LazyPcre2 compiles them (the rule's flags, newline
// LF, pcre2_extra_options()).  JIT code is not portable and is never stored:
// a decoded program is JIT-compiled, on a copy, when the scanner first needs
// the JIT form (LazyPcre2::get).
//
// Safety: PCRE2 does not verify a serialized program beyond its header
// (magic, version, code unit width, sizes of PCRE2_SIZE and of the link).
// Callers must only pass bytes that passed their own integrity checks (the
// cache checks its XXH3-128 checksum, tags and layout first), as for
// Hyperscan's bytecode (serialize.h); within those checks a program is
// trusted to be the compiled form of its rule's pattern, which the entry
// stores beside it.
//
// Thread safety: serialize_pcre2_programs() only reads `set` and may run
// concurrently with scans; adopt_pcre2_programs() writes the set's PCRE2
// slots and must finish before the set is given to a Scanner.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/engine/compiled_set.h"
#include "regexd/engine/result.h"

namespace regexd::engine {

struct Pcre2Programs {
  std::string bytes;                 // pcre2_serialize_encode() output; empty: no programs
  std::vector<std::uint32_t> rules;  // the rule (index into CompiledSet::rules) of each program, in order
};

// The programs of every rule of `set` a scan may run through PCRE2 (every
// tier but native, and counted native rules).  A rule PCRE2 fails to
// compile (out of memory) is left out: the scanner compiles it on use, as
// without programs.  Errors: kInternal if PCRE2 cannot encode them.
Result<Pcre2Programs> serialize_pcre2_programs(const CompiledSet& set);

// Decodes `bytes` and gives program k to rule rules[k] (LazyPcre2::adopt).
// `set.pcre2` must be allocated (init_pcre2_slots) and no slot used yet.
// Errors: kCorrupt if PCRE2 does not recognise the bytes, if their number of
// programs differs from rules.size(), or if a listed rule is out of range,
// listed twice or one no scan runs through PCRE2; kMismatch if the bytes come from another
// PCRE2 version or build.  On error no slot was changed.
Status adopt_pcre2_programs(CompiledSet& set, std::string_view bytes, std::span<const std::uint32_t> rules);

}  // namespace regexd::engine
