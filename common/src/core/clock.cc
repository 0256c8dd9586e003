#include "spotgrid/core/clock.h"

#include <thread>

namespace spotgrid {

void StopSource::Request() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

bool StopSource::WaitFor(std::chrono::nanoseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return Requested(); });
}

namespace {

class SystemClock final : public Clock {
 public:
  WallTime Now() const override { return std::chrono::system_clock::now(); }
  MonoTime Monotonic() const override { return std::chrono::steady_clock::now(); }
  bool SleepFor(std::chrono::nanoseconds duration, const StopSource* stop) override {
    if (duration <= std::chrono::nanoseconds::zero()) return !(stop && stop->Requested());
    if (stop == nullptr) {
      std::this_thread::sleep_for(duration);
      return true;
    }
    return !stop->WaitFor(duration);
  }
};

}  // namespace

Clock& Clock::System() {
  static SystemClock clock;
  return clock;
}

}  // namespace spotgrid
