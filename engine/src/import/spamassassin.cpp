// The SpamAssassin .cf importer: body, rawbody, full, uri and header rules,
// meta rules, tflags, scores and the ReplaceTags plugin's settings, read as
// SpamAssassin 4.0 reads them.  See regexd/engine/rule.h for the contract.
#include <charconv>
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "import/text.h"
#include "regexd/engine/rule.h"

namespace regexd::engine {

using namespace import;
namespace {

// ---------------------------------------------------------------------------
// Perl-style delimited regexes, as SpamAssassin writes them.

struct PerlRegex {
  std::string pattern;
  std::uint32_t flags = 0;
  std::string_view tail;  // whatever follows the flags, trimmed
};

char closing_bracket(char open) {
  switch (open) {
    case '{': return '}';
    case '(': return ')';
    case '<': return '>';
    case '[': return ']';
    default: return 0;
  }
}

// Parses "/re/flags", "m{re}flags", "m!re!flags", ... at the start of
// `text`.  The pattern is kept verbatim, escaped delimiters included: Perl
// hands "\/" to its regex engine unchanged and PCRE reads it as a literal
// '/', so stripping the backslash would only risk changing meaning (e.g. in
// m|a\|b| the backslash is what makes '|' literal).
bool parse_perl_regex(std::string_view text, PerlRegex* out, std::string* error) {
  std::size_t pos = 0;
  char open = 0;
  if (text.starts_with('/')) {
    open = '/';
    pos = 1;
  } else {
    // SpamAssassin's compile_regexp accepts m and qr prefixes alike.
    std::size_t prefix = text.starts_with("qr") ? 2 : text.starts_with('m') ? 1 : 0;
    if (prefix == 0) {
      *error = "expected a delimited regex such as /re/flags or m{re}flags";
      return false;
    }
    if (prefix >= text.size()) {
      *error = "missing regex delimiter after '" + std::string(text.substr(0, prefix)) + "'";
      return false;
    }
    open = text[prefix];
    if (is_alnum(open) || is_space(open) || open == '\\' || open == '_') {
      *error = std::string("invalid regex delimiter '") + open + "'";
      return false;
    }
    pos = prefix + 1;
  }
  const char bracket_close = closing_bracket(open);
  const char close = bracket_close != 0 ? bracket_close : open;

  // Find the closing delimiter.  A backslash escapes the next byte; with
  // bracket delimiters, nested pairs of the same bracket count, as in Perl.
  std::size_t i = pos;
  int depth = 0;
  bool closed = false;
  while (i < text.size()) {
    char c = text[i];
    if (c == '\\') {
      i += 2;
      continue;
    }
    if (bracket_close != 0 && c == open) {
      ++depth;
    } else if (c == close) {
      if (depth == 0) {
        closed = true;
        break;
      }
      --depth;
    }
    ++i;
  }
  if (!closed) {
    *error = std::string("missing closing delimiter '") + close + "'";
    return false;
  }
  std::string_view pattern = text.substr(pos, i - pos);
  if (pattern.empty()) {
    *error = "empty pattern";
    return false;
  }

  std::size_t j = i + 1;
  std::uint32_t flags = 0;
  while (j < text.size() && is_alpha(text[j])) {
    switch (text[j]) {
      case 'i': flags |= kCaseless; break;
      case 'm': flags |= kMultiline; break;
      case 's': flags |= kDotall; break;
      case 'x': flags |= kExtended; break;
      default:
        *error = std::string("unsupported perl flag '") + text[j] + "'";
        return false;
    }
    ++j;
  }
  if (j < text.size() && !is_space(text[j])) {
    *error = "unexpected text after regex: '" + std::string(text.substr(j)) + "'";
    return false;
  }
  out->pattern = std::string(pattern);
  out->flags = flags;
  out->tail = trim(text.substr(j));
  return true;
}

bool is_comment(std::string_view tail) { return tail.starts_with('#'); }

// ---------------------------------------------------------------------------
// SpamAssassin importer state.

// Rule-defining directives that are not regex rules, and the skipped kind
// each one is counted under.
const char* skipped_directive_kind(std::string_view directive) {
  if (directive == "meta") return "meta";
  if (directive == "mimeheader") return "mimeheader";
  if (directive == "uri_detail") return "uri_detail";
  if (directive == "askdns") return "askdns";
  // URIDNSBL lookups and other plugin rule types that define a rule name.
  if (directive == "urirhssub" || directive == "urirhsbl" || directive == "uridnsbl" ||
      directive == "uridnssub" || directive == "urifullsearch") {
    return "other";
  }
  return nullptr;
}

class SpamAssassinImporter {
 public:
  SpamAssassinImporter(std::string_view source, const SpamAssassinOptions& options)
      : source_(source), options_(options) {}

