// The registry's background Hyperscan build, run in a forked child with a
// deadline.
//
// hs_compile_multi (and the cost check's measurements around it) cannot be
// interrupted: a rule set that makes Hyperscan's compiler run for an hour
// would hold the one background compile slot, and every later set would
// wait behind it.  So, as the classification probe does for single patterns
// (engine/src/probe.h), the build runs in a child process: the child compiles
// (through the cache when there is one, so two processes missing the same key
// still compile once), encodes the result as cache entry bytes and writes
// them to a pipe; the parent waits at most `timeout`, kills a child that
// overruns, and otherwise decodes the bytes with every check of a cache load.
// The child dies with its parent (PR_SET_PDEATHSIG).
//
// Thread safety: compile_in_child may be called from several threads at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "regexd/cache/store.h"
#include "regexd/engine/engine.h"
#include "regexd/engine/rule.h"

namespace regexd::server {

// Empty when the PCRE2 limits `scanner` applies (read from a cache entry)
// are those of `options`, else why not (one line).  They are inputs of the
// entry's key, but the key does not prove them: a resealed entry can carry
// others (a match limit of 4 billion makes one scan run for minutes).
std::string pcre2_limits_mismatch(const engine::Scanner& scanner, const engine::CompileOptions& options);

struct ChildBuild {
  std::shared_ptr<const engine::Scanner> scanner;
  bool from_cache = false;  // the child found the entry: another process compiled it
  std::string save_error;   // compiled but not saved (disk full, read-only cache)
};

// Builds `rules` with `options` in a child process.  `store` (optional, not
// owned): the cache the child reads and fills.  `on_child` is called with
// the child's pid once it runs (and with -1 once it is reaped), so an owner
// can kill it early.  The child runs at nice value `nice` (priority.h;
// 0 keeps the daemon's), so that on a busy machine the compile takes the
// CPU time scans leave.  Errors: kResourceLimit when the child did not finish
// within `timeout` (it is killed), kCompileFailed when the rules cannot be
// compiled, kCorrupt when its bytes fail the entry checks, kInternal when
// no child could be started.
Result<ChildBuild> compile_in_child(const engine::RuleSet& rules, const engine::CompileOptions& options,
                                    std::string_view name, cache::Store* store,
                                    std::chrono::milliseconds timeout, const std::function<void(pid_t)>& on_child,
                                    int nice = 0);

// The same build on the calling thread, for hosts where a child cannot be
// used (Registry::Options::isolate_compile): no deadline, and a crash of
// the compiler is the caller's.  `store` as above.  Errors: kCompileFailed,
// and the store's (cache::Store::get_or_compile).
Result<ChildBuild> compile_in_process(const engine::RuleSet& rules, const engine::CompileOptions& options,
                                      std::string_view name, cache::Store* store);

}  // namespace regexd::server
