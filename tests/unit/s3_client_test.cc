// Unit tests of S3Client: the exact requests it sends (addressing, key encoding, sub-resource
// queries, headers, XML bodies) and how it reads S3's answers, against a FakeTransport.
#include "spotgrid/services/s3_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "spotgrid/aws/sigv4.h"
#include "spotgrid/aws/uri.h"
#include "spotgrid/aws/xml.h"
#include "support/client_fixture.h"
#include "support/fake_clock.h"
#include "support/fake_transport.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using testing::FakeClock;
using testing::FakeTransport;
using testing::HeaderOf;

constexpr char kPathStyleEndpoint[] = "http://127.0.0.1:9000";
constexpr char kAwsEndpoint[] = "https://s3.us-east-1.amazonaws.com";

struct SplitUrl {
  std::string origin;                             // scheme://authority
  std::string path;                               // as on the wire (encoded)
  std::multimap<std::string, std::string> query;  // decoded
  std::string raw_query;
};

SplitUrl Split(const std::string& url) {
  SplitUrl out;
  const auto scheme_end = url.find("://");
  const auto path_start = url.find('/', scheme_end + 3);
  out.origin = url.substr(0, path_start);
  std::string rest = url.substr(path_start);
  const auto q = rest.find('?');
  out.path = rest.substr(0, q);
  if (q != std::string::npos) {
    out.raw_query = rest.substr(q + 1);
    std::string_view query = out.raw_query;
    while (!query.empty()) {
      const auto amp = query.find('&');
      std::string_view item = query.substr(0, amp);
      const auto eq = item.find('=');
      out.query.emplace(UriDecode(item.substr(0, eq)),
                        eq == std::string_view::npos ? "" : UriDecode(item.substr(eq + 1)));
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
  }
  return out;
}

std::string QueryValue(const SplitUrl& url, const std::string& name) {
  auto it = url.query.find(name);
  return it == url.query.end() ? "<absent>" : it->second;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// A file of `size` zero bytes that takes no disk space.
void MakeSparseFile(const std::string& path, std::uint64_t size) {
  WriteFile(path, "");
  std::filesystem::resize_file(path, size);
}

HttpResponse Response(int status, std::string body = "", Headers headers = {}) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers = std::move(headers);
  return response;
}

// The fake stands in for the curl transport, which writes a 2xx body to response_file.
Result<HttpResponse> Deliver(const HttpRequest& request, HttpResponse response) {
  if (!request.response_file.empty() && response.status >= 200 && response.status < 300) {
    WriteFile(request.response_file, response.body);
    response.body.clear();
  }
  return response;
}

std::string ErrorXml(const std::string& code, const std::string& message = "failed") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code + "</Code><Message>" +
         message + "</Message><RequestId>REQ1</RequestId></Error>";
}

class S3ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("s3-unit"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<S3Client> MakeClient(const std::string& endpoint, bool path_style,
                                       const std::string& region = "us-east-1") {
    RetryOptions retry;
    retry.base = std::chrono::milliseconds(10);
    context_ = std::make_shared<AwsContext>(
        region, transport_,
        MakeStaticCredentialsProvider({"AKIDEXAMPLE", "SECRETEXAMPLE", "", std::nullopt}), &clock_,
        std::make_unique<RetryPolicy>(retry, [] { return 0.5; }), &env_, ProfileFiles{}, nullptr);
    Endpoint ep;
    auto url = ParseUrl(endpoint);
    EXPECT_TRUE(url.ok());
    ep.url = *url;
    ep.configured = path_style;
    ep.s3_path_style = path_style;
    return std::make_shared<S3Client>(std::make_shared<AwsClient>(context_, kS3Service, ep));
  }

  std::shared_ptr<S3Client> PathStyle() { return MakeClient(kPathStyleEndpoint, true); }

  std::string dir_;
  std::shared_ptr<FakeTransport> transport_ = std::make_shared<FakeTransport>();
  FakeClock clock_;
  MapEnvironment env_;
  std::shared_ptr<AwsContext> context_;
};

TEST_F(S3ClientTest, ConfiguredEndpointUsesPathStyleAndSignsContentSha256) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, "", {{"etag", "\"abc\""}});
  auto etag = s3->PutObject("bkt", "dir/file.txt", "hello");
  ASSERT_TRUE(etag.ok()) << etag.error().ToString();
  EXPECT_EQ(*etag, "\"abc\"");

  const HttpRequest request = transport_->requests().at(0);
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.url, "http://127.0.0.1:9000/bkt/dir/file.txt");
  EXPECT_EQ(HeaderOf(request, "host"), "127.0.0.1:9000");
  EXPECT_EQ(HeaderOf(request, "content-length"), "5");
  EXPECT_EQ(HeaderOf(request, "x-amz-content-sha256"), Sha256Hex("hello"));
  EXPECT_NE(HeaderOf(request, "authorization").find("x-amz-content-sha256"), std::string::npos);
  EXPECT_EQ(request.body, "hello");
}

