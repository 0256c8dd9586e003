// AwsClient::Send and the JSON / Query protocol helpers over a FakeTransport and a FakeClock:
// URL and header construction, signing on every attempt, retries with backoff under the quota,
// clock-skew correction, and that secrets never reach errors or logs.
#include "spotgrid/aws/aws_client.h"
#include "spotgrid/core/deadline.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "spotgrid/aws/json_protocol.h"
#include "spotgrid/aws/query_protocol.h"
#include "spotgrid/aws/sigv4.h"
#include "spotgrid/core/log.h"
#include "support/client_fixture.h"
#include "support/fake_clock.h"
#include "support/fake_transport.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using std::chrono::milliseconds;
using testing::FakeClock;
using testing::FakeTransport;
using testing::HeaderOf;

constexpr char kSecret[] = "SECRET+do/not/log+wJalrXUtnFEMI";
constexpr char kToken[] = "TOKEN-do-not-log-IQoJb3JpZ2luX2VjEJr";

std::string HttpDate(Clock::WallTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

class AwsClientTest : public ::testing::Test {
 protected:
  // Builds the context and a client for `service` at `endpoint_url`.
  void Init(
      const ServiceInfo& service = kSqsService,
      std::string endpoint_url = "https://sqs.us-east-1.amazonaws.com", RetryOptions options = {},
      std::function<double()> random01 = [] { return 0.5; }, std::string session_token = "") {
    transport_ = std::make_shared<FakeTransport>();
    Credentials creds{"AKIDEXAMPLE", kSecret, std::move(session_token), std::nullopt};
    context_ = std::make_shared<AwsContext>(
        "us-east-1", transport_, MakeStaticCredentialsProvider(creds), &clock_,
        std::make_unique<RetryPolicy>(options, std::move(random01)), &env_, ProfileFiles{},
        nullptr);
    Result<Url> url = ParseUrl(endpoint_url);
    ASSERT_TRUE(url.ok()) << url.error().ToString();
    Endpoint endpoint;
    endpoint.url = *url;
    while (!endpoint.url.path.empty() && endpoint.url.path.back() == '/') {
      endpoint.url.path.pop_back();
    }
    endpoint.configured = true;
    endpoint.s3_path_style = true;
    client_ = std::make_shared<AwsClient>(context_, service, endpoint);
  }

  AwsRequest JsonRequest(std::string operation = "GetQueueUrl") {
    AwsRequest request;
    request.operation = std::move(operation);
    request.headers = {{"content-type", "application/x-amz-json-1.0"},
                       {"x-amz-target", "AmazonSQS." + request.operation}};
    request.body = "{}";
    return request;
  }

  FakeClock clock_;
  MapEnvironment env_;
  std::shared_ptr<FakeTransport> transport_;
  std::shared_ptr<AwsContext> context_;
  std::shared_ptr<AwsClient> client_;
};

TEST_F(AwsClientTest, BuildsUrlWithBasePathEncodedPathAndQuery) {
  Init(kS3Service, "http://127.0.0.1:4567/t-42/");
  transport_->PushResponse(200, "");
  AwsRequest request;
  request.operation = "GetObject";
  request.method = "GET";
  request.path = "/bucket/dir/a b+c$.txt";
  request.query = {{"versionId", "v 1/2"}};
  request.body.clear();
  ASSERT_TRUE(client_->Send(request).ok());
  HttpRequest sent = transport_->requests().at(0);
  EXPECT_EQ(sent.url, "http://127.0.0.1:4567/t-42/bucket/dir/a%20b%2Bc%24.txt?versionId=v%201%2F2");
  EXPECT_EQ(HeaderOf(sent, "host"), "127.0.0.1:4567");
  EXPECT_EQ(HeaderOf(sent, "x-amz-content-sha256"), kEmptyPayloadSha256);
  EXPECT_EQ(HeaderOf(sent, "x-amz-date"), FormatAmzDate(clock_.Now()));
  EXPECT_NE(HeaderOf(sent, "authorization").find("/us-east-1/s3/aws4_request"), std::string::npos);
}

TEST_F(AwsClientTest, JsonRequestCarriesTargetContentTypeAndSignature) {
  Init();
  transport_->PushResponse(200, R"({"QueueUrl":"https://q/1/jobs"})");
  Result<nlohmann::json> result =
      CallJson(*client_, "AmazonSQS", "GetQueueUrl", {{"QueueName", "jobs"}});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ((*result)["QueueUrl"], "https://q/1/jobs");
  HttpRequest sent = transport_->requests().at(0);
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.url, "https://sqs.us-east-1.amazonaws.com/");
  EXPECT_EQ(HeaderOf(sent, "content-type"), "application/x-amz-json-1.0");
  EXPECT_EQ(HeaderOf(sent, "x-amz-target"), "AmazonSQS.GetQueueUrl");
  EXPECT_EQ(sent.body, R"({"QueueName":"jobs"})");
  EXPECT_EQ(HeaderOf(sent, "x-amz-content-sha256"), "<absent>");
  std::string auth = HeaderOf(sent, "authorization");
  EXPECT_NE(auth.find("SignedHeaders=content-type;host;x-amz-date;x-amz-target"), std::string::npos)
      << auth;
}

TEST_F(AwsClientTest, JsonEmptyBodyIsEmptyObjectAndGarbageIsMalformedResponse) {
  Init();
  transport_->PushResponse(200, "");
  transport_->PushResponse(200, "{not json", {{"x-amzn-requestid", "rid-9"}});
  Result<nlohmann::json> empty = CallJson(*client_, "AmazonSQS", "DeleteMessage", {});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->is_object() && empty->empty());
  EXPECT_EQ(transport_->requests().at(0).body, "{}");
  Result<nlohmann::json> bad = CallJson(*client_, "AmazonSQS", "DeleteMessage", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "MalformedResponse");
  EXPECT_EQ(bad.error().service, "SQS");
  EXPECT_EQ(bad.error().operation, "DeleteMessage");
  EXPECT_EQ(bad.error().request_id, "rid-9");
}

