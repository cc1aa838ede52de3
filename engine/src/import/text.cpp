#include "import/text.h"

#include <cerrno>
#include <cstdio>
#include <cstring>


namespace regexd::engine::import {
namespace {
bool is_id_char(char c) { return is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '-'; }
}  // namespace

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

std::string_view pop_token(std::string_view* rest) {
  std::string_view s = trim_left(*rest);
  std::size_t end = 0;
  while (end < s.size() && !is_space(s[end])) ++end;
  std::string_view token = s.substr(0, end);
  *rest = trim_left(s.substr(end));
  return token;
}

bool is_valid_id(std::string_view id) {
  if (id.empty()) return false;
  for (char c : id) {
    if (!is_id_char(c)) return false;
  }
  return true;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string location(std::string_view source, unsigned line) {
  return std::string(source) + ":" + std::to_string(line);
}

std::string invalid_id_message(std::string_view what, std::string_view id) {
  return "invalid " + std::string(what) + " '" + std::string(id) +
         "' (allowed characters: A-Z a-z 0-9 _ . : -)";
}

std::optional<std::uint32_t> parse_flag_suffix(std::string_view letters, std::string* error) {
  for (char c : letters) {
    if (!is_alpha(c)) {
      *error = "unexpected text after closing '/': '" + std::string(letters) + "'";
      return std::nullopt;
    }
  }
  char bad = 0;
  std::optional<std::uint32_t> flags = parse_flags(letters, &bad);
  if (!flags) *error = std::string("unknown flag '") + bad + "'";
  return flags;
}

bool read_file(const std::string& path, std::string* text, std::string* error) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    *error = std::strerror(errno);
    return false;
  }
  char buffer[1 << 16];
  for (;;) {
    std::size_t n = std::fread(buffer, 1, sizeof buffer, file);
    text->append(buffer, n);
    if (n < sizeof buffer) break;
  }
  // Reading a directory, for one, opens fine and fails here with EISDIR.
  bool ok = std::ferror(file) == 0;
  if (!ok) *error = std::strerror(errno);
  std::fclose(file);
  return ok;
}

RuleError read_error(const std::string& path, const std::string& why) {
  return RuleError{path, 0, {}, "cannot read: " + why};
}

}  // namespace regexd::engine::import
