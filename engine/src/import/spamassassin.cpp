// The SpamAssassin .cf importer: body, rawbody, full, uri and header rules,
// meta rules, tflags, scores and the ReplaceTags plugin's settings, read as
// SpamAssassin 4.0 reads them.  See regexd/engine/rule.h for the contract.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "import/text.h"
#include "regexd/engine/meta.h"
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

// SpamAssassin's config reader drops everything from a '#' that has no
// backslash before it (Conf/Parser.pm), for every directive.
std::string_view strip_comment(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '#' && (i == 0 || s[i - 1] != '\\')) return trim(s.substr(0, i));
  return trim(s);
}

// A number as SpamAssassin's score accepts it: -?\d+(\.\d+)?.
std::optional<double> parse_score_value(std::string_view v) {
  std::size_t i = v.starts_with('-') ? 1 : 0;
  std::size_t digits = i;
  while (i < v.size() && is_digit(v[i])) ++i;
  if (i == digits) return std::nullopt;
  if (i < v.size() && v[i] == '.') {
    std::size_t frac = ++i;
    while (i < v.size() && is_digit(v[i])) ++i;
    if (i == frac) return std::nullopt;
  }
  if (i != v.size()) return std::nullopt;
  double out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size()) return std::nullopt;
  return out;
}

// The first SpamAssassin 4 captured-tag template ("%{NAME}" with no
// backslash before it) in a pattern, or empty.
std::string_view captured_tag(std::string_view pattern) {
  for (std::size_t at = pattern.find("%{"); at != std::string_view::npos; at = pattern.find("%{", at + 1)) {
    if (at > 0 && pattern[at - 1] == '\\') continue;
    std::size_t end = pattern.find('}', at);
    if (end == std::string_view::npos) break;
    if (at + 2 < end && pattern[at + 2] >= 'A' && pattern[at + 2] <= 'Z') return pattern.substr(at, end + 1 - at);
  }
  return {};
}

// Perl-style glob of rules_matching(): '?' one character, '*' any run.
bool glob_match(std::string_view glob, std::string_view name) {
  if (glob.empty()) return name.empty();
  if (glob.front() == '*') {
    for (std::size_t skip = 0; skip <= name.size(); ++skip)
      if (glob_match(glob.substr(1), name.substr(skip))) return true;
    return false;
  }
  if (name.empty()) return false;
  if (glob.front() != '?' && glob.front() != name.front()) return false;
  return glob_match(glob.substr(1), name.substr(1));
}

// ---------------------------------------------------------------------------
// SpamAssassin importer state.

