// CPU priority of the daemon's background work (docs/daemon.md, "Security
// model", Priorities): compile children and heavy workers run at a higher
// nice value than the I/O threads, so that on a busy machine the scheduler
// serves small SCANs first and a flood of rule pushes or huge scans costs
// the good clients little CPU time.
#pragma once

namespace regexd::server {

// Raises the nice value of the calling thread (Linux: nice is per thread,
// and threads it starts inherit it) to `nice` (0..19).  Never lowers it: a
// daemon started at nice 5 keeps 5 for `nice` 0, and lowering needs
// CAP_SYS_NICE anyway.  Returns the nice value in effect afterwards, or -1
// if it could not be read or set (errno says why).
int lower_thread_priority(int nice);

// The nice value of the calling thread, or -100 if it cannot be read.
int thread_nice();

}  // namespace regexd::server
