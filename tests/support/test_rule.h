// A Rule for unit tests: id, pattern and flag letters (parse_flags), in the
// `body` class unless said otherwise.
#pragma once

#include <string>
#include <utility>

#include "regexd/engine/rule.h"

namespace regexd::testing {

inline engine::Rule test_rule(std::string id, std::string pattern, std::string flags = "", std::string cls = "body") {
  engine::Rule r;
  r.id = std::move(id);
  r.cls = std::move(cls);
  r.pattern = std::move(pattern);
  char bad = 0;
  r.flags = *engine::parse_flags(flags, &bad);
  r.source = "test";
  return r;
}

}  // namespace regexd::testing
