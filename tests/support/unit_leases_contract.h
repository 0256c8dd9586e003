// The rules every UnitLeases keeps (docs/ledger.md, unit_leases.h), written once as a
// type-parameterised GoogleTest suite: tests/integration/ledger_leases_test.cc runs it on the
// DynamoDB ledger against dynalite, tests/unit/fake_unit_leases_test.cc on FakeUnitLeases, so
// the fake the agent's unit tests rely on is held to the same cases as the real thing.
//
// A Harness (the type parameter) provides, around one fresh store per test:
//   void SetUp(); void TearDown();             // may fail the test (ASSERT_*)
//   UnitLeases& Leases();                      // worker-side view
//   std::shared_ptr<UnitLeases> AnotherView(); // an independent client of the same store
//   void MakeJob(const std::string& job, int units);  // units "u0".. QUEUED, one row each:
//                                              //   command "run <i>", params {i, sq} = {i, i*i}
//   std::optional<UnitRecord> Unit(job, unit); // as stored
//   std::string Snapshot(job, unit);           // every stored attribute, to compare
//   JobCounts Counts(job);
//   void CancelJob(job);                       // as the controller's cancel
//   void Advance(std::chrono::seconds);  Clock::WallTime Now();
//
// Thread-safety: as GoogleTest fixtures (one test, one thread, except where a test races).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "spotgrid/ledger/unit_leases.h"

namespace spotgrid::testing {

template <typename Harness>
class UnitLeasesContract : public ::testing::Test {
 protected:
  void SetUp() override { harness_.SetUp(); }
  void TearDown() override { harness_.TearDown(); }

  static constexpr std::chrono::seconds kLease{60};

  ClaimResult Claim(const std::string& job, const std::string& unit, const std::string& owner,
                    UnitLeases* leases = nullptr) {
    ClaimRequest request{job, unit, owner, kLease};
    auto result = (leases ? *leases : harness_.Leases()).ClaimUnit(request);
    EXPECT_TRUE(result.ok()) << result.error().ToString();
    return result.ok() ? *result : ClaimResult{};
  }

  static AttemptEnd End(const LeaseRef& lease, std::optional<int> exit_code,
                        const std::string& reason, const std::string& error = "") {
    AttemptEnd end;
    end.lease = lease;
    end.exit_code = exit_code;
    end.reason = reason;
    end.error = error;
    return end;
  }

  UnitRecord Stored(const std::string& job, const std::string& unit) {
    auto record = harness_.Unit(job, unit);
    EXPECT_TRUE(record.has_value()) << job << "/" << unit;
    return record.value_or(UnitRecord{});
  }

