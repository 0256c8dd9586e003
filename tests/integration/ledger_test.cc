// Integration tests of the DynamoDB ledger against dynalite: every test has its own stack
// (table), so tests run in parallel.
#include "spotgrid/ledger/ledger.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "spotgrid/services/dynamodb_client.h"
#include "support/fake_clock.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::FakeClock;
using testing::UniqueName;
using testing::UseEmulators;

constexpr auto kTableTimeout = std::chrono::seconds(30);

UnitSpec MakeUnit(int i) {
  UnitSpec unit;
  unit.id = "u" + std::to_string(100000 + i);
  GridRow row;
  row.line = i + 2;
  row.command = "python3 simulate.py --seed " + std::to_string(i);
  row.params = {{"seed", std::to_string(i)}, {"alpha", "0." + std::to_string(i % 10)}};
  unit.rows.push_back(row);
  unit.content_sha256 = "sha-" + std::to_string(i);
  return unit;
}

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    auto context = AwsContext::Create();
    ASSERT_TRUE(context.ok()) << context.error().ToString();
    auto client = DynamoDbClient::Create(*context);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    db_ = *client;
    stack_ = UniqueName("lg");
    table_ = LedgerTableName(stack_);
    DynamoLedgerOptions options;
    options.table = table_;
    ledger_ = MakeDynamoLedger(db_, options, clock_);
    Status status = ledger_->EnsureTable(kTableTimeout);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  void TearDown() override {
    if (db_ && !table_.empty()) (void)db_->DeleteTable(table_);
  }

  JobSpec Job(const std::string& id, std::int64_t total) {
    JobSpec spec;
    spec.id = id;
    spec.command_template = "python3 simulate.py --seed {seed}";
    spec.grid_file = "grid.csv";
    spec.grid_sha256 = "abc";
    spec.columns = {"seed", "alpha"};
    spec.chunk = 1;
    spec.retry.max_attempts = 4;
    spec.retry.retry_exit_codes = {3, 1};
    spec.retry.fail_exit_codes = {2};
    spec.timeout_s = 3600;
    spec.total = total;
    spec.created_at = clock_.Now();
    return spec;
  }

  // A job with `n` queued units.
  void MakeJob(const std::string& job, int n) {
    auto created = ledger_->CreateJob(Job(job, n));
    ASSERT_TRUE(created.ok()) << created.error().ToString();
    ASSERT_TRUE(*created);
    std::vector<UnitSpec> units;
    for (int i = 0; i < n; ++i) units.push_back(MakeUnit(i));
    Status status = ledger_->PutNewUnits(job, units, nullptr);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  JobCounts CountsOf(const std::string& job) {
    auto counts = ledger_->Counts(job);
    EXPECT_TRUE(counts.ok()) << counts.error().ToString();
    return counts.ok() ? *counts : JobCounts{};
  }

  // What an agent's claim does (QUEUED -> RUNNING, attempt + 1, owner, lease): the claim is
  // the agent's code, so the test writes the documented item shape by hand.
  void ClaimByHand(const std::string& job, const std::string& unit, const std::string& owner,
                   Clock::WallTime lease_until) {
    auto current = ledger_->GetUnit(job, unit);
    ASSERT_TRUE(current.ok() && current->has_value());
    std::int64_t attempt = (*current)->attempt + 1;
    WriteOptions options;
    options.names = {{"#st", "state"}, {"#ow", "owner"}, {"#a", "attempt"}};
    options.values = {
        {":r", ddb::S("RUNNING")},
        {":q", ddb::S("QUEUED")},
        {":a", ddb::N(attempt)},
        {":o", ddb::S(owner)},
        {":l", ddb::N(static_cast<std::int64_t>(
                   std::chrono::duration_cast<std::chrono::seconds>(lease_until.time_since_epoch())
                       .count()))},
        {":gpk", ddb::S(job + "#RUNNING")},
        {":gsk", ddb::S("2020-01-01T00:00:00.000Z#" + unit)}};
    options.condition_expression = "#st = :q";
    WriteResult result = db_->UpdateItem(
        table_, {{"pk", ddb::S("JOB#" + job)}, {"sk", ddb::S("U#" + unit)}},
        "SET #st = :r, #a = :a, #ow = :o, lease_until = :l, gsi1pk = :gpk, gsi1sk = :gsk", options);
    ASSERT_TRUE(result.ok()) << result.error().ToString();
  }

  CountedTransitionRequest Succeed(const std::string& job, const std::string& unit,
                                   std::int64_t attempt, const std::string& owner) {
    CountedTransitionRequest request;
    request.job = job;
    request.unit = unit;
    request.from = UnitState::kRunning;
    request.attempt = attempt;
    request.owner = owner;
    request.to = UnitState::kSucceeded;
    request.writer = owner;
    request.extra_set = "exit_code = :xc";
    request.extra_remove = {"lease_until"};
    request.values = {{":xc", ddb::N(std::int64_t{0})}};
    return request;
  }

  std::size_t IntentsOf(const std::string& job) {
    auto record = ledger_->GetJob(job);
    EXPECT_TRUE(record.ok() && record->has_value());
    return record.ok() && record->has_value() ? (*record)->inflight.size() : 999;
  }

  // Whole milliseconds: the ledger stores times to the millisecond.
  FakeClock clock_{
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now())};
  std::shared_ptr<DynamoDbClient> db_;
  std::shared_ptr<Ledger> ledger_;
  std::string stack_;
  std::string table_;
};

