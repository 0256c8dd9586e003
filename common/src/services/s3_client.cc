// S3Client: S3's REST-XML API over AwsClient (see s3_client.h).
#include "spotgrid/services/s3_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "core/strings.h"
#include "spotgrid/aws/retry.h"
#include "spotgrid/aws/uri.h"
#include "spotgrid/aws/xml.h"
#include "spotgrid/core/digest.h"
#include "spotgrid/core/file_io.h"
#include "spotgrid/core/log.h"
#include "spotgrid/core/parallel_for.h"

namespace spotgrid {

namespace {

constexpr std::string_view kS3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr std::string_view kUsEast1 = "us-east-1";

// Virtual-hosted addressing needs the bucket to be one valid DNS label: with
// dots, TLS wildcard certificates (*.s3.<region>.amazonaws.com) no longer
// match, and upper case or underscores (legacy names) are not valid host names
// at all.
bool IsVirtualHostable(std::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

// encoding-type=url answers are form-encoded: '+' is a space, a real '+' comes
// as %2B.
std::string DecodeListedName(std::string_view text) {
  std::string plus_as_space(text);
  std::replace(plus_as_space.begin(), plus_as_space.end(), '+', ' ');
  return UriDecode(plus_as_space);
}

std::optional<std::uint64_t> ParseUint(std::string_view text) {
  std::uint64_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

std::string RangeHeader(const ByteRange& range) {
  return "bytes=" + std::to_string(range.first) + "-" + std::to_string(range.last);
}

void AddObjectHeaders(const PutObjectOptions& options, Headers& headers) {
  if (!options.content_type.empty()) headers.emplace_back("content-type", options.content_type);
  for (const auto& [name, value] : options.metadata) {
    headers.emplace_back("x-amz-meta-" + Lower(name), value);
  }
}

Error MalformedResponse(std::string_view operation, const HttpResponse& response,
                        std::string what) {
  return MalformedResponseError(kS3Service, operation, std::move(what), response);
}

Status CheckBucketAndKey(const std::string& bucket, const std::string& key) {
  if (bucket.empty()) return Error::InvalidInput("S3: bucket name is empty");
  if (key.empty()) return Error::InvalidInput("S3: object key is empty");
  return Status::Ok();
}

std::string ErrnoText(int err) { return std::strerror(err); }

Result<std::uint64_t> FileSize(const std::string& path, const std::string& op) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Error::Io(op, "cannot stat " + path + ": " + ErrnoText(errno));
  }
  if (!S_ISREG(st.st_mode)) return Error::Io(op, path + " is not a regular file");
  return static_cast<std::uint64_t>(st.st_size);
}

// Runs `work(i)` for i in [0, count) on up to `concurrency` threads; no new item starts after
// the first failure or once `stop` is raised. Returns the first failure.
Status RunParallel(std::size_t count, int concurrency, const StopSource* stop,
                   const std::string& operation, const std::function<Status(std::size_t)>& work) {
  return ParallelForStatus(count, concurrency, OnError::kStopStarting,
                           [&](std::size_t i) -> Status {
                             if (stop != nullptr && stop->Requested()) {
                               return Error::Cancelled(operation);
                             }
                             return work(i);
                           });
}

}  // namespace

std::string ContentMd5(std::string_view data) { return Base64Encode(Md5(data)); }

Result<std::shared_ptr<S3Client>> S3Client::Create(std::shared_ptr<AwsContext> context) {
  auto client = AwsClient::Create(std::move(context), kS3Service);
  if (!client.ok()) return client.error();
  return std::make_shared<S3Client>(std::move(client.value()));
}

S3Client::S3Client(std::shared_ptr<AwsClient> client) : client_(std::move(client)) {}

bool S3Client::UsesPathStyle(const std::string& bucket) const {
  return client_->endpoint().s3_path_style || !IsVirtualHostable(bucket);
}

AwsRequest S3Client::MakeRequest(std::string operation, std::string method,
                                 const std::string& bucket, const std::string& key) const {
  AwsRequest request;
  request.operation = std::move(operation);
  request.method = std::move(method);
  // The key goes into the path verbatim: the core percent-encodes it once
  // (keeping '/') and S3 signing never normalises it.
  if (UsesPathStyle(bucket)) {
    request.path = "/" + bucket;
    if (!key.empty()) request.path += "/" + key;
  } else {
    request.host_override = bucket + "." + client_->endpoint().url.host;
    request.path = "/" + key;
  }
  return request;
}

Result<HttpResponse> S3Client::Send(const AwsRequest& request) { return client_->Send(request); }

Status S3Client::CreateBucket(const std::string& bucket) {
  if (bucket.empty()) return Error::InvalidInput("S3: bucket name is empty");
  AwsRequest request = MakeRequest("CreateBucket", "PUT", bucket, "");
  const std::string& region = client_->context().region();
  // us-east-1 is the default location and S3 rejects it as an explicit
  // constraint.
  if (region != kUsEast1) {
    request.body = "<CreateBucketConfiguration xmlns=\"" + std::string(kS3Namespace) +
                   "\"><LocationConstraint>" + XmlEscape(region, XmlEscapeFor::kText) +
                   "</LocationConstraint></CreateBucketConfiguration>";
    request.headers.emplace_back("content-type", "application/xml");
  }
  auto response = Send(request);
  if (!response.ok()) return response.error();
  return Status::Ok();
}

Status S3Client::EnsureBucket(const std::string& bucket) {
  Status head = HeadBucket(bucket);
  if (head.ok() || !head.error().IsNotFound()) return head;
  Status created = CreateBucket(bucket);
  if (created.ok() || created.error().code == "BucketAlreadyOwnedByYou") return Status::Ok();
  // Someone created it between our HEAD and PUT (another worker ensuring the
  // same bucket): what matters is that it exists and we may use it.
  if (created.error().code == "BucketAlreadyExists" || created.error().code == "OperationAborted") {
    if (HeadBucket(bucket).ok()) return Status::Ok();
  }
  return created;
}

Status S3Client::HeadBucket(const std::string& bucket) {
  if (bucket.empty()) return Error::InvalidInput("S3: bucket name is empty");
  auto response = Send(MakeRequest("HeadBucket", "HEAD", bucket, ""));
  if (!response.ok()) return response.error();
  return Status::Ok();
}

Result<std::string> S3Client::PutObject(const std::string& bucket, const std::string& key,
                                        std::string_view body, const PutObjectOptions& options) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s.error();
  AwsRequest request = MakeRequest("PutObject", "PUT", bucket, key);
  request.body.assign(body.data(), body.size());
  request.headers.emplace_back("content-length", std::to_string(body.size()));
  AddObjectHeaders(options, request.headers);
  auto response = Send(request);
  if (!response.ok()) return response.error();
  return response->Header("etag").value_or("");
}

