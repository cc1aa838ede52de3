// SpamAssassin meta expressions: a tokenizer and a precedence-climbing parser
// that emit postfix code, and a dependency sort so that one pass evaluates a
// meta after every meta it reads.  See regexd/engine/meta.h for the language.
#include "regexd/engine/meta.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace regexd::engine {
namespace {

using Op = MetaProgram::Op;
using Instr = MetaProgram::Instr;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

struct Token {
  enum Kind { kNumber, kName, kOp, kEnd } kind;
  std::string_view text;
  double number = 0;
};

// Parses one expression into postfix code.  Names are collected in
// *names (in order of first use) and loaded by their index in it; the
// caller maps those to value slots.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  bool parse(std::vector<Instr>* code, std::vector<std::string>* names, std::string* error) {
    code_ = code;
    names_ = names;
    // SpamAssassin refuses these outright (Bug 7557): they could only be
    // Perl code smuggled into the expression it evals.
    for (std::string_view bad : {"::", "->", "$", "@", "%", ";", "{", "}"}) {
      if (text_.find(bad) != std::string_view::npos) {
        *error = "invalid character '" + std::string(bad) + "' in meta expression";
        return false;
      }
    }
    if (!next() || !ternary()) {
      *error = error_;
      return false;
    }
    if (tok_.kind != Token::kEnd) {
      *error = "unexpected '" + std::string(tok_.text) + "' in meta expression";
      return false;
    }
    return true;
  }

 private:
  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  // Reads the next token into tok_.
  bool next() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r' ||
                                   text_[pos_] == '\n'))
      ++pos_;
    if (pos_ >= text_.size()) {
      tok_ = {Token::kEnd, {}};
      return true;
    }
    const std::size_t start = pos_;
    const char c = text_[pos_];
    if (is_digit(c) || (c == '.' && pos_ + 1 < text_.size() && is_digit(text_[pos_ + 1]))) {
      while (pos_ < text_.size() && (is_digit(text_[pos_]) || text_[pos_] == '.')) ++pos_;
      std::string number(text_.substr(start, pos_ - start));
      char* end = nullptr;
      double v = std::strtod(number.c_str(), &end);
      if (end != number.c_str() + number.size()) return fail("invalid number '" + number + "'");
      tok_ = {Token::kNumber, text_.substr(start, pos_ - start), v};
      return true;
    }
    if (is_name_start(c)) {
      while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
      tok_ = {Token::kName, text_.substr(start, pos_ - start)};
      return true;
    }
    static constexpr std::string_view kTwo[] = {"||", "&&", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (text_.substr(pos_, 2) == op) {
        pos_ += 2;
        tok_ = {Token::kOp, op};
        return true;
      }
    }
    if (std::string_view("!<>+-*/^()?:").find(c) != std::string_view::npos) {
      ++pos_;
      tok_ = {Token::kOp, text_.substr(start, 1)};
      return true;
    }
    return fail("unexpected character '" + std::string(1, c) + "' in meta expression");
  }

  bool is_op(std::string_view op) const { return tok_.kind == Token::kOp && tok_.text == op; }
  void emit(Op op) { code_->push_back(Instr{op}); }

  // Left-associative binary level: operand (op operand)*.
  template <typename Sub>
  bool binary(Sub sub, std::initializer_list<std::pair<std::string_view, Op>> ops) {
    if (!(this->*sub)()) return false;
    for (;;) {
      const std::pair<std::string_view, Op>* hit = nullptr;
      for (const auto& entry : ops)
        if (is_op(entry.first)) hit = &entry;
      if (!hit) return true;
      if (!next() || !(this->*sub)()) return false;
      emit(hit->second);
    }
  }

  // Perl precedence, lowest first.
  bool ternary() {
    if (!logical_or()) return false;
    if (!is_op("?")) return true;
    if (!next() || !ternary()) return false;
    if (!is_op(":")) return fail("expected ':' after '?' in meta expression");
    if (!next() || !ternary()) return false;
    emit(Op::kTernary);
    return true;
  }
  bool logical_or() { return binary(&Parser::logical_and, {{"||", Op::kOr}}); }
  bool logical_and() { return binary(&Parser::bit_xor, {{"&&", Op::kAnd}}); }
  bool bit_xor() { return binary(&Parser::equality, {{"^", Op::kXor}}); }
  bool equality() { return binary(&Parser::relational, {{"==", Op::kEq}, {"!=", Op::kNe}}); }
  bool relational() {
    return binary(&Parser::additive, {{"<", Op::kLt}, {">", Op::kGt}, {"<=", Op::kLe}, {">=", Op::kGe}});
  }
  bool additive() { return binary(&Parser::multiplicative, {{"+", Op::kAdd}, {"-", Op::kSub}}); }
  bool multiplicative() { return binary(&Parser::unary, {{"*", Op::kMul}, {"/", Op::kDiv}}); }
  bool unary() {
    if (is_op("!") || is_op("-")) {
      Op op = is_op("!") ? Op::kNot : Op::kNeg;
      if (!next() || !unary()) return false;
      emit(op);
      return true;
    }
    if (is_op("+")) return next() && unary();
    return primary();
  }
  bool primary() {
    if (tok_.kind == Token::kNumber) {
      code_->push_back(Instr{Op::kConst, 0, tok_.number});
      return next();
    }
    if (tok_.kind == Token::kName) {
      if (tok_.text == "local_tests_only") {
        // regexd runs no network test: SpamAssassin with local tests only.
        code_->push_back(Instr{Op::kConst, 0, 1});
      } else {
        auto it = std::find(names_->begin(), names_->end(), tok_.text);
        auto index = static_cast<std::uint32_t>(it - names_->begin());
        if (it == names_->end()) names_->emplace_back(tok_.text);
        code_->push_back(Instr{Op::kLoad, index});
      }
      return next();
    }
    if (is_op("(")) {
      if (!next()) return false;
      if (is_op(")")) {
        // "meta NAME ()" declares a rule for plugins to set (Bug 8061): 0.
        code_->push_back(Instr{Op::kConst, 0, 0});
        return next();
      }
      if (!ternary()) return false;
      if (!is_op(")")) return fail("missing ')' in meta expression");
      return next();
    }
    if (tok_.kind == Token::kEnd) return fail("meta expression ends early");
    return fail("unexpected '" + std::string(tok_.text) + "' in meta expression");
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  Token tok_{Token::kEnd, {}};
  std::vector<Instr>* code_ = nullptr;
  std::vector<std::string>* names_ = nullptr;
  std::string error_;
};

