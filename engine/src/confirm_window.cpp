#include "confirm_window.h"

#include <hs.h>

#include <climits>
#include <cstdlib>
#include <memory>
#include <string>

namespace regexd::engine::detail {
namespace {

// Whether the pattern has the escape \G outside a character class.  An
// escaped backslash ("\\G") is skipped as the escape it is; "\G" inside a
// class is a literal G to PCRE2 but still refused here (a false "yes" only
// costs the window).
bool has_start_assertion(std::string_view p) {
  for (std::size_t i = 0; i + 1 < p.size(); ++i) {
    if (p[i] != '\\') continue;
    if (p[i + 1] == 'G') return true;
    ++i;  // the escaped character
  }
  return false;
}

}  // namespace

std::optional<ConfirmWidth> confirm_width(const Rule& rule, std::string_view hs_expression, unsigned hs_flags) {
  if ((rule.flags & (kUtf8 | kLeftmost)) || !(hs_flags & HS_FLAG_PREFILTER) || has_start_assertion(rule.pattern))
    return std::nullopt;
  const std::string expr(hs_expression);
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_expression_info(expr.c_str(), hs_flags, &info, &err) != HS_SUCCESS) {
    hs_free_compile_error(err);
    return std::nullopt;
  }
  // hs_expression_info allocates with the misc allocator, malloc by default.
  std::unique_ptr<hs_expr_info_t, decltype(&std::free)> keep(info, &std::free);
  if (info->max_width == UINT_MAX || info->max_width > kMaxConfirmWidth || info->min_width > info->max_width)
    return std::nullopt;
  return ConfirmWidth{info->min_width, info->max_width};
}

ConfirmWindow confirm_window(std::size_t lo, std::size_t hi, ConfirmWidth width) {
  ConfirmWindow w;
  w.start = lo > width.max ? lo - width.max : 0;
  w.limit = hi > width.min ? hi - width.min : 0;
  if (w.limit < w.start) w.limit = w.start;
  return w;
}

}  // namespace regexd::engine::detail
