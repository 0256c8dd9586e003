// Amazon S3 (REST-XML): the object store spotgrid keeps inputs, outputs and
// logs in.
//
// `S3` is what product logic depends on (so tests can substitute an in-memory
// fake); `S3Client` speaks the wire protocol over AwsClient, which signs every
// request (with a signed x-amz-content-sha256), retries and classifies errors.
//
// Addressing: path-style (`/<bucket>/<key>` on the endpoint) whenever the
// endpoint is configured (AWS_ENDPOINT_URL_S3: emulators, MinIO), and for
// bucket names that are not valid DNS labels (dots, upper case); otherwise
// virtual-hosted (`<bucket>.s3.<region>.amazonaws.com`). Keys are sent exactly
// as given: percent-encoded once with '/' kept, never normalised, so spaces,
// non-ASCII, "..", "//" and a leading '/' all survive.
//
// Large files stream from and to disk (FileRange / response files); nothing
// here holds a whole object in memory unless the caller asked for it in memory.
//
// Thread-safety: S3Client is safe to use from any number of threads; UploadFile
// and DownloadFile run their parts on threads of their own and return when all
// have finished.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

// S3 limits (User Guide "Multipart upload limits").
inline constexpr std::uint64_t kS3MinPartSize = std::uint64_t{5} << 20;  // all but the last part
inline constexpr std::uint64_t kS3MaxPartSize = std::uint64_t{5} << 30;
inline constexpr std::uint64_t kS3MaxSinglePutSize = std::uint64_t{5} << 30;
inline constexpr int kS3MaxParts = 10000;
inline constexpr std::size_t kS3MaxDeleteKeys = 1000;  // per DeleteObjects request

// Object-level attributes set when an object is written (PutObject,
// CreateMultipartUpload).
struct PutObjectOptions {
  std::string content_type;  // empty: not sent (S3 stores binary/octet-stream)
  // User metadata, sent as x-amz-meta-<name>. Names are case-insensitive on S3
  // (it lower-cases them); values must be printable ASCII to survive HTTP
  // headers unchanged.
  std::map<std::string, std::string> metadata;
};

// An inclusive byte range, as in `Range: bytes=first-last`.
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
};

// What HeadObject returns.
struct S3ObjectInfo {
  std::uint64_t size = 0;
  std::string etag;           // with its quotes, exactly as S3 sent it
  std::string last_modified;  // the Last-Modified header (RFC 1123 date)
  std::string content_type;
  std::map<std::string, std::string> metadata;  // x-amz-meta-*: lower-case name without prefix
};

struct S3ListedObject {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;
  std::string last_modified;  // ISO 8601 as listed
};

struct ListObjectsOptions {
  std::string prefix;
  std::string delimiter;    // "/" groups keys below the next '/' into common_prefixes
  std::string start_after;  // list keys strictly after this one (first page only)
  int max_keys = 1000;      // per page; S3 caps a page at 1,000 anyway
  // Raised by shutdown or a drain: the page in flight ends at once with a kCancelled error.
  const StopSource* stop = nullptr;
};

// One ListObjectsV2 page.
struct ListObjectsPage {
  std::vector<S3ListedObject> objects;
  std::vector<std::string> common_prefixes;
  bool is_truncated = false;
  std::string next_continuation_token;  // pass back to get the next page
};

// Every page of a listing, concatenated.
struct ListObjectsResult {
  std::vector<S3ListedObject> objects;
  std::vector<std::string> common_prefixes;
};

struct S3DeleteError {
  std::string key;
  std::string code;
  std::string message;
};

// DeleteObjects answers 200 even when single keys failed: check `failed`.
struct DeleteObjectsResult {
  std::vector<S3DeleteError> failed;  // keys S3 refused (after retrying retryable ones)
  bool ok() const { return failed.empty(); }
};

struct CompletedPart {
  int part_number = 0;
  std::string etag;  // with its quotes, as UploadPart returned it
};

