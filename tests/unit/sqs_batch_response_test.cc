// How SqsClient reads batch responses (SendMessageBatch and the handle batches): the same
// outcomes a JSON document of the response would give, and malformed bodies rejected.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "spotgrid/services/sqs_client.h"
#include "support/client_fixture.h"

namespace spotgrid {
namespace {

constexpr char kQueueUrl[] = "https://sqs.us-east-1.amazonaws.com/123456789012/work";

class SqsBatchResponseTest : public testing::FakeAwsTest {
 protected:
  void SetUp() override {
    auto client = CreateClient<SqsClient>(SqsClientOptions{});
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *client;
  }

  static std::vector<SendEntry> Entries(int n) {
    std::vector<SendEntry> entries;
    for (int i = 0; i < n; ++i) entries.push_back({"unit-" + std::to_string(i), {}, "", ""});
    return entries;
  }

  std::shared_ptr<SqsClient> client_;
};

TEST_F(SqsBatchResponseTest, TruncatedBodyFailsEveryEntryAsMalformedResponse) {
  transport_->PushResponse(200, R"({"Successful":[{"Id":"0","MessageId":"a"})");

  auto result = client_->SendMessageBatch(kQueueUrl, Entries(2));

  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->failed.size(), 2u);
  for (const BatchEntryFailure& failure : result->failed) {
    EXPECT_EQ(failure.error.code, "MalformedResponse");
    EXPECT_FALSE(failure.sender_fault);
  }
  EXPECT_EQ(transport_->request_count(), 1u);
}

TEST_F(SqsBatchResponseTest, BodyThatIsNotAnObjectFailsEveryEntry) {
  transport_->PushResponse(200, R"([{"Id":"0","MessageId":"a"}])");

  auto result = client_->SendMessageBatch(kQueueUrl, Entries(1));

  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].error.code, "MalformedResponse");
}

TEST_F(SqsBatchResponseTest, InvalidUtf8InAStringMakesTheBodyMalformed) {
  transport_->PushResponse(200, "{\"Successful\":[{\"Id\":\"0\",\"MessageId\":\"\xc0\xaf\"}]}");

  auto result = client_->SendMessageBatch(kQueueUrl, Entries(1));

  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].error.code, "MalformedResponse");
}

TEST_F(SqsBatchResponseTest, SenderFaultThatIsNotABooleanMakesTheResponseMalformed) {
  transport_->PushResponse(
      200, R"({"Failed":[{"Id":"0","SenderFault":"false","Code":"X","Message":"m"}]})");

  auto result = client_->DeleteMessageBatch(kQueueUrl, std::vector<std::string>{"h0"});

  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].error.code, "MalformedResponse");
  EXPECT_EQ(transport_->request_count(), 1u);  // not resent as a retryable entry failure
}

TEST_F(SqsBatchResponseTest, ARepeatedListCountsOnlyItsLastOccurrenceAsInAJsonDocument) {
  transport_->PushResponse(200, R"({"Successful":[{"Id":"0","MessageId":"first"}],
                                    "Successful":[{"Id":"1","MessageId":"second"}]})");

  auto result = client_->SendMessageBatch(kQueueUrl, Entries(2));

  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->message_ids, (std::vector<std::string>{"", "second"}));
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].index, 0u);
  EXPECT_EQ(result->failed[0].error.code, "MalformedResponse");  // missing from the response
}

TEST_F(SqsBatchResponseTest, ReadsEscapedStringsAndSkipsMembersItDoesNotUse) {
  transport_->PushResponse(200, R"({"Other":{"Successful":[{"Id":"0","MessageId":"wrong"}]},
      "Successful":[{"MD5OfMessageBody":"x","Extra":[1,{"Id":"1"}],"MessageId":"m\u0041\ud83d\ude00",
                     "Id":"0"},
                    "not an entry", 7,
                    {"Id":1,"MessageId":"id is not a string"}],
      "Failed":[{"Id":"1","SenderFault":true,"Code":"Invalid\/Contents","Message":"line\nbreak"}]})");

  auto result = client_->SendMessageBatch(kQueueUrl, Entries(2));

  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->message_ids, (std::vector<std::string>{"mA\xf0\x9f\x98\x80", ""}));
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].index, 1u);
  EXPECT_TRUE(result->failed[0].sender_fault);
  EXPECT_EQ(result->failed[0].error.code, "Invalid/Contents");
  EXPECT_EQ(result->failed[0].error.message, "line\nbreak");
}

}  // namespace
}  // namespace spotgrid
