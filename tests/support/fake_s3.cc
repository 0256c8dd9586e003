#include "support/fake_s3.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "spotgrid/core/iso8601.h"

namespace spotgrid::testing {

namespace {

std::optional<std::string> ReadRange(const std::string& path, std::uint64_t offset,
                                     std::optional<std::uint64_t> length) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  in.seekg(static_cast<std::streamoff>(offset));
  if (!length) {
    std::ostringstream all;
    all << in.rdbuf();
    return all.str();
  }
  std::string data(*length, '\0');
  in.read(data.data(), static_cast<std::streamsize>(*length));
  data.resize(static_cast<std::size_t>(in.gcount()));
  return data;
}

std::string HttpDate(Clock::WallTime time) {
  std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

Status WriteFile(const std::string& path, const std::string& data) {
  std::filesystem::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path(), ec);
  std::string temp = path + ".fake-s3-part";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) return Error::Io("GetObjectToFile", "cannot write " + temp);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) return Error::Io("GetObjectToFile", "cannot write " + temp);
  }
  std::filesystem::rename(temp, target, ec);
  if (ec) return Error::Io("GetObjectToFile", ec.message());
  return Status::Ok();
}

}  // namespace

FakeS3::FakeS3(Clock& clock) : clock_(clock) {}

std::optional<std::string> FakeS3::Object(const std::string& bucket, const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return std::nullopt;
  auto o = b->second.find(key);
  if (o == b->second.end()) return std::nullopt;
  return o->second.data;
}

std::vector<std::string> FakeS3::Keys(const std::string& bucket, const std::string& prefix) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return keys;
  for (auto it = b->second.lower_bound(prefix);
       it != b->second.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    keys.push_back(it->first);
  }
  return keys;
}

std::vector<FakeS3::Write> FakeS3::Writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writes_;
}

std::vector<std::string> FakeS3::ListedPrefixes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return listed_prefixes_;
}

void FakeS3::FailWrites(bool fail) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_writes_ = fail;
}

Error FakeS3::Missing(const std::string& operation, const std::string& what) const {
  Error error;
  error.category = ErrorCategory::kNotFound;
  error.service = "S3";
  error.operation = operation;
  error.http_status = 404;
  error.code = what;
  error.message = what;
  return error;
}

Error FakeS3::WriteFailure(const std::string& operation) const {
  Error error;
  error.category = ErrorCategory::kTransient;
  error.service = "S3";
  error.operation = operation;
  error.http_status = 503;
  error.code = "SlowDown";
  error.message = "injected write failure";
  return error;
}

Result<std::string> FakeS3::PutLocked(const std::string& operation, const std::string& bucket,
                                      const std::string& key, std::string data) {
  if (fail_writes_) return WriteFailure(operation);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return Missing(operation, "NoSuchBucket");
  StoredObject& object = b->second[key];
  object.data = std::move(data);
  object.last_modified = clock_.Now();
  object.etag = "\"etag-" + std::to_string(next_id_++) + "\"";
  writes_.push_back({operation, key});
  return object.etag;
}

Status FakeS3::CreateBucket(const std::string& bucket) {
  std::lock_guard<std::mutex> lock(mu_);
  buckets_[bucket];
  return Status::Ok();
}

Status FakeS3::EnsureBucket(const std::string& bucket) { return CreateBucket(bucket); }

Status FakeS3::HeadBucket(const std::string& bucket) {
  std::lock_guard<std::mutex> lock(mu_);
  if (buckets_.count(bucket) == 0) return Missing("HeadBucket", "NoSuchBucket");
  return Status::Ok();
}

Result<std::string> FakeS3::PutObject(const std::string& bucket, const std::string& key,
                                      std::string_view body, const PutObjectOptions&) {
  std::lock_guard<std::mutex> lock(mu_);
  return PutLocked("PutObject", bucket, key, std::string(body));
}

Result<std::string> FakeS3::PutObjectFromFile(const std::string& bucket, const std::string& key,
                                              const std::string& path, const PutObjectOptions&) {
  auto data = ReadRange(path, 0, std::nullopt);
  if (!data) return Error::Io("PutObjectFromFile", "cannot read " + path);
  std::lock_guard<std::mutex> lock(mu_);
  return PutLocked("PutObjectFromFile", bucket, key, std::move(*data));
}

Result<std::string> FakeS3::GetObject(const std::string& bucket, const std::string& key,
                                      std::optional<ByteRange> range) {
  std::lock_guard<std::mutex> lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return Missing("GetObject", "NoSuchBucket");
  auto o = b->second.find(key);
  if (o == b->second.end()) return Missing("GetObject", "NoSuchKey");
  if (!range) return o->second.data;
  if (range->first >= o->second.data.size()) return std::string();
  return o->second.data.substr(range->first, range->last - range->first + 1);
}

Status FakeS3::GetObjectToFile(const std::string& bucket, const std::string& key,
                               const std::string& path, std::optional<ByteRange> range) {
  auto data = GetObject(bucket, key, range);
  if (!data.ok()) return data.error();
  return WriteFile(path, *data);
}

