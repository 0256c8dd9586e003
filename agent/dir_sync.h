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
// the object's LastModified so the next Sync sees it as unchanged. One unsafe key refuses the
// whole restore before anything is downloaded: a checkpoint is a set of files that belong
// together, and a key crafted to escape says the prefix is not to be trusted at all.
// A download that fails ends the restore with its error; the files fetched before it stay,
// each complete (downloads land beside their path and are renamed into place).
//
// The manifest (`manifest_path`) is JSON, replaced atomically (written beside it, renamed):
//   {"version": 1, "bucket": B, "prefix": P,
//    "files": {"<relative path>": {"size": N, "mtime_ns": T}, ...}}
// A manifest for another bucket or prefix, or one that cannot be parsed, is ignored (the
// next Sync lists the prefix instead); a manifest that cannot be written is logged and does
// not fail the Sync, since the objects are in S3 either way.
//
// SyncStats::requests counts the S3 requests the sync asked for (each listing page, PUT,
// multipart step and DeleteObjects batch), not the client's retries of them.
//
// Thread-safety: one DirectorySync is driven by one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"
#include "spotgrid/services/s3_client.h"

namespace spotgrid::agent {

struct SyncOptions {
  int concurrency = 8;  // files in flight
  std::uint64_t multipart_threshold = std::uint64_t{64} << 20;
  std::uint64_t part_size = std::uint64_t{8} << 20;  // of a multipart upload; at least 5 MiB
  std::filesystem::path manifest_path;               // empty = remember in memory only
  const StopSource* stop = nullptr;                  // cuts a sync short (kCancelled)
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
    bool operator==(const Entry&) const = default;
  };
  struct LocalFile {
    std::string relative;  // '/'-separated, below dir_
    std::filesystem::path path;
    Entry entry;
  };
  // The regular files below dir_, sorted by relative path (symlinks and others skipped).
  Result<std::vector<LocalFile>> Walk();
  // Fills synced_ from one listing of the prefix (the aws s3 sync rule for `local`).
  Status LearnFromListing(const std::vector<LocalFile>& local, SyncStats& stats);
  Status DeleteGone(const std::vector<LocalFile>& local, SyncStats& stats);
  // The requests UploadFile makes for a file of `size` bytes.
  std::int64_t UploadRequests(std::uint64_t size) const;
  Status LoadManifest();
  Status SaveManifest() const;

  std::shared_ptr<S3> s3_;
  std::string bucket_, prefix_;
  std::filesystem::path dir_;
  SyncOptions options_;
  bool known_ = false;                    // remote state known (listed, or from a manifest)
  bool manifest_tried_ = false;           // LoadManifest ran (only the first Sync reads it)
  std::map<std::string, Entry> synced_;   // relative path -> what S3 holds
  std::set<std::string> reported_skips_;  // skipped paths already logged once
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