bool truthy(double v) { return v != 0 && !std::isnan(v); }

double run(const std::vector<Instr>& code, const std::vector<double>& values, std::vector<double>& stack) {
  stack.clear();
  for (const Instr& in : code) {
    switch (in.op) {
      case Op::kConst: stack.push_back(in.value); continue;
      case Op::kLoad: stack.push_back(values[in.slot]); continue;
      case Op::kNot: stack.back() = truthy(stack.back()) ? 0 : 1; continue;
      case Op::kNeg: stack.back() = -stack.back(); continue;
      case Op::kTernary: {
        double no = stack.back();
        stack.pop_back();
        double yes = stack.back();
        stack.pop_back();
        stack.back() = truthy(stack.back()) ? yes : no;
        continue;
      }
      default: break;
    }
    const double b = stack.back();
    stack.pop_back();
    double& a = stack.back();
    switch (in.op) {
      case Op::kMul: a = a * b; break;
      case Op::kDiv: a = b == 0 ? 0 : a / b; break;
      case Op::kAdd: a = a + b; break;
      case Op::kSub: a = a - b; break;
      case Op::kLt: a = a < b; break;
      case Op::kGt: a = a > b; break;
      case Op::kLe: a = a <= b; break;
      case Op::kGe: a = a >= b; break;
      case Op::kEq: a = a == b; break;
      case Op::kNe: a = a != b; break;
      // Perl's numeric ^ works on the integer parts.
      case Op::kXor: a = static_cast<double>(static_cast<long long>(a) ^ static_cast<long long>(b)); break;
      // Perl's && and || return the operand that decided.
      case Op::kAnd: a = truthy(a) ? b : a; break;
      case Op::kOr: a = truthy(a) ? a : b; break;
      default: break;
    }
  }
  return stack.empty() ? 0 : stack.back();
}

}  // namespace

