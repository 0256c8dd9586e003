// The test-support ChildProcess helper: exit codes, signals, logs, port files, and that its
// destructor kills exactly its own process group.
#include "support/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/test_env.h"

namespace spotgrid::testing {
namespace {

class ChildProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("child-process-test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ChildProcessOptions Shell(const std::string& script) {
    ChildProcessOptions options;
    options.argv = {"sh", "-c", script};
    options.log_path = dir_ + "/child.log";
    return options;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  std::string dir_;
};

TEST_F(ChildProcessTest, ReportsExitCodeAndCapturesStdoutAndStderrInTheLog) {
  auto child = ChildProcess::Start(Shell("echo out; echo err >&2; exit 3"));
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  ASSERT_TRUE((*child)->Wait(std::chrono::seconds(10)));
  EXPECT_EQ((*child)->ExitCode(), 3);
  EXPECT_FALSE((*child)->TermSignal().has_value());
  EXPECT_EQ((*child)->ReadLog(), "out\nerr\n");
}

TEST_F(ChildProcessTest, PassesEnvironmentAdditionsAndRemovals) {
  ::setenv("SPOTGRID_CHILD_TEST_REMOVED", "present", 1);
  ChildProcessOptions options =
      Shell("echo \"$SPOTGRID_CHILD_TEST_ADDED:${SPOTGRID_CHILD_TEST_REMOVED:-unset}\"; pwd");
  options.env = {{"SPOTGRID_CHILD_TEST_ADDED", "added"}};
  options.unset_env = {"SPOTGRID_CHILD_TEST_REMOVED"};
  options.working_dir = dir_;
  auto child = ChildProcess::Start(options);
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  ASSERT_TRUE((*child)->Wait(std::chrono::seconds(10)));
  EXPECT_EQ((*child)->ReadLog(),
            "added:unset\n" + std::filesystem::canonical(dir_).string() + "\n");
  ::unsetenv("SPOTGRID_CHILD_TEST_REMOVED");
}

TEST_F(ChildProcessTest, SignalStopsTheProcessAndReportsTheSignal) {
  auto child = ChildProcess::Start(Shell("exec sleep 60"));
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  EXPECT_TRUE((*child)->Running());
  EXPECT_FALSE((*child)->Wait(std::chrono::milliseconds(50)));
  ASSERT_TRUE((*child)->Signal(SIGTERM));
  ASSERT_TRUE((*child)->Wait(std::chrono::seconds(10)));
  EXPECT_EQ((*child)->TermSignal(), SIGTERM);
  EXPECT_FALSE((*child)->ExitCode().has_value());
  EXPECT_FALSE((*child)->Signal(SIGTERM)) << "no signal to a process that has exited";
}

TEST_F(ChildProcessTest, RunsInItsOwnProcessGroup) {
  auto child = ChildProcess::Start(Shell("exec sleep 60"));
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  EXPECT_EQ(::getpgid((*child)->Pid()), (*child)->Pid());
  EXPECT_NE(::getpgid((*child)->Pid()), ::getpgrp());
}

TEST_F(ChildProcessTest, DestructorKillsTheWholeProcessGroup) {
  const std::string pid_file = dir_ + "/grandchild.pid";
  pid_t grandchild = 0;
  {
    auto child = ChildProcess::Start(Shell("sleep 60 & echo $! > " + pid_file + "; wait"));
    ASSERT_TRUE(child.ok()) << child.error().ToString();
    ASSERT_TRUE(WaitUntil([&] { return !ReadFile(pid_file).empty(); }, std::chrono::seconds(10)));
    grandchild = std::stoi(ReadFile(pid_file));
    ASSERT_EQ(::kill(grandchild, 0), 0);
  }
  // The grandchild was killed: it is gone, or a zombie until its new parent reaps it.
  auto dead = [&] {
    if (::kill(grandchild, 0) != 0 && errno == ESRCH) return true;
    std::string stat = ReadFile("/proc/" + std::to_string(grandchild) + "/stat");
    auto paren = stat.rfind(')');
    return paren != std::string::npos && stat.size() > paren + 2 && stat[paren + 2] == 'Z';
  };
  EXPECT_TRUE(WaitUntil(dead, std::chrono::seconds(10)));
}

TEST_F(ChildProcessTest, WaitForPortFileReadsThePort) {
  const std::string port_file = dir_ + "/server.port";
  auto child = ChildProcess::Start(Shell("echo 4567 > " + port_file + ".tmp && mv " + port_file +
                                         ".tmp " + port_file + " && exec sleep 60"));
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  auto port = (*child)->WaitForPortFile(port_file, std::chrono::seconds(10));
  ASSERT_TRUE(port.ok()) << port.error().ToString();
  EXPECT_EQ(*port, 4567);
  EXPECT_EQ((*child)->port(), 4567);
}

TEST_F(ChildProcessTest, WaitForPortFileFailsWithTheLogWhenTheProcessExitsFirst) {
  auto child = ChildProcess::Start(Shell("echo 'cannot bind' >&2; exit 1"));
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  auto port = (*child)->WaitForPortFile(dir_ + "/never.port", std::chrono::seconds(10));
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.error().message.find("exited before writing"), std::string::npos);
  EXPECT_NE(port.error().message.find("cannot bind"), std::string::npos);
}

TEST_F(ChildProcessTest, WaitForPortFileGivesUpAtTheDeadline) {
  auto child = ChildProcess::Start(Shell("exec sleep 60"));
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  auto port = (*child)->WaitForPortFile(dir_ + "/never.port", std::chrono::milliseconds(100));
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.error().message.find("did not write"), std::string::npos);
}

TEST_F(ChildProcessTest, StartFailsWhenTheProgramCannotBeExecuted) {
  ChildProcessOptions options;
  options.argv = {dir_ + "/no-such-program"};
  auto child = ChildProcess::Start(options);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.error().category, ErrorCategory::kIo);
  EXPECT_NE(child.error().message.find("no-such-program"), std::string::npos);
}

}  // namespace
}  // namespace spotgrid::testing
