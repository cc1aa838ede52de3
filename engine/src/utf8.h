// UTF-8 validation, to decide whether a buffer may go to Hyperscan's UTF-8
// databases (whose behaviour on invalid input is undefined).
#pragma once

#include <string_view>

namespace regexd::engine::detail {

// True if `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF) -- the same definition PCRE2's UTF check uses.
bool valid_utf8(std::string_view s);

}  // namespace regexd::engine::detail