TEST_F(S3ClientTest, DefaultEndpointUsesVirtualHostedStyle) {
  auto s3 = MakeClient(kAwsEndpoint, false);
  transport_->PushResponse(200, "data");
  ASSERT_TRUE(s3->GetObject("my-bucket", "k/v.txt").ok());
  const HttpRequest request = transport_->requests().at(0);
  EXPECT_EQ(request.url, "https://my-bucket.s3.us-east-1.amazonaws.com/k/v.txt");
  EXPECT_EQ(HeaderOf(request, "host"), "my-bucket.s3.us-east-1.amazonaws.com");
  EXPECT_EQ(HeaderOf(request, "x-amz-content-sha256"), kEmptyPayloadSha256);
}

TEST_F(S3ClientTest, BucketNamesWithDotsUsePathStyleEvenOnAws) {
  auto s3 = MakeClient(kAwsEndpoint, false);
  EXPECT_TRUE(s3->UsesPathStyle("logs.example.com"));
  EXPECT_FALSE(s3->UsesPathStyle("logs-example"));
  transport_->PushResponse(200, "data");
  ASSERT_TRUE(s3->GetObject("logs.example.com", "a").ok());
  EXPECT_EQ(transport_->requests().at(0).url,
            "https://s3.us-east-1.amazonaws.com/logs.example.com/a");
}

TEST_F(S3ClientTest, KeysAreEncodedOnceKeepingSlashesDotSegmentsAndDoubleSlashes) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, "x");
  const std::string key = "a b/../c//d+\xC3\xA9=&?#%.txt";
  ASSERT_TRUE(s3->GetObject("bkt", key).ok());
  const SplitUrl url = Split(transport_->requests().at(0).url);
  EXPECT_EQ(url.path, "/bkt/a%20b/../c//d%2B%C3%A9%3D%26%3F%23%25.txt");
  EXPECT_EQ(url.raw_query, "");
}

TEST_F(S3ClientTest, VirtualHostedKeyWithLeadingSlashKeepsIt) {
  auto s3 = MakeClient(kAwsEndpoint, false);
  transport_->PushResponse(200, "x");
  ASSERT_TRUE(s3->GetObject("bkt", "/abs").ok());
  EXPECT_EQ(Split(transport_->requests().at(0).url).path, "//abs");
}

TEST_F(S3ClientTest, CreateBucketOutsideUsEast1SendsLocationConstraint) {
  auto s3 = MakeClient(kPathStyleEndpoint, true, "eu-west-1");
  transport_->PushResponse(200, "");
  ASSERT_TRUE(s3->CreateBucket("bkt").ok());
  const HttpRequest request = transport_->requests().at(0);
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(Split(request.url).path, "/bkt");
  auto doc = ParseXml(request.body);
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->name, "CreateBucketConfiguration");
  EXPECT_EQ(doc->ChildText("LocationConstraint"), "eu-west-1");
}

TEST_F(S3ClientTest, CreateBucketInUsEast1SendsNoBody) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, "");
  ASSERT_TRUE(s3->CreateBucket("bkt").ok());
  EXPECT_EQ(transport_->requests().at(0).body, "");
}

TEST_F(S3ClientTest, EnsureBucketTreatsAlreadyOwnedByYouAsSuccess) {
  auto s3 = PathStyle();
  transport_->PushResponse(404, "");
  transport_->PushResponse(409, ErrorXml("BucketAlreadyOwnedByYou"));
  EXPECT_TRUE(s3->EnsureBucket("bkt").ok());
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "HEAD");
  EXPECT_EQ(requests[1].method, "PUT");
}

TEST_F(S3ClientTest, EnsureBucketDoesNotCreateAnExistingBucket) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, "");
  EXPECT_TRUE(s3->EnsureBucket("bkt").ok());
  EXPECT_EQ(transport_->request_count(), 1u);
}

TEST_F(S3ClientTest, EnsureBucketAcceptsABucketCreatedConcurrentlyThatWeCanAccess) {
  auto s3 = PathStyle();
  transport_->PushResponse(404, "");
  transport_->PushResponse(409, ErrorXml("BucketAlreadyExists"));
  transport_->PushResponse(200, "");
  EXPECT_TRUE(s3->EnsureBucket("bkt").ok());
  EXPECT_EQ(transport_->request_count(), 3u);
}

TEST_F(S3ClientTest, EnsureBucketFailsForSomeoneElsesBucket) {
  auto s3 = PathStyle();
  transport_->PushResponse(403, "");
  Status status = s3->EnsureBucket("bkt");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().http_status, 403);
  EXPECT_EQ(transport_->request_count(), 1u);
}

