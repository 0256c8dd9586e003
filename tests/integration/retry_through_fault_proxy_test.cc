// The client core's retries, proven against real emulators behind tests/harness/fault_proxy.py.
//
// Each test starts its own proxy in front of one emulator (SQS, DynamoDB or S3), points a
// client at the proxy through an endpoint override, injects faults (dropped connections, slow
// responses, 5xx, throttling, validation errors) and checks that the call succeeds or fails
// exactly as the retry policy says, with the proxy's counters confirming the number of attempts.
// Setup (queues, tables, buckets) goes straight to the emulator, so the proxy sees only the
// call under test. The retry base delay is 10 ms: real backoff sleeps, kept short.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/json_protocol.h"
#include "spotgrid/http/curl_transport.h"
#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/s3_client.h"
#include "spotgrid/services/sqs_client.h"
#include "support/child_process.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::EmulatorValue;
using testing::UniqueName;
using testing::UseEmulators;

constexpr int kMaxAttempts = 3;

// One fault_proxy.py process owned by a test, and its control API.
class FaultProxy {
 public:
  static std::unique_ptr<FaultProxy> Start(const std::string& upstream) {
    auto proxy = std::unique_ptr<FaultProxy>(new FaultProxy());
    proxy->dir_ = testing::MakeTempDir("fault-proxy");
    auto child = ChildProcess::StartServer(
        {"/usr/bin/python3", std::string(SPOTGRID_HARNESS_DIR) + "/fault_proxy.py", "--upstream",
         upstream},
        proxy->dir_, "fault_proxy");
    if (!child.ok()) {
      ADD_FAILURE() << "fault_proxy did not start: " << child.error().ToString();
      return nullptr;
    }
    proxy->child_ = std::move(child).value();
    proxy->url_ = "http://127.0.0.1:" + std::to_string(proxy->child_->port());
    return proxy;
  }

  ~FaultProxy() {
    child_.reset();  // kills the proxy's process group
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
  }

  const std::string& url() const { return url_; }

  void AddRules(const json& rules) { Control("POST", "rules", rules); }
  json Stats() { return Control("GET", "stats"); }
  std::string Log() const { return child_ ? child_->ReadLog() : ""; }

 private:
  FaultProxy() = default;

  json Control(const std::string& method, const std::string& what, const json& body = nullptr) {
    HttpRequest request;
    request.method = method;
    request.url = url_ + "/__fault__/" + what;
    request.timeout = std::chrono::seconds(10);
    if (!body.is_null()) request.body = body.dump();
    auto response = transport_->Send(request);
    if (!response.ok()) {
      ADD_FAILURE() << method << " " << request.url << ": " << response.error().ToString();
      return json::object();
    }
    EXPECT_EQ(response->status, 200) << response->body;
    return json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  }