  // The next file of the same configuration (SpamAssassin reads all its .cf
  // files as one).
  void set_source(std::string_view source) { source_ = std::string(source); }

  void parse_text(std::string_view text) {
    for_each_line(text, [&](unsigned line_no, std::string_view line) { parse_line(line_no, line); });
  }

  void parse_line(unsigned line_no, std::string_view line) {
    if (line.empty() || line.front() == '#') return;
    std::string_view rest = line;
    const std::string directive = to_lower(pop_token(&rest));

    if (directive == "body" || directive == "rawbody" || directive == "full" ||
        directive == "uri") {
      parse_body_like(line_no, directive, rest);
    } else if (directive == "header") {
      parse_header(line_no, rest);
    } else if (directive == "tflags") {
      parse_tflags(line_no, rest);
    } else if (directive.starts_with("replace_")) {
      parse_replace(line_no, directive, rest);
    } else if (const char* kind = skipped_directive_kind(directive)) {
      skip(pop_token(&rest), kind);
    }
    // Everything else (describe, score, lang, ifplugin, ...) configures
    // rules or SpamAssassin itself and has no regex to import.
  }

  RuleSet finish() && {
    RuleSet set;
    set.rules.reserve(rules_.size());
    for (std::size_t i = 0; i < rules_.size(); ++i) {
      if (dropped_[i]) continue;
      Rule& rule = rules_[i];
      // tflags may precede or follow its rule, so it is applied only now.
      auto it = max_hits_.find(rule.id);
      if (it != max_hits_.end()) rule.max_hits = it->second;
      if (replace_rules_.count(rule.id)) rule.pattern = replace_tags(std::move(rule.pattern));
      set.rules.push_back(std::move(rule));
    }
    set.rejected = std::move(rejected_);
    set.skipped = std::move(skipped_);
    return set;
  }

 private:
  void reject(unsigned line_no, std::string_view id, std::string message) {
    rejected_.push_back(RuleError{std::string(source_), line_no, std::string(id),
                                  std::move(message)});
  }

  void skip(std::string_view name, const std::string& kind) {
    ++skipped_[kind];
    // The later definition wins in SpamAssassin, even when it changes the
    // rule's type: a regex rule redefined as meta or eval is gone.
    auto it = index_.find(std::string(name));
    if (it != index_.end()) dropped_[it->second] = true;
  }

  void define(Rule rule) {
    auto [it, inserted] = index_.try_emplace(rule.id, rules_.size());
    if (inserted) {
      rules_.push_back(std::move(rule));
      dropped_.push_back(false);
    } else {
      // Redefinition: keep the first position so rule order stays stable,
      // but take the later definition (and its line) as SpamAssassin does.
      rules_[it->second] = std::move(rule);
      dropped_[it->second] = false;
    }
  }

  // Pops the rule name; rejects the line and returns false if it is unusable.
  bool take_name(unsigned line_no, std::string_view* rest, std::string_view* name) {
    *name = pop_token(rest);
    if (name->empty()) {
      reject(line_no, {}, "missing rule name");
      return false;
    }
    if (!is_valid_id(*name)) {
      reject(line_no, {}, invalid_id_message("rule name", *name));
      return false;
    }
    return true;
  }