Result<std::string> S3Client::PutObjectFromFile(const std::string& bucket, const std::string& key,
                                                const std::string& path,
                                                const PutObjectOptions& options) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s.error();
  auto size = FileSize(path, "PutObject");
  if (!size.ok()) return size.error();
  if (*size > kS3MaxSinglePutSize) {
    return Error::InvalidInput("S3 PutObject: " + path +
                               " is larger than 5 GiB; use UploadFile (multipart)");
  }
  AwsRequest request = MakeRequest("PutObject", "PUT", bucket, key);
  request.body_file = FileRange{path, 0, *size};
  request.headers.emplace_back("content-length", std::to_string(*size));
  AddObjectHeaders(options, request.headers);
  auto response = Send(request);
  if (!response.ok()) return response.error();
  return response->Header("etag").value_or("");
}

Result<std::string> S3Client::GetObject(const std::string& bucket, const std::string& key,
                                        std::optional<ByteRange> range) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s.error();
  if (range && range->last < range->first) {
    return Error::InvalidInput("S3 GetObject: byte range ends before it starts");
  }
  AwsRequest request = MakeRequest("GetObject", "GET", bucket, key);
  if (range) request.headers.emplace_back("range", RangeHeader(*range));
  auto response = Send(request);
  if (!response.ok()) return response.error();
  if (range && response->status != 206) {
    return MalformedResponse(request.operation, *response,
                             "asked for a byte range but got the whole object");
  }
  return std::move(response->body);
}