TEST_F(LedgerTest, EnsureTableTwiceIsANoOpAndCreatesTheStateIndex) {
  Status again = ledger_->EnsureTable(kTableTimeout);
  EXPECT_TRUE(again.ok()) << again.ToString();
  auto description = db_->DescribeTable(table_);
  ASSERT_TRUE(description.ok()) << description.error().ToString();
  EXPECT_TRUE(description->IsActive());
  EXPECT_EQ(description->key_names, (std::vector<std::string>{"pk", "sk"}));
  EXPECT_EQ(description->index_status.count("by_state"), 1u);
}

TEST_F(LedgerTest, StackRoundTripsAndIsAbsentBeforeItIsStored) {
  auto none = ledger_->GetStack();
  ASSERT_TRUE(none.ok()) << none.error().ToString();
  EXPECT_FALSE(none->has_value());

  StackInfo stack;
  stack.name = stack_;
  stack.region = "us-east-1";
  stack.table = table_;
  stack.bucket = "my-bucket";
  stack.prefix = "runs/2026";
  stack.queue_url = "http://q/work";
  stack.queue_arn = "arn:aws:sqs:us-east-1:1:work";
  stack.dlq_url = "http://q/dlq";
  stack.dlq_arn = "arn:aws:sqs:us-east-1:1:dlq";
  stack.visibility_s = 1200;
  stack.max_receives = 7;
  stack.created_at = Clock::WallTime(std::chrono::milliseconds(1'790'000'000'123));
  ASSERT_TRUE(ledger_->PutStack(stack).ok());
  auto got = ledger_->GetStack();
  ASSERT_TRUE(got.ok() && got->has_value());
  const StackInfo& s = **got;
  EXPECT_EQ(s.name, stack.name);
  EXPECT_EQ(s.bucket, "my-bucket");
  EXPECT_EQ(s.prefix, "runs/2026");
  EXPECT_EQ(s.queue_url, stack.queue_url);
  EXPECT_EQ(s.dlq_arn, stack.dlq_arn);
  EXPECT_EQ(s.visibility_s, 1200);
  EXPECT_EQ(s.max_receives, 7);
  EXPECT_EQ(s.created_at, stack.created_at);

  DynamoLedgerOptions options;
  options.table = LedgerTableName(UniqueName("nostack"));
  auto missing = MakeDynamoLedger(db_, options, clock_)->GetStack();
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error().IsNotFound()) << missing.error().ToString();
}

