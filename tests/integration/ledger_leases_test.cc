// Integration tests of the agent's part of the DynamoDB ledger (UnitLeases) against dynalite:
// the shared contract suite (support/unit_leases_contract.h), which FakeUnitLeases passes too,
// plus what only the real ledger has: the requests each step costs, and a writer that dies
// inside FinishUnit's counting protocol. Every test has its own table.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "spotgrid/ledger/ledger.h"
#include "spotgrid/services/dynamodb_client.h"
#include "support/fake_clock.h"
#include "support/test_env.h"
#include "support/unit_leases_contract.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::FakeClock;
using testing::UniqueName;
using testing::UseEmulators;

constexpr auto kTableTimeout = std::chrono::seconds(30);

// A DynamoDb in front of the real client that counts requests by operation and can "die":
// after `die_after_writes` more writes have gone through, every request fails as if the
// process had lost the network for good, which is how a writer that crashes between two
// writes looks to the ledger.
class WatchedDb final : public DynamoDb {
 public:
  explicit WatchedDb(std::shared_ptr<DynamoDb> inner) : inner_(std::move(inner)) {}

  void DieAfterWrites(int writes) { writes_left_ = writes; }
  int Calls(const std::string& operation) {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_[operation];
  }
  int TotalCalls() {
    std::lock_guard<std::mutex> lock(mu_);
    int total = 0;
    for (const auto& [op, n] : calls_) total += n;
    return total;
  }
  void ResetCalls() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }

  Result<TableDescription> CreateTable(const TableSpec& spec) override {
    if (auto dead = Enter("CreateTable", false)) return *dead;
    return inner_->CreateTable(spec);
  }
  Result<TableDescription> DescribeTable(const std::string& table) override {
    if (auto dead = Enter("DescribeTable", false)) return *dead;
    return inner_->DescribeTable(table);
  }
  Status DeleteTable(const std::string& table) override {
    if (auto dead = Enter("DeleteTable", false)) return *dead;
    return inner_->DeleteTable(table);
  }
  Status WaitUntilActive(const std::string& table, std::chrono::milliseconds timeout) override {
    if (auto dead = Enter("WaitUntilActive", false)) return *dead;
    return inner_->WaitUntilActive(table, timeout);
  }
  Status EnsureTable(const TableSpec& spec, std::chrono::milliseconds timeout) override {
    if (auto dead = Enter("EnsureTable", false)) return *dead;
    return inner_->EnsureTable(spec, timeout);
  }
  Result<std::optional<json>> GetItem(const std::string& table, const json& key,
                                      bool consistent_read) override {
    if (auto dead = Enter("GetItem", false)) return *dead;
    return inner_->GetItem(table, key, consistent_read);
  }
  WriteResult PutItem(const std::string& table, const json& item,
                      const WriteOptions& options) override {
    if (auto dead = Enter("PutItem", true)) return WriteResult{*dead, json::object(), {}};
    return inner_->PutItem(table, item, options);
  }
  WriteResult UpdateItem(const std::string& table, const json& key, const std::string& expression,
                         const WriteOptions& options) override {
    if (auto dead = Enter("UpdateItem", true)) return WriteResult{*dead, json::object(), {}};
    return inner_->UpdateItem(table, key, expression, options);
  }
  WriteResult DeleteItem(const std::string& table, const json& key,
                         const WriteOptions& options) override {
    if (auto dead = Enter("DeleteItem", true)) return WriteResult{*dead, json::object(), {}};
    return inner_->DeleteItem(table, key, options);
  }
  BatchWriteResult BatchWriteItem(const std::string& table,
                                  std::span<const WriteRequest> requests) override {
    if (auto dead = Enter("BatchWriteItem", true)) {
      BatchWriteResult result;
      result.status = *dead;
      result.unprocessed.assign(requests.begin(), requests.end());
      return result;
    }
    return inner_->BatchWriteItem(table, requests);
  }
  Status Query(const QueryRequest& request, const PageCallback& on_page) override {
    if (auto dead = Enter("Query", false)) return *dead;
    return inner_->Query(request, on_page);
  }
  Result<std::vector<json>> QueryAll(const QueryRequest& request) override {
    if (auto dead = Enter("Query", false)) return *dead;
    return inner_->QueryAll(request);
  }
  Status Scan(const ScanRequest& request, const PageCallback& on_page) override {
    if (auto dead = Enter("Scan", false)) return *dead;
    return inner_->Scan(request, on_page);
  }
  Result<std::vector<json>> ScanAll(const ScanRequest& request) override {
    if (auto dead = Enter("Scan", false)) return *dead;
    return inner_->ScanAll(request);
  }
  Status ParallelScan(const ScanRequest& request, int segments,
                      const PageCallback& on_page) override {
    if (auto dead = Enter("Scan", false)) return *dead;
    return inner_->ParallelScan(request, segments, on_page);
  }
  Result<std::vector<json>> ParallelScanAll(const ScanRequest& request, int segments) override {
    if (auto dead = Enter("Scan", false)) return *dead;
    return inner_->ParallelScanAll(request, segments);
  }

 private:
  std::optional<Error> Enter(const std::string& operation, bool write) {
    std::lock_guard<std::mutex> lock(mu_);
    if (writes_left_ == 0) {
      Error error;
      error.category = ErrorCategory::kTransient;
      error.service = "DynamoDB";
      error.operation = operation;
      error.message = "the writer is dead";
      return error;
    }
    ++calls_[operation];
    if (write && writes_left_ > 0) --writes_left_;
    return std::nullopt;
  }

  std::shared_ptr<DynamoDb> inner_;
  std::mutex mu_;
  std::map<std::string, int> calls_;  // guarded by mu_
  int writes_left_ = -1;              // -1: immortal; guarded by mu_
};

}  // namespace

