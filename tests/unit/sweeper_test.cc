// The sweeper's rules (spotgrid/ledger/sweeper.h) against the in-memory ledger and queue on a
// fake clock: which units get a fresh message, how often, and what a dead letter does.
#include "spotgrid/ledger/sweeper.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "support/fake_clock.h"
#include "support/fake_sqs.h"
#include "support/fake_unit_leases.h"

namespace spotgrid::testing {
namespace {

using std::chrono::seconds;

constexpr seconds kLease{30};

class SweeperTest : public ::testing::Test {
 protected:
  SweepScope Scope() const {
    SweepScope scope;
    scope.queue_url = queue_;
    scope.dead_letter_url = dlq_;
    scope.max_receives = 3;
    return scope;
  }

  SweepReport Sweep(const Sweeper& sweeper) {
    auto report = sweeper.Sweep(Scope());
    EXPECT_TRUE(report.ok()) << report.error().ToString();
    return report.ok() ? *report : SweepReport{};
  }
  SweepReport Sweep() { return Sweep(sweeper_); }

  void Claim(const std::string& job, const std::string& unit, const std::string& owner) {
    auto claim = leases_.ClaimUnit({job, unit, owner, kLease});
    ASSERT_TRUE(claim.ok()) << claim.error().ToString();
    ASSERT_EQ(claim->outcome, ClaimOutcome::kClaimed);
  }

  // Bodies of the messages a queue still holds (visible or not).
  std::vector<std::string> Bodies(const std::string& queue) const {
    std::vector<std::string> bodies;
    for (const auto& message : sqs_.Messages(queue)) {
      if (!message.deleted) bodies.push_back(message.body);
    }
    return bodies;
  }

