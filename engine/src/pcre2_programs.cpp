#include "regexd/engine/pcre2_programs.h"

#include <vector>

#include "pcre2_util.h"

namespace regexd::engine {
namespace {

// What pcre2_serialize_encode() writes before the programs: its header
// (magic, version, config, count: four 32-bit words) and one copy of the
// character tables.  The programs follow, each PCRE2_INFO_SIZE bytes.
std::size_t serialized_head() {
  std::uint32_t tables = 0;
  pcre2_config(PCRE2_CONFIG_TABLES_LENGTH, &tables);
  return 16 + tables;
}

// The rules whose scans may ask LazyPcre2 for a program: every tier but
// native (confirmations, PCRE2-only rules, RE2 fallbacks and warm-up scans),
// and native rules that are counted (PCRE2 counts hits beyond the first).
bool may_run_pcre2(const CompiledRule& cr) { return cr.tier != Tier::kNative || cr.rule.max_hits > 1; }

}  // namespace

Result<Pcre2Programs> serialize_pcre2_programs(const CompiledSet& set) {
  Pcre2Programs out;
  std::vector<Pcre2CodePtr> codes;
  for (std::size_t i = 0; i < set.rules.size(); ++i) {
    const CompiledRule& cr = set.rules[i];
    if (!may_run_pcre2(cr)) continue;
    std::string error;
    // The same call LazyPcre2 makes (pcre2_util.cpp), so a decoded program
    // is the program the scanner would have compiled.
    Pcre2CodePtr code = detail::pcre2_compile_rule(cr.rule, &error, detail::pcre2_extra_options(cr));
    if (!code) continue;  // compiled (or reported) on use, as without programs
    codes.push_back(std::move(code));
    out.rules.push_back(static_cast<std::uint32_t>(i));
  }
  if (codes.empty()) return out;
  std::vector<const pcre2_code*> raw;
  raw.reserve(codes.size());
  for (const auto& c : codes) raw.push_back(c.get());
  std::uint8_t* bytes = nullptr;
  PCRE2_SIZE size = 0;
  const int32_t n = pcre2_serialize_encode(raw.data(), static_cast<int32_t>(raw.size()), &bytes, &size, nullptr);
  if (n < 0) return make_error(ErrorCode::kInternal, "pcre2_serialize_encode: " + detail::pcre2_error_text(n));
  out.bytes.assign(reinterpret_cast<const char*>(bytes), size);
  pcre2_serialize_free(bytes);
  return out;
}

Status adopt_pcre2_programs(CompiledSet& set, std::string_view bytes, std::span<const std::uint32_t> rules) {
  if (!set.pcre2) return make_error(ErrorCode::kInternal, "PCRE2 slots not allocated");
  if (rules.empty() && bytes.empty()) return {};
  const std::size_t head = serialized_head();
  if (bytes.size() < head) return make_error(ErrorCode::kCorrupt, "PCRE2 programs: truncated");
  std::vector<std::uint8_t> seen(set.rules.size(), 0);
  for (auto id : rules) {
    if (id >= set.rules.size() || seen[id] || !may_run_pcre2(set.rules[id]))
      return make_error(ErrorCode::kCorrupt, "PCRE2 programs: rule " + std::to_string(id) +
                                                 " out of range, listed twice or never run by PCRE2");
    seen[id] = 1;
  }
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const int32_t count = pcre2_serialize_get_number_of_codes(data);
  if (count == PCRE2_ERROR_BADMODE)  // another PCRE2 version, code unit or build
    return make_error(ErrorCode::kMismatch, "PCRE2 programs: " + detail::pcre2_error_text(count));
  if (count < 0) return make_error(ErrorCode::kCorrupt, "PCRE2 programs: " + detail::pcre2_error_text(count));
  if (static_cast<std::size_t>(count) != rules.size())
    return make_error(ErrorCode::kCorrupt, "PCRE2 programs: " + std::to_string(count) + " programs for " +
                                               std::to_string(rules.size()) + " rules");
  std::vector<pcre2_code*> raw(rules.size(), nullptr);
  const int32_t n = pcre2_serialize_decode(raw.data(), count, data, nullptr);
  if (n < 0)
    return make_error(n == PCRE2_ERROR_BADMODE ? ErrorCode::kMismatch : ErrorCode::kCorrupt,
                      "PCRE2 programs: " + detail::pcre2_error_text(n));
  std::vector<Pcre2CodePtr> codes;
  codes.reserve(raw.size());
  for (auto* c : raw) codes.emplace_back(c);  // owned from here, freed on every return
  // The programs must fill the bytes exactly: each is as long as its own
  // header says (PCRE2_INFO_SIZE), so a count or a size that does not add
  // up is damage the checksum did not catch.
  std::size_t total = head;
  for (const auto& c : codes) {
    std::size_t size = 0;
    if (!c || pcre2_pattern_info(c.get(), PCRE2_INFO_SIZE, &size) != 0)
      return make_error(ErrorCode::kCorrupt, "PCRE2 programs: a program did not decode");
    total += size;
  }
  if (total != bytes.size())
    return make_error(ErrorCode::kCorrupt, "PCRE2 programs: " + std::to_string(bytes.size()) +
                                               " bytes, the programs account for " + std::to_string(total));
  for (std::size_t k = 0; k < codes.size(); ++k) set.pcre2[rules[k]].adopt(std::move(codes[k]));
  return {};
}

}  // namespace regexd::engine