// Rule-defining directives that are not regex rules, and the skipped kind
// each one is counted under.
const char* skipped_directive_kind(std::string_view directive) {
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

// What a name is currently defined as: the later definition wins in
// SpamAssassin, whatever its type.
struct Def {
  enum Type { kRule, kMeta, kOther } type;
  std::size_t index;  // into rules_ or metas_
};

struct TFlags {
  bool multiple = false, nice = false;
  unsigned max_hits = 0;  // with multiple: 0 = no cap of its own
};

class SpamAssassinImporter {
 public:
  SpamAssassinImporter(std::string_view source, const SpamAssassinOptions& options)
      : source_(source), options_(options), plugins_(options.plugins), features_(options.features) {}

  // The next file of the same configuration (SpamAssassin reads all its .cf
  // files as one).
  void set_source(std::string_view source) { source_ = std::string(source); }

  void parse_text(std::string_view text) {
    for_each_line(text, [&](unsigned line_no, std::string_view line) { parse_line(line_no, line); });
  }

  void parse_line(unsigned line_no, std::string_view line) {
    if (line.empty() || line.front() == '#') return;
    std::string_view rest = line;
    const std::string lowered = to_lower(pop_token(&rest));
    // Compared as a view: each line is tested against up to 25 directive
    // names, and a view compares lengths before bytes (as std::string ==
    // const char* does not: it measures the literal first).
    const std::string_view directive = lowered;

    // Conditionals nest; lines under a false one are not read at all, as in
    // SpamAssassin (Conf/Parser.pm handle_conditional).
    if (directive == "ifplugin" || directive == "if") {
      std::string cond = directive == "ifplugin" ? "plugin(" + std::string(strip_comment(rest)) + ")"
                                                  : std::string(strip_comment(rest));
      conditions_.push_back({active(), condition(line_no, cond)});
      return;
    }
    if (directive == "else" || directive == "endif") {
      if (conditions_.empty()) {
        reject(line_no, {}, lowered + " without if/ifplugin");
      } else if (directive == "else") {
        conditions_.back().value = !conditions_.back().value;
      } else {
        conditions_.pop_back();
      }
      return;
    }
    if (!active()) return;
    if (directive == "loadplugin" || directive == "tryplugin") {
      plugins_.emplace(pop_token(&rest));
      return;
    }
    if (directive == "enable_compat") {
      features_.insert("Mail::SpamAssassin::Conf::compat_" + std::string(pop_token(&rest)));
      return;
    }

    if (directive == "body" || directive == "rawbody" || directive == "full" ||
        directive == "uri") {
      parse_body_like(line_no, lowered, rest);
    } else if (directive == "header") {
      parse_header(line_no, rest);
    } else if (directive == "meta") {
      parse_meta(line_no, rest);
    } else if (directive == "score") {
      parse_score(line_no, rest);
    } else if (directive == "tflags") {
      parse_tflags(line_no, rest);
    } else if (directive.starts_with("replace_")) {
      parse_replace(line_no, lowered, rest);
    } else if (const char* kind = skipped_directive_kind(directive)) {
      skip(pop_token(&rest), kind);
    }
    // Everything else (describe, lang, ifplugin, ...) configures rules or
    // SpamAssassin itself and has nothing to import.
  }

  RuleSet finish() && {
    RuleSet set;
    set.rules.reserve(rules_.size());
    for (std::size_t i = 0; i < rules_.size(); ++i) {
      Rule& rule = rules_[i];
      if (!is_current(rule.id, Def::kRule, i)) continue;
      if (disabled(rule.id)) {
        ++skipped_["score 0"];
        continue;
      }
      // tflags may precede or follow its rule, so it is applied only now.
      // A SpamAssassin rule counts once per message unless it runs
      // "multiple" (Check.pm stops at its first hit; got_hit ignores later
      // ones), so that metas adding hits up see SpamAssassin's numbers.
      auto it = tflags_.find(rule.id);
      rule.max_hits = it != tflags_.end() && it->second.multiple ? it->second.max_hits : 1;
      if (replace_rules_.count(rule.id)) rule.pattern = replace_tags(std::move(rule.pattern));
      if (std::string_view tag = captured_tag(rule.pattern); !tag.empty()) {
        rejected_.push_back(RuleError{rule.source, rule.line, rule.id,
                                      "uses the captured tag " + std::string(tag) +
                                          " (SpamAssassin 4 fills it from another rule's match in the same "
                                          "message); regexd does not support captured tags"});
        continue;
      }
      set.rules.push_back(std::move(rule));
    }
    for (std::size_t i = 0; i < metas_.size(); ++i) {
      MetaRule& meta = metas_[i];
      if (!is_current(meta.id, Def::kMeta, i)) continue;
      if (disabled(meta.id)) {
        ++skipped_["score 0"];
        meta.disabled = true;
      }
      meta.expression = expand_rules_matching(meta.id, meta.expression);
      set.metas.push_back(std::move(meta));
    }
    for (auto& [name, kind] : unsupported_)
      if (!disabled(name)) set.unsupported.emplace(name, std::move(kind));
    set.rejected = std::move(rejected_);
    set.skipped = std::move(skipped_);
    return set;
  }

 private:
  struct Conditional {
    bool parent_active;
    bool value;
  };
  bool active() const { return conditions_.empty() || (conditions_.back().parent_active && conditions_.back().value); }

  // Evaluates an "if" expression: plugin(NAME), can(NAME), version,
  // perl_version and local_tests_only become numbers, and what is left is
  // an arithmetic expression in the meta language (regexd/engine/meta.h).
  bool condition(unsigned line_no, const std::string& expr) {
    std::string out;
    for (std::size_t i = 0; i < expr.size();) {
      if (is_alpha(expr[i]) || expr[i] == '_') {
        std::size_t j = i;
        while (j < expr.size() && (is_alnum(expr[j]) || expr[j] == '_')) ++j;
        std::string word = expr.substr(i, j - i);
        std::size_t k = j;
        while (k < expr.size() && is_space(expr[k])) ++k;
        if ((word == "plugin" || word == "can" || word == "has") && k < expr.size() && expr[k] == '(') {
          std::size_t close = expr.find(')', k);
          if (close == std::string::npos) break;
          std::string name(trim(std::string_view(expr).substr(k + 1, close - k - 1)));
          // SpamAssassin renamed Dmarc.pm to DMARC.pm and maps the old name.
          if (name == "Mail::SpamAssassin::Plugin::Dmarc") name = "Mail::SpamAssassin::Plugin::DMARC";
          bool yes = word == "plugin" ? plugins_.count(name) > 0 : features_.count(name) > 0;
          out += yes ? " 1 " : " 0 ";
          i = close + 1;
          continue;
        }
        if (word == "version") {
          out += " " + std::to_string(options_.version) + " ";
        } else if (word == "perl_version") {
          out += " 5.036 ";  // Debian 12's Perl
        } else {
          out += word;  // local_tests_only, or an error the meta parser names
        }
        i = j;
        continue;
      }
      out += expr[i++];
    }
    // `out` is a constant expression now, and SpamAssassin's files repeat a
    // few of them hundreds of times (926 conditionals, 93 of them one
    // `can(...)`): each distinct text is compiled and evaluated once.
    auto [cached, fresh] = conditions_seen_.try_emplace(out);
    if (fresh) {
      std::vector<RuleError> errors;
      MetaProgram program = MetaProgram::compile({MetaRule{"if", out, std::string(source_), line_no}}, &errors);
      cached->second = errors.empty() ? ConditionValue{!program.evaluate({}).empty(), {}}
                                      : ConditionValue{false, errors.front().message};
    }
    if (!cached->second.error.empty()) {
      reject(line_no, {}, "cannot evaluate conditional '" + expr + "': " + cached->second.error);
      return false;
    }
    return cached->second.value;
  }
  struct ConditionValue {
    bool value = false;
    std::string error;  // the meta parser's, when the expression is not one
  };
  std::unordered_map<std::string, ConditionValue> conditions_seen_;  // condition(): by constant expression

  void reject(unsigned line_no, std::string_view id, std::string message) {
    rejected_.push_back(RuleError{std::string(source_), line_no, std::string(id),
                                  std::move(message)});
  }

  void skip(std::string_view name, const std::string& kind) {
    ++skipped_[kind];
    // The later definition wins in SpamAssassin, even when it changes the
    // rule's type: a regex rule redefined as meta or eval is gone.
    defs_[std::string(name)] = Def{Def::kOther, 0};
    unsupported_[std::string(name)] = kind;
  }

  // Records `item` as the definition of its name.  A redefinition of the
  // same type keeps the first position, so rule order stays stable, but
  // takes the later text (and its line), as SpamAssassin does.
  template <typename T>
  void define(std::vector<T>& items, Def::Type type, T item) {
    std::string name = item.id;
    unsupported_.erase(name);
    auto [it, inserted] = defs_.try_emplace(name, Def{type, items.size()});
    if (!inserted && it->second.type == type) {
      items[it->second.index] = std::move(item);
      return;
    }
    it->second = Def{type, items.size()};
    items.push_back(std::move(item));
  }
  void define(Rule rule) { define(rules_, Def::kRule, std::move(rule)); }

  bool is_current(const std::string& name, Def::Type type, std::size_t index) const {
    auto it = defs_.find(name);
    return it != defs_.end() && it->second.type == type && it->second.index == index;
  }

  // The score of `name` in the configured score set, with SpamAssassin's
  // defaults for a test without a score line (Conf/Parser.pm): 1.0, 0.01 for
  // T_ rules in testing, negative for "tflags nice".
  double score_of(const std::string& name) const {
    auto it = scores_.find(name);
    if (it != scores_.end()) return it->second[std::min(options_.score_set, 3u)];
    double score = name.starts_with("T_") ? 0.01 : 1.0;
    auto tf = tflags_.find(name);
    return tf != tflags_.end() && tf->second.nice ? -score : score;
  }

  // A score of 0 switches a test off (Check.pm runs only tests with a
  // score; a meta referencing it then sees 0).
  bool disabled(const std::string& name) const { return score_of(name) == 0; }

  // rules_matching(GLOB) in a meta is the sum of every test whose name
  // matches GLOB, except the meta itself (Conf/Parser.pm expand_ruleglob
  // over every name that has a score, i.e. every defined test plus names
  // that only have a score line); no match gives 0.
  std::string expand_rules_matching(const std::string& self, const std::string& expr) const {
    static constexpr std::string_view kFn = "rules_matching(";
    std::string out;
    std::size_t from = 0;
    for (std::size_t at = expr.find(kFn); at != std::string::npos; at = expr.find(kFn, at + 1)) {
      // (?<!_)\brules_matching: not the tail of a longer name.
      if (at > 0 && (is_alnum(expr[at - 1]) || expr[at - 1] == '_')) continue;
      std::size_t close = expr.find(')', at);
      if (close == std::string::npos) break;
      std::string_view glob = trim(std::string_view(expr).substr(at + kFn.size(), close - at - kFn.size()));
      std::set<std::string> names;
      for (const auto& [name, def] : defs_)
        if (name != self && glob_match(glob, name)) names.insert(name);
      for (const auto& [name, score] : scores_)
        if (name != self && glob_match(glob, name)) names.insert(name);
      std::string sum;
      for (const auto& name : names) sum += (sum.empty() ? "" : "+") + name;
      out += expr.substr(from, at - from) + " (" + (sum.empty() ? "0" : sum) + ") ";
      from = close + 1;
    }
    return out + expr.substr(from);
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
      if (!options_.include_headers) {
        skip(name, "header");
        return;
      }
      std::string_view header = strip_comment(rest.substr(7));
      if (header.empty() || header.find_first_of(" \t") != std::string_view::npos) {
        reject(line_no, name, "expected a header name after 'exists:'");
        return;
      }
      // SpamAssassin's defined($hval): the header is present, whatever its
      // value.  "^" matches every subject, the empty one included, so the
      // rule hits exactly when the message has a buffer of the class; an
      // absent header has no default value for it (regexd/engine/message.h).
      Rule rule;
      rule.id = std::string(name);
      rule.cls = "header:" + std::string(header);
      rule.pattern = "^";
      rule.source = std::string(source_);
      rule.line = line_no;
      rule.kind = "exists";
      define(std::move(rule));
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
    const bool negate = after.starts_with("!~");
    if (!negate && !after.starts_with("=~")) {
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
    // "[if-unset: VALUE]" is the value matched when the header is missing
    // (applied per message, regexd/engine/message.h).  SpamAssassin takes
    // the text up to the first ']' with the blanks around it trimmed.
    std::optional<std::string> if_unset;
    if (tail.starts_with("[if-unset:")) {
      std::size_t close = tail.find(']');
      if (close == std::string_view::npos) {
        reject(line_no, name, "unterminated [if-unset: ...]");
        return;
      }
      if_unset = std::string(trim(tail.substr(10, close - 10)));
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
    rule.negate = negate;
    rule.if_unset = std::move(if_unset);
    define(std::move(rule));
  }

  // "meta NAME EXPRESSION": checked and compiled with the other metas of the
  // set (regexd/engine/meta.h), which names this line in its errors.
  void parse_meta(unsigned line_no, std::string_view rest) {
    std::string_view name;
    if (!take_name(line_no, &rest, &name)) return;
    std::string_view expression = strip_comment(rest);
    if (expression.empty()) {
      reject(line_no, name, "missing meta expression");
      return;
    }
    define(metas_, Def::kMeta,
           MetaRule{std::string(name), std::string(expression), std::string(source_), line_no});
  }

  // "score NAME S" (every score set) or "score NAME S0 S1 S2 S3"; "(S)" adds
  // S to the score set before, as in SpamAssassin's Conf.pm.
  void parse_score(unsigned line_no, std::string_view rest) {
    rest = strip_comment(rest);
    std::string_view name = pop_token(&rest);
    std::vector<std::string_view> words;
    for (std::string_view w = pop_token(&rest); !w.empty(); w = pop_token(&rest)) words.push_back(w);
    if (name.empty() || (words.size() != 1 && words.size() != 4)) {
      reject(line_no, name, "score needs a rule name and 1 or 4 scores");
      return;
    }
    bool relative = false;
    std::array<double, 4> values{};
    for (std::size_t i = 0; i < words.size(); ++i) {
      std::string_view w = words[i];
      if (w.size() > 2 && w.front() == '(' && w.back() == ')') {
        relative = true;
        w = w.substr(1, w.size() - 2);
      }
      std::optional<double> v = parse_score_value(w);
      if (!v) {
        reject(line_no, name, "score '" + std::string(words[i]) + "' is not a number");
        return;
      }
      values[i] = *v;
    }
    if (words.size() == 1) values.fill(values[0]);
    auto [it, inserted] = scores_.try_emplace(std::string(name), std::array<double, 4>{});
    if (relative && inserted) {
      scores_.erase(it);
      reject(line_no, name, "relative score without an earlier score for the rule");
      return;
    }
    for (std::size_t i = 0; i < 4; ++i) it->second[i] = relative ? it->second[i] + values[i] : values[i];
  }

  // "tflags NAME word word ..." replaces NAME's whole flag list, so the
  // last tflags line for a name decides.
  void parse_tflags(unsigned line_no, std::string_view rest) {
    std::string_view name = pop_token(&rest);
    if (name.empty()) return;
    TFlags flags;
    for (std::string_view word = pop_token(&rest); !word.empty(); word = pop_token(&rest)) {
      if (word.starts_with('#')) break;
      if (word == "multiple") {
        flags.multiple = true;
      } else if (word == "nice") {
        flags.nice = true;
      } else if (word.starts_with("maxhits=")) {
        std::string_view number = word.substr(8);
        unsigned value = 0;
        auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
        if (ec != std::errc() || ptr != number.data() + number.size() || value == 0) {
          reject(line_no, name, "invalid tflags maxhits value '" + std::string(number) + "'");
          continue;
        }
        flags.max_hits = value;
      }
    }
    // SpamAssassin only honours maxhits for rules that run "multiple";
    // without it a rule stops at its first hit and maxhits means nothing.
    tflags_[std::string(name)] = flags;
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
        // Perl's s/\Q$tag\E/$replacement/g: every occurrence, left to right,
        // none found inside a replacement.  Built in one pass (the same
        // occurrences: a search resumes after each tag, in text the
        // replacement does not change); replacing in place moved the rest
        // of the part once per occurrence, and the FUZZY_* tags occur
        // hundreds of times in patterns of tens of KB.
        const std::string tag = replace_start_ + name + replace_end_;
        if (std::size_t p = part.find(tag); p != std::string::npos) {
          std::string out;
          out.reserve(part.size() + replacement->size());
          std::size_t from = 0;
          for (; p != std::string::npos; p = part.find(tag, from)) {
            out.append(part, from, p - from);
            out += *replacement;
            from = p + tag.size();
          }
          out.append(part, from);
          part = std::move(out);
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
  std::vector<Rule> rules_;     // every regex rule definition seen; defs_ says which are current
  std::vector<MetaRule> metas_;  // likewise for metas
  std::unordered_map<std::string, Def> defs_;  // name -> its current (last) definition
  std::map<std::string, std::string> unsupported_;  // tests regexd cannot run: name -> kind
  std::unordered_map<std::string, TFlags> tflags_;
  std::unordered_map<std::string, std::array<double, 4>> scores_;  // score sets 0..3
  std::vector<RuleError> rejected_;
  std::map<std::string, std::size_t> skipped_;
  std::map<std::string, std::string> tags_, pre_, inter_, post_;
  std::set<std::string> replace_rules_;
  std::vector<Conditional> conditions_;
  std::set<std::string> plugins_, features_;
  std::string replace_start_ = "<", replace_end_ = ">";
};

}  // namespace

std::set<std::string> SpamAssassinOptions::default_spamassassin_plugins() {
  // Debian 12's spamassassin 4.0.1: the loadplugin lines of /etc/spamassassin/*.pre.
  std::set<std::string> out;
  for (const char* p : {"AskDNS", "AutoLearnThreshold", "Bayes", "BodyEval", "Check", "DKIM", "DMARC", "DNSEval",
                        "FreeMail", "HTMLEval", "HTTPSMismatch", "HashBL", "HeaderEval", "ImageInfo", "MIMEEval",
                        "MIMEHeader", "Pyzor", "Razor2", "RelayEval", "ReplaceTags", "SPF", "SpamCop", "URIDNSBL",
                        "URIDetail", "URIEval", "VBounce", "WLBLEval", "WelcomeListSubject"})
    out.insert(std::string("Mail::SpamAssassin::Plugin::") + p);
  return out;
}

std::set<std::string> SpamAssassinOptions::default_spamassassin_features() {
  std::set<std::string> out;
  // Conf.pm's feature_* subs and version checks in 4.0.1.
  for (const char* f :
       {"feature_originating_ip_headers", "feature_dns_local_ports_permit_avoid", "feature_bayes_auto_learn_on_error",
        "feature_uri_host_listed", "feature_yesno_takes_args", "feature_bug6558_free", "feature_edns",
        "feature_dns_query_restriction", "feature_registryboundaries", "feature_geodb", "feature_dns_block_rule",
        "feature_compile_regexp", "feature_meta_rules_matching", "feature_subjprefix", "feature_bayes_stopwords",
        "feature_get_host", "feature_blocklist_welcomelist", "feature_welcomelist_blocklist",
        "feature_header_address_parser", "feature_local_tests_only", "feature_header_first_last",
        "feature_header_match_many", "feature_capture_rules", "perl_min_version_5010000",
        // Debian's init.pre: "enable_compat welcomelist_blocklist".
        "compat_welcomelist_blocklist"})
    out.insert(std::string("Mail::SpamAssassin::Conf::") + f);
  // has_* methods of the default plugins (can(Mail::SpamAssassin::Plugin::X::has_y)).
  for (const char* m :
       {"AskDNS::has_tag_header", "BodyEval::has_check_body_length", "BodyEval::has_plaintext_body_sig_ratio",
        "DKIM::has_arc", "DNSEval::has_tflags_domains_only", "DNSEval::has_tflags_ips_only",
        "HashBL::has_hashbl_bodyre", "HashBL::has_hashbl_bodyre_num", "HashBL::has_hashbl_emails",
        "HashBL::has_hashbl_uris", "HashBL::has_hashbl_ignore", "HashBL::has_hashbl_email_regex",
        "HashBL::has_hashbl_email_welcomelist", "HashBL::has_hashbl_email_whitelist", "HashBL::has_hashbl_tag",
        "HashBL::has_hashbl_sha256", "HashBL::has_hashbl_attachments", "HashBL::has_hashbl_email_domain",
        "HashBL::has_hashbl_email_domain_alias", "MIMEEval::has_check_for_ascii_text_illegal",
        "MIMEEval::has_check_abundant_unicode_ratio", "MIMEEval::has_check_qp_ratio", "MIMEHeader::has_all_header",
        "MIMEHeader::has_tflags_range", "MIMEHeader::has_tflags_concat", "MIMEHeader::has_tflags_multiple",
        "MIMEHeader::has_capture_rules", "Pyzor::has_fork", "Pyzor::has_perl", "Razor2::has_fork",
        "SPF::has_check_for_spf_errors", "SPF::has_check_spf_skipped_noenvfrom", "URIDNSBL::has_tflags_domains_only",
        "URIDNSBL::has_subtest_for_ranges", "URIDNSBL::has_uridnsbl_for_a", "URIDNSBL::has_uridnsbl_a_ns",
        "URIDNSBL::has_tflags_notrim", "URIDNSBL::has_uridnsbl_skip_mailto", "URIDetail::has_host_key"})
    out.insert(std::string("Mail::SpamAssassin::Plugin::") + m);
  return out;
}

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
