// UTF-8 validation, public: the engine uses it to decide whether a buffer may
// go to Hyperscan's UTF-8 databases (whose behaviour on invalid input is
// undefined); the server uses it to refuse names and classes that would not
// survive a JSON reply.
#pragma once

#include <string_view>

namespace regexd::engine {

// True if `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF) -- the same definition PCRE2's UTF check uses.
bool valid_utf8(std::string_view s);

}  // namespace regexd::engine
