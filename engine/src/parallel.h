// A minimal parallel loop for the compile path.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace regexd::engine::detail {

// Runs fn(0..n-1) on up to `nthreads` threads (the calling one included),
// each taking the next index as it finishes one.
template <typename F>
void parallel_for(std::size_t n, unsigned nthreads, F fn) {
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t k; (k = next.fetch_add(1)) < n;) fn(k);
  };
  std::vector<std::jthread> pool;
  for (std::size_t t = 1; t < std::min<std::size_t>(nthreads, n); ++t) pool.emplace_back(worker);
  worker();
}

}  // namespace regexd::engine::detail
