// FakeUnitLeases keeps the ledger's rules: it passes the same contract suite as the DynamoDB
// ledger (support/unit_leases_contract.h), and its test-only controls do what they say.
#include "support/fake_unit_leases.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "support/fake_clock.h"
#include "support/unit_leases_contract.h"

namespace spotgrid::testing {

// Named (not in an anonymous namespace) because its name ends up in the test names.
class FakeLeasesHarness {
 public:
  void SetUp() {}
  void TearDown() {}

  UnitLeases& Leases() { return *fake_; }
  // Every client of the fake sees one store: the fake itself.
  std::shared_ptr<UnitLeases> AnotherView() { return fake_; }

  void MakeJob(const std::string& job, int units) {
    JobSpec spec;
    spec.id = job;
    spec.command_template = "run {i}";
    spec.columns = {"i", "sq"};
    spec.created_at = clock_.Now();
    fake_->AddJob(spec);
    for (int i = 0; i < units; ++i) {
      UnitSpec unit;
      unit.id = "u" + std::to_string(i);
      GridRow row;
      row.line = i + 2;
      row.command = "run " + std::to_string(i);
      row.params = {{"i", std::to_string(i)}, {"sq", std::to_string(i * i)}};
      unit.rows.push_back(row);
      ASSERT_TRUE(fake_->AddUnit(job, unit));
    }
  }

  std::optional<UnitRecord> Unit(const std::string& job, const std::string& unit) {
    return fake_->Unit(job, unit);
  }

  std::string Snapshot(const std::string& job, const std::string& unit) {
    auto record = fake_->Unit(job, unit);
    if (!record) return "<none>";
    auto time = [](const std::optional<Clock::WallTime>& t) {
      return t ? std::to_string(t->time_since_epoch().count()) : std::string("-");
    };
    std::string out = std::string(ToString(record->state)) + " " +
                      std::to_string(record->state_since.time_since_epoch().count()) + " a" +
                      std::to_string(record->attempt) + " f" + std::to_string(record->failures) +
                      " i" + std::to_string(record->interruptions) + " " + record->owner + " " +
                      time(record->lease_until) + " " + time(record->heartbeat_at) + " " +
                      time(record->started_at) + " " + time(record->finished_at) + " " +
                      (record->exit_code ? std::to_string(*record->exit_code) : "-") + " " +
                      record->error + " [" + record->progress + "] c" +
                      std::to_string(fake_->CancelRequested(job, unit));
    for (const AttemptRecord& a : record->attempts) {
      out += " {" + std::to_string(a.n) + " " + a.owner + " " +
             std::to_string(a.started_at.time_since_epoch().count()) + " " + time(a.finished_at) +
             " " + (a.exit_code ? std::to_string(*a.exit_code) : "-") + " " + a.reason + " " +
             a.error + "}";
    }
    return out;
  }

  JobCounts Counts(const std::string& job) { return fake_->Counts(job); }
  void CancelJob(const std::string& job) { fake_->CancelJob(job); }
  void Advance(std::chrono::seconds by) { clock_.Advance(by); }
  Clock::WallTime Now() { return clock_.Now(); }

  FakeClock clock_;
  std::shared_ptr<FakeUnitLeases> fake_ = std::make_shared<FakeUnitLeases>(clock_);
};

INSTANTIATE_TYPED_TEST_SUITE_P(FakeUnitLeases, UnitLeasesContract,
                               ::testing::Types<FakeLeasesHarness>);

namespace {

class FakeUnitLeasesTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  FakeUnitLeases fake_{clock_};
};

TEST_F(FakeUnitLeasesTest, CountsCallsPerOperationFailedOnesIncluded) {
  fake_.AddSimpleJob("j", 2);
  ASSERT_TRUE(fake_.ClaimUnit({"j", "u0", "i-a/0", std::chrono::seconds(30)}).ok());
  ASSERT_TRUE(fake_.ClaimUnit({"j", "u0", "i-b/0", std::chrono::seconds(30)}).ok());
  EXPECT_FALSE(
      fake_.RenewLease({"j", "u0", "i-b/0", 1}, std::chrono::seconds(30), std::nullopt).ok());
  EXPECT_EQ(fake_.Calls(FakeUnitLeases::Op::kClaimUnit), 2);
  EXPECT_EQ(fake_.Calls(FakeUnitLeases::Op::kRenewLease), 1);
  EXPECT_EQ(fake_.Calls(FakeUnitLeases::Op::kFinishUnit), 0);
}

TEST_F(FakeUnitLeasesTest, AnInjectedFailureIsReturnedOnceAndChangesNothing) {
  fake_.AddSimpleJob("j", 1);
  Error throttled;
  throttled.category = ErrorCategory::kThrottled;
  throttled.message = "slow down";
  fake_.FailNext(FakeUnitLeases::Op::kClaimUnit, throttled);
  auto failed = fake_.ClaimUnit({"j", "u0", "i-a/0", std::chrono::seconds(30)});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().category, ErrorCategory::kThrottled);
  EXPECT_EQ(fake_.Unit("j", "u0")->state, UnitState::kQueued);
  auto claimed = fake_.ClaimUnit({"j", "u0", "i-a/0", std::chrono::seconds(30)});
  ASSERT_TRUE(claimed.ok());
  EXPECT_EQ(claimed->outcome, ClaimOutcome::kClaimed);
}

