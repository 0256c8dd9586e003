// The counted transition under a hostile network, against dynalite: each write of the finish
// path (and the claim, the release, the repair) meets each fault a network can cause, and the
// ledger must still count the unit exactly once, never take its own write for another
// worker's, and never revert a count whose unit carries the transition.
//
//   fault            what the writer sees
//   lost reply       the write was applied, its reply lost, and the client's retry of the same
//                    request met the applied write (a failed condition, or a repeat)
//   applied, failed  the write was applied, and every retry of it failed (no verdict)
//   never arrived    the write failed before it reached DynamoDB (no verdict either)
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "spotgrid/ledger/ledger.h"
#include "spotgrid/services/dynamodb_client.h"
#include "support/fake_clock.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::FakeClock;
using testing::UniqueName;
using testing::UseEmulators;

enum class Fault { kLostReply, kAppliedThenFailed, kNeverArrived };

const char* Name(Fault fault) {
  switch (fault) {
    case Fault::kLostReply:
      return "LostReply";
    case Fault::kAppliedThenFailed:
      return "AppliedThenFailed";
    case Fault::kNeverArrived:
      return "NeverArrived";
  }
  return "?";
}

// The writes a transition makes, told apart by what their update expressions contain.
enum class Step { kAddIntent, kMoveUnit, kRemoveIntent, kClaim, kFence, kUndo, kCountsWrite };

bool Matches(Step step, const std::string& expression) {
  auto has = [&](const char* text) { return expression.find(text) != std::string::npos; };
  switch (step) {
    case Step::kAddIntent:
      return has("SET inflight.#u = :intent");
    case Step::kMoveUnit:
      return has("last_intent = :iid");
    case Step::kRemoveIntent:
      return expression == "REMOVE inflight.#u";
    case Step::kClaim:
      return has("last_claim = :cid");
    case Step::kFence:
      return has("revoked_intent = :id");
    case Step::kUndo:
      return has("REMOVE inflight.#u") && has("ADD seq");
    case Step::kCountsWrite:
      return has("succeeded = :s, failed = :f");
  }
  return false;
}

Error Unanswered() {
  Error error;
  error.category = ErrorCategory::kTransient;
  error.service = "DynamoDB";
  error.operation = "UpdateItem";
  error.code = "ConnectionFailed";
  error.message = "connection closed before the response (fault injected)";
  return error;
}

WriteResult NoReply() {
  WriteResult result;
  result.status = Unanswered();
  return result;
}

// A DynamoDb that forwards to dynalite and injects faults into UpdateItem calls, as the
// network between an agent and DynamoDB would.
class FaultyDynamoDb final : public DynamoDb {
 public:
  explicit FaultyDynamoDb(std::shared_ptr<DynamoDb> inner) : inner_(std::move(inner)) {}

  // The next `times` writes of `step` meet `fault` (-1: every one from now on).
  void Inject(Step step, Fault fault, int times = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    rules_.push_back({step, fault, times});
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    rules_.clear();
  }
  int faults() const { return faults_; }
  // Items the ledger read through Query (pages of the by_state index, counts included).
  int items_queried() const { return items_queried_; }
  // Runs `action` once, just before the next write of `step` goes out.
  void Before(Step step, std::function<void()> action) {
    std::lock_guard<std::mutex> lock(mu_);
    before_.push_back({step, std::move(action)});
  }

