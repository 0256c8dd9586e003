// The sweeper against the emulators: a stack made with `controller init`, units enqueued with
// `controller enqueue`, the DynamoDB ledger on a fake clock (so a lease lapses without waiting)
// and the real work and dead-letter queues. SQS's counts are approximate, so every check on a
// queue polls with a deadline.
#include "spotgrid/ledger/sweeper.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "controller_harness.h"
#include "spotgrid/ledger/ledger.h"
#include "support/fake_clock.h"

namespace spotgrid {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeClock;
using testing::Ran;
using testing::RunControllerBinary;
using testing::UniqueName;
using testing::UseEmulators;
using testing::WaitUntil;

constexpr milliseconds kQueueDeadline{20000};
// SQS may take up to 60 s to purge a queue, and the emulator takes exactly that.
constexpr milliseconds kPurgeDeadline{90000};

class SweeperIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    stack_ = UniqueName("sw");
    dir_ = testing::MakeTempDir("sweeper");
    testing::InitializedStack made;
    testing::InitStack(stack_, UniqueName("sw-b"), made);
    ASSERT_FALSE(HasFatalFailure());
    db_ = made.db;
    sqs_ = made.sqs;
    ledger_ = NewLedger();
    auto stack = ledger_->GetStack();
    ASSERT_TRUE(stack.ok() && stack->has_value());
    stack_info_ = **stack;
  }

  void TearDown() override {
    if (sqs_) {
      for (const std::string& url : {stack_info_.queue_url, stack_info_.dlq_url}) {
        if (!url.empty()) (void)sqs_->DeleteQueue(url);
      }
    }
    if (db_) (void)db_->DeleteTable(LedgerTableName(stack_));
    std::filesystem::remove_all(dir_);
  }

  // Another client of the same table, as another agent's would be.
  std::shared_ptr<Ledger> NewLedger() {
    DynamoLedgerOptions options;
    options.table = LedgerTableName(stack_);
    return MakeDynamoLedger(db_, options, clock_);
  }

  // `controller enqueue` of units u0..u<n-1>: one message each.
  void Enqueue(const std::string& job, int units) {
    const std::string grid = dir_ + "/" + job + ".csv";
    {
      std::ofstream out(grid);
      out << "id,n\n";
      for (int i = 0; i < units; ++i) out << "u" << i << "," << i << "\n";
    }
    Ran ran = RunControllerBinary({"enqueue", grid, "--stack", stack_, "--job", job, "--command",
                                   "echo {n}"});
    ASSERT_EQ(ran.code, 0) << ran.err;
  }

  // Visible + in flight + delayed, as SQS reports them.
  long long Depth(const std::string& url) {
    auto attributes = sqs_->GetQueueAttributes(
        url, {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed"});
    if (!attributes.ok()) return -1;
    long long total = 0;
    for (const auto& [name, value] : *attributes) total += std::stoll(value);
    return total;
  }

  void PurgeAndWaitEmpty() {
    ASSERT_TRUE(sqs_->PurgeQueue(stack_info_.queue_url).ok());
    ASSERT_TRUE(WaitUntil([&] { return Depth(stack_info_.queue_url) == 0; }, kPurgeDeadline,
                          milliseconds(250)));
  }

  // Receives (and deletes) messages until `expected` have arrived or the deadline passes;
  // returns each body with how often it came.
  std::map<std::string, int> Drain(const std::string& url, std::size_t expected) {
    std::map<std::string, int> bodies;
    std::size_t received = 0;
    WaitUntil(
        [&] {
          ReceiveRequest request;
          request.wait_seconds = 1;
          auto messages = sqs_->ReceiveMessage(url, request);
          if (messages.ok()) {
            for (const SqsMessage& message : *messages) {
              ++bodies[message.body];
              ++received;
              (void)sqs_->DeleteMessage(url, message.receipt_handle);
            }
          }
          return received >= expected;
        },
        kQueueDeadline, milliseconds(1));
    return bodies;
  }

  SweepReport Sweep(UnitLeases& leases) {
    Sweeper sweeper(leases, *sqs_, clock_);
    auto report = sweeper.Sweep(SweepScope::ForStack(stack_info_));
    EXPECT_TRUE(report.ok()) << report.error().ToString();
    if (!report.ok()) return SweepReport{};
    EXPECT_TRUE(report->first_error.ok()) << report->first_error.ToString();
    return *report;
  }

  // The ledger's clock: whole milliseconds, as it stores them; it starts at the real time so
  // the units `controller enqueue` stamps are in its past.
  FakeClock clock_{
      std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now())};
  std::string stack_;
  std::string dir_;
  std::shared_ptr<DynamoDbClient> db_;
  std::shared_ptr<SqsClient> sqs_;
  std::shared_ptr<Ledger> ledger_;
  StackInfo stack_info_;
};

