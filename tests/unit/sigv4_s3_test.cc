// S3's SigV4 rules, which the generic suite does not cover: the key encoded once and never
// normalised, the signed x-amz-content-sha256 header, UNSIGNED-PAYLOAD for presigned URLs.
// Expected signatures are the S3 API Reference examples (wire notes section 1.9).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "spotgrid/aws/sigv4.h"
#include "spotgrid/aws/uri.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using namespace std::chrono;

const Credentials kDocCredentials{"AKIAIOSFODNN7EXAMPLE",
                                  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", std::nullopt};
constexpr char kHost[] = "examplebucket.s3.amazonaws.com";

SigningParams S3Params() {
  SigningParams params;
  params.region = "us-east-1";
  params.service = "s3";
  params.time = sys_days{year{2013} / May / 24};
  params.path_mode = PathMode::kS3;
  params.add_content_sha256_header = true;
  return params;
}

SigningRequest Get(std::string path, std::string query = "") {
  SigningRequest request;
  request.method = "GET";
  request.path = std::move(path);
  request.query = std::move(query);
  request.headers = {{"Host", kHost}};
  request.payload_hash = std::string(kEmptyPayloadSha256);
  return request;
}

// The canonical URI line of a canonical request.
std::string CanonicalUriOf(const SignedRequest& signed_request) {
  const std::string& cr = signed_request.canonical_request;
  const std::size_t start = cr.find('\n') + 1;
  return cr.substr(start, cr.find('\n', start) - start);
}

std::string CanonicalQueryOf(const SignedRequest& signed_request) {
  const std::string& cr = signed_request.canonical_request;
  const std::size_t start = cr.find('\n', cr.find('\n') + 1) + 1;
  return cr.substr(start, cr.find('\n', start) - start);
}

std::string SignedHeadersOf(const SignedRequest& signed_request) {
  const std::string& auth = signed_request.authorization;
  const std::size_t start = auth.find("SignedHeaders=") + 14;
  return auth.substr(start, auth.find(',', start) - start);
}

TEST(SigV4S3, GetObjectWithRangeMatchesDocExample) {
  SigningRequest request = Get("/test.txt");
  request.headers.emplace_back("Range", "bytes=0-9");
  const SignedRequest s = SignRequest(request, kDocCredentials, S3Params());
  EXPECT_EQ(SignedHeadersOf(s), "host;range;x-amz-content-sha256;x-amz-date");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4S3, PutObjectWithDollarInKeyMatchesDocExample) {
  const std::string body = "Welcome to Amazon S3.";
  SigningRequest request;
  request.method = "PUT";
  request.path = "/" + UriEncode("test$file.text", /*keep_slash=*/true);
  request.headers = {{"Host", kHost},
                     {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  request.payload_hash = Sha256Hex(body);
  ASSERT_EQ(request.payload_hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  const SignedRequest s = SignRequest(request, kDocCredentials, S3Params());
  EXPECT_EQ(CanonicalUriOf(s), "/test%24file.text");
  EXPECT_EQ(SignedHeadersOf(s), "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  EXPECT_EQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4S3, ValuelessSubresourceMatchesDocExample) {
  const SignedRequest s = SignRequest(Get("/", "lifecycle"), kDocCredentials, S3Params());
  EXPECT_EQ(CanonicalQueryOf(s), "lifecycle=");
  EXPECT_EQ(SignedHeadersOf(s), "host;x-amz-content-sha256;x-amz-date");
  EXPECT_EQ(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4S3, ListObjectsQueryMatchesDocExample) {
  const SignedRequest s = SignRequest(Get("/", "max-keys=2&prefix=J"), kDocCredentials, S3Params());
  EXPECT_EQ(CanonicalQueryOf(s), "max-keys=2&prefix=J");
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4S3, PresignedGetMatchesDocExample) {
  SigningRequest request = Get("/test.txt");
  request.payload_hash = std::string(kUnsignedPayload);
  const SignedRequest s = PresignRequest(request, kDocCredentials, S3Params(), hours(24));
  EXPECT_EQ(s.signature, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  EXPECT_TRUE(s.added_headers.empty()) << "a presigned URL sends no x-amz-* headers";
  EXPECT_EQ(s.canonical_request.substr(s.canonical_request.rfind('\n') + 1), "UNSIGNED-PAYLOAD");
  EXPECT_NE(s.signed_query.find("X-Amz-Expires=86400"), std::string::npos);
  EXPECT_NE(s.signed_query.find("X-Amz-SignedHeaders=host&"), std::string::npos);
  EXPECT_TRUE(s.signed_query.ends_with("&X-Amz-Signature=" + s.signature)) << s.signed_query;
}

// Path-style S3 object paths: "/" bucket "/" key encoded once with '/' kept.
std::string ObjectPath(const std::string& key) { return "/bucket/" + UriEncode(key, true); }

std::string S3CanonicalUri(const std::string& key) {
  return CanonicalUriOf(SignRequest(Get(ObjectPath(key)), kDocCredentials, S3Params()));
}

TEST(SigV4S3, KeyWithSpacesIsEncodedOnce) {
  EXPECT_EQ(S3CanonicalUri("my folder/file name.txt"), "/bucket/my%20folder/file%20name.txt");
}

TEST(SigV4S3, NonAsciiKeyIsEncodedAsUtf8BytesOnce) {
  EXPECT_EQ(S3CanonicalUri("donn\xC3\xA9"
                           "es/r\xC3\xA9sum\xC3\xA9.txt"),
            "/bucket/donn%C3%A9es/r%C3%A9sum%C3%A9.txt");
  EXPECT_EQ(S3CanonicalUri("\xE1\x88\xB4"), "/bucket/%E1%88%B4");
}

TEST(SigV4S3, ReservedCharactersInKeyAreEncodedOnce) {
  EXPECT_EQ(S3CanonicalUri("a$b+c=d&e@f:g,h;i!j*k'(l)"),
            "/bucket/a%24b%2Bc%3Dd%26e%40f%3Ag%2Ch%3Bi%21j%2Ak%27%28l%29");
  EXPECT_EQ(S3CanonicalUri("-_.~"), "/bucket/-_.~");
}

TEST(SigV4S3, PercentInKeyIsNotEncodedTwice) {
  EXPECT_EQ(S3CanonicalUri("100%.txt"), "/bucket/100%25.txt");
  // The same wire path under the non-S3 rule is encoded again: that is the difference.
  SigningParams params = S3Params();
  params.path_mode = PathMode::kNormalizePath;
  EXPECT_EQ(CanonicalUriOf(SignRequest(Get(ObjectPath("100%.txt")), kDocCredentials, params)),
            "/bucket/100%2525.txt");
}

TEST(SigV4S3, ConsecutiveSlashesAndDotSegmentsInKeyAreKept) {
  EXPECT_EQ(S3CanonicalUri("a//b/../c/./d/"), "/bucket/a//b/../c/./d/");
  EXPECT_EQ(S3CanonicalUri("/leading"), "/bucket//leading");
  EXPECT_EQ(S3CanonicalUri(".."), "/bucket/..");
}

TEST(SigV4S3, EmptyPathSignsAsSlash) {
  EXPECT_EQ(CanonicalUriOf(SignRequest(Get(""), kDocCredentials, S3Params())), "/");
}

TEST(SigV4S3, UploadPartQueryIsSortedAndReencoded) {
  const SignedRequest s = SignRequest(Get("/bucket/key", "uploadId=abc%2Fdef~x&partNumber=3"),
                                      kDocCredentials, S3Params());
  EXPECT_EQ(CanonicalQueryOf(s), "partNumber=3&uploadId=abc%2Fdef~x");
  const SignedRequest uploads =
      SignRequest(Get("/bucket/key", "uploads"), kDocCredentials, S3Params());
  EXPECT_EQ(CanonicalQueryOf(uploads), "uploads=");
}

TEST(SigV4S3, QueryPlusIsALiteralPlusAndSlashIsEncoded) {
  const SignedRequest s =
      SignRequest(Get("/bucket", "prefix=a+b/c&delimiter=%2F"), kDocCredentials, S3Params());
  EXPECT_EQ(CanonicalQueryOf(s), "delimiter=%2F&prefix=a%2Bb%2Fc");
}

TEST(SigV4S3, UnsignedPayloadGoesIntoHeaderAndCanonicalRequest) {
  SigningRequest request = Get("/bucket/big.bin");
  request.method = "PUT";
  request.payload_hash = std::string(kUnsignedPayload);
  const SignedRequest s = SignRequest(request, kDocCredentials, S3Params());
  EXPECT_EQ(FindHeader(s.added_headers, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  EXPECT_TRUE(s.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
  EXPECT_NE(s.canonical_request.find("x-amz-content-sha256:UNSIGNED-PAYLOAD\n"), std::string::npos);
}

TEST(SigV4S3, SessionTokenIsSignedAndAdded) {
  Credentials credentials = kDocCredentials;
  credentials.session_token = "FwoGZXIvYXdzEXAMPLE//token+with=chars";
  const SignedRequest s = SignRequest(Get("/test.txt"), credentials, S3Params());
  EXPECT_EQ(SignedHeadersOf(s), "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
  EXPECT_EQ(FindHeader(s.added_headers, "x-amz-security-token"), credentials.session_token);
  EXPECT_NE(s.signature, SignRequest(Get("/test.txt"), kDocCredentials, S3Params()).signature);
}

TEST(SigV4S3, ResigningARequestThatCarriesOldAuthHeadersGivesTheSameSignature) {
  const SigningRequest request = Get("/test.txt");
  const SignedRequest first = SignRequest(request, kDocCredentials, S3Params());
  SigningRequest retried = request;
  for (const auto& header : first.added_headers) retried.headers.push_back(header);
  retried.headers.emplace_back("User-Agent", "spotgrid/0.1");
  retried.headers.emplace_back("Expect", "");
  const SignedRequest second = SignRequest(retried, kDocCredentials, S3Params());
  EXPECT_EQ(second.canonical_request, first.canonical_request);
  EXPECT_EQ(second.authorization, first.authorization);
}

TEST(SigV4S3, FileRangeHashMatchesInMemoryHash) {
  const std::string dir = testing::MakeTempDir("sigv4-s3");
  const std::string path = dir + "/part.bin";
  std::string content;
  for (int i = 0; i < 200000; ++i) content.push_back(static_cast<char>(i * 31 % 251));
  std::ofstream(path, std::ios::binary) << content;

  const auto whole = Sha256HexOfFile(FileRange{path, 0, content.size()});
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(*whole, Sha256Hex(content));
  const auto middle = Sha256HexOfFile(FileRange{path, 70001, 100000});
  ASSERT_TRUE(middle.ok()) << middle.status().ToString();
  EXPECT_EQ(*middle, Sha256Hex(std::string_view(content).substr(70001, 100000)));
  const auto empty = Sha256HexOfFile(FileRange{path, 5, 0});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, kEmptyPayloadSha256);

  const auto past_end = Sha256HexOfFile(FileRange{path, content.size() - 10, 11});
  EXPECT_FALSE(past_end.ok());
  const auto missing = Sha256HexOfFile(FileRange{dir + "/missing", 0, 1});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().category, ErrorCategory::kIo);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace spotgrid
