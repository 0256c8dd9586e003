// Integration tests of DirectorySync and RestoreDirectory against s3rver (the
// `emulators` fixture), plus the cases s3rver cannot stage on an in-memory S3
// of this file's own: s3rver collapses ".." and "//" in keys, so escaping keys
// can only come from the fake, and the fake also counts DeleteObjects batches
// and raises a stop mid-sync.
//
// Every s3rver test works in its own bucket (UniqueName), so tests run in
// parallel.
#include "agent/dir_sync.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "spotgrid/core/iso8601.h"
#include "spotgrid/http/curl_transport.h"
#include "support/client_fixture.h"
#include "support/test_env.h"

namespace spotgrid::agent {
namespace {

namespace fs = std::filesystem;
using testing::MakeTempDir;
using testing::UniqueName;
using testing::UseEmulators;

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

std::string RandomBytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::int64_t MtimeNs(const fs::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Moves the file's mtime `seconds` into the future, so a rewrite is seen as a
// change even on a file system whose timestamps are coarser than the test is
// fast.
void TouchLater(const fs::path& path, int seconds) {
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  times[1].tv_sec += seconds;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

// relative path -> bytes of every regular file below `root`.
std::map<std::string, std::string> Tree(const fs::path& root) {
  std::map<std::string, std::string> tree;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && !entry.is_symlink()) {
      tree[entry.path().lexically_relative(root).generic_string()] = ReadFile(entry.path());
    }
  }
  return tree;
}

// The tree most tests sync: a few directories, an empty file, a name with a
// space.
std::map<std::string, std::string> SampleTree() {
  return {{"result.csv", "a,b\n1,2\n"},
          {"plots/curve.txt", "curve"},
          {"plots/deeper/points.bin", RandomBytes(3000, 7)},
          {"empty", ""},
          {"with space.txt", "spaced"}};
}

void WriteTree(const fs::path& root, const std::map<std::string, std::string>& tree) {
  for (const auto& [relative, data] : tree) WriteFile(root / relative, data);
}

// Forwards to curl and remembers "METHOD URL" of every request, so a test can hold
// SyncStats::requests against what really went over the wire.
class RecordingTransport final : public HttpTransport {
 public:
  Result<HttpResponse> Send(const HttpRequest& request) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      sent_.push_back(request.method + " " + request.url);
    }
    return inner_->Send(request);
  }
  std::vector<std::string> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(sent_, {});
  }

 private:
  std::shared_ptr<HttpTransport> inner_ = MakeCurlTransport();
  std::mutex mu_;
  std::vector<std::string> sent_;
};

class DirSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    auto client = testing::CreateServiceClient<S3Client>({});
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    s3_ = *client;
    AwsContextOptions recorded;
    recorded.transport = wire_;
    auto sync_client = testing::CreateServiceClient<S3Client>(std::move(recorded));
    ASSERT_TRUE(sync_client.ok()) << sync_client.error().ToString();
    sync_s3_ = *sync_client;
    bucket_ = UniqueName("dirsync");
    Status ensured = s3_->EnsureBucket(bucket_);
    ASSERT_TRUE(ensured.ok()) << ensured.ToString();
    tmp_ = MakeTempDir("dir-sync");
    dir_ = fs::path(tmp_) / "output";
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure() && !tmp_.empty()) fs::remove_all(tmp_);
  }

  // A DirectorySync whose requests `wire_` records (the checks use s3_, which it does not).
  DirectorySync MakeSync(SyncOptions options = {}, const fs::path& dir = {}) {
    return DirectorySync(sync_s3_, bucket_, kPrefix, dir.empty() ? dir_ : dir, std::move(options));
  }

  // Syncs and checks that the requests it counted are the requests it sent.
  SyncStats SyncOk(DirectorySync& sync, bool final_sync = false) {
    wire_->Take();
    auto stats = sync.Sync(final_sync);
    last_wire_ = wire_->Take();
    EXPECT_TRUE(stats.ok()) << stats.error().ToString();
    if (!stats.ok()) return SyncStats{};
    EXPECT_EQ(stats->requests, static_cast<std::int64_t>(last_wire_.size()));
    return *stats;
  }

  std::size_t LastWireCount(const std::string& needle) const {
    return static_cast<std::size_t>(
        std::count_if(last_wire_.begin(), last_wire_.end(),
                      [&](const std::string& r) { return r.find(needle) != std::string::npos; }));
  }

  // key -> object bytes of everything under the bucket.
  std::map<std::string, std::string> Remote() {
    std::map<std::string, std::string> remote;
    auto listing = s3_->ListObjects(bucket_);
    EXPECT_TRUE(listing.ok()) << listing.error().ToString();
    if (!listing.ok()) return remote;
    for (const auto& object : listing->objects) {
      auto data = s3_->GetObject(bucket_, object.key);
      EXPECT_TRUE(data.ok()) << object.key;
      remote[object.key] = data.ok() ? *data : "";
    }
    return remote;
  }

  std::map<std::string, std::string> Keyed(const std::map<std::string, std::string>& tree) {
    std::map<std::string, std::string> keyed;
    for (const auto& [relative, data] : tree) keyed[kPrefix + relative] = data;
    return keyed;
  }

  static constexpr const char* kPrefix = "p/job-1/unit-7/output/";
  std::shared_ptr<S3Client> s3_;
  std::shared_ptr<RecordingTransport> wire_ = std::make_shared<RecordingTransport>();
  std::shared_ptr<S3Client> sync_s3_;
  std::vector<std::string> last_wire_;  // what the last SyncOk sent
  std::string bucket_;
  std::string tmp_;
  fs::path dir_;
};

