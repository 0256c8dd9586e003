// The ledger's value helpers: state names, S3 keys and the SQS message format.
#include <gtest/gtest.h>

#include <string>

#include "spotgrid/ledger/ledger.h"
#include "spotgrid/ledger/types.h"

namespace spotgrid {
namespace {

TEST(UnitStateTest, NamesRoundTripCaseInsensitively) {
  for (UnitState state : kAllUnitStates) {
    EXPECT_EQ(ParseUnitState(ToString(state)), state);
  }
  EXPECT_EQ(ToString(UnitState::kSucceeded), "SUCCEEDED");
  EXPECT_EQ(ParseUnitState("failed"), UnitState::kFailed);
  EXPECT_EQ(ParseUnitState("Cancelled"), UnitState::kCancelled);
  EXPECT_FALSE(ParseUnitState("DONE").has_value());
  EXPECT_FALSE(ParseUnitState("").has_value());
  EXPECT_FALSE(ParseUnitState("QUEUED ").has_value());
}

TEST(UnitStateTest, OnlySucceededFailedAndCancelledAreTerminal) {
  EXPECT_FALSE(IsTerminal(UnitState::kQueued));
  EXPECT_FALSE(IsTerminal(UnitState::kRunning));
  EXPECT_TRUE(IsTerminal(UnitState::kSucceeded));
  EXPECT_TRUE(IsTerminal(UnitState::kFailed));
  EXPECT_TRUE(IsTerminal(UnitState::kCancelled));
}

TEST(UnitKeysTest, KeysCarryThePrefixWhenThereIsOne) {
  StackInfo stack;
  stack.prefix = "runs/2026";
  EXPECT_EQ(UnitKeyPrefix(stack, "j1", "u7"), "runs/2026/j1/u7/");
  EXPECT_EQ(OutputPrefix(stack, "j1", "u7"), "runs/2026/j1/u7/output/");
  EXPECT_EQ(CheckpointPrefix(stack, "j1", "u7"), "runs/2026/j1/u7/checkpoint/");
  EXPECT_EQ(LogsPrefix(stack, "j1", "u7", 3), "runs/2026/j1/u7/logs/3/");
}

TEST(UnitKeysTest, KeysStartWithTheJobWithoutAPrefix) {
  StackInfo stack;
  EXPECT_EQ(UnitKeyPrefix(stack, "j1", "u7"), "j1/u7/");
  EXPECT_EQ(OutputPrefix(stack, "j1", "u7"), "j1/u7/output/");
  EXPECT_EQ(CheckpointPrefix(stack, "j1", "u7"), "j1/u7/checkpoint/");
  EXPECT_EQ(LogsPrefix(stack, "j1", "u7", 1), "j1/u7/logs/1/");
}

TEST(UnitMessageTest, CarriesOnlyVersionJobAndUnit) {
  std::string body = EncodeUnitMessage("job-1", "u\"2");
  EXPECT_EQ(body, R"({"job":"job-1","unit":"u\"2","v":1})");
  auto decoded = DecodeUnitMessage(body);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->first, "job-1");
  EXPECT_EQ(decoded->second, "u\"2");
  auto other_order = DecodeUnitMessage(R"({"v":1,"unit":"b","job":"a"})");
  ASSERT_TRUE(other_order.has_value());
  EXPECT_EQ(other_order->first, "a");
  EXPECT_EQ(other_order->second, "b");
}

TEST(UnitMessageTest, RejectsGarbage) {
  for (const char* body :
       {"", "not json", "[]", "{}", R"({"job":"a","unit":"b"})", R"({"v":2,"job":"a","unit":"b"})",
        R"({"v":"1","job":"a","unit":"b"})", R"({"v":1,"job":"","unit":"b"})",
        R"({"v":1,"job":"a","unit":""})", R"({"v":1,"job":1,"unit":"b"})", R"({"v":1,"job":"a"})",
        R"({"v":1,"job":"a","unit":"b")", "\xff\xfe"}) {
    EXPECT_FALSE(DecodeUnitMessage(body).has_value()) << body;
  }
}

TEST(StackNameTest, TableNameAndValidation) {
  EXPECT_EQ(LedgerTableName("lab"), "spotgrid-lab");
  EXPECT_TRUE(ValidateStackName("lab-2").ok());
  EXPECT_TRUE(ValidateStackName(std::string(40, 'a')).ok());
  for (const std::string& bad :
       {std::string(""), std::string(41, 'a'), std::string("2lab"), std::string("Lab"),
        std::string("la_b"), std::string("-lab"), std::string("la b")}) {
    Status status = ValidateStackName(bad);
    ASSERT_FALSE(status.ok()) << bad;
    EXPECT_EQ(status.error().category, ErrorCategory::kInvalidInput);
  }
}

}  // namespace
}  // namespace spotgrid

namespace spotgrid {
namespace {

TEST(LedgerStateNames, EnqueueAndWorkerStatesRoundTripAndUnknownValuesReadSafely) {
  for (EnqueueState state : {EnqueueState::kWriting, EnqueueState::kDone}) {
    EXPECT_EQ(ParseEnqueueState(ToString(state)), state);
  }
  // A missing or unknown value must never read as DONE: a rerun of enqueue then completes it.
  EXPECT_EQ(ParseEnqueueState(""), EnqueueState::kWriting);
  EXPECT_EQ(ParseEnqueueState("done"), EnqueueState::kWriting);
  for (WorkerState state : {WorkerState::kRunning, WorkerState::kDraining, WorkerState::kEnded}) {
    EXPECT_EQ(ParseWorkerState(ToString(state)), state);
  }
  EXPECT_EQ(ToString(WorkerState::kEnded), "ended");
  EXPECT_EQ(ParseWorkerState("rebooting"), WorkerState::kRunning);
}

}  // namespace
}  // namespace spotgrid
