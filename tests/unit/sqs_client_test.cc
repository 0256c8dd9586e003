// SqsClient against FakeTransport: request shapes, batching, entry-level retries.
#include "spotgrid/services/sqs_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "support/client_fixture.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::HeaderOf;
using testing::JsonBody;

constexpr char kQueueUrl[] = "https://sqs.us-east-1.amazonaws.com/123456789012/work";

class SqsClientTest : public testing::FakeAwsTest {
 protected:
  void SetUp() override { MakeClient({}); }

  void MakeClient(SqsClientOptions options) {
    auto client = CreateClient<SqsClient>(options);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *client;
  }

  // Answers every SendMessageBatch entry as successful, MessageId = "m-" + body.
  static Result<HttpResponse> AllSuccessful(const HttpRequest& request) {
    json body = JsonBody(request);
    json successful = json::array();
    for (const json& entry : body["Entries"]) {
      successful.push_back({{"Id", entry["Id"]},
                            {"MessageId", "m-" + entry["MessageBody"].get<std::string>()},
                            {"MD5OfMessageBody", "x"}});
    }
    HttpResponse response;
    response.status = 200;
    response.body = json{{"Successful", successful}}.dump();
    return response;
  }

  static std::vector<SendEntry> Entries(int n, std::size_t body_size = 0) {
    std::vector<SendEntry> entries;
    for (int i = 0; i < n; ++i) {
      std::string body = "unit-" + std::to_string(i);
      if (body_size > body.size()) body.resize(body_size, 'x');
      entries.push_back({body, std::nullopt, "", ""});
    }
    return entries;
  }

  std::shared_ptr<SqsClient> client_;
};

TEST_F(SqsClientTest, CreateQueueSendsRedrivePolicyAsJsonStringAndLowerCaseTags) {
  transport_->PushResponse(200, R"({"QueueUrl":"https://sqs.example/1/work"})");
  CreateQueueRequest request;
  request.name = "work";
  request.attributes = {{"VisibilityTimeout", "60"}};
  request.redrive_policy = RedrivePolicy{"arn:aws:sqs:us-east-1:1:work-dlq", 5};
  request.tags = {{"app", "spotgrid"}};

  auto url = client_->CreateQueue(request);

  ASSERT_TRUE(url.ok()) << url.error().ToString();
  EXPECT_EQ(*url, "https://sqs.example/1/work");
  ASSERT_EQ(transport_->request_count(), 1u);
  HttpRequest sent = transport_->requests()[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(HeaderOf(sent, "x-amz-target"), "AmazonSQS.CreateQueue");
  EXPECT_EQ(FindHeader(sent.headers, "content-type").value_or(""), "application/x-amz-json-1.0");
  json body = JsonBody(sent);
  EXPECT_EQ(body["QueueName"], "work");
  EXPECT_EQ(body["Attributes"]["VisibilityTimeout"], "60");
  ASSERT_TRUE(body["Attributes"]["RedrivePolicy"].is_string());
  json redrive = json::parse(body["Attributes"]["RedrivePolicy"].get<std::string>());
  EXPECT_EQ(redrive["deadLetterTargetArn"], "arn:aws:sqs:us-east-1:1:work-dlq");
  EXPECT_EQ(redrive["maxReceiveCount"], 5);
  EXPECT_EQ(body["tags"]["app"], "spotgrid");
  EXPECT_FALSE(body.contains("Tags"));
}

TEST_F(SqsClientTest, RedrivePolicyParsesNumericAndStringReceiveCount) {
  auto numeric =
      RedrivePolicy::FromAttributeValue(R"({"deadLetterTargetArn":"arn:a","maxReceiveCount":7})");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->dead_letter_arn, "arn:a");
  EXPECT_EQ(numeric->max_receive_count, 7);
  auto text =
      RedrivePolicy::FromAttributeValue(R"({"deadLetterTargetArn":"arn:b","maxReceiveCount":"3"})");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->max_receive_count, 3);
  EXPECT_FALSE(RedrivePolicy::FromAttributeValue("not json").ok());
  EXPECT_FALSE(RedrivePolicy::FromAttributeValue(R"({"maxReceiveCount":3})").ok());
}

