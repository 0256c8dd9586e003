#include "agent/interruption_watch.h"

#include <algorithm>
#include <utility>

#include "agent/drain_plan.h"
#include "spotgrid/core/log.h"

namespace spotgrid::agent {

namespace {

using std::chrono::milliseconds;

constexpr const char* kTerminated = "Terminated";

int Index(InterruptionNotice::Kind kind) { return static_cast<int>(kind); }

}  // namespace

std::string_view ToString(InterruptionNotice::Kind kind) {
  switch (kind) {
    case InterruptionNotice::Kind::kSpotInterruption:
      return "Spot interruption notice";
    case InterruptionNotice::Kind::kRebalance:
      return "rebalance recommendation";
    case InterruptionNotice::Kind::kLifecycleTerminated:
      return "lifecycle transition to Terminated";
  }
  return "notice";
}

InterruptionWatch::InterruptionWatch(InstanceMetadata& imds, Clock& clock,
                                     InterruptionWatchOptions options, Callback on_notice)
    : imds_(imds), clock_(clock), options_(options), on_notice_(std::move(on_notice)) {}

InterruptionWatch::~InterruptionWatch() { Stop(); }

void InterruptionWatch::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void InterruptionWatch::Stop() {
  stop_.Request();
  if (thread_.joinable()) thread_.join();
}

void InterruptionWatch::Loop() {
  const milliseconds slice = std::max(options_.slice, milliseconds(1));
  while (!stop_.Requested()) {
    PollOnce();
    const Clock::MonoTime next = clock_.Monotonic() + options_.poll;
    while (!stop_.Requested()) {
      const auto left = std::chrono::duration_cast<milliseconds>(next - clock_.Monotonic());
      if (left <= milliseconds(0)) break;
      if (stop_.WaitFor(std::min(left, slice))) return;
    }
  }
}

void InterruptionWatch::LogFailure(int which, const Error& error) {
  if (failing_[which]) return;
  failing_[which] = true;
  Logger().warn("instance metadata: could not read {} (asked again every {}s): {}",
                which == Index(InterruptionNotice::Kind::kSpotInterruption) ? "spot/instance-action"
                : which == Index(InterruptionNotice::Kind::kRebalance)
                    ? "events/recommendations/rebalance"
                    : "autoscaling/target-lifecycle-state",
                options_.poll.count(), error.ToString());
}

void InterruptionWatch::Report(InterruptionNotice notice) {
  const int which = Index(notice.kind);
  if (reported_[which]) return;
  reported_[which] = true;
  if (on_notice_) on_notice_(notice);
}

void InterruptionWatch::PollOnce() {
  using Kind = InterruptionNotice::Kind;
  // The Spot notice first: it carries the hardest deadline.
  if (options_.spot && !reported_[Index(Kind::kSpotInterruption)] && !stop_.Requested()) {
    auto action = imds_.SpotInstanceAction();
    if (!action.ok()) {
      LogFailure(Index(Kind::kSpotInterruption), action.error());
    } else {
      failing_[Index(Kind::kSpotInterruption)] = false;
      if (*action) {
        InterruptionNotice notice;
        notice.kind = Kind::kSpotInterruption;
        notice.deadline = NoticeDeadline((*action)->time, clock_.Now(), clock_.Monotonic());
        notice.detail = (*action)->action;
        Report(std::move(notice));
      }
    }
  }
  if (options_.lifecycle && !reported_[Index(Kind::kLifecycleTerminated)] && !stop_.Requested()) {
    auto state = imds_.TargetLifecycleState();
    if (!state.ok()) {
      LogFailure(Index(Kind::kLifecycleTerminated), state.error());
    } else {
      failing_[Index(Kind::kLifecycleTerminated)] = false;
      if (*state && **state == kTerminated) {
        InterruptionNotice notice;
        notice.kind = Kind::kLifecycleTerminated;
        notice.deadline = StopDeadline(clock_.Monotonic(), options_.stop_timeout);
        notice.detail = **state;
        Report(std::move(notice));
      }
    }
  }
  if (options_.rebalance && !reported_[Index(Kind::kRebalance)] && !stop_.Requested()) {
    auto rebalance = imds_.RebalanceRecommendation();
    if (!rebalance.ok()) {
      LogFailure(Index(Kind::kRebalance), rebalance.error());
    } else {
      failing_[Index(Kind::kRebalance)] = false;
      if (*rebalance) {
        InterruptionNotice notice;
        notice.kind = Kind::kRebalance;
        notice.deadline = StopDeadline(clock_.Monotonic(), options_.stop_timeout);
        notice.detail = "rebalance recommended";
        Report(std::move(notice));
      }
    }
  }
}

}  // namespace spotgrid::agent