TEST_F(S3ClientTest, PutObjectSendsContentTypeAndMetadata) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, "", {{"etag", "\"e\""}});
  PutObjectOptions options;
  options.content_type = "text/plain";
  options.metadata = {{"Job-Id", "42"}};
  ASSERT_TRUE(s3->PutObject("bkt", "k", "body", options).ok());
  const HttpRequest request = transport_->requests().at(0);
  EXPECT_EQ(HeaderOf(request, "content-type"), "text/plain");
  EXPECT_EQ(HeaderOf(request, "x-amz-meta-job-id"), "42");
}

TEST_F(S3ClientTest, PutObjectFromFileStreamsTheWholeFile) {
  auto s3 = PathStyle();
  const std::string path = dir_ + "/in.bin";
  WriteFile(path, "file contents");
  transport_->PushResponse(200, "", {{"etag", "\"e\""}});
  ASSERT_TRUE(s3->PutObjectFromFile("bkt", "k", path).ok());
  const HttpRequest request = transport_->requests().at(0);
  ASSERT_TRUE(request.body_file.has_value());
  EXPECT_EQ(request.body_file->path, path);
  EXPECT_EQ(request.body_file->offset, 0u);
  EXPECT_EQ(request.body_file->length, 13u);
  EXPECT_EQ(HeaderOf(request, "content-length"), "13");
  // Over plain http the streamed body is hashed into the signature.
  EXPECT_EQ(HeaderOf(request, "x-amz-content-sha256"), Sha256Hex("file contents"));
}

TEST_F(S3ClientTest, GetObjectSendsRangeHeader) {
  auto s3 = PathStyle();
  transport_->PushResponse(206, "cde", {{"content-range", "bytes 2-4/10"}});
  auto data = s3->GetObject("bkt", "k", ByteRange{2, 4});
  ASSERT_TRUE(data.ok()) << data.error().ToString();
  EXPECT_EQ(*data, "cde");
  EXPECT_EQ(HeaderOf(transport_->requests().at(0), "range"), "bytes=2-4");
}

TEST_F(S3ClientTest, GetObjectRejectsAWholeObjectAnsweredToARangedRequest) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, "0123456789");
  EXPECT_FALSE(s3->GetObject("bkt", "k", ByteRange{2, 4}).ok());
}

TEST_F(S3ClientTest, GetObjectToFileRenamesIntoPlaceOnSuccess) {
  auto s3 = PathStyle();
  transport_->SetFallback(
      [](const HttpRequest& r) { return Deliver(r, Response(200, "payload")); });
  const std::string target = dir_ + "/out.bin";
  ASSERT_TRUE(s3->GetObjectToFile("bkt", "k", target).ok());
  EXPECT_EQ(ReadFile(target), "payload");
  const HttpRequest request = transport_->requests().at(0);
  EXPECT_NE(request.response_file, target);
  EXPECT_EQ(std::filesystem::path(request.response_file).parent_path().string(), dir_);
  EXPECT_FALSE(std::filesystem::exists(request.response_file));
}

TEST_F(S3ClientTest, FailedGetObjectToFileLeavesNoFileBehind) {
  auto s3 = PathStyle();
  const std::string target = dir_ + "/out.bin";
  transport_->PushResponse(404, ErrorXml("NoSuchKey"));
  Status status = s3->GetObjectToFile("bkt", "k", target);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(status.error().IsNotFound());
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(S3ClientTest, FailedGetObjectToFileKeepsThePreviousFile) {
  auto s3 = PathStyle();
  const std::string target = dir_ + "/out.bin";
  WriteFile(target, "old");
  transport_->PushResponse(403, ErrorXml("AccessDenied"));
  ASSERT_FALSE(s3->GetObjectToFile("bkt", "k", target).ok());
  EXPECT_EQ(ReadFile(target), "old");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1);
}

TEST_F(S3ClientTest, HeadObjectReadsSizeEtagDateAndMetadata) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, "",
                           {{"content-length", "1234"},
                            {"etag", "\"9b2cf535f27731c974343645a3985328\""},
                            {"last-modified", "Wed, 12 Oct 2009 17:50:00 GMT"},
                            {"content-type", "text/plain"},
                            {"x-amz-meta-owner", "alice"}});
  auto info = s3->HeadObject("bkt", "k");
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->size, 1234u);
  EXPECT_EQ(info->etag, "\"9b2cf535f27731c974343645a3985328\"");
  EXPECT_EQ(info->last_modified, "Wed, 12 Oct 2009 17:50:00 GMT");
  EXPECT_EQ(info->content_type, "text/plain");
  EXPECT_EQ(info->metadata.at("owner"), "alice");
  EXPECT_EQ(transport_->requests().at(0).method, "HEAD");
}

