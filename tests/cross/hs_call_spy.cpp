// LD_PRELOAD shim for tests/cross/cross_cache_test.sh.  Appends the name of
// each call into the library's (de)serialization readers and its compiler
// (hs_compile_multi, hs_compile) to the file named by
// $REGEXD_HS_SPY_LOG, then forwards to the real function.  The test plants an
// arm64 entry where an x86_64 Vectorscan build looks and shows, with this
// log, that regexd refused it on its own tags before handing Vectorscan a
// single byte (Vectorscan 5.4.9 on x86 would accept the arm64 bytes).  A
// control run on a valid entry shows the shim does see the calls.
//
// The signatures are hs.h's, spelled with void* so that this file needs no
// Hyperscan headers: every function takes (bytes, length, out-pointer).
#include <dlfcn.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace {

using HsReader = int (*)(const char*, std::size_t, void*);

void note(const char* name) {
  const char* path = std::getenv("REGEXD_HS_SPY_LOG");
  if (!path) return;
  if (std::FILE* f = std::fopen(path, "a")) {
    std::fprintf(f, "%s\n", name);
    std::fclose(f);
  }
}

int forward(const char* name, const char* bytes, std::size_t length, void* out) {
  note(name);
  auto real = reinterpret_cast<HsReader>(::dlsym(RTLD_NEXT, name));
  if (!real) std::abort();  // the shim is loaded into a process without libhs: a broken test setup
  return real(bytes, length, out);
}

}  // namespace

extern "C" {
int hs_deserialize_database(const char* bytes, std::size_t length, void* db) {
  return forward("hs_deserialize_database", bytes, length, db);
}
int hs_deserialize_database_at(const char* bytes, std::size_t length, void* db) {
  return forward("hs_deserialize_database_at", bytes, length, db);
}
int hs_serialized_database_info(const char* bytes, std::size_t length, void* info) {
  return forward("hs_serialized_database_info", bytes, length, info);
}
int hs_serialized_database_size(const char* bytes, std::size_t length, void* size) {
  return forward("hs_serialized_database_size", bytes, length, size);
}
// The compiler: regexd builds every database with hs_compile_multi (the
// probe, in forked children, with hs_expression_info and hs_compile).  The
// target-entry step shows that an aarch64 build answered from an entry made
// on x86_64 and compiled nothing.
using HsCompileMulti = int (*)(const char* const*, const unsigned*, const unsigned*, unsigned, unsigned, const void*,
                               void**, void**);
int hs_compile_multi(const char* const* expressions, const unsigned* flags, const unsigned* ids, unsigned count,
                     unsigned mode, const void* platform, void** db, void** error) {
  note("hs_compile_multi");
  auto real = reinterpret_cast<HsCompileMulti>(::dlsym(RTLD_NEXT, "hs_compile_multi"));
  if (!real) std::abort();
  return real(expressions, flags, ids, count, mode, platform, db, error);
}
using HsCompile = int (*)(const char*, unsigned, unsigned, const void*, void**, void**);
int hs_compile(const char* expression, unsigned flags, unsigned mode, const void* platform, void** db, void** error) {
  note("hs_compile");
  auto real = reinterpret_cast<HsCompile>(::dlsym(RTLD_NEXT, "hs_compile"));
  if (!real) std::abort();
  return real(expression, flags, mode, platform, db, error);
}
}