TEST_F(LedgerTest, CreateJobReturnsFalseTheSecondTimeAndKeepsTheSpec) {
  JobSpec spec = Job("j1", 5);
  auto first = ledger_->CreateJob(spec);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_TRUE(*first);
  JobSpec other = spec;
  other.command_template = "something else";
  auto second = ledger_->CreateJob(other);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_FALSE(*second);

  auto job = ledger_->GetJob("j1");
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->spec.command_template, spec.command_template);
  EXPECT_EQ((*job)->spec.columns, spec.columns);
  EXPECT_EQ((*job)->spec.retry.max_attempts, 4);
  EXPECT_EQ((*job)->spec.retry.retry_exit_codes, (std::vector<int>{1, 3}));
  EXPECT_EQ((*job)->spec.retry.fail_exit_codes, (std::vector<int>{2}));
  EXPECT_EQ((*job)->spec.timeout_s, 3600);
  EXPECT_EQ((*job)->spec.total, 5);
  EXPECT_EQ((*job)->enqueue_state, EnqueueState::kWriting);

  ASSERT_TRUE(ledger_->SetEnqueueProgress("j1", 5, 6, true).ok());
  job = ledger_->GetJob("j1");
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->enqueue_state, EnqueueState::kDone);
  EXPECT_EQ((*job)->sent_through, 5);
  EXPECT_EQ((*job)->spec.total, 6);

  ASSERT_TRUE(ledger_->CreateJob(Job("j2", 1)).ok());
  auto jobs = ledger_->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.error().ToString();
  std::set<std::string> ids;
  for (const JobRecord& j : *jobs) ids.insert(j.spec.id);
  EXPECT_EQ(ids, (std::set<std::string>{"j1", "j2"}));
}

TEST_F(LedgerTest, ThousandNewUnitsAreAllSeenQueued) {
  constexpr int kUnits = 1000;
  ASSERT_TRUE(ledger_->CreateJob(Job("big", kUnits)).ok());
  std::vector<UnitSpec> units;
  for (int i = 0; i < kUnits; ++i) units.push_back(MakeUnit(i));
  std::vector<std::int64_t> progress;
  Status status =
      ledger_->PutNewUnits("big", units, [&](std::int64_t n) { progress.push_back(n); });
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), kUnits);

  auto hashes = ledger_->UnitHashes("big");
  ASSERT_TRUE(hashes.ok()) << hashes.error().ToString();
  ASSERT_EQ(hashes->size(), static_cast<std::size_t>(kUnits));
  EXPECT_EQ(hashes->at("u100007"), "sha-7");

  std::int64_t listed = 0;
  std::set<std::string> ids;
  ASSERT_TRUE(ledger_
                  ->ListUnits("big", std::nullopt,
                              [&](const std::vector<UnitRecord>& page) {
                                for (const UnitRecord& u : page) {
                                  ids.insert(u.spec.id);
                                  EXPECT_EQ(u.state, UnitState::kQueued);
                                }
                                listed += static_cast<std::int64_t>(page.size());
                                return true;
                              })
                  .ok());
  EXPECT_EQ(listed, kUnits);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kUnits));

  std::int64_t queued_listed = 0;
  ASSERT_TRUE(ledger_
                  ->ListUnits("big", UnitState::kQueued,
                              [&](const std::vector<UnitRecord>& page) {
                                queued_listed += static_cast<std::int64_t>(page.size());
                                return true;
                              })
                  .ok());
  EXPECT_EQ(queued_listed, kUnits);

  JobCounts counts = CountsOf("big");
  EXPECT_EQ(counts.total, kUnits);
  EXPECT_EQ(counts.queued, kUnits);
  EXPECT_EQ(counts.running + counts.succeeded + counts.failed + counts.cancelled, 0);

  auto unit = ledger_->GetUnit("big", "u100007");
  ASSERT_TRUE(unit.ok() && unit->has_value());
  ASSERT_EQ((*unit)->spec.rows.size(), 1u);
  EXPECT_EQ((*unit)->spec.rows[0].command, "python3 simulate.py --seed 7");
  EXPECT_EQ((*unit)->spec.rows[0].line, 9);
  // Column order comes back as the job's, not the map's.
  EXPECT_EQ((*unit)->spec.rows[0].params,
            (std::vector<std::pair<std::string, std::string>>{{"seed", "7"}, {"alpha", "0.7"}}));
}

