#include "regexd/cache/target.h"

#include <algorithm>
#include <bit>
#include <cstdio>

#include "regexd/cache/entry.h"
#include "regexd/cache/fs.h"

namespace regexd::cache {

namespace fs = std::filesystem;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The architectures regexd knows as targets.  `generic_native`: its regexd's
// own platform is the generic one (tune 0, features 0) whatever the CPU, so a
// generic entry is what it looks up.  Vectorscan 5.4.x on aarch64 has no
// runtime feature dispatch (hs_populate_platform answers tune 0, features 0 on
// every ARM CPU, SVE ones included); on x86_64 it reports the CPU's AVX2 /
// AVX512 bits and tune family.
struct KnownTarget {
  std::string_view name, alias;
  bool generic_native;
  const char* why_not;  // for !generic_native: why another machine cannot key its entries
};
constexpr KnownTarget kTargets[] = {
    {"aarch64", "arm64", true, nullptr},
    {"x86_64", "amd64", false,
     "an x86_64 regexd keys its entries by its own CPU's tune and features (AVX2, AVX512...), which "
     "another machine cannot know; run the prewarm on an x86_64 host of that CPU"},
};

bool same_tags(const PlatformTags& a, const PlatformTags& b) {
  return a.arch == b.arch && a.flavor == b.flavor && a.hs_version == b.hs_version &&
         a.pcre2_version == b.pcre2_version && a.tune == b.tune && a.features == b.features;
}

}  // namespace

Result<PlatformTags> target_tags(const PlatformTags& host, std::string_view target) {
  const KnownTarget* t = nullptr;
  for (const auto& k : kTargets)
    if (target == k.name || target == k.alias) t = &k;
  if (!t)
    return make_error(ErrorCode::kInvalidArgument,
                      "target '" + std::string(target) + "': unknown or unverified architecture (known: aarch64/arm64, "
                      "x86_64/amd64)");
  const std::string name(t->name);
  if (name == host.arch) return host;  // this machine's own entries
  // Vectorscan's serialized bytecode is the compiler's structures as they lie
  // in memory: only a little-endian producer can write them for the
  // little-endian targets above.
  if constexpr (std::endian::native != std::endian::little)
    return make_error(ErrorCode::kInvalidArgument, "target " + name + ": this build is big-endian");
  if (host.flavor != "vectorscan")
    return make_error(ErrorCode::kInvalidArgument,
                      "target " + name + ": needs a Vectorscan build; this is " + host.flavor + " " + host.hs_version +
                          " on " + host.arch + ", whose databases run on " + host.arch + " only");
  if (!t->generic_native) return make_error(ErrorCode::kInvalidArgument, "target " + name + ": " + t->why_not);
  PlatformTags out = host;
  out.arch = name;
  out.tune = 0;
  out.features = 0;
  return out;
}

TargetStore::TargetStore(PlatformTags tags, DirFd dir, LogFn log, std::chrono::milliseconds lock_timeout)
    : tags_(std::move(tags)), dir_(std::move(dir)), log_(std::move(log)), lock_timeout_(lock_timeout) {}

Result<std::unique_ptr<TargetStore>> TargetStore::open(fs::path root, PlatformTags tags, LogFn log,
                                                       std::chrono::milliseconds lock_timeout) {
  if (auto st = ensure_private_dir(root); !st) return st.error();
  auto root_dir = DirFd::open_private(root);
  if (!root_dir) return root_dir.error();
  if (auto st = ensure_private_dir(root / tags.dir_name()); !st) return st.error();
  auto dir = root_dir->open_subdir(tags.dir_name(), /*check_private=*/true);
  if (!dir) return dir.error();
  remove_stale_temp_files(*dir);
  return std::unique_ptr<TargetStore>(new TargetStore(std::move(tags), std::move(*dir), std::move(log), lock_timeout));
}

std::string TargetStore::problem(const std::string& name, const CacheKey& key, std::size_t* rules,
                                 std::string* entry) const {
  if (!dir_.exists(name)) return "no entry";
  auto bytes = read_file(dir_, name);
  if (!bytes) return bytes.error().message;
  auto info = inspect_entry(*bytes);
  if (!info) return info.error().message;
  if (!(info->key == key)) return "header key " + info->key.hex();
  if (info->key_scheme != kKeyScheme) return "key scheme " + std::to_string(info->key_scheme);
  if (!same_tags(info->tags, tags_)) return "header tags of platform " + info->tags.dir_name();
  *rules = info->rules;
  *entry = std::move(*bytes);
  return {};
}

Result<TargetResult> TargetStore::get_or_compile(const engine::RuleSet& rules, engine::CompileOptions options,
                                                 std::string_view rule_set_name) {
  auto t0 = std::chrono::steady_clock::now();
  TargetResult out;
  CacheKey key = compute_key(rules, options, tags_);
  const std::string name = key.hex() + ".rxdb";
  out.path = dir_.path_of(name);
  std::string entry;  // the present entry's bytes, as problem() read them
  auto present = [&]() -> Result<TargetResult> {
    out.source = TargetResult::Source::kPresent;
    // Published again: a board that missed it (or Redis lost it) gets it, and
    // its expiry starts over.
    out.published = publish(key, entry);
    out.ms = ms_since(t0);
    return out;
  };
  std::string why = problem(name, key, &out.rules, &entry);
  if (why.empty()) return present();
  auto lock = FileLock::acquire(dir_, key.hex() + ".lock", lock_timeout_);
  if (lock && problem(name, key, &out.rules, &entry).empty()) return present();
  if (why != "no entry") {
    std::string msg = out.path.string() + ": " + why + "; rewriting it";
    if (log_) log_(LogLevel::kWarning, msg);
    else std::fprintf(stderr, "regexd cache warning: %s\n", msg.c_str());
  }
  options.platform = engine::PlatformInfo{tags_.tune, tags_.features};
  auto compiled = engine::Scanner::compile(rules, options, &out.report);
  if (!compiled) return compiled.error();
  out.rules = (*compiled)->rule_count();
  auto bytes = encode_entry((*compiled)->compiled(), key, tags_, rule_set_name);
  if (!bytes) return bytes.error();
  if (auto st = write_file_atomic(dir_, name, *bytes); !st) return st.error();
  // A shared image made from an older entry of this key no longer matches.
  (void)dir_.remove(key.hex() + ".rxdimg");
  out.source = TargetResult::Source::kCompiled;
  out.published = publish(key, *bytes);
  out.ms = ms_since(t0);
  return out;
}

bool TargetStore::publish(const CacheKey& key, std::string_view bytes) {
  if (!remote_ || !remote_->options().signing_key) return false;
  const auto before = remote_->stats().published.load();
  remote_->publish(tags_.dir_name(), key, bytes);
  return remote_->stats().published.load() > before;
}

}  // namespace regexd::cache
