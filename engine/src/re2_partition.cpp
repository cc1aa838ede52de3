#include "re2_partition.h"

#include <re2/set.h>

#include "lockstep_dfa.h"
#include "re2_translate.h"

namespace regexd::engine {

struct Re2Program {
  explicit Re2Program(const re2::RE2::Options& o) : set(o, re2::RE2::UNANCHORED) {}
  re2::RE2::Set set;
};

void Re2ProgramDeleter::operator()(Re2Program* p) const { delete p; }

const Re2Program* Re2Partition::get(const CompiledSet& set) const {
  std::call_once(once_, [&] {
    std::string why;
    program_ = detail::build_re2_program(set, rules_, &why);
    built_.store(true, std::memory_order_release);
  });
  return program_.get();
}

const detail::DfaProgram* Re2Partition::dfa(const CompiledSet& set) const {
  std::call_once(dfa_once_, [&] {
    std::string why;
    // No program (a pattern the runner does not read): the scanner uses
    // get() for this set instead.
    if (auto patterns = detail::re2_patterns_of(set, rules_, &why))
      dfa_.reset(detail::DfaProgram::build(*patterns, &why).release());
    dfa_built_.store(true, std::memory_order_release);
  });
  return dfa_.get();
}

namespace detail {

void DfaProgramDeleter::operator()(const DfaProgram* p) const { delete p; }

std::unique_ptr<Re2Program, Re2ProgramDeleter> build_re2_program(const std::vector<std::string>& patterns,
                                                                std::string* why, long long max_mem) {
  std::unique_ptr<Re2Program, Re2ProgramDeleter> p(new Re2Program(re2_options(max_mem)));
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    std::string error;
    if (p->set.Add(patterns[i], &error) != static_cast<int>(i)) {
      *why = "RE2 refused pattern " + std::to_string(i) + " of the set: " + error;
      return nullptr;
    }
  }
  if (!p->set.Compile()) {
    *why = "RE2 could not compile the set (out of memory)";
    return nullptr;
  }
  return p;
}

std::optional<std::string> re2_pattern_of(const CompiledRule& cr, std::string* why) {
  if (!cr.re2_pattern.empty()) return cr.re2_pattern;
  auto t = cr.tier == Tier::kRe2 ? re2_exact(cr.rule, why) : re2_translate(cr.rule, why);
  if (!t) return std::nullopt;
  return std::move(t->pattern);
}

std::optional<std::vector<std::string>> re2_patterns_of(const CompiledSet& set, const std::vector<std::uint32_t>& rules,
                                                        std::string* why) {
  std::vector<std::string> patterns;
  patterns.reserve(rules.size());
  for (auto id : rules) {
    if (id >= set.rules.size()) {
      *why = "RE2 set lists rule index " + std::to_string(id) + ", which does not exist";
      return std::nullopt;
    }
    std::string reason;
    auto pattern = re2_pattern_of(set.rules[id], &reason);
    if (!pattern) {
      *why = "rule " + set.rules[id].rule.id + " has no RE2 translation: " + reason;
      return std::nullopt;
    }
    patterns.push_back(std::move(*pattern));
  }
  return patterns;
}

std::unique_ptr<Re2Program, Re2ProgramDeleter> build_re2_program(const CompiledSet& set,
                                                                const std::vector<std::uint32_t>& rules,
                                                                std::string* why) {
  auto patterns = re2_patterns_of(set, rules, why);
  if (!patterns) return nullptr;
  return build_re2_program(*patterns, why);
}

bool re2_match(const Re2Program& program, std::string_view data, std::vector<int>* matched) {
  matched->clear();
  re2::RE2::Set::ErrorInfo info{};
  if (program.set.Match(re2::StringPiece(data.data(), data.size()), matched, &info)) return true;
  return info.kind == re2::RE2::Set::kNoError;  // no match, or gave up
}

}  // namespace detail
}  // namespace regexd::engine