  FakeClock clock_;
  FakeUnitLeases leases_{clock_};
  FakeSqs sqs_{clock_};
  std::string queue_ = sqs_.AddQueue("work");
  std::string dlq_ = sqs_.AddQueue("work-dlq");
  Sweeper sweeper_{leases_, sqs_, clock_};
};

// --- lapsed leases ------------------------------------------------------------------------

TEST_F(SweeperTest, ALapsedLeaseGetsExactlyOneFreshMessage) {
  leases_.AddSimpleJob("j", 2);
  Claim("j", "u0", "i-a/0");
  clock_.Advance(kLease + seconds(7));  // past the lease and the 5 s grace

  SweepReport report = Sweep();
  EXPECT_EQ(report.jobs, 1);
  EXPECT_EQ(report.lapsed_resent, 1);
  EXPECT_EQ(report.orphans_resent, 0);  // u1 is younger than the orphan grace
  EXPECT_TRUE(report.first_error.ok()) << report.first_error.ToString();
  EXPECT_EQ(Bodies(queue_), std::vector<std::string>{EncodeUnitMessage("j", "u0")});
  // The message is all it takes: the claim path takes the unit over.
  auto claim = leases_.ClaimUnit({"j", "u0", "i-b/0", kLease});
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->outcome, ClaimOutcome::kClaimed);
  EXPECT_TRUE(claim->took_over);
}

TEST_F(SweeperTest, ASecondSweepWithinResendAfterSendsNothingEvenFromAnotherSweeper) {
  leases_.AddSimpleJob("j", 1);
  Claim("j", "u0", "i-a/0");
  clock_.Advance(kLease + seconds(7));
  ASSERT_EQ(Sweep().lapsed_resent, 1);

  Sweeper other_agent(leases_, sqs_, clock_);
  clock_.Advance(seconds(30));
  SweepReport again = Sweep(other_agent);
  EXPECT_EQ(again.lapsed_resent, 0);
  EXPECT_EQ(again.already_swept, 1);
  EXPECT_EQ(Bodies(queue_).size(), 1u);

  // Past resend_after (60 s) a unit still lapsed is sent again: the first message was lost.
  clock_.Advance(seconds(31));
  EXPECT_EQ(Sweep().lapsed_resent, 1);
  EXPECT_EQ(Bodies(queue_).size(), 2u);
}

TEST_F(SweeperTest, ALiveLeaseOrOneLapsedWithinTheGraceGetsNothing) {
  leases_.AddSimpleJob("j", 1);
  Claim("j", "u0", "i-a/0");
  clock_.Advance(seconds(20));
  EXPECT_EQ(Sweep().lapsed_resent, 0);
  clock_.Advance(seconds(13));  // 3 s past the lease: clock skew, not a dead agent
  EXPECT_EQ(Sweep().lapsed_resent, 0);
  EXPECT_TRUE(Bodies(queue_).empty());
  EXPECT_EQ(leases_.Calls(FakeUnitLeases::Op::kMarkSwept), 0);
}

TEST_F(SweeperTest, ANewAttemptThatLapsesSoonAfterASweepIsSweptAtOnce) {
  leases_.AddSimpleJob("j", 1);
  Claim("j", "u0", "i-a/0");
  clock_.Advance(kLease + seconds(7));
  ASSERT_EQ(Sweep().lapsed_resent, 1);
  Claim("j", "u0", "i-b/0");  // the takeover the message brought; that agent dies too
  clock_.Advance(kLease + seconds(7));
  // Well within resend_after of the first stamp, but the stamp was for the old attempt.
  EXPECT_EQ(Sweep().lapsed_resent, 1);
  EXPECT_EQ(Bodies(queue_).size(), 2u);
}

TEST_F(SweeperTest, AStampWithoutAVerdictStillSendsAndDoesNotStopTheOthers) {
  leases_.AddSimpleJob("j", 2);
  Claim("j", "u0", "i-a/0");
  Claim("j", "u1", "i-a/1");
  clock_.Advance(kLease + seconds(7));
  leases_.FailNext(FakeUnitLeases::Op::kMarkSwept, Error::Io("UpdateItem", "connection reset"));
  SweepReport report = Sweep();
  // The stamp may have landed with its reply lost: its unit is sent anyway, as is the other.
  EXPECT_EQ(report.lapsed_resent, 2);
  EXPECT_EQ(Bodies(queue_).size(), 2u);
  ASSERT_FALSE(report.first_error.ok());
  EXPECT_NE(report.first_error.ToString().find("connection reset"), std::string::npos);
  // The next sweep stamps the one whose stamp had no verdict (here it had not landed) and
  // sends it once more (a duplicate costs a delivery); the other is left alone.
  SweepReport next = Sweep();
  EXPECT_EQ(next.lapsed_resent, 1);
  EXPECT_EQ(next.already_swept, 1);
  EXPECT_TRUE(next.first_error.ok());
}

// --- orphans ------------------------------------------------------------------------------

TEST_F(SweeperTest, QueuedUnitsWithoutMessagesGetOneEachWhenTheQueueIsEmpty) {
  leases_.AddSimpleJob("j", 3);
  clock_.Advance(seconds(61));
  SweepReport report = Sweep();
  EXPECT_TRUE(report.queue_empty);
  EXPECT_EQ(report.orphans_resent, 3);
  std::vector<std::string> bodies = Bodies(queue_);
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{EncodeUnitMessage("j", "u0"),
                                              EncodeUnitMessage("j", "u1"),
                                              EncodeUnitMessage("j", "u2")}));
}

TEST_F(SweeperTest, NoOrphanIsSentWhileTheQueueHoldsAMessageVisibleOrInFlight) {
  leases_.AddSimpleJob("j", 2);
  clock_.Advance(seconds(61));
  sqs_.Send(queue_, EncodeUnitMessage("j", "u0"));
  SweepReport visible = Sweep();
  EXPECT_FALSE(visible.queue_empty);
  EXPECT_EQ(visible.orphans_resent, 0);

  ReceiveRequest receive;
  receive.wait_seconds = 0;
  auto received = sqs_.ReceiveMessage(queue_, receive);  // in flight now, not visible
  ASSERT_TRUE(received.ok() && received->size() == 1);
  SweepReport in_flight = Sweep();
  EXPECT_FALSE(in_flight.queue_empty);
  EXPECT_EQ(in_flight.orphans_resent, 0);
  EXPECT_EQ(Bodies(queue_).size(), 1u);
}

TEST_F(SweeperTest, OrphansAreSentOnlyForJobsWhoseEnqueueIsDone) {
  leases_.AddSimpleJob("j", 2);
  leases_.SetEnqueueState("j", EnqueueState::kWriting);  // the enqueue sends these itself
  clock_.Advance(seconds(61));
  SweepReport report = Sweep();
  EXPECT_EQ(report.jobs, 1);
  EXPECT_EQ(report.orphans_resent, 0);
  EXPECT_TRUE(Bodies(queue_).empty());
}