// The DynamoDB ledger over a fresh table, for the contract suite and the tests below. Named
// (not in an anonymous namespace) because its name ends up in the test names.
class DynamoLedgerHarness {
 public:
  void SetUp() {
    UseEmulators();
    auto context = AwsContext::Create();
    ASSERT_TRUE(context.ok()) << context.error().ToString();
    auto client = DynamoDbClient::Create(*context);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *client;
    db_ = std::make_shared<WatchedDb>(client_);
    table_ = LedgerTableName(UniqueName("ll"));
    ledger_ = NewLedger(db_);
    Status status = ledger_->EnsureTable(kTableTimeout);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  void TearDown() {
    if (client_ && !table_.empty()) (void)client_->DeleteTable(table_);
  }

  std::shared_ptr<Ledger> NewLedger(std::shared_ptr<DynamoDb> db) {
    DynamoLedgerOptions options;
    options.table = table_;
    return MakeDynamoLedger(std::move(db), options, clock_);
  }

  UnitLeases& Leases() { return *ledger_; }
  std::shared_ptr<UnitLeases> AnotherView() { return NewLedger(client_); }

  void MakeJob(const std::string& job, int units) {
    JobSpec spec;
    spec.id = job;
    spec.command_template = "run {i}";
    spec.grid_file = "grid.csv";
    spec.grid_sha256 = "abc";
    spec.columns = {"i", "sq"};
    spec.total = units;
    spec.created_at = clock_.Now();
    auto created = ledger_->CreateJob(spec);
    ASSERT_TRUE(created.ok() && *created);
    std::vector<UnitSpec> specs;
    for (int i = 0; i < units; ++i) {
      UnitSpec unit;
      unit.id = "u" + std::to_string(i);
      GridRow row;
      row.line = i + 2;
      row.command = "run " + std::to_string(i);
      row.params = {{"i", std::to_string(i)}, {"sq", std::to_string(i * i)}};
      unit.rows.push_back(row);
      unit.content_sha256 = "sha-" + std::to_string(i);
      specs.push_back(unit);
    }
    Status status = ledger_->PutNewUnits(job, specs, nullptr);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  std::optional<UnitRecord> Unit(const std::string& job, const std::string& unit) {
    auto record = ledger_->GetUnit(job, unit);
    EXPECT_TRUE(record.ok()) << record.error().ToString();
    return record.ok() ? *record : std::nullopt;
  }

  // The raw item, every attribute.
  std::string Snapshot(const std::string& job, const std::string& unit) {
    auto item =
        client_->GetItem(table_, {{"pk", ddb::S("JOB#" + job)}, {"sk", ddb::S("U#" + unit)}}, true);
    EXPECT_TRUE(item.ok()) << item.error().ToString();
    return item.ok() && item->has_value() ? (*item)->dump() : "<none>";
  }

  JobCounts Counts(const std::string& job) {
    auto counts = ledger_->Counts(job);
    EXPECT_TRUE(counts.ok()) << counts.error().ToString();
    return counts.ok() ? *counts : JobCounts{};
  }

  std::size_t Intents(const std::string& job) {
    auto record = ledger_->GetJob(job);
    EXPECT_TRUE(record.ok() && record->has_value());
    return record.ok() && record->has_value() ? (*record)->inflight.size() : 999;
  }

  void CancelJob(const std::string& job) {
    auto cancelled = ledger_->CancelJob(job);
    ASSERT_TRUE(cancelled.ok()) << cancelled.error().ToString();
  }

  void Advance(std::chrono::seconds by) { clock_.Advance(by); }
  Clock::WallTime Now() { return clock_.Now(); }

  // Whole milliseconds: the ledger stores times to the millisecond.
  FakeClock clock_{
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now())};
  std::shared_ptr<DynamoDbClient> client_;
  std::shared_ptr<WatchedDb> db_;
  std::shared_ptr<Ledger> ledger_;
  std::string table_;
};

namespace testing {
INSTANTIATE_TYPED_TEST_SUITE_P(DynamoLedger, UnitLeasesContract,
                               ::testing::Types<DynamoLedgerHarness>);
}  // namespace testing

namespace {

class LedgerLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override { h_.SetUp(); }
  void TearDown() override { h_.TearDown(); }

