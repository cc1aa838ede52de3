#include "regexd/cache/entry.h"

#include <xxhash.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <span>

#include "entry_generated.h"
#include "regexd/engine/pcre2_programs.h"
#include "regexd/engine/serialize.h"

namespace regexd::cache {
namespace {

using engine::CompiledSet;
using engine::Tier;

constexpr char kMagic[8] = {'R', 'X', 'D', 'C', 'A', 'C', 'H', 'E'};
constexpr char kImageMagic[8] = {'R', 'X', 'D', 'I', 'M', 'A', 'G', 'E'};
constexpr std::size_t kPrologue = kEntryPrologue;
constexpr std::size_t kEpilogue = 16;
constexpr std::size_t kImageAlign = 64;

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_hash(std::string& out, XXH128_hash_t h) {
  put_u64(out, h.high64);
  put_u64(out, h.low64);
}
std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

Error corrupt(std::string msg) { return make_error(ErrorCode::kCorrupt, std::move(msg)); }
Error mismatch(std::string msg) { return make_error(ErrorCode::kMismatch, std::move(msg)); }

std::string hash_hex(std::uint64_t hi, std::uint64_t lo) { return CacheKey{hi, lo}.hex(); }

// Steps 1-6 of the validation list: everything that needs no knowledge of
// the running process.  Returns the verified header.
Result<const fb::Header*> check_structure(std::string_view bytes) {
  if (bytes.size() < kPrologue + kEpilogue + 8)
    return corrupt("truncated: " + std::to_string(bytes.size()) + " bytes is smaller than any entry");
  if (std::memcmp(bytes.data(), kMagic, 8) != 0) return corrupt("not a regexd cache entry (bad magic)");
  std::uint32_t version = get_u32(bytes.data() + 8);
  if (version != kFormatVersion)
    return mismatch("entry format version " + std::to_string(version) + ", this regexd reads " +
                    std::to_string(kFormatVersion));
  std::uint32_t hlen = get_u32(bytes.data() + 12);
  if (hlen == 0 || hlen > kMaxHeaderSize || kPrologue + align_up(hlen, 8) + kEpilogue > bytes.size())
    return corrupt("header length " + std::to_string(hlen) + " does not fit a " + std::to_string(bytes.size()) +
                   "-byte file");
  std::size_t body = bytes.size() - kEpilogue;
  XXH128_hash_t h = XXH3_128bits(bytes.data(), body);
  if (h.high64 != get_u64(bytes.data() + body) || h.low64 != get_u64(bytes.data() + body + 8))
    return corrupt("checksum mismatch (file damaged or truncated)");
  const auto* hdr_bytes = reinterpret_cast<const std::uint8_t*>(bytes.data() + kPrologue);
  flatbuffers::Verifier verifier(hdr_bytes, hlen);
  if (!fb::VerifyHeaderBuffer(verifier)) return corrupt("header fails FlatBuffers verification");
  const fb::Header* hdr = fb::GetHeader(hdr_bytes);
  std::size_t payload_at = kPrologue + align_up(hlen, 8);
  if (payload_at + hdr->payload_size() + kEpilogue != bytes.size())
    return corrupt("payload size in header does not match the file size");
  return hdr;
}

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

// A class's database blobs in a fixed order, the record order of shared
// images: bytes_db, utf8_db (either may be null), then a split class's other
// parts (format 3).
std::vector<const fb::Blob*> class_blobs(const fb::ClassEntry* ce) {
  std::vector<const fb::Blob*> out{ce->bytes_db(), ce->utf8_db()};
  if (ce->more_dbs())
    for (const fb::Blob* b : *ce->more_dbs()) out.push_back(b);
  return out;
}

PlatformTags tags_of(const fb::Header* h) {
  PlatformTags t;
  t.arch = str(h->arch());
  t.flavor = str(h->flavor());
  t.hs_version = str(h->hs_version());
  t.pcre2_version = str(h->pcre2_version());
  t.tune = h->platform_tune();
  t.features = h->platform_features();
  return t;
}

// Step 7: the tags the running process must share with the producer.
Status check_tags(const fb::Header* h, const PlatformTags& want) {
  PlatformTags got = tags_of(h);
  if (h->key_scheme() != kKeyScheme) return mismatch("key scheme " + std::to_string(h->key_scheme()));
  if (got.arch != want.arch) return mismatch("built for architecture " + got.arch + ", this is " + want.arch);
  if (got.flavor != want.flavor) return mismatch("built by " + got.flavor + ", this is " + want.flavor);
  if (got.hs_version != want.hs_version)
    return mismatch("built by " + got.flavor + " " + got.hs_version + ", this is " + want.hs_version);
  if (got.tune != want.tune || got.features != want.features)
    return mismatch("built for CPU platform " + engine::PlatformInfo{got.tune, got.features}.describe() +
                    ", this is " + engine::PlatformInfo{want.tune, want.features}.describe());
  if (got.pcre2_version != want.pcre2_version)
    return mismatch("built with PCRE2 " + got.pcre2_version + ", this is " + want.pcre2_version);
  return {};
}

// Step 9: every index and blob in range, every rule in exactly one list.
// A blob is 8-aligned, not empty and wholly inside the payload.
bool inside_payload(const fb::Header* h, const fb::Blob* b) {
  return b->offset() % 8 == 0 && b->size() != 0 && b->offset() <= h->payload_size() &&
         b->size() <= h->payload_size() - b->offset();
}

Status check_layout(const fb::Header* h) {
  const auto* rules = h->rules();
  const auto* classes = h->classes();
  if (!rules || !classes) return corrupt("header lacks rules or classes");
  std::size_t nrules = rules->size();
  std::vector<std::uint8_t> seen(nrules, 0);
  for (flatbuffers::uoffset_t c = 0; c < classes->size(); ++c) {
    const fb::ClassEntry* ce = classes->Get(c);
    if (!ce || !ce->cls()) return corrupt("class " + std::to_string(c) + " has no name");
    for (const fb::Blob* b : class_blobs(ce))
      if (b && !inside_payload(h, b))
        return corrupt("class " + ce->cls()->str() + ": database blob outside the payload");
    auto visit = [&](const flatbuffers::Vector<std::uint32_t>* list, auto want) -> bool {
      if (!list) return true;
      for (auto id : *list) {
        if (id >= nrules || seen[id]) return false;
        seen[id] = 1;
        const fb::Rule* r = rules->Get(id);
        if (!r || r->class_index() != c || r->tier() > engine::kMaxTier) return false;
        if (!want(static_cast<Tier>(r->tier()))) return false;
      }
      return true;
    };
    if ((ce->bytes_rules() && ce->bytes_rules()->size() && !ce->bytes_db()) ||
        (ce->utf8_rules() && ce->utf8_rules()->size() && !ce->utf8_db()))
      return corrupt("class " + ce->cls()->str() + ": rules listed without a database");
    auto hs = [](Tier t) { return engine::is_hs_tier(t); };
    auto pcre2 = [](Tier t) { return t == Tier::kPcre2; };
    auto re2 = [](Tier t) { return engine::is_re2_tier(t); };
    if (!visit(ce->bytes_rules(), hs) || !visit(ce->utf8_rules(), hs) || !visit(ce->pcre2_rules(), pcre2) ||
        !visit(ce->re2_rules(), re2) || !visit(ce->more_rules(), hs))
      return corrupt("class " + ce->cls()->str() + ": inconsistent rule lists");
    // A split class: one database per part after bytes_db, each part's
    // rules in more_rules, none empty.
    std::size_t nmore = ce->more_dbs() ? ce->more_dbs()->size() : 0;
    std::size_t nparts = ce->more_sizes() ? ce->more_sizes()->size() : 0;
    if (nmore != nparts)
      return corrupt("class " + ce->cls()->str() + ": " + std::to_string(nparts) + " split parts but " +
                     std::to_string(nmore) + " split databases (a part's database is missing)");
    if (nmore && !ce->bytes_db()) return corrupt("class " + ce->cls()->str() + ": split parts without a first database");
    std::size_t in_parts = 0;
    for (std::size_t k = 0; k < nparts; ++k) {
      auto size = ce->more_sizes()->Get(static_cast<flatbuffers::uoffset_t>(k));
      if (size == 0 || size > nrules)
        return corrupt("class " + ce->cls()->str() + ": split part " + std::to_string(k + 2) + " of " +
                       std::to_string(size) + " rules");
      in_parts += size;
    }
    if (in_parts != (ce->more_rules() ? ce->more_rules()->size() : 0))
      return corrupt("class " + ce->cls()->str() + ": split part sizes do not add up to its split rules");
    // The RE2 sets partition re2_rules exactly, none empty.
    std::size_t in_sets = 0;
    if (ce->re2_set_sizes())
      for (auto k : *ce->re2_set_sizes()) {
        if (k == 0 || k > nrules) return corrupt("class " + ce->cls()->str() + ": an RE2 set of " + std::to_string(k) + " rules");
        in_sets += k;
      }
    if (in_sets != (ce->re2_rules() ? ce->re2_rules()->size() : 0))
      return corrupt("class " + ce->cls()->str() + ": RE2 set sizes do not add up to its RE2 rules");
  }
  for (std::size_t i = 0; i < nrules; ++i) {
    const fb::Rule* r = rules->Get(static_cast<flatbuffers::uoffset_t>(i));
    if (!seen[i] || !r->id() || !r->cls() || !r->pattern()) return corrupt("rule " + std::to_string(i) + " is not placed");
  }
  if (const fb::Blob* b = h->pcre2_programs(); b && !inside_payload(h, b))
    return corrupt("PCRE2 programs outside the payload");
  // Classes must be sorted, as the scanner binary-searches them.
  for (flatbuffers::uoffset_t c = 1; c < classes->size(); ++c)
    if (!(classes->Get(c - 1)->cls()->str() < classes->Get(c)->cls()->str())) return corrupt("classes not sorted");
  return {};
}

std::string_view blob_bytes(std::string_view bytes, const fb::Header*, const fb::Blob* b) {
  std::uint32_t hlen = get_u32(bytes.data() + 12);
  std::size_t payload_at = kPrologue + align_up(hlen, 8);
  return bytes.substr(payload_at + b->offset(), b->size());
}

}  // namespace

Result<std::string> encode_entry(const CompiledSet& set, const CacheKey& key, const PlatformTags& tags,
                                 std::string_view rule_set_name) {
  flatbuffers::FlatBufferBuilder fbb(64 * 1024);
  std::string payload;
  auto add_blob = [&](const engine::HsDatabasePtr& db) -> Result<flatbuffers::Offset<fb::Blob>> {
    if (!db) return flatbuffers::Offset<fb::Blob>();
    auto bytes = engine::serialize_database(db.get());
    if (!bytes) return bytes.error();
    auto info = engine::serialized_database_info(*bytes);
    if (!info) return info.error();
    payload.resize(align_up(payload.size(), 8), '\0');
    std::uint64_t off = payload.size();
    payload += *bytes;
    return fb::CreateBlob(fbb, off, bytes->size(), fbb.CreateString(*info));
  };
  std::vector<flatbuffers::Offset<fb::Rule>> rules;
  for (const auto& cr : set.rules) {
    const auto& r = cr.rule;
    rules.push_back(fb::CreateRule(fbb, fbb.CreateString(r.id), fbb.CreateString(r.cls), fbb.CreateString(r.pattern),
                                   r.flags, r.max_hits, static_cast<std::uint8_t>(cr.tier), cr.class_index,
                                   fbb.CreateString(r.source), r.line, cr.cost.hs_ns, cr.cost.re2_ns,
                                   cr.cost.pcre2_ns,
                                   cr.re2_pattern.empty() ? 0 : fbb.CreateString(cr.re2_pattern), cr.confirm_min,
                                   cr.confirm_max));
  }
  std::vector<flatbuffers::Offset<fb::ClassEntry>> classes;
  for (const auto& c : set.classes) {
    auto b = add_blob(c.bytes_db);
    if (!b) return b.error();
    auto u = add_blob(c.utf8_db);
    if (!u) return u.error();
    std::vector<std::uint32_t> re2_rules, re2_sizes;
    for (const auto& part : c.re2_sets) {
      re2_rules.insert(re2_rules.end(), part->rules().begin(), part->rules().end());
      re2_sizes.push_back(static_cast<std::uint32_t>(part->rules().size()));
    }
    std::vector<flatbuffers::Offset<fb::Blob>> more_dbs;
    std::vector<std::uint32_t> more_rules, more_sizes;
    for (const auto& part : c.bytes_more) {
      if (!part.db || part.rules.empty())
        return make_error(ErrorCode::kInternal, "class " + c.cls + ": a split part without a database or rules");
      auto m = add_blob(part.db);
      if (!m) return m.error();
      more_dbs.push_back(*m);
      more_rules.insert(more_rules.end(), part.rules.begin(), part.rules.end());
      more_sizes.push_back(static_cast<std::uint32_t>(part.rules.size()));
    }
    classes.push_back(fb::CreateClassEntry(fbb, fbb.CreateString(c.cls), *b, *u, fbb.CreateVector(c.bytes_rules),
                                           fbb.CreateVector(c.utf8_rules), fbb.CreateVector(c.pcre2_rules),
                                           c.compile_ms, fbb.CreateVector(re2_rules), fbb.CreateVector(re2_sizes),
                                           more_dbs.empty() ? 0 : fbb.CreateVector(more_dbs),
                                           more_dbs.empty() ? 0 : fbb.CreateVector(more_rules),
                                           more_dbs.empty() ? 0 : fbb.CreateVector(more_sizes)));
  }
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Rejection>>> rejected;
  if (set.rejected) {
    std::vector<flatbuffers::Offset<fb::Rejection>> v;
    for (const auto& r : *set.rejected) v.push_back(fb::CreateRejection(fbb, r.index, fbb.CreateString(r.message)));
    rejected = fbb.CreateVector(v);
  }
  // The PCRE2 programs, so that a load decodes instead of compiling them
  // (pcre2_programs.h; a warm start's first scans need ~190 of them).
  auto programs = engine::serialize_pcre2_programs(set);
  if (!programs) return programs.error();
  flatbuffers::Offset<fb::Blob> programs_blob;
  flatbuffers::Offset<flatbuffers::Vector<std::uint32_t>> program_rules;
  std::uint64_t programs_hash = 0;
  if (!programs->bytes.empty()) {
    programs_hash = XXH3_64bits(programs->bytes.data(), programs->bytes.size());
    payload.resize(align_up(payload.size(), 8), '\0');
    std::uint64_t off = payload.size();
    payload += programs->bytes;
    programs_blob = fb::CreateBlob(fbb, off, programs->bytes.size(), fbb.CreateString(tags.pcre2_version));
    program_rules = fbb.CreateVector(programs->rules);
  }
  auto hdr = fb::CreateHeader(
      fbb, kKeyScheme, key.hi, key.lo, fbb.CreateString(tags.arch), fbb.CreateString(tags.flavor),
      fbb.CreateString(tags.hs_version), tags.tune, tags.features, fbb.CreateString(tags.pcre2_version),
      fbb.CreateString(std::string("regexd ") + REGEXD_VERSION), static_cast<std::int64_t>(std::time(nullptr)),
      set.pcre2_match_limit, set.pcre2_depth_limit, fbb.CreateVector(rules), fbb.CreateVector(classes),
      payload.size(), fbb.CreateString(std::string(rule_set_name)), rejected, programs_blob, program_rules,
      programs_hash);
  fb::FinishHeaderBuffer(fbb, hdr);

  std::string out;
  out.reserve(kPrologue + fbb.GetSize() + 8 + payload.size() + kEpilogue);
  out.append(kMagic, 8);
  put_u32(out, kFormatVersion);
  put_u32(out, fbb.GetSize());
  out.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  out.resize(align_up(out.size(), 8), '\0');
  out += payload;
  put_hash(out, XXH3_128bits(out.data(), out.size()));
  return out;
}

std::size_t entry_head_size(std::string_view prologue) {
  if (prologue.size() < kPrologue || std::memcmp(prologue.data(), kMagic, 8) != 0 ||
      get_u32(prologue.data() + 8) != kFormatVersion)
    return 0;
  std::uint32_t hlen = get_u32(prologue.data() + 12);
  return hlen == 0 || hlen > kMaxHeaderSize ? 0 : kPrologue + hlen;
}

Result<std::string> peek_rule_set_name(std::string_view head) {
  std::size_t n = entry_head_size(head);
  if (n == 0 || head.size() < n) return corrupt("not the head of a regexd cache entry of this format");
  const auto* hdr_bytes = reinterpret_cast<const std::uint8_t*>(head.data() + kPrologue);
  flatbuffers::Verifier verifier(hdr_bytes, n - kPrologue);
  if (!fb::VerifyHeaderBuffer(verifier)) return corrupt("header fails FlatBuffers verification");
  return str(fb::GetHeader(hdr_bytes)->rule_set_name());
}

Result<EntryInfo> inspect_entry(std::string_view bytes) {
  auto hdr = check_structure(bytes);
  if (!hdr) return hdr.error();
  const fb::Header* h = *hdr;
  if (auto st = check_layout(h); !st) return st.error();
  EntryInfo e;
  e.format_version = get_u32(bytes.data() + 8);
  e.key_scheme = h->key_scheme();
  e.key = {h->key_hi(), h->key_lo()};
  e.tags = tags_of(h);
  e.producer = str(h->producer());
  e.rule_set_name = str(h->rule_set_name());
  e.created_unix = h->created_unix();
  e.pcre2_match_limit = h->pcre2_match_limit();
  e.pcre2_depth_limit = h->pcre2_depth_limit();
  e.rules = h->rules()->size();
  for (const auto* ce : *h->classes()) {
    EntryInfo::Class c;
    c.cls = ce->cls()->str();
    c.compile_ms = ce->compile_ms();
    if (ce->bytes_db()) c.bytes_db_size = ce->bytes_db()->size(), c.bytes_db_info = str(ce->bytes_db()->info());
    if (ce->utf8_db()) c.utf8_db_size = ce->utf8_db()->size(), c.utf8_db_info = str(ce->utf8_db()->info());
    if (ce->more_dbs())
      for (const fb::Blob* b : *ce->more_dbs()) c.more_db_sizes.push_back(b->size());
    for (const auto* list : {ce->bytes_rules(), ce->utf8_rules(), ce->more_rules()})
      if (list)
        for (auto id : *list) (h->rules()->Get(id)->tier() == 0 ? c.native : c.prefilter)++;
    c.pcre2 = ce->pcre2_rules() ? ce->pcre2_rules()->size() : 0;
    if (ce->re2_rules())
      for (auto id : *ce->re2_rules())
        (h->rules()->Get(id)->tier() == static_cast<std::uint8_t>(Tier::kRe2) ? c.re2 : c.re2_prefilter)++;
    c.re2_sets = ce->re2_set_sizes() ? ce->re2_set_sizes()->size() : 0;
    e.classes.push_back(std::move(c));
  }
  e.file_size = bytes.size();
  e.header_size = get_u32(bytes.data() + 12);
  e.payload_size = h->payload_size();
  e.checksum_hex = entry_checksum(bytes);
  if (h->pcre2_programs()) {
    e.pcre2_programs = h->pcre2_program_rules() ? h->pcre2_program_rules()->size() : 0;
    e.pcre2_programs_size = h->pcre2_programs()->size();
  }
  return e;
}

std::string entry_checksum(std::string_view bytes) {
  if (bytes.size() < kEpilogue) return {};
  const char* p = bytes.data() + bytes.size() - kEpilogue;
  return hash_hex(get_u64(p), get_u64(p + 8));
}

Result<std::unique_ptr<CompiledSet>> decode_entry(std::string_view bytes, const CacheKey& expected_key,
                                                  const PlatformTags& tags, const DecodeOptions& options) {
  auto hdr = check_structure(bytes);
  if (!hdr) return hdr.error();
  const fb::Header* h = *hdr;
  if (auto st = check_tags(h, tags); !st) return st.error();
  if (CacheKey{h->key_hi(), h->key_lo()} != expected_key)
    return mismatch("entry is for key " + hash_hex(h->key_hi(), h->key_lo()) + ", not " + expected_key.hex());
  if (auto st = check_layout(h); !st) return st.error();

  auto set = std::make_unique<CompiledSet>();
  set->pcre2_match_limit = h->pcre2_match_limit();
  set->pcre2_depth_limit = h->pcre2_depth_limit();
  // Taken as written: the loader checks them against the rule set it has
  // (as many as the rules the entry lacks, distinct and in range; otherwise
  // it compiles the missing rules itself instead).
  if (h->rejected()) {
    set->rejected.emplace();
    for (const fb::Rejection* r : *h->rejected()) set->rejected->push_back({r->index(), str(r->message())});
  }
  set->rules.reserve(h->rules()->size());
  for (const fb::Rule* r : *h->rules()) {
    engine::CompiledRule cr;
    cr.rule.id = r->id()->str();
    cr.rule.cls = r->cls()->str();
    cr.rule.pattern = r->pattern()->str();
    cr.rule.flags = r->flags();
    cr.rule.max_hits = r->max_hits();
    cr.rule.source = str(r->source());
    cr.rule.line = r->line();
    cr.tier = static_cast<Tier>(r->tier());
    cr.class_index = r->class_index();
    cr.cost = {r->cost_hs_ns(), r->cost_re2_ns(), r->cost_pcre2_ns()};
    if (engine::is_re2_tier(cr.tier)) cr.re2_pattern = str(r->re2_pattern());
    // A window only for a prefilter, and only a consistent one: anything
    // else confirms on the whole buffer, which is always exact.
    if (cr.tier == Tier::kPrefilter && r->confirm_max() >= r->confirm_min()) {
      cr.confirm_min = r->confirm_min();
      cr.confirm_max = r->confirm_max();
    }
    set->rules.push_back(std::move(cr));
  }
  auto to_vec = [](const flatbuffers::Vector<std::uint32_t>* v) {
    return v ? std::vector<std::uint32_t>(v->begin(), v->end()) : std::vector<std::uint32_t>();
  };
  for (const fb::ClassEntry* ce : *h->classes()) {
    engine::ClassDatabases cdb;
    cdb.cls = ce->cls()->str();
    cdb.bytes_rules = to_vec(ce->bytes_rules());
    cdb.utf8_rules = to_vec(ce->utf8_rules());
    cdb.pcre2_rules = to_vec(ce->pcre2_rules());
    if (ce->re2_set_sizes()) {
      auto re2_rules = to_vec(ce->re2_rules());
      std::size_t at = 0;
      for (auto k : *ce->re2_set_sizes()) {  // check_layout: the sizes add up
        cdb.re2_sets.push_back(std::make_unique<engine::Re2Partition>(
            std::vector<std::uint32_t>(re2_rules.begin() + at, re2_rules.begin() + at + k)));
        at += k;
      }
    }
    cdb.compile_ms = ce->compile_ms();
    if (ce->more_dbs()) {  // check_layout: as many parts as databases, sizes add up
      auto more_rules = to_vec(ce->more_rules());
      std::size_t at = 0;
      for (auto k : *ce->more_sizes()) {
        cdb.bytes_more.push_back({nullptr, std::vector<std::uint32_t>(more_rules.begin() + at, more_rules.begin() + at + k)});
        at += k;
      }
    }
    std::vector<std::pair<const fb::Blob*, engine::HsDatabasePtr*>> slots{{ce->bytes_db(), &cdb.bytes_db},
                                                                          {ce->utf8_db(), &cdb.utf8_db}};
    for (std::size_t k = 0; k < cdb.bytes_more.size(); ++k)
      slots.emplace_back(ce->more_dbs()->Get(static_cast<flatbuffers::uoffset_t>(k)), &cdb.bytes_more[k].db);
    // Step 10 then 11: the library's own recognition, then deserialization.
    for (std::size_t s = 0; s < slots.size(); ++s) {
      auto [blob, slot] = slots[s];
      if (!blob) continue;
      const std::string which = s == 0 ? "database" : s == 1 ? "UTF-8 database" : "split part " + std::to_string(s);
      std::string_view b = blob_bytes(bytes, h, blob);
      auto info = engine::serialized_database_info(b);
      if (!info) return corrupt("class " + cdb.cls + ": " + which + ": " + info.error().message);
      if (*info != str(blob->info()))
        return mismatch("class " + cdb.cls + ": " + which + " is '" + *info + "', recorded '" + str(blob->info()) + "'");
      if (options.skip_databases) continue;
      auto db = engine::deserialize_database(b);
      if (!db) return make_error(db.error().code, "class " + cdb.cls + ": " + which + ": " + db.error().message);
      *slot = std::move(*db);
    }
    set->classes.push_back(std::move(cdb));
  }
  set->init_pcre2_slots();
  if (const fb::Blob* pb = h->pcre2_programs()) {  // check_layout: inside the payload
    std::span<const std::uint32_t> ids;
    if (const auto* v = h->pcre2_program_rules()) ids = {v->data(), v->size()};
    const std::string_view programs = blob_bytes(bytes, h, pb);
    if (XXH3_64bits(programs.data(), programs.size()) != h->pcre2_programs_hash())
      return corrupt("PCRE2 programs fail their checksum");
    if (auto st = engine::adopt_pcre2_programs(*set, programs, ids); !st)
      return st.error().code == ErrorCode::kMismatch ? mismatch(st.error().message) : corrupt(st.error().message);
  }
  return set;
}

Result<std::string> build_image(std::string_view entry_bytes) {
  auto hdr = check_structure(entry_bytes);
  if (!hdr) return hdr.error();
  const fb::Header* h = *hdr;
  // Blob bounds and class tables are read below: never on an unchecked header.
  if (auto st = check_layout(h); !st) return st.error();
  struct Rec {
    std::uint32_t cls, which;
    std::string_view blob;
    std::size_t size = 0, offset = 0;
  };
  std::vector<Rec> recs;
  for (flatbuffers::uoffset_t c = 0; c < h->classes()->size(); ++c) {
    const fb::ClassEntry* ce = h->classes()->Get(c);
    std::uint32_t which = 0;
    for (const fb::Blob* b : class_blobs(ce)) {
      if (b) {
        Rec r{c, which, blob_bytes(entry_bytes, h, b)};
        auto n = engine::deserialized_size(r.blob);
        if (!n) return n.error();
        r.size = *n;
        recs.push_back(r);
      }
      ++which;
    }
  }
  std::size_t at = align_up(32 + 24 * recs.size(), kImageAlign);
  for (auto& r : recs) {
    r.offset = at;
    at = align_up(at + r.size, kImageAlign);
  }
  std::string out;
  out.append(kImageMagic, 8);
  put_u32(out, kImageVersion);
  put_u32(out, static_cast<std::uint32_t>(recs.size()));
  const char* ck = entry_bytes.data() + entry_bytes.size() - kEpilogue;
  out.append(ck, kEpilogue);
  for (const auto& r : recs) {
    put_u32(out, r.cls);
    put_u32(out, r.which);
    put_u64(out, r.offset);
    put_u64(out, r.size);
  }
  out.resize(at, '\0');
  // A deserialized database is only valid at an address with the same
  // remainder mod 64 as where it was deserialized: Hyperscan places the
  // bytecode at the next cache-line boundary after its header and stores that
  // distance in the database.  Readers map the file page-aligned and each
  // record starts 64-aligned, so deserialize at a 64-aligned address too
  // (std::string's storage is only 16-aligned), then copy the bytes in.
  for (const auto& r : recs) {
    std::unique_ptr<char, decltype(&std::free)> tmp(
        static_cast<char*>(std::aligned_alloc(kImageAlign, align_up(r.size, kImageAlign))), &std::free);
    if (!tmp) return make_error(ErrorCode::kResourceLimit, "out of memory building a shared image");
    auto db = engine::deserialize_database_at(r.blob, tmp.get());
    if (!db) return db.error();
    std::memcpy(out.data() + r.offset, tmp.get(), r.size);
  }
  put_hash(out, XXH3_128bits(out.data(), out.size()));
  return out;
}

Status attach_image(CompiledSet& set, std::string_view entry_bytes, std::string_view image,
                    std::shared_ptr<const void> keepalive) {
  if (image.size() < 32 + kEpilogue || std::memcmp(image.data(), kImageMagic, 8) != 0)
    return corrupt("shared image: bad magic or size");
  if (get_u32(image.data() + 8) != kImageVersion) return corrupt("shared image: unknown version");
  std::size_t body = image.size() - kEpilogue;
  XXH128_hash_t h = XXH3_128bits(image.data(), body);
  if (h.high64 != get_u64(image.data() + body) || h.low64 != get_u64(image.data() + body + 8))
    return corrupt("shared image: checksum mismatch");
  if (std::memcmp(image.data() + 16, entry_bytes.data() + entry_bytes.size() - kEpilogue, kEpilogue) != 0)
    return corrupt("shared image: made from another version of the entry");
  std::uint32_t n = get_u32(image.data() + 12);
  if (32 + 24ull * n > body) return corrupt("shared image: record table outside the file");
  auto hdr = check_structure(entry_bytes);
  if (!hdr) return hdr.error();
  // Per class, in class_blobs() order.
  std::vector<std::vector<const fb::Blob*>> blobs;
  std::vector<std::vector<engine::HsDatabasePtr>> dbs;
  for (std::size_t c = 0; c < set.classes.size(); ++c) {
    blobs.push_back(class_blobs((*hdr)->classes()->Get(static_cast<flatbuffers::uoffset_t>(c))));
    dbs.emplace_back(blobs.back().size());
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    const char* rec = image.data() + 32 + 24 * i;
    std::uint32_t cls = get_u32(rec), which = get_u32(rec + 4);
    std::uint64_t off = get_u64(rec + 8), size = get_u64(rec + 16);
    if (cls >= set.classes.size() || which >= blobs[cls].size() || off % kImageAlign || off > body ||
        size > body - off)
      return corrupt("shared image: record " + std::to_string(i) + " out of range");
    const fb::Blob* blob = blobs[cls][which];
    if (!blob) return corrupt("shared image: record for a database the entry does not have");
    auto want = engine::deserialized_size(blob_bytes(entry_bytes, *hdr, blob));
    if (!want || *want != size) return corrupt("shared image: database size differs from the entry's");
    auto db = engine::borrow_database_image(image.data() + off, size);
    if (!db) return db.error();
    dbs[cls][which] = std::move(*db);
  }
  for (std::size_t c = 0; c < set.classes.size(); ++c) {
    if (set.classes[c].bytes_more.size() + 2 != blobs[c].size())
      return corrupt("shared image: class " + set.classes[c].cls + " has other split parts than its entry");
    for (std::size_t w = 0; w < blobs[c].size(); ++w)
      if (blobs[c][w] && !dbs[c][w]) return corrupt("shared image: a database is missing");
  }
  for (std::size_t c = 0; c < set.classes.size(); ++c) {
    set.classes[c].bytes_db = std::move(dbs[c][0]);
    set.classes[c].utf8_db = std::move(dbs[c][1]);
    for (std::size_t k = 0; k < set.classes[c].bytes_more.size(); ++k)
      set.classes[c].bytes_more[k].db = std::move(dbs[c][2 + k]);
  }
  set.keepalive = std::move(keepalive);
  return {};
}

}  // namespace regexd::cache