TEST_F(SweeperTest, AUnitQueuedLessThanTheOrphanGraceAgoIsNotAnOrphanYet) {
  leases_.AddSimpleJob("j", 1);
  clock_.Advance(seconds(59));  // a requeue writes the ledger before it sends
  EXPECT_EQ(Sweep().orphans_resent, 0);
  clock_.Advance(seconds(2));
  EXPECT_EQ(Sweep().orphans_resent, 1);
  clock_.Advance(seconds(10));  // the message was taken and lost again: within resend_after
  ASSERT_TRUE(sqs_.PurgeQueue(queue_).ok());
  EXPECT_EQ(Sweep().orphans_resent, 0);
}

TEST_F(SweeperTest, FinishedJobsAreNotLookedAt) {
  leases_.AddSimpleJob("done", 1);
  Claim("done", "u0", "i-a/0");
  AttemptEnd end;
  end.lease = {"done", "u0", "i-a/0", 1};
  end.exit_code = 0;
  ASSERT_TRUE(leases_.FinishUnit(end, UnitState::kSucceeded).ok());
  clock_.Advance(seconds(600));
  SweepReport report = Sweep();
  EXPECT_EQ(report.jobs, 0);
  EXPECT_EQ(leases_.Calls(FakeUnitLeases::Op::kListUnitsInState), 0);
  EXPECT_EQ(sqs_.CallCount("GetQueueAttributes"), 0);
}

// --- dead letters -------------------------------------------------------------------------

TEST_F(SweeperTest, ADeadLetterFailsAQueuedUnitAsPoisonCountedOnce) {
  leases_.AddSimpleJob("j", 2);
  sqs_.Send(dlq_, EncodeUnitMessage("j", "u0"));
  SweepReport report = Sweep();
  EXPECT_EQ(report.dead_letters, 1);
  EXPECT_EQ(report.poisoned, 1);
  EXPECT_EQ(report.dead_letters_deleted, 1);
  auto unit = leases_.Unit("j", "u0");
  ASSERT_TRUE(unit.has_value());
  EXPECT_EQ(unit->state, UnitState::kFailed);
  EXPECT_EQ(unit->error,
            "its message was delivered 3 times without the unit completing (dead-letter queue)");
  EXPECT_EQ(unit->failures, 0);  // no attempt of the command failed
  EXPECT_EQ(leases_.Counts("j").failed, 1);
  EXPECT_TRUE(Bodies(dlq_).empty());

  // A second dead letter for the same unit finds it FAILED: deleted, not counted again.
  sqs_.Send(dlq_, EncodeUnitMessage("j", "u0"));
  SweepReport again = Sweep();
  EXPECT_EQ(again.poisoned, 0);
  EXPECT_EQ(again.dead_letters_deleted, 1);
  EXPECT_EQ(leases_.Counts("j").failed, 1);
  EXPECT_EQ(leases_.Calls(FakeUnitLeases::Op::kFailPoisoned), 1);
}

TEST_F(SweeperTest, ADeadLetterForAUnitRunningUnderALiveLeaseIsOnlyDeleted) {
  leases_.AddSimpleJob("j", 1);
  Claim("j", "u0", "i-a/0");
  sqs_.Send(dlq_, EncodeUnitMessage("j", "u0"));
  SweepReport report = Sweep();
  EXPECT_EQ(report.poisoned, 0);
  EXPECT_EQ(report.dead_letters_deleted, 1);
  EXPECT_EQ(leases_.Unit("j", "u0")->state, UnitState::kRunning);
  EXPECT_TRUE(Bodies(dlq_).empty());
}

TEST_F(SweeperTest, ADeadLetterForAUnitRunningUnderALapsedLeaseFailsItAndClosesTheAttempt) {
  leases_.AddSimpleJob("j", 1);
  Claim("j", "u0", "i-a/0");
  clock_.Advance(kLease + seconds(7));
  sqs_.Send(dlq_, EncodeUnitMessage("j", "u0"));
  SweepReport report = Sweep();
  EXPECT_EQ(report.poisoned, 1);
  EXPECT_EQ(report.lapsed_resent, 0);  // failed first, so not sent again
  auto unit = leases_.Unit("j", "u0");
  ASSERT_TRUE(unit.has_value());
  EXPECT_EQ(unit->state, UnitState::kFailed);
  ASSERT_EQ(unit->attempts.size(), 1u);
  EXPECT_EQ(unit->attempts[0].reason, "poison");
  EXPECT_TRUE(unit->attempts[0].finished_at.has_value());
  EXPECT_TRUE(Bodies(queue_).empty());
}