TEST_F(S3ClientTest, HeadObjectOfMissingKeyIsNotFound) {
  auto s3 = PathStyle();
  transport_->PushResponse(404, "");
  auto info = s3->HeadObject("bkt", "missing");
  ASSERT_FALSE(info.ok());
  EXPECT_TRUE(info.error().IsNotFound());
  EXPECT_EQ(info.error().operation, "HeadObject");
}

std::string ListPage(const std::vector<std::string>& keys, const std::string& next_token,
                     const std::vector<std::string>& prefixes = {}, bool url_encoded = false) {
  std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bkt</Name>";
  if (url_encoded) xml += "<EncodingType>url</EncodingType>";
  xml += "<IsTruncated>" + std::string(next_token.empty() ? "false" : "true") + "</IsTruncated>";
  if (!next_token.empty())
    xml += "<NextContinuationToken>" + next_token + "</NextContinuationToken>";
  for (const auto& key : keys) {
    xml += "<Contents><Key>" + key +
           "</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
           "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>7</Size>"
           "<StorageClass>STANDARD</StorageClass></Contents>";
  }
  for (const auto& prefix : prefixes) {
    xml += "<CommonPrefixes><Prefix>" + prefix + "</Prefix></CommonPrefixes>";
  }
  return xml + "</ListBucketResult>";
}

TEST_F(S3ClientTest, ListObjectsFollowsContinuationTokensUntilTheLastPage) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, ListPage({"p/a", "p/b"}, "tok+1/="));
  transport_->PushResponse(200, ListPage({"p/c"}, "tok2"));
  transport_->PushResponse(200, ListPage({"p/d"}, ""));
  ListObjectsOptions options;
  options.prefix = "p/";
  auto listing = s3->ListObjects("bkt", options);
  ASSERT_TRUE(listing.ok()) << listing.error().ToString();
  std::vector<std::string> keys;
  for (const auto& object : listing->objects) keys.push_back(object.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"p/a", "p/b", "p/c", "p/d"}));
  EXPECT_EQ(listing->objects[0].size, 7u);
  EXPECT_EQ(listing->objects[0].etag, "\"fba9dede5f27731c9771645a39863328\"");

  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 3u);
  const SplitUrl first = Split(requests[0].url);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(first.path, "/bkt");
  EXPECT_EQ(QueryValue(first, "list-type"), "2");
  EXPECT_EQ(QueryValue(first, "prefix"), "p/");
  EXPECT_EQ(QueryValue(first, "encoding-type"), "url");
  EXPECT_EQ(QueryValue(first, "continuation-token"), "<absent>");
  const SplitUrl second = Split(requests[1].url);
  EXPECT_EQ(QueryValue(second, "continuation-token"), "tok+1/=");
  EXPECT_NE(second.raw_query.find("continuation-token=tok%2B1%2F%3D"), std::string::npos);
  EXPECT_EQ(QueryValue(second, "prefix"), "p/");
  EXPECT_EQ(QueryValue(Split(requests[2].url), "continuation-token"), "tok2");
}

TEST_F(S3ClientTest, ListObjectsReturnsCommonPrefixesForADelimiter) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, ListPage({"top.txt"}, "", {"a/", "b/"}));
  ListObjectsOptions options;
  options.delimiter = "/";
  options.start_after = "a";
  auto listing = s3->ListObjects("bkt", options);
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->common_prefixes, (std::vector<std::string>{"a/", "b/"}));
  ASSERT_EQ(listing->objects.size(), 1u);
  const SplitUrl url = Split(transport_->requests().at(0).url);
  EXPECT_EQ(QueryValue(url, "delimiter"), "/");
  EXPECT_EQ(QueryValue(url, "start-after"), "a");
}

TEST_F(S3ClientTest, ListObjectsDecodesKeysWhenTheResponseIsUrlEncoded) {
  auto s3 = PathStyle();
  transport_->PushResponse(
      200, ListPage({"dir/a+b%2Bc%20d%C3%A9"}, "", {"x%2By+z/"}, /*url_encoded=*/true));
  auto listing = s3->ListObjects("bkt");
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->objects.size(), 1u);
  EXPECT_EQ(listing->objects[0].key, "dir/a b+c d\xC3\xA9");
  EXPECT_EQ(listing->common_prefixes, (std::vector<std::string>{"x+y z/"}));
}

TEST_F(S3ClientTest, ListObjectsKeepsKeysVerbatimWhenTheResponseIsNotEncoded) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, ListPage({"a+b%2B"}, ""));
  auto listing = s3->ListObjects("bkt");
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->objects.at(0).key, "a+b%2B");
}