TEST_F(LedgerTest, CancelCountsQueuedUnitsOnceAndFlagsRunningOnes) {
  MakeJob("c", 30);
  ClaimByHand("c", "u100000", "i-1/0", clock_.Now() + std::chrono::minutes(5));
  auto cancelled = ledger_->CancelJob("c");
  ASSERT_TRUE(cancelled.ok()) << cancelled.error().ToString();
  EXPECT_EQ(*cancelled, 29);
  JobCounts counts = CountsOf("c");
  EXPECT_EQ(counts.cancelled, 29);
  EXPECT_EQ(counts.running, 1);
  EXPECT_EQ(counts.queued, 0);
  EXPECT_EQ(IntentsOf("c"), 0u);

  // Nothing left to cancel: counted once only.
  auto again = ledger_->CancelJob("c");
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(*again, 0);
  EXPECT_EQ(CountsOf("c").cancelled, 29);

  auto running = db_->GetItem(table_, {{"pk", ddb::S("JOB#c")}, {"sk", ddb::S("U#u100000")}}, true);
  ASSERT_TRUE(running.ok() && running->has_value());
  EXPECT_EQ(ddb::GetBool(**running, "cancel_requested"), true);
  EXPECT_EQ(ddb::GetS(**running, "state"), "RUNNING");
}

TEST_F(LedgerTest, RetryBringsCancelledUnitsBackToQueued) {
  MakeJob("r", 5);
  ASSERT_TRUE(ledger_->CancelJob("r").ok());
  ASSERT_EQ(CountsOf("r").cancelled, 5);
  Status retried = ledger_->RetryUnit("r", "u100002");
  ASSERT_TRUE(retried.ok()) << retried.ToString();
  JobCounts counts = CountsOf("r");
  EXPECT_EQ(counts.cancelled, 4);
  EXPECT_EQ(counts.queued, 1);
  auto unit = ledger_->GetUnit("r", "u100002");
  ASSERT_TRUE(unit.ok() && unit->has_value());
  EXPECT_EQ((*unit)->state, UnitState::kQueued);

  // A queued unit cannot be retried.
  Status twice = ledger_->RetryUnit("r", "u100002");
  ASSERT_FALSE(twice.ok());
  EXPECT_TRUE(twice.error().IsConditionFailed()) << twice.ToString();
  EXPECT_EQ(CountsOf("r").cancelled, 4);
  // Only the retried unit is back in the QUEUED partition.
  auto queued = ledger_->RecentInState("r", UnitState::kQueued, 10);
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 1u);
  EXPECT_EQ((*queued)[0].spec.id, "u100002");
}

TEST_F(LedgerTest, StaleTransitionFailsCleanlyAndChangesNothing) {
  MakeJob("s", 3);
  ClaimByHand("s", "u100001", "i-1/0", clock_.Now() + std::chrono::minutes(5));
  // Wrong attempt.
  Status stale = ledger_->CountedTransition(Succeed("s", "u100001", 7, "i-1/0"));
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(stale.error().IsConditionFailed()) << stale.ToString();
  // Wrong owner.
  Status wrong_owner = ledger_->CountedTransition(Succeed("s", "u100001", 1, "i-2/0"));
  ASSERT_FALSE(wrong_owner.ok());
  EXPECT_TRUE(wrong_owner.error().IsConditionFailed());
  // Wrong state (the unit is QUEUED).
  Status wrong_state = ledger_->CountedTransition(Succeed("s", "u100002", 0, "i-1/0"));
  ASSERT_FALSE(wrong_state.ok());
  EXPECT_TRUE(wrong_state.error().IsConditionFailed());

  JobCounts counts = CountsOf("s");
  EXPECT_EQ(counts.succeeded, 0);
  EXPECT_EQ(counts.running, 1);
  EXPECT_EQ(IntentsOf("s"), 0u);
  auto unit = ledger_->GetUnit("s", "u100001");
  ASSERT_TRUE(unit.ok() && unit->has_value());
  EXPECT_EQ((*unit)->state, UnitState::kRunning);
  EXPECT_FALSE((*unit)->exit_code.has_value());
}

