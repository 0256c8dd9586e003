// The agent's face to systemd: sd_notify datagrams on a NOTIFY_SOCKET of the
// test's own, the watchdog interval from WATCHDOG_USEC, and log lines carrying
// the unit's context (journal fields, or a "[job/unit#n]" prefix on stderr).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/systemd.h"
#include "support/test_env.h"

namespace spotgrid::agent {
namespace {

using namespace std::chrono_literals;

// Sets (or unsets, for nullopt) a process environment variable for one test and
// puts the old value back afterwards: sd_notify and sd_watchdog_enabled read
// the real environment.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("notify");
    const std::string path = dir_ + "/notify.sock";
    socket_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(socket_, 0) << std::strerror(errno);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    ASSERT_LT(path.size(), sizeof address.sun_path) << path;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(bind(socket_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
        << std::strerror(errno);
    notify_socket_.emplace("NOTIFY_SOCKET", path);
    notifier_ = MakeSystemdNotifier();
  }

  void TearDown() override {
    notify_socket_.reset();
    if (socket_ >= 0) close(socket_);
    std::filesystem::remove_all(dir_);
  }

  // The next datagram, or "<nothing within 5 s>".
  std::string Receive() {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "<nothing within 5 s>";
      pollfd entry{socket_, POLLIN, 0};
      int ready = poll(&entry, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return "<nothing within 5 s>";
      char buffer[4096];
      ssize_t got = recv(socket_, buffer, sizeof buffer, 0);
      if (got < 0) return std::string("<recv failed: ") + std::strerror(errno) + ">";
      return std::string(buffer, static_cast<std::size_t>(got));
    }
  }

  std::string dir_;
  int socket_ = -1;
  std::optional<ScopedEnv> notify_socket_;
  std::unique_ptr<Notifier> notifier_;
};

TEST_F(NotifierTest, ReadySendsReadyOnTheNotifySocket) {
  notifier_->Ready();
  EXPECT_EQ(Receive(), "READY=1");
}

TEST_F(NotifierTest, StatusSendsItsTextOnOneLine) {
  notifier_->Status("2/4 slots busy: job-1/u-7, job-1/u-9");
  EXPECT_EQ(Receive(), "STATUS=2/4 slots busy: job-1/u-7, job-1/u-9");
  // A newline would end the assignment and start another one.
  notifier_->Status("first\nREADY=1");
  EXPECT_EQ(Receive(), "STATUS=first READY=1");
}

TEST_F(NotifierTest, WatchdogAndStoppingSendTheirAssignments) {
  notifier_->Watchdog();
  EXPECT_EQ(Receive(), "WATCHDOG=1");
  notifier_->Stopping();
  EXPECT_EQ(Receive(), "STOPPING=1");
}

TEST_F(NotifierTest, NothingIsSentWithoutNotifySocket) {
  {
    ScopedEnv unset("NOTIFY_SOCKET", std::nullopt);
    notifier_->Ready();
    notifier_->Watchdog();
  }
  // Back under systemd: the first datagram is this one, so the two above went
  // nowhere.
  notifier_->Status("after");
  EXPECT_EQ(Receive(), "STATUS=after");
}

TEST_F(NotifierTest, WatchdogIntervalIsHalfOfWatchdogUsecForThisProcess) {
  ScopedEnv usec("WATCHDOG_USEC", "3000000");
  ScopedEnv pid("WATCHDOG_PID", std::to_string(getpid()));
  EXPECT_EQ(notifier_->WatchdogInterval(), std::chrono::microseconds(1'500'000));
}

TEST_F(NotifierTest, WatchdogIntervalWithoutPidAppliesToThisProcess) {
  ScopedEnv usec("WATCHDOG_USEC", "20000000");
  ScopedEnv pid("WATCHDOG_PID", std::nullopt);
  EXPECT_EQ(notifier_->WatchdogInterval(), std::chrono::microseconds(10'000'000));
}

TEST_F(NotifierTest, NoWatchdogWhenUnsetOrMeantForAnotherProcess) {
  ScopedEnv pid("WATCHDOG_PID", std::nullopt);
  {
    ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
    EXPECT_EQ(notifier_->WatchdogInterval(), std::nullopt);
  }
  ScopedEnv usec("WATCHDOG_USEC", "3000000");
  ScopedEnv other_pid("WATCHDOG_PID", std::to_string(getpid() + 1));
  EXPECT_EQ(notifier_->WatchdogInterval(), std::nullopt);
}

// --- Log context and journal fields ---

bool HasField(const std::vector<std::string>& fields, const std::string& field) {
  return std::find(fields.begin(), fields.end(), field) != fields.end();
}

TEST(JournalFieldsTest, CarryMessagePriorityAndIdentifierOutsideAContext) {
  auto fields = JournalFields(spdlog::level::info, "claimed nothing");
  EXPECT_EQ(fields, (std::vector<std::string>{"MESSAGE=claimed nothing", "PRIORITY=6",
                                              "SYSLOG_IDENTIFIER=spotgrid-agent"}));
}

TEST(JournalFieldsTest, PriorityFollowsSyslogLevels) {
  const std::vector<std::pair<spdlog::level::level_enum, std::string>> cases = {
      {spdlog::level::trace, "PRIORITY=7"}, {spdlog::level::debug, "PRIORITY=7"},
      {spdlog::level::info, "PRIORITY=6"},  {spdlog::level::warn, "PRIORITY=4"},
      {spdlog::level::err, "PRIORITY=3"},   {spdlog::level::critical, "PRIORITY=2"}};
  for (const auto& [level, priority] : cases) {
    EXPECT_TRUE(HasField(JournalFields(level, "x"), priority)) << priority;
  }
}

TEST(JournalFieldsTest, CarryTheThreadsUnitInsideALogContext) {
  LogContext context("job-1", "u-0042", 3);
  auto fields = JournalFields(spdlog::level::warn, "line one\nline two");
  EXPECT_TRUE(HasField(fields, "MESSAGE=line one\nline two"));
  EXPECT_TRUE(HasField(fields, "PRIORITY=4"));
  EXPECT_TRUE(HasField(fields, "SYSLOG_IDENTIFIER=spotgrid-agent"));
  EXPECT_TRUE(HasField(fields, "SPOTGRID_JOB=job-1"));
  EXPECT_TRUE(HasField(fields, "SPOTGRID_UNIT=u-0042"));
  EXPECT_TRUE(HasField(fields, "SPOTGRID_ATTEMPT=3"));
  EXPECT_EQ(LogContextPrefix(), "[job-1/u-0042#3] ");
}

TEST(LogContextTest, NestedContextRestoresTheOuterOneAndEndsClean) {
  EXPECT_EQ(LogContextPrefix(), "");
  {
    LogContext outer("job-1", "u-1", 1);
    {
      LogContext inner("job-2", "u-2", 5);
      EXPECT_EQ(LogContextPrefix(), "[job-2/u-2#5] ");
    }
    EXPECT_EQ(LogContextPrefix(), "[job-1/u-1#1] ");
  }
  EXPECT_EQ(LogContextPrefix(), "");
  EXPECT_EQ(JournalFields(spdlog::level::info, "x").size(), 3u);
}

TEST(LogContextTest, IsPerThread) {
  LogContext mine("job-1", "u-1", 1);
  std::string seen_elsewhere = "<not run>";
  std::thread other([&] { seen_elsewhere = LogContextPrefix(); });
  other.join();
  EXPECT_EQ(seen_elsewhere, "");
  EXPECT_EQ(LogContextPrefix(), "[job-1/u-1#1] ");
}

// --- Where the logger writes ---

std::string DeviceInode(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return "<fstat failed>";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

TEST(JournalStreamTest, MatchesOnlyTheDeviceAndInodeOfTheFd) {
  const std::string dir = testing::MakeTempDir("journal-stream");
  const std::string path = dir + "/stream";
  int fd = open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_TRUE(IsJournalStream(fd, DeviceInode(fd)));
  EXPECT_FALSE(
      IsJournalStream(fd, std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)));
  EXPECT_FALSE(
      IsJournalStream(fd, std::to_string(st.st_dev + 1) + ":" + std::to_string(st.st_ino)));
  for (const char* bad : {"", ":", "12", "12:", ":34", "a:b", "1:2:3"}) {
    EXPECT_FALSE(IsJournalStream(fd, bad)) << bad;
  }
  close(fd);
  std::filesystem::remove_all(dir);
}

// Points this process's stderr at a file while alive; Text() reads what was
// written.
class CapturedStderr {
 public:
  explicit CapturedStderr(const std::string& path) : path_(path) {
    std::fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  ~CapturedStderr() { Restore(); }
  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
  }
  std::string Text() const {
    std::ifstream in(path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string path_;
  int saved_ = -1;
};

TEST(AgentLoggerTest, StderrLinesCarryTheContextPrefix) {
  const std::string dir = testing::MakeTempDir("agent-logger");
  ScopedEnv journal("JOURNAL_STREAM", std::nullopt);
  CapturedStderr captured(dir + "/stderr");
  {
    auto logger = MakeAgentLogger("info");
    {
      LogContext context("job-9", "u-0007", 2);
      logger->info("command started");
    }
    logger->info("idle");
    logger->debug("below the level");
    logger->flush();
  }
  captured.Restore();
  const std::string text = captured.Text();
  EXPECT_NE(text.find("info [job-9/u-0007#2] command started\n"), std::string::npos) << text;
  EXPECT_NE(text.find("info idle\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("below the level"), std::string::npos) << text;
  std::filesystem::remove_all(dir);
}

TEST(AgentLoggerTest, StderrThatIsTheJournalStreamGetsNoTextLines) {
  const std::string dir = testing::MakeTempDir("agent-logger");
  CapturedStderr captured(dir + "/stderr");
  // systemd's JOURNAL_STREAM names stderr: lines go to the journal with their
  // fields instead, so nothing is written to the stream as text.
  ScopedEnv journal("JOURNAL_STREAM", DeviceInode(STDERR_FILENO));
  {
    auto logger = MakeAgentLogger("info");
    logger->warn("to the journal");
    logger->flush();
  }
  captured.Restore();
  EXPECT_EQ(captured.Text(), "");
  std::filesystem::remove_all(dir);
}

TEST(AgentLoggerTest, JournalStreamOfAnotherFileLeavesLinesOnStderr) {
  const std::string dir = testing::MakeTempDir("agent-logger");
  // Inherited from a parent whose stderr was the journal; ours is a file now.
  ScopedEnv journal("JOURNAL_STREAM", "1:1");
  CapturedStderr captured(dir + "/stderr");
  {
    auto logger = MakeAgentLogger("info");
    logger->warn("to stderr");
  }
  captured.Restore();
  EXPECT_NE(captured.Text().find("to stderr"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(AgentLoggerTest, LevelFollowsTheSettingAndUnknownMeansInfo) {
  EXPECT_EQ(MakeAgentLogger("warn")->level(), spdlog::level::warn);
  EXPECT_EQ(MakeAgentLogger("trace")->level(), spdlog::level::trace);
  EXPECT_EQ(MakeAgentLogger("chatty")->level(), spdlog::level::info);
}

}  // namespace
}  // namespace spotgrid::agent