  static AttemptEnd Succeeded(LeaseRef lease) {
    AttemptEnd end;
    end.lease = std::move(lease);
    end.exit_code = 0;
    end.reason = "succeeded";
    return end;
  }

  DynamoLedgerHarness h_;
};

TEST_F(LedgerLeasesTest, AFreshUnitCostsOneWriteToClaimOneToRenewAndTwoToFinish) {
  h_.MakeJob("j", 3);
  const std::chrono::seconds lease(60);
  // The first claim of a job also reads the job's columns once.
  ASSERT_EQ(h_.ledger_->ClaimUnit({"j", "u0", "i-a/0", lease})->outcome, ClaimOutcome::kClaimed);
  h_.db_->ResetCalls();

  auto claim = h_.ledger_->ClaimUnit({"j", "u1", "i-a/0", lease});
  ASSERT_TRUE(claim.ok()) << claim.error().ToString();
  ASSERT_EQ(claim->outcome, ClaimOutcome::kClaimed);
  EXPECT_EQ(h_.db_->TotalCalls(), 1);
  EXPECT_EQ(h_.db_->Calls("UpdateItem"), 1);

  h_.db_->ResetCalls();
  LeaseRef ref{"j", "u1", "i-a/0", 1};
  ASSERT_TRUE(h_.ledger_->RenewLease(ref, lease, std::string("half way")).ok());
  EXPECT_EQ(h_.db_->TotalCalls(), 1);

  // Intent + count, then the unit; removing the intent rides on the next finish.
  h_.db_->ResetCalls();
  ASSERT_TRUE(h_.ledger_->FinishUnit(Succeeded(ref), UnitState::kSucceeded).ok());
  EXPECT_EQ(h_.db_->TotalCalls(), 2);
  EXPECT_EQ(h_.Intents("j"), 1u);
  ASSERT_TRUE(
      h_.ledger_->FinishUnit(Succeeded({"j", "u0", "i-a/0", 1}), UnitState::kSucceeded).ok());
  EXPECT_EQ(h_.Intents("j"), 1u);  // u1's went with u0's step 1
  ASSERT_TRUE(h_.ledger_->FlushIntents("j", "i-a/0").ok());
  EXPECT_EQ(h_.Intents("j"), 0u);
  EXPECT_EQ(h_.Counts("j").succeeded, 2);
}

TEST_F(LedgerLeasesTest, AClaimOfARetriedUnitFindsItsAttemptAndKeepsTheHistoryInOrder) {
  h_.MakeJob("j", 1);
  const std::chrono::seconds lease(60);
  ASSERT_EQ(h_.ledger_->ClaimUnit({"j", "u0", "i-a/0", lease})->outcome, ClaimOutcome::kClaimed);
  AttemptEnd failed;
  failed.lease = {"j", "u0", "i-a/0", 1};
  failed.exit_code = 4;
  failed.reason = "failed";
  failed.error = "exit code 4";
  ASSERT_TRUE(h_.ledger_->FinishUnit(failed, UnitState::kFailed).ok());
  ASSERT_TRUE(h_.ledger_->RetryUnit("j", "u0").ok());  // FAILED -> QUEUED, attempt stays 1

  auto claim = h_.ledger_->ClaimUnit({"j", "u0", "i-b/0", lease});
  ASSERT_TRUE(claim.ok()) << claim.error().ToString();
  ASSERT_EQ(claim->outcome, ClaimOutcome::kClaimed);
  EXPECT_EQ(claim->unit.attempt, 2);
  // What described the failed attempt on the unit is gone; attempts[] keeps it.
  EXPECT_FALSE(claim->unit.exit_code.has_value());
  EXPECT_FALSE(claim->unit.finished_at.has_value());
  EXPECT_EQ(claim->unit.error, "");
  ASSERT_EQ(claim->unit.attempts.size(), 2u);
  EXPECT_EQ(claim->unit.attempts[0].exit_code, 4);
  EXPECT_EQ(claim->unit.attempts[1].n, 2);
  EXPECT_EQ(claim->unit.attempts[1].owner, "i-b/0");
  JobCounts counts = h_.Counts("j");
  EXPECT_EQ(counts.failed, 0);
  EXPECT_EQ(counts.running, 1);
}

TEST_F(LedgerLeasesTest, AWriterThatDiesBetweenIntentAndUnitWriteIsRepairedAndCountedOnce) {
  h_.MakeJob("j", 2);
  const std::chrono::seconds lease(60);
  // Worker A runs on a connection that dies after FinishUnit's first write.
  auto dying_db = std::make_shared<WatchedDb>(h_.client_);
  auto worker_a = h_.NewLedger(dying_db);
  ASSERT_EQ(worker_a->ClaimUnit({"j", "u0", "i-a/0", lease})->outcome, ClaimOutcome::kClaimed);
  dying_db->DieAfterWrites(1);
  Status died = worker_a->FinishUnit(Succeeded({"j", "u0", "i-a/0", 1}), UnitState::kSucceeded);
  ASSERT_FALSE(died.ok());
  EXPECT_FALSE(died.error().IsConditionFailed()) << died.ToString();
  // The intent and its count are in; the unit is untouched.
  EXPECT_EQ(h_.Counts("j").succeeded, 1);
  EXPECT_EQ(h_.Intents("j"), 1u);
  EXPECT_EQ(h_.Unit("j", "u0")->state, UnitState::kRunning);

  // While A's lease lives, A might still make its second write: repair leaves it alone.
  auto report = h_.ledger_->RepairJob("j");
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  EXPECT_EQ(report->intents_pending, 1);
  EXPECT_EQ(h_.Counts("j").succeeded, 1);

  // A's lease expires: repair reverts the count, and B takes the unit over and finishes it.
  h_.Advance(lease + std::chrono::seconds(2));
  report = h_.ledger_->RepairJob("j");
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  EXPECT_EQ(report->intents_reverted, 1);
  EXPECT_EQ(h_.Counts("j").succeeded, 0);
  EXPECT_EQ(h_.Intents("j"), 0u);
  auto worker_b = h_.AnotherView();
  auto claim = worker_b->ClaimUnit({"j", "u0", "i-b/0", lease});
  ASSERT_TRUE(claim.ok()) << claim.error().ToString();
  ASSERT_EQ(claim->outcome, ClaimOutcome::kClaimed);
  EXPECT_TRUE(claim->took_over);
  Status finished = worker_b->FinishUnit(Succeeded({"j", "u0", "i-b/0", 2}), UnitState::kSucceeded);
  ASSERT_TRUE(finished.ok()) << finished.ToString();
  // A comes back: its late finish lands nowhere.
  auto revived = h_.NewLedger(h_.client_);
  Status late = revived->FinishUnit(Succeeded({"j", "u0", "i-a/0", 1}), UnitState::kSucceeded);
  ASSERT_FALSE(late.ok());
  EXPECT_TRUE(late.error().IsConditionFailed()) << late.ToString();
  ASSERT_TRUE(worker_b->FlushIntents("j", "i-b/0").ok());

  JobCounts counts = h_.Counts("j");
  EXPECT_EQ(counts.succeeded, 1);
  EXPECT_EQ(counts.running, 0);
  EXPECT_EQ(counts.queued, 1);
  auto recount = h_.ledger_->RecountJob("j");
  ASSERT_TRUE(recount.ok()) << recount.error().ToString();
  EXPECT_EQ(recount->succeeded, 1);
}

TEST_F(LedgerLeasesTest, AWriterThatDiesAfterTheUnitWriteKeepsItsCount) {
  h_.MakeJob("j", 1);
  const std::chrono::seconds lease(60);
  auto dying_db = std::make_shared<WatchedDb>(h_.client_);
  auto worker_a = h_.NewLedger(dying_db);
  ASSERT_EQ(worker_a->ClaimUnit({"j", "u0", "i-a/0", lease})->outcome, ClaimOutcome::kClaimed);
  dying_db->DieAfterWrites(2);
  ASSERT_TRUE(worker_a->FinishUnit(Succeeded({"j", "u0", "i-a/0", 1}), UnitState::kSucceeded).ok());
  // The piggybacked removal never comes: the intent stays until repair settles it.
  EXPECT_FALSE(worker_a->FlushIntents("j", "i-a/0").ok());
  EXPECT_EQ(h_.Intents("j"), 1u);
  auto report = h_.ledger_->RepairJob("j");
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  EXPECT_EQ(report->intents_settled, 1);
  JobCounts counts = h_.Counts("j");
  EXPECT_EQ(counts.succeeded, 1);
  EXPECT_EQ(h_.Intents("j"), 0u);
}

TEST_F(LedgerLeasesTest, WorkerHeartbeatIntervalRoundTrips) {
  WorkerRecord worker;
  worker.instance_id = "i-0abc";
  worker.instance_type = "c5.large";
  worker.heartbeat_s = 7;
  worker.started_at = h_.Now();
  worker.last_heartbeat = h_.Now();
  worker.state = WorkerState::kRunning;
  ASSERT_TRUE(h_.ledger_->PutWorker(worker).ok());
  auto workers = h_.ledger_->ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.error().ToString();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].heartbeat_s, 7);
}

}  // namespace
}  // namespace spotgrid
