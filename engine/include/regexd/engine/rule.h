// regexd::engine rule model and rule-set parsers.
//
// A RuleSet is plain data: a list of rules (id, class, pattern, flags) plus
// the list of rules that were rejected while reading, each with a one-line
// reason naming the source and line.  Parsers never throw on bad input: a
// bad line becomes a RuleError and parsing continues, so one typo never costs
// the rest of the set.
//
// Thread safety: all types here are values; parsers are pure functions and
// may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace regexd::engine {

// Rule flags, named after Rspamd's regexp flag letters.
enum RuleFlag : std::uint32_t {
  kCaseless = 1u << 0,   // i
  kMultiline = 1u << 1,  // m
  kDotall = 1u << 2,     // s
  kExtended = 1u << 3,   // x
  kUtf8 = 1u << 4,       // u: UTF-8 + Unicode properties; default is bytes
  kLeftmost = 1u << 5,   // L: leftmost start of match (HS_FLAG_SOM_LEFTMOST)
  kNoOpt = 1u << 6,      // O: no optimisation: PCRE2 without JIT
  kRaw = 1u << 7,        // r: raw bytes (the default; clears u)
};

// Parses Rspamd flag letters ("imsxuLOr").  Returns the flag set, or nullopt
// and sets *bad to the first unknown letter.
std::optional<std::uint32_t> parse_flags(std::string_view letters, char* bad);
// The canonical letter string of a flag set, in the order "imsxuLOr".
std::string flags_to_string(std::uint32_t flags);

struct Rule {
  std::string id;       // [A-Za-z0-9_.:-]+, unique within a RuleSet
  std::string cls;      // class label: body, rawbody, full, url, header:Subject, ...
  std::string pattern;  // PCRE syntax, without delimiters
  std::uint32_t flags = 0;
  // Where the rule came from, for error messages.
  std::string source;
  unsigned line = 0;
  // What kind of rule the importer saw ("native", "body", "rawbody", "full",
  // "uri", "header", "map").  Not part of the rule's identity.
  std::string kind = "native";
  // Maximum hit count reported for this rule (0 = use the scan default).
  // SpamAssassin rules get 1 (a rule counts once per message) unless
  // "tflags NAME multiple" is set; "maxhits=N" then caps them at N.
  unsigned max_hits = 0;
  // SpamAssassin header tests only ("header NAME Hdr !~ /re/"): the rule
  // hits when its pattern does NOT match the header.  The compiled pattern is
  // the positive one; the negation is applied per message (regexd/engine/
  // message.h), where a whole message tells an absent header from one that
  // did not match.
  bool negate = false;
  // SpamAssassin header tests only: "[if-unset: VALUE]", the text matched
  // when the message has no such header (without it: the empty string).
  std::optional<std::string> if_unset = std::nullopt;
};

// A SpamAssassin meta rule: an expression over other rules' hit values
// (regexd/engine/meta.h has the language).
struct MetaRule {
  std::string id;
  std::string expression;  // rules_matching(GLOB) already expanded
  std::string source;
  unsigned line = 0;
  // Switched off (SpamAssassin: score 0).  It never hits, and neither does
  // any meta that reads it: SpamAssassin runs a meta only once every meta it
  // reads has run, and a switched-off one never does (Check.pm
  // do_meta_tests).  Kept in the set for exactly that effect.
  bool disabled = false;
};

// One rejected rule or line.  to_string() gives "source:line: rule ID: message".
struct RuleError {
  std::string source;
  unsigned line = 0;
  std::string rule_id;  // may be empty when the line had no recognisable id
  std::string message;
  std::string to_string() const;
};

struct RuleSet {
  std::vector<Rule> rules;
  std::vector<RuleError> rejected;
  // Meta rules (SpamAssassin): evaluated per message over the rules' hits.
  std::vector<MetaRule> metas;
  // Lines that were understood but are not regex rules (eval, askdns, ...),
  // counted by kind.  Only importers fill this.
  std::map<std::string, std::size_t> skipped;
  // Tests defined by name that regexd cannot run (eval rules, network tests,
  // askdns, ...): name -> kind.  A meta that references one sees 0, exactly
  // as in SpamAssassin with those tests switched off.
  std::map<std::string, std::string> unsupported;

  enum class OnDuplicate {
    kReject,     // the later rule is rejected, naming the first definition (native format)
    kLaterWins,  // the later rule replaces the earlier in place (SpamAssassin's semantics
                 // across its .cf files)
  };
  // Appends `other` (rules, metas, rejected, skipped, unsupported), handling
  // an id present in both as `policy` says.
  void merge(RuleSet other, OnDuplicate policy = OnDuplicate::kReject);
};

// Which input syntax a rules file uses.
enum class RuleFormat { kNative, kSpamAssassin, kRspamdMap };
std::optional<RuleFormat> parse_rule_format(std::string_view name);
std::string_view rule_format_name(RuleFormat format);