TEST_F(AwsClientTest, JsonBodyThatIsNotAnObjectIsMalformedResponse) {
  Init();
  transport_->PushResponse(200, "[1,2]", {{"x-amzn-requestid", "rid-10"}});
  Result<nlohmann::json> bad = CallJson(*client_, "AmazonSQS", "GetQueueUrl", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "MalformedResponse");
  EXPECT_EQ(bad.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(bad.error().http_status, 200);
  EXPECT_EQ(bad.error().request_id, "rid-10");
}

TEST_F(AwsClientTest, JsonRequestWithInvalidUtf8FailsAsInvalidInputWithoutSending) {
  Init();
  Result<nlohmann::json> result =
      CallJson(*client_, "AmazonSQS", "SendMessage", {{"MessageBody", "bad \xC3\x28 byte"}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(result.error().service, "SQS");
  EXPECT_EQ(result.error().operation, "SendMessage");
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(AwsClientTest, QueryRequestIsFormEncodedAndResponseParsed) {
  Init(kAutoScalingService, "https://autoscaling.us-east-1.amazonaws.com");
  transport_->PushResponse(200,
                           R"(<?xml version="1.0"?>
<SetInstanceProtectionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <SetInstanceProtectionResult/>
  <ResponseMetadata><RequestId>abc-1</RequestId></ResponseMetadata>
</SetInstanceProtectionResponse>)");
  Result<XmlElement> doc = CallQuery(*client_, "SetInstanceProtection", "2011-01-01",
                                     {{"AutoScalingGroupName", "my group"},
                                      {"InstanceIds.member.1", "i-1"},
                                      {"ProtectedFromScaleIn", "true"}});
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  EXPECT_EQ(doc->name, "SetInstanceProtectionResponse");
  EXPECT_EQ(doc->Find("RequestId")->text, "abc-1");
  HttpRequest sent = transport_->requests().at(0);
  EXPECT_EQ(HeaderOf(sent, "content-type"), "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(sent.body,
            "Action=SetInstanceProtection&Version=2011-01-01&AutoScalingGroupName=my%20group&"
            "InstanceIds.member.1=i-1&ProtectedFromScaleIn=true");
  EXPECT_EQ(sent.url, "https://autoscaling.us-east-1.amazonaws.com/");
}

TEST_F(AwsClientTest, BodyFileIsUnsignedOnHttpsAndHashedOnHttp) {
  std::string dir = testing::MakeTempDir("aws-client-test");
  std::string path = dir + "/body";
  std::ofstream(path) << "0123456789abcdef";
  FileRange range{path, 4, 6};  // "456789"
  for (std::string endpoint : {"https://s3.us-east-1.amazonaws.com", "http://127.0.0.1:9000"}) {
    Init(kS3Service, endpoint);
    transport_->PushResponse(200, "");
    AwsRequest request;
    request.operation = "PutObject";
    request.method = "PUT";
    request.path = "/b/k";
    request.body_file = range;
    ASSERT_TRUE(client_->Send(request).ok());
    HttpRequest sent = transport_->requests().at(0);
    ASSERT_TRUE(sent.body_file.has_value());
    EXPECT_EQ(sent.body_file->offset, 4u);
    EXPECT_EQ(sent.body_file->length, 6u);
    EXPECT_EQ(HeaderOf(sent, "x-amz-content-sha256"),
              endpoint.starts_with("https") ? std::string(kUnsignedPayload) : Sha256Hex("456789"));
  }
  std::filesystem::remove_all(dir);
}

TEST_F(AwsClientTest, RetriesTransientErrorsWithFullJitterBackoffAndResigns) {
  Init(kSqsService, "https://sqs.us-east-1.amazonaws.com", RetryOptions{}, [] { return 0.5; });
  transport_->PushResponse(503, "", {{"x-amzn-requestid", "r1"}});
  transport_->PushError(testing::ConnectionResetError());
  transport_->PushResponse(200, "{}");
  Result<HttpResponse> result = client_->Send(JsonRequest());
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(transport_->request_count(), 3u);
  // delay = 0.5 * min(1 s * 2^(retry-1), 20 s)
  EXPECT_EQ(clock_.sleeps(),
            (std::vector<std::chrono::nanoseconds>{milliseconds(500), milliseconds(1000)}));
  auto requests = transport_->requests();
  EXPECT_NE(HeaderOf(requests[0], "authorization"), HeaderOf(requests[2], "authorization"));
  EXPECT_EQ(HeaderOf(requests[2], "x-amz-date"), FormatAmzDate(clock_.Now()));
}

TEST_F(AwsClientTest, ShutdownCutsARetryBackoffShortWithACancelledError) {
  Init();
  transport_->PushResponse(503, "", {{"x-amzn-requestid", "r1"}});
  StopSource stop;
  stop.Request();
  AwsRequest request = JsonRequest();
  request.stop = &stop;
  Result<HttpResponse> result = client_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kCancelled);
  EXPECT_EQ(result.error().service, "SQS");
  EXPECT_EQ(transport_->request_count(), 1u);  // no second attempt after the stop
  EXPECT_TRUE(clock_.sleeps().empty());
}

TEST_F(AwsClientTest, DeadlineBoundsEachExchangeAndEndsTheRetriesBeforeIt) {
  Init();
  transport_->PushResponse(503, "", {{"x-amzn-requestid", "r1"}});
  transport_->PushResponse(200, "{}");
  AwsRequest request = JsonRequest();
  request.timeout = std::chrono::seconds(30);
  {
    // 400 ms left: the exchange may take no longer, and a 500 ms backoff would pass the
    // deadline, so the 503 is the answer.
    ScopedDeadline deadline(clock_.Monotonic() + milliseconds(400));
    Result<HttpResponse> result = client_->Send(request);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().http_status, 503);
  }
  ASSERT_EQ(transport_->request_count(), 1u);
  EXPECT_EQ(transport_->requests()[0].timeout, milliseconds(400));
  EXPECT_LE(transport_->requests()[0].connect_timeout, milliseconds(400));
  EXPECT_TRUE(clock_.sleeps().empty());
  // Outside the scope the call has its own timeout again.
  ASSERT_TRUE(client_->Send(request).ok());
  EXPECT_EQ(transport_->requests()[1].timeout, std::chrono::seconds(30));
}

TEST_F(AwsClientTest, CallPastItsDeadlineIsNotSentAndReportsNoVerdict) {
  Init();
  ScopedDeadline deadline(clock_.Monotonic() - milliseconds(1));
  Result<HttpResponse> result = client_->Send(JsonRequest());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, "DeadlineExceeded");
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(result.error().service, "SQS");
  EXPECT_EQ(result.error().operation, "GetQueueUrl");
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(AwsClientTest, InnerDeadlineScopesOnlyNarrow) {
  const Clock::MonoTime now = clock_.Monotonic();
  EXPECT_FALSE(ScopedDeadline::Current().has_value());
  {
    ScopedDeadline outer(now + std::chrono::seconds(10));
    {
      ScopedDeadline later(now + std::chrono::seconds(60));
      EXPECT_EQ(*ScopedDeadline::Current(), now + std::chrono::seconds(10));
      ScopedDeadline earlier(now + std::chrono::seconds(2));
      EXPECT_EQ(*ScopedDeadline::Current(), now + std::chrono::seconds(2));
    }
    EXPECT_EQ(*ScopedDeadline::Current(), now + std::chrono::seconds(10));
  }
  EXPECT_FALSE(ScopedDeadline::Current().has_value());
}

TEST_F(AwsClientTest, ThrottlingRetriedUpToMaxAttemptsWithinJitterBounds) {
  RetryOptions options;
  options.max_attempts = 5;
  options.base = milliseconds(100);
  options.cap = milliseconds(250);
  Init(kDynamoDbService, "https://dynamodb.us-east-1.amazonaws.com", options, {});
  transport_->SetFallback([](const HttpRequest&) -> Result<HttpResponse> {
    HttpResponse r;
    r.status = 400;
    r.body = R"({"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",)"
             R"("message":"Rate of requests exceeds the allowed throughput."})";
    r.headers = {{"x-amzn-requestid", "THROTTLE-1"}};
    return r;
  });
  Result<HttpResponse> result = client_->Send(JsonRequest("PutItem"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(transport_->request_count(), 5u);
  const Error& e = result.error();
  EXPECT_EQ(e.category, ErrorCategory::kThrottled);
  EXPECT_EQ(e.code, "ThrottlingException");
  EXPECT_EQ(e.service, "DynamoDB");
  EXPECT_EQ(e.operation, "PutItem");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.request_id, "THROTTLE-1");
  auto sleeps = clock_.sleeps();
  ASSERT_EQ(sleeps.size(), 4u);
  const milliseconds ceilings[] = {milliseconds(100), milliseconds(200), milliseconds(250),
                                   milliseconds(250)};
  for (size_t i = 0; i < sleeps.size(); ++i) {
    EXPECT_GE(sleeps[i].count(), 0);
    EXPECT_LT(sleeps[i], ceilings[i]) << "retry " << i + 1;
  }
}

TEST_F(AwsClientTest, NeverRetriesValidationOrConditionalCheckFailures) {
  Init(kDynamoDbService, "https://dynamodb.us-east-1.amazonaws.com");
  transport_->PushResponse(
      400, R"({"__type":"com.amazon.coral.validate#ValidationException","message":"bad"})");
  transport_->PushResponse(
      400, R"({"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",)"
           R"("message":"The conditional request failed"})");
  Result<HttpResponse> validation = client_->Send(JsonRequest("PutItem"));
  ASSERT_FALSE(validation.ok());
  EXPECT_EQ(validation.error().category, ErrorCategory::kClient);
  EXPECT_EQ(validation.error().code, "ValidationException");
  EXPECT_EQ(transport_->request_count(), 1u);
  Result<HttpResponse> condition = client_->Send(JsonRequest("PutItem"));
  ASSERT_FALSE(condition.ok());
  EXPECT_TRUE(condition.error().IsConditionFailed());
  EXPECT_EQ(transport_->request_count(), 2u);
  EXPECT_TRUE(clock_.sleeps().empty());
}

TEST_F(AwsClientTest, QuotaExhaustionStopsRetries) {
  RetryOptions options;
  options.max_attempts = 10;
  options.quota_capacity = 12;  // two retries at 5 tokens each, then the bucket is dry
  Init(kSqsService, "https://sqs.us-east-1.amazonaws.com", options);
  transport_->SetFallback([](const HttpRequest&) -> Result<HttpResponse> {
    HttpResponse r;
    r.status = 500;
    r.body = R"({"__type":"InternalError","message":"boom"})";
    return r;
  });
  Result<HttpResponse> result = client_->Send(JsonRequest());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(transport_->request_count(), 3u);
  EXPECT_EQ(context_->retry().available_tokens(), 2);
  // The next call gets no retry at all while the quota is empty.
  Result<HttpResponse> again = client_->Send(JsonRequest());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(transport_->request_count(), 4u);
}

TEST_F(AwsClientTest, SuccessAfterRetryRefundsItsCost) {
  Init();
  transport_->PushError(testing::ConnectionResetError());
  transport_->PushResponse(200, "{}");
  ASSERT_TRUE(client_->Send(JsonRequest()).ok());
  EXPECT_EQ(context_->retry().available_tokens(), 500);
  Error timeout = testing::ConnectionResetError();
  timeout.code = "Timeout";
  transport_->PushError(timeout);
  transport_->PushError(timeout);
  transport_->PushResponse(200, "{}");
  ASSERT_TRUE(client_->Send(JsonRequest()).ok());
  EXPECT_EQ(context_->retry().available_tokens(), 500 - 10);  // the first retry is not refunded
}

TEST_F(AwsClientTest, ClockSkewIsCorrectedFromDateHeaderAndRetrySignedWithServerTime) {
  Init();
  const Clock::WallTime server_time = clock_.Now() + std::chrono::hours(1);
  transport_->PushResponse(
      400,
      R"j({"__type":"com.amazon.coral.service#InvalidSignatureException","message":"Signature )j"
      R"j(expired: 20231114T221320Z is now earlier than 20231114T231320Z (20231114T231820Z - )j"
      R"j(5 min.)"})j",
      {{"date", HttpDate(server_time)}, {"x-amzn-requestid", "skew-1"}});
  transport_->PushResponse(200, "{}", {{"date", HttpDate(server_time)}});
  Result<HttpResponse> result = client_->Send(JsonRequest());
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(HeaderOf(requests[0], "x-amz-date"), FormatAmzDate(clock_.Now()));
  EXPECT_EQ(HeaderOf(requests[1], "x-amz-date"), FormatAmzDate(server_time));
  EXPECT_TRUE(clock_.sleeps().empty());  // a skew retry does not back off
  EXPECT_EQ(context_->clock_offset(), std::chrono::hours(1));
}

TEST_F(AwsClientTest, S3RequestTimeTooSkewedIsRetriedOnceWithCorrectedTime) {
  Init(kS3Service, "http://127.0.0.1:9000");
  const Clock::WallTime server_time = clock_.Now() - std::chrono::minutes(40);
  const std::string body =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>RequestTimeTooSkewed</Code>"
      "<Message>The difference between the request time and the current time is too "
      "large.</Message><RequestId>S3RID</RequestId></Error>";
  transport_->PushResponse(403, body, {{"date", HttpDate(server_time)}});
  transport_->PushResponse(403, body, {{"date", HttpDate(server_time)}});
  AwsRequest request;
  request.operation = "HeadBucket";
  request.method = "HEAD";
  request.path = "/b";
  Result<HttpResponse> result = client_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kClockSkew);
  EXPECT_EQ(result.error().request_id, "S3RID");
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);  // one corrected retry, never a loop
  EXPECT_EQ(HeaderOf(requests[1], "x-amz-date"), FormatAmzDate(server_time));
}

