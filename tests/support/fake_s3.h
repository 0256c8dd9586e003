// An in-memory S3 for tests of the agent: buckets of objects with LastModified stamped from a
// Clock, the whole-object and file operations the agent uses (UploadFile, PutObject, list,
// delete, DownloadFile), and a log of every write so a test can prove that a worker wrote
// nothing after it lost its lease.
//
// Multipart uploads are kept whole: parts are read from their files and concatenated on
// completion. Listing returns keys in byte order, like S3, with LastModified in ISO 8601.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "spotgrid/core/clock.h"
#include "spotgrid/services/s3_client.h"

namespace spotgrid::testing {

class FakeS3 final : public S3 {
 public:
  // LastModified comes from `clock`; the real clock by default, because the directory sync
  // compares it with the mtimes of real files.
  explicit FakeS3(Clock& clock = Clock::System());

  // Test helpers --------------------------------------------------------------------------
  std::optional<std::string> Object(const std::string& bucket, const std::string& key) const;
  std::vector<std::string> Keys(const std::string& bucket, const std::string& prefix = "") const;
  struct Write {
    std::string operation;  // "PutObject", "UploadFile", "DeleteObject", ...
    std::string key;
  };
  std::vector<Write> Writes() const;
  // The prefix of every ListObjectsV2 page requested, in order.
  std::vector<std::string> ListedPrefixes() const;
  // Makes every write fail (kTransient) while set.
  void FailWrites(bool fail);

  // S3 -------------------------------------------------------------------------------------
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

 private:
  struct StoredObject {
    std::string data;
    Clock::WallTime last_modified{};
    std::string etag;
  };
  struct Upload {
    std::string bucket, key;
    std::map<int, std::string> parts;
  };
  using Bucket = std::map<std::string, StoredObject>;

  Error Missing(const std::string& operation, const std::string& what) const;
  Error WriteFailure(const std::string& operation) const;
  // Requires mu_.
  Result<std::string> PutLocked(const std::string& operation, const std::string& bucket,
                                const std::string& key, std::string data);

  Clock& clock_;
  mutable std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
  std::map<std::string, Upload> uploads_;
  std::vector<Write> writes_;
  std::vector<std::string> listed_prefixes_;
  bool fail_writes_ = false;
  std::int64_t next_id_ = 1;
};

}  // namespace spotgrid::testing
