// ParallelFor: the controller's one way to keep several AWS requests in flight for a list of
// independent items (downloads, retries). Blocks until every item is done.
//
// Thread-safety: `fn` is called concurrently from up to `threads` threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace spotgrid {

// Runs fn(i) for every i in [0, n) on up to `threads` threads (the caller's included).
inline void ParallelFor(std::size_t n, int threads, const std::function<void(std::size_t)>& fn) {
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < n; i = next++) fn(i);
  };
  std::vector<std::thread> pool;
  const std::size_t count =
      std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)), n);
  for (std::size_t t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (std::thread& thread : pool) thread.join();
}

}  // namespace spotgrid