TEST_F(AwsClientTest, SuccessfulResponsesAlsoTeachTheClockOffset) {
  Init();
  transport_->PushResponse(200, "{}", {{"date", HttpDate(clock_.Now() + std::chrono::hours(2))}});
  transport_->PushResponse(200, "{}");
  ASSERT_TRUE(client_->Send(JsonRequest()).ok());
  ASSERT_TRUE(client_->Send(JsonRequest()).ok());
  EXPECT_EQ(HeaderOf(transport_->requests()[1], "x-amz-date"),
            FormatAmzDate(clock_.Now() + std::chrono::hours(2)));
}

TEST_F(AwsClientTest, ErrorsCarryServiceOperationStatusCodeMessageAndRequestId) {
  struct Case {
    const ServiceInfo* service;
    int status;
    std::string body;
    Headers headers;
    std::string code, message, request_id;
    ErrorCategory category;
  };
  std::vector<Case> cases = {
      {&kSqsService,
       400,
       R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."})",
       {{"x-amzn-RequestId", "sqs-rid"}},
       "QueueDoesNotExist",
       "The specified queue does not exist.",
       "sqs-rid",
       ErrorCategory::kNotFound},
      {&kAutoScalingService,
       400,
       "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>"
       "Sender</Type><Code>ValidationError</Code><Message>Instance Id not found</Message>"
       "</Error><RequestId>asg-rid</RequestId></ErrorResponse>",
       {},
       "ValidationError",
       "Instance Id not found",
       "asg-rid",
       ErrorCategory::kClient},
      {&kEc2Service,
       400,
       "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>"
       "InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-1' does not exist</Message>"
       "</Error></Errors><RequestID>ec2-rid</RequestID></Response>",
       {},
       "InvalidInstanceID.NotFound",
       "The instance ID 'i-1' does not exist",
       "ec2-rid",
       ErrorCategory::kClient},
      {&kS3Service,
       404,
       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The "
       "specified key does not exist.</Message><Key>k</Key><RequestId>s3-rid</RequestId>"
       "<HostId>h</HostId></Error>",
       {},
       "NoSuchKey",
       "The specified key does not exist.",
       "s3-rid",
       ErrorCategory::kNotFound},
  };
  for (const Case& c : cases) {
    Init(*c.service, "https://example.amazonaws.com");
    transport_->PushResponse(c.status, c.body, c.headers);
    AwsRequest request = JsonRequest("Op" + std::string(c.service->name));
    Result<HttpResponse> result = client_->Send(request);
    ASSERT_FALSE(result.ok());
    const Error& e = result.error();
    EXPECT_EQ(e.service, c.service->name);
    EXPECT_EQ(e.operation, "Op" + std::string(c.service->name));
    EXPECT_EQ(e.http_status, c.status);
    EXPECT_EQ(e.code, c.code);
    EXPECT_EQ(e.message, c.message);
    EXPECT_EQ(e.request_id, c.request_id);
    EXPECT_EQ(e.category, c.category) << c.code;
  }
}

