// `controller init` against the emulators: the real binary runs as a child process, and what
// it created is checked with Debian's aws CLI, an independent client.
#include <gtest/gtest.h>

#include <string>

#include "controller_harness.h"
#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/sqs_client.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::CliQueueAttributes;
using testing::ParseJson;
using testing::Ran;
using testing::RunAws;
using testing::RunControllerBinary;
using testing::UniqueName;
using testing::UseEmulators;

class ControllerInitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    stack_ = UniqueName("ci");
    bucket_ = UniqueName("ci-b");
  }

  void TearDown() override {
    auto context = AwsContext::Create();
    if (!context.ok()) return;
    if (auto sqs = SqsClient::Create(*context); sqs.ok()) {
      for (const std::string& name : {"spotgrid-" + stack_, "spotgrid-" + stack_ + "-dlq"}) {
        if (auto url = (*sqs)->GetQueueUrl(name); url.ok()) (void)(*sqs)->DeleteQueue(*url);
      }
    }
    if (auto db = DynamoDbClient::Create(*context); db.ok()) {
      (void)(*db)->DeleteTable("spotgrid-" + stack_);
    }
  }

  Ran Init(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"init", "--stack", stack_, "--bucket", bucket_};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunControllerBinary(args);
  }

  json StackItem() {
    const json key = {{"pk", {{"S", "STACK"}}}, {"sk", {{"S", "STACK"}}}};
    Ran ran = RunAws("AWS_ENDPOINT_URL_DYNAMODB",
                     {"dynamodb", "get-item", "--table-name", "spotgrid-" + stack_, "--key",
                      key.dump(), "--consistent-read"});
    EXPECT_EQ(ran.code, 0) << ran.err;
    auto doc = ParseJson(ran.out);
    return doc.is_object() && doc.contains("Item") ? doc["Item"] : json();
  }

  std::string stack_;
  std::string bucket_;
};

TEST_F(ControllerInitTest, CreatesQueueWithRedriveTableAndBucketAndASecondInitChangesNothing) {
  Ran first =
      Init({"--max-receives", "4", "--visibility", "120", "--prefix", "/runs/2024/", "--json"});
  ASSERT_EQ(first.code, 0) << first.err;
  json info = ParseJson(first.out);
  ASSERT_TRUE(info.is_object()) << first.out;
  EXPECT_EQ(info["name"], stack_);
  EXPECT_EQ(info["bucket"], bucket_);
  EXPECT_EQ(info["prefix"], "runs/2024");
  EXPECT_EQ(info["visibility_s"], 120);
  EXPECT_EQ(info["max_receives"], 4);
  EXPECT_EQ(info["created"], json({"dead-letter queue", "work queue", "ledger table", "bucket"}));
  const std::string queue_url = info["queue_url"];
  const std::string dlq_url = info["dlq_url"];

  // The work queue, as the CLI sees it: visibility, long polling, redrive to the DLQ.
  json attributes = CliQueueAttributes(queue_url);
  EXPECT_EQ(attributes["VisibilityTimeout"], "120");
  EXPECT_EQ(attributes["ReceiveMessageWaitTimeSeconds"], "20");
  EXPECT_EQ(attributes["QueueArn"], info["queue_arn"]);
  ASSERT_TRUE(attributes.contains("RedrivePolicy")) << attributes.dump();
  json redrive = ParseJson(attributes["RedrivePolicy"].get<std::string>());
  EXPECT_EQ(redrive["deadLetterTargetArn"], info["dlq_arn"]);
  EXPECT_EQ(redrive["maxReceiveCount"].is_string() ? redrive["maxReceiveCount"].get<std::string>()
                                                   : redrive["maxReceiveCount"].dump(),
            "4");
  json dlq_attributes = CliQueueAttributes(dlq_url);
  EXPECT_EQ(dlq_attributes["QueueArn"], info["dlq_arn"]);
  EXPECT_TRUE(ParseJson(RunAws("AWS_ENDPOINT_URL_SQS", {"sqs", "get-queue-url", "--queue-name",
                                                        "spotgrid-" + stack_ + "-dlq"})
                            .out)
                  .is_object());

  // The ledger table with its index, and the stack item in it.
  Ran table = RunAws("AWS_ENDPOINT_URL_DYNAMODB",
                     {"dynamodb", "describe-table", "--table-name", "spotgrid-" + stack_});
  ASSERT_EQ(table.code, 0) << table.err;
  json description = ParseJson(table.out)["Table"];
  EXPECT_EQ(description["TableStatus"], "ACTIVE");
  ASSERT_TRUE(description.contains("GlobalSecondaryIndexes")) << description.dump();
  EXPECT_EQ(description["GlobalSecondaryIndexes"][0]["IndexName"], "by_state");
  json item = StackItem();
  ASSERT_TRUE(item.is_object());
  EXPECT_EQ(item["bucket"]["S"], bucket_);
  EXPECT_EQ(item["queue_url"]["S"], queue_url);

  // The bucket.
  Ran head = RunAws("AWS_ENDPOINT_URL_S3", {"s3api", "head-bucket", "--bucket", bucket_});
  EXPECT_EQ(head.code, 0) << head.err;

  // Again, without the options: the stack's own settings apply and nothing changes.
  Ran second = Init({"--json"});
  ASSERT_EQ(second.code, 0) << second.err;
  json again = ParseJson(second.out);
  EXPECT_EQ(again["created"], json::array());
  EXPECT_EQ(again["stack_item_stored"], false);
  EXPECT_EQ(again["queue_url"], queue_url);
  EXPECT_EQ(again["visibility_s"], 120);
  EXPECT_EQ(again["prefix"], "runs/2024");
  EXPECT_EQ(StackItem(), item);
  EXPECT_EQ(CliQueueAttributes(queue_url)["RedrivePolicy"], attributes["RedrivePolicy"]);

  Ran text = Init();
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out.find("created"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("unchanged"), std::string::npos) << text.out;
}

