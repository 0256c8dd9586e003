// core/file_io: whole-file reads and crash-safe writes.
#include "spotgrid/core/file_io.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "support/test_env.h"

namespace spotgrid {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(FileIoTest, ReadFileReturnsEveryByteIncludingNul) {
  const testing::ScopedTempDir scoped("file_io");
  const fs::path dir = scoped.path();
  const std::string data("a\0b\nc", 5);
  ASSERT_TRUE(WriteFileAtomically(dir / "f", data).ok());
  auto read = ReadFile(dir / "f");
  ASSERT_TRUE(read.ok()) << read.error().ToString();
  EXPECT_EQ(*read, data);
}

TEST(FileIoTest, MissingFileIsNotFoundNamingTheOperationAndPath) {
  const testing::ScopedTempDir scoped("file_io");
  const fs::path dir = scoped.path();
  auto read = ReadFile(dir / "absent", "read token file");
  ASSERT_FALSE(read.ok());
  EXPECT_TRUE(read.error().IsNotFound());
  EXPECT_EQ(read.error().operation, "read token file");
  EXPECT_NE(read.error().message.find("absent"), std::string::npos);
}

TEST(FileIoTest, UnreadableFileIsAnIoError) {
  const testing::ScopedTempDir scoped("file_io");
  const fs::path dir = scoped.path();
  auto read = ReadFile(dir);  // a directory cannot be read as a file
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().category, ErrorCategory::kIo);
}

TEST(FileIoTest, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  const testing::ScopedTempDir scoped("file_io");
  const fs::path dir = scoped.path();
  ASSERT_TRUE(WriteFileAtomically(dir / "f", "old").ok());
  ASSERT_TRUE(WriteFileAtomically(dir / "f", "new contents").ok());
  EXPECT_EQ(*ReadFile(dir / "f"), "new contents");
  EXPECT_EQ(Names(dir), std::vector<std::string>{"f"});
}

TEST(FileIoTest, AtomicWriteGivesTheRequestedMode) {
  const testing::ScopedTempDir scoped("file_io");
  const fs::path dir = scoped.path();
  ASSERT_TRUE(
      WriteFileAtomically(dir / "secret", "s", fs::perms::owner_read | fs::perms::owner_write)
          .ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(FileIoTest, FailedWriteLeavesTheOldFileAndNoTemporary) {
  const testing::ScopedTempDir scoped("file_io");
  const fs::path dir = scoped.path();
  fs::create_directory(dir / "target");  // renaming a file over a directory fails
  Status status = WriteFileAtomically(dir / "target", "data");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(Names(dir), std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(dir / "target"));
}

}  // namespace
}  // namespace spotgrid
