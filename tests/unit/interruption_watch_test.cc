// The watch over instance metadata: what it asks, how often by the Clock, the deadlines it
// reports, once per kind, and that it stops promptly.
#include "agent/interruption_watch.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <vector>

#include "support/fake_clock.h"
#include "support/fake_instance_metadata.h"
#include "support/test_env.h"

namespace spotgrid::agent {
namespace {

using spotgrid::testing::FakeClock;
using spotgrid::testing::FakeInstanceMetadata;
using spotgrid::testing::WaitUntil;
using namespace std::chrono_literals;
using Kind = InterruptionNotice::Kind;

constexpr std::chrono::milliseconds kDeadline{10000};

class InterruptionWatchTest : public ::testing::Test {
 protected:
  InterruptionWatchOptions Options() {
    InterruptionWatchOptions options;
    options.poll = 5s;
    options.stop_timeout = 90s;
    options.slice = 5ms;
    return options;
  }

  std::unique_ptr<InterruptionWatch> MakeWatch(InterruptionWatchOptions options) {
    return std::make_unique<InterruptionWatch>(imds_, clock_, options,
                                               [this](const InterruptionNotice& notice) {
                                                 std::lock_guard<std::mutex> lock(mu_);
                                                 notices_.push_back(notice);
                                               });
  }

  std::vector<InterruptionNotice> Notices() {
    std::lock_guard<std::mutex> lock(mu_);
    return notices_;
  }

  FakeClock clock_;
  FakeInstanceMetadata imds_;
  std::mutex mu_;
  std::vector<InterruptionNotice> notices_;
};

TEST_F(InterruptionWatchTest, QuietInstanceReportsNothing) {
  auto watch = MakeWatch(Options());
  watch->PollOnce();
  EXPECT_TRUE(Notices().empty());
  EXPECT_EQ(imds_.Reads("SpotInstanceAction"), 1);
  EXPECT_EQ(imds_.Reads("RebalanceRecommendation"), 1);
  EXPECT_EQ(imds_.Reads("TargetLifecycleState"), 1);
}

TEST_F(InterruptionWatchTest, SpotNoticeIsReportedWithTheDeadlineFromItsTime) {
  auto watch = MakeWatch(Options());
  imds_.SetSpotInstanceAction(SpotInstanceActionNotice{"terminate", clock_.Now() + 120s});
  watch->PollOnce();
  auto notices = Notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].kind, Kind::kSpotInterruption);
  EXPECT_EQ(notices[0].deadline, clock_.Monotonic() + 115s);
  EXPECT_EQ(notices[0].detail, "terminate");
}

TEST_F(InterruptionWatchTest, EachKindIsReportedOnceAndNoLongerAsked) {
  auto watch = MakeWatch(Options());
  imds_.SetSpotInstanceAction(SpotInstanceActionNotice{"stop", clock_.Now() + 120s});
  imds_.SetRebalance(RebalanceNotice{clock_.Now()});
  imds_.SetTargetLifecycleState("Terminated");
  watch->PollOnce();
  clock_.Advance(5s);
  watch->PollOnce();
  auto notices = Notices();
  ASSERT_EQ(notices.size(), 3u);
  EXPECT_EQ(notices[0].kind, Kind::kSpotInterruption);
  EXPECT_EQ(notices[1].kind, Kind::kLifecycleTerminated);
  EXPECT_EQ(notices[2].kind, Kind::kRebalance);
  EXPECT_EQ(imds_.Reads("SpotInstanceAction"), 1);
  EXPECT_EQ(imds_.Reads("TargetLifecycleState"), 1);
  EXPECT_EQ(imds_.Reads("RebalanceRecommendation"), 1);
}

