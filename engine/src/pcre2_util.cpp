#include "pcre2_util.h"

#include "regexd/engine/engine.h"

#include <limits>

namespace regexd::engine {

void Pcre2CodeDeleter::operator()(pcre2_real_code_8* c) const { pcre2_code_free(c); }

const pcre2_real_code_8* LazyPcre2::get(const Rule& rule, std::uint32_t extra_options) const {
  std::call_once(once_, [&] {
    std::string error;
    // An adopted program is this pattern compiled with these options
    // (pcre2_programs.cpp compiles it with the same call); copying it skips
    // the compile, and the copy is JIT-compiled before anyone sees it.
    if (adopted_) code_.reset(pcre2_code_copy(adopted_.get()));
    if (!code_) code_ = detail::pcre2_compile_rule(rule, &error, extra_options);
    // JIT failure (e.g. no executable memory) is not an error: the
    // interpreter gives the same answers, only slower.
    if (code_ && !(rule.flags & kNoOpt)) pcre2_jit_compile(code_.get(), PCRE2_JIT_COMPLETE);
    ready_.store(true, std::memory_order_release);
  });
  return code_.get();
}

const pcre2_real_code_8* LazyPcre2::get_quick(const Rule& rule, std::uint32_t extra_options) const {
  if (ready_.load(std::memory_order_acquire)) return code_.get();
  if (adopted_) return adopted_.get();
  std::call_once(quick_once_, [&] {
    std::string error;
    quick_ = detail::pcre2_compile_rule(rule, &error, extra_options);
  });
  return quick_.get();
}

std::string exceeds_pattern_limits(const Rule& rule, const PatternLimits& limits) {
  if (rule.pattern.size() > limits.max_bytes)
    return "pattern of " + std::to_string(rule.pattern.size()) + " bytes, more than the " +
           std::to_string(limits.max_bytes) + " allowed";
  std::string error;
  Pcre2CodePtr code = detail::pcre2_compile_rule(rule, &error);
  std::uint32_t captures = 0;
  if (code && pcre2_pattern_info(code.get(), PCRE2_INFO_CAPTURECOUNT, &captures) == 0 &&
      captures > limits.max_captures)
    return std::to_string(captures) + " capture groups, more than the " + std::to_string(limits.max_captures) +
           " allowed";
  return {};
}

namespace detail {

std::uint32_t pcre2_options_for(std::uint32_t flags) {
  std::uint32_t o = 0;
  if (flags & kCaseless) o |= PCRE2_CASELESS;
  if (flags & kMultiline) o |= PCRE2_MULTILINE;
  if (flags & kDotall) o |= PCRE2_DOTALL;
  if (flags & kExtended) o |= PCRE2_EXTENDED;
  if (flags & kUtf8) o |= PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  return o;
}

Pcre2CodePtr pcre2_compile_rule(const Rule& rule, std::string* error, std::uint32_t extra_options) {
  std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> ctx(
      pcre2_compile_context_create(nullptr), &pcre2_compile_context_free);
  if (!ctx) {
    *error = "out of memory";
    return nullptr;
  }
  pcre2_set_newline(ctx.get(), PCRE2_NEWLINE_LF);
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rule.pattern.data()), rule.pattern.size(),
                                 pcre2_options_for(rule.flags) | extra_options, &code, &offset, ctx.get());
  if (!re) *error = "pcre2: " + pcre2_error_text(code) + " at offset " + std::to_string(offset);
  return Pcre2CodePtr(re);
}

std::string pcre2_error_text(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

Pcre2Matcher::Pcre2Matcher(std::uint32_t match_limit, std::uint32_t depth_limit)
    : md_(pcre2_match_data_create(1, nullptr)),
      mctx_(pcre2_match_context_create(nullptr)),
      // The default JIT stack (32 KiB) overflows on long mail bodies with
      // nested quantifiers; 1 MiB per thread is what Rspamd also uses.
      jit_stack_(pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr)) {
  if (mctx_) {
    pcre2_set_match_limit(mctx_.get(), match_limit);
    pcre2_set_depth_limit(mctx_.get(), depth_limit);
    pcre2_set_heap_limit(mctx_.get(), kPcre2HeapLimitKiB);
    if (jit_stack_) pcre2_jit_stack_assign(mctx_.get(), nullptr, jit_stack_.get());
  }
}

long Pcre2Matcher::first_in(const pcre2_code* code, std::string_view data, std::size_t start, std::size_t limit) {
  if (!code || !md_ || !mctx_ || start > data.size()) return -1;
  pcre2_set_offset_limit(mctx_.get(), limit);
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(data.data()), data.size(), start, 0, md_.get(),
                             mctx_.get());
  pcre2_set_offset_limit(mctx_.get(), PCRE2_UNSET);  // count() and other rules search the whole buffer
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  return rc < 0 ? -1 : 1;
}

long Pcre2Matcher::count(const pcre2_code* code, std::string_view data, unsigned cap, bool utf) {
  if (!code || !md_ || !mctx_) return -1;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(data.data());
  const PCRE2_SIZE len = data.size();
  PCRE2_SIZE start = 0;
  std::uint32_t opts = 0;
  long n = 0;
  while (static_cast<unsigned long>(n) < cap && start <= len) {
    int rc = pcre2_match(code, subject, len, start, opts, md_.get(), mctx_.get());
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (opts == 0) break;
      // The non-empty retry at an empty match's position failed: move one
      // character on (one code point in UTF mode) and search normally.
      opts = 0;
      ++start;
      if (utf)
        while (start < len && (static_cast<unsigned char>(data[start]) & 0xC0) == 0x80) ++start;
      continue;
    }
    if (rc < 0) return -1;  // match/depth limit, JIT stack limit, ...
    ++n;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_.get());
    PCRE2_SIZE s = ov[0], e = ov[1];
    // \K can put the start after the end; progress is measured from the end.
    if (e <= s) {
      if (e < start) e = start;
      start = e;
      opts = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
    } else {
      start = e;
      opts = 0;
    }
  }
  return n;
}

}  // namespace detail
}  // namespace regexd::engine
