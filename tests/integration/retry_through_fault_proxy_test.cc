// The client core's retries, proven against real emulators behind tests/harness/fault_proxy.py.
//
// Each test starts its own proxy in front of one emulator (SQS, DynamoDB or S3), points a
// client at the proxy through an endpoint override, injects faults (dropped connections, slow
// responses, 5xx, throttling, validation errors) and checks that the call succeeds or fails
// exactly as the retry policy says, with the proxy's counters confirming the number of attempts.
// Setup (queues, tables, buckets) goes straight to the emulator, so the proxy sees only the
// call under test. The retry base delay is 10 ms: real backoff sleeps, kept short.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/json_protocol.h"
#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/s3_client.h"
#include "spotgrid/services/sqs_client.h"
#include "support/client_fixture.h"
#include "support/fault_proxy.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::EmulatorValue;
using testing::FaultProxy;
using testing::UniqueName;
using testing::UseEmulators;

constexpr int kMaxAttempts = 3;

json Rule(const std::string& action, int count) { return {{"action", action}, {"count", count}}; }

json StatusRule(int count, int status, const std::string& code, const std::string& format) {
  return {{"action", "status"},
          {"count", count},
          {"status", status},
          {"code", code},
          {"body_format", format}};
}

class RetryThroughFaultProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    auto direct = AwsContext::Create({});  // the emulators, from the launcher's environment
    ASSERT_TRUE(direct.ok()) << direct.error().ToString();
    direct_ = *direct;
  }

  // Starts a proxy in front of the emulator that `endpoint_var` names and a context whose
  // `endpoint_var` points at the proxy; `direct` and `proxied` become clients of the emulator
  // itself (for setup) and of the proxy.
  template <typename Client>
  void StartBehindProxy(const std::string& endpoint_var, std::shared_ptr<Client>& direct,
                        std::shared_ptr<Client>& proxied) {
    const std::string upstream = EmulatorValue(endpoint_var);
    ASSERT_FALSE(upstream.empty()) << endpoint_var << " is not set by the launcher";
    proxy_ = FaultProxy::Start(upstream);
    ASSERT_NE(proxy_, nullptr);
    env_ = testing::EmulatorEnvironment();
    env_.Set(endpoint_var, proxy_->url());
    auto context = testing::CreateEmulatorContext(env_, kMaxAttempts);
    ASSERT_TRUE(context.ok()) << context.error().ToString();
    proxied_ = *context;
    for (auto [target, source] : {std::pair{&direct, direct_}, std::pair{&proxied, proxied_}}) {
      auto client = Client::Create(source);
      ASSERT_TRUE(client.ok()) << client.error().ToString();
      *target = *client;
    }
  }

  // SQS behind the proxy, with a queue created directly on the emulator.
  void StartSqs() {
    std::shared_ptr<SqsClient> direct;
    ASSERT_NO_FATAL_FAILURE(StartBehindProxy("AWS_ENDPOINT_URL_SQS", direct, sqs_));
    queue_name_ = UniqueName("retry");
    CreateQueueRequest create;
    create.name = queue_name_;
    auto url = direct->CreateQueue(create);
    ASSERT_TRUE(url.ok()) << url.error().ToString();
    queue_url_ = *url;
  }

  // DynamoDB behind the proxy, with a table holding one item created directly.
  void StartDynamoDb() {
    std::shared_ptr<DynamoDbClient> direct;
    ASSERT_NO_FATAL_FAILURE(StartBehindProxy("AWS_ENDPOINT_URL_DYNAMODB", direct, dynamodb_));
    table_ = UniqueName("retry");
    TableSpec spec;
    spec.name = table_;
    spec.partition_key = {"pk", "S"};
    Status created = direct->EnsureTable(spec, std::chrono::seconds(30));
    ASSERT_TRUE(created.ok()) << created.ToString();
    WriteResult put = direct->PutItem(table_, {{"pk", {{"S", "a"}}}, {"v", {{"S", "1"}}}});
    ASSERT_TRUE(put.status.ok()) << put.status.ToString();
  }

  // S3 behind the proxy, with a bucket created directly.
  void StartS3() {
    std::shared_ptr<S3Client> direct;
    ASSERT_NO_FATAL_FAILURE(StartBehindProxy("AWS_ENDPOINT_URL_S3", direct, s3_));
    bucket_ = UniqueName("retry");
    Status created = direct->CreateBucket(bucket_);
    ASSERT_TRUE(created.ok()) << created.ToString();
  }

  // GetQueueUrl for this test's queue, sent with AwsClient::Send through the proxy with an HTTP
  // timeout of `timeout`.
  Result<HttpResponse> SendGetQueueUrl(std::chrono::milliseconds timeout) {
    auto client = AwsClient::Create(proxied_, kSqsService);
    if (!client.ok()) {
      ADD_FAILURE() << client.error().ToString();
      return client.error();
    }
    AwsRequest request;
    request.operation = "GetQueueUrl";
    request.headers = {{"content-type", "application/x-amz-json-1.0"},
                       {"x-amz-target", "AmazonSQS.GetQueueUrl"}};
    request.body = json{{"QueueName", queue_name_}}.dump();
    request.timeout = timeout;
    return (*client)->Send(request);
  }

  // Asserts the proxy saw exactly `requests` requests of which `faults` were faulted.
  void ExpectAttempts(int requests, int faults) {
    json stats = proxy_->Stats();
    EXPECT_EQ(stats["requests"], requests) << stats.dump(1) << "\nproxy log:\n" << proxy_->Log();
    EXPECT_EQ(stats["faults"], faults) << stats.dump(1);
  }

  std::shared_ptr<AwsContext> direct_;
  std::shared_ptr<AwsContext> proxied_;
  MapEnvironment env_;
  std::unique_ptr<FaultProxy> proxy_;

  std::string queue_name_, queue_url_, table_, bucket_;
  std::shared_ptr<SqsClient> sqs_;
  std::shared_ptr<DynamoDbClient> dynamodb_;
  std::shared_ptr<S3Client> s3_;
};