  WriteResult UpdateItem(const std::string& table, const json& key, const std::string& expression,
                         const WriteOptions& options) override {
    std::function<void()> action;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = before_.begin(); it != before_.end(); ++it) {
        if (Matches(it->first, expression)) {
          action = std::move(it->second);
          before_.erase(it);
          break;
        }
      }
    }
    if (action) action();
    std::optional<Fault> fault = Take(expression);
    if (!fault) return inner_->UpdateItem(table, key, expression, options);
    ++faults_;
    switch (*fault) {
      case Fault::kNeverArrived:
        return NoReply();
      case Fault::kAppliedThenFailed:
        (void)inner_->UpdateItem(table, key, expression, options);
        return NoReply();
      case Fault::kLostReply:
        (void)inner_->UpdateItem(table, key, expression, options);
        return inner_->UpdateItem(table, key, expression, options);  // the client's retry
    }
    return NoReply();
  }

  // Everything else goes straight through.
  Result<TableDescription> CreateTable(const TableSpec& spec) override {
    return inner_->CreateTable(spec);
  }
  Result<TableDescription> DescribeTable(const std::string& table) override {
    return inner_->DescribeTable(table);
  }
  Status DeleteTable(const std::string& table) override { return inner_->DeleteTable(table); }
  Status WaitUntilActive(const std::string& table, std::chrono::milliseconds timeout) override {
    return inner_->WaitUntilActive(table, timeout);
  }
  Status EnsureTable(const TableSpec& spec, std::chrono::milliseconds timeout) override {
    return inner_->EnsureTable(spec, timeout);
  }
  Result<std::optional<json>> GetItem(const std::string& table, const json& key,
                                      bool consistent_read) override {
    return inner_->GetItem(table, key, consistent_read);
  }
  WriteResult PutItem(const std::string& table, const json& item,
                      const WriteOptions& options) override {
    return inner_->PutItem(table, item, options);
  }
  WriteResult DeleteItem(const std::string& table, const json& key,
                         const WriteOptions& options) override {
    return inner_->DeleteItem(table, key, options);
  }
  BatchWriteResult BatchWriteItem(const std::string& table,
                                  std::span<const WriteRequest> requests) override {
    return inner_->BatchWriteItem(table, requests);
  }
  Status Query(const QueryRequest& request, const PageCallback& on_page) override {
    return inner_->Query(request, [&](Page& page) {
      items_queried_ += static_cast<int>(page.items.size());
      return on_page(page);
    });
  }
  Result<std::vector<json>> QueryAll(const QueryRequest& request) override {
    return inner_->QueryAll(request);
  }
  Status Scan(const ScanRequest& request, const PageCallback& on_page) override {
    return inner_->Scan(request, on_page);
  }
  Result<std::vector<json>> ScanAll(const ScanRequest& request) override {
    return inner_->ScanAll(request);
  }
  Status ParallelScan(const ScanRequest& request, int segments,
                      const PageCallback& on_page) override {
    return inner_->ParallelScan(request, segments, on_page);
  }
  Result<std::vector<json>> ParallelScanAll(const ScanRequest& request, int segments) override {
    return inner_->ParallelScanAll(request, segments);
  }

 private:
  struct Rule {
    Step step;
    Fault fault;
    int times;
  };

  std::optional<Fault> Take(const std::string& expression) {
    std::lock_guard<std::mutex> lock(mu_);
    for (Rule& rule : rules_) {
      if (rule.times == 0 || !Matches(rule.step, expression)) continue;
      if (rule.times > 0) --rule.times;
      return rule.fault;
    }
    return std::nullopt;
  }

  std::shared_ptr<DynamoDb> inner_;
  std::mutex mu_;
  std::vector<Rule> rules_;
  std::vector<std::pair<Step, std::function<void()>>> before_;
  std::atomic<int> faults_{0};
  std::atomic<int> items_queried_{0};
};

constexpr auto kTableTimeout = std::chrono::seconds(30);
constexpr auto kLease = std::chrono::seconds(60);
// How often the agent's runner tries an end write again before it gives the unit up.
constexpr int kWriterTries = 4;

class CountedTransitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    auto context = AwsContext::Create();
    ASSERT_TRUE(context.ok()) << context.error().ToString();
    auto client = DynamoDbClient::Create(*context);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    real_ = *client;
    db_ = std::make_shared<FaultyDynamoDb>(real_);
    table_ = LedgerTableName(UniqueName("ct"));
    DynamoLedgerOptions options;
    options.table = table_;
    ledger_ = MakeDynamoLedger(db_, options, clock_);
    Status status = ledger_->EnsureTable(kTableTimeout);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  void TearDown() override {
    if (real_ && !table_.empty()) (void)real_->DeleteTable(table_);
  }

  void MakeJob(int units) {
    JobSpec spec;
    spec.id = "j";
    spec.command_template = "true";
    spec.grid_file = "grid.csv";
    spec.grid_sha256 = "abc";
    spec.columns = {"seed"};
    spec.chunk = 1;
    spec.total = units;
    spec.created_at = clock_.Now();
    auto created = ledger_->CreateJob(spec);
    ASSERT_TRUE(created.ok() && *created);
    std::vector<UnitSpec> specs;
    for (int i = 0; i < units; ++i) {
      UnitSpec unit;
      unit.id = "u" + std::to_string(i);
      unit.rows.push_back(GridRow{i + 2, "true", {{"seed", std::to_string(i)}}});
      unit.content_sha256 = "sha" + std::to_string(i);
      specs.push_back(unit);
    }
    ASSERT_TRUE(ledger_->PutNewUnits("j", specs, nullptr).ok());
  }

  LeaseRef Claim(const std::string& unit, const std::string& owner) {
    auto claimed = ledger_->ClaimUnit(ClaimRequest{"j", unit, owner, kLease});
    EXPECT_TRUE(claimed.ok()) << claimed.error().ToString();
    if (!claimed.ok()) return {};
    EXPECT_EQ(claimed->outcome, ClaimOutcome::kClaimed);
    return LeaseRef{"j", unit, owner, claimed->unit.attempt};
  }

  // What the agent's runner does with an end write: tries again while the outcome is unknown.
  // Returns the last status; a failed condition ends the tries at once (the lease is gone).
  Status WriteLikeTheAgent(const std::function<Status()>& write) {
    Status status;
    for (int i = 0; i < kWriterTries; ++i) {
      status = write();
      if (status.ok() || status.error().IsConditionFailed()) break;
    }
    return status;
  }

  AttemptEnd Succeeded(const LeaseRef& lease) {
    AttemptEnd end;
    end.lease = lease;
    end.exit_code = 0;
    end.reason = "succeeded";
    return end;
  }

  UnitRecord Unit(const std::string& unit) {
    auto record = ledger_->GetUnit("j", unit);
    EXPECT_TRUE(record.ok() && record->has_value());
    return record.ok() && record->has_value() ? **record : UnitRecord{};
  }

  JobCounts Counts() {
    auto counts = ledger_->Counts("j");
    EXPECT_TRUE(counts.ok()) << counts.error().ToString();
    return counts.ok() ? *counts : JobCounts{};
  }

  std::size_t Intents() {
    auto record = ledger_->GetJob("j");
    EXPECT_TRUE(record.ok() && record->has_value());
    return record.ok() && record->has_value() ? (*record)->inflight.size() : 999;
  }

  // The counters agree with an exact recount of the units (made on the real table, without
  // faults), and no intent is left once the writers flushed and repair ran.
  void ExpectCountersExact() {
    db_->Clear();
    (void)ledger_->FlushIntents("j", "i-1/0");
    auto repaired = ledger_->RepairJob("j");
    ASSERT_TRUE(repaired.ok()) << repaired.error().ToString();
    JobCounts stored = Counts();
    auto exact = ledger_->RecountJob("j");
    ASSERT_TRUE(exact.ok()) << exact.error().ToString();
    EXPECT_EQ(stored.succeeded, exact->succeeded);
    EXPECT_EQ(stored.failed, exact->failed);
    EXPECT_EQ(stored.cancelled, exact->cancelled);
    EXPECT_EQ(stored.queued, exact->queued);
    EXPECT_EQ(Intents(), 0u);
  }

  FakeClock clock_{
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now())};
  std::shared_ptr<DynamoDb> real_;
  std::shared_ptr<FaultyDynamoDb> db_;
  std::shared_ptr<Ledger> ledger_;
  std::string table_;
};

