// ParallelFor: runs fn(0..n-1) on up to `concurrency` threads (the caller's included) and
// returns when all are done. For fanning out independent batch calls; the indices are handed
// out one at a time, so slow calls do not hold up a fixed share of the work.
//
// Thread-safety: `fn` is called concurrently from several threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace spotgrid {

template <typename Fn>
void ParallelFor(std::size_t n, int concurrency, Fn&& fn) {
  std::size_t threads =
      std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1, concurrency)));
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < n; i = next++) fn(i);
  };
  std::vector<std::jthread> pool;
  pool.reserve(threads - 1);
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
}

}  // namespace spotgrid
