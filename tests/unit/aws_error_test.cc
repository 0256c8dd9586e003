// ParseAwsError and ClassifyAwsError: turning AWS error responses of every protocol into an
// Error with the right code, message, request id and category.
#include <gtest/gtest.h>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/retry.h"

namespace spotgrid {
namespace {

HttpResponse Response(int status, std::string body, Headers headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

TEST(ParseAwsErrorTest, JsonTypeIsStrippedOfNamespaceAndSuffix) {
  Error e = ParseAwsError(
      kDynamoDbService, "UpdateItem",
      Response(400,
               R"({"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",)"
               R"("message":"The conditional request failed"})",
               {{"x-amzn-requestid", "DDB-RID"}}));
  EXPECT_EQ(e.service, "DynamoDB");
  EXPECT_EQ(e.operation, "UpdateItem");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "ConditionalCheckFailedException");
  EXPECT_EQ(e.message, "The conditional request failed");
  EXPECT_EQ(e.request_id, "DDB-RID");
  EXPECT_EQ(e.category, ErrorCategory::kConditionFailed);

  Error colon = ParseAwsError(
      kSqsService, "SendMessage",
      Response(
          400,
          R"({"__type":"aws#ThrottlingException:http://internal.amazon.com/","Message":"Rate exceeded"})"));
  EXPECT_EQ(colon.code, "ThrottlingException");
  EXPECT_EQ(colon.message, "Rate exceeded");
  EXPECT_EQ(colon.category, ErrorCategory::kThrottled);
}

TEST(ParseAwsErrorTest, JsonCodeFallsBackToErrorTypeHeader) {
  Error e = ParseAwsError(kSqsService, "ReceiveMessage",
                          Response(400, "{}", {{"x-amzn-errortype", "RequestThrottled:Sender"}}));
  EXPECT_EQ(e.code, "RequestThrottled");
  EXPECT_EQ(e.category, ErrorCategory::kThrottled);
}

TEST(ParseAwsErrorTest, QueryProtocolErrorResponse) {
  Error e = ParseAwsError(
      kAutoScalingService, "SetDesiredCapacity",
      Response(400,
               "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\n"
               "  <Error>\n    <Type>Sender</Type>\n    <Code>Throttling</Code>\n"
               "    <Message>Rate exceeded</Message>\n  </Error>\n"
               "  <RequestId>ASG-RID</RequestId>\n</ErrorResponse>\n"));
  EXPECT_EQ(e.service, "AutoScaling");
  EXPECT_EQ(e.code, "Throttling");
  EXPECT_EQ(e.message, "Rate exceeded");
  EXPECT_EQ(e.request_id, "ASG-RID");
  EXPECT_EQ(e.category, ErrorCategory::kThrottled);
}

TEST(ParseAwsErrorTest, Ec2ErrorResponseWithUpperCaseRequestID) {
  Error e = ParseAwsError(
      kEc2Service, "TerminateInstances",
      Response(503,
               "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
               "<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
               "</Error></Errors><RequestID>EC2-RID</RequestID></Response>"));
  EXPECT_EQ(e.code, "RequestLimitExceeded");
  EXPECT_EQ(e.request_id, "EC2-RID");
  EXPECT_EQ(e.http_status, 503);
  EXPECT_EQ(e.category, ErrorCategory::kThrottled);  // the code wins over the 503
}

TEST(ParseAwsErrorTest, S3ErrorDocumentAndHeaderRequestId) {
  Error e = ParseAwsError(
      kS3Service, "PutObject",
      Response(412,
               "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PreconditionFailed</Code>"
               "<Message>At least one of the pre-conditions you specified did not hold</Message>"
               "<Condition>If-None-Match</Condition><RequestId>BODY-RID</RequestId></Error>",
               {{"x-amz-request-id", "HDR-RID"}}));
  EXPECT_EQ(e.code, "PreconditionFailed");
  EXPECT_EQ(e.request_id, "HDR-RID");
  EXPECT_EQ(e.category, ErrorCategory::kConditionFailed);
}

TEST(ParseAwsErrorTest, BodylessHeadErrorsAreNamedFromStatus) {
  Error missing = ParseAwsError(kS3Service, "HeadObject",
                                Response(404, "", {{"x-amz-request-id", "HEAD-RID"}}));
  EXPECT_EQ(missing.code, "NotFound");
  EXPECT_EQ(missing.request_id, "HEAD-RID");
  EXPECT_EQ(missing.message, "HTTP 404");
  EXPECT_TRUE(missing.IsNotFound());
  EXPECT_TRUE(ParseAwsError(kS3Service, "HeadObject", Response(412, "")).IsConditionFailed());
  EXPECT_EQ(ParseAwsError(kS3Service, "HeadObject", Response(403, "")).category,
            ErrorCategory::kClient);
  EXPECT_EQ(ParseAwsError(kS3Service, "HeadObject", Response(503, "")).category,
            ErrorCategory::kTransient);
}

TEST(ParseAwsErrorTest, NonAwsBodyBecomesAnExcerptedMessage) {
  Error e = ParseAwsError(kSqsService, "SendMessage",
                          Response(502, "<html><body>Bad gateway\n</body></html"));
  EXPECT_EQ(e.code, "BadGateway");
  EXPECT_EQ(e.category, ErrorCategory::kTransient);
  EXPECT_NE(e.message.find("Bad gateway"), std::string::npos);
  EXPECT_EQ(e.message.find('\n'), std::string::npos);
}

TEST(ClassifyAwsErrorTest, ContractTable) {
  EXPECT_EQ(ClassifyAwsError(400, "ConditionalCheckFailedException"),
            ErrorCategory::kConditionFailed);
  EXPECT_EQ(ClassifyAwsError(412, "PreconditionFailed"), ErrorCategory::kConditionFailed);
  for (const char* code :
       {"ResourceNotFoundException", "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
        "NoSuchBucket", "NoSuchKey", "NoSuchUpload"}) {
    EXPECT_EQ(ClassifyAwsError(400, code), ErrorCategory::kNotFound) << code;
  }
  EXPECT_EQ(ClassifyAwsError(404, ""), ErrorCategory::kNotFound);
  for (const char* code :
       {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException",
        "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
        "LimitExceededException", "RequestThrottled", "SlowDown", "EC2ThrottledException"}) {
    EXPECT_EQ(ClassifyAwsError(400, code), ErrorCategory::kThrottled) << code;
  }
  EXPECT_EQ(ClassifyAwsError(429, ""), ErrorCategory::kThrottled);
  for (int status : {500, 502, 503, 504}) {
    EXPECT_EQ(ClassifyAwsError(status, ""), ErrorCategory::kTransient) << status;
  }
  for (const char* code : {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
                           "InternalError", "ServiceUnavailable"}) {
    EXPECT_EQ(ClassifyAwsError(400, code), ErrorCategory::kTransient) << code;
  }
  EXPECT_EQ(ClassifyAwsError(0, "ConnectionFailed"), ErrorCategory::kTransient);
  for (const char* code : {"RequestTimeTooSkewed", "RequestExpired", "RequestInTheFuture"}) {
    EXPECT_EQ(ClassifyAwsError(403, code), ErrorCategory::kClockSkew) << code;
  }
  EXPECT_EQ(ClassifyAwsError(400, "InvalidSignatureException",
                             "Signature expired: 20231114T221320Z is now earlier than ..."),
            ErrorCategory::kClockSkew);
  EXPECT_EQ(ClassifyAwsError(401, "AuthFailure", "Request has expired or the time is skewed"),
            ErrorCategory::kClockSkew);
  EXPECT_EQ(ClassifyAwsError(403, "SignatureDoesNotMatch",
                             "The request signature we calculated does not match the signature "
                             "you provided. Check your key and signing method."),
            ErrorCategory::kClient);
  EXPECT_EQ(ClassifyAwsError(400, "ValidationException"), ErrorCategory::kClient);
  EXPECT_EQ(ClassifyAwsError(403, "AccessDenied"), ErrorCategory::kClient);
}

}  // namespace
}  // namespace spotgrid
