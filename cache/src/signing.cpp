#include "regexd/cache/signing.h"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "bytes.h"
#include "regexd/cache/compress.h"
#include "regexd/cache/fs.h"

namespace regexd::cache {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSecretTag = "regexd-ed25519-secret-key-1";
constexpr std::string_view kPublicTag = "regexd-ed25519-public-key-1";
constexpr char kSealMagic[8] = {'R', 'X', 'D', 'S', 'E', 'A', 'L', 'D'};
constexpr std::uint32_t kSealVersion = 1;
constexpr std::uint32_t kCompressionZstd = 1;
constexpr std::size_t kSealHeader = 128;   // fixed fields, signer, signature
constexpr std::size_t kSignedFixed = 32;   // the part of the header that is signed
constexpr std::size_t kSignerAt = 32, kSignatureAt = 64;
constexpr std::string_view kSealContext = "regexd-sealed-entry/1";

bool sodium_ready() {
  static const bool ok = ::sodium_init() >= 0;
  return ok;
}

std::string to_hex(const unsigned char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
  return s;
}

bool from_hex(std::string_view hex, unsigned char* out, std::size_t n) {
  if (hex.size() != 2 * n) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < n; ++i) {
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

// "<tag> <hex>\n" -> the hex digits, or an error naming the file.
Result<std::string> read_key_line(const fs::path& path, std::string_view tag, std::size_t bytes) {
  auto text = read_file(path, 4096);
  if (!text) return text.error();
  std::string_view s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.remove_suffix(1);
  if (s.substr(0, tag.size()) != tag || s.size() != tag.size() + 1 + 2 * bytes || s[tag.size()] != ' ')
    return make_error(ErrorCode::kInvalidArgument,
                      path.string() + ": not a key file (expected one line \"" + std::string(tag) + " <hex>\")");
  return std::string(s.substr(tag.size() + 1));
}

// Everything that is signed besides the payload: the context, the platform
// and key it is meant for, and the fixed header fields.
std::string seal_context(std::string_view platform, const CacheKey& key, std::string_view fixed) {
  std::string ctx(kSealContext);
  ctx.push_back('\0');
  le::put_str(ctx, platform);
  le::put_str(ctx, key.hex());
  ctx.append(fixed);
  return ctx;
}

Error refused(std::string msg) { return make_error(ErrorCode::kPermission, std::move(msg)); }

}  // namespace

std::string PublicKey::hex() const { return to_hex(bytes.data(), bytes.size()); }
std::string PublicKey::id() const { return hex().substr(0, 16); }

SecretKey::SecretKey(const SecretKey& o) : bytes_(o.bytes_) {}
SecretKey& SecretKey::operator=(const SecretKey& o) {
  bytes_ = o.bytes_;
  return *this;
}
SecretKey::~SecretKey() { ::sodium_memzero(bytes_.data(), bytes_.size()); }

PublicKey SecretKey::public_key() const {
  PublicKey pk;
  std::memcpy(pk.bytes.data(), bytes_.data() + 32, 32);  // libsodium: seed || public key
  return pk;
}

Result<KeyPair> generate_key_pair() {
  if (!sodium_ready()) return make_error(ErrorCode::kInternal, "libsodium could not be initialized");
  KeyPair kp;
  ::crypto_sign_keypair(kp.public_key.bytes.data(), kp.secret.data());
  return kp;
}

Status write_secret_key(const fs::path& path, const SecretKey& key) {
  std::string line = std::string(kSecretTag) + " " + to_hex(key.data(), 64) + "\n";
  Status st = write_file_atomic(path, line, 0600);
  ::sodium_memzero(line.data(), line.size());
  return st;
}

Status write_public_key(const fs::path& path, const PublicKey& key) {
  return write_file_atomic(path, std::string(kPublicTag) + " " + key.hex() + "\n", 0644);
}

Result<SecretKey> read_secret_key(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return make_error(ErrorCode::kIo, path.string() + ": " + std::strerror(errno));
  if (st.st_mode & 077)
    return make_error(ErrorCode::kPermission,
                      path.string() + ": secret key readable by group/others; run: chmod 600 " + path.string());
  auto hex = read_key_line(path, kSecretTag, 64);
  if (!hex) return hex.error();
  SecretKey key;
  bool ok = from_hex(*hex, key.data(), 64);
  ::sodium_memzero(hex->data(), hex->size());
  if (!ok) return make_error(ErrorCode::kInvalidArgument, path.string() + ": bad hex digits in the key");
  // The public half is stored in the key; a file whose halves disagree
  // would sign with a key nobody can verify.
  if (!sodium_ready()) return make_error(ErrorCode::kInternal, "libsodium could not be initialized");
  unsigned char pk[32];
  ::crypto_sign_ed25519_sk_to_pk(pk, key.data());
  unsigned char seed[32], check_pk[32], check_sk[64];
  ::crypto_sign_ed25519_sk_to_seed(seed, key.data());
  ::crypto_sign_seed_keypair(check_pk, check_sk, seed);
  ::sodium_memzero(seed, sizeof seed);
  ::sodium_memzero(check_sk, sizeof check_sk);
  if (std::memcmp(pk, check_pk, 32) != 0)
    return make_error(ErrorCode::kInvalidArgument, path.string() + ": secret and public halves do not match");
  return key;
}

Result<PublicKey> read_public_key(const fs::path& path) {
  auto hex = read_key_line(path, kPublicTag, 32);
  if (!hex) return hex.error();
  PublicKey key;
  if (!from_hex(*hex, key.bytes.data(), 32))
    return make_error(ErrorCode::kInvalidArgument, path.string() + ": bad hex digits in the key");
  return key;
}

Result<PublicKey> parse_public_key(std::string_view text_or_path) {
  PublicKey key;
  if (text_or_path.size() == 64 && from_hex(text_or_path, key.bytes.data(), 32)) return key;
  return read_public_key(fs::path(text_or_path));
}

std::array<unsigned char, 64> sign_detached(std::string_view context, std::string_view message,
                                            const SecretKey& secret) {
  std::string m;
  m.reserve(context.size() + message.size());
  m.append(context).append(message);
  std::array<unsigned char, 64> sig{};
  sodium_ready();
  ::crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                         secret.data());
  return sig;
}

