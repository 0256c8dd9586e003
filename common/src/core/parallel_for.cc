#include "spotgrid/core/parallel_for.h"

#include <deque>
#include <system_error>
#include <thread>
#include <utility>

namespace spotgrid::parallel_for_internal {
namespace {

// Threads that wait for tasks; a thread that finds more than kMaxIdle others idle ends.
class Pool {
 public:
  void Submit(std::function<void()> task) {
    std::unique_lock<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    // Idle threads (woken or not) each take one queued task.
    if (idle_ >= tasks_.size()) {
      cv_.notify_one();
      return;
    }
    lock.unlock();
    try {
      std::thread([this] { Loop(); }).detach();
    } catch (const std::system_error&) {
      // Out of threads: the task runs when a pooled thread frees up (or never matters).
    }
  }

 private:
  static constexpr std::size_t kMaxIdle = 64;

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      while (tasks_.empty()) {
        if (idle_ >= kMaxIdle) return;
        ++idle_;
        cv_.wait(lock);
        --idle_;
      }
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      task = nullptr;  // release what it holds outside the lock
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::size_t idle_ = 0;
};

Pool& ThePool() {
  // Never destroyed: detached threads may still wait on it while the process exits.
  static Pool* pool = new Pool();
  return *pool;
}

}  // namespace

void RunOnPool(std::function<void()> task) { ThePool().Submit(std::move(task)); }

}  // namespace spotgrid::parallel_for_internal