// --- the finish path: (step, fault) -> the unit is SUCCEEDED and counted once -----------------

struct FinishCase {
  Step step;
  Fault fault;
};

class FinishUnderFaultTest : public CountedTransitionTest,
                             public ::testing::WithParamInterface<FinishCase> {};

TEST_P(FinishUnderFaultTest, SucceedsOnceAndIsNeverTakenForALostLease) {
  MakeJob(2);
  LeaseRef first = Claim("u0", "i-1/0");
  // A finish before, so this one's step 1 also carries the piggybacked removal of step 3.
  ASSERT_TRUE(ledger_->FinishUnit(Succeeded(first), UnitState::kSucceeded).ok());
  LeaseRef lease = Claim("u1", "i-1/0");

  db_->Inject(GetParam().step, GetParam().fault);
  Status finished =
      WriteLikeTheAgent([&] { return ledger_->FinishUnit(Succeeded(lease), UnitState::kSucceeded); });
  ASSERT_TRUE(finished.ok()) << finished.ToString();
  EXPECT_EQ(db_->faults(), 1);

  EXPECT_EQ(Unit("u1").state, UnitState::kSucceeded);
  JobCounts counts = Counts();
  EXPECT_EQ(counts.succeeded, 2);
  EXPECT_EQ(counts.queued, 0);
  ExpectCountersExact();
}

std::string CaseName(const ::testing::TestParamInfo<FinishCase>& info) {
  const char* step = info.param.step == Step::kAddIntent ? "IntentAndCount" : "UnitWrite";
  return std::string(step) + "_" + Name(info.param.fault);
}

INSTANTIATE_TEST_SUITE_P(
    EveryWriteEveryFault, FinishUnderFaultTest,
    ::testing::Values(FinishCase{Step::kAddIntent, Fault::kLostReply},
                      FinishCase{Step::kAddIntent, Fault::kAppliedThenFailed},
                      FinishCase{Step::kAddIntent, Fault::kNeverArrived},
                      FinishCase{Step::kMoveUnit, Fault::kLostReply},
                      FinishCase{Step::kMoveUnit, Fault::kAppliedThenFailed},
                      FinishCase{Step::kMoveUnit, Fault::kNeverArrived}),
    CaseName);

TEST_F(CountedTransitionTest, LostReplyToTheIntentRemovalLeavesNothingBehind) {
  MakeJob(1);
  LeaseRef lease = Claim("u0", "i-1/0");
  ASSERT_TRUE(ledger_->FinishUnit(Succeeded(lease), UnitState::kSucceeded).ok());
  db_->Inject(Step::kRemoveIntent, Fault::kLostReply);
  ASSERT_TRUE(ledger_->FlushIntents("j", "i-1/0").ok());
  EXPECT_EQ(Intents(), 0u);
  EXPECT_EQ(Counts().succeeded, 1);
}

// --- every retry fails after the write landed: the writer gives up ----------------------------

TEST_F(CountedTransitionTest, UnitWriteThatLandedButNeverAnsweredKeepsItsCount) {
  MakeJob(1);
  LeaseRef lease = Claim("u0", "i-1/0");
  db_->Inject(Step::kMoveUnit, Fault::kAppliedThenFailed, -1);
  Status finished =
      WriteLikeTheAgent([&] { return ledger_->FinishUnit(Succeeded(lease), UnitState::kSucceeded); });
  ASSERT_FALSE(finished.ok());
  EXPECT_FALSE(finished.error().IsConditionFailed()) << "no verdict is not a lost lease";
  // The unit moved, so its count stands: nothing reverted it while the writer gave up.
  EXPECT_EQ(Unit("u0").state, UnitState::kSucceeded);
  EXPECT_EQ(Counts().succeeded, 1);
  EXPECT_EQ(Counts().queued, 0);
  // Repair settles the intent the writer left (the unit carries it): kept, not reverted.
  db_->Clear();
  auto repaired = ledger_->RepairJob("j");
  ASSERT_TRUE(repaired.ok());
  EXPECT_EQ(repaired->intents_settled, 1);
  EXPECT_EQ(repaired->intents_reverted, 0);
  ExpectCountersExact();
  EXPECT_EQ(Counts().succeeded, 1);
}

