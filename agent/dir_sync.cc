#include "agent/dir_sync.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "spotgrid/core/file_io.h"
#include "spotgrid/core/iso8601.h"
#include "spotgrid/core/log.h"
#include "spotgrid/core/parallel_for.h"
#include "spotgrid/core/safe_path.h"

namespace spotgrid::agent {
namespace {

namespace fs = std::filesystem;

constexpr int kManifestVersion = 1;
// The mtime recorded for an object found by listing that matches no local file: no real file
// has it, so the next comparison always sees a difference.
constexpr std::int64_t kNoLocalFile = std::numeric_limits<std::int64_t>::min();

std::int64_t MtimeNs(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

std::string S3Url(const std::string& bucket, const std::string& key) {
  return "s3://" + bucket + "/" + key;
}

// Nanoseconds since the epoch of an ISO 8601 LastModified, or nullopt.
std::optional<std::int64_t> ParseLastModifiedNs(const std::string& text) {
  auto time = ParseIso8601(text);
  if (!time) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time->time_since_epoch()).count();
}

// Every object below `prefix`, counting the listing pages as requests.
Result<std::vector<S3ListedObject>> ListPrefix(S3& s3, const std::string& bucket,
                                               const std::string& prefix, std::int64_t& requests,
                                               const StopSource* stop) {
  std::vector<S3ListedObject> objects;
  ListObjectsOptions options;
  options.prefix = prefix;
  options.stop = stop;
  std::string token;
  do {
    auto page = s3.ListObjectsV2Page(bucket, options, token);
    ++requests;
    if (!page.ok()) return page.error();
    for (S3ListedObject& object : page->objects) objects.push_back(std::move(object));
    if (!page->is_truncated) break;
    token = page->next_continuation_token;
  } while (!token.empty());
  return objects;
}

// The part of `key` below `prefix`, or "" for the prefix itself and "folder" markers.
std::string RelativeKey(const std::string& key, const std::string& prefix) {
  if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0) return "";
  if (key.back() == '/') return "";
  return key.substr(prefix.size());
}

}  // namespace

DirectorySync::DirectorySync(std::shared_ptr<S3> s3, std::string bucket, std::string prefix,
                             std::filesystem::path dir, SyncOptions options)
    : s3_(std::move(s3)),
      bucket_(std::move(bucket)),
      prefix_(std::move(prefix)),
      dir_(std::move(dir)),
      options_(std::move(options)) {}

