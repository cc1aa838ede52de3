// Ed25519 keys and signed ("sealed") cache entries: how compiled databases
// travel between hosts (the Redis tier, export/import archives).
//
// Why: Hyperscan does not validate its bytecode (hyperscan#322: a crafted
// database can overflow the heap), and the entry checksum only catches
// damage, not a writer who recomputes it.  Bytes that come from another host
// are therefore authenticated with a signature by a key the operator trusts,
// and the signature is checked before anything else reads them: before
// decompression, before the entry decoder, long before Hyperscan.  Local
// entries are not signed (checksum + directory permissions, as before).
//
// Formats (key files, sealed entries) are in docs/cache-format.md.
//
// Thread safety: pure functions over values; keys are plain values.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "regexd/cache/key.h"
#include "regexd/engine/result.h"

namespace regexd::cache {

struct PublicKey {
  std::array<unsigned char, 32> bytes{};
  std::string hex() const;  // 64 lowercase hex digits
  std::string id() const;   // first 16 hex digits, for log lines
  bool operator==(const PublicKey&) const = default;
};

// libsodium's 64-byte Ed25519 secret key (seed followed by the public key).
// Wiped from memory when destroyed.
class SecretKey {
 public:
  SecretKey() = default;
  SecretKey(const SecretKey&);
  SecretKey& operator=(const SecretKey&);
  ~SecretKey();
  PublicKey public_key() const;
  const unsigned char* data() const { return bytes_.data(); }
  unsigned char* data() { return bytes_.data(); }

 private:
  std::array<unsigned char, 64> bytes_{};
};

struct KeyPair {
  SecretKey secret;
  PublicKey public_key;
};

// A fresh key pair from the system's random source.  kInternal if libsodium
// cannot initialize.
Result<KeyPair> generate_key_pair();

// Key files: one line, "regexd-ed25519-secret-key-1 <128 hex>" or
// "regexd-ed25519-public-key-1 <64 hex>".  write_* replace the file
// atomically; the secret key file is created 0600.  read_secret_key refuses
// a file that group or others may read (kPermission, says how to fix it).
Status write_secret_key(const std::filesystem::path& path, const SecretKey& key);
Status write_public_key(const std::filesystem::path& path, const PublicKey& key);
Result<SecretKey> read_secret_key(const std::filesystem::path& path);
Result<PublicKey> read_public_key(const std::filesystem::path& path);
// A trusted-key setting: 64 hex digits are the key itself, anything else is
// a public key file's path.
Result<PublicKey> parse_public_key(std::string_view text_or_path);

// The cap on what one sealed entry may declare or hold (bytes); callers pass
// their own, usually the store's max_entry_size.
struct SealLimits {
  std::uint64_t max_entry_size = 1ull << 30;  // decompressed .rxdb bytes
};

// Seals entry bytes (.rxdb) for `platform` (a platform directory name) and
// `key`: zstd-compressed, then signed over a context string, the platform,
// the key, the fixed header and the compressed payload, so that a sealed
// entry cannot be replayed under another key or platform.
Result<std::string> seal_entry(std::string_view platform, const CacheKey& key, std::string_view entry,
                               const SecretKey& secret);

// Opens a sealed entry: checks the fixed header's size fields, that the
// signer is in `trusted` and the signature, and only then decompresses
// (declared size checked against the cap before anything is allocated).
// Errors: kPermission for anything a signature check refuses (unsigned bytes,
// an untrusted signer, a bad signature, another key/platform); kCorrupt for
// signed bytes that do not decompress as declared; kResourceLimit when over
// the cap.  The result still goes through the entry decoder's own checks.
Result<std::string> open_sealed_entry(std::string_view platform, const CacheKey& key, std::string_view sealed,
                                      const std::vector<PublicKey>& trusted, const SealLimits& limits = {});

// Detached Ed25519 signatures over `context` + `message` (archives).
std::array<unsigned char, 64> sign_detached(std::string_view context, std::string_view message,
                                            const SecretKey& secret);
bool verify_detached(std::string_view context, std::string_view message, const unsigned char* signature,
                     const PublicKey& key);

}  // namespace regexd::cache