  Harness harness_;
};

TYPED_TEST_SUITE_P(UnitLeasesContract);

TYPED_TEST_P(UnitLeasesContract, ClaimOfAQueuedUnitMakesItRunningAndReturnsItsRows) {
  this->harness_.MakeJob("j", 3);
  const Clock::WallTime now = this->harness_.Now();
  ClaimResult claim = this->Claim("j", "u1", "i-a/0");
  ASSERT_EQ(claim.outcome, ClaimOutcome::kClaimed);
  EXPECT_FALSE(claim.took_over);
  const UnitRecord& unit = claim.unit;
  EXPECT_EQ(unit.job, "j");
  EXPECT_EQ(unit.spec.id, "u1");
  ASSERT_EQ(unit.spec.rows.size(), 1u);
  EXPECT_EQ(unit.spec.rows[0].command, "run 1");
  EXPECT_EQ(unit.spec.rows[0].params,
            (std::vector<std::pair<std::string, std::string>>{{"i", "1"}, {"sq", "1"}}));
  EXPECT_EQ(unit.state, UnitState::kRunning);
  EXPECT_EQ(unit.attempt, 1);
  EXPECT_EQ(unit.owner, "i-a/0");
  ASSERT_TRUE(unit.lease_until.has_value());
  EXPECT_GE(*unit.lease_until, now + TestFixture::kLease - std::chrono::seconds(1));
  EXPECT_LE(*unit.lease_until, now + TestFixture::kLease);
  EXPECT_EQ(unit.started_at, now);
  EXPECT_EQ(unit.heartbeat_at, now);
  ASSERT_EQ(unit.attempts.size(), 1u);
  EXPECT_EQ(unit.attempts[0].n, 1);
  EXPECT_EQ(unit.attempts[0].owner, "i-a/0");
  EXPECT_EQ(unit.attempts[0].started_at, now);
  EXPECT_FALSE(unit.attempts[0].finished_at.has_value());

  UnitRecord stored = this->Stored("j", "u1");
  EXPECT_EQ(stored.state, UnitState::kRunning);
  EXPECT_EQ(stored.owner, "i-a/0");
  EXPECT_EQ(stored.attempt, 1);
  JobCounts counts = this->harness_.Counts("j");
  EXPECT_EQ(counts.running, 1);
  EXPECT_EQ(counts.queued, 2);
}

TYPED_TEST_P(UnitLeasesContract, ClaimOfALiveLeaseIsHeldElsewhereAndChangesNothing) {
  this->harness_.MakeJob("j", 2);
  ASSERT_EQ(this->Claim("j", "u0", "i-a/0").outcome, ClaimOutcome::kClaimed);
  this->harness_.Advance(std::chrono::seconds(30));
  const std::string before = this->harness_.Snapshot("j", "u0");
  auto other = this->harness_.AnotherView();
  ClaimResult second = this->Claim("j", "u0", "i-b/0", other.get());
  EXPECT_EQ(second.outcome, ClaimOutcome::kHeldElsewhere);
  EXPECT_EQ(second.unit.owner, "i-a/0");
  // Not even its own holder claims a live lease twice (a duplicate delivery).
  EXPECT_EQ(this->Claim("j", "u0", "i-a/0").outcome, ClaimOutcome::kHeldElsewhere);
  EXPECT_EQ(this->harness_.Snapshot("j", "u0"), before);
}

TYPED_TEST_P(UnitLeasesContract, ClaimAfterTheLeaseExpiredTakesOverAndRecordsTheLostAttempt) {
  this->harness_.MakeJob("j", 1);
  ASSERT_EQ(this->Claim("j", "u0", "i-a/0").outcome, ClaimOutcome::kClaimed);
  this->harness_.Advance(TestFixture::kLease + std::chrono::seconds(2));
  const Clock::WallTime now = this->harness_.Now();
  auto other = this->harness_.AnotherView();
  ClaimResult claim = this->Claim("j", "u0", "i-b/1", other.get());
  ASSERT_EQ(claim.outcome, ClaimOutcome::kClaimed);
  EXPECT_TRUE(claim.took_over);
  EXPECT_EQ(claim.unit.attempt, 2);
  EXPECT_EQ(claim.unit.owner, "i-b/1");
  EXPECT_EQ(claim.unit.interruptions, 1);
  EXPECT_EQ(claim.unit.failures, 0);
  EXPECT_EQ(claim.unit.started_at, now);
  ASSERT_EQ(claim.unit.spec.rows.size(), 1u);
  ASSERT_EQ(claim.unit.attempts.size(), 2u);
  EXPECT_EQ(claim.unit.attempts[0].n, 1);
  EXPECT_EQ(claim.unit.attempts[0].owner, "i-a/0");
  EXPECT_EQ(claim.unit.attempts[0].reason, "lost");
  EXPECT_EQ(claim.unit.attempts[1].n, 2);
  EXPECT_EQ(claim.unit.attempts[1].owner, "i-b/1");
  EXPECT_EQ(claim.unit.attempts[1].reason, "");

  UnitRecord stored = this->Stored("j", "u0");
  EXPECT_EQ(stored.owner, "i-b/1");
  EXPECT_EQ(stored.interruptions, 1);
  ASSERT_EQ(stored.attempts.size(), 2u);
  EXPECT_EQ(stored.attempts[0].reason, "lost");
  EXPECT_EQ(this->harness_.Counts("j").running, 1);
}

TYPED_TEST_P(UnitLeasesContract, RenewKeepsTheLeaseSoNobodyTakesOver) {
  this->harness_.MakeJob("j", 1);
  ClaimResult claim = this->Claim("j", "u0", "i-a/0");
  ASSERT_EQ(claim.outcome, ClaimOutcome::kClaimed);
  LeaseRef lease{"j", "u0", "i-a/0", claim.unit.attempt};
  for (int i = 0; i < 3; ++i) {
    this->harness_.Advance(std::chrono::seconds(45));
    auto renewed = this->harness_.Leases().RenewLease(lease, TestFixture::kLease, std::nullopt);
    ASSERT_TRUE(renewed.ok()) << renewed.error().ToString();
    EXPECT_FALSE(renewed->cancel_requested);
  }
  const Clock::WallTime now = this->harness_.Now();
  UnitRecord stored = this->Stored("j", "u0");
  EXPECT_EQ(stored.heartbeat_at, now);
  ASSERT_TRUE(stored.lease_until.has_value());
  EXPECT_GE(*stored.lease_until, now + TestFixture::kLease - std::chrono::seconds(1));
  auto other = this->harness_.AnotherView();
  EXPECT_EQ(this->Claim("j", "u0", "i-b/0", other.get()).outcome, ClaimOutcome::kHeldElsewhere);
}

TYPED_TEST_P(UnitLeasesContract, RenewStoresProgressClippedToAKibibyteOfUtf8) {
  this->harness_.MakeJob("j", 1);
  ClaimResult claim = this->Claim("j", "u0", "i-a/0");
  ASSERT_EQ(claim.outcome, ClaimOutcome::kClaimed);
  LeaseRef lease{"j", "u0", "i-a/0", 1};
  auto renewed =
      this->harness_.Leases().RenewLease(lease, TestFixture::kLease, std::string("step 3/10"));
  ASSERT_TRUE(renewed.ok()) << renewed.error().ToString();
  EXPECT_EQ(this->Stored("j", "u0").progress, "step 3/10");

  // 1 + 600 two-byte characters: 1201 bytes, clipped to 1023, never inside a character.
  std::string long_text = "x";
  for (int i = 0; i < 600; ++i) long_text += "\xC3\xA9";  // é
  renewed = this->harness_.Leases().RenewLease(lease, TestFixture::kLease, long_text);
  ASSERT_TRUE(renewed.ok()) << renewed.error().ToString();
  std::string stored = this->Stored("j", "u0").progress;
  EXPECT_EQ(stored.size(), 1023u);
  EXPECT_EQ(stored, long_text.substr(0, 1023));

  // Bytes that are not UTF-8 are replaced, not refused.
  renewed =
      this->harness_.Leases().RenewLease(lease, TestFixture::kLease, std::string("50%\xFF done"));
  ASSERT_TRUE(renewed.ok()) << renewed.error().ToString();
  EXPECT_EQ(this->Stored("j", "u0").progress, "50%\xEF\xBF\xBD done");

  // No progress leaves the last one.
  renewed = this->harness_.Leases().RenewLease(lease, TestFixture::kLease, std::nullopt);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(this->Stored("j", "u0").progress, "50%\xEF\xBF\xBD done");
}

TYPED_TEST_P(UnitLeasesContract, RenewReportsACancelRequest) {
  this->harness_.MakeJob("j", 2);
  ASSERT_EQ(this->Claim("j", "u0", "i-a/0").outcome, ClaimOutcome::kClaimed);
  LeaseRef lease{"j", "u0", "i-a/0", 1};
  auto before = this->harness_.Leases().RenewLease(lease, TestFixture::kLease, std::nullopt);
  ASSERT_TRUE(before.ok()) << before.error().ToString();
  EXPECT_FALSE(before->cancel_requested);

  this->harness_.CancelJob("j");
  auto after = this->harness_.Leases().RenewLease(lease, TestFixture::kLease, std::nullopt);
  ASSERT_TRUE(after.ok()) << after.error().ToString();
  EXPECT_TRUE(after->cancel_requested);

  // The agent stops the unit and ends it CANCELLED, counted once with the queued one.
  Status finished = this->harness_.Leases().FinishUnit(
      TestFixture::End(lease, 143, "cancelled", "cancelled by the controller"),
      UnitState::kCancelled);
  ASSERT_TRUE(finished.ok()) << finished.ToString();
  JobCounts counts = this->harness_.Counts("j");
  EXPECT_EQ(counts.cancelled, 2);
  EXPECT_EQ(counts.running, 0);
  EXPECT_EQ(counts.queued, 0);
  UnitRecord stored = this->Stored("j", "u0");
  EXPECT_EQ(stored.state, UnitState::kCancelled);
  ASSERT_EQ(stored.attempts.size(), 1u);
  EXPECT_EQ(stored.attempts[0].reason, "cancelled");
}

TYPED_TEST_P(UnitLeasesContract, AStaleOwnerCanNeitherRenewNorReleaseNorFinish) {
  this->harness_.MakeJob("j", 1);
  ASSERT_EQ(this->Claim("j", "u0", "i-a/0").outcome, ClaimOutcome::kClaimed);
  this->harness_.Advance(TestFixture::kLease + std::chrono::seconds(2));
  auto other = this->harness_.AnotherView();
  ASSERT_EQ(this->Claim("j", "u0", "i-b/0", other.get()).outcome, ClaimOutcome::kClaimed);
  const std::string before = this->harness_.Snapshot("j", "u0");
  const JobCounts counts_before = this->harness_.Counts("j");

  UnitLeases& leases = this->harness_.Leases();
  const LeaseRef stale{"j", "u0", "i-a/0", 1};          // the lost attempt
  const LeaseRef wrong_owner{"j", "u0", "i-a/0", 2};    // the current attempt, not ours
  const LeaseRef wrong_attempt{"j", "u0", "i-b/0", 1};  // the new owner, an old attempt
  for (const LeaseRef& lease : {stale, wrong_owner, wrong_attempt}) {
    SCOPED_TRACE(lease.owner + " attempt " + std::to_string(lease.attempt));
    auto renewed = leases.RenewLease(lease, TestFixture::kLease, std::string("mine"));
    ASSERT_FALSE(renewed.ok());
    EXPECT_TRUE(renewed.error().IsConditionFailed()) << renewed.error().ToString();
    Status released = leases.ReleaseUnit(TestFixture::End(lease, 1, "failed", "exit code 1"), true);
    ASSERT_FALSE(released.ok());
    EXPECT_TRUE(released.error().IsConditionFailed()) << released.ToString();
    for (UnitState to : {UnitState::kSucceeded, UnitState::kFailed, UnitState::kCancelled}) {
      Status finished = leases.FinishUnit(TestFixture::End(lease, 0, ""), to);
      ASSERT_FALSE(finished.ok());
      EXPECT_TRUE(finished.error().IsConditionFailed()) << finished.ToString();
    }
  }
  EXPECT_EQ(this->harness_.Snapshot("j", "u0"), before);
  JobCounts counts = this->harness_.Counts("j");
  EXPECT_EQ(counts.succeeded, counts_before.succeeded);
  EXPECT_EQ(counts.failed, counts_before.failed);
  EXPECT_EQ(counts.cancelled, counts_before.cancelled);
  EXPECT_EQ(counts.running, 1);
}

TYPED_TEST_P(UnitLeasesContract, FinishSucceededCountsOnceAndASecondFinishFails) {
  this->harness_.MakeJob("j", 2);
  ClaimResult claim = this->Claim("j", "u0", "i-a/0");
  ASSERT_EQ(claim.outcome, ClaimOutcome::kClaimed);
  this->harness_.Advance(std::chrono::seconds(5));
  const Clock::WallTime end_time = this->harness_.Now();
  LeaseRef lease{"j", "u0", "i-a/0", 1};
  Status first =
      this->harness_.Leases().FinishUnit(TestFixture::End(lease, 0, ""), UnitState::kSucceeded);
  ASSERT_TRUE(first.ok()) << first.ToString();
  Status second =
      this->harness_.Leases().FinishUnit(TestFixture::End(lease, 0, ""), UnitState::kSucceeded);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.error().IsConditionFailed()) << second.ToString();
  auto other = this->harness_.AnotherView();
  Status third = other->FinishUnit(TestFixture::End(lease, 0, ""), UnitState::kSucceeded);
  ASSERT_FALSE(third.ok());
  EXPECT_TRUE(third.error().IsConditionFailed()) << third.ToString();
  ASSERT_TRUE(this->harness_.Leases().FlushIntents("j", "i-a/0").ok());