TEST_F(CountedTransitionTest, IntentThatLandedButNeverAnsweredIsRevertedOnlyOnceTheLeaseLapsed) {
  MakeJob(1);
  LeaseRef lease = Claim("u0", "i-1/0");
  db_->Inject(Step::kAddIntent, Fault::kAppliedThenFailed, -1);
  Status finished =
      WriteLikeTheAgent([&] { return ledger_->FinishUnit(Succeeded(lease), UnitState::kSucceeded); });
  ASSERT_FALSE(finished.ok());
  EXPECT_EQ(Unit("u0").state, UnitState::kRunning);
  db_->Clear();
  // While the writer's lease lives, repair leaves its intent alone.
  auto early = ledger_->RepairJob("j");
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->intents_pending, 1);
  // The writer comes back within its lease: its retry finds its own intent and finishes.
  ASSERT_TRUE(ledger_->FinishUnit(Succeeded(lease), UnitState::kSucceeded).ok());
  EXPECT_EQ(Unit("u0").state, UnitState::kSucceeded);
  ExpectCountersExact();
  EXPECT_EQ(Counts().succeeded, 1);
}

TEST_F(CountedTransitionTest, WriterThatNeverReturnsHasItsCountRevertedAfterTheLease) {
  MakeJob(1);
  LeaseRef lease = Claim("u0", "i-1/0");
  db_->Inject(Step::kAddIntent, Fault::kAppliedThenFailed, -1);
  ASSERT_FALSE(WriteLikeTheAgent([&] {
                 return ledger_->FinishUnit(Succeeded(lease), UnitState::kSucceeded);
               }).ok());
  db_->Clear();
  clock_.Advance(kLease + std::chrono::seconds(2));
  auto repaired = ledger_->RepairJob("j");
  ASSERT_TRUE(repaired.ok());
  EXPECT_EQ(repaired->intents_reverted, 1);
  EXPECT_EQ(Counts().succeeded, 0);
  // The fenced transition can never land now, even if the writer tries again.
  Status late = ledger_->FinishUnit(Succeeded(lease), UnitState::kSucceeded);
  // (A new call after the revert is a new step 1 whose unit write is refused: stale.)
  EXPECT_FALSE(late.ok());
  EXPECT_TRUE(late.error().IsConditionFailed()) << late.ToString();
  EXPECT_EQ(Unit("u0").state, UnitState::kRunning);
  ExpectCountersExact();
}

// --- the claim and the release ------------------------------------------------------------------

TEST_F(CountedTransitionTest, ClaimWhoseReplyWasLostIsStillOurs) {
  MakeJob(1);
  db_->Inject(Step::kClaim, Fault::kLostReply);
  auto claimed = ledger_->ClaimUnit(ClaimRequest{"j", "u0", "i-1/0", kLease});
  ASSERT_TRUE(claimed.ok()) << claimed.error().ToString();
  EXPECT_EQ(claimed->outcome, ClaimOutcome::kClaimed);
  EXPECT_EQ(claimed->unit.attempt, 1);
  EXPECT_EQ(Unit("u0").owner, "i-1/0");
}

TEST_F(CountedTransitionTest, ClaimOfAUnitAnotherWorkerHoldsIsNotOurs) {
  MakeJob(1);
  Claim("u0", "i-1/0");
  auto second = ledger_->ClaimUnit(ClaimRequest{"j", "u0", "i-2/0", kLease});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->outcome, ClaimOutcome::kHeldElsewhere);
}