struct UploadFileOptions {
  PutObjectOptions object;
  // Files smaller than this go up in one PUT; larger ones as a multipart
  // upload. Never more than 5 GiB (the single PUT limit).
  std::uint64_t multipart_threshold = std::uint64_t{64} << 20;
  // At least 5 MiB; raised automatically when the file would need more than
  // 10,000 parts.
  std::uint64_t part_size = std::uint64_t{8} << 20;
  int concurrency = 8;  // parts in flight at once
  // When raised, no new part is started and the upload is aborted (Error
  // kCancelled).
  const StopSource* stop = nullptr;
};

struct DownloadFileOptions {
  // Objects larger than this are fetched as parallel ranged GETs of `part_size`
  // bytes each; each part is held in memory while in flight, so memory use is
  // part_size * concurrency.
  std::uint64_t multipart_threshold = std::uint64_t{64} << 20;
  std::uint64_t part_size = std::uint64_t{8} << 20;
  int concurrency = 8;
  const StopSource* stop = nullptr;
};

// The object-store operations spotgrid uses. Every method reports failures as
// values; a missing bucket, key or upload is ErrorCategory::kNotFound.
class S3 {
 public:
  virtual ~S3() = default;

  virtual Status CreateBucket(const std::string& bucket) = 0;
  // Creates the bucket unless it already exists and is accessible to us.
  // Idempotent.
  virtual Status EnsureBucket(const std::string& bucket) = 0;
  virtual Status HeadBucket(const std::string& bucket) = 0;

  // Returns the new object's ETag.
  virtual Result<std::string> PutObject(const std::string& bucket, const std::string& key,
                                        std::string_view body,
                                        const PutObjectOptions& options = {}) = 0;
  // Streams the whole file (at most 5 GiB; use UploadFile for anything that may
  // be larger).
  virtual Result<std::string> PutObjectFromFile(const std::string& bucket, const std::string& key,
                                                const std::string& path,
                                                const PutObjectOptions& options = {}) = 0;

  virtual Result<std::string> GetObject(const std::string& bucket, const std::string& key,
                                        std::optional<ByteRange> range = std::nullopt) = 0;
  // Streams to a temporary file beside `path` and renames it into place on
  // success, so a failed download never leaves a partial file at `path`.
  virtual Status GetObjectToFile(const std::string& bucket, const std::string& key,
                                 const std::string& path,
                                 std::optional<ByteRange> range = std::nullopt) = 0;

  virtual Result<S3ObjectInfo> HeadObject(const std::string& bucket, const std::string& key) = 0;

  virtual Result<ListObjectsPage> ListObjectsV2Page(const std::string& bucket,
                                                    const ListObjectsOptions& options,
                                                    const std::string& continuation_token) = 0;
  // Follows continuation tokens (through ListObjectsV2Page) until the listing is complete;
  // a token that does not advance is an error rather than an endless loop.
  Result<ListObjectsResult> ListObjects(const std::string& bucket,
                                        const ListObjectsOptions& options = {});

  // Any number of keys (split into requests of 1,000). Missing keys count as
  // deleted.
  virtual Result<DeleteObjectsResult> DeleteObjects(const std::string& bucket,
                                                    const std::vector<std::string>& keys) = 0;
  // Succeeds also when the key does not exist.
  virtual Status DeleteObject(const std::string& bucket, const std::string& key) = 0;

  // Multipart upload primitives; UploadFile drives them.
  virtual Result<std::string> CreateMultipartUpload(const std::string& bucket,
                                                    const std::string& key,
                                                    const PutObjectOptions& options = {}) = 0;
  // Returns the part's ETag.
  virtual Result<std::string> UploadPart(const std::string& bucket, const std::string& key,
                                         const std::string& upload_id, int part_number,
                                         const FileRange& data) = 0;
  // `parts` in any order; sent ascending. Returns the object's ETag.
  virtual Result<std::string> CompleteMultipartUpload(const std::string& bucket,
                                                      const std::string& key,
                                                      const std::string& upload_id,
                                                      std::vector<CompletedPart> parts) = 0;
  virtual Status AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                      const std::string& upload_id) = 0;

  // Uploads a local file of any size: one PUT below the threshold, otherwise a
  // parallel multipart upload that is aborted if any step fails.
  virtual Status UploadFile(const std::string& bucket, const std::string& key,
                            const std::string& path, const UploadFileOptions& options = {}) = 0;
  // Downloads an object of any size to `path` (atomically, as GetObjectToFile).
  virtual Status DownloadFile(const std::string& bucket, const std::string& key,
                              const std::string& path, const DownloadFileOptions& options = {}) = 0;
};