  JobCounts counts = this->harness_.Counts("j");
  EXPECT_EQ(counts.succeeded, 1);
  EXPECT_EQ(counts.running, 0);
  EXPECT_EQ(counts.queued, 1);
  UnitRecord stored = this->Stored("j", "u0");
  EXPECT_EQ(stored.state, UnitState::kSucceeded);
  EXPECT_EQ(stored.exit_code, 0);
  EXPECT_EQ(stored.finished_at, end_time);
  EXPECT_EQ(stored.failures, 0);
  ASSERT_EQ(stored.attempts.size(), 1u);
  EXPECT_EQ(stored.attempts[0].reason, "succeeded");
  EXPECT_EQ(stored.attempts[0].exit_code, 0);
  EXPECT_EQ(stored.attempts[0].finished_at, end_time);
  // A finished unit's message is spent.
  ClaimResult again = this->Claim("j", "u0", "i-b/0", other.get());
  EXPECT_EQ(again.outcome, ClaimOutcome::kFinished);
  EXPECT_EQ(again.unit.state, UnitState::kSucceeded);
}

TYPED_TEST_P(UnitLeasesContract, RacingFinishersCountEachUnitOnce) {
  constexpr int kUnits = 4;
  this->harness_.MakeJob("j", kUnits);
  auto other = this->harness_.AnotherView();
  for (int i = 0; i < kUnits; ++i) {
    ASSERT_EQ(this->Claim("j", "u" + std::to_string(i), "i-a/0").outcome, ClaimOutcome::kClaimed);
  }
  this->harness_.Advance(TestFixture::kLease + std::chrono::seconds(2));
  for (int i = 0; i < kUnits; ++i) {
    ASSERT_EQ(this->Claim("j", "u" + std::to_string(i), "i-b/0", other.get()).outcome,
              ClaimOutcome::kClaimed);
  }
  // Per unit: the stale owner, the new owner and a duplicate of the new owner's finish (a
  // retried request from another client) all race.
  std::atomic<int> succeeded{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kUnits; ++i) {
    const std::string unit = "u" + std::to_string(i);
    auto finish = [&, unit](UnitLeases* leases, LeaseRef lease) {
      Status status = leases->FinishUnit(TestFixture::End(lease, 0, ""), UnitState::kSucceeded);
      if (status.ok()) {
        ++succeeded;
      } else if (!status.error().IsConditionFailed()) {
        ++unexpected;
      }
    };
    threads.emplace_back(finish, &this->harness_.Leases(), LeaseRef{"j", unit, "i-a/0", 1});
    threads.emplace_back(finish, other.get(), LeaseRef{"j", unit, "i-b/0", 2});
    threads.emplace_back(finish, &this->harness_.Leases(), LeaseRef{"j", unit, "i-b/0", 2});
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
  // Only the new owner's finish can land; whether its duplicate was refused or the original
  // yielded to it, each unit ends exactly once.
  EXPECT_EQ(succeeded.load(), kUnits);
  JobCounts counts = this->harness_.Counts("j");
  EXPECT_EQ(counts.succeeded, kUnits);
  EXPECT_EQ(counts.running, 0);
  for (int i = 0; i < kUnits; ++i) {
    UnitRecord stored = this->Stored("j", "u" + std::to_string(i));
    EXPECT_EQ(stored.state, UnitState::kSucceeded);
    EXPECT_EQ(stored.owner, "i-b/0");
    EXPECT_EQ(stored.attempt, 2);
  }
}

TYPED_TEST_P(UnitLeasesContract, FailedFinishCountsAFailureAndTheFailedCounter) {
  this->harness_.MakeJob("j", 2);
  ASSERT_EQ(this->Claim("j", "u1", "i-a/3").outcome, ClaimOutcome::kClaimed);
  LeaseRef lease{"j", "u1", "i-a/3", 1};
  Status status = this->harness_.Leases().FinishUnit(
      TestFixture::End(lease, 2, "failed", "exit code 2"), UnitState::kFailed);
  ASSERT_TRUE(status.ok()) << status.ToString();
  JobCounts counts = this->harness_.Counts("j");
  EXPECT_EQ(counts.failed, 1);
  EXPECT_EQ(counts.succeeded, 0);
  EXPECT_EQ(counts.running, 0);
  EXPECT_EQ(counts.queued, 1);
  UnitRecord stored = this->Stored("j", "u1");
  EXPECT_EQ(stored.state, UnitState::kFailed);
  EXPECT_EQ(stored.failures, 1);
  EXPECT_EQ(stored.exit_code, 2);
  EXPECT_EQ(stored.error, "exit code 2");
  ASSERT_EQ(stored.attempts.size(), 1u);
  EXPECT_EQ(stored.attempts[0].reason, "failed");
  EXPECT_EQ(stored.attempts[0].exit_code, 2);
  EXPECT_EQ(stored.attempts[0].error, "exit code 2");
}

TYPED_TEST_P(UnitLeasesContract, ReleasePutsTheUnitBackQueuedAndRecordsTheAttempt) {
  this->harness_.MakeJob("j", 1);
  ASSERT_EQ(this->Claim("j", "u0", "i-a/0").outcome, ClaimOutcome::kClaimed);
  this->harness_.Advance(std::chrono::seconds(7));
  const Clock::WallTime first_end = this->harness_.Now();
  Status released = this->harness_.Leases().ReleaseUnit(
      TestFixture::End({"j", "u0", "i-a/0", 1}, 3, "failed", "exit code 3"), true);
  ASSERT_TRUE(released.ok()) << released.ToString();
  UnitRecord stored = this->Stored("j", "u0");
  EXPECT_EQ(stored.state, UnitState::kQueued);
  EXPECT_EQ(stored.owner, "");
  EXPECT_FALSE(stored.lease_until.has_value());
  EXPECT_EQ(stored.failures, 1);
  EXPECT_EQ(stored.interruptions, 0);
  EXPECT_EQ(stored.attempt, 1);
  ASSERT_EQ(stored.attempts.size(), 1u);
  EXPECT_EQ(stored.attempts[0].reason, "failed");
  EXPECT_EQ(stored.attempts[0].exit_code, 3);
  EXPECT_EQ(stored.attempts[0].error, "exit code 3");
  EXPECT_EQ(stored.attempts[0].finished_at, first_end);
  JobCounts counts = this->harness_.Counts("j");
  EXPECT_EQ(counts.queued, 1);
  EXPECT_EQ(counts.running, 0);
  EXPECT_EQ(counts.failed, 0);

  // The next attempt claims it again; an interruption does not count as a failure.
  auto other = this->harness_.AnotherView();
  ClaimResult second = this->Claim("j", "u0", "i-b/0", other.get());
  ASSERT_EQ(second.outcome, ClaimOutcome::kClaimed);
  EXPECT_FALSE(second.took_over);
  EXPECT_EQ(second.unit.attempt, 2);
  ASSERT_EQ(second.unit.attempts.size(), 2u);
  EXPECT_EQ(second.unit.attempts[1].n, 2);
  EXPECT_FALSE(second.unit.exit_code.has_value());
  released = other->ReleaseUnit(
      TestFixture::End({"j", "u0", "i-b/0", 2}, std::nullopt, "interrupted", "spot interruption"),
      false);
  ASSERT_TRUE(released.ok()) << released.ToString();
  stored = this->Stored("j", "u0");
  EXPECT_EQ(stored.state, UnitState::kQueued);
  EXPECT_EQ(stored.failures, 1);
  EXPECT_EQ(stored.interruptions, 1);
  ASSERT_EQ(stored.attempts.size(), 2u);
  EXPECT_EQ(stored.attempts[1].reason, "interrupted");
  EXPECT_FALSE(stored.attempts[1].exit_code.has_value());
  EXPECT_EQ(stored.attempts[0].reason, "failed");
  EXPECT_EQ(this->Claim("j", "u0", "i-c/0").unit.attempt, 3);
}

TYPED_TEST_P(UnitLeasesContract, ClaimOfAMissingUnitOrJobIsMissing) {
  this->harness_.MakeJob("j", 1);
  EXPECT_EQ(this->Claim("j", "nope", "i-a/0").outcome, ClaimOutcome::kMissing);
  EXPECT_EQ(this->Claim("no-such-job", "u0", "i-a/0").outcome, ClaimOutcome::kMissing);
  EXPECT_FALSE(this->harness_.Unit("j", "nope").has_value());
}

TYPED_TEST_P(UnitLeasesContract, ClaimOfACancelledUnitIsFinished) {
  this->harness_.MakeJob("j", 1);
  this->harness_.CancelJob("j");
  ClaimResult claim = this->Claim("j", "u0", "i-a/0");
  EXPECT_EQ(claim.outcome, ClaimOutcome::kFinished);
  EXPECT_EQ(claim.unit.state, UnitState::kCancelled);
  EXPECT_EQ(this->Stored("j", "u0").attempt, 0);
}

TYPED_TEST_P(UnitLeasesContract, FinishRefusesANonTerminalState) {
  this->harness_.MakeJob("j", 1);
  ASSERT_EQ(this->Claim("j", "u0", "i-a/0").outcome, ClaimOutcome::kClaimed);
  Status status = this->harness_.Leases().FinishUnit(
      TestFixture::End({"j", "u0", "i-a/0", 1}, 0, ""), UnitState::kQueued);
  ASSERT_FALSE(status.ok());
  EXPECT_FALSE(status.error().IsConditionFailed());
  EXPECT_EQ(this->Stored("j", "u0").state, UnitState::kRunning);
}

// --- what the sweeper needs ----------------------------------------------------------------

TYPED_TEST_P(UnitLeasesContract, ListUnitsInStateListsAStateOldestFirstAndHonoursEnteredBefore) {
  this->harness_.MakeJob("j", 3);
  const Clock::WallTime made = this->harness_.Now();
  this->harness_.Advance(std::chrono::seconds(10));
  ASSERT_EQ(this->Claim("j", "u1", "i-a/0").outcome, ClaimOutcome::kClaimed);
  auto list = [&](UnitState state, std::optional<Clock::WallTime> before) {
    std::vector<UnitRecord> units;
    Status status = this->harness_.Leases().ListUnitsInState(
        "j", state, before, [&](const std::vector<UnitRecord>& page) {
          units.insert(units.end(), page.begin(), page.end());
          return true;
        });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return units;
  };
  std::vector<UnitRecord> queued = list(UnitState::kQueued, std::nullopt);
  ASSERT_EQ(queued.size(), 2u);
  EXPECT_EQ(queued[0].spec.id, "u0");
  EXPECT_EQ(queued[1].spec.id, "u2");
  EXPECT_EQ(queued[0].job, "j");
  EXPECT_EQ(queued[0].state, UnitState::kQueued);
  EXPECT_EQ(list(UnitState::kQueued, made).size(), 0u);  // entered at `made`, not before
  EXPECT_EQ(list(UnitState::kQueued, made + std::chrono::seconds(1)).size(), 2u);

  std::vector<UnitRecord> running = list(UnitState::kRunning, std::nullopt);
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].spec.id, "u1");
  EXPECT_EQ(running[0].owner, "i-a/0");
  EXPECT_EQ(running[0].attempt, 1);
  ASSERT_TRUE(running[0].lease_until.has_value());
  EXPECT_EQ(*running[0].lease_until, this->Stored("j", "u1").lease_until);
  EXPECT_EQ(running[0].state_since, this->Stored("j", "u1").state_since);
}

