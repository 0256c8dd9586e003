// The drain's clock: when a drain must be over (D), how long running units may take to
// checkpoint (until G), and when uploads are cut off (R), from what started the drain.
//
//   Spot notice {action, time T}     D = T - 5 s (wall time T mapped onto the monotonic clock)
//   SIGTERM / SIGINT                 D = now + stop-timeout - 5 s
//   lifecycle state "Terminated"     D = now + stop-timeout - 5 s
//   rebalance with --rebalance checkpoint: as SIGTERM
//   G = D - upload-reserve (never after R), R = D - 3 s
//
// The first trigger starts the drain; a later one can only move D earlier, never later, and
// never starts the drain again (a second SIGTERM changes nothing). The 5 s kept before the
// notice's time and systemd's stop timeout cover the exit itself (worker item, lifecycle
// completion); the 3 s between R and D cover the release of each unit and its message.
//
// Thread-safety: the free functions are pure; DrainPlan may be used from any thread.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string_view>

#include "spotgrid/core/clock.h"

namespace spotgrid::agent {

// Kept before the notice's time (or the end of systemd's stop timeout) for the exit.
inline constexpr std::chrono::seconds kDrainExitMargin{5};
// Kept before D for ReleaseUnit and ChangeMessageVisibility once the uploads are cut off.
inline constexpr std::chrono::seconds kDrainReleaseMargin{3};

// What started (or tightened) a drain.
enum class DrainTrigger {
  kSpotInterruption,     // IMDS spot/instance-action
  kStopSignal,           // SIGTERM or SIGINT (RequestStop)
  kLifecycleTerminated,  // IMDS autoscaling/target-lifecycle-state == Terminated
  kRebalance,            // rebalance recommendation under --rebalance checkpoint
};
std::string_view ToString(DrainTrigger trigger);

// D for a Spot notice whose interruption time is `notice_time`, seen at (`now`, `mono_now`):
// the wall-clock distance to the notice's time, less the exit margin, from the monotonic now.
// May lie in the past (a notice seen late): the drain then cuts everything at once.
Clock::MonoTime NoticeDeadline(Clock::WallTime notice_time, Clock::WallTime now,
                               Clock::MonoTime mono_now);
// D for a stop signal or a lifecycle transition: what systemd allows, less the exit margin.
Clock::MonoTime StopDeadline(Clock::MonoTime mono_now, std::chrono::seconds stop_timeout);

struct DrainTimes {
  Clock::MonoTime deadline;    // D: everything of the drain is over by then
  Clock::MonoTime grace_end;   // G: a unit still running then is SIGKILLed
  Clock::MonoTime release_by;  // R: uploads still running then are cut off
};
// G = D - upload_reserve, but not after R; R = D - 3 s.
DrainTimes PlanDrain(Clock::MonoTime deadline, std::chrono::seconds upload_reserve);

// The agent's one drain deadline, shared by whoever triggers a drain and the slots that act
// on it.
class DrainPlan {
 public:
  explicit DrainPlan(std::chrono::seconds upload_reserve) : upload_reserve_(upload_reserve) {}

  enum class Offer {
    kStarted,       // no drain was under way: this starts it
    kMovedEarlier,  // a drain was under way; its deadline is now this earlier one
    kUnchanged,     // a drain was under way with a deadline no later than this one
  };
  Offer Propose(DrainTrigger trigger, Clock::MonoTime deadline);

  bool Active() const;
  // nullopt while no drain is under way.
  std::optional<DrainTimes> Times() const;
  // The trigger that started the drain (meaningful once Active()).
  DrainTrigger StartedBy() const;

 private:
  const std::chrono::seconds upload_reserve_;
  mutable std::mutex mu_;
  std::optional<Clock::MonoTime> deadline_;  // guarded by mu_
  DrainTrigger started_by_ = DrainTrigger::kStopSignal;
};

}  // namespace spotgrid::agent