TEST_F(SweeperIntegrationTest, AfterAPurgeEveryQueuedUnitGetsExactlyOneMessageAgain) {
  Enqueue("j", 5);
  ASSERT_FALSE(HasFatalFailure());
  PurgeAndWaitEmpty();
  ASSERT_FALSE(HasFatalFailure());
  // The purge took its time in real time; the ledger's clock moves past the orphan grace.
  clock_.SetWallTime(std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now()));
  clock_.Advance(seconds(61));

  SweepReport report = Sweep(*ledger_);
  EXPECT_TRUE(report.queue_empty);
  EXPECT_EQ(report.orphans_resent, 5);
  // A second sweeper right after sends nothing: the queue holds messages again, and the
  // units are stamped.
  std::shared_ptr<Ledger> other_agent = NewLedger();
  EXPECT_EQ(Sweep(*other_agent).orphans_resent, 0);

  std::map<std::string, int> bodies = Drain(stack_info_.queue_url, 5);
  std::map<std::string, int> expected;
  for (int i = 0; i < 5; ++i) expected[EncodeUnitMessage("j", "u" + std::to_string(i))] = 1;
  EXPECT_EQ(bodies, expected);
}

TEST_F(SweeperIntegrationTest, ALapsedLeaseGetsOneFreshMessageAndTheClaimTakesTheUnitOver) {
  Enqueue("j", 2);
  ASSERT_FALSE(HasFatalFailure());
  // The agent claims u0 and deletes its message; then it dies (kill -9). u1's message is
  // lost as well (taken and deleted here), so the queue is empty.
  auto claim = ledger_->ClaimUnit({"j", "u0", "i-dead/0", seconds(30)});
  ASSERT_TRUE(claim.ok() && claim->outcome == ClaimOutcome::kClaimed);
  ASSERT_EQ(Drain(stack_info_.queue_url, 2).size(), 2u);
  ASSERT_TRUE(WaitUntil([&] { return Depth(stack_info_.queue_url) == 0; }, kQueueDeadline,
                        milliseconds(100)));

  clock_.Advance(seconds(20));  // the lease is live: nothing to do
  EXPECT_EQ(Sweep(*ledger_).lapsed_resent, 0);
  clock_.Advance(seconds(20));  // lapsed past the grace; u1 is not an orphan yet (40 s < 60 s)
  SweepReport report = Sweep(*ledger_);
  EXPECT_EQ(report.lapsed_resent, 1);
  EXPECT_EQ(report.orphans_resent, 0);
  std::shared_ptr<Ledger> other_agent = NewLedger();
  SweepReport raced = Sweep(*other_agent);
  EXPECT_EQ(raced.lapsed_resent, 0);
  EXPECT_EQ(raced.already_swept, 1);

  std::map<std::string, int> bodies = Drain(stack_info_.queue_url, 1);
  EXPECT_EQ(bodies, (std::map<std::string, int>{{EncodeUnitMessage("j", "u0"), 1}}));
  auto takeover = other_agent->ClaimUnit({"j", "u0", "i-live/0", seconds(30)});
  ASSERT_TRUE(takeover.ok());
  EXPECT_EQ(takeover->outcome, ClaimOutcome::kClaimed);
  EXPECT_TRUE(takeover->took_over);
  EXPECT_EQ(takeover->unit.attempt, 2);
}

