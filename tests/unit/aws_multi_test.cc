// AwsMulti over a FakeTransport and a FakeClock: a call ends with what AwsClient::Send would
// return, after the same retries and backoff (timers of the loop, slept on the fake clock);
// callbacks run only inside RunOnce, on the loop's thread; offloaded work reports back there.
// The batch forms of the SQS and DynamoDB clients on a multi are here too.
#include "spotgrid/aws/aws_multi.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "spotgrid/aws/json_protocol.h"
#include "spotgrid/core/deadline.h"
#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/sqs_client.h"
#include "support/client_fixture.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using testing::JsonBody;

constexpr char kQueueUrl[] = "https://sqs.us-east-1.amazonaws.com/123456789012/work";

class AwsMultiTest : public testing::FakeAwsTest {
 protected:
  void SetUp() override {
    auto context = AwsContext::Create(FakeContextOptions());
    ASSERT_TRUE(context.ok()) << context.error().ToString();
    context_ = *context;
    auto client = AwsClient::Create(context_, kSqsService);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *client;
    multi_.emplace(*context_);
  }

  // Runs the loop until nothing is pending; false if it did not settle within `max_turns`.
  bool RunAll(int max_turns = 1000) {
    for (int i = 0; i < max_turns; ++i) {
      if (!multi_->RunOnce()) return true;
    }
    return false;
  }

  std::shared_ptr<AwsContext> context_;
  std::shared_ptr<AwsClient> client_;
  std::optional<AwsMulti> multi_;
};

TEST_F(AwsMultiTest, CallEndsWithWhatSendWouldReturnAfterTheSameBackoff) {
  transport_->PushResponse(503, "", {{"x-amzn-requestid", "r1"}});
  transport_->PushError(testing::ConnectionResetError());
  transport_->PushResponse(200, R"({"QueueUrl":"q"})");
  std::optional<Result<HttpResponse>> result;

  multi_->Start(*client_, JsonRequest("AmazonSQS", "GetQueueUrl", "{}"),
                [&](Result<HttpResponse> r) { result.emplace(std::move(r)); });
  ASSERT_TRUE(RunAll());

  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->ok()) << result->error().ToString();
  EXPECT_EQ((*result)->body, R"({"QueueUrl":"q"})");
  EXPECT_EQ(transport_->request_count(), 3u);
  // Backoff(1) and Backoff(2) with jitter 0.5, as AwsClient::Send sleeps them.
  EXPECT_EQ(clock_.sleeps(),
            (std::vector<std::chrono::nanoseconds>{milliseconds(500), milliseconds(1000)}));
}

TEST_F(AwsMultiTest, NonRetryableErrorEndsTheCallNamingServiceAndOperation) {
  transport_->PushResponse(400, R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"})");
  std::optional<Result<HttpResponse>> result;

  multi_->Start(*client_, JsonRequest("AmazonSQS", "GetQueueUrl", "{}"),
                [&](Result<HttpResponse> r) { result.emplace(std::move(r)); });
  ASSERT_TRUE(RunAll());

  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(result->ok());
  EXPECT_EQ(result->error().service, "SQS");
  EXPECT_EQ(result->error().operation, "GetQueueUrl");
  EXPECT_EQ(result->error().code, "QueueDoesNotExist");
  EXPECT_EQ(transport_->request_count(), 1u);
  EXPECT_TRUE(clock_.sleeps().empty());
}

TEST_F(AwsMultiTest, DoneRunsOnlyInsideRunOnceEvenForACallThatCannotBeSent) {
  transport_->PushResponse(200, "{}");
  int ended = 0;
  {
    ScopedDeadline past(clock_.Monotonic() - milliseconds(1));
    multi_->Start(*client_, JsonRequest("AmazonSQS", "GetQueueUrl", "{}"),
                  [&](Result<HttpResponse> r) {
                    EXPECT_FALSE(r.ok());
                    EXPECT_EQ(r.error().code, "DeadlineExceeded");
                    ++ended;
                  });
  }
  multi_->Start(*client_, JsonRequest("AmazonSQS", "GetQueueUrl", "{}"),
                [&](Result<HttpResponse> r) {
                  EXPECT_TRUE(r.ok());
                  ++ended;
                });
  EXPECT_EQ(ended, 0);
  EXPECT_EQ(multi_->pending(), 2u);
  ASSERT_TRUE(RunAll());
  EXPECT_EQ(ended, 2);
  EXPECT_EQ(transport_->request_count(), 1u);  // the one past its deadline never went out
}

