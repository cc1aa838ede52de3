// PCRE2 pattern -> RE2 pattern; see re2_translate.h for the contract.
//
// Two stages.  A parser reads the PCRE2 syntax (10.42, byte mode: no UTF, no
// extended syntax) into a small tree, resolving everything that depends on
// the options in force at each point: a literal or class becomes the exact
// set of bytes PCRE2 accepts there (case folding applied: ASCII letters only,
// from PCRE2's default "C" tables), `.` becomes "every byte but \n" or "every
// byte", `^`/`$` become the assertion they denote.  The tree therefore carries
// no flags, and the emitter never asks RE2 to fold case or to interpret `.`,
// `\s`, `\w`, ...: every byte set is written out as an explicit class, so
// RE2's own readings of those (Latin-1 folding, \s without \x0b, \v as a
// character) never come into play.
//
// The emitter then writes RE2 syntax.  Where RE2 cannot express a construct
// exactly it writes a superset form and records why (the first such
// construct), which makes the translation a superset; re2_exact() refuses
// those, re2_translate() keeps them.  A superset form is only ever a
// replacement of a sub-expression by one that accepts at least the same
// (start, end) spans, inside operators that are monotone (concatenation,
// alternation, repetition, grouping): negative look-arounds, the one
// anti-monotone context PCRE2 has (besides conditionals, which are refused),
// are dropped with their whole body, never kept with a widened body.  So a
// PCRE2 match path always maps to an RE2 match path.
//
// Anything the parser does not know is refused with the construct and its
// offset: the rule then simply stays with Hyperscan or PCRE2.
#include "re2_translate.h"

#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "pcre2_util.h"

