// Message-level scan: see regexd/engine/message.h.
#include "regexd/engine/message.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "pcre2_util.h"
#include "regexd/engine/compiled_set.h"

namespace regexd::engine {

std::shared_ptr<const MessagePlan> MessagePlan::build(const RuleSet& rules, std::vector<RuleError>* errors) {
  auto plan = std::make_shared<MessagePlan>();
  for (const Rule& rule : rules.rules) {
    RuleInfo info;
    info.cls = rule.cls;
    info.max_hits = rule.max_hits;
    if (rule.kind == "header") {
      info.negate = rule.negate;
      if (rule.negate) plan->negated_.push_back(rule.id);
      plan->header_tests_.push_back(rule);
    }
    plan->rules_.emplace(rule.id, std::move(info));
  }
  plan->metas_ = MetaProgram::compile(rules.metas, errors);
  if (!rules.unsupported.empty())
    plan->metas_with_unsupported_ =
        plan->metas_.rule_dependencies([&](const std::string& d) { return rules.unsupported.count(d) > 0; });
  return plan;
}

const MessagePlan::Absent& MessagePlan::absent() const {
  std::call_once(absent_once_, [&] {
    // SpamAssassin matches an absent header as its [if-unset: VALUE], or as
    // undef, which a match sees as "".  The answer is fixed per rule, so it
    // is computed once, with PCRE2, the reference.  A pattern PCRE2 refuses
    // is not compiled into the Scanner either: it never hits, negated or not.
    detail::Pcre2Matcher matcher(CompileOptions{}.pcre2_match_limit, CompileOptions{}.pcre2_depth_limit);
    for (const Rule& rule : header_tests_) {
      std::string error;
      Pcre2CodePtr code = detail::pcre2_compile_rule(rule, &error);
      if (!code) continue;
      bool match = matcher.count(code.get(), rule.if_unset ? *rule.if_unset : std::string(), 1,
                                 (rule.flags & kUtf8) != 0) > 0;
      auto& hits = absent_.hits[rule.cls];  // every header class gets an entry
      if (rule.negate) {
        if (match) absent_.negated_match.insert(rule.id);
      } else if (match) {
        hits.push_back(rule.id);
      }
    }
    header_tests_.clear();
    header_tests_.shrink_to_fit();
  });
  return absent_;
}

Result<ScanResult> MessagePlan::scan(const Scanner& scanner, std::span<const MessageBuffer> buffers,
                                     const MessageScanOptions& options) const {
  std::map<std::string, unsigned> hits;
  std::set<std::string> limited;
  std::set<std::string_view> present;
  unsigned re2_fallbacks = 0;
  EngineTimes times;
  ScanOptions per_buffer;
  per_buffer.max_hits = options.max_hits;
  per_buffer.measure_engines = options.measure_engines;
  const bool timed = !options.buffer_ns.empty() && options.buffer_ns.size() == buffers.size();
  auto t = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    const MessageBuffer& b = buffers[i];
    auto r = scanner.scan(b.cls, b.data, per_buffer);
    if (!r) return r.error();
    if (timed) {
      auto now = std::chrono::steady_clock::now();
      options.buffer_ns[i] = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - t).count());
      t = now;
    }
    for (auto& [id, n] : r->hits) hits[id] += n;
    limited.insert(r->limited.begin(), r->limited.end());
    re2_fallbacks += r->re2_fallbacks;
    times += r->time;
    present.insert(b.cls);
  }
  // Summed over buffers, a rule still counts at most its cap per message
  // (SpamAssassin: once, or maxhits for "multiple" rules).
  for (auto& [id, n] : hits) {
    auto it = rules_.find(id);
    unsigned cap = it != rules_.end() && it->second.max_hits ? it->second.max_hits : std::max(1u, options.max_hits);
    n = std::min(n, cap);
  }
  // The compiled classes are sorted by name: look them up in place rather
  // than copying Scanner::classes() for every message.
  const auto& compiled = scanner.compiled().classes;
  auto has_class = [&](const std::string& cls) {
    auto it = std::lower_bound(compiled.begin(), compiled.end(), cls,
                               [](const ClassDatabases& c, const std::string& k) { return c.cls < k; });
    return it != compiled.end() && it->cls == cls;
  };
  // A negated test hits when its header did not match: with the header
  // present, no buffer matched; absent (whole messages only), its value for
  // an absent header does not match.
  for (const std::string& id : negated_) {
    const RuleInfo& info = rules_.at(id);
    bool hit;
    if (present.count(info.cls))
      hit = hits.count(id) == 0;
    else
      hit = options.whole_message && has_class(info.cls) && !absent().negated_match.count(id);
    if (hit)
      hits[id] = 1;
    else
      hits.erase(id);
  }
  if (options.whole_message) {
    for (const auto& [cls, ids] : absent().hits) {
      if (present.count(cls) || !has_class(cls)) continue;
      for (const std::string& id : ids) hits[id] = 1;
    }
  }

  ScanResult result;
  result.hits.assign(hits.begin(), hits.end());
  // Metas read the rule hits; their values join the answer.
  for (auto& [meta, value] : metas_.evaluate(result.hits)) {
    double v = std::floor(std::min(value, static_cast<double>(std::numeric_limits<unsigned>::max())));
    result.hits.emplace_back(meta, static_cast<unsigned>(std::max(1.0, v)));
  }
  std::sort(result.hits.begin(), result.hits.end());
  result.limited.assign(limited.begin(), limited.end());
  result.re2_fallbacks = re2_fallbacks;
  result.time = times;
  return result;
}

}  // namespace regexd::engine