TEST_F(CountedTransitionTest, ReleaseWhoseReplyWasLostIsApplied) {
  MakeJob(1);
  LeaseRef lease = Claim("u0", "i-1/0");
  db_->Inject(Step::kMoveUnit, Fault::kLostReply);
  AttemptEnd end;
  end.lease = lease;
  end.reason = "interrupted";
  Status released = ledger_->ReleaseUnit(end, /*count_failure=*/false);
  ASSERT_TRUE(released.ok()) << released.ToString();
  UnitRecord unit = Unit("u0");
  EXPECT_EQ(unit.state, UnitState::kQueued);
  EXPECT_EQ(unit.interruptions, 1);
}

TEST_F(CountedTransitionTest, StaleFinishAfterATakeoverIsRefusedAndCountsNothing) {
  MakeJob(1);
  LeaseRef old = Claim("u0", "i-1/0");
  clock_.Advance(kLease + std::chrono::seconds(2));
  LeaseRef fresh = Claim("u0", "i-2/0");
  ASSERT_EQ(fresh.attempt, 2);
  Status stale = ledger_->FinishUnit(Succeeded(old), UnitState::kSucceeded);
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(stale.error().IsConditionFailed());
  EXPECT_EQ(Counts().succeeded, 0);
  EXPECT_EQ(Intents(), 0u);
  ASSERT_TRUE(ledger_->FinishUnit(Succeeded(fresh), UnitState::kSucceeded).ok());
  EXPECT_EQ(Counts().succeeded, 1);
}

// --- counters that drifted are noticed and repaired without being asked -----------------------

// Rewrites the stored counters, as a bug or an old version could have left them.
void SetCounters(DynamoDb& db, const std::string& table, std::int64_t succeeded) {
  WriteOptions options;
  options.values = {{":s", ddb::N(succeeded)}};
  ASSERT_TRUE(db.UpdateItem(table, {{"pk", ddb::S("JOB#j")}, {"sk", ddb::S("#JOB")}},
                            "SET succeeded = :s", options)
                  .ok());
}

TEST_F(CountedTransitionTest, CheckCountsRepairsAJobThatReadsDoneWhileAUnitIsQueued) {
  MakeJob(3);
  for (const char* unit : {"u0", "u1"}) {
    ASSERT_TRUE(ledger_->FinishUnit(Succeeded(Claim(unit, "i-1/0")), UnitState::kSucceeded).ok());
  }
  SetCounters(*real_, table_, 3);  // one success too many: u2 would never run as far as
                                   // progress can tell
  JobCounts seen = Counts();
  ASSERT_EQ(seen.queued, 0);
  auto check = ledger_->CheckCounts("j", seen);
  ASSERT_TRUE(check.ok()) << check.error().ToString();
  EXPECT_TRUE(check->repaired);
  EXPECT_EQ(Counts().succeeded, 2);
  EXPECT_EQ(Counts().queued, 1);
}

TEST_F(CountedTransitionTest, CheckCountsRepairsAJobWhoseUnitsAllEndedButReadsUnfinished) {
  MakeJob(3);
  for (const char* unit : {"u0", "u1", "u2"}) {
    ASSERT_TRUE(ledger_->FinishUnit(Succeeded(Claim(unit, "i-1/0")), UnitState::kSucceeded).ok());
  }
  SetCounters(*real_, table_, 2);  // one success lost from the counters
  JobCounts seen = Counts();
  ASSERT_EQ(seen.queued, 1);
  auto check = ledger_->CheckCounts("j", seen);
  ASSERT_TRUE(check.ok()) << check.error().ToString();
  EXPECT_TRUE(check->looked);
  EXPECT_TRUE(check->repaired);
  EXPECT_EQ(check->before.succeeded, 2);
  EXPECT_EQ(check->after.succeeded, 3);
  JobCounts after = Counts();
  EXPECT_EQ(after.succeeded, 3);
  EXPECT_EQ(after.queued, 0);
}