TEST_F(LedgerTest, DuplicateDeliveryOfATransitionCountsOnce) {
  MakeJob("d", 3);
  ClaimByHand("d", "u100000", "i-1/0", clock_.Now() + std::chrono::minutes(5));
  ASSERT_TRUE(ledger_->CountedTransition(Succeed("d", "u100000", 1, "i-1/0")).ok());
  Status again = ledger_->CountedTransition(Succeed("d", "u100000", 1, "i-1/0"));
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(again.error().IsConditionFailed());
  EXPECT_EQ(CountsOf("d").succeeded, 1);

  // The same from another ledger instance (no shared memory of pending intents).
  DynamoLedgerOptions options;
  options.table = table_;
  auto other = MakeDynamoLedger(db_, options, clock_);
  Status third = other->CountedTransition(Succeed("d", "u100000", 1, "i-1/0"));
  ASSERT_FALSE(third.ok());
  EXPECT_TRUE(third.error().IsConditionFailed()) << third.ToString();
  JobCounts counts = CountsOf("d");
  EXPECT_EQ(counts.succeeded, 1);
  EXPECT_EQ(counts.running, 0);
  EXPECT_EQ(counts.queued, 2);

  ASSERT_TRUE(ledger_->FlushIntents("d", "i-1/0").ok());
  EXPECT_EQ(IntentsOf("d"), 0u);
}

TEST_F(LedgerTest, RepairSettlesIntentsOfWritersThatDiedBetweenTheWrites) {
  MakeJob("x", 4);
  Clock::WallTime now = clock_.Now();
  // (a) the writer died after the unit write: the transition happened.
  ClaimByHand("x", "u100000", "i-1/0", now + std::chrono::minutes(5));
  CountedTransitionRequest done = Succeed("x", "u100000", 1, "i-1/0");
  done.crash_after_writes = 2;
  ASSERT_TRUE(ledger_->CountedTransition(done).ok());
  // (b) the writer died after step 1 only, and its lease has expired.
  ClaimByHand("x", "u100001", "i-2/0", now - std::chrono::seconds(30));
  CountedTransitionRequest lost = Succeed("x", "u100001", 1, "i-2/0");
  lost.crash_after_writes = 1;
  ASSERT_TRUE(ledger_->CountedTransition(lost).ok());
  // (c) a live writer after step 1: lease still valid, so repair must leave it alone.
  ClaimByHand("x", "u100002", "i-3/0", now + std::chrono::minutes(5));
  CountedTransitionRequest live = Succeed("x", "u100002", 1, "i-3/0");
  live.crash_after_writes = 1;
  ASSERT_TRUE(ledger_->CountedTransition(live).ok());

  EXPECT_EQ(CountsOf("x").succeeded, 3);  // three step-1 increments
  EXPECT_EQ(IntentsOf("x"), 3u);

  auto report = ledger_->RepairJob("x");
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  EXPECT_EQ(report->intents_settled, 1);
  EXPECT_EQ(report->intents_reverted, 1);
  EXPECT_EQ(report->intents_pending, 1);
  JobCounts counts = CountsOf("x");
  EXPECT_EQ(counts.succeeded, 2);  // (a) and the pending (c)
  EXPECT_EQ(IntentsOf("x"), 1u);

  // The revoked transition (b) can no longer happen, even if its writer comes back.
  auto b = ledger_->GetUnit("x", "u100001");
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->state, UnitState::kRunning);

  // (c)'s writer finishes: its count already stands, the intent goes with its repair.
  clock_.Advance(std::chrono::minutes(10));  // (c)'s lease expires
  report = ledger_->RepairJob("x");
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  EXPECT_EQ(report->intents_reverted, 1);
  counts = CountsOf("x");
  EXPECT_EQ(counts.succeeded, 1);
  EXPECT_EQ(counts.running, 2);
  EXPECT_EQ(IntentsOf("x"), 0u);

  // Now (b)'s unit can succeed for real, counted once.
  ASSERT_TRUE(ledger_->CountedTransition(Succeed("x", "u100001", 1, "i-2/0")).ok());
  counts = CountsOf("x");
  EXPECT_EQ(counts.succeeded, 2);
  EXPECT_EQ(counts.running, 1);
  auto recount = ledger_->RecountJob("x");
  ASSERT_TRUE(recount.ok());
  EXPECT_EQ(recount->succeeded, 2);
}

