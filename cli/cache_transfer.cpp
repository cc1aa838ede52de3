#include "cache_transfer.h"

#include <cstdio>
#include <filesystem>

#include "regexd/cache/archive.h"
#include "regexd/cache/key.h"
#include "regexd/cache/signing.h"
#include "regexd/cache/store.h"

namespace regexd::cli {

namespace fs = std::filesystem;

namespace {

constexpr int kExitUsage = 1, kExitRuntime = 3;

int fail(const std::string& msg, int rc = kExitRuntime) {
  std::fprintf(stderr, "regexctl: %s\n", msg.c_str());
  return rc;
}

int keygen(const TransferCommands& t) {
  fs::path secret = t.key_prefix + ".key", pub = t.key_prefix + ".pub";
  std::error_code ec;
  if (!t.force && (fs::exists(secret, ec) || fs::exists(pub, ec)))
    return fail(secret.string() + " or " + pub.string() + " exists; --force replaces them", kExitUsage);
  auto kp = cache::generate_key_pair();
  if (!kp) return fail(kp.error().message);
  if (auto st = cache::write_secret_key(secret, kp->secret); !st) return fail(st.error().message);
  if (auto st = cache::write_public_key(pub, kp->public_key); !st) return fail(st.error().message);
  std::printf("secret key: %s (mode 0600; the daemon's [remote] signing_key)\npublic key: %s (trusted_keys of every host)\nkey id: %s\n",
              secret.c_str(), pub.c_str(), kp->public_key.id().c_str());
  return 0;
}

fs::path cache_root(const TransferCommands& t) { return t.cache_dir.empty() ? cache::default_cache_root() : fs::path(t.cache_dir); }

int export_archive(const TransferCommands& t) {
  auto key = cache::read_secret_key(t.secret_key);
  if (!key) return fail(key.error().message);
  std::string platform = t.platform;
  if (platform.empty()) {
    const auto& tags = cache::current_tags();
    if (!tags) return fail(tags.error().message);
    platform = tags->dir_name();
  }
  fs::path dir = cache_root(t) / platform;
  auto sum = cache::export_archive(dir, t.archive, *key);
  if (!sum) return fail(sum.error().message);
  for (const auto& s : sum->skipped) std::fprintf(stderr, "regexctl: skipped %s\n", s.c_str());
  std::printf("exported %zu entries of %s (%llu bytes, archive %llu bytes) to %s, signed by key %s\n", sum->entries,
              sum->platform.c_str(), static_cast<unsigned long long>(sum->entry_bytes),
              static_cast<unsigned long long>(sum->archive_bytes), t.archive.c_str(), sum->signer.id().c_str());
  return 0;
}

int import_archive(const TransferCommands& t) {
  std::vector<cache::PublicKey> trusted;
  for (const auto& k : t.trusted) {
    auto key = cache::parse_public_key(k);
    if (!key) return fail(key.error().message, kExitUsage);
    trusted.push_back(*key);
  }
  fs::path root = cache_root(t);
  auto sum = cache::import_archive(t.archive, root, trusted);
  if (!sum) return fail(sum.error().message);
  std::printf("imported %zu entries of %s into %s, signed by key %s\n", sum->entries, sum->platform.c_str(),
              (root / sum->platform).c_str(), sum->signer.id().c_str());
  return 0;
}

}  // namespace

void add_transfer_commands(CLI::App& app, TransferCommands& t) {
  t.keygen = app.add_subcommand("keygen", "write an Ed25519 key pair for signing cache entries (PREFIX.key, PREFIX.pub)");
  t.keygen->add_option("prefix", t.key_prefix, "path prefix of the two files")->required();
  t.keygen->add_flag("--force", t.force, "replace existing files");

  t.export_cmd = app.add_subcommand("export", "write a platform directory of a cache as one signed archive");
  t.export_cmd->add_option("--cache", t.cache_dir, "cache root (default: the default root)");
  t.export_cmd->add_option("--platform", t.platform, "platform directory name (default: this host's)");
  t.export_cmd->add_option("--key", t.secret_key, "secret key file (regexctl keygen)")->required();
  t.export_cmd->add_option("-o,--output", t.archive, "archive file to write")->required();

  t.import_cmd = app.add_subcommand("import", "verify a signed archive and write its entries into a cache");
  t.import_cmd->add_option("archive", t.archive, "archive file (regexctl export)")->required();
  t.import_cmd->add_option("--cache", t.cache_dir, "cache root (default: the default root)");
  t.import_cmd->add_option("--trusted", t.trusted, "trusted public key: a .pub file or 64 hex digits (repeatable)")
      ->required();
}

bool run_transfer_command(const TransferCommands& t, int* rc) {
  if (*t.keygen) *rc = keygen(t);
  else if (*t.export_cmd) *rc = export_archive(t);
  else if (*t.import_cmd) *rc = import_archive(t);
  else return false;
  return true;
}

}  // namespace regexd::cli