bool verify_detached(std::string_view context, std::string_view message, const unsigned char* signature,
                     const PublicKey& key) {
  if (!sodium_ready()) return false;
  std::string m;
  m.reserve(context.size() + message.size());
  m.append(context).append(message);
  return ::crypto_sign_verify_detached(signature, reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                                       key.bytes.data()) == 0;
}

Result<std::string> seal_entry(std::string_view platform, const CacheKey& key, std::string_view entry,
                               const SecretKey& secret) {
  auto payload = compress_zstd(entry);
  if (!payload) return payload.error();
  std::string out(kSealMagic, sizeof kSealMagic);
  le::put_u32(out, kSealVersion);
  le::put_u32(out, kCompressionZstd);
  le::put_u64(out, entry.size());
  le::put_u64(out, payload->size());
  PublicKey pk = secret.public_key();
  out.append(reinterpret_cast<const char*>(pk.bytes.data()), pk.bytes.size());
  auto sig = sign_detached(seal_context(platform, key, std::string_view(out).substr(0, kSignedFixed)), *payload,
                           secret);
  out.append(reinterpret_cast<const char*>(sig.data()), sig.size());
  out.append(*payload);
  return out;
}

Result<std::string> open_sealed_entry(std::string_view platform, const CacheKey& key, std::string_view sealed,
                                      const std::vector<PublicKey>& trusted, const SealLimits& limits) {
  // Only the fixed fields needed to find the signature are read before it is
  // checked; nothing else about these bytes is believed until then.
  if (sealed.size() < kSealHeader || std::memcmp(sealed.data(), kSealMagic, 8) != 0)
    return refused("not a signed entry");
  if (le::get_u32(sealed.data() + 8) != kSealVersion)
    return refused("signed-entry version " + std::to_string(le::get_u32(sealed.data() + 8)) + " is not 1");
  std::uint64_t payload_size = le::get_u64(sealed.data() + 24);
  if (payload_size != sealed.size() - kSealHeader) return refused("signed entry truncated or padded");
  PublicKey signer;
  std::memcpy(signer.bytes.data(), sealed.data() + kSignerAt, 32);
  if (std::find(trusted.begin(), trusted.end(), signer) == trusted.end())
    return refused("signed by untrusted key " + signer.id());
  std::string_view payload = sealed.substr(kSealHeader);
  if (!verify_detached(seal_context(platform, key, sealed.substr(0, kSignedFixed)), payload,
                       reinterpret_cast<const unsigned char*>(sealed.data() + kSignatureAt), signer))
    return refused("bad signature (key " + signer.id() + ", entry " + key.hex() + ")");
  // Authenticated from here on.
  std::uint32_t compression = le::get_u32(sealed.data() + 12);
  std::uint64_t entry_size = le::get_u64(sealed.data() + 16);
  if (compression != kCompressionZstd)
    return make_error(ErrorCode::kCorrupt, "unknown compression " + std::to_string(compression));
  return decompress_zstd(payload, entry_size, limits.max_entry_size);
}

}  // namespace regexd::cache