TEST_F(S3ClientTest, ListObjectsFailsWhenTruncatedWithoutAToken) {
  auto s3 = PathStyle();
  transport_->PushResponse(200,
                           "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
  EXPECT_FALSE(s3->ListObjects("bkt").ok());
}

TEST(S3ContentMd5, IsBase64OfTheBinaryMd5) {
  EXPECT_EQ(ContentMd5(""), "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(ContentMd5("The quick brown fox jumps over the lazy dog"), "nhB9nTcrtoJr2B01QqQZ1g==");
}

std::vector<std::string> KeysInDeleteBody(const std::string& body) {
  std::vector<std::string> keys;
  auto doc = ParseXml(body);
  EXPECT_TRUE(doc.ok());
  if (!doc.ok()) return keys;
  EXPECT_EQ(doc->name, "Delete");
  EXPECT_EQ(doc->ChildText("Quiet"), "true");
  for (const XmlElement* object : doc->Children("Object")) keys.push_back(object->ChildText("Key"));
  return keys;
}

TEST_F(S3ClientTest, DeleteObjectsSplitsIntoRequestsOfAThousandWithContentMd5) {
  auto s3 = PathStyle();
  transport_->SetFallback([](const HttpRequest& r) {
    return Deliver(r, Response(200, "<DeleteResult></DeleteResult>"));
  });
  std::vector<std::string> keys;
  for (int i = 0; i < 2500; ++i) keys.push_back("k/" + std::to_string(i) + " <&>");
  auto result = s3->DeleteObjects("bkt", keys);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_TRUE(result->ok());

  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 3u);
  std::vector<std::string> sent;
  std::vector<std::size_t> sizes;
  for (const auto& request : requests) {
    EXPECT_EQ(request.method, "POST");
    const SplitUrl url = Split(request.url);
    EXPECT_EQ(url.path, "/bkt");
    EXPECT_EQ(url.query.count("delete"), 1u);
    EXPECT_EQ(HeaderOf(request, "content-md5"), ContentMd5(request.body));
    auto batch = KeysInDeleteBody(request.body);
    sizes.push_back(batch.size());
    sent.insert(sent.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{1000, 1000, 500}));
  EXPECT_EQ(sent, keys);
}

TEST_F(S3ClientTest, DeleteObjectsReportsPerKeyErrorsAndRetriesOnlyRetryableOnes) {
  auto s3 = PathStyle();
  transport_->PushResponse(
      200,
      "<DeleteResult>"
      "<Error><Key>a</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
      "<Error><Key>b</Key><Code>InternalError</Code><Message>oops</Message></Error>"
      "</DeleteResult>");
  transport_->PushResponse(200, "<DeleteResult></DeleteResult>");
  auto result = s3->DeleteObjects("bkt", {"a", "b", "c"});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].key, "a");
  EXPECT_EQ(result->failed[0].code, "AccessDenied");
  EXPECT_EQ(result->failed[0].message, "no");
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(KeysInDeleteBody(requests[1].body), (std::vector<std::string>{"b"}));
  EXPECT_EQ(clock_.sleeps().size(), 1u);
}

TEST_F(S3ClientTest, DeleteObjectsGivesUpOnRetryableKeysAfterMaxAttempts) {
  auto s3 = PathStyle();
  transport_->SetFallback([](const HttpRequest& r) {
    return Deliver(r, Response(200,
                               "<DeleteResult><Error><Key>b</Key><Code>SlowDown</Code>"
                               "<Message>slow</Message></Error></DeleteResult>"));
  });
  auto result = s3->DeleteObjects("bkt", {"b"});
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].code, "SlowDown");
  EXPECT_EQ(transport_->request_count(), 3u);
}

TEST_F(S3ClientTest, DeleteObjectSendsDelete) {
  auto s3 = PathStyle();
  transport_->PushResponse(204, "");
  ASSERT_TRUE(s3->DeleteObject("bkt", "a/b").ok());
  EXPECT_EQ(transport_->requests().at(0).method, "DELETE");
  EXPECT_EQ(Split(transport_->requests().at(0).url).path, "/bkt/a/b");
}

