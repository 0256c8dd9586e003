// Cost of SigV4 signing per request: a DynamoDB JSON call and an S3 PUT, with the per-thread
// signing-key cache warm (the steady state) and cold (every call derives the key again).
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "spotgrid/aws/sigv4.h"

namespace spotgrid {
namespace {

using namespace std::chrono;

const Credentials kCredentials{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                               "", std::nullopt};

const std::string kPutItemBody =
    R"({"TableName":"spotgrid-ledger","Item":{"pk":{"S":"run#42"},"sk":{"S":"unit#0007"},)"
    R"("state":{"S":"CLAIMED"},"worker":{"S":"i-0123456789abcdef0"},"lease_until":{"N":)"
    R"("1767225900"}},"ConditionExpression":"attribute_not_exists(pk) OR #s = :pending",)"
    R"("ExpressionAttributeNames":{"#s":"state"},"ExpressionAttributeValues":{":pending":)"
    R"({"S":"PENDING"}}})";

SigningRequest DynamoDbRequest() {
  SigningRequest request;
  request.method = "POST";
  request.path = "/";
  request.headers = {{"Host", "dynamodb.us-east-1.amazonaws.com"},
                     {"Content-Type", "application/x-amz-json-1.0"},
                     {"X-Amz-Target", "DynamoDB_20120810.PutItem"}};
  request.payload_hash = Sha256Hex(kPutItemBody);
  return request;
}

SigningParams DynamoDbParams() {
  SigningParams params;
  params.region = "us-east-1";
  params.service = "dynamodb";
  params.time = sys_days{year{2026} / January / 1} + hours{12};
  return params;
}

SigningRequest S3PutRequest() {
  SigningRequest request;
  request.method = "PUT";
  request.path = "/spotgrid-results/runs/42/units/0007/stdout.log";
  request.query = "partNumber=3&uploadId=VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRz";
  request.headers = {{"Host", "s3.us-east-1.amazonaws.com"},
                     {"Content-Type", "text/plain"},
                     {"Content-Length", "8388608"},
                     {"x-amz-meta-exit-code", "0"}};
  request.payload_hash = std::string(kUnsignedPayload);
  return request;
}

SigningParams S3Params() {
  SigningParams params;
  params.region = "us-east-1";
  params.service = "s3";
  params.time = sys_days{year{2026} / January / 1} + hours{12};
  params.path_mode = PathMode::kS3;
  params.add_content_sha256_header = true;
  return params;
}

void BM_SignDynamoDbPutItem(benchmark::State& state) {
  const SigningRequest request = DynamoDbRequest();
  const SigningParams params = DynamoDbParams();
  for (auto _ : state) benchmark::DoNotOptimize(SignRequest(request, kCredentials, params));
}
BENCHMARK(BM_SignDynamoDbPutItem);

// Includes hashing the ~400-byte JSON body, as a client does for every call.
void BM_HashAndSignDynamoDbPutItem(benchmark::State& state) {
  SigningRequest request = DynamoDbRequest();
  const SigningParams params = DynamoDbParams();
  for (auto _ : state) {
    request.payload_hash = Sha256Hex(kPutItemBody);
    benchmark::DoNotOptimize(SignRequest(request, kCredentials, params));
  }
}
BENCHMARK(BM_HashAndSignDynamoDbPutItem);

void BM_SignS3PutUploadPart(benchmark::State& state) {
  const SigningRequest request = S3PutRequest();
  const SigningParams params = S3Params();
  for (auto _ : state) benchmark::DoNotOptimize(SignRequest(request, kCredentials, params));
}
BENCHMARK(BM_SignS3PutUploadPart);

// Alternating regions defeats the one-entry key cache: the price of deriving the key.
void BM_SignDynamoDbPutItemColdKey(benchmark::State& state) {
  const SigningRequest request = DynamoDbRequest();
  SigningParams a = DynamoDbParams();
  SigningParams b = DynamoDbParams();
  b.region = "eu-west-1";
  bool flip = false;
  for (auto _ : state) {
    flip = !flip;
    benchmark::DoNotOptimize(SignRequest(request, kCredentials, flip ? a : b));
  }
}
BENCHMARK(BM_SignDynamoDbPutItemColdKey);

void BM_Sha256Hex(benchmark::State& state) {
  const std::string data(static_cast<std::size_t>(state.range(0)), 'x');
  for (auto _ : state) benchmark::DoNotOptimize(Sha256Hex(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256Hex)->Arg(256)->Arg(64 << 10);

}  // namespace
}  // namespace spotgrid
