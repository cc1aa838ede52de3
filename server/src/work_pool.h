// regexd::server::WorkPool: the threads that run heavy requests (LOAD_RULES,
// large SCANs) away from the I/O threads, so one of them does not stall every
// connection pinned to the same I/O thread (docs/daemon.md, "Security model").
//
// The queue needs no bound of its own: a connection has at most one heavy
// request outstanding and stops reading until it is answered, so the queue
// holds at most max_connections jobs.
//
// Thread safety: post() and queued() from any thread; the destructor runs the
// jobs already queued (each checks whether its client is still there) and
// joins the threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace regexd::server {

class WorkPool {
 public:
  // `nice`: the threads' nice value (priority.h; 0 keeps the daemon's).
  explicit WorkPool(unsigned threads, int nice = 0);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Runs `job` on one of the pool's threads, in posting order.  A job must
  // not throw.
  void post(std::function<void()> job);
  std::size_t queued() const;

 private:
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace regexd::server
