// Integration tests of SqsClient against local-aws-sqs (started by the `emulators` ctest
// fixture). Every test works on its own queues (UniqueName), so tests run in parallel.
#include "spotgrid/services/sqs_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/client_fixture.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using testing::UniqueName;
using testing::UseEmulators;
using testing::WaitUntil;

class SqsClientIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    auto client = testing::CreateServiceClient<SqsClient>({});
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    sqs_ = *client;
  }

  void TearDown() override {
    for (const std::string& url : created_) (void)sqs_->DeleteQueue(url);
  }

  std::string NewQueue(CreateQueueRequest request = {}) {
    if (request.name.empty()) request.name = UniqueName("sq");
    auto url = sqs_->CreateQueue(request);
    EXPECT_TRUE(url.ok()) << url.error().ToString();
    if (!url.ok()) return {};
    created_.push_back(*url);
    return *url;
  }

  // Receives until `count` distinct messages arrived or 30 s passed.
  std::vector<SqsMessage> ReceiveAll(const std::string& url, std::size_t count,
                                     std::optional<int> visibility_timeout = 300) {
    std::vector<SqsMessage> out;
    std::set<std::string> ids;
    WaitUntil(
        [&] {
          ReceiveRequest request;
          request.wait_seconds = 1;
          request.visibility_timeout = visibility_timeout;
          auto messages = sqs_->ReceiveMessage(url, request);
          EXPECT_TRUE(messages.ok()) << messages.error().ToString();
          if (!messages.ok()) return true;
          for (auto& m : *messages) {
            if (ids.insert(m.id).second) out.push_back(std::move(m));
          }
          return out.size() >= count;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(0));
    return out;
  }

  int VisibleAndInFlight(const std::string& url) {
    auto attributes = sqs_->GetQueueAttributes(
        url, {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"});
    EXPECT_TRUE(attributes.ok()) << attributes.error().ToString();
    if (!attributes.ok()) return -1;
    return std::stoi((*attributes)["ApproximateNumberOfMessages"]) +
           std::stoi((*attributes)["ApproximateNumberOfMessagesNotVisible"]);
  }

  std::shared_ptr<SqsClient> sqs_;
  std::vector<std::string> created_;
};

TEST_F(SqsClientIntegrationTest, CreatedQueueIsFoundByNameAndMissingQueueIsNotFound) {
  CreateQueueRequest request;
  request.name = UniqueName("named");
  request.attributes = {{"VisibilityTimeout", "45"}};
  request.tags = {{"app", "spotgrid"}};
  std::string url = NewQueue(request);

  auto found = sqs_->GetQueueUrl(request.name);
  ASSERT_TRUE(found.ok()) << found.error().ToString();
  EXPECT_EQ(*found, url);
  auto attributes = sqs_->GetQueueAttributes(url, {"All"});
  ASSERT_TRUE(attributes.ok()) << attributes.error().ToString();
  EXPECT_EQ((*attributes)["VisibilityTimeout"], "45");

  auto missing = sqs_->GetQueueUrl(UniqueName("missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error().IsNotFound()) << missing.error().ToString();
}

TEST_F(SqsClientIntegrationTest, RedrivePolicyRoundTripsThroughGetQueueAttributes) {
  std::string dlq = NewQueue();
  auto dlq_attributes = sqs_->GetQueueAttributes(dlq, {"QueueArn"});
  ASSERT_TRUE(dlq_attributes.ok()) << dlq_attributes.error().ToString();
  std::string dlq_arn = (*dlq_attributes)["QueueArn"];
  ASSERT_FALSE(dlq_arn.empty());
  CreateQueueRequest request;
  request.redrive_policy = RedrivePolicy{dlq_arn, 3};
  std::string url = NewQueue(request);

  auto attributes = sqs_->GetQueueAttributes(url, {"RedrivePolicy"});

  ASSERT_TRUE(attributes.ok()) << attributes.error().ToString();
  auto policy = RedrivePolicy::FromAttributeValue((*attributes)["RedrivePolicy"]);
  ASSERT_TRUE(policy.ok()) << policy.error().ToString();
  EXPECT_EQ(policy->dead_letter_arn, dlq_arn);
  EXPECT_EQ(policy->max_receive_count, 3);
}

TEST_F(SqsClientIntegrationTest, SendMessageBatchOfManyEntriesDeliversEveryBodyOnce) {
  std::string url = NewQueue();
  std::vector<SendEntry> entries;
  for (int i = 0; i < 95; ++i) entries.push_back({"unit-" + std::to_string(i), {}, "", ""});

  auto sent = sqs_->SendMessageBatch(url, entries);

  ASSERT_TRUE(sent.ok()) << sent.error().ToString();
  ASSERT_TRUE(sent->ok()) << sent->failed[0].error.ToString();
  std::set<std::string> ids(sent->message_ids.begin(), sent->message_ids.end());
  EXPECT_EQ(ids.size(), 95u);
  EXPECT_FALSE(ids.count(""));

  std::vector<SqsMessage> received = ReceiveAll(url, 95);
  std::set<std::string> bodies;
  std::vector<std::string> handles;
  for (const SqsMessage& m : received) {
    bodies.insert(m.body);
    handles.push_back(m.receipt_handle);
    EXPECT_TRUE(ids.count(m.id)) << m.id;
    EXPECT_EQ(m.ReceiveCount(), 1);
  }
  EXPECT_EQ(bodies.size(), 95u);

  auto deleted = sqs_->DeleteMessageBatch(url, handles);
  ASSERT_TRUE(deleted.ok()) << deleted.error().ToString();
  EXPECT_TRUE(deleted->ok()) << deleted->failed[0].error.ToString();
  EXPECT_EQ(VisibleAndInFlight(url), 0);
}

TEST_F(SqsClientIntegrationTest, SendMessageBatchToMissingQueueReportsEveryEntry) {
  std::string url = NewQueue();
  ASSERT_TRUE(sqs_->DeleteQueue(url).ok());
  created_.clear();
  std::vector<SendEntry> entries(23, SendEntry{"x", {}, "", ""});

  auto sent = sqs_->SendMessageBatch(url, entries);

  ASSERT_TRUE(sent.ok());
  ASSERT_EQ(sent->failed.size(), 23u);
  EXPECT_TRUE(sent->failed[0].error.IsNotFound()) << sent->failed[0].error.ToString();
}

TEST_F(SqsClientIntegrationTest, LongPollReturnsAsSoonAsAMessageIsSent) {
  std::string url = NewQueue();
  std::atomic<bool> polling{false};
  std::future<Status> sender = std::async(std::launch::async, [&]() -> Status {
    if (!WaitUntil([&] { return polling.load(); }, std::chrono::seconds(10))) {
      return Error::InvalidInput("the poll never started");
    }
    std::vector<SendEntry> entry = {{"wake-up", {}, "", ""}};
    auto sent = sqs_->SendMessageBatch(url, entry);
    if (!sent.ok()) return sent.error();
    if (!sent->ok()) return sent->failed[0].error;
    return Status::Ok();
  });

  ReceiveRequest request;
  request.wait_seconds = 20;
  // One message is all that is coming (local-aws-sqs waits for MaxNumberOfMessages or the
  // end of the wait, where SQS returns as soon as any message is there).
  request.max_messages = 1;
  auto start = std::chrono::steady_clock::now();
  polling.store(true);
  auto messages = sqs_->ReceiveMessage(url, request);
  auto elapsed = std::chrono::steady_clock::now() - start;

  Status send_status = sender.get();
  ASSERT_TRUE(send_status.ok()) << send_status.ToString();
  ASSERT_TRUE(messages.ok()) << messages.error().ToString();
  ASSERT_EQ(messages->size(), 1u);
  EXPECT_EQ((*messages)[0].body, "wake-up");
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST_F(SqsClientIntegrationTest, LongPollOnAnEmptyQueueReturnsNoMessagesAfterTheWait) {
  std::string url = NewQueue();
  ReceiveRequest request;
  request.wait_seconds = 1;
  auto start = std::chrono::steady_clock::now();
  auto messages = sqs_->ReceiveMessage(url, request);
  ASSERT_TRUE(messages.ok()) << messages.error().ToString();
  EXPECT_TRUE(messages->empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
}

TEST_F(SqsClientIntegrationTest, VisibilityZeroMakesAMessageReceivableAgain) {
  std::string url = NewQueue();
  std::vector<SendEntry> entry = {{"again", {}, "", ""}};
  ASSERT_TRUE(sqs_->SendMessageBatch(url, entry)->ok());
  auto first = ReceiveAll(url, 1, 600);
  ASSERT_EQ(first.size(), 1u);

  ReceiveRequest request;
  request.wait_seconds = 1;
  auto hidden = sqs_->ReceiveMessage(url, request);
  ASSERT_TRUE(hidden.ok());
  EXPECT_TRUE(hidden->empty());  // still invisible for 600 s

  ASSERT_TRUE(sqs_->ChangeMessageVisibility(url, first[0].receipt_handle, 0).ok());
  auto second = ReceiveAll(url, 1, 600);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, first[0].id);
  // SQS says 2; local-aws-sqs also counts the visibility change. Either way it grew.
  EXPECT_GT(second[0].ReceiveCount(), first[0].ReceiveCount());
  EXPECT_TRUE(sqs_->DeleteMessage(url, second[0].receipt_handle).ok());
  EXPECT_EQ(VisibleAndInFlight(url), 0);
}

TEST_F(SqsClientIntegrationTest, ChangeMessageVisibilityBatchReleasesEveryMessage) {
  std::string url = NewQueue();
  std::vector<SendEntry> entries;
  for (int i = 0; i < 12; ++i) entries.push_back({"m" + std::to_string(i), {}, "", ""});
  ASSERT_TRUE(sqs_->SendMessageBatch(url, entries)->ok());
  auto received = ReceiveAll(url, 12, 600);
  ASSERT_EQ(received.size(), 12u);
  std::vector<VisibilityEntry> release;
  for (const SqsMessage& m : received) release.push_back({m.receipt_handle, 0});

  auto changed = sqs_->ChangeMessageVisibilityBatch(url, release);

  ASSERT_TRUE(changed.ok()) << changed.error().ToString();
  EXPECT_TRUE(changed->ok()) << changed->failed[0].error.ToString();
  auto again = ReceiveAll(url, 12, 600);
  EXPECT_EQ(again.size(), 12u);
  for (const SqsMessage& m : again) EXPECT_GE(m.ReceiveCount(), 2);
}

TEST_F(SqsClientIntegrationTest, PurgeQueueDropsEveryMessage) {
  std::string url = NewQueue();
  std::vector<SendEntry> entries(7, SendEntry{"purge-me", {}, "", ""});
  ASSERT_TRUE(sqs_->SendMessageBatch(url, entries)->ok());
  // The counts are approximate: wait until they show the messages.
  ASSERT_TRUE(WaitUntil([&] { return VisibleAndInFlight(url) == 7; }, std::chrono::seconds(10)));

  ASSERT_TRUE(sqs_->PurgeQueue(url).ok());

  // SQS takes up to 60 s to delete the messages of a purged queue.
  EXPECT_TRUE(WaitUntil([&] { return VisibleAndInFlight(url) == 0; }, std::chrono::seconds(90),
                        std::chrono::milliseconds(200)));
  ReceiveRequest request;
  request.wait_seconds = 1;
  auto messages = sqs_->ReceiveMessage(url, request);
  ASSERT_TRUE(messages.ok());
  EXPECT_TRUE(messages->empty());
}

}  // namespace
}  // namespace spotgrid