TEST_F(SqsClientTest, GetQueueUrlReportsMissingQueueAsNotFound) {
  transport_->PushResponse(
      400,
      R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."})",
      {{"x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender"}});

  auto url = client_->GetQueueUrl("nope");

  ASSERT_FALSE(url.ok());
  EXPECT_TRUE(url.error().IsNotFound());
  EXPECT_EQ(url.error().operation, "GetQueueUrl");
  EXPECT_EQ(JsonBody(transport_->requests()[0])["QueueName"], "nope");
  EXPECT_EQ(transport_->request_count(), 1u);  // not retried
}

TEST_F(SqsClientTest, GetQueueAttributesReturnsStringValues) {
  transport_->PushResponse(
      200, R"({"Attributes":{"QueueArn":"arn:q","ApproximateNumberOfMessages":"4"}})");

  auto attributes =
      client_->GetQueueAttributes(kQueueUrl, {"QueueArn", "ApproximateNumberOfMessages"});

  ASSERT_TRUE(attributes.ok()) << attributes.error().ToString();
  EXPECT_EQ((*attributes)["QueueArn"], "arn:q");
  EXPECT_EQ((*attributes)["ApproximateNumberOfMessages"], "4");
  json body = JsonBody(transport_->requests()[0]);
  EXPECT_EQ(HeaderOf(transport_->requests()[0], "x-amz-target"), "AmazonSQS.GetQueueAttributes");
  EXPECT_EQ(body["QueueUrl"], kQueueUrl);
  EXPECT_EQ(body["AttributeNames"], json({"QueueArn", "ApproximateNumberOfMessages"}));
}

TEST_F(SqsClientTest, SendMessageBatchSplitsTwentyFiveEntriesIntoThreeCalls) {
  transport_->SetFallback(AllSuccessful);
  auto entries = Entries(25);

  auto result = client_->SendMessageBatch(kQueueUrl, entries);

  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_TRUE(result->ok());
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 3u);
  std::multiset<std::size_t> sizes;
  std::set<std::string> bodies;
  for (const HttpRequest& request : requests) {
    EXPECT_EQ(HeaderOf(request, "x-amz-target"), "AmazonSQS.SendMessageBatch");
    json body = JsonBody(request);
    EXPECT_EQ(body["QueueUrl"], kQueueUrl);
    sizes.insert(body["Entries"].size());
    for (std::size_t k = 0; k < body["Entries"].size(); ++k) {
      EXPECT_EQ(body["Entries"][k]["Id"], std::to_string(k));
      bodies.insert(body["Entries"][k]["MessageBody"].get<std::string>());
    }
  }
  EXPECT_EQ(sizes, (std::multiset<std::size_t>{5, 10, 10}));
  EXPECT_EQ(bodies.size(), 25u);
  ASSERT_EQ(result->message_ids.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(result->message_ids[i], "m-unit-" + std::to_string(i));
}

TEST_F(SqsClientTest, SendMessageBatchKeepsEachBatchUnderThePayloadLimit) {
  transport_->SetFallback(AllSuccessful);
  auto entries = Entries(5, 400 * 1024);  // two fit into 1 MiB, three do not

  auto result = client_->SendMessageBatch(kQueueUrl, entries);

  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->ok());
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const HttpRequest& request : requests) {
    std::size_t payload = 0;
    json body = JsonBody(request);
    for (const json& entry : body["Entries"]) {
      payload += entry["MessageBody"].get<std::string>().size();
    }
    EXPECT_LE(payload, 1024u * 1024u);
  }
}