TEST_F(S3ClientTest, MultipartPrimitivesSendTheirSubresourceQueries) {
  auto s3 = PathStyle();
  transport_->PushResponse(200,
                           "<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key>"
                           "<UploadId>up/1+x</UploadId></InitiateMultipartUploadResult>");
  transport_->PushResponse(200, "", {{"etag", "\"p1\""}});
  transport_->PushResponse(204, "");
  PutObjectOptions options;
  options.content_type = "application/gzip";
  auto upload = s3->CreateMultipartUpload("bkt", "k", options);
  ASSERT_TRUE(upload.ok()) << upload.error().ToString();
  EXPECT_EQ(*upload, "up/1+x");
  const std::string path = dir_ + "/part";
  WriteFile(path, std::string(100, 'x'));
  auto etag = s3->UploadPart("bkt", "k", *upload, 7, FileRange{path, 10, 50});
  ASSERT_TRUE(etag.ok());
  EXPECT_EQ(*etag, "\"p1\"");
  ASSERT_TRUE(s3->AbortMultipartUpload("bkt", "k", *upload).ok());

  auto requests = transport_->requests();
  const SplitUrl create = Split(requests[0].url);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(create.path, "/bkt/k");
  EXPECT_EQ(create.raw_query, "uploads=");
  EXPECT_EQ(HeaderOf(requests[0], "content-type"), "application/gzip");

  const SplitUrl part = Split(requests[1].url);
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(QueryValue(part, "partNumber"), "7");
  EXPECT_EQ(QueryValue(part, "uploadId"), "up/1+x");
  EXPECT_NE(part.raw_query.find("uploadId=up%2F1%2Bx"), std::string::npos);
  ASSERT_TRUE(requests[1].body_file.has_value());
  EXPECT_EQ(requests[1].body_file->offset, 10u);
  EXPECT_EQ(requests[1].body_file->length, 50u);
  EXPECT_EQ(HeaderOf(requests[1], "content-length"), "50");
  EXPECT_EQ(HeaderOf(requests[1], "x-amz-content-sha256"), Sha256Hex(std::string(50, 'x')));

  const SplitUrl abort = Split(requests[2].url);
  EXPECT_EQ(requests[2].method, "DELETE");
  EXPECT_EQ(QueryValue(abort, "uploadId"), "up/1+x");
}

const char kCompleteOk[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<CompleteMultipartUploadResult><Location>http://x/bkt/k</Location><Bucket>bkt</Bucket>"
    "<Key>k</Key><ETag>\"3858f62230ac3c915f300c664312c11f-2\"</ETag>"
    "</CompleteMultipartUploadResult>";

TEST_F(S3ClientTest, CompleteMultipartUploadSendsPartsInAscendingOrder) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, kCompleteOk);
  auto etag = s3->CompleteMultipartUpload("bkt", "k", "up1", {{2, "\"e2\""}, {1, "\"e1\""}});
  ASSERT_TRUE(etag.ok()) << etag.error().ToString();
  EXPECT_EQ(*etag, "\"3858f62230ac3c915f300c664312c11f-2\"");
  const HttpRequest request = transport_->requests().at(0);
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(Split(request.url).raw_query, "uploadId=up1");
  auto doc = ParseXml(request.body);
  ASSERT_TRUE(doc.ok());
  auto parts = doc->Children("Part");
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0]->ChildText("PartNumber"), "1");
  EXPECT_EQ(parts[0]->ChildText("ETag"), "\"e1\"");
  EXPECT_EQ(parts[1]->ChildText("PartNumber"), "2");
}

TEST_F(S3ClientTest, CompleteMultipartUploadRetriesAnErrorInsideA200) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, "\n\n  " + ErrorXml("InternalError", "We encountered an error"));
  transport_->PushResponse(200, kCompleteOk);
  auto etag = s3->CompleteMultipartUpload("bkt", "k", "up1", {{1, "\"e1\""}});
  ASSERT_TRUE(etag.ok()) << etag.error().ToString();
  EXPECT_EQ(transport_->request_count(), 2u);
  EXPECT_EQ(clock_.sleeps().size(), 1u);
}

TEST_F(S3ClientTest, CompleteMultipartUploadFailsOnANonRetryableErrorInsideA200) {
  auto s3 = PathStyle();
  transport_->PushResponse(200, ErrorXml("InvalidPart", "One or more parts could not be found"));
  auto etag = s3->CompleteMultipartUpload("bkt", "k", "up1", {{1, "\"e1\""}});
  ASSERT_FALSE(etag.ok());
  EXPECT_EQ(etag.error().code, "InvalidPart");
  EXPECT_EQ(etag.error().operation, "CompleteMultipartUpload");
  EXPECT_EQ(etag.error().request_id, "REQ1");
  EXPECT_EQ(transport_->request_count(), 1u);
}

TEST_F(S3ClientTest, CompleteMultipartUploadGivesUpAfterMaxAttempts) {
  auto s3 = PathStyle();
  transport_->SetFallback(
      [](const HttpRequest& r) { return Deliver(r, Response(200, ErrorXml("InternalError"))); });
  auto etag = s3->CompleteMultipartUpload("bkt", "k", "up1", {{1, "\"e1\""}});
  ASSERT_FALSE(etag.ok());
  EXPECT_EQ(etag.error().code, "InternalError");
  EXPECT_EQ(transport_->request_count(), 3u);
}

