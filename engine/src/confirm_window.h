// Where PCRE2 has to look to confirm a Hyperscan prefilter's hit (issue 13,
// "cheaper confirmation").
//
// A prefilter-tier rule runs in Hyperscan as a superset of itself
// (HS_FLAG_PREFILTER: look-arounds dropped, some constructs widened) and
// PCRE2 confirms every buffer the prefilter fires on.  Without more
// information PCRE2 searches the whole buffer; on mail where the superset is
// common and the rule rare (SpamAssassin's FUZZY_UNSUBSCRIBE: the plain word
// "unsubscribe" fires the prefilter of its look-alikes in 272 of 500 corpus
// messages, none of which match) that is a whole-buffer search per message.
//
// Exactness.  Hyperscan's prefilter reports every end offset at which the
// original pattern matches (it matches a superset of the original's
// matches, at the same ends).  If every match of the original consumes at
// least `min` and at most `max` bytes, any match ending at E started in
// [E - max, E - min].  With the rule compiled without HS_FLAG_SINGLEMATCH,
// every end is reported, so with `lo`/`hi` the least and greatest reported
// ends, every match of the original starts in [lo - max, hi - min]: PCRE2
// started at lo - max (pcre2_match's start offset) and stopped from trying
// starts after hi - min (pcre2_set_offset_limit) finds a match if and only
// if the buffer has one.  PCRE2 still sees the whole subject, so
// look-behinds, \b and multi-line ^ before the start offset behave as in a
// whole-buffer search, and ^ / \A cannot match after offset 0 in either.
//
// The bounds are Hyperscan's own (hs_expression_info on the expression the
// database is compiled from, with HS_FLAG_PREFILTER, which applies the
// prefilter transformation before measuring, so the widths are those of
// the superset: at least as wide as the original's).  No window (whole
// buffer, as before) for a rule whose superset is unbounded, a UTF-8 rule
// (a start offset could fall inside a character), a rule with \G (it
// asserts the start offset itself) or one that asks for the leftmost start
// (L), and for counted rules at scan time (a count needs every match from
// the start of the buffer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "regexd/engine/rule.h"

namespace regexd::engine::detail {

// Width bounds (bytes) of every match of a rule, as Hyperscan measures its
// superset.  Stored per rule in cache entries (CompiledRule::confirm_*).
struct ConfirmWidth {
  std::uint32_t min = 0;
  std::uint32_t max = 0;
};

// Superset widths larger than this are not worth a window: the search it
// saves is small, and the rule loses HS_FLAG_SINGLEMATCH.
inline constexpr std::uint32_t kMaxConfirmWidth = 64 * 1024;

// The bounds for `rule` compiled as a prefilter from `hs_expression` with
// `hs_flags` (HS_FLAG_PREFILTER set), or nullopt when it gets no window
// (see above; also when Hyperscan cannot analyse the expression).
std::optional<ConfirmWidth> confirm_width(const Rule& rule, std::string_view hs_expression, unsigned hs_flags);

// The range of start offsets PCRE2 must try, for a rule whose reported ends
// were `lo`..`hi` (lo <= hi): [start, limit], start <= limit.
struct ConfirmWindow {
  std::size_t start = 0;
  std::size_t limit = 0;
};
ConfirmWindow confirm_window(std::size_t lo, std::size_t hi, ConfirmWidth width);

}  // namespace regexd::engine::detail