TEST_F(DirSyncTest, FirstSyncUploadsEveryFileAtItsKey) {
  WriteTree(dir_, SampleTree());
  DirectorySync sync = MakeSync();
  SyncStats stats = SyncOk(sync);
  EXPECT_EQ(stats.uploaded_files, 5);
  EXPECT_EQ(stats.uploaded_bytes, 8 + 5 + 3000 + 0 + 6);
  EXPECT_EQ(stats.unchanged_files, 0);
  EXPECT_EQ(stats.requests,
            1 + 5);  // one listing (no memory yet), one PUT per file
  EXPECT_EQ(Remote(), Keyed(SampleTree()));
}

TEST_F(DirSyncTest, ResyncOfUnchangedTreeUploadsNothingAndSendsNoRequest) {
  WriteTree(dir_, SampleTree());
  DirectorySync sync = MakeSync();
  SyncOk(sync);
  SyncStats again = SyncOk(sync);
  EXPECT_EQ(again.uploaded_files, 0);
  EXPECT_EQ(again.unchanged_files, 5);
  EXPECT_EQ(again.requests, 0);
}

TEST_F(DirSyncTest, OnlyChangedAndNewFilesGoUp) {
  WriteTree(dir_, SampleTree());
  DirectorySync sync = MakeSync();
  SyncOk(sync);
  WriteFile(dir_ / "plots/curve.txt", "CURVE");  // same size, other bytes
  TouchLater(dir_ / "plots/curve.txt", 2);
  WriteFile(dir_ / "plots/new.txt", "new file");
  SyncStats stats = SyncOk(sync);
  EXPECT_EQ(stats.uploaded_files, 2);
  EXPECT_EQ(stats.uploaded_bytes, 5 + 8);
  EXPECT_EQ(stats.unchanged_files, 4);
  EXPECT_EQ(stats.requests, 2);
  auto expected = SampleTree();
  expected["plots/curve.txt"] = "CURVE";
  expected["plots/new.txt"] = "new file";
  EXPECT_EQ(Remote(), Keyed(expected));
}

TEST_F(DirSyncTest, DeletedFileIsRemovedFromS3OnlyAtTheFinalSync) {
  WriteTree(dir_, SampleTree());
  DirectorySync sync = MakeSync();
  SyncOk(sync);
  fs::remove(dir_ / "plots/curve.txt");
  SyncStats interim = SyncOk(sync);
  EXPECT_EQ(interim.deleted_keys, 0);
  EXPECT_EQ(Remote(), Keyed(SampleTree()));  // still there mid-run

  SyncStats final_stats = SyncOk(sync, /*final_sync=*/true);
  EXPECT_EQ(final_stats.deleted_keys, 1);
  EXPECT_EQ(final_stats.uploaded_files, 0);
  EXPECT_EQ(final_stats.requests, 1);  // one DeleteObjects
  auto expected = SampleTree();
  expected.erase("plots/curve.txt");
  EXPECT_EQ(Remote(), Keyed(expected));
}

