#include "agent/drain_plan.h"

#include <algorithm>

namespace spotgrid::agent {

std::string_view ToString(DrainTrigger trigger) {
  switch (trigger) {
    case DrainTrigger::kSpotInterruption:
      return "Spot interruption notice";
    case DrainTrigger::kStopSignal:
      return "stop signal";
    case DrainTrigger::kLifecycleTerminated:
      return "Auto Scaling lifecycle transition to Terminated";
    case DrainTrigger::kRebalance:
      return "rebalance recommendation";
  }
  return "drain";
}

Clock::MonoTime NoticeDeadline(Clock::WallTime notice_time, Clock::WallTime now,
                               Clock::MonoTime mono_now) {
  const auto until = std::chrono::duration_cast<std::chrono::nanoseconds>(notice_time - now);
  return mono_now + until - kDrainExitMargin;
}

Clock::MonoTime StopDeadline(Clock::MonoTime mono_now, std::chrono::seconds stop_timeout) {
  return mono_now + stop_timeout - kDrainExitMargin;
}

DrainTimes PlanDrain(Clock::MonoTime started, Clock::MonoTime deadline,
                     std::chrono::seconds upload_reserve) {
  using std::chrono::nanoseconds;
  DrainTimes times;
  times.deadline = deadline;
  times.release_by = deadline - kDrainReleaseMargin;
  const nanoseconds window = std::max(nanoseconds(0), times.release_by - started);
  const nanoseconds uploads =
      std::max(nanoseconds(0), std::min<nanoseconds>(upload_reserve - kDrainReleaseMargin,
                                                     window / 2));
  times.grace_end = times.release_by - uploads;
  return times;
}

DrainPlan::Offer DrainPlan::Propose(DrainTrigger trigger, Clock::MonoTime deadline,
                                    Clock::MonoTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!deadline_) {
    deadline_ = deadline;
    started_ = now;
    started_by_ = trigger;
    return Offer::kStarted;
  }
  if (deadline < *deadline_) {
    deadline_ = deadline;
    return Offer::kMovedEarlier;
  }
  return Offer::kUnchanged;
}

bool DrainPlan::Active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return deadline_.has_value();
}

std::optional<DrainTimes> DrainPlan::Times() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!deadline_) return std::nullopt;
  return PlanDrain(started_, *deadline_, upload_reserve_);
}

DrainTrigger DrainPlan::StartedBy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return started_by_;
}

}  // namespace spotgrid::agent