  void parse_body_like(unsigned line_no, const std::string& directive, std::string_view rest) {
    std::string_view name;
    if (!take_name(line_no, &rest, &name)) return;
    if (rest.empty()) {
      reject(line_no, name, "missing pattern");
      return;
    }
    if (rest.starts_with("eval:")) {
      skip(name, "eval");
      return;
    }
    PerlRegex regex;
    std::string error;
    if (!parse_perl_regex(rest, &regex, &error)) {
      reject(line_no, name, std::move(error));
      return;
    }
    if (!regex.tail.empty() && !is_comment(regex.tail)) {
      reject(line_no, name, "unexpected text after regex: '" + std::string(regex.tail) + "'");
      return;
    }
    Rule rule;
    rule.id = std::string(name);
    if (options_.force_class) {
      rule.cls = *options_.force_class;
    } else {
      rule.cls = directive == "uri" ? "url" : directive;
    }
    rule.pattern = std::move(regex.pattern);
    rule.flags = regex.flags;
    rule.source = std::string(source_);
    rule.line = line_no;
    rule.kind = directive;
    define(std::move(rule));
  }

  void parse_header(unsigned line_no, std::string_view rest) {
    std::string_view name;
    if (!take_name(line_no, &rest, &name)) return;
    if (rest.empty()) {
      reject(line_no, name, "missing header test");
      return;
    }
    if (rest.starts_with("eval:") || rest.starts_with("rbleval:")) {
      skip(name, "eval");
      return;
    }
    if (rest.starts_with("exists:")) {
      skip(name, "exists");
      return;
    }
    // The header name runs up to whitespace or the operator, which may be
    // written without spaces ("Subject=~/x/").
    std::size_t end = 0;
    while (end < rest.size() && !is_space(rest[end]) &&
           !((rest[end] == '=' || rest[end] == '!') && end + 1 < rest.size() &&
             rest[end + 1] == '~')) {
      ++end;
    }
    std::string_view header = rest.substr(0, end);
    std::string_view after = trim_left(rest.substr(end));
    if (header.empty()) {
      reject(line_no, name, "missing header name before '=~'");
      return;
    }
    if (after.starts_with("!~")) {
      skip(name, "negated-header");
      return;
    }
    if (!after.starts_with("=~")) {
      reject(line_no, name, "expected '=~' or '!~' after header name '" + std::string(header) + "'");
      return;
    }
    if (!options_.include_headers) {
      skip(name, "header");
      return;
    }
    PerlRegex regex;
    std::string error;
    if (!parse_perl_regex(trim_left(after.substr(2)), &regex, &error)) {
      reject(line_no, name, std::move(error));
      return;
    }
    std::string_view tail = regex.tail;
    // "[if-unset: VALUE]" is the value matched when the header is missing;
    // a scanner of header buffers has no use for it.
    if (tail.starts_with("[if-unset:")) {
      std::size_t close = tail.find(']');
      if (close == std::string_view::npos) {
        reject(line_no, name, "unterminated [if-unset: ...]");
        return;
      }
      tail = trim_left(tail.substr(close + 1));
    }
    if (!tail.empty() && !is_comment(tail)) {
      reject(line_no, name, "unexpected text after regex: '" + std::string(tail) + "'");
      return;
    }
    Rule rule;
    rule.id = std::string(name);
    rule.cls = "header:" + std::string(header);
    rule.pattern = std::move(regex.pattern);
    rule.flags = regex.flags;
    rule.source = std::string(source_);
    rule.line = line_no;
    rule.kind = "header";
    define(std::move(rule));
  }

  // "tflags NAME word word ..." replaces NAME's whole flag list, so the
  // last tflags line for a name decides its max_hits.
  void parse_tflags(unsigned line_no, std::string_view rest) {
    std::string_view name = pop_token(&rest);
    if (name.empty()) return;
    bool multiple = false;
    unsigned max_hits = 0;
    for (std::string_view word = pop_token(&rest); !word.empty(); word = pop_token(&rest)) {
      if (word.starts_with('#')) break;
      if (word == "multiple") {
        multiple = true;
      } else if (word.starts_with("maxhits=")) {
        std::string_view number = word.substr(8);
        unsigned value = 0;
        auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
        if (ec != std::errc() || ptr != number.data() + number.size() || value == 0) {
          reject(line_no, name, "invalid tflags maxhits value '" + std::string(number) + "'");
          continue;
        }
        max_hits = value;
      }
    }
    // SpamAssassin only honours maxhits for rules that run "multiple";
    // without it a rule stops at its first hit and maxhits means nothing.
    max_hits_[std::string(name)] = multiple ? max_hits : 0;
  }