TEST_F(FakeUnitLeasesTest, ExpireLeaseLetsAnotherWorkerTakeOverAtOnce) {
  fake_.AddSimpleJob("j", 1);
  ASSERT_EQ(fake_.ClaimUnit({"j", "u0", "i-a/0", std::chrono::seconds(600)})->outcome,
            ClaimOutcome::kClaimed);
  EXPECT_EQ(fake_.ClaimUnit({"j", "u0", "i-b/0", std::chrono::seconds(600)})->outcome,
            ClaimOutcome::kHeldElsewhere);
  fake_.ExpireLease("j", "u0");
  auto claim = fake_.ClaimUnit({"j", "u0", "i-b/0", std::chrono::seconds(600)});
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->outcome, ClaimOutcome::kClaimed);
  EXPECT_TRUE(claim->took_over);
}

TEST_F(FakeUnitLeasesTest, SetCancelRequestedReachesTheHolderAtItsNextRenewal) {
  fake_.AddSimpleJob("j", 1);
  ASSERT_EQ(fake_.ClaimUnit({"j", "u0", "i-a/0", std::chrono::seconds(60)})->outcome,
            ClaimOutcome::kClaimed);
  fake_.SetCancelRequested("j", "u0");
  auto renewed = fake_.RenewLease({"j", "u0", "i-a/0", 1}, std::chrono::seconds(60), std::nullopt);
  ASSERT_TRUE(renewed.ok());
  EXPECT_TRUE(renewed->cancel_requested);
}

TEST_F(FakeUnitLeasesTest, StackJobAndWorkersAreWhatWasStored) {
  auto none = fake_.GetStack();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  StackInfo stack;
  stack.name = "s";
  stack.bucket = "b";
  fake_.SetStack(stack);
  auto got = fake_.GetStack();
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->bucket, "b");

  fake_.AddSimpleJob("j", 3, RetryRules{5, {1}, {2}});
  auto job = fake_.GetJob("j");
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->spec.total, 3);
  EXPECT_EQ((*job)->spec.retry.max_attempts, 5);
  auto missing = fake_.GetJob("other");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  WorkerRecord worker;
  worker.instance_id = "i-1";
  worker.units_in_hand = {"j/u0"};
  ASSERT_TRUE(fake_.PutWorker(worker).ok());
  ASSERT_TRUE(fake_.Worker("i-1").has_value());
  EXPECT_EQ(fake_.Worker("i-1")->units_in_hand, worker.units_in_hand);

  fake_.SetTableMissing(true);
  auto gone = fake_.GetStack();
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(gone.error().IsNotFound());
}

TEST_F(FakeUnitLeasesTest, SetUnitPutsAnyStateInPlace) {
  fake_.AddSimpleJob("j", 1);
  UnitRecord unit = *fake_.Unit("j", "u0");
  unit.state = UnitState::kSucceeded;
  fake_.SetUnit(unit);
  EXPECT_EQ(fake_.ClaimUnit({"j", "u0", "i-a/0", std::chrono::seconds(60)})->outcome,
            ClaimOutcome::kFinished);
}

}  // namespace
}  // namespace spotgrid::testing
