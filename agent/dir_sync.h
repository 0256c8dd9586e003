// Incremental sync of a unit's local directory (output/, checkpoint/, logs) to an S3 prefix,
// and the reverse restore of a checkpoint before a later attempt.
//
// Sync sends only what changed: it remembers, per relative path, the size and mtime it last
// uploaded (in memory and, when `manifest_path` is set, in a file so a restarted agent does
// not re-send). Without a memory of its own, the first Sync lists the prefix once and treats
// an object with the same size and a LastModified not older than the file's mtime as
// unchanged (the rule of `aws s3 sync`). Files go up in parallel; large ones as parallel
// multipart uploads. Deleting keys whose local file is gone happens only on the final sync,
// so a command that rewrites a file by delete-and-create never loses it in S3 mid-run.
//
// Restore downloads every object under a prefix into a directory and refuses any key that
// would land outside it ("..", absolute, through a symlink), and sets each file's mtime to
// the object's LastModified so the next Sync sees it as unchanged.
//
// Thread-safety: one DirectorySync is driven by one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"
#include "spotgrid/services/s3_client.h"

namespace spotgrid::agent {

struct SyncOptions {
  int concurrency = 8;  // files in flight
  std::uint64_t multipart_threshold = std::uint64_t{64} << 20;
  std::filesystem::path manifest_path;  // empty = remember in memory only
  const StopSource* stop = nullptr;     // cuts a sync short (kCancelled)
};

struct SyncStats {
  std::int64_t uploaded_files = 0;
  std::int64_t uploaded_bytes = 0;
  std::int64_t unchanged_files = 0;
  std::int64_t deleted_keys = 0;
  std::int64_t requests = 0;  // S3 requests made (lists, puts, deletes)
};

class DirectorySync {
 public:
  // `prefix` is the key prefix the directory maps to, ending in '/' ("p/job/unit/output/").
  DirectorySync(std::shared_ptr<S3> s3, std::string bucket, std::string prefix,
                std::filesystem::path dir, SyncOptions options = {});

  // Uploads new and changed files; with `final_sync`, also deletes keys under the prefix that
  // this sync put there (or found by listing) whose local file no longer exists. A missing
  // directory is an empty one. Symlinks and special files are skipped (logged), never followed.
  Result<SyncStats> Sync(bool final_sync);

 private:
  struct Entry {
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
  };
  Status LoadManifest();
  Status SaveManifest() const;

  std::shared_ptr<S3> s3_;
  std::string bucket_, prefix_;
  std::filesystem::path dir_;
  SyncOptions options_;
  bool known_ = false;                  // remote state known (listed, or from a manifest)
  std::map<std::string, Entry> synced_;  // relative path -> what S3 holds
};

struct RestoreStats {
  std::int64_t files = 0;
  std::int64_t bytes = 0;
};

// Downloads every object under `prefix` into `dir` (created if missing).
Result<RestoreStats> RestoreDirectory(S3& s3, const std::string& bucket, const std::string& prefix,
                                      const std::filesystem::path& dir, int concurrency = 8,
                                      const StopSource* stop = nullptr);

}  // namespace spotgrid::agent