TEST_F(DirSyncTest, ManifestLetsANewInstanceSkipTheUnchangedTreeWithoutARequest) {
  WriteTree(dir_, SampleTree());
  SyncOptions options;
  options.manifest_path = fs::path(tmp_) / "output.manifest.json";
  {
    DirectorySync first = MakeSync(options);
    EXPECT_EQ(SyncOk(first).uploaded_files, 5);
  }
  // The manifest is the documented JSON, and no temporary file is left beside
  // it.
  const auto manifest = nlohmann::json::parse(ReadFile(options.manifest_path));
  EXPECT_EQ(manifest["version"], 1);
  EXPECT_EQ(manifest["bucket"], bucket_);
  EXPECT_EQ(manifest["prefix"], kPrefix);
  EXPECT_EQ(manifest["files"].size(), 5u);
  EXPECT_EQ(manifest["files"]["plots/curve.txt"]["size"], 5);
  EXPECT_EQ(manifest["files"]["plots/curve.txt"]["mtime_ns"], MtimeNs(dir_ / "plots/curve.txt"));
  EXPECT_FALSE(fs::exists(fs::path(tmp_) / "output.manifest.json.tmp"));

  DirectorySync restarted = MakeSync(options);
  SyncStats stats = SyncOk(restarted);
  EXPECT_EQ(stats.uploaded_files, 0);
  EXPECT_EQ(stats.unchanged_files, 5);
  EXPECT_EQ(stats.requests, 0);

  // It also remembers what to delete at the end.
  fs::remove(dir_ / "empty");
  EXPECT_EQ(SyncOk(restarted, true).deleted_keys, 1);
  EXPECT_EQ(Remote().count(std::string(kPrefix) + "empty"), 0u);
}

TEST_F(DirSyncTest, ManifestOfAnotherPrefixIsIgnored) {
  WriteTree(dir_, SampleTree());
  SyncOptions options;
  options.manifest_path = fs::path(tmp_) / "m.json";
  DirectorySync elsewhere(sync_s3_, bucket_, "p/other/", dir_, options);
  SyncOk(elsewhere);
  DirectorySync ours = MakeSync(options);
  SyncStats stats = SyncOk(ours);
  EXPECT_EQ(stats.uploaded_files,
            5);  // the other prefix's memory says nothing about ours
  EXPECT_EQ(Remote().size(), 10u);
}

TEST_F(DirSyncTest, WithoutMemoryOneListingFindsWhatS3AlreadyHolds) {
  WriteTree(dir_, SampleTree());
  {
    DirectorySync first = MakeSync();
    SyncOk(first);
  }
  WriteFile(dir_ / "result.csv", "a,b\n1,2\n3,4\n");  // grew: must go up again
  DirectorySync fresh = MakeSync();
  SyncStats stats = SyncOk(fresh);
  EXPECT_EQ(stats.uploaded_files, 1);
  EXPECT_EQ(stats.unchanged_files, 4);
  EXPECT_EQ(stats.requests, 1 + 1);
  EXPECT_EQ(Remote()[std::string(kPrefix) + "result.csv"], "a,b\n1,2\n3,4\n");
}

TEST_F(DirSyncTest, KeysFoundByListingWithoutALocalFileAreDeletedAtTheFinalSync) {
  Status put = s3_->PutObject(bucket_, std::string(kPrefix) + "stale.txt", "old").status();
  ASSERT_TRUE(put.ok()) << put.ToString();
  WriteFile(dir_ / "kept.txt", "kept");
  DirectorySync sync = MakeSync();
  SyncStats stats = SyncOk(sync, true);
  EXPECT_EQ(stats.uploaded_files, 1);
  EXPECT_EQ(stats.deleted_keys, 1);
  EXPECT_EQ(Remote(),
            (std::map<std::string, std::string>{{kPrefix + std::string("kept.txt"), "kept"}}));
}

