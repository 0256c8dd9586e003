#include "support/test_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace spotgrid::testing {
namespace {

std::mutex g_mu;
bool g_loaded = false;
std::map<std::string, std::string> g_values;

}  // namespace

void UseEmulators() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_loaded) return;
  const char* path = std::getenv("SPOTGRID_TEST_ENV_FILE");
  if (path == nullptr) {
    FAIL() << "SPOTGRID_TEST_ENV_FILE is not set: run integration tests through ctest (the "
              "`emulators` fixture starts them) or `tests/harness/launcher.py run -- <test>`";
  }
  std::ifstream in(path);
  if (!in) FAIL() << "cannot read emulator env file " << path << " (did emulators.start run?)";
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    g_values[key] = value;
    ::setenv(key.c_str(), value.c_str(), 1);
  }
  g_loaded = true;
}

std::string EmulatorValue(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_values.find(name);
  return it == g_values.end() ? std::string() : it->second;
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> dist(0, 0xffff);
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%04x", dist(rng));
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + suffix;
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds deadline,
               std::chrono::milliseconds interval) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(interval);  // polling a condition, not synchronising by time
  }
}

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << tmpl;
    return {};
  }
  return tmpl;
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

}  // namespace spotgrid::testing
