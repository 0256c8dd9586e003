// A clock for tests: time stands still until a test (or a sleep) moves it.
//
// SleepFor advances virtual time by the requested amount and returns immediately, so code that
// backs off for 20 s runs in microseconds, and tests can assert exactly how long it waited.
//
// Code that waits for a time by looking at the clock between real-time slices (the agent's
// threads do: they must also notice a stop) keeps reading Monotonic() while it waits. The
// clock counts those reads per thread, so a test can tell that a thread is waiting before it
// moves the clock, instead of hoping it got there: an Advance made before the thread has
// computed its next due time would be absorbed into that due time and never seen.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
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
  // How many times `thread` has called Monotonic().
  std::uint64_t MonotonicReads(std::thread::id thread) const;

 private:
  mutable std::mutex mu_;
  WallTime wall_;
  MonoTime mono_;
  std::vector<std::chrono::nanoseconds> sleeps_;
  mutable std::map<std::thread::id, std::uint64_t> monotonic_reads_;
};

}  // namespace spotgrid::testing