TEST_F(LedgerTest, ControllerIntentIsRevertedOnlyAfterTheGrace) {
  MakeJob("g", 2);
  CountedTransitionRequest cancel;
  cancel.job = "g";
  cancel.unit = "u100000";
  cancel.from = UnitState::kQueued;
  cancel.attempt = 0;
  cancel.to = UnitState::kCancelled;
  cancel.writer = "controller";
  cancel.crash_after_writes = 1;
  ASSERT_TRUE(ledger_->CountedTransition(cancel).ok());
  EXPECT_EQ(CountsOf("g").cancelled, 1);

  auto report = ledger_->RepairJob("g");
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->intents_pending, 1);
  EXPECT_EQ(CountsOf("g").cancelled, 1);

  clock_.Advance(std::chrono::seconds(61));
  report = ledger_->RepairJob("g");
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->intents_reverted, 1);
  JobCounts counts = CountsOf("g");
  EXPECT_EQ(counts.cancelled, 0);
  EXPECT_EQ(counts.queued, 2);
  EXPECT_EQ(IntentsOf("g"), 0u);
}

TEST_F(LedgerTest, TransitionSettlesAnotherWritersLeftoverIntentFirst) {
  MakeJob("o", 2);
  // The controller cancelled u100000 and died before removing its intent.
  CountedTransitionRequest cancel;
  cancel.job = "o";
  cancel.unit = "u100000";
  cancel.from = UnitState::kQueued;
  cancel.to = UnitState::kCancelled;
  cancel.writer = "controller";
  cancel.crash_after_writes = 2;
  ASSERT_TRUE(ledger_->CountedTransition(cancel).ok());
  // A retry through another ledger settles that intent and counts correctly.
  DynamoLedgerOptions options;
  options.table = table_;
  auto other = MakeDynamoLedger(db_, options, clock_);
  Status retried = other->RetryUnit("o", "u100000");
  ASSERT_TRUE(retried.ok()) << retried.ToString();
  JobCounts counts = CountsOf("o");
  EXPECT_EQ(counts.cancelled, 0);
  EXPECT_EQ(counts.queued, 2);
}

TEST_F(LedgerTest, RecountRepairsCorruptedCounters) {
  MakeJob("k", 6);
  ClaimByHand("k", "u100000", "i-1/0", clock_.Now() + std::chrono::minutes(5));
  ClaimByHand("k", "u100001", "i-1/1", clock_.Now() + std::chrono::minutes(5));
  ASSERT_TRUE(ledger_->CountedTransition(Succeed("k", "u100000", 1, "i-1/0")).ok());
  CountedTransitionRequest half = Succeed("k", "u100001", 1, "i-1/1");
  half.crash_after_writes = 1;  // leaves an intent and a wrong count
  ASSERT_TRUE(ledger_->CountedTransition(half).ok());

  WriteOptions options;
  options.names = {{"#t", "total"}};
  options.values = {{":s", ddb::N(std::int64_t{42})},
                    {":f", ddb::N(std::int64_t{-3})},
                    {":c", ddb::N(std::int64_t{9})},
                    {":t", ddb::N(std::int64_t{100})}};
  ASSERT_TRUE(db_->UpdateItem(table_, {{"pk", ddb::S("JOB#k")}, {"sk", ddb::S("#JOB")}},
                              "SET succeeded = :s, failed = :f, cancelled = :c, #t = :t", options)
                  .ok());
  auto recount = ledger_->RecountJob("k");
  ASSERT_TRUE(recount.ok()) << recount.error().ToString();
  EXPECT_EQ(recount->total, 6);
  EXPECT_EQ(recount->succeeded, 1);
  EXPECT_EQ(recount->running, 1);
  EXPECT_EQ(recount->queued, 4);
  JobCounts counts = CountsOf("k");
  EXPECT_EQ(counts.total, 6);
  EXPECT_EQ(counts.succeeded, 1);
  EXPECT_EQ(counts.failed, 0);
  EXPECT_EQ(counts.cancelled, 0);
  EXPECT_EQ(counts.queued, 4);
  EXPECT_EQ(IntentsOf("k"), 0u);
}