Result<std::string> S3Client::GetObjectPart(const std::string& bucket, const std::string& key,
                                            ByteRange range, const std::string& if_match) {
  AwsRequest request = MakeRequest("GetObject", "GET", bucket, key);
  request.headers.emplace_back("range", RangeHeader(range));
  // Parts of one download must come from one version of the object: if it is
  // replaced mid-download, S3 answers 412 instead of handing us a mix of two
  // objects.
  if (!if_match.empty()) request.headers.emplace_back("if-match", if_match);
  auto response = Send(request);
  if (!response.ok()) return response.error();
  const std::uint64_t expected = range.last - range.first + 1;
  if (response->status != 206 || response->body.size() != expected) {
    return MalformedResponse(request.operation, *response,
                             "ranged GET returned " + std::to_string(response->body.size()) +
                                 " bytes, expected " + std::to_string(expected));
  }
  return std::move(response->body);
}

Status S3Client::GetObjectToFile(const std::string& bucket, const std::string& key,
                                 const std::string& path, std::optional<ByteRange> range) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s;
  if (range && range->last < range->first) {
    return Error::InvalidInput("S3 GetObject: byte range ends before it starts");
  }
  auto temp = CreateTemporaryBeside(path, "GetObject");
  if (!temp.ok()) return temp.error();
  AwsRequest request = MakeRequest("GetObject", "GET", bucket, key);
  if (range) request.headers.emplace_back("range", RangeHeader(*range));
  request.response_file = *temp;
  auto response = Send(request);
  if (!response.ok()) {
    std::remove(temp->c_str());
    return response.error();
  }
  if (range && response->status != 206) {
    std::remove(temp->c_str());
    return MalformedResponse(request.operation, *response,
                             "asked for a byte range but got the whole object");
  }
  return RenameInto(*temp, path, request.operation);
}

Result<S3ObjectInfo> S3Client::HeadObject(const std::string& bucket, const std::string& key) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s.error();
  auto response = Send(MakeRequest("HeadObject", "HEAD", bucket, key));
  if (!response.ok()) return response.error();
  S3ObjectInfo info;
  if (auto length = response->Header("content-length")) {
    auto parsed = ParseUint(*length);
    if (!parsed) {
      return MalformedResponse("HeadObject", *response, "bad Content-Length: " + *length);
    }
    info.size = *parsed;
  }
  info.etag = response->Header("etag").value_or("");
  info.last_modified = response->Header("last-modified").value_or("");
  info.content_type = response->Header("content-type").value_or("");
  constexpr std::string_view kMetaPrefix = "x-amz-meta-";
  for (const auto& [name, value] : response->headers) {
    if (name.size() > kMetaPrefix.size() && name.compare(0, kMetaPrefix.size(), kMetaPrefix) == 0) {
      info.metadata[name.substr(kMetaPrefix.size())] = value;
    }
  }
  return info;
}