  std::string dir_;
  std::string url_;
  std::unique_ptr<ChildProcess> child_;
  std::shared_ptr<HttpTransport> transport_ = MakeCurlTransport();
};

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

  // Starts a proxy in front of `upstream_var`'s emulator and a context whose `endpoint_var`
  // points at the proxy.
  void StartProxy(const std::string& upstream_var, const std::string& endpoint_var) {
    const std::string upstream = EmulatorValue(upstream_var);
    ASSERT_FALSE(upstream.empty()) << upstream_var << " is not set by the launcher";
    proxy_ = FaultProxy::Start(upstream);
    ASSERT_NE(proxy_, nullptr);
    env_.Set(endpoint_var, proxy_->url());
    env_.Set("AWS_REGION", EmulatorValue("AWS_REGION"));
    env_.Set("AWS_ACCESS_KEY_ID", EmulatorValue("AWS_ACCESS_KEY_ID"));
    env_.Set("AWS_SECRET_ACCESS_KEY", EmulatorValue("AWS_SECRET_ACCESS_KEY"));
    env_.Set("AWS_CONFIG_FILE", "/dev/null");
    env_.Set("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    env_.Set("AWS_EC2_METADATA_DISABLED", "true");
    AwsContextOptions options;
    options.env = &env_;
    RetryOptions retry;
    retry.max_attempts = kMaxAttempts;
    retry.base = std::chrono::milliseconds(10);
    options.retry = retry;
    auto context = AwsContext::Create(options);
    ASSERT_TRUE(context.ok()) << context.error().ToString();
    proxied_ = *context;
  }

  // SQS behind the proxy, with a queue created directly on the emulator.
  void StartSqs() {
    StartProxy("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SQS");
    if (HasFatalFailure()) return;
    auto direct = SqsClient::Create(direct_);
    ASSERT_TRUE(direct.ok()) << direct.error().ToString();
    queue_name_ = UniqueName("retry");
    CreateQueueRequest create;
    create.name = queue_name_;
    auto url = (*direct)->CreateQueue(create);
    ASSERT_TRUE(url.ok()) << url.error().ToString();
    queue_url_ = *url;
    auto sqs = SqsClient::Create(proxied_);
    ASSERT_TRUE(sqs.ok()) << sqs.error().ToString();
    sqs_ = *sqs;
  }

  // DynamoDB behind the proxy, with a table holding one item created directly.
  void StartDynamoDb() {
    StartProxy("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_DYNAMODB");
    if (HasFatalFailure()) return;
    auto direct = DynamoDbClient::Create(direct_);
    ASSERT_TRUE(direct.ok()) << direct.error().ToString();
    table_ = UniqueName("retry");
    TableSpec spec;
    spec.name = table_;
    spec.partition_key = {"pk", "S"};
    Status created = (*direct)->EnsureTable(spec, std::chrono::seconds(30));
    ASSERT_TRUE(created.ok()) << created.ToString();
    WriteResult put = (*direct)->PutItem(table_, {{"pk", {{"S", "a"}}}, {"v", {{"S", "1"}}}});
    ASSERT_TRUE(put.status.ok()) << put.status.ToString();
    auto dynamodb = DynamoDbClient::Create(proxied_);
    ASSERT_TRUE(dynamodb.ok()) << dynamodb.error().ToString();
    dynamodb_ = *dynamodb;
  }

  // S3 behind the proxy, with a bucket created directly.
  void StartS3() {
    StartProxy("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_S3");
    if (HasFatalFailure()) return;
    auto direct = S3Client::Create(direct_);
    ASSERT_TRUE(direct.ok()) << direct.error().ToString();
    bucket_ = UniqueName("retry");
    Status created = (*direct)->CreateBucket(bucket_);
    ASSERT_TRUE(created.ok()) << created.ToString();
    auto s3 = S3Client::Create(proxied_);
    ASSERT_TRUE(s3.ok()) << s3.error().ToString();
    s3_ = *s3;
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
  auto client = AwsClient::Create(proxied_, kSqsService);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  AwsRequest request;
  request.operation = "GetQueueUrl";
  request.headers = {{"content-type", "application/x-amz-json-1.0"},
                     {"x-amz-target", "AmazonSQS.GetQueueUrl"}};
  request.body = json{{"QueueName", queue_name_}}.dump();
  request.timeout = std::chrono::milliseconds(500);
  auto response = (*client)->Send(request);
  ASSERT_TRUE(response.ok()) << response.error().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(json::parse(response->body)["QueueUrl"], queue_url_);
  ExpectAttempts(2, 1);
}

TEST_F(RetryThroughFaultProxyTest, ResponsesAlwaysSlowerThanTheTimeoutFailAsTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartSqs());
  proxy_->AddRules({{{"action", "delay"}, {"count", 5}, {"delay_ms", 3000}}});
  auto client = AwsClient::Create(proxied_, kSqsService);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  AwsRequest request;
  request.operation = "GetQueueUrl";
  request.headers = {{"content-type", "application/x-amz-json-1.0"},
                     {"x-amz-target", "AmazonSQS.GetQueueUrl"}};
  request.body = json{{"QueueName", queue_name_}}.dump();
  request.timeout = std::chrono::milliseconds(300);
  auto response = (*client)->Send(request);
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