// A worker that died between its two finish writes left its count in the job item with the
// unit still RUNNING: the counters say the job is done. The sweep keeps the job active,
// settles the intent once the lease lapsed (reverted: the unit never moved) and sends the
// unit again.
TEST_F(SweeperIntegrationTest, ALeftoverIntentDoesNotHideALapsedUnit) {
  Enqueue("j", 1);
  ASSERT_FALSE(HasFatalFailure());
  auto claim = ledger_->ClaimUnit({"j", "u0", "i-dead/0", seconds(30)});
  ASSERT_TRUE(claim.ok() && claim->outcome == ClaimOutcome::kClaimed);
  ASSERT_EQ(Drain(stack_info_.queue_url, 1).size(), 1u);
  CountedTransitionRequest half;
  half.job = "j";
  half.unit = "u0";
  half.from = UnitState::kRunning;
  half.attempt = claim->unit.attempt;
  half.owner = "i-dead/0";
  half.to = UnitState::kSucceeded;
  half.writer = "i-dead/0";
  half.crash_after_writes = 1;  // the count and the intent, not the unit: then kill -9
  ASSERT_TRUE(ledger_->CountedTransition(half).ok());
  auto counts = ledger_->Counts("j");
  ASSERT_TRUE(counts.ok());
  ASSERT_EQ(counts->succeeded, 1);  // reads as done

  clock_.Advance(seconds(40));  // the lease lapsed, past the grace
  SweepReport report = Sweep(*ledger_);
  EXPECT_EQ(report.jobs, 1);
  EXPECT_EQ(report.lapsed_resent, 1);
  EXPECT_TRUE(report.first_error.ok()) << report.first_error.ToString();
  counts = ledger_->Counts("j");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->succeeded, 0);
  std::map<std::string, int> bodies = Drain(stack_info_.queue_url, 1);
  EXPECT_EQ(bodies, (std::map<std::string, int>{{EncodeUnitMessage("j", "u0"), 1}}));
}

TEST_F(SweeperIntegrationTest, ADeadLetterFailsItsQueuedUnitAsPoisonOnceAndIsDeleted) {
  Enqueue("j", 2);
  ASSERT_FALSE(HasFatalFailure());
  std::vector<SendEntry> entries(3);
  entries[0].body = EncodeUnitMessage("j", "u1");
  entries[1].body = EncodeUnitMessage("j", "u1");  // a duplicate: counted once all the same
  entries[2].body = "garbage";
  auto sent = sqs_->SendMessageBatch(stack_info_.dlq_url, entries);
  ASSERT_TRUE(sent.ok() && sent->ok());

  // A short poll may miss a message the emulator holds: sweep until all three were handled.
  int poisoned = 0, deleted = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        SweepReport report = Sweep(*ledger_);
        poisoned += report.poisoned;
        deleted += report.dead_letters_deleted;
        return deleted >= 3;
      },
      kQueueDeadline, milliseconds(100)));
  EXPECT_EQ(poisoned, 1);
  auto unit = ledger_->GetUnit("j", "u1");
  ASSERT_TRUE(unit.ok() && unit->has_value());
  EXPECT_EQ((*unit)->state, UnitState::kFailed);
  EXPECT_EQ((*unit)->error, PoisonError(stack_info_.max_receives));
  auto counts = ledger_->Counts("j");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->failed, 1);
  EXPECT_EQ(counts->queued, 1);
  auto job = ledger_->GetJob("j");
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_TRUE((*job)->inflight.empty());  // the sweeper leaves no intent behind
  EXPECT_TRUE(WaitUntil([&] { return Depth(stack_info_.dlq_url) == 0; }, kQueueDeadline,
                        milliseconds(100)));
  // `controller retry --failed` brings it back, as progress's hint says.
  Ran retry = RunControllerBinary({"retry", "--failed", "--stack", stack_, "--job", "j"});
  EXPECT_EQ(retry.code, 0) << retry.err;
}

}  // namespace
}  // namespace spotgrid
