// Pattern rewrites for Hyperscan; see rewrite.h for what each one proves.
#include "rewrite.h"

#include <cstddef>
#include <string>

namespace regexd::engine::detail {
namespace {

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Inline options such as "(?x)" or "(?ix:" switch extended syntax on inside
// the pattern; both rewrites refuse such patterns.
bool has_inline_extended(std::string_view p) {
  for (std::size_t at = p.find("(?"); at != std::string_view::npos; at = p.find("(?", at + 2)) {
    if (at > 0 && p[at - 1] == '\\') continue;
    for (std::size_t i = at + 2; i < p.size(); ++i) {
      char c = p[i];
      if (c == 'x') return true;
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '^')) break;
    }
  }
  return false;
}

// The escaped byte at p[i] == '\\' ("\xHH" or "\x{HH}"), with its length;
// -1 when it is not a hex escape.
int escaped_byte(std::string_view p, std::size_t i, std::size_t* len) {
  if (i + 1 >= p.size() || p[i + 1] != 'x') return -1;
  if (i + 2 < p.size() && p[i + 2] == '{') {
    std::size_t close = p.find('}', i + 3);
    if (close == std::string_view::npos || close == i + 3 || close - (i + 3) > 2) return -1;
    int v = 0;
    for (std::size_t k = i + 3; k < close; ++k) {
      if (!is_hex(p[k])) return -1;
      v = v * 16 + hex_value(p[k]);
    }
    *len = close + 1 - i;
    return v;
  }
  // "\x" takes up to two hex digits, as in Perl and PCRE2.
  std::size_t k = i + 2;
  int v = 0;
  while (k < p.size() && k < i + 4 && is_hex(p[k])) v = v * 16 + hex_value(p[k++]);
  if (k == i + 2) return -1;
  *len = k - i;
  return v;
}

}  // namespace

std::optional<std::string> compact_escaped_bytes(const Rule& rule) {
  const std::string_view p = rule.pattern;
  if ((rule.flags & (kUtf8 | kExtended)) || p.find("\\Q") != std::string_view::npos || has_inline_extended(p))
    return std::nullopt;
  std::string out;
  out.reserve(p.size());
  for (std::size_t i = 0; i < p.size();) {
    // "[\xHH]": a class of one high byte is that byte.
    if (p[i] == '[' && (i == 0 || p[i - 1] != '\\') && i + 1 < p.size() && p[i + 1] == '\\') {
      std::size_t len = 0;
      int v = escaped_byte(p, i + 1, &len);
      if (v >= 0x80 && i + 1 + len < p.size() && p[i + 1 + len] == ']') {
        out.push_back(static_cast<char>(v));
        i += len + 2;
        continue;
      }
    }
    if (p[i] != '\\') {
      out.push_back(p[i++]);
      continue;
    }
    std::size_t len = 0;
    int v = escaped_byte(p, i, &len);
    if (v >= 0x80) {
      out.push_back(static_cast<char>(v));
      i += len;
      continue;
    }
    // Any other escape is copied whole ("\\", "\cX" takes one more byte).
    std::size_t take = 2;
    if (i + 1 < p.size() && p[i + 1] == 'c') take = 3;
    out.append(p.substr(i, take));
    i += take;
  }
  if (out.size() >= p.size()) return std::nullopt;
  return out;
}

namespace {

// The index just past the class that opens at p[i] ('['), or npos when the
// pattern ends first.  "]" first (after "^") is literal; so is anything
// escaped, and "[:name:]" is skipped whole.
std::size_t class_end(std::string_view p, std::size_t i) {
  std::size_t k = i + 1;
  if (k < p.size() && p[k] == '^') ++k;
  if (k < p.size() && p[k] == ']') ++k;
  while (k < p.size() && p[k] != ']') {
    if (p[k] == '\\') {
      k += 2;
    } else if (p[k] == '[' && k + 1 < p.size() && p[k + 1] == ':') {
      std::size_t close = p.find(":]", k + 2);
      k = close == std::string_view::npos ? k + 1 : close + 2;
    } else {
      ++k;
    }
  }
  return k >= p.size() ? std::string_view::npos : k + 1;
}

// The index just past the group that opens at p[i] ('('), or npos when the
// pattern ends first.  Skips escapes, \Q...\E, classes and nested groups.
std::size_t group_end(std::string_view p, std::size_t i) {
  int depth = 0;
  for (std::size_t j = i; j < p.size();) {
    const char c = p[j];
    if (c == '\\') {
      if (j + 1 < p.size() && p[j + 1] == 'Q') {
        std::size_t end = p.find("\\E", j + 2);
        if (end == std::string_view::npos) return std::string_view::npos;
        j = end + 2;
      } else {
        j += 2;
      }
      continue;
    }
    if (c == '[') {
      j = class_end(p, j);
      if (j == std::string_view::npos) return j;
      continue;
    }
    if (c == '(') ++depth;
    if (c == ')' && --depth == 0) return j + 1;
    ++j;
  }
  return std::string_view::npos;
}

bool is_quantifier_start(std::string_view p, std::size_t i) {
  return i < p.size() && (p[i] == '*' || p[i] == '+' || p[i] == '?' || p[i] == '{');
}

}  // namespace