TYPED_TEST_P(UnitLeasesContract, MarkSweptLetsOneSweeperWinPerUnitStateAndResendAfter) {
  this->harness_.MakeJob("j", 1);
  ASSERT_EQ(this->Claim("j", "u0", "i-a/0").outcome, ClaimOutcome::kClaimed);
  this->harness_.Advance(TestFixture::kLease + std::chrono::seconds(10));
  const UnitRecord seen = this->Stored("j", "u0");
  const std::chrono::seconds resend_after(300);
  auto first = this->harness_.Leases().MarkSwept(seen, resend_after);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_TRUE(*first);
  std::shared_ptr<UnitLeases> other = this->harness_.AnotherView();
  auto second = other->MarkSwept(seen, resend_after);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_FALSE(*second);  // another sweeper has it

  this->harness_.Advance(resend_after + std::chrono::seconds(1));
  auto later = other->MarkSwept(seen, resend_after);
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(*later);  // its message may have been lost: once more

  // A unit that moved on (taken over) is not stamped on the strength of the old reading, but
  // its new state may be swept at once.
  ASSERT_EQ(this->Claim("j", "u0", "i-b/0").outcome, ClaimOutcome::kClaimed);
  auto stale = this->harness_.Leases().MarkSwept(seen, resend_after);
  ASSERT_TRUE(stale.ok());
  EXPECT_FALSE(*stale);
  this->harness_.Advance(TestFixture::kLease + std::chrono::seconds(10));
  auto fresh = this->harness_.Leases().MarkSwept(this->Stored("j", "u0"), resend_after);
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(*fresh);
  EXPECT_EQ(this->Stored("j", "u0").state, UnitState::kRunning);  // the stamp moves nothing
}