TEST_F(DirSyncTest, MissingDirectoryIsAnEmptyOne) {
  DirectorySync sync = MakeSync({}, fs::path(tmp_) / "never-made");
  SyncStats stats = SyncOk(sync, true);
  EXPECT_EQ(stats.uploaded_files, 0);
  EXPECT_EQ(stats.deleted_keys, 0);
  EXPECT_TRUE(Remote().empty());
}

TEST_F(DirSyncTest, LargeFileGoesUpAsMultipartAndDownloadsIdentical) {
  const std::string big = RandomBytes(6 * kMiB, 42);
  WriteFile(dir_ / "model.ckpt", big);
  WriteFile(dir_ / "small.txt", "small");
  SyncOptions options;
  options.multipart_threshold = 5 * kMiB;
  options.part_size = 5 * kMiB;
  DirectorySync sync = MakeSync(options);
  SyncStats stats = SyncOk(sync);
  EXPECT_EQ(stats.uploaded_files, 2);
  // listing + (create, 2 parts, complete) + one PUT
  EXPECT_EQ(stats.requests, 1 + 4 + 1);
  EXPECT_EQ(LastWireCount("model.ckpt?uploads"), 1u);  // CreateMultipartUpload
  EXPECT_EQ(LastWireCount("partNumber="), 2u);
  EXPECT_EQ(LastWireCount("POST "), 2u);  // create and complete
  auto head = s3_->HeadObject(bucket_, std::string(kPrefix) + "model.ckpt");
  ASSERT_TRUE(head.ok()) << head.error().ToString();
  EXPECT_EQ(head->size, big.size());

  const fs::path back = fs::path(tmp_) / "back.ckpt";
  DownloadFileOptions download;
  download.multipart_threshold = 5 * kMiB;
  download.part_size = 5 * kMiB;
  Status fetched =
      s3_->DownloadFile(bucket_, std::string(kPrefix) + "model.ckpt", back.string(), download);
  ASSERT_TRUE(fetched.ok()) << fetched.ToString();
  EXPECT_TRUE(ReadFile(back) == big);
}

TEST_F(DirSyncTest, RestoreBringsBackTheTreeByteIdenticalAndTheNextSyncSendsNothing) {
  auto tree = SampleTree();
  tree["ckpt/state.bin"] = RandomBytes(6 * kMiB, 3);
  WriteTree(dir_, tree);
  SyncOptions options;
  options.multipart_threshold = 5 * kMiB;
  options.part_size = 5 * kMiB;
  {
    DirectorySync sync = MakeSync(options);
    SyncOk(sync);
  }
  const fs::path restored = fs::path(tmp_) / "restored";
  auto stats = RestoreDirectory(*s3_, bucket_, kPrefix, restored);
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  EXPECT_EQ(stats->files, 6);
  EXPECT_EQ(Tree(restored), tree);

  // Each file carries its object's LastModified as mtime ...
  auto listing = s3_->ListObjects(bucket_);
  ASSERT_TRUE(listing.ok());
  for (const auto& object : listing->objects) {
    auto modified = ParseIso8601(object.last_modified);
    ASSERT_TRUE(modified.has_value()) << object.last_modified;
    const std::int64_t expected =
        std::chrono::duration_cast<std::chrono::nanoseconds>(modified->time_since_epoch()).count();
    EXPECT_EQ(MtimeNs(restored / object.key.substr(std::string(kPrefix).size())), expected)
        << object.key;
  }
  // ... so a sync of the restored directory without memory finds everything
  // unchanged.
  DirectorySync after = MakeSync(options, restored);
  SyncStats resync = SyncOk(after);
  EXPECT_EQ(resync.uploaded_files, 0);
  EXPECT_EQ(resync.unchanged_files, 6);
  EXPECT_EQ(resync.requests, 1);
}

TEST_F(DirSyncTest, RestoreOfAnEmptyPrefixCreatesAnEmptyDirectory) {
  const fs::path restored = fs::path(tmp_) / "fresh";
  auto stats = RestoreDirectory(*s3_, bucket_, "p/nothing/", restored);
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  EXPECT_EQ(stats->files, 0);
  EXPECT_TRUE(fs::is_directory(restored));
  EXPECT_TRUE(fs::is_empty(restored));
}