// A scripted multipart server: records parts, answers Create/Complete/Abort, and fails the
// part numbers it is told to.
struct MultipartServer {
  explicit MultipartServer(std::set<int> failing_parts = {})
      : failing_parts(std::move(failing_parts)) {}

  Result<HttpResponse> operator()(const HttpRequest& request) {
    const SplitUrl url = Split(request.url);
    std::lock_guard<std::mutex> lock(mu);
    if (request.method == "POST" && url.query.count("uploads") == 1) {
      return Response(200,
                      "<InitiateMultipartUploadResult><UploadId>U1</UploadId>"
                      "</InitiateMultipartUploadResult>");
    }
    if (request.method == "PUT" && url.query.count("partNumber") == 1) {
      const int number = std::stoi(QueryValue(url, "partNumber"));
      if (failing_parts.count(number) != 0) return Response(400, ErrorXml("InvalidArgument"));
      parts[number] = *request.body_file;
      return Response(200, "", {{"etag", "\"etag-" + std::to_string(number) + "\""}});
    }
    if (request.method == "POST" && url.query.count("uploadId") == 1) {
      ++completes;
      complete_body = request.body;
      return Response(200, kCompleteOk);
    }
    if (request.method == "DELETE" && url.query.count("uploadId") == 1) {
      ++aborts;
      return Response(204);
    }
    if (request.method == "PUT") {
      ++single_puts;
      return Response(200, "", {{"etag", "\"single\""}});
    }
    return Response(400, ErrorXml("Unexpected"));
  }

  std::mutex mu;
  std::set<int> failing_parts;
  std::map<int, FileRange> parts;
  int completes = 0;
  int aborts = 0;
  int single_puts = 0;
  std::string complete_body;
};

TEST_F(S3ClientTest, UploadFileBelowThresholdUsesOnePut) {
  auto s3 = MakeClient(kAwsEndpoint, false);
  auto server = std::make_shared<MultipartServer>();
  transport_->SetFallback([server](const HttpRequest& r) { return (*server)(r); });
  const std::string path = dir_ + "/small";
  WriteFile(path, "tiny");
  ASSERT_TRUE(s3->UploadFile("bkt", "k", path).ok());
  EXPECT_EQ(server->single_puts, 1);
  EXPECT_TRUE(server->parts.empty());
}

TEST_F(S3ClientTest, UploadFileAboveThresholdUploadsAllPartsAndCompletes) {
  auto s3 = MakeClient(kAwsEndpoint, false);  // https: parts are not hashed, so this is quick
  auto server = std::make_shared<MultipartServer>();
  transport_->SetFallback([server](const HttpRequest& r) { return (*server)(r); });
  const std::string path = dir_ + "/big";
  const std::uint64_t size = 3 * kS3MinPartSize + 123;
  MakeSparseFile(path, size);
  UploadFileOptions options;
  options.multipart_threshold = kS3MinPartSize;
  options.part_size = kS3MinPartSize;
  options.concurrency = 3;
  Status status = s3->UploadFile("bkt", "k", path, options);
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(server->parts.size(), 4u);
  for (int n = 1; n <= 4; ++n) {
    EXPECT_EQ(server->parts[n].offset, (n - 1) * kS3MinPartSize);
    EXPECT_EQ(server->parts[n].length, n < 4 ? kS3MinPartSize : 123u);
  }
  EXPECT_EQ(server->completes, 1);
  EXPECT_EQ(server->aborts, 0);
  auto doc = ParseXml(server->complete_body);
  ASSERT_TRUE(doc.ok());
  auto parts = doc->Children("Part");
  ASSERT_EQ(parts.size(), 4u);
  for (int n = 1; n <= 4; ++n) {
    EXPECT_EQ(parts[n - 1]->ChildText("PartNumber"), std::to_string(n));
    EXPECT_EQ(parts[n - 1]->ChildText("ETag"), "\"etag-" + std::to_string(n) + "\"");
  }
}

TEST_F(S3ClientTest, UploadFileAbortsTheUploadWhenAPartFails) {
  auto s3 = MakeClient(kAwsEndpoint, false);
  auto server = std::make_shared<MultipartServer>(std::set<int>{2});
  transport_->SetFallback([server](const HttpRequest& r) { return (*server)(r); });
  const std::string path = dir_ + "/big";
  MakeSparseFile(path, 3 * kS3MinPartSize);
  UploadFileOptions options;
  options.multipart_threshold = kS3MinPartSize;
  options.part_size = kS3MinPartSize;
  options.concurrency = 1;
  Status status = s3->UploadFile("bkt", "k", path, options);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, "InvalidArgument");
  EXPECT_EQ(status.error().operation, "UploadPart");
  EXPECT_EQ(server->aborts, 1);
  EXPECT_EQ(server->completes, 0);
  EXPECT_EQ(server->parts.count(3), 0u);  // no new part started after the failure
}

