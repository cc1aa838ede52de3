// The native rule-set format: "<rule-id> <class> /<pattern>/<flags>" per line.
// See regexd/engine/rule.h for the contract.
#include <string>
#include <string_view>
#include <unordered_map>

#include "import/text.h"
#include "regexd/engine/rule.h"

namespace regexd::engine {

using namespace import;

RuleSet parse_native(std::string_view text, std::string_view source) {
  RuleSet set;
  std::unordered_map<std::string, std::size_t> index;
  for_each_line(text, [&](unsigned line_no, std::string_view line) {
    if (line.empty() || line.front() == '#') return;
    auto reject = [&](std::string_view id, std::string message) {
      set.rejected.push_back(
          RuleError{std::string(source), line_no, std::string(id), std::move(message)});
    };
    std::string_view rest = line;
    std::string_view id = pop_token(&rest);
    if (!is_valid_id(id)) {
      reject({}, invalid_id_message("rule id", id));
      return;
    }
    std::string_view cls = pop_token(&rest);
    if (cls.empty()) {
      reject(id, "missing class and pattern (expected '<rule-id> <class> /<pattern>/<flags>')");
      return;
    }
    if (cls.front() == '/') {
      reject(id, "missing class before the pattern");
      return;
    }
    if (rest.empty()) {
      reject(id, "missing pattern after class '" + std::string(cls) + "'");
      return;
    }
    if (rest.front() != '/') {
      reject(id, "expected '/' to start the pattern after class '" + std::string(cls) + "'");
      return;
    }
    // The last '/' closes the pattern, so slashes inside need no escaping.
    std::size_t last = rest.rfind('/');
    if (last == 0) {
      reject(id, "missing closing '/'");
      return;
    }
    std::string_view pattern = rest.substr(1, last - 1);
    if (pattern.empty()) {
      reject(id, "empty pattern");
      return;
    }
    std::string error;
    std::optional<std::uint32_t> flags = parse_flag_suffix(rest.substr(last + 1), &error);
    if (!flags) {
      reject(id, std::move(error));
      return;
    }
    auto [it, inserted] = index.try_emplace(std::string(id), set.rules.size());
    if (!inserted) {
      const Rule& first = set.rules[it->second];
      reject(id, "duplicate rule id " + std::string(id) + " (first defined at " +
                     location(first.source, first.line) + ")");
      return;
    }
    Rule rule;
    rule.id = std::string(id);
    rule.cls = std::string(cls);
    rule.pattern = std::string(pattern);
    rule.flags = *flags;
    rule.source = std::string(source);
    rule.line = line_no;
    rule.kind = "native";
    set.rules.push_back(std::move(rule));
  });
  return set;
}

}  // namespace regexd::engine