TEST_F(AwsMultiTest, TimersRunInTheOrderTheyAreDueOnTheFakeClock) {
  std::vector<int> order;
  multi_->After(milliseconds(300), [&] { order.push_back(3); });
  multi_->After(milliseconds(100), [&] { order.push_back(1); });
  multi_->After(milliseconds(200), [&] { order.push_back(2); });
  ASSERT_TRUE(RunAll());
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::nanoseconds>{
                                 milliseconds(100), milliseconds(100), milliseconds(100)}));
}

TEST_F(AwsMultiTest, OffloadedWorkRunsElsewhereAndReportsBackOnTheLoopThread) {
  const std::thread::id loop = std::this_thread::get_id();
  std::thread::id worked_on, done_on;
  std::optional<int> got;
  multi_->Offload(
      [&] {
        worked_on = std::this_thread::get_id();
        return 42;
      },
      [&](int value) {
        done_on = std::this_thread::get_id();
        got = value;
      });
  ASSERT_TRUE(RunAll());
  EXPECT_EQ(got, 42);
  EXPECT_NE(worked_on, loop);
  EXPECT_EQ(done_on, loop);
}

TEST_F(AwsMultiTest, RunOnceIsFalseWhenNothingIsPending) {
  EXPECT_EQ(multi_->pending(), 0u);
  EXPECT_FALSE(multi_->RunOnce());
}

// SendMessageBatch on a multi: the same entry-level retry as the blocking form.
TEST_F(AwsMultiTest, SqsBatchOnAMultiResendsOnlyEntriesThatAreNotSenderFaults) {
  auto sqs = SqsClient::Create(context_);
  ASSERT_TRUE(sqs.ok()) << sqs.error().ToString();
  transport_->PushResponse(200, json{{"Successful", {{{"Id", "0"}, {"MessageId", "a"}}}},
                                     {"Failed",
                                      {{{"Id", "1"},
                                        {"SenderFault", false},
                                        {"Code", "InternalError"},
                                        {"Message", "again"}},
                                       {{"Id", "2"},
                                        {"SenderFault", true},
                                        {"Code", "InvalidMessageContents"},
                                        {"Message", "bad"}}}}}
                                    .dump());
  transport_->PushResponse(200, R"({"Successful":[{"Id":"0","MessageId":"b"}]})");
  std::vector<SendEntry> entries = {{"u0", {}, "", ""}, {"u1", {}, "", ""}, {"u2", {}, "", ""}};
  std::optional<Result<SendMessageBatchResult>> result;

  (*sqs)->StartSendMessageBatch(*multi_, kQueueUrl, entries,
                                [&](Result<SendMessageBatchResult> r) { result.emplace(r); });
  ASSERT_TRUE(RunAll());

  ASSERT_TRUE(result.has_value() && result->ok());
  EXPECT_EQ((*result)->message_ids, (std::vector<std::string>{"a", "b", ""}));
  ASSERT_EQ((*result)->failed.size(), 1u);
  EXPECT_EQ((*result)->failed[0].index, 2u);
  EXPECT_TRUE((*result)->failed[0].sender_fault);
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(JsonBody(requests[1])["Entries"][0]["MessageBody"], "u1");
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::nanoseconds>{milliseconds(500)}));
}

// BatchPutEncoded on a multi: unprocessed items are sent again, what stays is reported.
TEST_F(AwsMultiTest, DynamoDbPutOnAMultiResendsUnprocessedItemsAndReportsWhatStays) {
  DynamoDbClientOptions options;
  options.max_unprocessed_retries = 1;
  auto db = DynamoDbClient::Create(context_, options);
  ASSERT_TRUE(db.ok()) << db.error().ToString();
  const json item1 = {{"pk", {{"S", "j"}}}, {"sk", {{"S", "1"}}}};
  const json item2 = {{"pk", {{"S", "j"}}}, {"sk", {{"S", "2"}}}};
  const json unprocessed = json::array({{{"PutRequest", {{"Item", item2}}}}});
  transport_->PushResponse(200, json{{"UnprocessedItems", {{"t", unprocessed}}}}.dump());
  transport_->PushResponse(200, json{{"UnprocessedItems", {{"t", unprocessed}}}}.dump());
  std::optional<BatchWriteResult> result;

  (*db)->StartBatchPutEncoded(*multi_, "t", {item1.dump(), item2.dump()},
                              [&](BatchWriteResult r) { result.emplace(std::move(r)); });
  ASSERT_TRUE(RunAll());

  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->status.ok());
  ASSERT_EQ(result->unprocessed.size(), 1u);
  EXPECT_EQ(result->unprocessed[0].item_or_key, item2);
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(JsonBody(requests[0])["RequestItems"]["t"].size(), 2u);
  EXPECT_EQ(JsonBody(requests[1])["RequestItems"]["t"], unprocessed);
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::nanoseconds>{milliseconds(500)}));
}

}  // namespace
}  // namespace spotgrid