TEST_F(DirSyncTest, RestoreRefusesAKeyThatLeadsThroughASymlink) {
  ASSERT_TRUE(s3_->PutObject(bucket_, std::string(kPrefix) + "link/planted", "x").ok());
  ASSERT_TRUE(s3_->PutObject(bucket_, std::string(kPrefix) + "fine.txt", "fine").ok());
  const fs::path restored = fs::path(tmp_) / "restored";
  const fs::path elsewhere = fs::path(tmp_) / "elsewhere";
  fs::create_directories(restored);
  fs::create_directories(elsewhere);
  fs::create_directory_symlink(elsewhere, restored / "link");
  auto stats = RestoreDirectory(*s3_, bucket_, kPrefix, restored);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.error().message.find("link/planted"), std::string::npos)
      << stats.error().ToString();
  EXPECT_NE(stats.error().message.find("symbolic link"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(elsewhere));
  EXPECT_FALSE(fs::exists(restored / "fine.txt"));  // the whole restore is refused
}

TEST_F(DirSyncTest, SymlinksAndSpecialFilesAreNeitherFollowedNorUploaded) {
  const fs::path outside = fs::path(tmp_) / "outside";
  WriteFile(outside / "secret.txt", "secret");
  WriteFile(dir_ / "real.txt", "real");
  fs::create_symlink(outside / "secret.txt", dir_ / "file-link");
  fs::create_directory_symlink(outside, dir_ / "dir-link");
  fs::create_symlink(dir_ / "gone", dir_ / "dangling");
  ASSERT_EQ(::mkfifo((dir_ / "pipe").c_str(), 0600), 0);  // reading it would block forever
  DirectorySync sync = MakeSync();
  SyncStats stats = SyncOk(sync);
  EXPECT_EQ(stats.uploaded_files, 1);
  EXPECT_EQ(Remote(),
            (std::map<std::string, std::string>{{kPrefix + std::string("real.txt"), "real"}}));
}

TEST_F(DirSyncTest, RaisedStopCancelsTheSyncBeforeAnyUpload) {
  WriteTree(dir_, SampleTree());
  StopSource stop;
  stop.Request();
  SyncOptions options;
  options.stop = &stop;
  DirectorySync sync = MakeSync(options);
  auto stats = sync.Sync(false);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.error().category, ErrorCategory::kCancelled);
  EXPECT_TRUE(Remote().empty());
}

// --- An in-memory S3 for what s3rver cannot stage
// ---------------------------------------------

// Objects in a map. Records DeleteObjects batch sizes; can raise a stop after N
// uploads.
class MemoryS3 final : public S3 {
 public:
  struct Object {
    std::string data;
    std::string last_modified = "2024-05-01T12:00:00.000Z";
  };

