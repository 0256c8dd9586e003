// dir_sync_tool: syncs one directory to S3 with DirectorySync, for
// bench/dir_sync_bench.py.
//
// Usage: dir_sync_tool DIR s3://BUCKET/PREFIX/ [--manifest PATH] [--final]
//                      [--concurrency N] [--ensure-bucket] [--restore]
// Endpoints, region and credentials come from the environment as for the agent.
// Prints the SyncStats (or RestoreStats with --restore) as one JSON line; exits
// 1 on failure.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/dir_sync.h"
#include "spotgrid/aws/aws_client.h"
#include "spotgrid/services/s3_client.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: dir_sync_tool DIR s3://BUCKET/PREFIX/ "
               "[--manifest PATH] [--final] "
               "[--concurrency N] [--ensure-bucket] [--restore]\n");
  return 2;
}

int Fail(const spotgrid::Error& error) {
  std::fprintf(stderr, "dir_sync_tool: %s\n", error.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  const std::string dir = argv[1];
  const std::string url = argv[2];
  if (url.rfind("s3://", 0) != 0) return Usage();
  const std::size_t slash = url.find('/', 5);
  const std::string bucket =
      url.substr(5, slash == std::string::npos ? std::string::npos : slash - 5);
  const std::string prefix = slash == std::string::npos ? "" : url.substr(slash + 1);
  spotgrid::agent::SyncOptions options;
  bool final_sync = false, ensure_bucket = false, restore = false;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--final") {
      final_sync = true;
    } else if (arg == "--ensure-bucket") {
      ensure_bucket = true;
    } else if (arg == "--restore") {
      restore = true;
    } else if (arg == "--manifest" && i + 1 < argc) {
      options.manifest_path = argv[++i];
    } else if (arg == "--concurrency" && i + 1 < argc) {
      options.concurrency = std::atoi(argv[++i]);
    } else {
      return Usage();
    }
  }
  auto context = spotgrid::AwsContext::Create();
  if (!context.ok()) return Fail(context.error());
  auto s3 = spotgrid::S3Client::Create(*context);
  if (!s3.ok()) return Fail(s3.error());
  if (ensure_bucket) {
    if (spotgrid::Status ensured = (*s3)->EnsureBucket(bucket); !ensured.ok())
      return Fail(ensured.error());
  }
  if (restore) {
    auto stats = spotgrid::agent::RestoreDirectory(**s3, bucket, prefix, dir, options.concurrency);
    if (!stats.ok()) return Fail(stats.error());
    std::printf("%s\n",
                nlohmann::json{{"files", stats->files}, {"bytes", stats->bytes}}.dump().c_str());
    return 0;
  }
  spotgrid::agent::DirectorySync sync(*s3, bucket, prefix, dir, options);
  auto stats = sync.Sync(final_sync);
  if (!stats.ok()) return Fail(stats.error());
  const nlohmann::json out = {{"uploaded_files", stats->uploaded_files},
                              {"uploaded_bytes", stats->uploaded_bytes},
                              {"unchanged_files", stats->unchanged_files},
                              {"deleted_keys", stats->deleted_keys},
                              {"requests", stats->requests}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
