#include "spotgrid/core/clock.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <thread>

namespace spotgrid {

namespace {

void Signal(int fd) {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

}  // namespace

StopSource::~StopSource() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void StopSource::Request() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested_.store(true, std::memory_order_release);
    if (wake_fd_ >= 0) Signal(wake_fd_);
  }
  cv_.notify_all();
}

int StopSource::WakeFd() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (wake_fd_ < 0) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    // Raised before anyone asked for the descriptor: it must poll readable all the same.
    if (wake_fd_ >= 0 && Requested()) Signal(wake_fd_);
  }
  return wake_fd_;
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