  void Put(const std::string& key, std::string data) {
    std::lock_guard<std::mutex> lock(mu_);
    objects_[key].data = std::move(data);
  }
  std::map<std::string, Object> objects() const {
    std::lock_guard<std::mutex> lock(mu_);
    return objects_;
  }
  std::vector<std::size_t> delete_batches() const {
    std::lock_guard<std::mutex> lock(mu_);
    return delete_batches_;
  }
  int uploads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return uploads_;
  }
  // After `count` more uploads, raise `stop`.
  void StopAfterUploads(int count, StopSource* stop) {
    stop_after_ = count;
    stop_ = stop;
  }

  Status UploadFile(const std::string&, const std::string& key, const std::string& path,
                    const UploadFileOptions& options) override {
    if (options.stop != nullptr && options.stop->Requested()) return Error::Cancelled("Upload");
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error::Io("UploadFile", "cannot open " + path);
    std::lock_guard<std::mutex> lock(mu_);
    objects_[key] = {std::string(std::istreambuf_iterator<char>(in), {}),
                     FormatIso8601(std::chrono::system_clock::now())};
    ++uploads_;
    if (stop_ != nullptr && --stop_after_ == 0) stop_->Request();
    return Status::Ok();
  }
  Result<ListObjectsPage> ListObjectsV2Page(const std::string&, const ListObjectsOptions& options,
                                            const std::string&) override {
    std::lock_guard<std::mutex> lock(mu_);
    ListObjectsPage page;
    for (const auto& [key, object] : objects_) {
      if (key.compare(0, options.prefix.size(), options.prefix) != 0) continue;
      page.objects.push_back({key, object.data.size(), "\"etag\"", object.last_modified});
    }
    return page;
  }
  Result<DeleteObjectsResult> DeleteObjects(const std::string&,
                                            const std::vector<std::string>& keys) override {
    std::lock_guard<std::mutex> lock(mu_);
    delete_batches_.push_back(keys.size());
    for (const std::string& key : keys) objects_.erase(key);
    return DeleteObjectsResult{};
  }
  Status GetObjectToFile(const std::string&, const std::string& key, const std::string& path,
                         std::optional<ByteRange>) override {
    std::string data;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = objects_.find(key);
      if (it == objects_.end()) return Error::InvalidInput("no such key " + key);
      data = it->second.data;
    }
    WriteFile(path, data);
    return Status::Ok();
  }
  Status DownloadFile(const std::string& bucket, const std::string& key, const std::string& path,
                      const DownloadFileOptions&) override {
    return GetObjectToFile(bucket, key, path, std::nullopt);
  }

  // Not used by DirectorySync or RestoreDirectory.
  Status CreateBucket(const std::string&) override { return Unused(); }
  Status EnsureBucket(const std::string&) override { return Unused(); }
  Status HeadBucket(const std::string&) override { return Unused(); }
  Result<std::string> PutObject(const std::string&, const std::string&, std::string_view,
                                const PutObjectOptions&) override {
    return Unused();
  }
  Result<std::string> PutObjectFromFile(const std::string&, const std::string&, const std::string&,
                                        const PutObjectOptions&) override {
    return Unused();
  }
  Result<std::string> GetObject(const std::string&, const std::string&,
                                std::optional<ByteRange>) override {
    return Unused();
  }
  Result<S3ObjectInfo> HeadObject(const std::string&, const std::string&) override {
    return Unused();
  }
  Status DeleteObject(const std::string&, const std::string&) override { return Unused(); }
  Result<std::string> CreateMultipartUpload(const std::string&, const std::string&,
                                            const PutObjectOptions&) override {
    return Unused();
  }
  Result<std::string> UploadPart(const std::string&, const std::string&, const std::string&, int,
                                 const FileRange&) override {
    return Unused();
  }
  Result<std::string> CompleteMultipartUpload(const std::string&, const std::string&,
                                              const std::string&,
                                              std::vector<CompletedPart>) override {
    return Unused();
  }
  Status AbortMultipartUpload(const std::string&, const std::string&, const std::string&) override {
    return Unused();
  }

 private:
  static Error Unused() { return Error::InvalidInput("not part of the in-memory S3"); }

  mutable std::mutex mu_;
  std::map<std::string, Object> objects_;
  std::vector<std::size_t> delete_batches_;
  int uploads_ = 0;
  int stop_after_ = 0;
  StopSource* stop_ = nullptr;
};

class DirSyncFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = MakeTempDir("dir-sync-fake");
    root_ = fs::path(tmp_) / "a" / "b";  // two levels, so "../.." would still land in tmp_
    fs::create_directories(root_);
  }
  void TearDown() override {
    if (!HasFailure() && !tmp_.empty()) fs::remove_all(tmp_);
  }

  std::shared_ptr<MemoryS3> s3_ = std::make_shared<MemoryS3>();
  std::string tmp_;
  fs::path root_;
};

TEST_F(DirSyncFakeTest, RestoreRefusesKeysThatEscapeTheDirectoryAndWritesNothing) {
  for (const std::string relative :
       {"../evil", "a/../../x", "../../escaped", "/etc/abs", "./dot", "a//b", "a/."}) {
    SCOPED_TRACE(relative);
    MemoryS3 s3;
    s3.Put("ckpt/ok.txt", "ok");
    s3.Put("ckpt/" + relative, "evil");
    const fs::path restored = root_ / "restored";
    auto stats = RestoreDirectory(s3, "bucket", "ckpt/", restored);
    ASSERT_FALSE(stats.ok());
    EXPECT_EQ(stats.error().category, ErrorCategory::kInvalidInput);
    EXPECT_NE(stats.error().message.find("ckpt/" + relative), std::string::npos)
        << stats.error().message;
    // Nothing anywhere: not the safe file, not the escaping one.
    std::set<std::string> written;
    for (const auto& entry : fs::recursive_directory_iterator(tmp_)) {
      if (!entry.is_directory()) written.insert(entry.path().string());
    }
    EXPECT_TRUE(written.empty()) << *written.begin();
  }
}