TEST_F(SweeperTest, ADeadLetterForAFinishedUnitIsDeleted) {
  leases_.AddSimpleJob("j", 2);
  Claim("j", "u0", "i-a/0");
  AttemptEnd end;
  end.lease = {"j", "u0", "i-a/0", 1};
  end.exit_code = 0;
  ASSERT_TRUE(leases_.FinishUnit(end, UnitState::kSucceeded).ok());
  sqs_.Send(dlq_, EncodeUnitMessage("j", "u0"));
  SweepReport report = Sweep();
  EXPECT_EQ(report.poisoned, 0);
  EXPECT_EQ(report.dead_letters_deleted, 1);
  EXPECT_EQ(leases_.Unit("j", "u0")->state, UnitState::kSucceeded);
  EXPECT_EQ(leases_.Counts("j").failed, 0);
}

TEST_F(SweeperTest, GarbageAndDeadLettersForUnknownUnitsAreDeleted) {
  leases_.AddSimpleJob("j", 1);
  sqs_.Send(dlq_, "not json at all");
  sqs_.Send(dlq_, R"({"v":1,"job":"j"})");
  sqs_.Send(dlq_, EncodeUnitMessage("no-such-job", "u0"));
  sqs_.Send(dlq_, EncodeUnitMessage("j", "no-such-unit"));
  SweepReport report = Sweep();
  EXPECT_EQ(report.dead_letters, 4);
  EXPECT_EQ(report.dead_letters_deleted, 4);
  EXPECT_EQ(report.poisoned, 0);
  EXPECT_TRUE(report.first_error.ok()) << report.first_error.ToString();
  EXPECT_TRUE(Bodies(dlq_).empty());
  EXPECT_EQ(leases_.Unit("j", "u0")->state, UnitState::kQueued);
}

TEST_F(SweeperTest, ADeadLetterWhoseUnitCouldNotBeFailedStaysForALaterSweep) {
  leases_.AddSimpleJob("j", 1);
  sqs_.Send(dlq_, EncodeUnitMessage("j", "u0"));
  leases_.FailNext(FakeUnitLeases::Op::kFailPoisoned, Error::Io("UpdateItem", "timed out"));
  SweepReport report = Sweep();
  EXPECT_EQ(report.poisoned, 0);
  EXPECT_EQ(report.dead_letters_deleted, 0);
  EXPECT_FALSE(report.first_error.ok());
  EXPECT_EQ(Bodies(dlq_).size(), 1u);

  clock_.Advance(seconds(61));  // the dead letter's visibility timeout
  SweepReport later = Sweep();
  EXPECT_EQ(later.poisoned, 1);
  EXPECT_EQ(later.dead_letters_deleted, 1);
  EXPECT_EQ(leases_.Counts("j").failed, 1);
}

TEST_F(SweeperTest, ManyDeadLettersAreReadInBoundedRounds) {
  leases_.AddSimpleJob("j", 1);
  for (int i = 0; i < 60; ++i) sqs_.Send(dlq_, "garbage " + std::to_string(i));
  SweepReport report = Sweep();
  EXPECT_EQ(report.dead_letters, 50);  // 5 rounds of 10
  EXPECT_EQ(Bodies(dlq_).size(), 10u);
  EXPECT_EQ(Sweep().dead_letters, 10);
  EXPECT_TRUE(Bodies(dlq_).empty());
}

TEST_F(SweeperTest, ScopeOfOneJobLooksOnlyAtThatJob) {
  leases_.AddSimpleJob("a", 1);
  leases_.AddSimpleJob("b", 1);
  clock_.Advance(seconds(61));
  SweepScope scope = Scope();
  scope.job = "b";
  auto report = sweeper_.Sweep(scope);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->jobs, 1);
  EXPECT_EQ(report->orphans_resent, 1);
  EXPECT_EQ(Bodies(queue_), std::vector<std::string>{EncodeUnitMessage("b", "u0")});
}

}  // namespace
}  // namespace spotgrid::testing