Result<ListObjectsPage> S3Client::ListObjectsV2Page(const std::string& bucket,
                                                    const ListObjectsOptions& options,
                                                    const std::string& continuation_token) {
  if (bucket.empty()) return Error::InvalidInput("S3: bucket name is empty");
  if (options.max_keys < 1 || options.max_keys > 1000) {
    return Error::InvalidInput("S3 ListObjectsV2: max_keys must be between 1 and 1000");
  }
  AwsRequest request = MakeRequest("ListObjectsV2", "GET", bucket, "");
  request.query.emplace_back("list-type", "2");
  request.stop = options.stop;
  if (!continuation_token.empty()) {
    request.query.emplace_back("continuation-token", continuation_token);
  }
  if (!options.delimiter.empty()) request.query.emplace_back("delimiter", options.delimiter);
  // Keys may hold characters XML 1.0 cannot carry (control characters); url
  // encoding makes every key representable.
  request.query.emplace_back("encoding-type", "url");
  request.query.emplace_back("max-keys", std::to_string(options.max_keys));
  if (!options.prefix.empty()) request.query.emplace_back("prefix", options.prefix);
  if (!options.start_after.empty()) {
    request.query.emplace_back("start-after", options.start_after);
  }
  auto response = Send(request);
  if (!response.ok()) return response.error();
  auto doc = ParseXml(response->body);
  if (!doc.ok()) {
    return MalformedResponse(request.operation, *response,
                             "unparseable ListBucketResult: " + doc.error().message);
  }
  const XmlElement* root = doc->Find("ListBucketResult");
  if (root == nullptr) {
    return MalformedResponse(request.operation, *response, "no ListBucketResult in response");
  }
  // Decode only when S3 says it encoded (as botocore does): a server that
  // ignores encoding-type sends keys as they are, and decoding those would
  // corrupt '+' and '%'.
  const bool encoded = root->ChildText("EncodingType") == "url";
  auto name = [encoded](const std::string& text) {
    return encoded ? DecodeListedName(text) : text;
  };
  ListObjectsPage page;
  for (const XmlElement* contents : root->Children("Contents")) {
    S3ListedObject object;
    object.key = name(contents->ChildText("Key"));
    object.etag = contents->ChildText("ETag");
    object.last_modified = contents->ChildText("LastModified");
    auto size = ParseUint(contents->ChildText("Size"));
    if (!size) {
      return MalformedResponse(request.operation, *response, "bad Size for key " + object.key);
    }
    object.size = *size;
    page.objects.push_back(std::move(object));
  }
  for (const XmlElement* prefix : root->Children("CommonPrefixes")) {
    page.common_prefixes.push_back(name(prefix->ChildText("Prefix")));
  }
  page.is_truncated = root->ChildText("IsTruncated") == "true";
  page.next_continuation_token = root->ChildText("NextContinuationToken");
  if (page.is_truncated && page.next_continuation_token.empty()) {
    return MalformedResponse(request.operation, *response,
                             "IsTruncated without NextContinuationToken");
  }
  return page;
}

Result<ListObjectsResult> S3::ListObjects(const std::string& bucket,
                                          const ListObjectsOptions& options) {
  ListObjectsResult result;
  std::string token;
  while (true) {
    auto page = ListObjectsV2Page(bucket, options, token);
    if (!page.ok()) return page.error();
    for (auto& object : page->objects) result.objects.push_back(std::move(object));
    for (auto& prefix : page->common_prefixes) result.common_prefixes.push_back(std::move(prefix));
    if (!page->is_truncated) break;
    if (page->next_continuation_token == token) {
      // A server handing back the same token would make us loop forever.
      Error e = Error::InvalidInput("S3 ListObjectsV2: continuation token did not advance");
      e.service = "S3";
      e.operation = "ListObjectsV2";
      return e;
    }
    token = std::move(page->next_continuation_token);
  }
  return result;
}

Result<DeleteObjectsResult> S3Client::DeleteObjectsBatch(const std::string& bucket,
                                                         const std::vector<std::string>& keys) {
  std::string body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"" +
                     std::string(kS3Namespace) + "\"><Quiet>true</Quiet>";
  for (const auto& key : keys)
    body += "<Object><Key>" + XmlEscape(key, XmlEscapeFor::kText) + "</Key></Object>";
  body += "</Delete>";
  AwsRequest request = MakeRequest("DeleteObjects", "POST", bucket, "");
  request.query.emplace_back("delete", "");
  request.headers.emplace_back("content-type", "application/xml");
  // S3 refuses DeleteObjects without an integrity header.
  request.headers.emplace_back("content-md5", ContentMd5(body));
  request.body = std::move(body);
  auto response = Send(request);
  if (!response.ok()) return response.error();
  auto doc = ParseXml(response->body);
  if (!doc.ok()) {
    return MalformedResponse(request.operation, *response,
                             "unparseable DeleteResult: " + doc.error().message);
  }
  const XmlElement* root = doc->Find("DeleteResult");
  if (root == nullptr) {
    return MalformedResponse(request.operation, *response, "no DeleteResult in response");
  }
  DeleteObjectsResult result;
  for (const XmlElement* error : root->Children("Error")) {
    result.failed.push_back(
        {error->ChildText("Key"), error->ChildText("Code"), error->ChildText("Message")});
  }
  return result;
}

