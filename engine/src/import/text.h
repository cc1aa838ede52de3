// Text helpers shared by the rule-set importers (engine/src/import/*.cpp):
// ASCII classification, tokenising, line iteration and error wording.
//
// ASCII-only on purpose: rule files are bytes (SpamAssassin files mix Latin-1
// and UTF-8), so <cctype> with its locale and sign pitfalls is avoided.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "regexd/engine/rule.h"

namespace regexd::engine::import {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }

std::string_view trim(std::string_view s);
std::string_view trim_left(std::string_view s);
// Removes and returns the first whitespace-delimited token of *rest; *rest
// keeps the remainder with its leading whitespace removed.
std::string_view pop_token(std::string_view* rest);

// Rule ids: [A-Za-z0-9_.:-]+.
bool is_valid_id(std::string_view id);
std::string invalid_id_message(std::string_view what, std::string_view id);
std::string to_lower(std::string_view s);
// "source:line", the prefix of every error message.
std::string location(std::string_view source, unsigned line);

// Validates the letters after a closing '/' in Rspamd syntax.  Returns the
// flags, or nullopt with *error set.
std::optional<std::uint32_t> parse_flag_suffix(std::string_view letters, std::string* error);

// Calls fn(line_number, line) for every line of `text` (1-based numbers),
// with surrounding whitespace, including a CRLF's '\r', already trimmed.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  // Editors on Windows like to start files with a UTF-8 byte order mark,
  // which would otherwise end up glued to the first rule id.
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  unsigned line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::size_t end = nl == std::string_view::npos ? text.size() : nl;
    ++line_no;
    fn(line_no, trim(text.substr(pos, end - pos)));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
}

// Reads a whole file; false (with errno's text in *error) when it cannot.
bool read_file(const std::string& path, std::string* text, std::string* error);
// The RuleError for a file that cannot be read.
RuleError read_error(const std::string& path, const std::string& why);

}  // namespace regexd::engine::import