TEST_F(SqsClientTest, SendMessageBatchResendsOnlyFailedEntriesThatAreNotSenderFaults) {
  auto entries = Entries(6);
  transport_->PushResponse(200, json{{"Successful",
                                      {{{"Id", "0"}, {"MessageId", "a"}},
                                       {{"Id", "1"}, {"MessageId", "b"}},
                                       {{"Id", "2"}, {"MessageId", "c"}},
                                       {{"Id", "4"}, {"MessageId", "e"}}}},
                                     {"Failed",
                                      {{{"Id", "3"},
                                        {"SenderFault", false},
                                        {"Code", "InternalError"},
                                        {"Message", "try again"}},
                                       {{"Id", "5"},
                                        {"SenderFault", true},
                                        {"Code", "InvalidMessageContents"},
                                        {"Message", "bad"}}}}}
                                    .dump());
  transport_->PushResponse(200, R"({"Successful":[{"Id":"0","MessageId":"d"}]})");

  auto result = client_->SendMessageBatch(kQueueUrl, entries);

  ASSERT_TRUE(result.ok());
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  json retry = JsonBody(requests[1]);
  ASSERT_EQ(retry["Entries"].size(), 1u);
  EXPECT_EQ(retry["Entries"][0]["MessageBody"], "unit-3");
  EXPECT_EQ(retry["Entries"][0]["Id"], "0");
  EXPECT_EQ(result->message_ids, (std::vector<std::string>{"a", "b", "c", "d", "e", ""}));
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].index, 5u);
  EXPECT_TRUE(result->failed[0].sender_fault);
  EXPECT_EQ(result->failed[0].error.code, "InvalidMessageContents");
  // One backoff before the re-send: Backoff(1) = 0.5 * 1000 ms with random01 = 0.5.
  ASSERT_EQ(clock_.sleeps().size(), 1u);
  EXPECT_EQ(clock_.sleeps()[0], std::chrono::milliseconds(500));
}

TEST_F(SqsClientTest, SendMessageBatchReportsEntriesStillFailingAfterRetryBudget) {
  SqsClientOptions options;
  options.max_entry_retries = 2;
  MakeClient(options);
  transport_->SetFallback([](const HttpRequest& request) -> Result<HttpResponse> {
    json failed = json::array();
    json body = JsonBody(request);
    for (const json& entry : body["Entries"]) {
      failed.push_back({{"Id", entry["Id"]},
                        {"SenderFault", false},
                        {"Code", "ServiceUnavailable"},
                        {"Message", "busy"}});
    }
    HttpResponse response;
    response.status = 200;
    response.body = json{{"Failed", failed}}.dump();
    return response;
  });

  auto result = client_->SendMessageBatch(kQueueUrl, Entries(2));

  ASSERT_TRUE(result.ok());
  EXPECT_EQ(transport_->request_count(), 3u);  // first try + 2 re-sends
  ASSERT_EQ(result->failed.size(), 2u);
  EXPECT_FALSE(result->failed[0].sender_fault);
  EXPECT_EQ(result->failed[1].error.code, "ServiceUnavailable");
  EXPECT_EQ(clock_.sleeps().size(), 2u);
}

TEST_F(SqsClientTest, SendMessageBatchStopsSendingAfterQueueDoesNotExist) {
  SqsClientOptions options;
  options.batch_concurrency = 1;
  MakeClient(options);
  transport_->SetFallback([](const HttpRequest&) -> Result<HttpResponse> {
    HttpResponse response;
    response.status = 400;
    response.body = R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"})";
    return response;
  });

  auto result = client_->SendMessageBatch(kQueueUrl, Entries(25));

  ASSERT_TRUE(result.ok());
  EXPECT_EQ(transport_->request_count(), 1u);
  ASSERT_EQ(result->failed.size(), 25u);
  for (const BatchEntryFailure& failure : result->failed) {
    EXPECT_TRUE(failure.error.IsNotFound());
    EXPECT_TRUE(failure.sender_fault);
  }
}