TEST_F(InterruptionWatchTest, LifecycleAndRebalanceDeadlinesAreTheStopTimeoutLessFiveSeconds) {
  auto watch = MakeWatch(Options());
  imds_.SetRebalance(RebalanceNotice{clock_.Now()});
  imds_.SetTargetLifecycleState("Terminated");
  watch->PollOnce();
  auto notices = Notices();
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_EQ(notices[0].deadline, clock_.Monotonic() + 85s);
  EXPECT_EQ(notices[1].deadline, clock_.Monotonic() + 85s);
}

TEST_F(InterruptionWatchTest, OtherLifecycleStatesAreNotATermination) {
  auto watch = MakeWatch(Options());
  imds_.SetTargetLifecycleState("InService");
  watch->PollOnce();
  imds_.SetTargetLifecycleState("Warmed:Stopped");
  watch->PollOnce();
  EXPECT_TRUE(Notices().empty());
}

TEST_F(InterruptionWatchTest, OnlyTheChosenItemsAreAsked) {
  InterruptionWatchOptions options = Options();
  options.spot = false;
  options.rebalance = false;
  auto watch = MakeWatch(options);
  imds_.SetSpotInstanceAction(SpotInstanceActionNotice{"terminate", clock_.Now() + 120s});
  watch->PollOnce();
  EXPECT_TRUE(Notices().empty());
  EXPECT_EQ(imds_.Reads("SpotInstanceAction"), 0);
  EXPECT_EQ(imds_.Reads("RebalanceRecommendation"), 0);
  EXPECT_EQ(imds_.Reads("TargetLifecycleState"), 1);
}

TEST_F(InterruptionWatchTest, FailedReadsAreAskedAgainAtTheNextPoll) {
  auto watch = MakeWatch(Options());
  Error down;
  down.category = ErrorCategory::kTransient;
  down.service = "IMDS";
  down.message = "connection refused";
  imds_.FailReads(down);
  imds_.SetSpotInstanceAction(SpotInstanceActionNotice{"terminate", clock_.Now() + 120s});
  watch->PollOnce();
  EXPECT_TRUE(Notices().empty());
  imds_.FailReads(std::nullopt);
  watch->PollOnce();
  ASSERT_EQ(Notices().size(), 1u);
  EXPECT_EQ(imds_.Reads("SpotInstanceAction"), 2);
}

TEST_F(InterruptionWatchTest, ThreadPollsAtOnceThenEveryPollByTheClock) {
  auto watch = MakeWatch(Options());
  watch->Start();
  ASSERT_TRUE(WaitUntil([&] { return imds_.Reads("SpotInstanceAction") == 1; }, kDeadline));
  // The fake clock stands still: no second poll however long the real wait.
  ASSERT_TRUE(WaitUntil([&] { return imds_.Reads("RebalanceRecommendation") == 1; }, kDeadline));
  EXPECT_FALSE(WaitUntil([&] { return imds_.Reads("SpotInstanceAction") > 1; }, 100ms));
  clock_.Advance(4s);
  EXPECT_FALSE(WaitUntil([&] { return imds_.Reads("SpotInstanceAction") > 1; }, 100ms));
  clock_.Advance(1s);
  ASSERT_TRUE(WaitUntil([&] { return imds_.Reads("SpotInstanceAction") == 2; }, kDeadline));
  imds_.SetSpotInstanceAction(SpotInstanceActionNotice{"terminate", clock_.Now() + 120s});
  clock_.Advance(5s);
  ASSERT_TRUE(WaitUntil([&] { return Notices().size() == 1; }, kDeadline));
  watch->Stop();
}

TEST_F(InterruptionWatchTest, StopReturnsPromptlyWhileWaitingForTheNextPoll) {
  InterruptionWatchOptions options = Options();
  options.poll = 3600s;
  options.slice = 200ms;
  auto watch = MakeWatch(options);
  watch->Start();
  ASSERT_TRUE(WaitUntil([&] { return imds_.Reads("TargetLifecycleState") == 1; }, kDeadline));
  const auto started = std::chrono::steady_clock::now();
  watch->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
}

}  // namespace
}  // namespace spotgrid::agent