TYPED_TEST_P(UnitLeasesContract, FailPoisonedCountsOnceAndRefusesAUnitThatMoved) {
  this->harness_.MakeJob("j", 2);
  const UnitRecord queued = this->Stored("j", "u0");
  Status failed = this->harness_.Leases().FailPoisoned(queued, "poisoned");
  ASSERT_TRUE(failed.ok()) << failed.ToString();
  UnitRecord u0 = this->Stored("j", "u0");
  EXPECT_EQ(u0.state, UnitState::kFailed);
  EXPECT_EQ(u0.error, "poisoned");
  EXPECT_EQ(u0.failures, 0);
  EXPECT_TRUE(u0.finished_at.has_value());
  Status again = this->harness_.Leases().FailPoisoned(queued, "poisoned");
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(again.error().IsConditionFailed()) << again.ToString();
  EXPECT_EQ(this->harness_.Counts("j").failed, 1);

  ASSERT_EQ(this->Claim("j", "u1", "i-a/0").outcome, ClaimOutcome::kClaimed);
  const UnitRecord running = this->Stored("j", "u1");
  this->harness_.Advance(TestFixture::kLease + std::chrono::seconds(10));
  ASSERT_EQ(this->Claim("j", "u1", "i-b/0").outcome, ClaimOutcome::kClaimed);
  Status moved = this->harness_.Leases().FailPoisoned(running, "poisoned");
  ASSERT_FALSE(moved.ok());
  EXPECT_TRUE(moved.error().IsConditionFailed()) << moved.ToString();
  EXPECT_EQ(this->Stored("j", "u1").state, UnitState::kRunning);

  this->harness_.Advance(TestFixture::kLease + std::chrono::seconds(10));
  Status lapsed = this->harness_.Leases().FailPoisoned(this->Stored("j", "u1"), "poisoned");
  ASSERT_TRUE(lapsed.ok()) << lapsed.ToString();
  UnitRecord u1 = this->Stored("j", "u1");
  EXPECT_EQ(u1.state, UnitState::kFailed);
  ASSERT_EQ(u1.attempts.size(), 2u);
  EXPECT_EQ(u1.attempts[1].reason, "poison");
  EXPECT_EQ(u1.attempts[1].error, "poisoned");
  EXPECT_FALSE(u1.lease_until.has_value());
  JobCounts counts = this->harness_.Counts("j");
  EXPECT_EQ(counts.failed, 2);
  EXPECT_EQ(counts.running, 0);
  EXPECT_EQ(counts.queued, 0);
}