std::optional<std::string> loosen_for_prefilter(const Rule& rule, std::string_view p) {
  if ((rule.flags & kExtended) || has_inline_extended(p)) return std::nullopt;
  std::string out;
  out.reserve(p.size());
  bool changed = false;
  for (std::size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) return std::nullopt;
      const char e = p[i + 1];
      // Back-references ("\1", "\g", "\k") make a match depend on another
      // part's text: no superset argument for them.
      if ((is_digit(e) && e != '0') || e == 'g' || e == 'k') return std::nullopt;
      if (e == 'Q') {  // literal text up to \E
        std::size_t end = p.find("\\E", i + 2);
        end = end == std::string_view::npos ? p.size() : end + 2;
        out.append(p.substr(i, end - i));
        i = end;
        continue;
      }
      std::size_t take = 2;
      if (e == 'c') take = 3;
      // "\x{..}", "\p{..}", "\o{..}", "\N{..}": the braces are the escape's.
      if ((e == 'x' || e == 'p' || e == 'P' || e == 'o' || e == 'N') && i + 2 < p.size() && p[i + 2] == '{') {
        std::size_t close = p.find('}', i + 3);
        if (close == std::string_view::npos) return std::nullopt;
        take = close + 1 - i;
      }
      out.append(p.substr(i, take));
      i += take;
      continue;
    }
    if (c == '[') {  // a class: copied whole
      std::size_t end = class_end(p, i);
      if (end == std::string_view::npos) return std::nullopt;
      out.append(p.substr(i, end - i));
      i = end;
      continue;
    }
    if (c == '(' && i + 1 < p.size() && (p[i + 1] == '?' || p[i + 1] == '*')) {
      std::string_view head = p.substr(i, 4);
      if (head.starts_with("(?!") || head.starts_with("(?<!")) {
        // A negative look-around is dropped whole (see rewrite.h).  Not
        // when a quantifier follows it: the quantifier would then bind to
        // the item before.
        std::size_t end = group_end(p, i);
        if (end == std::string_view::npos || is_quantifier_start(p, end)) return std::nullopt;
        i = end;
        changed = true;
        continue;
      }
      // Verbs, conditionals, back-references by name and subroutine calls
      // ("(?1)", "(?+1)", "(?-1)", "(?&n)", "(?P>n)", "(?R)").
      if (p[i + 1] == '*' || head.starts_with("(?(") || head.starts_with("(?P=") || head.starts_with("(?P>") ||
          head.starts_with("(?&") || head.starts_with("(?R") || head.starts_with("(?+") ||
          (head.size() > 2 && is_digit(head[2])) || (head.size() > 3 && head[2] == '-' && is_digit(head[3])))
        return std::nullopt;
      if (head.starts_with("(?>")) {  // atomic: an ordinary group (see rewrite.h)
        out.append("(?:");
        i += 3;
        changed = true;
        continue;
      }
      if (head.starts_with("(?#")) {  // comment: copied as is
        std::size_t close = p.find(')', i);
        if (close == std::string_view::npos) return std::nullopt;
        out.append(p.substr(i, close + 1 - i));
        i = close + 1;
        continue;
      }
    }
    if ((c == '*' || c == '+' || c == '?') && i + 1 < p.size() && p[i + 1] == '+') {
      out.push_back(c);  // possessive: greedy (see rewrite.h)
      i += 2;
      changed = true;
      continue;
    }
    if (c == '{') {
      std::size_t j = i + 1, m_end, n_end;
      while (j < p.size() && is_digit(p[j])) ++j;
      m_end = j;
      bool quantifier = m_end > i + 1;
      bool has_max = false;
      n_end = j;
      if (quantifier && j < p.size() && p[j] == ',') {
        ++j;
        while (j < p.size() && is_digit(p[j])) ++j;
        n_end = j;
        has_max = n_end > m_end + 1;
        if (!has_max) quantifier = j < p.size() && p[j] == '}';  // "{m,}" is already open
      }
      quantifier = quantifier && j < p.size() && p[j] == '}';
      if (quantifier) {
        const bool possessive = j + 1 < p.size() && p[j + 1] == '+';  // made greedy (see rewrite.h)
        bool bounded = has_max || n_end == m_end;  // "{m,n}" or "{n}"
        out.append(p.substr(i, m_end - i));
        out += bounded ? std::string_view(",}") : p.substr(m_end, j + 1 - m_end);
        changed = changed || bounded || possessive;
        i = j + 1 + (possessive ? 1 : 0);
        continue;
      }
    }
    out.push_back(c);
    ++i;
  }
  if (!changed) return std::nullopt;
  return out;
}

}  // namespace regexd::engine::detail
