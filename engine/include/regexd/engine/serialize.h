// Hyperscan database (de)serialization and platform facts, for the cache
// layer.  The engine is the only module that includes hs.h; these wrappers
// are how regexd::cache reaches the library.
//
// Safety: Hyperscan does not verify its bytecode.  Callers must only pass
// bytes that passed their own integrity checks (regexd::cache checks an
// XXH3-128 checksum and its own tags first).  These functions add the
// library's own checks (hs_serialized_database_info) on top, never instead.
//
// Thread safety: all functions are safe to call concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "regexd/engine/compiled_set.h"
#include "regexd/engine/result.h"

namespace regexd::engine {

// The CPU platform Hyperscan targets on this machine (hs_populate_platform).
Result<PlatformInfo> current_platform();

// Serialized bytes of a database (hs_serialize_database), copied into a string.
Result<std::string> serialize_database(const hs_database* db);

// hs_serialized_database_info() of serialized bytes, e.g.
// "Version: 5.4.0 Features: AVX2 Mode: BLOCK".  kCorrupt if the library
// does not recognise the bytes.
Result<std::string> serialized_database_info(std::string_view bytes);

// Deserializes into memory Hyperscan allocates (owned).  Checks
// serialized_database_info first.
Result<HsDatabasePtr> deserialize_database(std::string_view bytes);

// Size of the memory a deserialized database needs (hs_serialized_database_size).
Result<std::size_t> deserialized_size(std::string_view bytes);

// Deserializes into caller memory `mem` (at least deserialized_size() bytes,
// 8-byte aligned).  The result is not owned: it stays valid while `mem` does.
Result<HsDatabasePtr> deserialize_database_at(std::string_view bytes, void* mem);

// Uses an already deserialized image at `mem` (e.g. a shared read-only mapping
// written by deserialize_database_at in another process) without copying.
// The caller vouches for the bytes (checksum); the database's own header is
// validated with hs_database_info.  Not owned.
Result<HsDatabasePtr> borrow_database_image(const void* mem, std::size_t size);

// hs_database_size of a live database (0 for null).
std::size_t database_size(const hs_database* db);

}  // namespace regexd::engine
