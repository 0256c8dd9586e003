// ParallelFor: runs fn(0..n-1) on up to `concurrency` threads (the caller's included) and
// returns when all are done. For fanning out independent batch calls; the indices are handed
// out one at a time, so slow calls do not hold up a fixed share of the work.
//
// The helper threads come from a process-wide pool that keeps finished threads for the next
// call (an enqueue makes thousands of batch calls; a thread per call would cost more than
// some of the calls). A helper that has not started by the time the caller has run out of
// indices is simply not used, so a ParallelFor inside another (or one while the pool is busy)
// never waits for a free thread: the caller does the work itself.
//
// ParallelForStatus is the same for calls that can fail: `fn(i)` returns a Status and the
// first failure (first in time) is the result. OnError says whether the other indices still
// run (kRunAll: independent writes are all attempted) or no index starts after a failure
// (kStopStarting: calls already running finish).
//
// Thread-safety: `fn` is called concurrently from several threads. ParallelFor may be called
// from any thread, also from inside `fn`. FirstError may be used from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "spotgrid/core/status.h"

namespace spotgrid {
namespace parallel_for_internal {

// Runs `task` on a pooled thread, starting a new thread when none is idle. Never throws: when
// no thread can be started the task waits for the next free one (ParallelFor does not depend
// on it running).
void RunOnPool(std::function<void()> task);

}  // namespace parallel_for_internal

template <typename Fn>
void ParallelFor(std::size_t n, int concurrency, Fn&& fn) {
  std::size_t threads =
      std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1, concurrency)));
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // Outlives this call: a helper may be dequeued after the caller has returned.
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    int active = 0;       // helpers inside `work`
    bool closed = false;  // the caller is done: late helpers must not touch `work`
  };
  auto shared = std::make_shared<Shared>();
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < n; i = next++) fn(i);
  };
  for (std::size_t t = 1; t < threads; ++t) {
    parallel_for_internal::RunOnPool([shared, &work] {
      {
        std::lock_guard<std::mutex> lock(shared->mu);
        if (shared->closed) return;
        ++shared->active;
      }
      work();
      std::lock_guard<std::mutex> lock(shared->mu);
      if (--shared->active == 0) shared->cv.notify_all();
    });
  }
  work();
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->closed = true;
  shared->cv.wait(lock, [&] { return shared->active == 0; });
}

// The first error recorded by any of several threads.
class FirstError {
 public:
  void Set(const Error& error) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = error;
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  std::optional<Error> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }
  Status status() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_ ? Status(*error_) : Status::Ok();
  }

 private:
  mutable std::mutex mu_;
  std::optional<Error> error_;
  std::atomic<bool> failed_{false};
};

enum class OnError { kRunAll, kStopStarting };

template <typename Fn>
Status ParallelForStatus(std::size_t n, int concurrency, OnError on_error, Fn&& fn) {
  FirstError first;
  ParallelFor(n, concurrency, [&](std::size_t i) {
    if (on_error == OnError::kStopStarting && first.failed()) return;
    Status status = fn(i);
    if (!status.ok()) first.Set(status.error());
  });
  return first.status();
}

}  // namespace spotgrid