TEST_F(SqsClientTest, ReceiveMessageLongPollsWithTimeoutAboveTheWait) {
  transport_->PushResponse(
      200,
      R"({"Messages":[{"MessageId":"m1","ReceiptHandle":"rh1","MD5OfBody":"x","Body":"hello","Attributes":{"ApproximateReceiveCount":"3"}}]})");
  ReceiveRequest request;
  request.wait_seconds = 20;
  request.max_messages = 10;
  request.visibility_timeout = 60;

  auto messages = client_->ReceiveMessage(kQueueUrl, request);

  ASSERT_TRUE(messages.ok()) << messages.error().ToString();
  ASSERT_EQ(messages->size(), 1u);
  const SqsMessage& m = (*messages)[0];
  EXPECT_EQ(m.id, "m1");
  EXPECT_EQ(m.receipt_handle, "rh1");
  EXPECT_EQ(m.body, "hello");
  EXPECT_EQ(m.ReceiveCount(), 3);
  HttpRequest sent = transport_->requests()[0];
  EXPECT_EQ(HeaderOf(sent, "x-amz-target"), "AmazonSQS.ReceiveMessage");
  json body = JsonBody(sent);
  EXPECT_EQ(body["WaitTimeSeconds"], 20);
  EXPECT_EQ(body["MaxNumberOfMessages"], 10);
  EXPECT_EQ(body["VisibilityTimeout"], 60);
  EXPECT_EQ(body["MessageSystemAttributeNames"], json({"ApproximateReceiveCount"}));
  EXPECT_EQ(body["AttributeNames"], json({"ApproximateReceiveCount"}));
  EXPECT_GT(sent.timeout, std::chrono::seconds(20));
}

TEST_F(SqsClientTest, ReceiveMessageWithoutMessagesKeyIsEmpty) {
  transport_->PushResponse(200, "{}");

  auto messages = client_->ReceiveMessage(kQueueUrl, {});

  ASSERT_TRUE(messages.ok());
  EXPECT_TRUE(messages->empty());
}

TEST_F(SqsClientTest, ReceiveMessageRejectsWaitAboveTwentySeconds) {
  ReceiveRequest request;
  request.wait_seconds = 21;
  auto messages = client_->ReceiveMessage(kQueueUrl, request);
  ASSERT_FALSE(messages.ok());
  EXPECT_EQ(messages.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(SqsClientTest, DeleteAndVisibilityCallsUseReceiptHandles) {
  transport_->PushResponse(200, "{}");
  transport_->PushResponse(200, "{}");
  transport_->PushResponse(200, "{}");
  ASSERT_TRUE(client_->DeleteMessage(kQueueUrl, "rh1").ok());
  ASSERT_TRUE(client_->ChangeMessageVisibility(kQueueUrl, "rh2", 0).ok());
  ASSERT_TRUE(client_->PurgeQueue(kQueueUrl).ok());
  auto requests = transport_->requests();
  EXPECT_EQ(HeaderOf(requests[0], "x-amz-target"), "AmazonSQS.DeleteMessage");
  EXPECT_EQ(JsonBody(requests[0]), json({{"QueueUrl", kQueueUrl}, {"ReceiptHandle", "rh1"}}));
  EXPECT_EQ(HeaderOf(requests[1], "x-amz-target"), "AmazonSQS.ChangeMessageVisibility");
  EXPECT_EQ(JsonBody(requests[1]),
            json({{"QueueUrl", kQueueUrl}, {"ReceiptHandle", "rh2"}, {"VisibilityTimeout", 0}}));
  EXPECT_EQ(HeaderOf(requests[2], "x-amz-target"), "AmazonSQS.PurgeQueue");
}

TEST_F(SqsClientTest, DeleteMessageBatchSplitsAndReportsFailuresByIndex) {
  SqsClientOptions options;
  options.batch_concurrency = 1;
  MakeClient(options);
  std::vector<std::string> handles;
  for (int i = 0; i < 12; ++i) handles.push_back("rh" + std::to_string(i));
  transport_->PushResponse(
      200,
      R"({"Successful":[{"Id":"0"},{"Id":"1"},{"Id":"2"},{"Id":"3"},{"Id":"4"},{"Id":"5"},{"Id":"6"},{"Id":"8"},{"Id":"9"}],
          "Failed":[{"Id":"7","SenderFault":true,"Code":"ReceiptHandleIsInvalid","Message":"bad"}]})");
  transport_->PushResponse(200, R"({"Successful":[{"Id":"0"},{"Id":"1"}]})");

  auto result = client_->DeleteMessageBatch(kQueueUrl, handles);

  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].index, 7u);
  EXPECT_EQ(result->failed[0].error.code, "ReceiptHandleIsInvalid");
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(HeaderOf(requests[0], "x-amz-target"), "AmazonSQS.DeleteMessageBatch");
  EXPECT_EQ(JsonBody(requests[0])["Entries"].size(), 10u);
  EXPECT_EQ(JsonBody(requests[1])["Entries"][1], json({{"Id", "1"}, {"ReceiptHandle", "rh11"}}));
}

