#include "support/fake_clock.h"

namespace spotgrid::testing {

FakeClock::FakeClock(WallTime start) : wall_(start), mono_(MonoTime(std::chrono::hours(1))) {}

Clock::WallTime FakeClock::Now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return wall_;
}

Clock::MonoTime FakeClock::Monotonic() const {
  std::lock_guard<std::mutex> lock(mu_);
  ++monotonic_reads_[std::this_thread::get_id()];
  return mono_;
}

std::uint64_t FakeClock::MonotonicReads(std::thread::id thread) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = monotonic_reads_.find(thread);
  return it == monotonic_reads_.end() ? 0 : it->second;
}

bool FakeClock::SleepFor(std::chrono::nanoseconds duration, const StopSource* stop) {
  if (stop && stop->Requested()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  sleeps_.push_back(duration);
  wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(duration);
  mono_ += duration;
  return true;
}

void FakeClock::Advance(std::chrono::nanoseconds duration) {
  std::lock_guard<std::mutex> lock(mu_);
  wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(duration);
  mono_ += duration;
}

void FakeClock::SetWallTime(WallTime time) {
  std::lock_guard<std::mutex> lock(mu_);
  wall_ = time;
}

std::vector<std::chrono::nanoseconds> FakeClock::sleeps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sleeps_;
}

}  // namespace spotgrid::testing
