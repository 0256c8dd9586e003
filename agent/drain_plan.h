// The drain's clock: when a drain must be over (D), how long running units may take to
// checkpoint (until G), and when uploads are cut off (R), from what started the drain and
// when (S).
//
//   Spot notice {action, time T}     D = T - 5 s (wall time T mapped onto the monotonic clock)
//   SIGTERM / SIGINT                 D = now + stop-timeout - 5 s
//   lifecycle state "Terminated"     D = now + stop-timeout - 5 s
//   rebalance with --rebalance checkpoint: as SIGTERM
//   R = D - 3 s
//   G = R - min(upload-reserve - 3 s, (R - S) / 2)   (R - S taken as 0 when negative)
//
// The time from S to R is shared: the uploads get upload-reserve - 3 s (the 3 s up to D are
// the release's) if that leaves the units at least as long, else the window is split evenly
// between the units' grace and the uploads.
//
// Why shared: a Spot notice seen late (or a short one) leaves less than --upload-reserve until
// D. Reserving the whole upload time then would leave the units no grace at all: they would be
// SIGKILLed at once, mid-checkpoint. A unit killed by the drain gets no checkpoint upload
// (unit_runner.h), so a grace too short to checkpoint in would lose the checkpoint outright.
// With upload-reserve 30 s (27 s of uploads):
//
//   window D - S   grace G - S   uploads R - G
//   115 s          85 s          27 s      (the usual two-minute notice: as before)
//    60 s          30 s          27 s
//    20 s          8.5 s         8.5 s
//     5 s          1 s           1 s
//     0 s          none (G = R = S - 3 s: killed at once, nothing released past D)
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
// The times of a drain that started at `started` (S) with deadline D, by the rule above. An
// upload_reserve of 3 s or less leaves no upload time: G = R.
DrainTimes PlanDrain(Clock::MonoTime started, Clock::MonoTime deadline,
                     std::chrono::seconds upload_reserve);

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
  // `now`: when the trigger was seen; the first one's is the drain's start S, from which the
  // window shared by the grace and the uploads is counted (a later, earlier D shrinks it).
  Offer Propose(DrainTrigger trigger, Clock::MonoTime deadline, Clock::MonoTime now);

  bool Active() const;
  // nullopt while no drain is under way.
  std::optional<DrainTimes> Times() const;
  // The trigger that started the drain (meaningful once Active()).
  DrainTrigger StartedBy() const;

 private:
  const std::chrono::seconds upload_reserve_;
  mutable std::mutex mu_;
  std::optional<Clock::MonoTime> deadline_;  // guarded by mu_
  Clock::MonoTime started_{};                // S, set with the first deadline_
  DrainTrigger started_by_ = DrainTrigger::kStopSignal;
};

}  // namespace spotgrid::agent
