// Trigger text: the calibration text with a set's own literals in it, for
// catching RE2::Sets whose DFA multiplies on mail but not on the text.
//
// An RE2 DFA state is the set of pattern positions alive at a byte.  A rule
// with a long counted gap (`million[^.]{0,50}?dollars`) keeps up to one
// position per byte of the gap alive once its opening literal has appeared;
// in one set, several such rules' gaps combine, and the states multiply with
// the mix of text inside the gaps.  The built-in calibration text (cost.h) is
// words drawn from a small vocabulary without SpamAssassin's trigger words
// ("million", "photo", "lottery"), so those gaps never open and such a set
// measures like any other.  On mail they open, and the set thrashes its DFA
// memory: on the SpamAssassin corpus (500 messages) one body set of four
// such rules (__LOTSA_MONEY_04 __LOTTO_ADMITS_1 __PCT_OF_PMTS
// __PHOTO_RETOUCHING) cost 29.8 ms per pass against 3.8-4.5 ms for each rule
// alone and ~5 ms for other sets of six; every pair of them cost 4-5.4 ms.
// It appeared in some compiles and not others (timing noise decides which
// rules the packing tries together), one of the planner's widest sources of
// plan-to-plan spread (docs/benchmarks.md).
//
// The trigger text puts each rule's required literals (RE2's FilteredRE2
// atoms: strings of 3 or more bytes of which every match contains one) after
// about one word in 64, so the gaps open about as often as they do in mail.
// Denser is not better: at one word in 16 sets that scan the corpus at the
// usual ~5 ms blew up too (harness numbers in docs/benchmarks.md).
//
// Thread safety: pure function.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace regexd::engine::detail {

// `base` with the atoms of `re2_patterns` (re2_translate.h syntax) inserted
// after one space in `kTriggerEvery` on average, chosen by a fixed
// pseudo-random sequence (the same text on every machine).  Patterns RE2
// refuses, or that have no atom, add nothing; with no atom at all the result
// is `base`.
inline constexpr unsigned kTriggerEvery = 64;
std::string trigger_text(std::string_view base, const std::vector<std::string>& re2_patterns);

// A set of long-gap or large-program rules may not cost more than this many
// times as much on its trigger text (with the DFA memory the trial was
// measured with) as on the calibration text, per byte.  Measured on the
// built-in text: the body set that thrashed on the corpus (29.8 ms per pass
// against ~5) cost 2,049 us on its trigger text against 118 us; four sets of
// the same compiles that scan the corpus in 4.3-5.1 ms cost 1.00-1.05x.
inline constexpr double kTriggerSlack = 2.0;

}  // namespace regexd::engine::detail