// Native format, one rule per line:
//   # comment
//   <rule-id> <class> /<pattern>/<flags>
// The pattern runs from the first '/' after the class to the last '/' on the
// line; flags follow the last '/'.  Duplicate ids are rejected.
RuleSet parse_native(std::string_view text, std::string_view source);

struct SpamAssassinOptions {
  // When set, every body/rawbody/full/uri rule lands in this class instead of
  // the class named after its kind (body, rawbody, full, url).
  std::optional<std::string> force_class;
  // Include "header NAME Hdr =~ /re/" rules (class "header:Hdr").
  bool include_headers = true;
  // SpamAssassin's score set (0: no network tests, no Bayes; 1: network;
  // 2: Bayes; 3: both).  A rule or meta whose score in this set is 0 does not
  // run in SpamAssassin, so it is not imported (counted in skipped as
  // "score 0"); a meta that references it sees 0.
  unsigned score_set = 0;
  // What the configuration's conditionals ("ifplugin NAME", "if
  // plugin(NAME)", "if can(NAME)", "if (version >= N)", else, endif) test.
  // The defaults are SpamAssassin 4.0.1 as Debian 12 configures it: the
  // plugins its /etc/spamassassin/*.pre load, the Conf features and plugin
  // has_* methods of that version, "enable_compat welcomelist_blocklist".
  // "loadplugin"/"tryplugin" and "enable_compat" lines in the texts add to
  // them, so passing the .pre files along describes another installation.
  std::set<std::string> plugins = default_spamassassin_plugins();
  std::set<std::string> features = default_spamassassin_features();  // names can() is true for
  double version = 4.000001;                                          // what "version" compares
  static std::set<std::string> default_spamassassin_plugins();
  static std::set<std::string> default_spamassassin_features();
};

// SpamAssassin .cf syntax: body, rawbody, full, uri and header rules with
// /re/ or m{re} style delimiters, header tests with !~, exists: and
// [if-unset: VALUE], and meta rules.  eval and other rule kinds are counted in
// RuleSet::skipped and named in RuleSet::unsupported.  A name defined twice
// keeps the later definition, as SpamAssassin does.  score, tflags (multiple,
// maxhits=N) and the ReplaceTags plugin's settings (replace_tag, replace_pre,
// replace_inter, replace_post, replace_rules, replace_start, replace_end) are
// applied once the whole text is read, as SpamAssassin 4.0 does.  SpamAssassin
// 4's captured tags (a pattern using "%{NAME}") are rejected with a one-line
// reason: their value depends on another rule's match in the same message.
RuleSet parse_spamassassin(std::string_view text, std::string_view source,
                           const SpamAssassinOptions& options = {});

// Several .cf texts read as ONE configuration, in order, as SpamAssassin reads
// its rule directory: a later text may redefine a rule, and tflags and
// ReplaceTags settings in any text apply to rules of every text (SpamAssassin's
// 25_replace.cf defines the tags that 72_active.cf's rules use).
struct SourceText {
  std::string source;  // names the text in errors and in Rule::source
  std::string text;
};
RuleSet parse_spamassassin(const std::vector<SourceText>& texts, const SpamAssassinOptions& options = {});

// Reads the .cf files `paths` and parses them in order as one configuration
// (the vector overload above).  An unreadable file is one RuleError naming
// it; the other files still load.
RuleSet load_spamassassin_files(const std::vector<std::string>& paths, const SpamAssassinOptions& options = {});

// Rspamd regexp map: one "/re/flags" per line (an optional value may follow
// after whitespace), '#' comments.  Rule ids are "<stem>:<line>" where stem is
// the source's file name without directory and extension.
RuleSet parse_rspamd_map(std::string_view text, std::string_view source,
                         std::string_view cls);

// Parses `text` in `format`; `cls` as for load_rules_file().  `source`
// names the text in error messages.
RuleSet parse_rules(std::string_view text, std::string_view source, RuleFormat format,
                    std::string_view cls = {});

// Reads `path` and parses it in `format`.  `cls` is the class for Rspamd maps
// and the forced class for SpamAssassin files (empty: per-kind classes).
// A file that cannot be read yields one RuleError naming the file.
// To load several files, merge() them in order with
// duplicate_policy_for(format).
RuleSet load_rules_file(const std::string& path, RuleFormat format,
                        std::string_view cls = {});

// Reads `paths` in order as one rule set: SpamAssassin files as one
// configuration (see the vector overload of parse_spamassassin), the other
// formats each on its own, merged with duplicate_policy_for(format).  An
// unreadable file is one RuleError naming it; the other files still load.
RuleSet load_rules_files(const std::vector<std::string>& paths, RuleFormat format,
                         std::string_view cls = {});

// How ids repeated across files of one format are treated: SpamAssassin
// lets a later file redefine a rule; the other formats reject the repeat.
RuleSet::OnDuplicate duplicate_policy_for(RuleFormat format);

}  // namespace regexd::engine