  // ReplaceTags (Mail::SpamAssassin::Plugin::ReplaceTags): settings of any
  // file apply to the rules named by replace_rules in any file, once all are
  // read.
  void parse_replace(unsigned line_no, const std::string& directive, std::string_view rest) {
    // SpamAssassin's config reader drops everything from a '#' that has no
    // backslash before it, then turns every "\#" into "#".
    for (std::size_t i = 0; i < rest.size(); ++i) {
      if (rest[i] == '#' && (i == 0 || rest[i - 1] != '\\')) {
        rest = trim(rest.substr(0, i));
        break;
      }
    }
    std::string unescaped;
    for (std::size_t i = 0; i < rest.size(); ++i) {
      if (rest[i] == '\\' && i + 1 < rest.size() && rest[i + 1] == '#') continue;
      unescaped += rest[i];
    }
    rest = unescaped;
    std::map<std::string, std::string>* table = directive == "replace_tag"     ? &tags_
                                                : directive == "replace_pre"   ? &pre_
                                                : directive == "replace_inter" ? &inter_
                                                : directive == "replace_post"  ? &post_
                                                                               : nullptr;
    if (table) {
      std::string_view name = pop_token(&rest);
      std::string_view value = trim(rest);
      if (name.empty() || value.empty()) {
        reject(line_no, name, directive + " needs a tag name and an expression");
        return;
      }
      (*table)[std::string(name)] = std::string(value);
    } else if (directive == "replace_rules") {
      for (std::string_view n = pop_token(&rest); !n.empty(); n = pop_token(&rest)) replace_rules_.emplace(n);
    } else if (directive == "replace_start" || directive == "replace_end") {
      std::string_view value = trim(rest);
      if (value.empty()) {
        reject(line_no, {}, directive + " needs a string");
        return;
      }
      (directive == "replace_start" ? replace_start_ : replace_end_) = std::string(value);
    }
  }

  // Perl's truth: "" and "0" are false.  ReplaceTags tests its table values so.
  static bool perl_true(const std::string* v) { return v && !v->empty() && *v != "0"; }
  static const std::string* lookup(const std::map<std::string, std::string>& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? nullptr : &it->second;
  }

  // The first "<start><word>X<end>" at or after `from` (X at least one
  // character): its position and length, as Perl's /$start$word(.+?)$end/
  // finds it.
  std::pair<std::size_t, std::size_t> find_tag(const std::string& s, std::size_t from,
                                               const std::string& word = {}) const {
    const std::string open = replace_start_ + word;
    for (std::size_t a = s.find(open, from); a != std::string::npos; a = s.find(open, a + 1)) {
      std::size_t b = s.find(replace_end_, a + open.size() + 1);
      if (b == std::string::npos) break;
      if (s.find('\n', a) < b) continue;  // '.' does not cross a newline
      return {a, b + replace_end_.size() - a};
    }
    return {std::string::npos, 0};
  }