MetaProgram MetaProgram::compile(const std::vector<MetaRule>& metas, std::vector<RuleError>* errors) {
  auto report = [&](const MetaRule& m, std::string message) {
    if (errors) errors->push_back(RuleError{m.source, m.line, m.id, std::move(message)});
  };
  struct Parsed {
    const MetaRule* rule;
    std::vector<Instr> code;
    std::vector<std::string> names;  // kLoad slots index this until relinked
    // names[k] as a meta: its index in `parsed`, or kNotMeta.  Looked up
    // once: SpamAssassin's ~1,500 metas read ~6,000 names, and each was
    // hashed again by every pass below (40% of a start's meta build).
    std::vector<std::size_t> meta_of;
  };
  constexpr std::size_t kNotMeta = static_cast<std::size_t>(-1);
  std::vector<Parsed> parsed;
  std::unordered_map<std::string, std::size_t> by_name;  // meta id -> index in parsed
  for (const MetaRule& m : metas) {
    Parsed p{&m, {}, {}, {}};
    std::string error;
    if (!Parser(m.expression).parse(&p.code, &p.names, &error)) {
      report(m, error + ": '" + m.expression + "'");
      continue;
    }
    if (by_name.count(m.id)) {
      report(m, "meta defined twice");
      continue;
    }
    by_name.emplace(m.id, parsed.size());
    parsed.push_back(std::move(p));
  }
  for (Parsed& p : parsed) {
    p.meta_of.reserve(p.names.size());
    for (const auto& name : p.names) {
      auto it = by_name.find(name);
      p.meta_of.push_back(it == by_name.end() ? kNotMeta : it->second);
    }
  }

  // Order metas so every meta comes after the metas it reads (Kahn's
  // algorithm).  Those left over sit on or behind a cycle: SpamAssassin
  // excludes them ("unsolved meta dependencies") and so does this.
  std::vector<std::vector<std::size_t>> readers(parsed.size());
  std::vector<std::size_t> pending(parsed.size(), 0);
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    std::set<std::size_t> deps;
    for (std::size_t m : parsed[i].meta_of)
      if (m != kNotMeta) deps.insert(m);
    pending[i] = deps.size();
    for (std::size_t d : deps) readers[d].push_back(i);
  }
  std::vector<std::size_t> order, ready;
  for (std::size_t i = 0; i < parsed.size(); ++i)
    if (pending[i] == 0) ready.push_back(i);
  while (!ready.empty()) {
    std::size_t i = ready.back();
    ready.pop_back();
    order.push_back(i);
    for (std::size_t r : readers[i])
      if (--pending[r] == 0) ready.push_back(r);
  }
  std::vector<bool> solved(parsed.size(), false);
  for (std::size_t i : order) solved[i] = true;
  // Switched-off metas never run, and a meta reading one never becomes
  // ready (regexd/engine/rule.h, MetaRule::disabled): drop both, in
  // dependency order so that it carries through chains.
  std::vector<bool> blocked(parsed.size(), false);
  for (std::size_t i : order) {
    blocked[i] = parsed[i].rule->disabled;
    for (std::size_t m : parsed[i].meta_of)
      if (m != kNotMeta && blocked[m]) blocked[i] = true;
  }
  std::erase_if(order, [&](std::size_t i) { return blocked[i]; });
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    if (solved[i]) continue;
    std::string unsolved;
    for (std::size_t k = 0; k < parsed[i].names.size(); ++k) {
      std::size_t m = parsed[i].meta_of[k];
      if (m != kNotMeta && !solved[m]) unsolved += (unsolved.empty() ? "" : ", ") + parsed[i].names[k];
    }
    report(*parsed[i].rule, "excluded: meta dependency loop through " + unsolved);
  }

  // Value slots: every name read that is not a solved meta (rules, unknown
  // names, excluded metas: all 0 unless a rule of that name hit), then one
  // per solved meta.
  // A name's slot is decided here once per (meta, name) and kept beside
  // it (slot_of_name), so relinking needs no lookup.
  MetaProgram out;
  std::unordered_map<std::string, std::uint32_t> slot_of;
  std::vector<std::vector<std::uint32_t>> slot_of_name(parsed.size());
  constexpr std::uint32_t kMetaSlot = static_cast<std::uint32_t>(-1);  // filled below
  for (std::size_t i : order) {
    const Parsed& p = parsed[i];
    slot_of_name[i].resize(p.names.size(), kMetaSlot);
    for (std::size_t k = 0; k < p.names.size(); ++k) {
      std::size_t m = p.meta_of[k];
      if (m != kNotMeta && solved[m]) continue;
      auto [it, fresh] = slot_of.try_emplace(p.names[k], static_cast<std::uint32_t>(out.slot_names_.size()));
      if (fresh) out.slot_names_.push_back(p.names[k]);
      slot_of_name[i][k] = it->second;
    }
  }
  out.rule_slots_ = static_cast<std::uint32_t>(out.slot_names_.size());
  out.rule_slot_ = std::move(slot_of);
  // Solved metas take the slots after the rules', in evaluation order.
  std::vector<std::uint32_t> meta_slot(parsed.size(), kMetaSlot);
  for (std::size_t i : order) {
    meta_slot[i] = static_cast<std::uint32_t>(out.slot_names_.size());
    out.slot_names_.push_back(parsed[i].rule->id);
  }
  for (std::size_t i : order) {
    Parsed& p = parsed[i];
    for (std::size_t k = 0; k < p.names.size(); ++k)
      if (slot_of_name[i][k] == kMetaSlot) slot_of_name[i][k] = meta_slot[p.meta_of[k]];
    for (Instr& in : p.code)
      if (in.op == Op::kLoad) in.slot = slot_of_name[i][in.slot];
    out.metas_.push_back(Meta{p.rule->id, meta_slot[i], std::move(p.code)});
  }
  return out;
}