Result<DeleteObjectsResult> S3Client::DeleteObjects(const std::string& bucket,
                                                    const std::vector<std::string>& keys) {
  if (bucket.empty()) return Error::InvalidInput("S3: bucket name is empty");
  for (const auto& key : keys) {
    if (key.empty()) return Error::InvalidInput("S3 DeleteObjects: an object key is empty");
  }
  DeleteObjectsResult result;
  RetryPolicy& retry = client_->context().retry();
  const int max_attempts = std::max(1, retry.options().max_attempts);
  for (std::size_t start = 0; start < keys.size(); start += kS3MaxDeleteKeys) {
    const std::size_t end = std::min(keys.size(), start + kS3MaxDeleteKeys);
    std::vector<std::string> pending(keys.begin() + static_cast<std::ptrdiff_t>(start),
                                     keys.begin() + static_cast<std::ptrdiff_t>(end));
    // The request succeeding does not mean every key went: retry only the keys
    // that failed with a retryable code (InternalError, SlowDown), with the
    // core's backoff.
    for (int attempt = 1;; ++attempt) {
      auto batch = DeleteObjectsBatch(bucket, pending);
      if (!batch.ok()) return batch.error();
      std::vector<std::string> retryable;
      std::vector<S3DeleteError> permanent;
      for (auto& failure : batch->failed) {
        const ErrorCategory category = ClassifyAwsError(200, failure.code, failure.message);
        const bool can_retry =
            category == ErrorCategory::kTransient || category == ErrorCategory::kThrottled;
        if (can_retry && attempt < max_attempts) {
          retryable.push_back(failure.key);
        } else {
          permanent.push_back(std::move(failure));
        }
      }
      for (auto& failure : permanent) result.failed.push_back(std::move(failure));
      if (retryable.empty()) break;
      pending = std::move(retryable);
      client_->context().clock().SleepFor(retry.Backoff(attempt));
    }
  }
  return result;
}

Status S3Client::DeleteObject(const std::string& bucket, const std::string& key) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s;
  auto response = Send(MakeRequest("DeleteObject", "DELETE", bucket, key));
  if (!response.ok()) return response.error();
  return Status::Ok();
}

Result<std::string> S3Client::CreateMultipartUpload(const std::string& bucket,
                                                    const std::string& key,
                                                    const PutObjectOptions& options) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s.error();
  AwsRequest request = MakeRequest("CreateMultipartUpload", "POST", bucket, key);
  request.query.emplace_back("uploads", "");
  AddObjectHeaders(options, request.headers);
  auto response = Send(request);
  if (!response.ok()) return response.error();
  auto doc = ParseXml(response->body);
  if (!doc.ok()) {
    return MalformedResponse(request.operation, *response,
                             "unparseable InitiateMultipartUploadResult: " + doc.error().message);
  }
  const XmlElement* root = doc->Find("InitiateMultipartUploadResult");
  std::string upload_id = root != nullptr ? root->ChildText("UploadId") : "";
  if (upload_id.empty()) {
    return MalformedResponse(request.operation, *response, "no UploadId in response");
  }
  return upload_id;
}

Result<std::string> S3Client::UploadPart(const std::string& bucket, const std::string& key,
                                         const std::string& upload_id, int part_number,
                                         const FileRange& data) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s.error();
  if (part_number < 1 || part_number > kS3MaxParts) {
    return Error::InvalidInput("S3 UploadPart: part number must be between 1 and 10000");
  }
  if (upload_id.empty()) return Error::InvalidInput("S3 UploadPart: upload id is empty");
  AwsRequest request = MakeRequest("UploadPart", "PUT", bucket, key);
  request.query.emplace_back("partNumber", std::to_string(part_number));
  request.query.emplace_back("uploadId", upload_id);
  request.body_file = data;
  request.headers.emplace_back("content-length", std::to_string(data.length));
  auto response = Send(request);
  if (!response.ok()) return response.error();
  auto etag = response->Header("etag");
  if (!etag || etag->empty()) {
    return MalformedResponse(request.operation, *response, "no ETag for the uploaded part");
  }
  return *etag;
}

