// Rule model helpers, the format dispatch and file loading.  The importers,
// one per format, live in engine/src/import/ (native.cpp, spamassassin.cpp,
// rspamd_map.cpp).  See regexd/engine/rule.h for the contract.
//
// All parsers work line by line on a string_view and never throw on bad
// input: a malformed line becomes a RuleError and the next line is parsed.
#include "regexd/engine/rule.h"

#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "import/text.h"

namespace regexd::engine {

using namespace import;

std::optional<std::uint32_t> parse_flags(std::string_view letters, char* bad) {
  std::uint32_t flags = 0;
  for (char c : letters) {
    switch (c) {
      case 'i': flags |= kCaseless; break;
      case 'm': flags |= kMultiline; break;
      case 's': flags |= kDotall; break;
      case 'x': flags |= kExtended; break;
      // u and r are opposite modes; the later letter wins.
      case 'u': flags = (flags & ~static_cast<std::uint32_t>(kRaw)) | kUtf8; break;
      case 'r': flags = (flags & ~static_cast<std::uint32_t>(kUtf8)) | kRaw; break;
      case 'L': flags |= kLeftmost; break;
      case 'O': flags |= kNoOpt; break;
      default:
        if (bad != nullptr) *bad = c;
        return std::nullopt;
    }
  }
  return flags;
}

std::string flags_to_string(std::uint32_t flags) {
  static constexpr std::pair<RuleFlag, char> kOrder[] = {
      {kCaseless, 'i'}, {kMultiline, 'm'}, {kDotall, 's'}, {kExtended, 'x'},
      {kUtf8, 'u'},     {kLeftmost, 'L'},  {kNoOpt, 'O'},  {kRaw, 'r'},
  };
  std::string out;
  for (const auto& [flag, letter] : kOrder) {
    if ((flags & flag) != 0) out.push_back(letter);
  }
  return out;
}

std::string RuleError::to_string() const {
  std::string out = location(source, line) + ": ";
  if (!rule_id.empty()) out += "rule " + rule_id + ": ";
  out += message;
  return out;
}

namespace {

// Appends `from` to `into` (rules or metas: both have id, source, line),
// handling an id present in both as `policy` says.
template <typename T>
void merge_by_id(std::vector<T>& into, std::vector<T>&& from, RuleSet::OnDuplicate policy,
                 std::vector<RuleError>* rejected) {
  std::unordered_map<std::string, std::size_t> index;
  index.reserve(into.size() + from.size());
  for (std::size_t i = 0; i < into.size(); ++i) index.emplace(into[i].id, i);
  into.reserve(into.size() + from.size());
  for (T& item : from) {
    auto [it, inserted] = index.try_emplace(item.id, into.size());
    if (!inserted && policy == RuleSet::OnDuplicate::kLaterWins) {
      into[it->second] = std::move(item);
      continue;
    }
    if (!inserted) {
      const T& first = into[it->second];
      rejected->push_back(RuleError{item.source, item.line, item.id,
                                    "duplicate rule id " + item.id + " (first defined at " +
                                        location(first.source, first.line) + ")"});
      continue;
    }
    into.push_back(std::move(item));
  }
}

}  // namespace

void RuleSet::merge(RuleSet other, OnDuplicate policy) {
  merge_by_id(rules, std::move(other.rules), policy, &rejected);
  merge_by_id(metas, std::move(other.metas), policy, &rejected);
  for (RuleError& error : other.rejected) rejected.push_back(std::move(error));
  for (const auto& [kind, count] : other.skipped) skipped[kind] += count;
  for (auto& [name, kind] : other.unsupported) unsupported[name] = std::move(kind);
}

RuleSet::OnDuplicate duplicate_policy_for(RuleFormat format) {
  return format == RuleFormat::kSpamAssassin ? RuleSet::OnDuplicate::kLaterWins : RuleSet::OnDuplicate::kReject;
}

std::optional<RuleFormat> parse_rule_format(std::string_view name) {
  if (name == "native") return RuleFormat::kNative;
  if (name == "spamassassin") return RuleFormat::kSpamAssassin;
  if (name == "rspamd-map") return RuleFormat::kRspamdMap;
  return std::nullopt;
}

std::string_view rule_format_name(RuleFormat format) {
  switch (format) {
    case RuleFormat::kNative: return "native";
    case RuleFormat::kSpamAssassin: return "spamassassin";
    case RuleFormat::kRspamdMap: return "rspamd-map";
  }
  return "unknown";
}

RuleSet load_rules_file(const std::string& path, RuleFormat format, std::string_view cls) {
  std::string text, error;
  if (!read_file(path, &text, &error)) {
    RuleSet set;
    set.rejected.push_back(read_error(path, error));
    return set;
  }
  return parse_rules(text, path, format, cls);
}

RuleSet load_rules_files(const std::vector<std::string>& paths, RuleFormat format, std::string_view cls) {
  if (format != RuleFormat::kSpamAssassin) {
    RuleSet set;
    for (const auto& path : paths) set.merge(load_rules_file(path, format, cls), duplicate_policy_for(format));
    return set;
  }
  SpamAssassinOptions options;
  if (!cls.empty()) options.force_class = std::string(cls);
  return load_spamassassin_files(paths, options);
}

RuleSet parse_rules(std::string_view text, std::string_view source, RuleFormat format, std::string_view cls) {
  switch (format) {
    case RuleFormat::kNative:
      return parse_native(text, source);
    case RuleFormat::kSpamAssassin: {
      SpamAssassinOptions options;
      if (!cls.empty()) options.force_class = std::string(cls);
      return parse_spamassassin(text, source, options);
    }
    case RuleFormat::kRspamdMap:
      return parse_rspamd_map(text, source, cls);
  }
  RuleSet set;
  set.rejected.push_back(RuleError{std::string(source), 0, {}, "unknown rule format"});
  return set;
}

}  // namespace regexd::engine
