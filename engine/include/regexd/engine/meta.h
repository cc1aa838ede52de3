// regexd::engine meta rules: SpamAssassin's meta expressions, compiled once
// and evaluated per message over the rules' hit values.
//
// Language (SpamAssassin 4.0, Conf/Parser.pm, evaluated as the Perl it
// becomes there):
//   operand   rule or meta name (its value: hit count, 0 when it did not hit,
//             is unknown, or cannot run here), a decimal number,
//             local_tests_only (1: regexd runs no network test)
//   unary     ! -  +
//   binary    * /   + -   < > <= >=   == !=   ^ (integer xor)   &&   ||
//   ternary   ? :
// with Perl's precedence and its value semantics: && and || return the
// operand that decided (so "(A || B) > 1" can see a count), !, comparisons
// give 1 or 0.  A meta hits when its value is not 0; its own value, seen by
// other metas, is then that number when above 0, else 1 (PerMsgStatus.pm
// got_hit).  Division by 0 gives 0 (Perl dies there; SpamAssassin's lint
// refuses constant ones).
//
// A meta whose expression does not parse, or that depends on itself through
// other metas, is reported and never hits, as SpamAssassin excludes it.
//
// Thread safety: a MetaProgram is immutable once compiled; evaluate() may be
// called from any number of threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "regexd/engine/rule.h"

namespace regexd::engine {

class MetaProgram {
 public:
  MetaProgram() = default;

  // Compiles `metas`.  Names a meta references that are neither another meta
  // nor a rule evaluate to 0.  Every meta that cannot be used is reported in
  // *errors (may be null) as "source:line: rule ID: reason" and left out.
  static MetaProgram compile(const std::vector<MetaRule>& metas, std::vector<RuleError>* errors);

  // Evaluates every meta over the rules that hit (id, hit count; every
  // other name is 0) and returns the metas that hit with their values, in
  // evaluation order (dependencies first).
  std::vector<std::pair<std::string, double>> evaluate(
      std::span<const std::pair<std::string, unsigned>> rule_hits) const;

  std::size_t size() const { return metas_.size(); }
  // The names each meta references that are not metas (for reports), sorted,
  // per meta in evaluation order.  With `among`, only the names it accepts,
  // and only the metas left with at least one.
  std::vector<std::pair<std::string, std::vector<std::string>>> rule_dependencies(
      const std::function<bool(const std::string&)>& among = {}) const;

  // Internal representation, public for the compiler in meta.cpp.
  enum class Op : std::uint8_t {
    kConst, kLoad, kNot, kNeg, kMul, kDiv, kAdd, kSub, kLt, kGt, kLe, kGe, kEq, kNe, kXor, kAnd, kOr,
    kTernary,
  };
  struct Instr {
    Op op;
    std::uint32_t slot = 0;  // kLoad: index into the value table
    double value = 0;        // kConst
  };
  struct Meta {
    std::string id;
    std::uint32_t slot = 0;     // where its value goes
    std::vector<Instr> code;    // postfix
  };

 private:
  std::vector<Meta> metas_;            // topological order
  std::vector<std::string> slot_names_;  // value table: rules first, then metas
  std::uint32_t rule_slots_ = 0;       // slots [0, rule_slots_): names that are not metas
  std::unordered_map<std::string, std::uint32_t> rule_slot_;  // name -> slot, for those
};

}  // namespace regexd::engine
