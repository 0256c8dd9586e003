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
  DrainTimes times = PlanDrain(kMono, kMono + 115s, 30s);
  EXPECT_EQ(times.deadline, kMono + 115s);
  EXPECT_EQ(times.grace_end, kMono + 85s);
  EXPECT_EQ(times.release_by, kMono + 112s);
}

TEST(DrainPlanTest, GraceNeverEndsAfterTheUploadCutOff) {
  DrainTimes times = PlanDrain(kMono, kMono + 60s, 1s);
  EXPECT_EQ(times.release_by, kMono + 57s);
  EXPECT_EQ(times.grace_end, kMono + 57s);
}

// A short window is shared: the uploads keep --upload-reserve (30 s, of which the last 3 s are
// the release's) only while that leaves the units as long a grace; below that the time up to
// R is split evenly. The 20 s row is the reported bug: a 30 s reserve used to leave 0 ms.
TEST(DrainPlanTest, ShortWindowIsSharedBetweenTheGraceAndTheUploads) {
  using std::chrono::milliseconds;
  struct Row {
    std::chrono::seconds window;  // D - S
    milliseconds grace;           // G - S
    milliseconds uploads;         // R - G
  };
  const Row rows[] = {
      {115s, 85'000ms, 27'000ms},
      {60s, 30'000ms, 27'000ms},
      {20s, 8'500ms, 8'500ms},
      {5s, 1'000ms, 1'000ms},
      {0s, -3'000ms, 0ms},  // nothing left: killed at once, G = R already past
  };
  for (const Row& row : rows) {
    SCOPED_TRACE("window " + std::to_string(row.window.count()) + " s");
    DrainTimes times = PlanDrain(kMono, kMono + row.window, 30s);
    EXPECT_EQ(times.deadline, kMono + row.window);
    EXPECT_EQ(times.release_by, kMono + row.window - 3s);
    EXPECT_EQ(times.grace_end - kMono, row.grace);
    EXPECT_EQ(times.release_by - times.grace_end, row.uploads);
  }
}

TEST(DrainPlanTest, WindowIsCountedFromTheDrainsStartNotFromNow) {
  // A notice seen late: D is 20 s after the drain started, the same times whenever asked.
  DrainPlan plan(30s);
  ASSERT_EQ(plan.Propose(DrainTrigger::kSpotInterruption, kMono + 20s, kMono),
            DrainPlan::Offer::kStarted);
  EXPECT_EQ(plan.Times()->grace_end, kMono + 8500ms);
  EXPECT_EQ(plan.Times()->release_by, kMono + 17s);
}

TEST(DrainPlanTest, FirstTriggerStartsTheDrain) {
  DrainPlan plan(30s);
  EXPECT_FALSE(plan.Active());
  EXPECT_FALSE(plan.Times().has_value());
  EXPECT_EQ(plan.Propose(DrainTrigger::kSpotInterruption, kMono + 115s, kMono),
            DrainPlan::Offer::kStarted);
  EXPECT_TRUE(plan.Active());
  EXPECT_EQ(plan.StartedBy(), DrainTrigger::kSpotInterruption);
  ASSERT_TRUE(plan.Times().has_value());
  EXPECT_EQ(plan.Times()->deadline, kMono + 115s);
  EXPECT_EQ(plan.Times()->grace_end, kMono + 85s);
}

TEST(DrainPlanTest, SecondStopSignalChangesNothing) {
  DrainPlan plan(30s);
  ASSERT_EQ(plan.Propose(DrainTrigger::kStopSignal, StopDeadline(kMono, 90s), kMono),
            DrainPlan::Offer::kStarted);
  // The second SIGTERM, ten seconds later, would give a later deadline: ignored.
  EXPECT_EQ(plan.Propose(DrainTrigger::kStopSignal, StopDeadline(kMono + 10s, 90s), kMono + 10s),
            DrainPlan::Offer::kUnchanged);
  EXPECT_EQ(plan.Times()->deadline, kMono + 85s);
  EXPECT_EQ(plan.StartedBy(), DrainTrigger::kStopSignal);
}

TEST(DrainPlanTest, LaterNoticeWithAnEarlierTimeMovesTheDeadlineEarlier) {
  DrainPlan plan(30s);
  ASSERT_EQ(plan.Propose(DrainTrigger::kStopSignal, kMono + 85s, kMono), DrainPlan::Offer::kStarted);
  EXPECT_EQ(plan.Propose(DrainTrigger::kSpotInterruption, kMono + 40s, kMono + 2s),
            DrainPlan::Offer::kMovedEarlier);
  EXPECT_EQ(plan.Times()->deadline, kMono + 40s);
  // The window still counts from the signal, now 40 s: R at +37 s, 18.5 s for the uploads.
  EXPECT_EQ(plan.Times()->grace_end, kMono + 18500ms);
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