namespace regexd::engine::detail {
namespace {

using ByteSet = std::bitset<256>;

// A parse or translation refusal.  Thrown inside this file only and caught by
// the two public functions, which turn it into nullopt + *why: the recursive
// parser would otherwise need an error check after every call.
struct Refusal {
  std::string why;
};

[[noreturn]] void refuse(std::string what, std::size_t offset) {
  throw Refusal{what + " at offset " + std::to_string(offset)};
}

bool is_digit(int c) { return c >= '0' && c <= '9'; }
bool is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }
bool is_upper(int c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(int c) { return c >= 'a' && c <= 'z'; }
bool is_alpha(int c) { return is_upper(c) || is_lower(c); }
bool is_alnum(int c) { return is_alpha(c) || is_digit(c); }

// One byte in RE2 syntax: letters, digits and '_' as themselves, other
// printable ASCII backslash-escaped (RE2 takes "\" + any punctuation as
// that character), everything else as \xHH (RE2 in Latin-1 mode reads
// \xHH as the byte HH).
std::string byte_text(int c) {
  if (is_alnum(c) || c == '_') return std::string(1, static_cast<char>(c));
  if (c > 0x20 && c < 0x7f) return std::string{'\\', static_cast<char>(c)};
  static const char* hex = "0123456789abcdef";
  return std::string{'\\', 'x', hex[c >> 4], hex[c & 15]};
}

ByteSet range(int lo, int hi) {
  ByteSet s;
  for (int c = lo; c <= hi; ++c) s.set(static_cast<std::size_t>(c));
  return s;
}
ByteSet bytes(std::initializer_list<int> cs) {
  ByteSet s;
  for (int c : cs) s.set(static_cast<std::size_t>(c));
  return s;
}

// PCRE2 without UTF/UCP classifies bytes by its default character tables,
// built for the "C" locale: only ASCII bytes are letters, digits or spaces.
// (Debian builds libpcre2 with those default tables; the test compares every
// class over all 256 bytes with PCRE2 itself.)
const ByteSet kDigit = range('0', '9');
const ByteSet kUpper = range('A', 'Z');
const ByteSet kLower = range('a', 'z');
const ByteSet kAlpha = kUpper | kLower;
const ByteSet kAlnum = kAlpha | kDigit;
const ByteSet kWord = kAlnum | bytes({'_'});
// \s in PCRE2 10.x includes VT (\x0b) since 10.0 (Perl 5.18); RE2's \s does not.
const ByteSet kSpace = bytes({'\t', '\n', 0x0b, '\f', '\r', ' '});
// \h and \v are fixed lists in byte mode (pcre2pattern: "Generic character types").
const ByteSet kHSpace = bytes({'\t', ' ', 0xa0});
const ByteSet kVSpace = bytes({'\n', 0x0b, '\f', '\r', 0x85});
const ByteSet kAll = ByteSet().set();
const ByteSet kNotNewline = ~bytes({'\n'});

// Adds the other case of every ASCII letter: what PCRE2 without UCP does
// under caseless matching (its default tables fold nothing else; \xe9/\xc9,
// \xb5, \xff stay themselves).
ByteSet fold(ByteSet s) {
  for (int c = 'a'; c <= 'z'; ++c)
    if (s.test(static_cast<std::size_t>(c)) || s.test(static_cast<std::size_t>(c - 32))) {
      s.set(static_cast<std::size_t>(c));
      s.set(static_cast<std::size_t>(c - 32));
    }
  return s;
}

// POSIX class names, as PCRE2's posix_names/posix_class_maps (C tables).
struct PosixClass {
  std::string_view name;
  ByteSet set;
};
const std::array<PosixClass, 14>& posix_classes() {
  static const std::array<PosixClass, 14> classes = {{
      {"alpha", kAlpha},
      {"lower", kLower},
      {"upper", kUpper},
      {"alnum", kAlnum},
      {"ascii", range(0, 0x7f)},
      {"blank", bytes({' ', '\t'})},
      {"cntrl", range(0, 0x1f) | bytes({0x7f})},
      {"digit", kDigit},
      {"graph", range(0x21, 0x7e)},
      {"print", range(0x20, 0x7e)},
      {"punct", range(0x21, 0x2f) | range(0x3a, 0x40) | range(0x5b, 0x60) | range(0x7b, 0x7e)},
      {"space", kSpace},
      {"word", kWord},
      {"xdigit", kDigit | range('A', 'F') | range('a', 'f')},
  }};
  return classes;
}

struct Node {
  enum Kind {
    kSet,      // one byte out of `set`
    kSeq,      // kids in order
    kAlt,      // kids are alternatives (each a kSeq); a group of any kind
    kRepeat,   // kids[0] repeated min..max (max -1: unbounded)
    kAssert,   // zero-width assertion `assertion`
    kLook,     // look-ahead/behind around kids[0]
    kBackref,  // back-reference
    kAtomic,   // atomic group (?>kids[0]), also \R
  } kind;
  std::size_t offset = 0;  // where the construct starts in the PCRE2 pattern
  ByteSet set;
  std::vector<Node> kids;
  int min = 0, max = -1;
  bool possessive = false;
  enum Assertion { kTextStart, kTextEnd, kEndOrFinalNewline, kLineStart, kLineEnd, kWordBoundary, kNotWordBoundary };
  Assertion assertion = kTextStart;
  std::string what;  // the construct as the user wrote it, for messages (kAssert, kLook, kAtomic, kBackref)
};

Node make(Node::Kind k, std::size_t offset) {
  Node n{k};
  n.offset = offset;
  return n;
}

// ---------------------------------------------------------------------------
// Parser

struct Options {
  bool caseless = false, multiline = false, dotall = false;
};

class Parser {
 public:
  Parser(std::string_view p, Options o) : p_(p), opt_(o) {}

  Node parse() {
    Node n = parse_alternation();
    if (i_ < p_.size()) refuse("unbalanced ')'", i_);  // PCRE2 refuses it too
    return n;
  }

  // Set when PCRE2's own reading may differ from the pattern's plain
  // meaning: PCRE2 auto-possessifies a repeat when it believes the repeated
  // item and what follows cannot share a first byte, and its tables for \R,
  // \v, \V, \h, \H assume Unicode relations that byte mode breaks: \x85 is
  // in \v and \R but also in \S; \r, \x0b, \f, \x85 are in \R but not
  // newlines for `.` under NEWLINE_LF.  So "\v*\S\xc9" does not match
  // "\x85\xc9" and "\R?\N" does not match "\r" in PCRE2 10.42 (found by the
  // random-pattern test).  With such an escape and a variable repeat in one
  // pattern the translation is only a superset: a possessive repeat matches
  // a subset of what the plain one does.
  // Where the first \K is (npos: none).  It reads as nothing, which no
  // yes/no answer minds, but a hit count does (fixed_alternatives()).
  std::size_t match_start_reset_at() const { return match_start_reset_at_; }

  std::string auto_possess_doubt() const {
    if (unicode_type_at_ == std::string::npos || !variable_repeat_) return {};
    return "\\R, \\v or \\h with a repeat (PCRE2 auto-possessification assumes Unicode) at offset " +
           std::to_string(unicode_type_at_);
  }

 private:
  int peek(std::size_t k = 0) const { return i_ + k < p_.size() ? static_cast<unsigned char>(p_[i_ + k]) : -1; }
  bool at_end() const { return i_ >= p_.size(); }

  // alternation := sequence ('|' sequence)*   up to ')' or the end.
  // Inline options set in one alternative stay in force in the following
  // ones, up to the end of the group (pcre2pattern "Internal option
  // setting"): opt_ is simply not reset at '|'.
  Node parse_alternation() {
    Node alt = make(Node::kAlt, i_);
    alt.kids.push_back(parse_sequence());
    while (peek() == '|') {
      ++i_;
      alt.kids.push_back(parse_sequence());
    }
    return alt;
  }

  Node parse_sequence() {
    Node seq = make(Node::kSeq, i_);
    // Whether the last node in seq may take a quantifier.  Comments and an
    // empty \Q\E between an item and its quantifier are transparent in PCRE2
    // ("a(?#c)*" repeats the a); an option setting is not (PCRE2 refuses it).
    bool repeatable = false;
    while (!at_end() && peek() != '|' && peek() != ')') {
      const std::size_t start = i_;
      const int c = peek();
      if (c == '*' || c == '+' || c == '?' || (c == '{' && is_quantifier(i_))) {
        if (!repeatable || seq.kids.empty()) refuse("quantifier without a repeatable item", start);
        apply_quantifier(seq.kids.back());
        repeatable = false;
        continue;
      }
      switch (c) {
        case '\\':
          repeatable = after_item(parse_escape(seq), repeatable);
          break;
        case '[':
          seq.kids.push_back(set_node(parse_class(), start));
          repeatable = true;
          break;
        case '(':
          repeatable = after_item(parse_group(seq), repeatable);
          break;
        case '.':
          ++i_;
          seq.kids.push_back(set_node(opt_.dotall ? kAll : kNotNewline, start));
          repeatable = true;
          break;
        case '^':
          ++i_;
          seq.kids.push_back(assertion_node(opt_.multiline ? Node::kLineStart : Node::kTextStart,
                                            opt_.multiline ? "multiline ^" : "^", start));
          repeatable = false;
          break;
        case '$':
          ++i_;
          seq.kids.push_back(assertion_node(opt_.multiline ? Node::kLineEnd : Node::kEndOrFinalNewline,
                                            opt_.multiline ? "multiline $" : "$", start));
          repeatable = false;
          break;
        default:
          // Everything else is a literal byte: letters, digits, ']' and '}'
          // outside a class, '{' that does not start a quantifier, and raw
          // bytes >= 0x80 (plain characters in byte mode).
          ++i_;
          seq.kids.push_back(literal(c, start));
          repeatable = true;
          break;
      }
    }
    return seq;
  }

  // What an escape or group appended, for the quantifier that may follow.
  enum Item {
    kRepeatable,   // an item a quantifier applies to
    kTransparent,  // nothing (a comment, \E, an empty \Q\E): PCRE2 applies a
                   // following quantifier to the item before it
    kBarrier,      // an assertion, \K, an option setting: PCRE2 refuses a
                   // quantifier after it
  };
  static bool after_item(Item what, bool repeatable_before) {
    return what == kRepeatable || (what == kTransparent && repeatable_before);
  }

  static Node assertion_node(Node::Assertion a, const char* what, std::size_t offset) {
    Node n = make(Node::kAssert, offset);
    n.assertion = a;
    n.what = what;
    return n;
  }

  Node set_node(const ByteSet& s, std::size_t offset) {
    Node n = make(Node::kSet, offset);
    n.set = s;
    return n;
  }
  Node literal(int c, std::size_t offset) {
    ByteSet s;
    s.set(static_cast<std::size_t>(c));
    return set_node(opt_.caseless ? fold(s) : s, offset);
  }

  // PCRE2 10.42's read_repeat_counts: "{" digits "}" | "{" digits ",}" |
  // "{" digits "," digits "}", nothing else (no spaces; "{,n}" is literal
  // text until 10.43).  Anything else makes '{' a literal.
  bool is_quantifier(std::size_t at) const {
    std::size_t k = at + 1;
    std::size_t d = k;
    while (k < p_.size() && is_digit(p_[k])) ++k;
    if (k == d || k >= p_.size()) return false;
    if (p_[k] == '}') return true;
    if (p_[k] != ',') return false;
    ++k;
    while (k < p_.size() && is_digit(p_[k])) ++k;
    return k < p_.size() && p_[k] == '}';
  }

  int read_number(std::size_t* k, int limit) const {
    long v = 0;
    while (*k < p_.size() && is_digit(p_[*k])) {
      v = v * 10 + (p_[*k] - '0');
      if (v > limit) refuse("number too big", *k);
      ++*k;
    }
    return static_cast<int>(v);
  }

  void apply_quantifier(Node& target) {
    const std::size_t start = i_;
    int min = 0, max = -1;
    const int c = peek();
    if (c == '*') {
      ++i_;
    } else if (c == '+') {
      min = 1;
      ++i_;
    } else if (c == '?') {
      max = 1;
      ++i_;
    } else {  // '{', already checked by is_quantifier()
      std::size_t k = i_ + 1;
      min = read_number(&k, 65535);
      if (p_[k] == '}') {
        max = min;
      } else {
        ++k;  // ','
        if (p_[k] != '}') max = read_number(&k, 65535);
      }
      if (max != -1 && max < min) refuse("numbers out of order in {} quantifier", start);
      i_ = k + 1;
    }
    bool possessive = false;
    // A lazy '?' changes which match is found first, never whether there is
    // one: PCRE2 backtracks into every alternative before failing (absent
    // atomic groups and verbs, handled separately).  So it is dropped.
    if (peek() == '?') ++i_;
    else if (peek() == '+') possessive = true, ++i_;
    if (!possessive && min != max) variable_repeat_ = true;
    if (target.kind == Node::kAssert) refuse("quantified assertion", start);
    Node r = make(Node::kRepeat, target.offset);
    r.min = min;
    r.max = max;
    r.possessive = possessive;
    r.what = std::string(p_.substr(start, i_ - start));
    r.kids.push_back(std::move(target));
    target = std::move(r);
  }

  // One character value from an escape that denotes a single character
  // (outside or inside a class), or -1 when p_[i_] does not start one.
  // i_ is on the character after the backslash.
  int char_escape(bool in_class) {
    const std::size_t start = i_ - 1;
    const int c = peek();
    switch (c) {
      case 'a': ++i_; return 0x07;
      case 'e': ++i_; return 0x1b;
      case 'f': ++i_; return '\f';
      case 'n': ++i_; return '\n';
      case 'r': ++i_; return '\r';
      case 't': ++i_; return '\t';
      case 'c': {
        // \cX: X upper-cased, bit 6 flipped; PCRE2 requires printable ASCII.
        int x = peek(1);
        if (x < 0x20 || x > 0x7e) refuse("\\c not followed by a printable ASCII character", start);
        i_ += 2;
        if (is_lower(x)) x -= 32;
        return x ^ 0x40;
      }
      case 'x': {
        ++i_;
        if (peek() == '{') {
          std::size_t k = i_ + 1;
          long v = 0;
          while (k < p_.size() && is_hex(p_[k])) {
            v = v * 16 + hex_value(p_[k]);
            if (v > 0xff) refuse("\\x{} value above \\xff in byte mode", start);
            ++k;
          }
          if (k == i_ + 1 || k >= p_.size() || p_[k] != '}') refuse("malformed \\x{...}", start);
          i_ = k + 1;
          return static_cast<int>(v);
        }
        // Up to two hex digits; none at all means \x00.
        int v = 0;
        for (int n = 0; n < 2 && is_hex(peek()); ++n) v = v * 16 + hex_value(peek()), ++i_;
        return v;
      }
      case 'o': {
        if (peek(1) != '{') refuse("malformed \\o{...}", start);
        std::size_t k = i_ + 2;
        long v = 0;
        while (k < p_.size() && p_[k] >= '0' && p_[k] <= '7') {
          v = v * 8 + (p_[k] - '0');
          if (v > 0xff) refuse("\\o{} value above \\377 in byte mode", start);
          ++k;
        }
        if (k == i_ + 2 || k >= p_.size() || p_[k] != '}') refuse("malformed \\o{...}", start);
        i_ = k + 1;
        return static_cast<int>(v);
      }
      case '0': {
        // \0 and up to two more octal digits.
        ++i_;
        int v = 0;
        for (int n = 0; n < 2 && peek() >= '0' && peek() <= '7'; ++n) v = v * 8 + (peek() - '0'), ++i_;
        return v;
      }
      default:
        break;
    }
    if (in_class && c >= '1' && c <= '7') {
      // Inside a class \1-\7 start an octal number of up to three digits.
      int v = 0;
      for (int n = 0; n < 3 && peek() >= '0' && peek() <= '7'; ++n) v = v * 8 + (peek() - '0'), ++i_;
      if (v > 0xff) refuse("octal value above \\377 in byte mode", start);
      return v;
    }
    if (in_class && (c == '8' || c == '9')) {
      ++i_;  // "[\8]" is the digit itself (checked against PCRE2 10.42)
      return c;
    }
    if (c >= 0 && !is_alnum(c)) {
      // An escaped non-alphanumeric is that byte (punctuation, space, bytes
      // >= 0x80).
      ++i_;
      return c;
    }
    return -1;
  }

  // A class escape (\d \D \s \S \w \W \h \H \v \V, and \N outside classes)
  // as its byte set, or false.  i_ on the letter.
  bool class_escape(ByteSet* out) {
    switch (peek()) {
      case 'd': *out = kDigit; break;
      case 'D': *out = ~kDigit; break;
      case 's': *out = kSpace; break;
      case 'S': *out = ~kSpace; break;
      case 'w': *out = kWord; break;
      case 'W': *out = ~kWord; break;
      case 'h': *out = kHSpace; break;
      case 'H': *out = ~kHSpace; break;
      case 'v': *out = kVSpace; break;
      case 'V': *out = ~kVSpace; break;
      default: return false;
    }
    ++i_;
    return true;
  }

  // Backslash outside a class.  Appends what it denotes to seq.
  Item parse_escape(Node& seq) {
    const std::size_t start = i_;
    ++i_;
    if (at_end()) refuse("trailing backslash", start);
    const int c = peek();
    ByteSet cls;
    if (class_escape(&cls)) {
      if (c == 'v' || c == 'V' || c == 'h' || c == 'H') unicode_type_at_ = std::min(unicode_type_at_, start);
      seq.kids.push_back(set_node(cls, start));
      return kRepeatable;
    }
    auto assertion = [&](Node::Assertion a, const char* what) {
      ++i_;
      seq.kids.push_back(assertion_node(a, what, start));
      return kBarrier;
    };
    switch (c) {
      case 'A': return assertion(Node::kTextStart, "\\A");
      case 'z': return assertion(Node::kTextEnd, "\\z");
      case 'Z': return assertion(Node::kEndOrFinalNewline, "\\Z");
      case 'b': return assertion(Node::kWordBoundary, "\\b");
      case 'B': return assertion(Node::kNotWordBoundary, "\\B");
      case 'G': refuse("\\G (start-of-match anchor)", start);
      case 'K':
        // \K only moves the reported start of the match; whether there is a
        // match does not change.  Exact as nothing.
        match_start_reset_at_ = std::min(match_start_reset_at_, start);
        ++i_;
        return kBarrier;
      case 'E':  // \E without \Q is ignored
        ++i_;
        return kTransparent;
      case 'Q': {
        ++i_;
        std::size_t end = p_.find("\\E", i_);
        if (end == std::string_view::npos) end = p_.size();  // \Q runs to the end of the pattern
        bool any = end > i_;
        for (; i_ < end; ++i_) seq.kids.push_back(literal(static_cast<unsigned char>(p_[i_]), i_));
        i_ = std::min(p_.size(), end + 2);
        return any ? kRepeatable : kTransparent;
      }
      case 'N':
        if (peek(1) == '{' && !is_quantifier(i_ + 1)) refuse("\\N{...}", start);
        // \N: any byte but newline, whatever the dotall option says.
        ++i_;
        seq.kids.push_back(set_node(kNotNewline, start));
        return kRepeatable;
      case 'R': {
        // \R is the atomic group (?>\r\n|\n|\x0b|\f|\r|\x85) in byte mode.
        ++i_;
        unicode_type_at_ = std::min(unicode_type_at_, start);
        Node crlf = make(Node::kSeq, start);
        crlf.kids.push_back(set_node(bytes({'\r'}), start));
        crlf.kids.push_back(set_node(bytes({'\n'}), start));
        Node single = make(Node::kSeq, start);
        single.kids.push_back(set_node(kVSpace, start));
        Node alt = make(Node::kAlt, start);
        alt.kids.push_back(std::move(crlf));
        alt.kids.push_back(std::move(single));
        Node atomic = make(Node::kAtomic, start);
        atomic.what = "\\R";
        atomic.kids.push_back(std::move(alt));
        seq.kids.push_back(std::move(atomic));
        return kRepeatable;
      }
      case 'g': case 'k': return parse_backref(seq, start);
      case 'p': case 'P': refuse("Unicode property \\p/\\P", start);
      case 'X': refuse("\\X", start);
      case 'C': refuse("\\C", start);
      default: break;
    }
    if (c >= '1' && c <= '9') {
      // \1-\9 are back-references.  Two or more digits may be a
      // back-reference or an octal escape depending on the groups in the
      // pattern; not worth the doubt.
      if (is_digit(peek(1))) refuse("\\ followed by a multi-digit number (octal or back-reference)", start);
      ++i_;
      Node b = make(Node::kBackref, start);
      b.what = std::string(p_.substr(start, 2));
      seq.kids.push_back(std::move(b));
      return kRepeatable;
    }
    int v = char_escape(false);
    if (v < 0) refuse("unknown escape \\" + std::string(1, static_cast<char>(c)), start);
    seq.kids.push_back(literal(v, start));
    return kRepeatable;
  }

  Item parse_backref(Node& seq, std::size_t start) {
    // \g{n} \g{-n} \gn \g-n \g{name} \k<name> \k'name' \k{name}; \g<...> and
    // \g'...' are subroutine calls.
    const int kind = peek();
    ++i_;
    const int open = peek();
    if (kind == 'g' && (open == '<' || open == '\'')) refuse("subroutine call \\g<...>", start);
    if (open == '{' || open == '<' || open == '\'') {
      const char close = open == '{' ? '}' : open == '<' ? '>' : '\'';
      std::size_t end = p_.find(close, i_ + 1);
      if (end == std::string_view::npos) refuse("malformed back-reference", start);
      i_ = end + 1;
    } else if (kind == 'g') {
      if (peek() == '-' || peek() == '+') ++i_;
      std::size_t k = i_;
      read_number(&k, 65535);
      if (k == i_) refuse("malformed \\g back-reference", start);
      i_ = k;
    } else {
      refuse("malformed \\k back-reference", start);
    }
    Node b = make(Node::kBackref, start);
    b.what = std::string(p_.substr(start, i_ - start));
    seq.kids.push_back(std::move(b));
    return kRepeatable;
  }

  // "[...]" as the set of bytes it matches.
  ByteSet parse_class() {
    const std::size_t start = i_;
    ++i_;
    bool negated = false;
    if (peek() == '^') negated = true, ++i_;
    ByteSet set;
    bool first = true;
    for (;;) {
      if (at_end()) refuse("missing ] of the class", start);
      const std::size_t here = i_;
      int c = peek();
      if (c == ']' && !first) {
        ++i_;
        break;
      }
      // \E and an empty \Q\E are nothing: a ']' after them at the start is
      // still a literal (PCRE2 10.42: "[\E]a]" is the class of ']' and 'a').
      if (c == '\\' && peek(1) == 'E') {
        i_ += 2;
        continue;
      }
      if (c == '\\' && peek(1) == 'Q' && peek(2) == '\\' && peek(3) == 'E') {
        i_ += 4;
        continue;
      }
      first = false;
      if (c == '[' && (peek(1) == ':' || peek(1) == '.' || peek(1) == '=') && posix_syntax(i_)) {
        if (peek(1) != ':') refuse("POSIX collating element", here);
        set |= parse_posix();
        if (peek() == '-' && peek(1) != ']') refuse("range from a POSIX class", i_);
        continue;
      }
      int lo = -1;
      if (c == '\\') {
        ++i_;
        if (at_end()) refuse("trailing backslash", here);
        const int e = peek();
        ByteSet cls;
        if (e == 'Q') {
          ++i_;
          std::size_t end = p_.find("\\E", i_);
          if (end == std::string_view::npos) refuse("\\Q without \\E in a class", here);
          for (; i_ < end; ++i_) set.set(static_cast<unsigned char>(p_[i_]));
          i_ = end + 2;
          if (peek() == '-' && peek(1) != ']') refuse("range after \\Q...\\E in a class", i_);
          continue;
        }
        if (class_escape(&cls)) {
          set |= cls;
          if (peek() == '-' && peek(1) != ']') refuse("range from a class escape", i_);
          continue;
        }
        if (e == 'b') {  // backspace inside a class
          ++i_;
          lo = 0x08;
        } else {
          lo = char_escape(true);
          if (lo < 0) refuse("escape \\" + std::string(1, static_cast<char>(e)) + " in a class", here);
        }
      } else {
        ++i_;
        lo = c;
      }
      int hi = lo;
      if (peek() == '-' && peek(1) != ']' && peek(1) >= 0) {
        const std::size_t dash = i_;
        ++i_;
        int d = peek();
        if (d == '[' && peek(1) == ':' && posix_syntax(i_)) refuse("range to a POSIX class", dash);
        if (d == '\\') {
          ++i_;
          if (peek() == 'b') ++i_, hi = 0x08;
          else if (peek() == 'Q' || peek() == 'E') refuse("range to \\Q/\\E", dash);
          else hi = char_escape(true);
          if (hi < 0) refuse("range to a class escape", dash);
        } else {
          ++i_;
          hi = d;
        }
        if (hi < lo) refuse("range out of order in class", dash);
      }
      set |= range(lo, hi);
    }
    // Caseless: every letter of the class also matches its other case.
    // PCRE2 folds the literal characters and ranges; class escapes and POSIX
    // classes are case-symmetric already (upper/lower were widened to alpha
    // in parse_posix), so folding the whole set is the same thing.  The
    // negation comes after the folding: caseless [^a] excludes a and A.
    if (opt_.caseless) set = fold(set);
    return negated ? ~set : set;
  }

  // PCRE2's check_posix_syntax(): "[:" ... ":]" with no ']' or "[:" inside.
  bool posix_syntax(std::size_t at) const {
    const char term = p_[at + 1];
    for (std::size_t k = at + 2; k < p_.size(); ++k) {
      if (p_[k] == '\\' && k + 1 < p_.size() && (p_[k + 1] == ']' || p_[k + 1] == '\\')) ++k;
      else if ((p_[k] == '[' && k + 1 < p_.size() && p_[k + 1] == term) || p_[k] == ']') return false;
      else if (p_[k] == term && k + 1 < p_.size() && p_[k + 1] == ']') return true;
    }
    return false;
  }

  ByteSet parse_posix() {
    const std::size_t start = i_;
    i_ += 2;
    bool negated = false;
    if (peek() == '^') negated = true, ++i_;
    std::size_t end = p_.find(":]", i_);
    std::string_view name = p_.substr(i_, end - i_);
    i_ = end + 2;
    // Caseless [:upper:] and [:lower:] are [:alpha:] in PCRE2 (also when
    // negated: caseless [[:^upper:]] does not match 'A').
    if (opt_.caseless && (name == "upper" || name == "lower")) name = "alpha";
    for (const auto& pc : posix_classes())
      if (pc.name == name) return negated ? ~pc.set : pc.set;
    refuse("unknown POSIX class [:" + std::string(name) + ":]", start);
  }

  // "(" ... : appends the group (or nothing, for comments and option
  // settings) to seq.
  Item parse_group(Node& seq) {
    const std::size_t start = i_;
    ++i_;
    enum { kPlain, kAtomic, kLookAhead, kLookBehind, kNegAhead, kNegBehind } kind = kPlain;
    Options saved = opt_;
    if (peek() == '*') refuse("verb or alpha assertion (*...)", start);
    if (peek() == '?') {
      ++i_;
      const int c = peek();
      switch (c) {
        case '#': {
          // Comment: up to the next ')', no escapes inside.
          std::size_t end = p_.find(')', i_);
          if (end == std::string_view::npos) refuse("unterminated comment", start);
          i_ = end + 1;
          return kTransparent;
        }
        case ':': ++i_; break;
        case '|': ++i_; break;  // branch reset: only capture numbering differs
        case '>': ++i_; kind = kAtomic; break;
        case '=': ++i_; kind = kLookAhead; break;
        case '!': ++i_; kind = kNegAhead; break;
        case '<':
          if (peek(1) == '=') i_ += 2, kind = kLookBehind;
          else if (peek(1) == '!') i_ += 2, kind = kNegBehind;
          else skip_name(start, '>');
          break;
        case '\'': skip_name(start, '\''); break;
        case 'P':
          if (peek(1) == '<') {
            ++i_;
            skip_name(start, '>');
          } else if (peek(1) == '=') {
            std::size_t end = p_.find(')', i_);
            if (end == std::string_view::npos) refuse("malformed (?P=name)", start);
            i_ = end + 1;
            Node b = make(Node::kBackref, start);
            b.what = std::string(p_.substr(start, i_ - start));
            seq.kids.push_back(std::move(b));
            return kRepeatable;
          } else {
            refuse("subroutine call (?P>...)", start);
          }
          break;
        case '(': refuse("conditional group (?(...)", start);
        case 'R': case '&': case '+': refuse("recursion or subroutine call", start);
        case 'C': refuse("callout (?C...)", start);
        case '*': refuse("non-atomic look-ahead (?*...)", start);
        default:
          if (is_digit(c) || (c == '-' && is_digit(peek(1)))) refuse("recursion or subroutine call", start);
          if (parse_options(start)) return kBarrier;  // "(?i)": to the end of the enclosing group
          break;  // "(?i:...)": a group with its own options
      }
    }
    Node body = parse_alternation();
    if (peek() != ')') refuse("missing )", start);
    ++i_;
    opt_ = saved;  // options set inside a group end with it
    switch (kind) {
      case kPlain:
        seq.kids.push_back(std::move(body));
        return kRepeatable;
      case kAtomic: {
        Node a = make(Node::kAtomic, start);
        a.what = "atomic group (?>...)";
        a.kids.push_back(std::move(body));
        seq.kids.push_back(std::move(a));
        return kRepeatable;
      }
      default: {
        Node l = make(Node::kLook, start);
        l.what = kind == kLookAhead   ? "look-ahead (?=...)"
                 : kind == kNegAhead  ? "negative look-ahead (?!...)"
                 : kind == kLookBehind ? "look-behind (?<=...)"
                                       : "negative look-behind (?<!...)";
        l.kids.push_back(std::move(body));
        seq.kids.push_back(std::move(l));
        // PCRE2 accepts a quantifier on a look-around ("(?=a)*"); the
        // emitter drops the look-around with its quantifier.
        return kRepeatable;
      }
    }
  }

  void skip_name(std::size_t start, char close) {
    std::size_t end = p_.find(close, i_ + 1);
    if (end == std::string_view::npos) refuse("malformed group name", start);
    i_ = end + 1;
  }

  // "(?" option letters ")" or ":".  Returns true for a setting that applies
  // to the rest of the enclosing group (then opt_ is changed for good),
  // false for "(?...:" (opt_ changed; parse_group restores it at ')').
  bool parse_options(std::size_t start) {
    bool on = true;
    if (peek() == '^') {  // (?^ unsets imnsx first
      opt_ = Options{};
      ++i_;
    }
    for (;;) {
      const int c = peek();
      switch (c) {
        case 'i': opt_.caseless = on; break;
        case 'm': opt_.multiline = on; break;
        case 's': opt_.dotall = on; break;
        // n (no auto capture), J (duplicate names), U (ungreedy) change
        // captures or which match is found first, never whether one is.
        case 'n': case 'J': case 'U': break;
        case 'x': refuse("extended syntax (?x)", start);
        case '-':
          if (!on) refuse("malformed option setting", start);
          on = false;
          break;
        case ')': ++i_; return true;
        case ':': ++i_; return false;
        default: refuse("unknown group or option (?" + std::string(1, static_cast<char>(c)), start);
      }
      ++i_;
    }
  }

  std::string_view p_;
  std::size_t i_ = 0;
  Options opt_;
  std::size_t unicode_type_at_ = std::string::npos;  // first \R \v \V \h \H outside a class
  bool variable_repeat_ = false;                     // a quantifier PCRE2 may auto-possessify
  std::size_t match_start_reset_at_ = std::string::npos;  // first \K
};

// ---------------------------------------------------------------------------
// Analysis helpers

bool trivial(const Node& n) {  // matches only the empty string, asserts nothing
  switch (n.kind) {
    case Node::kSeq: case Node::kAlt:
      for (const auto& k : n.kids)
        if (!trivial(k)) return false;
      return true;
    case Node::kRepeat: return trivial(n.kids[0]);
    default: return false;
  }
}

long min_length(const Node& n) {
  constexpr long kCap = 1L << 30;
  switch (n.kind) {
    case Node::kSet: return 1;
    case Node::kSeq: {
      long s = 0;
      for (const auto& k : n.kids) s = std::min(kCap, s + min_length(k));
      return s;
    }
    case Node::kAlt: {
      long m = kCap;
      for (const auto& k : n.kids) m = std::min(m, min_length(k));
      return m;
    }
    case Node::kRepeat: return std::min(kCap, n.min * min_length(n.kids[0]));
    case Node::kAtomic: return min_length(n.kids[0]);
    default: return 0;
  }
}

// The bytes a match of n can start with, and whether n can match without
// consuming any (then what follows n supplies the first byte).
struct First {
  ByteSet set;
  bool nullable = true;
};
First first(const Node& n) {
  switch (n.kind) {
    case Node::kSet: return {n.set, false};
    case Node::kSeq: {
      First f;
      for (const auto& k : n.kids) {
        First g = first(k);
        f.set |= g.set;
        if (!g.nullable) return {f.set, false};
      }
      return f;
    }
    case Node::kAlt: {
      First f{{}, false};
      for (const auto& k : n.kids) {
        First g = first(k);
        f.set |= g.set;
        f.nullable = f.nullable || g.nullable;
      }
      return f;
    }
    case Node::kRepeat: {
      First f = first(n.kids[0]);
      if (n.min == 0) f.nullable = true;
      return f;
    }
    case Node::kAtomic: return first(n.kids[0]);
    case Node::kBackref: return {kAll, true};
    default: return {};  // assertions and look-arounds consume nothing
  }
}

// Whether n matches exactly one byte out of a set (a class, or an
// alternation of them), and which.
bool single_set(const Node& n, ByteSet* out) {
  switch (n.kind) {
    case Node::kSet: *out = n.set; return true;
    case Node::kSeq: return n.kids.size() == 1 && single_set(n.kids[0], out);
    case Node::kAlt: {
      ByteSet all;
      for (const auto& k : n.kids) {
        ByteSet one;
        if (!single_set(k, &one)) return false;
        all |= one;
      }
      *out = all;
      return true;
    }
    default: return false;
  }
}

// A one-byte look-around next to the byte it looks at is a condition on that
// byte: "(?!S)T" and "T(?<!S)" are [T minus S], "(?=S)T" and "T(?<=S)" are
// [T and S], where T is a class or the first (last) pass of a repeated class
// (T{n,m} with n >= 1 is T T{n-1,m-1}: the look-around tests the first or
// last byte of the run).  Exact; applied to every sequence before emission.
void fuse_one_byte_lookarounds(Node& n) {
  for (auto& k : n.kids) fuse_one_byte_lookarounds(k);
  if (n.kind != Node::kSeq) return;
  auto look = [](const Node& k, bool ahead, ByteSet* s, bool* negative) {
    if (k.kind != Node::kLook || (k.what.find("ahead") != std::string::npos) != ahead) return false;
    *negative = k.what.find("negative") != std::string::npos;
    return single_set(k.kids[0], s);
  };
  // The byte next to the look-around: a class, or a repeated class that
  // must match at least once (split so that its first or last pass is a
  // class of its own).  Returns the index of that class, or -1.
  auto byte_at = [&](std::size_t i, bool first) -> long {
    Node& t = n.kids[i];
    if (t.kind == Node::kSet) return static_cast<long>(i);
    if (t.kind != Node::kRepeat || t.min < 1 || t.possessive || t.kids[0].kind != Node::kSet) return -1;
    Node one = t.kids[0];
    t.min -= 1;
    if (t.max > 0) t.max -= 1;
    if (first) {
      n.kids.insert(n.kids.begin() + static_cast<long>(i), std::move(one));
      return static_cast<long>(i);
    }
    n.kids.insert(n.kids.begin() + static_cast<long>(i) + 1, std::move(one));
    return static_cast<long>(i) + 1;
  };
  // Look-aheads from the right, so that "(?!a)(?!b)x" fuses both.
  for (std::size_t i = n.kids.size(); i-- > 0;) {
    ByteSet s;
    bool negative = false;
    if (i + 1 >= n.kids.size() || !look(n.kids[i], true, &s, &negative)) continue;
    long t = byte_at(i + 1, true);
    if (t < 0) continue;
    ByteSet& target = n.kids[static_cast<std::size_t>(t)].set;
    target = negative ? (target & ~s) : (target & s);
    n.kids.erase(n.kids.begin() + static_cast<long>(i));
  }
  // Look-behinds from the left.
  for (std::size_t i = 1; i < n.kids.size();) {
    ByteSet s;
    bool negative = false;
    if (!look(n.kids[i], false, &s, &negative)) {
      ++i;
      continue;
    }
    long t = byte_at(i - 1, false);
    if (t < 0) {
      ++i;
      continue;
    }
    ByteSet& target = n.kids[static_cast<std::size_t>(t)].set;
    target = negative ? (target & ~s) : (target & s);
    n.kids.erase(n.kids.begin() + t + 1);  // the look-behind, right after the byte
    i = static_cast<std::size_t>(t) + 1;
  }
}

// What follows a node, up to the end of the pattern.
struct Continuation {
  long min_length = 0;  // it consumes at least this many bytes
  bool trivial = true;  // it is empty: a match of the node ends the match
  // When known: every way it matches consumes a byte first, out of `first`.
  bool first_known = false;
  ByteSet first;
  // Not about what follows but what precedes: nothing does (every node
  // before this one in the pattern matches only the empty string), so the
  // node's match may start wherever RE2's unanchored search starts.
  bool leading = true;
};

// ---------------------------------------------------------------------------
// Emitter

class Emitter {
 public:
  // loosen: 0 writes repeat counts as they are; 1 loosens the counts above
  // RE2's limit of 1000; 2 loosens every count (RE2 also limits the product
  // of nested counts).
  explicit Emitter(int loosen) : loosen_(loosen) {}

  std::string emit(const Node& n, const Continuation& c) {
    switch (n.kind) {
      case Node::kSet: return re2_byte_set(n.set);
      case Node::kSeq: return emit_seq(n, c);
      case Node::kAlt: {
        if (n.kids.size() == 1) return emit(n.kids[0], c);
        std::string out = "(?:";
        for (std::size_t k = 0; k < n.kids.size(); ++k) {
          if (k) out += '|';
          out += emit(n.kids[k], c);
        }
        return out + ")";
      }
      case Node::kRepeat: return emit_repeat(n, c);
      case Node::kAssert: return emit_assert(n, c);
      case Node::kLook: return emit_look(n, c);
      case Node::kBackref:
        // Superset: a back-reference matches exactly the text its group
        // captured, some byte string, and [\x00-\xff]* matches every byte
        // string at every position.  (A reference to an unset group fails
        // in PCRE2: fewer matches still.)
        inexact(n);
        return "[\\x00-\\xff]*";
      case Node::kAtomic: {
        // An atomic group commits to the first way its body matches.  When
        // nothing follows, any way will do: the same matches (exact).
        // \R = (?>\r\n|[\n\x0b\f\r\x85]): its plain form can also take \r
        // alone before \n, which only matters if what follows can start
        // with \n.  Otherwise plain is a superset: the committed choice is
        // one of the plain group's choices.
        bool exact = c.trivial;
        if (n.what == "\\R" && c.first_known && !c.first.test('\n')) exact = true;
        if (!exact) inexact(n);
        Continuation inner = c;
        inner.leading = false;
        std::string body = emit(n.kids[0], inner);
        return "(?:" + body + ")";
      }
    }
    return {};
  }

  const std::string& inexact_reason() const { return reason_; }

 private:
  void inexact(const Node& n, const std::string& why = {}) {
    if (reason_.empty()) reason_ = (why.empty() ? n.what : why) + " at offset " + std::to_string(n.offset);
  }

  std::string emit_seq(const Node& n, const Continuation& c) {
    const std::size_t k = n.kids.size();
    // Suffix facts: after[i] is what follows kids[i] within the sequence,
    // then c.
    std::vector<Continuation> after(k + 1, c);  // after[k] is c itself
    for (std::size_t i = k; i-- > 0;) {
      const Node& next = n.kids[i];
      Continuation& a = after[i];  // what follows kids[i-1]: kids[i..] then c
      a.min_length = std::min(1L << 30, min_length(next) + after[i + 1].min_length);
      a.trivial = trivial(next) && after[i + 1].trivial;
      First f = first(next);
      if (!f.nullable) {
        a.first_known = true;
        a.first = f.set;
      } else {
        a.first_known = after[i + 1].first_known;
        a.first = f.set | after[i + 1].first;
      }
    }
    std::string out;
    bool leading = c.leading;
    for (std::size_t i = 0; i < k; ++i) {
      Continuation ci = after[i + 1];
      ci.leading = leading;
      out += emit(n.kids[i], ci);
      leading = leading && trivial(n.kids[i]);
    }
    return out;
  }

  std::string emit_repeat(const Node& n, const Continuation& c) {
    const Node& body = n.kids[0];
    // After one pass through the body come more passes (when max > 1) and
    // then c: at least c's length, never empty, starting with the body's
    // bytes or c's.
    Continuation inner = c;
    // A later pass has an earlier one before it; an optional single pass
    // (max 1) keeps the repeat's position.
    inner.leading = c.leading && n.max <= 1;
    if (n.max != 1) {
      inner.trivial = false;
      First f = first(body);
      inner.first |= f.set;
    }
    if (n.possessive) {
      // X*+ commits to the longest run.  Exact when nothing follows (any
      // run will do), when the body is a single byte set repeated a fixed
      // number of times (one way to match), or when it is a single byte
      // set S and what follows must start with a byte outside S: the
      // plain repeat could only stop early at a byte in S, where the
      // continuation cannot start.  Otherwise plain is a superset.
      bool exact = c.trivial || (body.kind == Node::kSet && (n.min == n.max ||
                                                              (c.first_known && (c.first & body.set).none())));
      if (!exact) inexact(n, "possessive quantifier " + n.what);
    }
    std::string b = emit(body, inner);
    if (b.empty()) return {};  // a dropped look-around, repeated
    if (!(body.kind == Node::kSet)) b = "(?:" + b + ")";
    int min = n.min, max = n.max;
    if ((loosen_ == 1 && (min > 1000 || max > 1000)) || (loosen_ == 2 && (min > 1 || max > 1))) {
      // Superset: X{n,m} matches a subset of X* (n = 0) or X+ (n >= 1).
      // Only used when RE2 refused the counts (above its limit of 1000).
      inexact(n, "repeat count " + n.what + " above RE2's limit");
      return b + (min == 0 ? "*" : "+");
    }
    if (min == 0 && max == -1) return b + "*";
    if (min == 1 && max == -1) return b + "+";
    if (min == 0 && max == 1) return b + "?";
    if (max == -1) return b + "{" + std::to_string(min) + ",}";
    if (min == max) return b + "{" + std::to_string(min) + "}";
    return b + "{" + std::to_string(min) + "," + std::to_string(max) + "}";
  }

  std::string emit_look(const Node& n, const Continuation& c) {
    const Node& body = n.kids[0];
    const bool ahead = n.what.find("ahead") != std::string::npos;
    const bool negative = n.what.find("negative") != std::string::npos;
    ByteSet s;
    const bool single = single_set(body, &s);
    if (ahead && c.trivial) {
      // Nothing follows the look-ahead: the match ends here, and PCRE2's
      // answer is "is there a match of the body at this position" (or, if
      // negative, "is there none").  Consuming the body does not change
      // that answer; for a negative one-byte look-ahead, "no byte of S
      // here" is "a byte outside S, or the end".
      if (!negative) return "(?:" + emit(body, c) + ")";
      if (single) return "(?:" + re2_byte_set(~s) + "|\\z)";
    }
    if (!ahead && c.leading) {
      // Nothing precedes the look-behind: PCRE2 matches iff for some
      // position p the body matches a span ending at p and the rest
      // matches from p.  RE2's unanchored search finds the body's span
      // itself when it is consumed.  Negative one-byte: "the start, or a
      // byte outside S before p".
      if (!negative) {
        Continuation inner = c;
        inner.leading = true;
        return "(?:" + emit(body, inner) + ")";
      }
      if (single) return "(?:\\A|" + re2_byte_set(~s) + ")";
    }
    // Superset: a look-around only removes matches; without it every PCRE2
    // match remains (its body is dropped whole, never widened, so a
    // negative one cannot turn "wider" into "fewer").
    inexact(n);
    return {};
  }

  std::string emit_assert(const Node& n, const Continuation& c) {
    switch (n.assertion) {
      case Node::kTextStart: return "\\A";
      case Node::kTextEnd: return "\\z";
      case Node::kWordBoundary: return "\\b";  // ASCII \w on both sides in both engines
      case Node::kNotWordBoundary: return "\\B";
      case Node::kLineEnd:
        // PCRE2 multiline $: before any \n or at the very end; RE2's (?m:$)
        // is the same.
        return "(?m:$)";
      case Node::kLineStart:
        // PCRE2 multiline ^: at the start, or after a \n that is not the
        // last byte; RE2's (?m:^) also after a final \n.  Where what follows
        // must consume a byte, ^ cannot be at the end, so the two agree;
        // elsewhere RE2's is a superset.
        if (c.min_length < 1) inexact(n, "multiline ^ that may match at the end of the subject");
        return "(?m:^)";
      case Node::kEndOrFinalNewline:
        // PCRE2 $ (and \Z) is (?=\n?\z).  When nothing follows, the match
        // ends there and consuming the optional newline changes no yes/no
        // answer: \n?\z is exact.  Elsewhere (?m:$) (before any \n or at
        // the end) is a superset of "before the final \n or at the end".
        if (c.trivial) return "(?:\\n?\\z)";
        inexact(n, n.what + " not at the end of the pattern");
        return "(?m:$)";
    }
    return {};
  }


  int loosen_;
  std::string reason_;
};

struct Outcome {
  std::string pattern;
  std::string inexact;  // empty: exact
};

// Parses; throws Refusal.  *doubt: why the translation cannot be exact
// whatever the emitter finds (empty: no such reason).  *reset_at, if given:
// Parser::match_start_reset_at().
Node parse_rule(const Rule& rule, std::string* doubt, std::size_t* reset_at = nullptr) {
  if (rule.flags & kUtf8) throw Refusal{"UTF-8 rule (flag u)"};
  if (rule.flags & kExtended) throw Refusal{"extended-syntax rule (flag x)"};
  // The translator reads only patterns PCRE2 itself accepts: its parser
  // then never has to guess what an invalid construct would have meant.
  std::string error;
  if (!pcre2_compile_rule(rule, &error)) throw Refusal{error};
  Options o;
  o.caseless = rule.flags & kCaseless;
  o.multiline = rule.flags & kMultiline;
  o.dotall = rule.flags & kDotall;
  Parser parser(rule.pattern, o);
  Node tree = parser.parse();
  *doubt = parser.auto_possess_doubt();
  if (reset_at) *reset_at = parser.match_start_reset_at();
  fuse_one_byte_lookarounds(tree);
  return tree;
}

Outcome emit_checked(const Node& tree, int loosen, RE2::ErrorCode* code, std::string* error) {
  Emitter e(loosen);
  Outcome out;
  out.pattern = e.emit(tree, Continuation{});
  out.inexact = e.inexact_reason();
  re2::RE2 re(out.pattern, re2_options());
  *code = re.error_code();
  if (!re.ok()) *error = "RE2 refuses the translation: " + re.error();
  return out;
}

std::optional<Re2Translation> translate(const Rule& rule, bool allow_superset, std::string* why) {
  try {
    std::string doubt;
    Node tree = parse_rule(rule, &doubt);
    RE2::ErrorCode code = RE2::NoError;
    std::string error;
    Outcome o = emit_checked(tree, 0, &code, &error);
    for (int loosen = 1; loosen <= 2 && code == RE2::ErrorRepeatSize && allow_superset; ++loosen)
      o = emit_checked(tree, loosen, &code, &error);
    if (code != RE2::NoError) throw Refusal{error};
    if (o.inexact.empty()) o.inexact = doubt;
    if (!o.inexact.empty() && !allow_superset) throw Refusal{"not exact: " + o.inexact};
    return Re2Translation{o.pattern, o.inexact.empty() ? Re2Strength::kExact : Re2Strength::kSuperset};
  } catch (const Refusal& r) {
    if (why) *why = r.why;
    return std::nullopt;
  }
}

}  // namespace

std::optional<Re2Translation> re2_exact(const Rule& rule, std::string* why) { return translate(rule, false, why); }

std::optional<Re2Translation> re2_translate(const Rule& rule, std::string* why) {
  return translate(rule, true, why);
}

namespace {

// Expands n into its alternatives in PCRE2's order of trial.  For fixed-length
// pieces without assertions or atomic groups, PCRE2's backtracking tries the
// choices of a sequence depth first, earlier parts' choices outermost: the
// first of these expansions that matches at a start is the one PCRE2 returns
// there.  (a|ab)(c|bcd) -> ac, abcd, abc, abbcd.
void expand(const Node& n, std::size_t max_alternatives, std::size_t max_length, std::vector<FixedSequence>* out) {
  // Appends one alternative, within the limits.
  auto add = [&](std::vector<FixedSequence>& v, FixedSequence s) {
    if (v.size() == max_alternatives) refuse("more than " + std::to_string(max_alternatives) + " alternatives", n.offset);
    if (s.size() > max_length) refuse("longer than " + std::to_string(max_length) + " bytes", n.offset);
    v.push_back(std::move(s));
  };
  auto product = [&](const std::vector<FixedSequence>& a, const std::vector<FixedSequence>& b) {
    std::vector<FixedSequence> r;
    for (const auto& x : a)
      for (const auto& y : b) {
        FixedSequence s = x;
        s.insert(s.end(), y.begin(), y.end());
        add(r, std::move(s));
      }
    return r;
  };
  switch (n.kind) {
    case Node::kSet: *out = {FixedSequence{n.set}}; return;
    case Node::kSeq: {
      std::vector<FixedSequence> acc{FixedSequence{}};
      for (const auto& k : n.kids) {
        std::vector<FixedSequence> e;
        expand(k, max_alternatives, max_length, &e);
        acc = product(acc, e);
      }
      *out = std::move(acc);
      return;
    }
    case Node::kAlt: {
      out->clear();
      for (const auto& k : n.kids) {
        std::vector<FixedSequence> e;
        expand(k, max_alternatives, max_length, &e);
        for (auto& s : e) add(*out, std::move(s));
      }
      return;
    }
    case Node::kRepeat: {
      // Only X{n}: any other count makes the length vary with the text, and
      // a possessive X{n}+ may refuse what backtracking into X would find.
      if (n.min != n.max || n.possessive) refuse("a repeat other than {n}", n.offset);
      std::vector<FixedSequence> e;
      expand(n.kids[0], max_alternatives, max_length, &e);
      std::vector<FixedSequence> acc{FixedSequence{}};
      for (int i = 0; i < n.min; ++i) acc = product(acc, e);
      *out = std::move(acc);
      return;
    }
    default: refuse(n.what.empty() ? "not a fixed alternation" : n.what, n.offset);
  }
}

}  // namespace

std::optional<std::vector<FixedSequence>> fixed_alternatives(const Rule& rule, std::size_t max_alternatives,
                                                             std::size_t max_length, std::string* why) {
  try {
    std::string doubt;  // about auto-possessification, which needs a variable repeat: refused below
    std::size_t reset_at = std::string::npos;
    const Node tree = parse_rule(rule, &doubt, &reset_at);
    // \K reads as nothing (it changes no yes/no answer) but changes a count:
    // after /ab\K/ matches, the reported match is empty, and the //g loop
    // then skips a match that starts where it ended.
    if (reset_at != std::string::npos) refuse("\\K", reset_at);
    std::vector<FixedSequence> out;
    expand(tree, max_alternatives, max_length, &out);
    for (const auto& s : out)
      if (s.empty()) refuse("an alternative that matches the empty string", 0);
    return out;
  } catch (const Refusal& r) {
    if (why) *why = r.why;
    return std::nullopt;
  }
}

re2::RE2::Options re2_options(long long max_mem) {
  re2::RE2::Options o;
  o.set_encoding(re2::RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  o.set_max_mem(max_mem);
  return o;
}

std::string re2_byte_set(const std::bitset<256>& s) {
  const std::size_t n = s.count();
  if (n == 0) return "[^\\x00-\\xff]";  // matches nothing (RE2 accepts an empty class)
  if (n == 1) {
    for (int c = 0; c < 256; ++c) {
      if (!s.test(static_cast<std::size_t>(c))) continue;
      // RE2 20220601 loses the Latin-1 flag of a literal prefix it
      // factors out of an alternation ("\xe9a|\xe9" -> \xe9(?:a|)) and
      // then looks for that prefix as UTF-8 (C3 A9) when it accelerates
      // an unanchored or \A search: "(?:\xe9a|\xe9)" never matches.  An
      // empty group before every byte >= 0x80 keeps such bytes out of
      // every literal string RE2 could factor (it starts no literal and
      // splits them); it matches the empty string, so it changes nothing.
      return c >= 0x80 ? "(?:)" + byte_text(c) : byte_text(c);
    }
  }
  if (n == 256) return "[\\x00-\\xff]";
  // The shorter of [...] and [^...].
  const bool negate = n > 128;
  const ByteSet m = negate ? ~s : s;
  std::string out = negate ? "[^" : "[";
  for (int c = 0; c < 256;) {
    if (!m.test(static_cast<std::size_t>(c))) {
      ++c;
      continue;
    }
    int e = c;
    while (e + 1 < 256 && m.test(static_cast<std::size_t>(e + 1))) ++e;
    out += byte_text(c);
    if (e > c + 1) out += '-';
    if (e > c) out += byte_text(e);
    c = e + 1;
  }
  return out + "]";
}

}  // namespace regexd::engine::detail