TEST_F(AwsClientTest, TransportErrorsAreNamedForServiceAndOperationAfterRetries) {
  Init();
  transport_->SetFallback(
      [](const HttpRequest&) -> Result<HttpResponse> { return testing::ConnectionResetError(); });
  Result<HttpResponse> result = client_->Send(JsonRequest("ReceiveMessage"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(transport_->request_count(), 3u);
  EXPECT_EQ(result.error().service, "SQS");
  EXPECT_EQ(result.error().operation, "ReceiveMessage");
  EXPECT_EQ(result.error().code, "ConnectionFailed");
  EXPECT_EQ(result.error().http_status, 0);
}

TEST_F(AwsClientTest, NoErrorOrLogLineContainsSecretKeyOrSessionToken) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto logger = std::make_shared<spdlog::logger>("capture", sink);
  logger->set_level(spdlog::level::trace);
  SetLogger(logger);

  Init(
      kSqsService, "https://sqs.us-east-1.amazonaws.com", RetryOptions{}, [] { return 0.5; },
      kToken);
  const Clock::WallTime server_time = clock_.Now() + std::chrono::hours(3);
  // Every failure path: transport error, throttling, skew, exhausted retries, client error.
  transport_->PushError(testing::ConnectionResetError());
  transport_->PushResponse(400, R"({"__type":"ThrottlingException","message":"slow down"})");
  transport_->PushResponse(
      400, R"({"__type":"InvalidSignatureException","message":"Signature expired"})",
      {{"date", HttpDate(server_time)}});
  transport_->PushResponse(503, "<html>Service Unavailable</html>");
  transport_->PushResponse(403, R"({"__type":"InvalidClientTokenId","message":"bad token"})");
  std::vector<Error> errors;
  for (int i = 0; i < 2; ++i) {
    Result<HttpResponse> r = client_->Send(JsonRequest());
    if (!r.ok()) errors.push_back(r.error());
  }
  ASSERT_FALSE(errors.empty());
  logger->flush();
  SetLogger(std::make_shared<spdlog::logger>(
      "restored", std::make_shared<spdlog::sinks::ostream_sink_mt>(std::cerr)));

  std::string everything = log.str();
  for (const Error& e : errors) everything += "\n" + e.ToString() + e.message + e.code;
  EXPECT_FALSE(everything.empty());
  EXPECT_NE(log.str().find("SQS"), std::string::npos) << "retries should have been logged";
  EXPECT_EQ(everything.find(kSecret), std::string::npos) << everything;
  EXPECT_EQ(everything.find(kToken), std::string::npos) << everything;
  EXPECT_EQ(everything.find("Signature="), std::string::npos) << everything;
  // The token did go on the wire (so the test would notice if it leaked).
  EXPECT_EQ(HeaderOf(transport_->requests().at(0), "x-amz-security-token"), kToken);
}

}  // namespace
}  // namespace spotgrid