Result<std::vector<DirectorySync::LocalFile>> DirectorySync::Walk() {
  std::vector<LocalFile> files;
  // The manifest may live inside the directory; it is ours, not the command's.
  std::error_code ec;
  std::optional<fs::path> manifest, manifest_temp;
  if (!options_.manifest_path.empty()) {
    manifest = fs::absolute(options_.manifest_path, ec).lexically_normal();
    manifest_temp = *manifest;
    *manifest_temp += ".tmp";
  }
  const fs::path root = fs::absolute(dir_, ec).lexically_normal();
  // Directories still to read, relative to dir_ ("" is dir_ itself). Read with opendir rather
  // than recursive_directory_iterator so that a subdirectory the running command removes
  // mid-walk is skipped instead of ending the walk with an error. lstat, never stat: links are
  // reported, not followed.
  std::vector<std::string> pending = {""};
  while (!pending.empty()) {
    const std::string relative_dir = std::move(pending.back());
    pending.pop_back();
    const fs::path directory = relative_dir.empty() ? dir_ : dir_ / relative_dir;
    DIR* handle = ::opendir(directory.c_str());
    if (handle == nullptr) {
      const int err = errno;
      if (err == ENOENT) continue;  // gone, or (dir_ itself) nothing written yet
      if (!relative_dir.empty() && (err == ENOTDIR || err == EACCES)) {
        if (reported_skips_.insert(relative_dir).second) {
          Logger().warn("sync of {}: skipping directory {}: {}", dir_.string(), relative_dir,
                        std::strerror(err));
        }
        continue;
      }
      return Error::Io("opendir", directory.string() + ": " + std::strerror(err));
    }
    while (const struct dirent* entry = ::readdir(handle)) {
      const std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      std::string relative =
          relative_dir.empty() ? std::string(name) : relative_dir + "/" + std::string(name);
      fs::path path = directory / name;
      struct stat st;
      if (::lstat(path.c_str(), &st) != 0) continue;  // gone since the directory was read
      if (S_ISDIR(st.st_mode)) {
        pending.push_back(std::move(relative));
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        if (reported_skips_.insert(relative).second) {
          Logger().info("sync of {}: skipping {} ({})", dir_.string(), relative,
                        S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
        }
        continue;
      }
      if (manifest) {
        const fs::path absolute = (root / relative).lexically_normal();
        if (absolute == *manifest || absolute == *manifest_temp) continue;
      }
      files.push_back({std::move(relative), std::move(path),
                       Entry{static_cast<std::uint64_t>(st.st_size), MtimeNs(st)}});
    }
    ::closedir(handle);
  }
  std::sort(files.begin(), files.end(),
            [](const LocalFile& a, const LocalFile& b) { return a.relative < b.relative; });
  return files;
}

Status DirectorySync::LearnFromListing(const std::vector<LocalFile>& local, SyncStats& stats) {
  auto objects = ListPrefix(*s3_, bucket_, prefix_, stats.requests, options_.stop);
  if (!objects.ok()) return objects.error();
  std::unordered_map<std::string, const LocalFile*> by_relative;
  for (const LocalFile& file : local) by_relative.emplace(file.relative, &file);
  for (const S3ListedObject& object : *objects) {
    const std::string relative = RelativeKey(object.key, prefix_);
    if (relative.empty()) continue;
    Entry remote{object.size, kNoLocalFile};
    auto it = by_relative.find(relative);
    if (it != by_relative.end() && it->second->entry.size == object.size) {
      // The aws s3 sync rule: same size and not older than the file. S3 keeps LastModified
      // in whole seconds, so the file's mtime is compared at that precision too.
      const auto last_modified = ParseLastModifiedNs(object.last_modified);
      const std::int64_t mtime = it->second->entry.mtime_ns;
      const std::int64_t mtime_seconds_ns =
          mtime - ((mtime % 1'000'000'000) + 1'000'000'000) % 1'000'000'000;
      if (last_modified && *last_modified >= mtime_seconds_ns) remote = it->second->entry;
    }
    synced_[relative] = remote;
  }
  known_ = true;
  return Status::Ok();
}

std::int64_t DirectorySync::UploadRequests(std::uint64_t size) const {
  const std::uint64_t threshold = std::min(options_.multipart_threshold, kS3MaxSinglePutSize);
  if (size == 0 || size < threshold) return 1;
  std::uint64_t part_size = std::max<std::uint64_t>(options_.part_size, 1);
  if ((size + part_size - 1) / part_size > static_cast<std::uint64_t>(kS3MaxParts)) {
    constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
    part_size = ((size + kS3MaxParts - 1) / kS3MaxParts + kMiB - 1) / kMiB * kMiB;
  }
  // CreateMultipartUpload, the parts, CompleteMultipartUpload.
  return 2 + static_cast<std::int64_t>((size + part_size - 1) / part_size);
}

Status DirectorySync::DeleteGone(const std::vector<LocalFile>& local, SyncStats& stats) {
  std::unordered_set<std::string> present;
  for (const LocalFile& file : local) present.insert(file.relative);
  std::vector<std::string> gone;
  for (const auto& [relative, entry] : synced_) {
    if (!present.contains(relative)) gone.push_back(relative);
  }
  for (std::size_t start = 0; start < gone.size(); start += kS3MaxDeleteKeys) {
    if (options_.stop != nullptr && options_.stop->Requested()) {
      return Error::Cancelled("DirectorySync");
    }
    const std::size_t end = std::min(gone.size(), start + kS3MaxDeleteKeys);
    std::vector<std::string> keys;
    for (std::size_t i = start; i < end; ++i) keys.push_back(prefix_ + gone[i]);
    auto deleted = s3_->DeleteObjects(bucket_, keys);
    ++stats.requests;
    if (!deleted.ok()) return deleted.error();
    std::unordered_set<std::string> failed;
    for (const S3DeleteError& error : deleted->failed) failed.insert(error.key);
    for (std::size_t i = start; i < end; ++i) {
      if (failed.contains(prefix_ + gone[i])) continue;
      synced_.erase(gone[i]);
      ++stats.deleted_keys;
    }
    if (!deleted->ok()) {
      const S3DeleteError& first = deleted->failed.front();
      Error error;
      error.service = "S3";
      error.operation = "DeleteObjects";
      error.code = first.code;
      error.message = std::to_string(deleted->failed.size()) + " key(s) not deleted, " +
                      S3Url(bucket_, first.key) + ": " + first.message;
      return error;
    }
  }
  return Status::Ok();
}

Result<SyncStats> DirectorySync::Sync(bool final_sync) {
  SyncStats stats;
  const StopSource* stop = options_.stop;
  if (stop != nullptr && stop->Requested()) return Error::Cancelled("DirectorySync");
  if (!manifest_tried_) {
    manifest_tried_ = true;
    if (Status loaded = LoadManifest(); !loaded.ok()) {
      Logger().warn("sync of {}: ignoring manifest {}: {}", dir_.string(),
                    options_.manifest_path.string(), loaded.ToString());
    }
  }
  auto local = Walk();
  if (!local.ok()) return local.error();
  if (!known_) {
    if (Status learned = LearnFromListing(*local, stats); !learned.ok()) return learned.error();
  }

  std::vector<const LocalFile*> changed;
  for (const LocalFile& file : *local) {
    auto it = synced_.find(file.relative);
    if (it != synced_.end() && it->second == file.entry) {
      ++stats.unchanged_files;
    } else {
      changed.push_back(&file);
    }
  }

  // Each upload writes only its own slot; synced_ is updated afterwards on this thread.
  std::vector<Status> results(changed.size(), Error::Cancelled("DirectorySync"));
  UploadFileOptions upload;
  upload.multipart_threshold = options_.multipart_threshold;
  upload.part_size = options_.part_size;
  upload.concurrency = options_.concurrency;
  upload.stop = stop;
  ParallelFor(changed.size(), options_.concurrency, [&](std::size_t i) {
    if (stop != nullptr && stop->Requested()) return;
    const LocalFile& file = *changed[i];
    results[i] = s3_->UploadFile(bucket_, prefix_ + file.relative, file.path.string(), upload);
  });
  std::optional<Error> first_error;
  for (std::size_t i = 0; i < changed.size(); ++i) {
    const LocalFile& file = *changed[i];
    if (results[i].ok()) {
      synced_[file.relative] = file.entry;
      ++stats.uploaded_files;
      stats.uploaded_bytes += static_cast<std::int64_t>(file.entry.size);
      stats.requests += UploadRequests(file.entry.size);
    } else if (struct stat st; results[i].error().category == ErrorCategory::kIo &&
                               ::lstat(file.path.c_str(), &st) != 0 && errno == ENOENT) {
      // Deleted between the walk and the upload (a command's temporary file): the next walk
      // will not see it either.
      continue;
    } else if (!first_error || first_error->category == ErrorCategory::kCancelled) {
      first_error = results[i].error();
    }
  }
  if (stop != nullptr && stop->Requested()) first_error = Error::Cancelled("DirectorySync");

  if (final_sync && !first_error) {
    if (Status deleted = DeleteGone(*local, stats); !deleted.ok()) first_error = deleted.error();
  }
  if (stats.requests > 0) {  // something was learnt, sent or deleted
    if (Status saved = SaveManifest(); !saved.ok()) {
      Logger().warn("sync of {}: {}", dir_.string(), saved.ToString());
    }
  }
  if (first_error) {
    if (first_error->category != ErrorCategory::kCancelled) {
      first_error->message = "sync of " + dir_.string() + " to " + S3Url(bucket_, prefix_) + ": " +
                             first_error->message;
    }
    return *first_error;
  }
  return stats;
}

Status DirectorySync::LoadManifest() {
  if (options_.manifest_path.empty()) return Status::Ok();
  Result<std::string> text = ReadFile(options_.manifest_path, "read sync manifest");
  if (!text.ok()) {
    if (text.error().IsNotFound()) return Status::Ok();  // first run
    return text.error();
  }
  std::map<std::string, Entry> files;
  try {
    const nlohmann::json manifest = nlohmann::json::parse(*text);
    if (manifest.at("version").get<int>() != kManifestVersion) {
      return Error::InvalidInput("unknown manifest version");
    }
    if (manifest.at("bucket").get<std::string>() != bucket_ ||
        manifest.at("prefix").get<std::string>() != prefix_) {
      return Error::InvalidInput("the manifest is for another bucket or prefix");
    }
    for (const auto& [relative, entry] : manifest.at("files").items()) {
      files[relative] =
          Entry{entry.at("size").get<std::uint64_t>(), entry.at("mtime_ns").get<std::int64_t>()};
    }
  } catch (const nlohmann::json::exception& e) {
    return Error::InvalidInput(std::string("not a manifest: ") + e.what());
  }
  synced_ = std::move(files);
  known_ = true;
  return Status::Ok();
}

Status DirectorySync::SaveManifest() const {
  if (options_.manifest_path.empty()) return Status::Ok();
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [relative, entry] : synced_) {
    files[relative] = {{"size", entry.size}, {"mtime_ns", entry.mtime_ns}};
  }
  const nlohmann::json manifest = {{"version", kManifestVersion},
                                   {"bucket", bucket_},
                                   {"prefix", prefix_},
                                   {"files", std::move(files)}};
  // A file name that is not UTF-8 is replaced in the manifest rather than failing the save;
  // such a file is merely uploaded again by a restarted agent.
  const std::string text = manifest.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return WriteFileAtomically(options_.manifest_path, text, std::nullopt, "save sync manifest");
}

Result<RestoreStats> RestoreDirectory(S3& s3, const std::string& bucket, const std::string& prefix,
                                      const std::filesystem::path& dir, int concurrency,
                                      const StopSource* stop) {
  if (stop != nullptr && stop->Requested()) return Error::Cancelled("RestoreDirectory");
  std::int64_t requests = 0;
  auto objects = ListPrefix(s3, bucket, prefix, requests, stop);
  if (!objects.ok()) return objects.error();

  struct Download {
    const S3ListedObject* object = nullptr;
    fs::path path;
  };
  std::vector<Download> downloads;
  // Every key is checked before anything is written (see the header).
  for (const S3ListedObject& object : *objects) {
    const std::string relative = RelativeKey(object.key, prefix);
    if (relative.empty()) continue;
    if (auto parts = SplitSafeRelativePath(relative); !parts.ok()) {
      return Error::InvalidInput("restore of " + S3Url(bucket, prefix) + " refused: S3 key '" +
                                 object.key + "': " + parts.error().message);
    }
    downloads.push_back({&object, {}});
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec && !fs::is_directory(dir)) return Error::Io("mkdir", dir.string() + ": " + ec.message());
  for (Download& download : downloads) {
    auto path = SafePathUnder(dir, RelativeKey(download.object->key, prefix));
    if (!path.ok()) {
      Error error = path.error();
      error.message = "restore of " + S3Url(bucket, prefix) + " refused: S3 key '" +
                      download.object->key + "': " + error.message;
      return error;
    }
    download.path = std::move(*path);
  }

  std::atomic<std::int64_t> files{0}, bytes{0};
  DownloadFileOptions options;
  options.concurrency = concurrency;
  options.stop = stop;
  Status fetched_all = ParallelForStatus(
      downloads.size(), concurrency, OnError::kRunAll, [&](std::size_t i) -> Status {
        if (stop != nullptr && stop->Requested()) return Status::Ok();
        const Download& download = downloads[i];
        const S3ListedObject& object = *download.object;
        // Small objects in one GET (DownloadFile would HEAD first); large ones in parallel ranges.
        Status fetched = object.size < options.multipart_threshold
                             ? s3.GetObjectToFile(bucket, object.key, download.path.string())
                             : s3.DownloadFile(bucket, object.key, download.path.string(), options);
        if (!fetched.ok()) return fetched;
        if (auto modified = ParseLastModifiedNs(object.last_modified)) {
          struct timespec times[2];
          times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(*modified / 1'000'000'000);
          times[0].tv_nsec = times[1].tv_nsec = static_cast<long>(*modified % 1'000'000'000);
          if (*modified < 0) {
            times[0].tv_sec = times[1].tv_sec -= 1;
            times[0].tv_nsec = times[1].tv_nsec += 1'000'000'000;
          }
          if (::utimensat(AT_FDCWD, download.path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
            Logger().warn("restore: cannot set the mtime of {}", download.path.string());
          }
        }
        ++files;
        bytes += static_cast<std::int64_t>(object.size);
        return Status::Ok();
      });
  if (!fetched_all.ok()) return fetched_all.error();
  if (stop != nullptr && stop->Requested()) return Error::Cancelled("RestoreDirectory");
  return RestoreStats{files.load(), bytes.load()};
}

}  // namespace spotgrid::agent
