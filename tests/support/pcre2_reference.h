// The reference answer for the differential tests: plain pcre2_match() (the
// interpreter, no JIT) with the flag mapping stated in docs/rules.md, written
// here independently of the engine so a bug there cannot hide itself.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "regexd/engine/rule.h"

namespace regexd::testing {

// The rule compiled by plain PCRE2 with the flag mapping of docs/rules.md,
// written here independently of the engine's own code (the point of a
// reference).  nullptr if PCRE2 refuses it.  The benchmarks' PCRE2 peer uses
// it too, so both measure and check against the same thing.
inline pcre2_code* compile_reference(const engine::Rule& rule) {
  std::uint32_t o = 0;
  if (rule.flags & engine::kCaseless) o |= PCRE2_CASELESS;
  if (rule.flags & engine::kMultiline) o |= PCRE2_MULTILINE;
  if (rule.flags & engine::kDotall) o |= PCRE2_DOTALL;
  if (rule.flags & engine::kExtended) o |= PCRE2_EXTENDED;
  if (rule.flags & engine::kUtf8) o |= PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rule.pattern.data()), rule.pattern.size(), o, &err, &off, cc);
  pcre2_compile_context_free(cc);
  return code;
}

class Pcre2Reference {
 public:
  explicit Pcre2Reference(const engine::Rule& rule) : code_(compile_reference(rule)) {
    md_ = pcre2_match_data_create(1, nullptr);
  }
  ~Pcre2Reference() {
    pcre2_match_data_free(md_);
    pcre2_code_free(code_);
  }
  Pcre2Reference(const Pcre2Reference&) = delete;
  Pcre2Reference& operator=(const Pcre2Reference&) = delete;

  bool valid() const { return code_ != nullptr; }
  // true/false, or nullopt if PCRE2 could not decide (limit or error).
  std::optional<bool> matches(std::string_view data) const {
    int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(data.data()), data.size(), 0, 0, md_, nullptr);
    if (rc >= 0) return true;
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    return std::nullopt;
  }

  // Perl's //g loop over `data`, up to `cap` matches: the next search starts
  // where a match ended; after an empty match, a non-empty one is tried at
  // the same place, then the search moves one byte on (byte-mode rules; a
  // UTF-8 rule would move one character).  nullopt if PCRE2 could not decide.
  std::optional<unsigned> count(std::string_view data, unsigned cap) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(data.data());
    std::size_t start = 0;
    std::uint32_t options = 0;
    unsigned n = 0;
    while (n < cap && start <= data.size()) {
      int rc = pcre2_match(code_, subject, data.size(), start, options, md_, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) {
        if (options == 0) break;
        options = 0;
        ++start;
        continue;
      }
      if (rc < 0) return std::nullopt;
      ++n;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
      const std::size_t end = std::max<std::size_t>(ov[1], start);
      options = ov[1] <= ov[0] ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
      start = end;
    }
    return n;
  }

 private:
  pcre2_code* code_ = nullptr;
  pcre2_match_data* md_ = nullptr;
};

}  // namespace regexd::testing