TEST_F(RetryThroughFaultProxyTest, ProxyForwardsUnfaultedCallsUnchanged) {
  ASSERT_NO_FATAL_FAILURE(StartSqs());
  auto url = sqs_->GetQueueUrl(queue_name_);
  ASSERT_TRUE(url.ok()) << url.error().ToString();
  EXPECT_EQ(*url, queue_url_);
  ExpectAttempts(1, 0);
}

TEST_F(RetryThroughFaultProxyTest, DroppedConnectionsAreRetriedOnNewConnections) {
  ASSERT_NO_FATAL_FAILURE(StartSqs());
  proxy_->AddRules({Rule("drop", 2)});
  auto url = sqs_->GetQueueUrl(queue_name_);
  ASSERT_TRUE(url.ok()) << url.error().ToString();
  EXPECT_EQ(*url, queue_url_);
  ExpectAttempts(3, 2);
  EXPECT_EQ(proxy_->Stats()["connections"], 3);
}

TEST_F(RetryThroughFaultProxyTest, DroppedConnectionsBeyondTheBudgetFailAsConnectionErrors) {
  ASSERT_NO_FATAL_FAILURE(StartSqs());
  proxy_->AddRules({Rule("drop", 5)});
  auto url = sqs_->GetQueueUrl(queue_name_);
  ASSERT_FALSE(url.ok());
  const Error& e = url.error();
  EXPECT_EQ(e.service, "SQS");
  EXPECT_EQ(e.operation, "GetQueueUrl");
  EXPECT_EQ(e.http_status, 0);
  EXPECT_EQ(e.code, "ConnectionFailed");
  EXPECT_EQ(e.category, ErrorCategory::kTransient);
  ExpectAttempts(kMaxAttempts, kMaxAttempts);
}

TEST_F(RetryThroughFaultProxyTest, ResponseSlowerThanTheRequestTimeoutIsRetried) {
  ASSERT_NO_FATAL_FAILURE(StartSqs());
  proxy_->AddRules({{{"action", "delay"}, {"count", 1}, {"delay_ms", 3000}}});
  auto response = SendGetQueueUrl(std::chrono::milliseconds(500));
  ASSERT_TRUE(response.ok()) << response.error().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(json::parse(response->body)["QueueUrl"], queue_url_);
  ExpectAttempts(2, 1);
}

TEST_F(RetryThroughFaultProxyTest, ResponsesAlwaysSlowerThanTheTimeoutFailAsTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartSqs());
  proxy_->AddRules({{{"action", "delay"}, {"count", 5}, {"delay_ms", 3000}}});
  auto response = SendGetQueueUrl(std::chrono::milliseconds(300));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, "Timeout");
  EXPECT_EQ(response.error().service, "SQS");
  EXPECT_EQ(response.error().operation, "GetQueueUrl");
  ExpectAttempts(kMaxAttempts, kMaxAttempts);
}

TEST_F(RetryThroughFaultProxyTest, Http500IsRetriedUntilTheCallSucceeds) {
  ASSERT_NO_FATAL_FAILURE(StartDynamoDb());
  proxy_->AddRules({StatusRule(2, 500, "InternalServerError", "json")});
  auto item = dynamodb_->GetItem(table_, {{"pk", {{"S", "a"}}}});
  ASSERT_TRUE(item.ok()) << item.error().ToString();
  ASSERT_TRUE(item->has_value());
  EXPECT_EQ((**item)["v"], (json{{"S", "1"}}));
  ExpectAttempts(3, 2);
}

TEST_F(RetryThroughFaultProxyTest, S3SlowDownIsRetriedUntilThePutSucceeds) {
  ASSERT_NO_FATAL_FAILURE(StartS3());
  proxy_->AddRules({StatusRule(2, 503, "SlowDown", "xml")});
  auto etag = s3_->PutObject(bucket_, "dir/object.txt", "hello through the proxy");
  ASSERT_TRUE(etag.ok()) << etag.error().ToString();
  EXPECT_FALSE(etag->empty());
  ExpectAttempts(3, 2);

  auto direct = S3Client::Create(direct_);
  ASSERT_TRUE(direct.ok());
  auto body = (*direct)->GetObject(bucket_, "dir/object.txt");
  ASSERT_TRUE(body.ok()) << body.error().ToString();
  EXPECT_EQ(*body, "hello through the proxy");
}

