// A clock for tests: time stands still until a test (or a sleep) moves it.
//
// SleepFor advances virtual time by the requested amount and returns immediately, so code that
// backs off for 20 s runs in microseconds, and tests can assert exactly how long it waited.
// Thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <vector>

#include "spotgrid/core/clock.h"

namespace spotgrid::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(WallTime start = WallTime(std::chrono::seconds(1'700'000'000)));

  WallTime Now() const override;
  MonoTime Monotonic() const override;
  bool SleepFor(std::chrono::nanoseconds duration, const StopSource* stop = nullptr) override;

  void Advance(std::chrono::nanoseconds duration);
  void SetWallTime(WallTime time);  // moves only the wall clock (to simulate skew)
  // Every duration passed to SleepFor, in order.
  std::vector<std::chrono::nanoseconds> sleeps() const;

 private:
  mutable std::mutex mu_;
  WallTime wall_;
  MonoTime mono_;
  std::vector<std::chrono::nanoseconds> sleeps_;
};

}  // namespace spotgrid::testing