TEST_F(DirSyncFakeTest, FinalSyncDeletesInBatchesOfAThousand) {
  for (int i = 0; i < 2500; ++i) WriteFile(root_ / ("f" + std::to_string(i)), "x");
  DirectorySync sync(s3_, "bucket", "out/", root_);
  ASSERT_TRUE(sync.Sync(false).ok());
  for (int i = 0; i < 2500; ++i) fs::remove(root_ / ("f" + std::to_string(i)));
  auto stats = sync.Sync(true);
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  EXPECT_EQ(stats->deleted_keys, 2500);
  EXPECT_EQ(stats->requests, 3);
  EXPECT_EQ(s3_->delete_batches(), (std::vector<std::size_t>{1000, 1000, 500}));
  EXPECT_TRUE(s3_->objects().empty());
}

TEST_F(DirSyncFakeTest, StopMidSyncCancelsAndTheNextSyncSendsOnlyTheRest) {
  for (int i = 0; i < 10; ++i) WriteFile(root_ / ("f" + std::to_string(i)), "data");
  StopSource stop;
  s3_->StopAfterUploads(3, &stop);
  SyncOptions options;
  options.concurrency = 1;
  options.stop = &stop;
  DirectorySync stopped(s3_, "bucket", "out/", root_, options);
  auto cancelled = stopped.Sync(false);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.error().category, ErrorCategory::kCancelled);
  EXPECT_EQ(s3_->uploads(), 3);

  options.stop = nullptr;
  DirectorySync resumed(s3_, "bucket", "out/", root_, options);
  auto stats = resumed.Sync(false);
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  // Without a manifest, the listing shows the three sent before the stop.
  EXPECT_EQ(stats->uploaded_files, 7);
  EXPECT_EQ(stats->unchanged_files, 3);
  EXPECT_EQ(stats->requests, 1 + 7);
  EXPECT_EQ(s3_->objects().size(), 10u);
}

TEST_F(DirSyncFakeTest, StoppedSyncKeepsWhatItSentInTheManifest) {
  for (int i = 0; i < 10; ++i) WriteFile(root_ / ("f" + std::to_string(i)), "data");
  StopSource stop;
  s3_->StopAfterUploads(4, &stop);
  SyncOptions options;
  options.concurrency = 1;
  options.stop = &stop;
  options.manifest_path = fs::path(tmp_) / "manifest.json";
  {
    DirectorySync stopped(s3_, "bucket", "out/", root_, options);
    ASSERT_FALSE(stopped.Sync(false).ok());
  }
  options.stop = nullptr;
  DirectorySync resumed(s3_, "bucket", "out/", root_, options);
  auto stats = resumed.Sync(false);
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  EXPECT_EQ(stats->uploaded_files, 6);
  EXPECT_EQ(stats->unchanged_files, 4);
  EXPECT_EQ(stats->requests, 6);
}

TEST_F(DirSyncFakeTest, ManifestInsideTheDirectoryIsNotUploaded) {
  WriteFile(root_ / "data.txt", "data");
  SyncOptions options;
  options.manifest_path = root_ / ".manifest.json";
  DirectorySync sync(s3_, "bucket", "out/", root_, options);
  ASSERT_TRUE(sync.Sync(false).ok());
  WriteFile(root_ / "more.txt", "more");
  auto stats = sync.Sync(true);
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  EXPECT_EQ(stats->uploaded_files, 1);
  std::set<std::string> keys;
  for (const auto& [key, object] : s3_->objects()) keys.insert(key);
  EXPECT_EQ(keys, (std::set<std::string>{"out/data.txt", "out/more.txt"}));
}

}  // namespace
}  // namespace spotgrid::agent
