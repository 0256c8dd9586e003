// The drain's deadlines: D from each trigger, G and R from D, and a plan that only ever moves
// D earlier.
#include "agent/drain_plan.h"

#include <gtest/gtest.h>

namespace spotgrid::agent {
namespace {

using namespace std::chrono_literals;

const Clock::WallTime kWall{std::chrono::seconds(1'700'000'000)};
const Clock::MonoTime kMono{std::chrono::hours(1)};

TEST(DrainPlanTest, SpotNoticeDeadlineIsFiveSecondsBeforeTheNoticeTime) {
  // A notice for two minutes from now, seen now.
  EXPECT_EQ(NoticeDeadline(kWall + 120s, kWall, kMono), kMono + 115s);
  // The same notice seen 40 s late keeps its own time: the window shrinks, it is not reset.
  EXPECT_EQ(NoticeDeadline(kWall + 120s, kWall + 40s, kMono + 40s), kMono + 115s);
}

TEST(DrainPlanTest, NoticeSeenAfterItsTimeGivesADeadlineInThePast) {
  EXPECT_EQ(NoticeDeadline(kWall, kWall + 2s, kMono), kMono - 7s);
}

TEST(DrainPlanTest, StopDeadlineIsTheStopTimeoutLessFiveSeconds) {
  EXPECT_EQ(StopDeadline(kMono, 90s), kMono + 85s);
  EXPECT_EQ(StopDeadline(kMono, 10s), kMono + 5s);
}

TEST(DrainPlanTest, GraceEndsAtTheUploadReserveAndUploadsThreeSecondsBeforeD) {
  DrainTimes times = PlanDrain(kMono + 115s, 30s);
  EXPECT_EQ(times.deadline, kMono + 115s);
  EXPECT_EQ(times.grace_end, kMono + 85s);
  EXPECT_EQ(times.release_by, kMono + 112s);
}

TEST(DrainPlanTest, GraceNeverEndsAfterTheUploadCutOff) {
  DrainTimes times = PlanDrain(kMono + 60s, 1s);
  EXPECT_EQ(times.release_by, kMono + 57s);
  EXPECT_EQ(times.grace_end, kMono + 57s);
}

TEST(DrainPlanTest, FirstTriggerStartsTheDrain) {
  DrainPlan plan(30s);
  EXPECT_FALSE(plan.Active());
  EXPECT_FALSE(plan.Times().has_value());
  EXPECT_EQ(plan.Propose(DrainTrigger::kSpotInterruption, kMono + 115s),
            DrainPlan::Offer::kStarted);
  EXPECT_TRUE(plan.Active());
  EXPECT_EQ(plan.StartedBy(), DrainTrigger::kSpotInterruption);
  ASSERT_TRUE(plan.Times().has_value());
  EXPECT_EQ(plan.Times()->deadline, kMono + 115s);
  EXPECT_EQ(plan.Times()->grace_end, kMono + 85s);
}

TEST(DrainPlanTest, SecondStopSignalChangesNothing) {
  DrainPlan plan(30s);
  ASSERT_EQ(plan.Propose(DrainTrigger::kStopSignal, StopDeadline(kMono, 90s)),
            DrainPlan::Offer::kStarted);
  // The second SIGTERM, ten seconds later, would give a later deadline: ignored.
  EXPECT_EQ(plan.Propose(DrainTrigger::kStopSignal, StopDeadline(kMono + 10s, 90s)),
            DrainPlan::Offer::kUnchanged);
  EXPECT_EQ(plan.Times()->deadline, kMono + 85s);
  EXPECT_EQ(plan.StartedBy(), DrainTrigger::kStopSignal);
}

TEST(DrainPlanTest, LaterNoticeWithAnEarlierTimeMovesTheDeadlineEarlier) {
  DrainPlan plan(30s);
  ASSERT_EQ(plan.Propose(DrainTrigger::kStopSignal, kMono + 85s), DrainPlan::Offer::kStarted);
  EXPECT_EQ(plan.Propose(DrainTrigger::kSpotInterruption, kMono + 40s),
            DrainPlan::Offer::kMovedEarlier);
  EXPECT_EQ(plan.Times()->deadline, kMono + 40s);
  EXPECT_EQ(plan.Times()->grace_end, kMono + 10s);
  // The drain is still the one the signal started.
  EXPECT_EQ(plan.StartedBy(), DrainTrigger::kStopSignal);
}

TEST(DrainPlanTest, TriggersHaveNamesForTheLog) {
  EXPECT_EQ(ToString(DrainTrigger::kSpotInterruption), "Spot interruption notice");
  EXPECT_EQ(ToString(DrainTrigger::kStopSignal), "stop signal");
  EXPECT_EQ(ToString(DrainTrigger::kRebalance), "rebalance recommendation");
}

}  // namespace
}  // namespace spotgrid::agent