TEST_F(ControllerInitTest, AnExistingQueueWithOtherSettingsIsReportedAndLeftAlone) {
  ASSERT_EQ(Init({"--visibility", "120"}).code, 0);
  Ran conflict = Init({"--visibility", "30", "--max-receives", "7"});
  EXPECT_EQ(conflict.code, 2);
  EXPECT_NE(conflict.err.find("controller: "), std::string::npos) << conflict.err;
  EXPECT_NE(conflict.err.find("VisibilityTimeout is 120 (asked 30)"), std::string::npos)
      << conflict.err;
  EXPECT_NE(conflict.err.find("maxReceiveCount is 10 (asked 7)"), std::string::npos)
      << conflict.err;
  json attributes = CliQueueAttributes(ParseJson(Init({"--json"}).out)["queue_url"]);
  EXPECT_EQ(attributes["VisibilityTimeout"], "120");
}

TEST_F(ControllerInitTest, AFreshStackKeepsMessagesFourteenDaysInBothQueues) {
  Ran ran = Init({"--json"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  json info = ParseJson(ran.out);
  EXPECT_EQ(CliQueueAttributes(info["queue_url"])["MessageRetentionPeriod"], "1209600");
  EXPECT_EQ(CliQueueAttributes(info["dlq_url"])["MessageRetentionPeriod"], "1209600");
  EXPECT_EQ(info["updated"], json::array());
}

TEST_F(ControllerInitTest, InitOverAWorkQueueWithTheDefaultRetentionRaisesItAndSaysSo) {
  Ran first = Init({"--json"});
  ASSERT_EQ(first.code, 0) << first.err;
  const std::string queue_url = ParseJson(first.out)["queue_url"];
  // A stack made before init set the retention: SQS's default of 4 days.
  Ran reset = RunAws("AWS_ENDPOINT_URL_SQS",
                     {"sqs", "set-queue-attributes", "--queue-url", queue_url, "--attributes",
                      "MessageRetentionPeriod=345600"});
  ASSERT_EQ(reset.code, 0) << reset.err;
  ASSERT_EQ(CliQueueAttributes(queue_url)["MessageRetentionPeriod"], "345600");

  Ran text = Init();
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("exists; updated message retention 345600 s -> 1209600 s (14 days)"),
            std::string::npos)
      << text.out;
  json attributes = CliQueueAttributes(queue_url);
  EXPECT_EQ(attributes["MessageRetentionPeriod"], "1209600");
  EXPECT_EQ(attributes["VisibilityTimeout"], "900");  // nothing else was touched

  Ran again = Init({"--json"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(ParseJson(again.out)["updated"], json::array());
  EXPECT_EQ(ParseJson(again.out)["created"], json::array());
}

TEST_F(ControllerInitTest, ARetentionToRaiseDoesNotOverrideARefusedSetting) {
  ASSERT_EQ(Init({"--visibility", "120"}).code, 0);
  const std::string queue_url = ParseJson(Init({"--json"}).out)["queue_url"];
  Ran reset = RunAws("AWS_ENDPOINT_URL_SQS",
                     {"sqs", "set-queue-attributes", "--queue-url", queue_url, "--attributes",
                      "MessageRetentionPeriod=345600"});
  ASSERT_EQ(reset.code, 0) << reset.err;
  Ran conflict = Init({"--visibility", "30"});
  EXPECT_EQ(conflict.code, 2) << conflict.out;
  // Refused before anything was changed: the retention too is as it was.
  EXPECT_EQ(CliQueueAttributes(queue_url)["MessageRetentionPeriod"], "345600");
}

TEST_F(ControllerInitTest, AStackCannotMoveToAnotherBucket) {
  ASSERT_EQ(Init().code, 0);
  Ran moved = RunControllerBinary({"init", "--stack", stack_, "--bucket", bucket_ + "-other"});
  EXPECT_EQ(moved.code, 2);
  EXPECT_NE(moved.err.find("already uses bucket " + bucket_), std::string::npos) << moved.err;
}

TEST_F(ControllerInitTest, StackComesFromTheEnvironment) {
  Ran ran =
      RunControllerBinary({"init", "--bucket", bucket_, "--json"}, {{"SPOTGRID_STACK", stack_}});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ParseJson(ran.out)["name"], stack_);
}

TEST_F(ControllerInitTest, EnqueueToAStackThatWasNeverCreatedSaysToRunInit) {
  const std::string dir = testing::MakeTempDir("ci-grid");
  const std::string grid = dir + "/g.csv";
  std::ofstream(grid) << "command\necho hi\n";
  Ran ran = RunControllerBinary({"enqueue", grid, "--stack", stack_});
  EXPECT_EQ(ran.code, 1);
  EXPECT_NE(ran.err.find("controller: stack '" + stack_ + "' does not exist"), std::string::npos)
      << ran.err;
  EXPECT_NE(ran.err.find("controller init --stack " + stack_), std::string::npos) << ran.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace spotgrid