TEST_F(LedgerTest, CountEnteredSinceAndRecentInStateFollowStateTimes) {
  MakeJob("t", 5);
  std::vector<Clock::WallTime> times;
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(std::chrono::seconds(10));
    times.push_back(clock_.Now());
    CountedTransitionRequest cancel;
    cancel.job = "t";
    cancel.unit = "u10000" + std::to_string(i);
    cancel.from = UnitState::kQueued;
    cancel.to = UnitState::kCancelled;
    cancel.writer = "controller";
    ASSERT_TRUE(ledger_->CountedTransition(cancel).ok());
  }
  auto since = ledger_->CountEnteredSince("t", UnitState::kCancelled, times[2]);
  ASSERT_TRUE(since.ok()) << since.error().ToString();
  EXPECT_EQ(*since, 3);
  auto all = ledger_->CountEnteredSince("t", UnitState::kCancelled, times[0]);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 5);
  auto none = ledger_->CountEnteredSince("t", UnitState::kSucceeded, times[0]);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);

  auto recent = ledger_->RecentInState("t", UnitState::kCancelled, 2);
  ASSERT_TRUE(recent.ok()) << recent.error().ToString();
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ((*recent)[0].spec.id, "u100004");
  EXPECT_EQ((*recent)[1].spec.id, "u100003");
  EXPECT_EQ((*recent)[0].state_since, times[4]);
}

TEST_F(LedgerTest, WorkersRoundTrip) {
  WorkerRecord worker;
  worker.instance_id = "i-0abc";
  worker.instance_type = "c5.large";
  worker.spot = true;
  worker.availability_zone = "us-east-1a";
  worker.slots = 2;
  worker.units_in_hand = {"j/u1", "j/u2"};
  worker.started_at = Clock::WallTime(std::chrono::milliseconds(1'790'000'000'500));
  worker.last_heartbeat = worker.started_at + std::chrono::seconds(30);
  worker.state = WorkerState::kRunning;
  ASSERT_TRUE(ledger_->PutWorker(worker).ok());
  WorkerRecord second = worker;
  second.instance_id = "i-0def";
  second.spot = false;
  second.units_in_hand.clear();
  second.idle_since = worker.last_heartbeat;
  second.state = WorkerState::kEnded;
  second.ended_at = worker.last_heartbeat + std::chrono::seconds(5);
  ASSERT_TRUE(ledger_->PutWorker(second).ok());

  auto workers = ledger_->ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.error().ToString();
  ASSERT_EQ(workers->size(), 2u);
  const WorkerRecord& a = (*workers)[0];
  EXPECT_EQ(a.instance_id, "i-0abc");
  EXPECT_TRUE(a.spot);
  EXPECT_EQ(a.slots, 2);
  EXPECT_EQ(a.units_in_hand, worker.units_in_hand);
  EXPECT_EQ(a.started_at, worker.started_at);
  EXPECT_EQ(a.last_heartbeat, worker.last_heartbeat);
  EXPECT_FALSE(a.idle_since.has_value());
  const WorkerRecord& b = (*workers)[1];
  EXPECT_EQ(b.instance_id, "i-0def");
  EXPECT_FALSE(b.spot);
  EXPECT_EQ(b.idle_since, second.idle_since);
  EXPECT_EQ(b.ended_at, second.ended_at);
  EXPECT_EQ(b.state, WorkerState::kEnded);
}

TEST_F(LedgerTest, ReplaceUnitRefusesRunningUnits) {
  MakeJob("p", 2);
  UnitSpec replacement = MakeUnit(0);
  replacement.rows[0].command = "echo new";
  replacement.content_sha256 = "sha-new";
  ASSERT_TRUE(ledger_->ReplaceUnit("p", replacement).ok());
  auto hashes = ledger_->UnitHashes("p");
  ASSERT_TRUE(hashes.ok());
  EXPECT_EQ(hashes->at("u100000"), "sha-new");

  ClaimByHand("p", "u100001", "i-1/0", clock_.Now() + std::chrono::minutes(1));
  UnitSpec busy = MakeUnit(1);
  busy.content_sha256 = "sha-busy";
  Status refused = ledger_->ReplaceUnit("p", busy);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.error().IsConditionFailed());
}

}  // namespace
}  // namespace spotgrid