TYPED_TEST_P(UnitLeasesContract, ListActiveJobsListsAJobWithUnitsLeftAndGetUnitReadsAUnit) {
  this->harness_.MakeJob("j", 1);
  auto jobs = this->harness_.Leases().ListActiveJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.error().ToString();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].spec.id, "j");
  auto unit = this->harness_.Leases().GetUnit("j", "u0");
  ASSERT_TRUE(unit.ok() && unit->has_value());
  EXPECT_EQ((*unit)->spec.rows.size(), 1u);
  auto missing = this->harness_.Leases().GetUnit("j", "nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

REGISTER_TYPED_TEST_SUITE_P(
    UnitLeasesContract, ClaimOfAQueuedUnitMakesItRunningAndReturnsItsRows,
    ClaimOfALiveLeaseIsHeldElsewhereAndChangesNothing,
    ClaimAfterTheLeaseExpiredTakesOverAndRecordsTheLostAttempt, RenewKeepsTheLeaseSoNobodyTakesOver,
    RenewStoresProgressClippedToAKibibyteOfUtf8, RenewReportsACancelRequest,
    AStaleOwnerCanNeitherRenewNorReleaseNorFinish, FinishSucceededCountsOnceAndASecondFinishFails,
    RacingFinishersCountEachUnitOnce, FailedFinishCountsAFailureAndTheFailedCounter,
    ReleasePutsTheUnitBackQueuedAndRecordsTheAttempt, ClaimOfAMissingUnitOrJobIsMissing,
    ClaimOfACancelledUnitIsFinished, FinishRefusesANonTerminalState,
    ListUnitsInStateListsAStateOldestFirstAndHonoursEnteredBefore,
    MarkSweptLetsOneSweeperWinPerUnitStateAndResendAfter,
    FailPoisonedCountsOnceAndRefusesAUnitThatMoved,
    ListActiveJobsListsAJobWithUnitsLeftAndGetUnitReadsAUnit);

}  // namespace spotgrid::testing