Result<std::string> S3Client::CompleteMultipartUpload(const std::string& bucket,
                                                      const std::string& key,
                                                      const std::string& upload_id,
                                                      std::vector<CompletedPart> parts) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s.error();
  if (parts.empty()) return Error::InvalidInput("S3 CompleteMultipartUpload: no parts");
  std::sort(parts.begin(), parts.end(), [](const CompletedPart& a, const CompletedPart& b) {
    return a.part_number < b.part_number;
  });
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].part_number < 1 || parts[i].part_number > kS3MaxParts ||
        (i > 0 && parts[i].part_number == parts[i - 1].part_number)) {
      return Error::InvalidInput("S3 CompleteMultipartUpload: bad or duplicate part number " +
                                 std::to_string(parts[i].part_number));
    }
  }
  std::string body = "<CompleteMultipartUpload xmlns=\"" + std::string(kS3Namespace) + "\">";
  for (const auto& part : parts) {
    body += "<Part><PartNumber>" + std::to_string(part.part_number) + "</PartNumber><ETag>" +
            XmlEscape(part.etag, XmlEscapeFor::kText) + "</ETag></Part>";
  }
  body += "</CompleteMultipartUpload>";
  AwsRequest request = MakeRequest("CompleteMultipartUpload", "POST", bucket, key);
  request.query.emplace_back("uploadId", upload_id);
  request.headers.emplace_back("content-type", "application/xml");
  request.body = std::move(body);

  // S3 may answer 200, keep the connection alive while it assembles the parts,
  // and then report a failure in the body. AWS: treat that as an error and
  // retry it like a 5xx.
  RetryPolicy& retry = client_->context().retry();
  const int max_attempts = std::max(1, retry.options().max_attempts);
  int last_cost = 0;
  for (int attempt = 1;; ++attempt) {
    auto response = Send(request);
    if (!response.ok()) return response.error();
    std::optional<Error> failure;
    auto doc = ParseXml(response->body);
    if (!doc.ok()) {
      failure =
          MalformedResponse(request.operation, *response,
                            "unparseable CompleteMultipartUploadResult: " + doc.error().message);
    } else if (doc->name == "Error") {
      // An error document with status 200: the same parser as for any error response.
      failure = ParseAwsError(kS3Service, request.operation, *response);
    } else if (const XmlElement* result = doc->Find("CompleteMultipartUploadResult")) {
      if (last_cost > 0) retry.OnSuccess(last_cost);
      return result->ChildText("ETag");
    } else {
      failure = MalformedResponse(request.operation, *response,
                                  "no CompleteMultipartUploadResult in response");
    }
    if (!failure->IsRetryable() || attempt >= max_attempts) return *failure;
    auto cost = retry.AcquireRetry(*failure);
    if (!cost) return *failure;
    last_cost = *cost;
    Logger().warn("S3 CompleteMultipartUpload answered 200 with {}; retrying", failure->code);
    client_->context().clock().SleepFor(retry.Backoff(attempt));
  }
}

Status S3Client::AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                      const std::string& upload_id) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s;
  if (upload_id.empty()) return Error::InvalidInput("S3 AbortMultipartUpload: upload id is empty");
  AwsRequest request = MakeRequest("AbortMultipartUpload", "DELETE", bucket, key);
  request.query.emplace_back("uploadId", upload_id);
  auto response = Send(request);
  if (!response.ok()) return response.error();
  return Status::Ok();
}

Status S3Client::UploadFile(const std::string& bucket, const std::string& key,
                            const std::string& path, const UploadFileOptions& options) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s;
  auto size = FileSize(path, "UploadFile");
  if (!size.ok()) return size.error();
  if (options.stop != nullptr && options.stop->Requested()) return Error::Cancelled("UploadFile");
  const std::uint64_t threshold = std::min(options.multipart_threshold, kS3MaxSinglePutSize);
  if (*size == 0 || *size < threshold) {
    auto etag = PutObjectFromFile(bucket, key, path, options.object);
    return etag.status();
  }
  return UploadMultipart(bucket, key, path, *size, options);
}