std::vector<std::pair<std::string, double>> MetaProgram::evaluate(
    std::span<const std::pair<std::string, unsigned>> rule_hits) const {
  std::vector<std::pair<std::string, double>> hits;
  if (metas_.empty()) return hits;
  std::vector<double> values(slot_names_.size(), 0);
  for (const auto& [id, n] : rule_hits) {
    auto it = rule_slot_.find(id);
    if (it != rule_slot_.end()) values[it->second] = n;
  }
  std::vector<double> stack;
  stack.reserve(32);
  for (const Meta& m : metas_) {
    double v = run(m.code, values, stack);
    if (!truthy(v)) continue;
    // got_hit: a value that is not above 0 counts as 1.
    values[m.slot] = v > 0 ? v : 1;
    hits.emplace_back(m.id, values[m.slot]);
  }
  return hits;
}

std::vector<std::pair<std::string, std::vector<std::string>>> MetaProgram::rule_dependencies(
    const std::function<bool(const std::string&)>& among) const {
  // The filter once per rule slot, not once per reference.
  std::vector<char> kept(rule_slots_, 1);
  if (among)
    for (std::uint32_t s = 0; s < rule_slots_; ++s) kept[s] = among(slot_names_[s]) ? 1 : 0;
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const Meta& m : metas_) {
    std::vector<std::string> deps;
    for (const Instr& in : m.code)
      if (in.op == Op::kLoad && in.slot < rule_slots_ && kept[in.slot]) deps.push_back(slot_names_[in.slot]);
    if (among && deps.empty()) continue;
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    out.emplace_back(m.id, std::move(deps));
  }
  return out;
}

}  // namespace regexd::engine
