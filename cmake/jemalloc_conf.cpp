// jemalloc's built-in options for the regexd and regexctl programs
// (cmake/RegexdAllocator.cmake links this file into them, nothing else).
// jemalloc reads this symbol at start-up, then /etc/malloc.conf and the
// MALLOC_CONF environment variable, each overriding the one before.
//
// thp:always backs jemalloc's memory with transparent huge pages (THP in
// "madvise" mode, Debian's default, needs the advice): loading a 30 MB cache
// entry touches every page of two fresh 30 MB buffers, and on a virtual
// machine a 4 KiB page fault costs ~14 us.  It is what the glibc tunable
// glibc.malloc.hugetlb=1 did for the system allocator (contrib/regexd.service):
// a warm start of SpamAssassin's rule set measured 140-181 ms without it;
// with it, median 140 ms against 141 for glibc with the tunable
// (docs/benchmarks.md, "Allocator"); peak RSS grows by ~10 MiB.
extern "C" {
// NOLINTNEXTLINE: the name and type jemalloc looks up.
extern const char* malloc_conf;
const char* malloc_conf = "thp:always";
}