class S3Client final : public S3 {
 public:
  static Result<std::shared_ptr<S3Client>> Create(std::shared_ptr<AwsContext> context);
  explicit S3Client(std::shared_ptr<AwsClient> client);

  Status CreateBucket(const std::string& bucket) override;
  Status EnsureBucket(const std::string& bucket) override;
  Status HeadBucket(const std::string& bucket) override;
  Result<std::string> PutObject(const std::string& bucket, const std::string& key,
                                std::string_view body,
                                const PutObjectOptions& options = {}) override;
  Result<std::string> PutObjectFromFile(const std::string& bucket, const std::string& key,
                                        const std::string& path,
                                        const PutObjectOptions& options = {}) override;
  Result<std::string> GetObject(const std::string& bucket, const std::string& key,
                                std::optional<ByteRange> range = std::nullopt) override;
  Status GetObjectToFile(const std::string& bucket, const std::string& key, const std::string& path,
                         std::optional<ByteRange> range = std::nullopt) override;
  Result<S3ObjectInfo> HeadObject(const std::string& bucket, const std::string& key) override;
  Result<ListObjectsPage> ListObjectsV2Page(const std::string& bucket,
                                            const ListObjectsOptions& options,
                                            const std::string& continuation_token) override;
  Result<DeleteObjectsResult> DeleteObjects(const std::string& bucket,
                                            const std::vector<std::string>& keys) override;
  Status DeleteObject(const std::string& bucket, const std::string& key) override;
  Result<std::string> CreateMultipartUpload(const std::string& bucket, const std::string& key,
                                            const PutObjectOptions& options = {}) override;
  Result<std::string> UploadPart(const std::string& bucket, const std::string& key,
                                 const std::string& upload_id, int part_number,
                                 const FileRange& data) override;
  Result<std::string> CompleteMultipartUpload(const std::string& bucket, const std::string& key,
                                              const std::string& upload_id,
                                              std::vector<CompletedPart> parts) override;
  Status AbortMultipartUpload(const std::string& bucket, const std::string& key,
                              const std::string& upload_id) override;
  Status UploadFile(const std::string& bucket, const std::string& key, const std::string& path,
                    const UploadFileOptions& options = {}) override;
  Status DownloadFile(const std::string& bucket, const std::string& key, const std::string& path,
                      const DownloadFileOptions& options = {}) override;

  // True when requests for `bucket` go path-style (exposed for tests).
  bool UsesPathStyle(const std::string& bucket) const;

 private:
  // Fills path/host_override for an object (or, with an empty key, the bucket
  // itself).
  AwsRequest MakeRequest(std::string operation, std::string method, const std::string& bucket,
                         const std::string& key) const;
  Result<HttpResponse> Send(const AwsRequest& request);
  Result<DeleteObjectsResult> DeleteObjectsBatch(const std::string& bucket,
                                                 const std::vector<std::string>& keys);
  Result<std::string> GetObjectPart(const std::string& bucket, const std::string& key,
                                    ByteRange range, const std::string& if_match);
  Status UploadMultipart(const std::string& bucket, const std::string& key, const std::string& path,
                         std::uint64_t size, const UploadFileOptions& options);

  std::shared_ptr<AwsClient> client_;
};

// The Content-MD5 header value: base64 of the binary MD5 of `data` (exposed for
// tests).
std::string ContentMd5(std::string_view data);

}  // namespace spotgrid