Status S3Client::UploadMultipart(const std::string& bucket, const std::string& key,
                                 const std::string& path, std::uint64_t size,
                                 const UploadFileOptions& options) {
  std::uint64_t part_size = options.part_size;
  if (part_size < kS3MinPartSize || part_size > kS3MaxPartSize) {
    return Error::InvalidInput("S3 UploadFile: part size must be between 5 MiB and 5 GiB");
  }
  if ((size + part_size - 1) / part_size > static_cast<std::uint64_t>(kS3MaxParts)) {
    // Grow the parts (to a whole MiB) rather than fail: S3 allows at most
    // 10,000.
    constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
    const std::uint64_t min_size = (size + kS3MaxParts - 1) / kS3MaxParts;
    part_size = (min_size + kMiB - 1) / kMiB * kMiB;
    if (part_size > kS3MaxPartSize) {
      return Error::InvalidInput("S3 UploadFile: " + path + " is too large for S3");
    }
  }
  const std::size_t part_count = static_cast<std::size_t>((size + part_size - 1) / part_size);

  auto upload_id = CreateMultipartUpload(bucket, key, options.object);
  if (!upload_id.ok()) return upload_id.error();

  std::vector<CompletedPart> parts(part_count);
  Status uploaded = RunParallel(
      part_count, options.concurrency, options.stop, "UploadPart", [&](std::size_t i) -> Status {
        const std::uint64_t offset = i * part_size;
        const FileRange range{path, offset, std::min(part_size, size - offset)};
        const int number = static_cast<int>(i) + 1;
        auto etag = UploadPart(bucket, key, *upload_id, number, range);
        if (!etag.ok()) return etag.error();
        parts[i] = CompletedPart{number, std::move(etag.value())};
        return Status::Ok();
      });
  Status result = uploaded;
  if (uploaded.ok()) {
    auto completed = CompleteMultipartUpload(bucket, key, *upload_id, std::move(parts));
    if (completed.ok()) return Status::Ok();
    result = completed.status();
  }
  // Parts of an unfinished upload are stored (and billed) until aborted.
  Status aborted = AbortMultipartUpload(bucket, key, *upload_id);
  if (!aborted.ok()) {
    Logger().warn("S3 UploadFile: aborting upload {} of {}/{} failed: {}", *upload_id, bucket, key,
                  aborted.ToString());
  }
  return result;
}

Status S3Client::DownloadFile(const std::string& bucket, const std::string& key,
                              const std::string& path, const DownloadFileOptions& options) {
  if (Status s = CheckBucketAndKey(bucket, key); !s.ok()) return s;
  if (options.part_size == 0) return Error::InvalidInput("S3 DownloadFile: part size is 0");
  if (options.stop != nullptr && options.stop->Requested()) {
    return Error::Cancelled("DownloadFile");
  }
  auto info = HeadObject(bucket, key);
  if (!info.ok()) return info.error();
  if (info->size < options.multipart_threshold || info->size <= options.part_size) {
    return GetObjectToFile(bucket, key, path);
  }
  auto temp = CreateTemporaryBeside(path, "DownloadFile");
  if (!temp.ok()) return temp.error();
  const int fd = ::open(temp->c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::remove(temp->c_str());
    return Error::Io("DownloadFile", "cannot open " + *temp + ": " + ErrnoText(err));
  }
  const std::uint64_t size = info->size;
  const std::uint64_t part_size = options.part_size;
  const std::size_t part_count = static_cast<std::size_t>((size + part_size - 1) / part_size);
  Status downloaded = RunParallel(
      part_count, options.concurrency, options.stop, "DownloadFile", [&](std::size_t i) -> Status {
        const std::uint64_t first = i * part_size;
        const ByteRange range{first, std::min(size, first + part_size) - 1};
        auto data = GetObjectPart(bucket, key, range, info->etag);
        if (!data.ok()) return data.error();
        std::size_t written = 0;
        while (written < data->size()) {
          const ssize_t n = ::pwrite(fd, data->data() + written, data->size() - written,
                                     static_cast<off_t>(first + written));
          if (n < 0) {
            if (errno == EINTR) continue;
            return Error::Io("DownloadFile", "cannot write " + *temp + ": " + ErrnoText(errno));
          }
          written += static_cast<std::size_t>(n);
        }
        return Status::Ok();
      });
  if (::close(fd) != 0 && downloaded.ok()) {
    downloaded = Error::Io("DownloadFile", "cannot close " + *temp + ": " + ErrnoText(errno));
  }
  if (!downloaded.ok()) {
    std::remove(temp->c_str());
    return downloaded;
  }
  return RenameInto(*temp, path, "DownloadFile");
}

}  // namespace spotgrid