TEST_F(CountedTransitionTest, CheckCountsLeavesAJobWithATransitionInFlightAlone) {
  MakeJob(3);
  LeaseRef lease = Claim("u0", "i-1/0");
  CountedTransitionRequest half;
  half.job = "j";
  half.unit = "u0";
  half.from = UnitState::kRunning;
  half.attempt = lease.attempt;
  half.owner = lease.owner;
  half.to = UnitState::kSucceeded;
  half.writer = lease.owner;
  half.crash_after_writes = 1;  // counted, unit not moved yet: a live writer between its writes
  ASSERT_TRUE(ledger_->CountedTransition(half).ok());
  JobCounts seen = Counts();
  auto check = ledger_->CheckCounts("j", seen);
  ASSERT_TRUE(check.ok()) << check.error().ToString();
  EXPECT_FALSE(check->repaired);
  EXPECT_TRUE(check->transition_in_flight);
  EXPECT_EQ(Counts().succeeded, 1);  // the live writer's count is untouched
}

TEST_F(CountedTransitionTest, CheckCountsIsFreeWhileManyUnitsAreQueuedAndSomeRun) {
  MakeJob(1200);
  Claim("u0", "i-1/0");
  JobCounts seen = Counts();
  auto check = ledger_->CheckCounts("j", seen);
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->looked);
}

// A large job waiting for workers (nothing runs) is checked on every progress: that must cost
// one key, not a count of its units.
TEST_F(CountedTransitionTest, CheckCountsOfALargeJobWaitingForWorkersReadsOneKey) {
  MakeJob(1200);
  JobCounts seen = Counts();
  ASSERT_EQ(seen.running, 0);
  const int before = db_->items_queried();
  auto check = ledger_->CheckCounts("j", seen);
  ASSERT_TRUE(check.ok()) << check.error().ToString();
  EXPECT_TRUE(check->looked);
  EXPECT_FALSE(check->repaired);
  EXPECT_LE(db_->items_queried() - before, 1);
}

TEST_F(CountedTransitionTest, RecountDoesNotOverwriteATransitionThatLandedWhileItRead) {
  MakeJob(2);
  SetCounters(*real_, table_, 5);
  LeaseRef lease = Claim("u0", "i-1/0");
  // Another writer (its own ledger, no faults) finishes u0 after the recount read the units
  // and before it writes: the recount's counters are stale and must not land.
  FakeClock other_clock{clock_.Now()};
  DynamoLedgerOptions options;
  options.table = table_;
  auto other = MakeDynamoLedger(real_, options, other_clock);
  db_->Before(Step::kCountsWrite, [&] {
    ASSERT_TRUE(other->FinishUnit(Succeeded(lease), UnitState::kSucceeded).ok());
  });
  auto exact = ledger_->RecountJob("j");
  ASSERT_TRUE(exact.ok()) << exact.error().ToString();
  EXPECT_EQ(exact->succeeded, 1);  // the second round saw u0 SUCCEEDED
  EXPECT_EQ(Counts().succeeded, 1);
  EXPECT_EQ(Counts().queued, 1);
}

TEST_F(CountedTransitionTest, CheckCountsWritesNothingWhenATransitionRacesIt) {
  MakeJob(3);
  LeaseRef lease = Claim("u0", "i-1/0");
  SetCounters(*real_, table_, 1);  // drifted: nothing has succeeded yet
  FakeClock other_clock{clock_.Now()};
  DynamoLedgerOptions options;
  options.table = table_;
  auto other = MakeDynamoLedger(real_, options, other_clock);
  db_->Before(Step::kCountsWrite, [&] {
    ASSERT_TRUE(other->FinishUnit(Succeeded(lease), UnitState::kSucceeded).ok());
  });
  auto check = ledger_->CheckCounts("j", Counts());
  ASSERT_TRUE(check.ok()) << check.error().ToString();
  EXPECT_TRUE(check->looked);
  EXPECT_FALSE(check->repaired);  // raced: the next progress looks again
  // The drift (+1) is still there, and the transition's own count went on top of it.
  EXPECT_EQ(Counts().succeeded, 2);
  auto again = ledger_->CheckCounts("j", Counts());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->repaired);
  EXPECT_EQ(Counts().succeeded, 1);
}

}  // namespace
}  // namespace spotgrid