  // ReplaceTags' expansion of one pattern, step for step as SpamAssassin
  // 4.0's finish_parsing_end does it, so a rule means what it means to
  // SpamAssassin (checked against SpamAssassin itself on all 99 rules of its
  // own rule set that use tags: byte-identical).
  std::string replace_tags(std::string re) const {
    for (int passes = 0; passes <= 5; ++passes) {
      // <pre NAME>, <post NAME>, <inter NAME>: the first of each is taken out.
      auto take_modifier = [&](const std::string& word) -> std::string {
        auto [at, len] = find_tag(re, 0, word + " ");
        if (at == std::string::npos) return {};
        std::size_t name_at = at + replace_start_.size() + word.size() + 1;
        std::string name = re.substr(name_at, at + len - replace_end_.size() - name_at);
        re.erase(at, len);
        return name;
      };
      std::string pre_name = take_modifier("pre");
      std::string post_name = take_modifier("post");
      std::string inter_name = take_modifier("inter");

      // Perl's split(/(<[^<>]+>)/, $re): text and tags alternate, and two
      // adjacent tags leave an empty text between them (which the inter
      // expression fills); trailing empty texts go.  SpamAssassin 4 hands
      // ReplaceTags the compiled pattern's text, which always starts with its
      // "(?aa)" prefix, so no empty text is ever seen in front of a leading
      // tag; here there is no prefix, and a leading empty text is dropped to
      // the same effect.  (The split is on '<' and '>' even when
      // replace_start/replace_end differ, as in SpamAssassin.)
      std::vector<std::string> parts;
      std::size_t text_from = 0;
      for (std::size_t i = 0; i < re.size(); ++i) {
        if (re[i] != '<') continue;
        std::size_t j = i + 1;
        while (j < re.size() && re[j] != '<' && re[j] != '>') ++j;
        if (j >= re.size() || re[j] != '>' || j == i + 1) continue;
        parts.push_back(re.substr(text_from, i - text_from));
        parts.push_back(re.substr(i, j + 1 - i));
        text_from = j + 1;
        i = j;
      }
      parts.push_back(re.substr(text_from));
      while (!parts.empty() && parts.back().empty()) parts.pop_back();
      if (!parts.empty() && parts.front().empty()) parts.erase(parts.begin());

      if (const std::string* pre = lookup(pre_, pre_name); perl_true(pre)) {
        for (auto& part : parts)
          if (auto [at, len] = find_tag(part, 0); at != std::string::npos) part.insert(at, *pre);
      }
      if (const std::string* post = lookup(post_, post_name); perl_true(post)) {
        for (auto& part : parts)
          for (auto [at, len] = find_tag(part, 0); at != std::string::npos; std::tie(at, len) = find_tag(part, at)) {
            part.insert(at + len, *post);
            at += len + post->size();
          }
      }
      if (const std::string* inter = lookup(inter_, inter_name); perl_true(inter)) {
        for (auto& part : parts)
          if (part.empty()) part = *inter;
      }
      bool again = false;
      for (auto& part : parts) {
        auto [at, len] = find_tag(part, 0);
        if (at == std::string::npos) continue;
        std::string name =
            part.substr(at + replace_start_.size(), len - replace_start_.size() - replace_end_.size());
        const std::string* replacement = lookup(tags_, name);
        if (!perl_true(replacement)) continue;
        std::string tag = replace_start_ + name + replace_end_;
        for (std::size_t p = part.find(tag); p != std::string::npos; p = part.find(tag, p + replacement->size())) {
          part.replace(p, tag.size(), *replacement);
        }
        // Perl's /<[^>]+>/: another pass expands tags inside tags.
        for (std::size_t lt = replacement->find('<'); lt != std::string::npos && !again;
             lt = replacement->find('<', lt + 1)) {
          std::size_t gt = replacement->find('>', lt + 1);
          again = gt != std::string::npos && gt > lt + 1;
        }
      }
      re.clear();
      for (const auto& part : parts) re += part;
      if (!again) break;
    }
    return re;
  }

  std::string source_;
  const SpamAssassinOptions& options_;
  std::vector<Rule> rules_;
  std::vector<bool> dropped_;  // parallel to rules_: redefined as a non-regex kind
  std::unordered_map<std::string, std::size_t> index_;
  std::unordered_map<std::string, unsigned> max_hits_;
  std::vector<RuleError> rejected_;
  std::map<std::string, std::size_t> skipped_;
  std::map<std::string, std::string> tags_, pre_, inter_, post_;
  std::set<std::string> replace_rules_;
  std::string replace_start_ = "<", replace_end_ = ">";
};

}  // namespace

RuleSet parse_spamassassin(std::string_view text, std::string_view source,
                           const SpamAssassinOptions& options) {
  SpamAssassinImporter importer(source, options);
  importer.parse_text(text);
  return std::move(importer).finish();
}

RuleSet parse_spamassassin(const std::vector<SourceText>& texts, const SpamAssassinOptions& options) {
  SpamAssassinImporter importer({}, options);
  for (const auto& t : texts) {
    importer.set_source(t.source);
    importer.parse_text(t.text);
  }
  return std::move(importer).finish();
}

RuleSet load_spamassassin_files(const std::vector<std::string>& paths, const SpamAssassinOptions& options) {
  std::vector<SourceText> texts;
  std::vector<RuleError> unreadable;
  for (const auto& path : paths) {
    SourceText t{path, {}};
    std::string error;
    if (read_file(path, &t.text, &error))
      texts.push_back(std::move(t));
    else
      unreadable.push_back(read_error(path, error));
  }
  RuleSet set = parse_spamassassin(texts, options);
  set.rejected.insert(set.rejected.begin(), unreadable.begin(), unreadable.end());
  return set;
}

}  // namespace regexd::engine
