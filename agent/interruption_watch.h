// InterruptionWatch: a thread that asks instance metadata, every `poll` by the Clock, whether
// this instance is about to go away, and reports each kind of notice once:
//
//   kSpotInterruption    spot/instance-action holds {action, time}: deadline from its time
//   kRebalance           events/recommendations/rebalance exists: deadline as for a stop
//   kLifecycleTerminated autoscaling/target-lifecycle-state == "Terminated": deadline as for
//                        a stop (the lifecycle hook's timeout is heartbeated, not a deadline)
//
// Deadlines follow drain_plan.h. An IMDS failure is logged (once per kind of failure until
// a read works again) and asked again at the next poll; it never stops the watch.
//
// The thread waits in real-time slices of at most `slice` and looks at the Clock between
// them, so a FakeClock moved by a test drives the polls and Stop() returns within a slice.
//
// Thread-safety: Start/Stop from one owner thread; the callback runs on the watch thread
// (keep it short: the next poll waits for it).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "spotgrid/core/clock.h"
#include "spotgrid/aws/imds_client.h"

namespace spotgrid::agent {

struct InterruptionNotice {
  enum class Kind { kSpotInterruption, kRebalance, kLifecycleTerminated };
  Kind kind = Kind::kSpotInterruption;
  Clock::MonoTime deadline{};  // D (drain_plan.h)
  std::string detail;          // for the log: "terminate at 2024-...", "Terminated"
};
std::string_view ToString(InterruptionNotice::Kind kind);

struct InterruptionWatchOptions {
  std::chrono::seconds poll{5};           // --spot-poll
  std::chrono::seconds stop_timeout{90};  // --stop-timeout, for the non-Spot deadlines
  bool spot = true;                       // ask spot/instance-action (a Spot instance)
  bool rebalance = true;                  // ask events/recommendations/rebalance
  bool lifecycle = true;                  // ask autoscaling/target-lifecycle-state
  std::chrono::milliseconds slice{200};   // longest real-time wait between looks at the Clock
};

class InterruptionWatch {
 public:
  using Callback = std::function<void(const InterruptionNotice&)>;

  // `imds` and `clock` must outlive the watch.
  InterruptionWatch(InstanceMetadata& imds, Clock& clock, InterruptionWatchOptions options,
                    Callback on_notice);
  ~InterruptionWatch();  // Stop()
  InterruptionWatch(const InterruptionWatch&) = delete;
  InterruptionWatch& operator=(const InterruptionWatch&) = delete;

  // Polls at once, then every `poll`. Once only.
  void Start();
  // Ends the thread (within one slice plus an IMDS call in flight); idempotent.
  void Stop();

  // One round of questions, on the calling thread (what the thread does every poll).
  void PollOnce();

 private:
  void Loop();
  void Report(InterruptionNotice notice);
  void LogFailure(int which, const Error& error);

  InstanceMetadata& imds_;
  Clock& clock_;
  InterruptionWatchOptions options_;
  Callback on_notice_;
  bool reported_[3] = {false, false, false};  // by Kind; watch thread only
  bool failing_[3] = {false, false, false};   // a failure of that read was logged
  StopSource stop_;
  std::thread thread_;
};

}  // namespace spotgrid::agent