TEST_F(RetryThroughFaultProxyTest, S3SlowDownBeyondTheBudgetFailsNamingServiceAndCode) {
  ASSERT_NO_FATAL_FAILURE(StartS3());
  proxy_->AddRules({StatusRule(5, 503, "SlowDown", "xml")});
  auto etag = s3_->PutObject(bucket_, "k", "v");
  ASSERT_FALSE(etag.ok());
  const Error& e = etag.error();
  EXPECT_EQ(e.service, "S3");
  EXPECT_EQ(e.operation, "PutObject");
  EXPECT_EQ(e.http_status, 503);
  EXPECT_EQ(e.code, "SlowDown");
  EXPECT_FALSE(e.request_id.empty());
  EXPECT_EQ(e.category, ErrorCategory::kThrottled);
  const std::string text = e.ToString();
  for (const char* part : {"S3", "PutObject", "503", "SlowDown"}) {
    EXPECT_NE(text.find(part), std::string::npos) << part << " missing from: " << text;
  }
  ExpectAttempts(kMaxAttempts, kMaxAttempts);
}

TEST_F(RetryThroughFaultProxyTest, SqsThrottlingExceptionIsRetriedUntilTheCallSucceeds) {
  ASSERT_NO_FATAL_FAILURE(StartSqs());
  json rule = StatusRule(2, 400, "ThrottlingException", "json");
  rule["match"] = "AmazonSQS.GetQueueAttributes";
  proxy_->AddRules({rule});
  auto attributes = sqs_->GetQueueAttributes(queue_url_, {"All"});
  ASSERT_TRUE(attributes.ok()) << attributes.error().ToString();
  EXPECT_TRUE(attributes->count("VisibilityTimeout")) << "attributes of the real queue";
  ExpectAttempts(3, 2);
}

TEST_F(RetryThroughFaultProxyTest, DynamoDbThroughputExceededIsRetriedUntilTheCallSucceeds) {
  ASSERT_NO_FATAL_FAILURE(StartDynamoDb());
  json rule = StatusRule(2, 400, "ProvisionedThroughputExceededException", "json");
  rule["match"] = "DynamoDB_20120810.GetItem";
  proxy_->AddRules({rule});
  auto item = dynamodb_->GetItem(table_, {{"pk", {{"S", "a"}}}});
  ASSERT_TRUE(item.ok()) << item.error().ToString();
  EXPECT_TRUE(item->has_value());
  ExpectAttempts(3, 2);
}

TEST_F(RetryThroughFaultProxyTest, ThrottlingBeyondTheBudgetFailsNamingServiceOperationAndCode) {
  ASSERT_NO_FATAL_FAILURE(StartDynamoDb());
  proxy_->AddRules({StatusRule(10, 400, "ProvisionedThroughputExceededException", "json")});
  auto item = dynamodb_->GetItem(table_, {{"pk", {{"S", "a"}}}});
  ASSERT_FALSE(item.ok());
  const Error& e = item.error();
  EXPECT_EQ(e.service, "DynamoDB");
  EXPECT_EQ(e.operation, "GetItem");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "ProvisionedThroughputExceededException");
  EXPECT_EQ(e.category, ErrorCategory::kThrottled);
  EXPECT_FALSE(e.request_id.empty());
  const std::string text = e.ToString();
  for (const char* part :
       {"DynamoDB", "GetItem", "400", "ProvisionedThroughputExceededException"}) {
    EXPECT_NE(text.find(part), std::string::npos) << part << " missing from: " << text;
  }
  ExpectAttempts(kMaxAttempts, kMaxAttempts);
}

TEST_F(RetryThroughFaultProxyTest, ValidationExceptionIsNotRetried) {
  ASSERT_NO_FATAL_FAILURE(StartDynamoDb());
  proxy_->AddRules({StatusRule(5, 400, "ValidationException", "json")});
  auto item = dynamodb_->GetItem(table_, {{"pk", {{"S", "a"}}}});
  ASSERT_FALSE(item.ok());
  EXPECT_EQ(item.error().code, "ValidationException");
  EXPECT_EQ(item.error().http_status, 400);
  EXPECT_EQ(item.error().category, ErrorCategory::kClient);
  ExpectAttempts(1, 1);
}

TEST_F(RetryThroughFaultProxyTest, MixedFaultsWithinTheBudgetStillSucceed) {
  ASSERT_NO_FATAL_FAILURE(StartS3());
  proxy_->AddRules({Rule("drop", 1), StatusRule(1, 500, "InternalError", "xml")});
  auto etag = s3_->PutObject(bucket_, "mixed", "payload");
  ASSERT_TRUE(etag.ok()) << etag.error().ToString();
  ExpectAttempts(3, 2);
  json log = proxy_->Stats()["log"];
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0]["fault"], "drop");
  EXPECT_EQ(log[1]["fault"], "status");
  EXPECT_TRUE(log[2]["fault"].is_null());
  EXPECT_EQ(log[2]["method"], "PUT");
}

}  // namespace
}  // namespace spotgrid