Result<S3ObjectInfo> FakeS3::HeadObject(const std::string& bucket, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return Missing("HeadObject", "NoSuchBucket");
  auto o = b->second.find(key);
  if (o == b->second.end()) return Missing("HeadObject", "NoSuchKey");
  S3ObjectInfo info;
  info.size = o->second.data.size();
  info.etag = o->second.etag;
  info.last_modified = HttpDate(o->second.last_modified);
  return info;
}

Result<ListObjectsPage> FakeS3::ListObjectsV2Page(const std::string& bucket,
                                                  const ListObjectsOptions& options,
                                                  const std::string& continuation_token) {
  std::lock_guard<std::mutex> lock(mu_);
  listed_prefixes_.push_back(options.prefix);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return Missing("ListObjectsV2", "NoSuchBucket");
  // The continuation token is simply the last key of the previous page.
  std::string after = continuation_token.empty() ? options.start_after : continuation_token;
  ListObjectsPage page;
  auto it = after.empty() ? b->second.lower_bound(options.prefix) : b->second.upper_bound(after);
  int count = 0;
  std::string last_prefix;
  for (; it != b->second.end(); ++it) {
    const std::string& key = it->first;
    if (key.compare(0, options.prefix.size(), options.prefix) != 0) {
      if (key > options.prefix) break;
      continue;
    }
    if (count >= options.max_keys) {
      page.is_truncated = true;
      break;
    }
    if (!options.delimiter.empty()) {
      std::size_t pos = key.find(options.delimiter, options.prefix.size());
      if (pos != std::string::npos) {
        std::string common = key.substr(0, pos + options.delimiter.size());
        if (common != last_prefix) {
          page.common_prefixes.push_back(common);
          last_prefix = common;
          ++count;
        }
        page.next_continuation_token = key;
        continue;
      }
    }
    page.objects.push_back(
        {key, it->second.data.size(), it->second.etag, FormatIso8601(it->second.last_modified)});
    page.next_continuation_token = key;
    ++count;
  }
  if (!page.is_truncated) page.next_continuation_token.clear();
  return page;
}

Result<DeleteObjectsResult> FakeS3::DeleteObjects(const std::string& bucket,
                                                  const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_writes_) return WriteFailure("DeleteObjects");
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return Missing("DeleteObjects", "NoSuchBucket");
  for (const std::string& key : keys) {
    b->second.erase(key);
    writes_.push_back({"DeleteObjects", key});
  }
  return DeleteObjectsResult{};
}

Status FakeS3::DeleteObject(const std::string& bucket, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_writes_) return WriteFailure("DeleteObject");
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return Missing("DeleteObject", "NoSuchBucket");
  b->second.erase(key);
  writes_.push_back({"DeleteObject", key});
  return Status::Ok();
}

Result<std::string> FakeS3::CreateMultipartUpload(const std::string& bucket, const std::string& key,
                                                  const PutObjectOptions&) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_writes_) return WriteFailure("CreateMultipartUpload");
  if (buckets_.count(bucket) == 0) return Missing("CreateMultipartUpload", "NoSuchBucket");
  std::string id = "upload-" + std::to_string(next_id_++);
  uploads_[id] = Upload{bucket, key, {}};
  return id;
}

Result<std::string> FakeS3::UploadPart(const std::string&, const std::string&,
                                       const std::string& upload_id, int part_number,
                                       const FileRange& data) {
  auto bytes = ReadRange(data.path, data.offset, data.length);
  if (!bytes) return Error::Io("UploadPart", "cannot read " + data.path);
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_writes_) return WriteFailure("UploadPart");
  auto it = uploads_.find(upload_id);
  if (it == uploads_.end()) return Missing("UploadPart", "NoSuchUpload");
  it->second.parts[part_number] = std::move(*bytes);
  return "\"part-" + std::to_string(part_number) + "\"";
}

Result<std::string> FakeS3::CompleteMultipartUpload(const std::string&, const std::string&,
                                                    const std::string& upload_id,
                                                    std::vector<CompletedPart>) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = uploads_.find(upload_id);
  if (it == uploads_.end()) return Missing("CompleteMultipartUpload", "NoSuchUpload");
  std::string data;
  for (auto& [n, part] : it->second.parts) data += part;
  Upload upload = std::move(it->second);
  uploads_.erase(it);
  return PutLocked("CompleteMultipartUpload", upload.bucket, upload.key, std::move(data));
}

Status FakeS3::AbortMultipartUpload(const std::string&, const std::string&,
                                    const std::string& upload_id) {
  std::lock_guard<std::mutex> lock(mu_);
  uploads_.erase(upload_id);
  return Status::Ok();
}

Status FakeS3::UploadFile(const std::string& bucket, const std::string& key,
                          const std::string& path, const UploadFileOptions& options) {
  if (options.stop && options.stop->Requested()) return Error::Cancelled("UploadFile");
  auto data = ReadRange(path, 0, std::nullopt);
  if (!data) return Error::Io("UploadFile", "cannot read " + path);
  std::lock_guard<std::mutex> lock(mu_);
  return PutLocked("UploadFile", bucket, key, std::move(*data)).status();
}

Status FakeS3::DownloadFile(const std::string& bucket, const std::string& key,
                            const std::string& path, const DownloadFileOptions& options) {
  if (options.stop && options.stop->Requested()) return Error::Cancelled("DownloadFile");
  return GetObjectToFile(bucket, key, path);
}

}  // namespace spotgrid::testing
