// The engine's internal name for regexd::engine::valid_utf8 (public in
// regexd/engine/utf8.h).
#pragma once

#include "regexd/engine/utf8.h"

namespace regexd::engine::detail {

using engine::valid_utf8;

}  // namespace regexd::engine::detail