TEST_F(S3ClientTest, UploadFileAbortsWhenCompleteFails) {
  auto s3 = MakeClient(kAwsEndpoint, false);
  auto server = std::make_shared<MultipartServer>();
  transport_->SetFallback([server](const HttpRequest& r) -> Result<HttpResponse> {
    const SplitUrl url = Split(r.url);
    if (r.method == "POST" && url.query.count("uploadId") == 1) {
      return Response(200, ErrorXml("EntityTooSmall"));
    }
    return (*server)(r);
  });
  const std::string path = dir_ + "/big";
  MakeSparseFile(path, 2 * kS3MinPartSize);
  UploadFileOptions options;
  options.multipart_threshold = kS3MinPartSize;
  options.part_size = kS3MinPartSize;
  Status status = s3->UploadFile("bkt", "k", path, options);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, "EntityTooSmall");
  EXPECT_EQ(server->aborts, 1);
}

TEST_F(S3ClientTest, UploadFileRejectsPartsBelowFiveMiB) {
  auto s3 = PathStyle();
  const std::string path = dir_ + "/big";
  MakeSparseFile(path, 2 * kS3MinPartSize);
  UploadFileOptions options;
  options.multipart_threshold = kS3MinPartSize;
  options.part_size = kS3MinPartSize - 1;
  Status status = s3->UploadFile("bkt", "k", path, options);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(S3ClientTest, UploadFileStopsAndAbortsWhenCancelled) {
  auto s3 = MakeClient(kAwsEndpoint, false);
  StopSource stop;
  auto server = std::make_shared<MultipartServer>();
  transport_->SetFallback([server, &stop](const HttpRequest& r) {
    auto response = (*server)(r);
    if (Split(r.url).query.count("partNumber") == 1) stop.Request();  // after the first part
    return response;
  });
  const std::string path = dir_ + "/big";
  MakeSparseFile(path, 3 * kS3MinPartSize);
  UploadFileOptions options;
  options.multipart_threshold = kS3MinPartSize;
  options.part_size = kS3MinPartSize;
  options.concurrency = 1;
  options.stop = &stop;
  Status status = s3->UploadFile("bkt", "k", path, options);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().category, ErrorCategory::kCancelled);
  EXPECT_EQ(server->parts.size(), 1u);
  EXPECT_EQ(server->aborts, 1);
}

TEST_F(S3ClientTest, DownloadFileFetchesLargeObjectsAsRangedGetsOfOneVersion) {
  auto s3 = PathStyle();
  const std::string object = "0123456789abcdefghijklmnopqrstuvwxyz";  // 36 bytes
  transport_->SetFallback([&object](const HttpRequest& r) -> Result<HttpResponse> {
    if (r.method == "HEAD") {
      return Response(200, "", {{"content-length", "36"}, {"etag", "\"v1\""}});
    }
    auto range = FindHeader(r.headers, "range");
    if (!range || FindHeader(r.headers, "if-match").value_or("") != "\"v1\"") {
      return Response(400, ErrorXml("Unexpected"));
    }
    unsigned long long first = 0, last = 0;
    std::sscanf(range->c_str(), "bytes=%llu-%llu", &first, &last);
    return Deliver(r, Response(206, object.substr(first, last - first + 1)));
  });
  DownloadFileOptions options;
  options.multipart_threshold = 10;
  options.part_size = 10;
  options.concurrency = 2;
  const std::string target = dir_ + "/download";
  Status status = s3->DownloadFile("bkt", "k", target, options);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(ReadFile(target), object);
  EXPECT_EQ(transport_->request_count(), 5u);  // HEAD + 4 ranges
}

TEST_F(S3ClientTest, DownloadFileLeavesNothingWhenAPartFails) {
  auto s3 = PathStyle();
  transport_->SetFallback([](const HttpRequest& r) -> Result<HttpResponse> {
    if (r.method == "HEAD")
      return Response(200, "", {{"content-length", "30"}, {"etag", "\"v1\""}});
    if (FindHeader(r.headers, "range").value_or("") == "bytes=10-19") {
      return Response(412, ErrorXml("PreconditionFailed"));
    }
    return Deliver(r, Response(206, std::string(10, 'x')));
  });
  DownloadFileOptions options;
  options.multipart_threshold = 10;
  options.part_size = 10;
  Status status = s3->DownloadFile("bkt", "k", dir_ + "/download", options);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(status.error().IsConditionFailed());
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(S3ClientTest, EmptyKeysAndBucketsAreRejectedBeforeSending) {
  auto s3 = PathStyle();
  EXPECT_EQ(s3->GetObject("bkt", "").error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(s3->PutObject("", "k", "x").error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(transport_->request_count(), 0u);
}

}  // namespace
}  // namespace spotgrid