TEST_F(SqsClientTest, ChangeMessageVisibilityBatchEncodesTimeouts) {
  transport_->PushResponse(200, R"({"Successful":[{"Id":"0"},{"Id":"1"}]})");
  std::vector<VisibilityEntry> entries = {{"rh0", 0}, {"rh1", 120}};

  auto result = client_->ChangeMessageVisibilityBatch(kQueueUrl, entries);

  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->ok());
  HttpRequest sent = transport_->requests()[0];
  EXPECT_EQ(HeaderOf(sent, "x-amz-target"), "AmazonSQS.ChangeMessageVisibilityBatch");
  EXPECT_EQ(JsonBody(sent)["Entries"][1],
            json({{"Id", "1"}, {"ReceiptHandle", "rh1"}, {"VisibilityTimeout", 120}}));
}

TEST_F(SqsClientTest, SendMessageBatchFailsOnlyTheEntryThatIsNotUtf8) {
  transport_->SetFallback(AllSuccessful);
  auto entries = Entries(3);
  entries[1].body = "bad \xff byte";

  auto result = client_->SendMessageBatch(kQueueUrl, entries);

  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].index, 1u);
  EXPECT_EQ(result->failed[0].error.category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(result->message_ids[0], "m-unit-0");
  EXPECT_EQ(result->message_ids[2], "m-unit-2");
  ASSERT_EQ(transport_->request_count(), 1u);
  EXPECT_EQ(JsonBody(transport_->requests()[0])["Entries"].size(), 2u);
}

TEST(SqsEncodingTest, BatchBodyEscapesLikeAnyJsonSerialiser) {
  std::vector<SendEntry> entries(2);
  entries[0].body = "quote \" backslash \\ newline \n tab \t nul " + std::string(1, '\0') +
                    " bell \x07 unicode \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  entries[1].body = R"({"job":"sweep-42"})";
  entries[1].delay_seconds = 5;
  entries[1].message_group_id = "g";
  entries[1].message_deduplication_id = "d";

  auto body = EncodeSendMessageBatch(kQueueUrl, entries);

  ASSERT_TRUE(body.ok());
  json parsed = json::parse(*body);
  json expected = {{"QueueUrl", kQueueUrl},
                   {"Entries",
                    {{{"Id", "0"}, {"MessageBody", entries[0].body}},
                     {{"Id", "1"},
                      {"MessageBody", entries[1].body},
                      {"DelaySeconds", 5},
                      {"MessageGroupId", "g"},
                      {"MessageDeduplicationId", "d"}}}}};
  EXPECT_EQ(parsed, expected);
  EXPECT_EQ(body->find('\0'), std::string::npos);  // control characters are escaped
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    std::vector<SendEntry> one = {{bad, std::nullopt, "", ""}};
    EXPECT_FALSE(EncodeSendMessageBatch(kQueueUrl, one).ok()) << "accepted invalid UTF-8";
  }
}

TEST(SqsEncodingTest, SplitSendBatchesSendsAnOversizedEntryAlone) {
  std::vector<SendEntry> entries(4);
  entries[0].body = std::string(10, 'a');
  entries[1].body = std::string(200, 'b');
  entries[2].body = std::string(10, 'c');
  entries[3].body = std::string(10, 'd');
  auto batches = SplitSendBatches(entries, 100);
  EXPECT_EQ(batches, (std::vector<std::pair<std::size_t, std::size_t>>{{0, 1}, {1, 2}, {2, 4}}));
}

}  // namespace
}  // namespace spotgrid
