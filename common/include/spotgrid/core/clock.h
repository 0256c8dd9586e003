// The one seam for time (leveldb's Env idea, reduced to what we need).
//
// Product code never calls system_clock::now(), steady_clock::now() or sleep_for directly:
// it asks a Clock. The system clock is used for signing and credential expiry, the monotonic
// clock for timers and deadlines, and every sleep can be cut short by a StopToken so that
// shutdown never waits for a backoff to finish. Tests substitute FakeClock
// (tests/support/fake_clock.h), on which a sleep advances virtual time and returns at once.
//
// Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace spotgrid {

// A one-way flag that wakes every sleeper when raised. Request() takes a lock, so a signal
// handler must not call it: handlers set an atomic flag that a normal thread forwards here.
class StopSource {
 public:
  StopSource() = default;
  ~StopSource();
  StopSource(const StopSource&) = delete;
  StopSource& operator=(const StopSource&) = delete;

  void Request();
  bool Requested() const { return requested_.load(std::memory_order_acquire); }
  // Waits until Request() or until `timeout` has passed; returns Requested().
  bool WaitFor(std::chrono::nanoseconds timeout) const;
  // A file descriptor that polls readable once Request() has been called, for waits on I/O
  // (a long poll blocked in poll() wakes at once instead of after its 20 s). Created on first
  // use and owned by the source; -1 if the system refused one (then callers poll in slices).
  int WakeFd() const;

 private:
  std::atomic<bool> requested_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable int wake_fd_ = -1;  // guarded by mu_
};

class Clock {
 public:
  using WallTime = std::chrono::system_clock::time_point;
  using MonoTime = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  virtual WallTime Now() const = 0;
  virtual MonoTime Monotonic() const = 0;
  // Sleeps for `duration` unless `stop` is raised first. Returns false if it was cut short.
  virtual bool SleepFor(std::chrono::nanoseconds duration, const StopSource* stop = nullptr) = 0;

  // The process-wide real clock.
  static Clock& System();
};

}  // namespace spotgrid
