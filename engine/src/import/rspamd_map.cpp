// Rspamd regexp maps: one "/re/flags" per line, the class given by the caller.
// See regexd/engine/rule.h for the contract.
#include <string>
#include <string_view>

#include "import/text.h"
#include "regexd/engine/rule.h"

namespace regexd::engine {

using namespace import;
namespace {

// The id stem of a map: file name without directory and extension, reduced
// to characters that are valid in rule ids (':' is the line separator).
std::string map_stem(std::string_view source) {
  std::size_t slash = source.find_last_of('/');
  std::string_view name = slash == std::string_view::npos ? source : source.substr(slash + 1);
  std::size_t dot = name.rfind('.');
  if (dot != std::string_view::npos && dot > 0) name = name.substr(0, dot);
  std::string stem;
  stem.reserve(name.size());
  for (char c : name) {
    bool keep = is_alnum(c) || c == '_' || c == '.' || c == '-';
    stem.push_back(keep ? c : '_');
  }
  // A source without a usable name (e.g. "" or "dir/") still needs valid ids.
  if (stem.empty()) stem = "map";
  return stem;
}

}  // namespace

RuleSet parse_rspamd_map(std::string_view text, std::string_view source, std::string_view cls) {
  RuleSet set;
  const std::string stem = map_stem(source);
  for_each_line(text, [&](unsigned line_no, std::string_view line) {
    if (line.empty() || line.front() == '#') return;
    const std::string id = stem + ":" + std::to_string(line_no);
    auto reject = [&](std::string message) {
      set.rejected.push_back(RuleError{std::string(source), line_no, id, std::move(message)});
    };
    std::string_view pattern = line;
    std::uint32_t flags = 0;
    if (line.front() == '/') {
      // The closing '/' is the last one followed by flag letters and then
      // whitespace or the end, so "/a b/i value" splits as pattern "a b",
      // flags "i", and the value (which the map ignores) after it.
      std::size_t close = 0;
      std::size_t flags_end = 0;
      for (std::size_t p = line.size() - 1; p > 0; --p) {
        if (line[p] != '/') continue;
        std::size_t q = p + 1;
        while (q < line.size() && is_alpha(line[q])) ++q;
        if (q == line.size() || is_space(line[q])) {
          close = p;
          flags_end = q;
          break;
        }
      }
      if (close == 0) {
        reject("missing closing '/'");
        return;
      }
      pattern = line.substr(1, close - 1);
      std::string error;
      std::optional<std::uint32_t> parsed =
          parse_flag_suffix(line.substr(close + 1, flags_end - close - 1), &error);
      if (!parsed) {
        reject(std::move(error));
        return;
      }
      flags = *parsed;
    }
    if (pattern.empty()) {
      reject("empty pattern");
      return;
    }
    Rule rule;
    rule.id = id;
    rule.cls = std::string(cls);
    rule.pattern = std::string(pattern);
    rule.flags = flags;
    rule.source = std::string(source);
    rule.line = line_no;
    rule.kind = "map";
    set.rules.push_back(std::move(rule));
  });
  return set;
}

}  // namespace regexd::engine
