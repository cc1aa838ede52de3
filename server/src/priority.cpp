#include "priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace regexd::server {

namespace {

// setpriority(PRIO_PROCESS, tid) addresses one thread on Linux; with 0 it
// would be the calling thread too, but the tid makes that explicit.
id_t this_thread() { return static_cast<id_t>(::syscall(SYS_gettid)); }

}  // namespace

int thread_nice() {
  errno = 0;
  int n = ::getpriority(PRIO_PROCESS, this_thread());
  return (n == -1 && errno != 0) ? -100 : n;
}

int lower_thread_priority(int nice) {
  int now = thread_nice();
  if (now == -100) return -1;
  int want = std::clamp(nice, 0, 19);
  if (want <= now) return now;
  if (::setpriority(PRIO_PROCESS, this_thread(), want) != 0) return -1;
  return want;
}

}  // namespace regexd::server
