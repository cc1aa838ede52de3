#include "regexd/engine/serialize.h"

#include <hs.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "hs_runtime.h"

namespace regexd::engine {
namespace {

// Hyperscan hands out malloc()ed strings.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

std::string hs_error_text(hs_error_t rc) {
  switch (rc) {
    case HS_INVALID: return "invalid parameter";
    case HS_NOMEM: return "out of memory";
    case HS_DB_VERSION_ERROR: return "database built by another Hyperscan version";
    case HS_DB_PLATFORM_ERROR: return "database built for another platform";
    case HS_DB_MODE_ERROR: return "database built for another mode";
    case HS_BAD_ALIGN: return "misaligned memory";
    case HS_BAD_ALLOC: return "allocator returned misaligned memory";
    default: return "hyperscan error " + std::to_string(rc);
  }
}

}  // namespace

std::string PlatformInfo::describe() const {
  std::string s = "tune=" + std::to_string(tune) + " features=";
  std::string f;
#ifdef HS_CPU_FEATURES_AVX2
  if (cpu_features & HS_CPU_FEATURES_AVX2) f += "avx2,";
#endif
#ifdef HS_CPU_FEATURES_AVX512
  if (cpu_features & HS_CPU_FEATURES_AVX512) f += "avx512,";
#endif
#ifdef HS_CPU_FEATURES_AVX512VBMI
  if (cpu_features & HS_CPU_FEATURES_AVX512VBMI) f += "avx512vbmi,";
#endif
  if (f.empty()) f = "none,";
  f.pop_back();
  return s + f;
}

Result<PlatformInfo> current_platform() {
  hs_platform_info_t p{};
  hs_error_t rc = hs_populate_platform(&p);
  if (rc != HS_SUCCESS) return make_error(ErrorCode::kInternal, "hs_populate_platform: " + hs_error_text(rc));
  // Only what the scan code this process runs can execute (hs_runtime.h).
  return PlatformInfo{p.tune, p.cpu_features & detail::hs_runtime().features};
}

Result<std::string> serialize_database(const hs_database* db) {
  char* bytes = nullptr;
  std::size_t len = 0;
  hs_error_t rc = hs_serialize_database(db, &bytes, &len);
  if (rc != HS_SUCCESS) return make_error(ErrorCode::kInternal, "hs_serialize_database: " + hs_error_text(rc));
  std::unique_ptr<char, FreeDeleter> owner(bytes);
  return std::string(bytes, len);
}

Result<std::string> serialized_database_info(std::string_view bytes) {
  char* info = nullptr;
  hs_error_t rc = hs_serialized_database_info(bytes.data(), bytes.size(), &info);
  if (rc != HS_SUCCESS)
    return make_error(ErrorCode::kCorrupt, "hs_serialized_database_info: " + hs_error_text(rc));
  std::unique_ptr<char, FreeDeleter> owner(info);
  return std::string(info);
}

Result<std::size_t> deserialized_size(std::string_view bytes) {
  std::size_t n = 0;
  hs_error_t rc = hs_serialized_database_size(bytes.data(), bytes.size(), &n);
  if (rc != HS_SUCCESS) return make_error(ErrorCode::kCorrupt, "hs_serialized_database_size: " + hs_error_text(rc));
  return n;
}

Result<HsDatabasePtr> deserialize_database(std::string_view bytes) {
  auto info = serialized_database_info(bytes);
  if (!info) return info.error();
  hs_database_t* db = nullptr;
  hs_error_t rc = hs_deserialize_database(bytes.data(), bytes.size(), &db);
  if (rc != HS_SUCCESS) {
    auto code = (rc == HS_DB_VERSION_ERROR || rc == HS_DB_PLATFORM_ERROR || rc == HS_DB_MODE_ERROR)
                    ? ErrorCode::kMismatch
                    : ErrorCode::kCorrupt;
    return make_error(code, "hs_deserialize_database: " + hs_error_text(rc));
  }
  return HsDatabasePtr(db);
}

Result<HsDatabasePtr> deserialize_database_at(std::string_view bytes, void* mem) {
  auto info = serialized_database_info(bytes);
  if (!info) return info.error();
  hs_error_t rc = hs_deserialize_database_at(bytes.data(), bytes.size(), static_cast<hs_database_t*>(mem));
  if (rc != HS_SUCCESS) return make_error(ErrorCode::kCorrupt, "hs_deserialize_database_at: " + hs_error_text(rc));
  return HsDatabasePtr(static_cast<hs_database_t*>(mem), HsDatabaseDeleter{false});
}

Result<HsDatabasePtr> borrow_database_image(const void* mem, std::size_t size) {
  if (reinterpret_cast<std::uintptr_t>(mem) % 8 != 0)
    return make_error(ErrorCode::kCorrupt, "database image is not 8-byte aligned");
  auto* db = const_cast<hs_database_t*>(static_cast<const hs_database_t*>(mem));
  std::size_t real = 0;
  if (hs_database_size(db, &real) != HS_SUCCESS || real != size)
    return make_error(ErrorCode::kCorrupt, "database image header does not match its recorded size");
  char* info = nullptr;
  if (hs_database_info(db, &info) != HS_SUCCESS)
    return make_error(ErrorCode::kCorrupt, "database image not recognised by hs_database_info");
  std::free(info);
  return HsDatabasePtr(db, HsDatabaseDeleter{false});
}

std::size_t database_size(const hs_database* db) {
  std::size_t n = 0;
  if (db && hs_database_size(db, &n) == HS_SUCCESS) return n;
  return 0;
}

}  // namespace regexd::engine
