// Access to the emulators and fakes that the `emulators` ctest fixture started.
//
// The launcher (tests/harness/launcher.py) writes KEY=VALUE lines to the file named by
// SPOTGRID_TEST_ENV_FILE: AWS_ENDPOINT_URL_SQS / _DYNAMODB / _S3 / _EC2 / _AUTO_SCALING,
// AWS_EC2_METADATA_SERVICE_ENDPOINT, SPOTGRID_FAKE_IMDS_URL and SPOTGRID_FAKE_AWS_URL (the
// fakes' roots; a path segment after them selects an isolated tenant), test credentials and
// AWS_REGION.
// UseEmulators() exports them into this process so the product's normal environment-based
// resolution finds them; a test that needs them fails (never skips) when they are missing.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace spotgrid::testing {

// Loads the launcher's env file into the process environment (once). Fails the current test
// with a message naming the missing file when the fixture did not run.
void UseEmulators();

// The value the launcher exported for `name` (after UseEmulators()), or "" when absent.
std::string EmulatorValue(const std::string& name);

// A name no other test (or earlier run) uses: "<prefix>-<pid>-<counter>-<random>",
// lower-case, valid as a queue, table and bucket name.
std::string UniqueName(const std::string& prefix);

// Polls `condition` every `interval` until it holds or `deadline` passes; true if it held.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds deadline,
               std::chrono::milliseconds interval = std::chrono::milliseconds(20));

// A fresh temporary directory, removed by the caller (or left for post-mortem on failure).
std::string MakeTempDir(const std::string& prefix);

// A MakeTempDir directory removed with everything in it when the object goes out of scope.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix) : path_(MakeTempDir(prefix)) {}
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace spotgrid::testing
