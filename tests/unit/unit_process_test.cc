// UnitProcess against real processes: /bin/sh, coreutils and the `nobody` user.
// The tests run as root in the sandbox (needed for the user switch).
// Synchronisation is by files the command writes, a FIFO the test writes, and
// conditions polled with a deadline; never by sleeping.
#include "agent/unit_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "support/test_env.h"

namespace spotgrid::agent {
namespace {

namespace fs = std::filesystem;
using spotgrid::testing::MakeTempDir;
using spotgrid::testing::WaitUntil;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kPath = "/usr/bin:/bin";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// One field of /proc/<pid>/stat after the command name: index 0 is the state, 2
// the pgrp.
std::optional<std::string> StatField(pid_t pid, size_t index) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (size_t i = 0; i <= index; ++i) {
    if (!(fields >> field)) return std::nullopt;
  }
  return field;
}

// The pids of process group `pgid` that are still alive (zombies are dead, only
// un-reaped).
std::vector<pid_t> LiveMembersOfGroup(pid_t pgid) {
  std::vector<pid_t> live;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    auto state = StatField(pid, 0);
    auto pgrp = StatField(pid, 2);
    if (!state || !pgrp || std::stoi(*pgrp) != pgid) continue;
    if (*state != "Z" && *state != "X") live.push_back(pid);
  }
  return live;
}

// Reaps the exited members of `pgid` this process inherited as their
// sub-reaper.
void ReapOrphans(pid_t pgid) {
  siginfo_t info{};
  while (::waitid(P_PGID, static_cast<id_t>(pgid), &info, WEXITED | WNOHANG) == 0 &&
         info.si_pid != 0) {
    info = {};
  }
}

bool GroupIsGone(pid_t pgid) { return ::kill(-pgid, 0) == -1 && errno == ESRCH; }

class UnitProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The sandbox's init does not reap orphans, and a killed grandchild of a
    // unit becomes one. As sub-reaper this test process inherits them, so a
    // test can reap them and then prove with kill(-pgid, 0) that nothing of the
    // group is left. (On a worker, systemd reaps.)
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  }

  void SetUp() override {
    dir_ = MakeTempDir("unit-process");
    ASSERT_FALSE(dir_.empty());
    fs::create_directories(dir_ / "work");
  }

  void TearDown() override {
    // Only when the product failed to: no process of a tested group outlives the test. A group
    // with live members still holds its id, so this cannot reach anybody else's processes.
    // Then reap what this sub-reaper inherited, so no zombie is left to an init that never
    // reaps (the shells themselves were reaped by the destructor).
    for (pid_t pgid : groups_) {
      if (!LiveMembersOfGroup(pgid).empty()) ::kill(-pgid, SIGKILL);
      WaitUntil(
          [&] {
            ReapOrphans(pgid);
            return GroupIsGone(pgid);
          },
          seconds(5));
    }
    if (!HasFailure()) fs::remove_all(dir_);
  }

  ProcessSpec Spec(const std::string& command) {
    ProcessSpec spec;
    spec.command = command;
    spec.env = {{"PATH", kPath}};
    spec.cwd = dir_ / "work";
    spec.stdout_path = dir_ / "stdout.log";
    spec.stderr_path = dir_ / "stderr.log";
    return spec;
  }

  std::unique_ptr<UnitProcess> StartOrDie(const ProcessSpec& spec) {
    auto process = UnitProcess::Start(spec);
    EXPECT_TRUE(process.ok()) << process.status().ToString();
    if (!process.ok()) return nullptr;
    groups_.push_back((*process)->pid());
    return std::move(*process);
  }

  // Waits for the file the command writes once it is ready; its content,
  // trimmed.
  std::string AwaitFile(const fs::path& path) {
    EXPECT_TRUE(
        WaitUntil([&] { return ReadFile(path).find('\n') != std::string::npos; }, seconds(10)))
        << path;
    std::string content = ReadFile(path);
    return content.substr(0, content.find('\n'));
  }

  fs::path dir_;
  std::vector<pid_t> groups_;  // of every process started
};

TEST_F(UnitProcessTest, ExitCodeIsCaptured) {
  auto process = StartOrDie(Spec("exit 7"));
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 7);
  EXPECT_FALSE(exit->signal);
  EXPECT_FALSE(exit->Succeeded());
  EXPECT_EQ(exit->ShellStatus(), 7);

  auto ok = StartOrDie(Spec("true"));
  ASSERT_TRUE(ok);
  auto ok_exit = ok->WaitFor(seconds(10));
  ASSERT_TRUE(ok_exit);
  EXPECT_TRUE(ok_exit->Succeeded());
  EXPECT_EQ(ok_exit->ShellStatus(), 0);
}

TEST_F(UnitProcessTest, DeathBySignalIsReported) {
  auto process = StartOrDie(Spec("kill -USR1 $$; exit 0"));
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit);
  EXPECT_FALSE(exit->exit_code);
  EXPECT_EQ(exit->signal, SIGUSR1);
  EXPECT_EQ(exit->ShellStatus(), 128 + SIGUSR1);
}

TEST_F(UnitProcessTest, SignalsIgnoredOrBlockedByTheAgentAreDefaultInTheCommand) {
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGUSR2, &ignore, &previous), 0);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGHUP);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);

  auto ignored = StartOrDie(Spec("kill -USR2 $$; exit 0"));
  auto blocked = StartOrDie(Spec("kill -HUP $$; exit 0"));
  ::sigaction(SIGUSR2, &previous, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ASSERT_TRUE(ignored && blocked);

  auto ignored_exit = ignored->WaitFor(seconds(10));
  ASSERT_TRUE(ignored_exit);
  EXPECT_EQ(ignored_exit->signal, SIGUSR2);
  auto blocked_exit = blocked->WaitFor(seconds(10));
  ASSERT_TRUE(blocked_exit);
  EXPECT_EQ(blocked_exit->signal, SIGHUP);
}

TEST_F(UnitProcessTest, StdoutAndStderrAreAppendedToTheirFiles) {
  {
    std::ofstream earlier(dir_ / "stdout.log");
    earlier << "earlier attempt\n";
  }
  auto process = StartOrDie(Spec("echo to-out; echo to-err >&2; echo more-out"));
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit && exit->Succeeded());
  EXPECT_EQ(ReadFile(dir_ / "stdout.log"), "earlier attempt\nto-out\nmore-out\n");
  EXPECT_EQ(ReadFile(dir_ / "stderr.log"), "to-err\n");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "stderr.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0640, 0u) << std::oct << st.st_mode;  // at most 0640 (umask)
}

TEST_F(UnitProcessTest, StdinIsDevNullAndNoOtherDescriptorIsInherited) {
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately not close-on-exec
  ASSERT_GE(leaked, 0);
  auto process = StartOrDie(Spec("ls /proc/$$/fd; readlink /proc/$$/fd/0"));
  ::close(leaked);
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit && exit->Succeeded()) << ReadFile(dir_ / "stderr.log");
  EXPECT_EQ(ReadFile(dir_ / "stdout.log"), "0\n1\n2\n/dev/null\n");
}

TEST_F(UnitProcessTest, TenMegabytesOfStdoutNeverBlockTheCommand) {
  constexpr size_t kSize = 10 * 1024 * 1024;
  auto process = StartOrDie(Spec("head -c " + std::to_string(kSize) + " /dev/zero"));
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(60));
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->Succeeded()) << ReadFile(dir_ / "stderr.log");
  EXPECT_EQ(fs::file_size(dir_ / "stdout.log"), kSize);
}

TEST_F(UnitProcessTest, EnvironmentIsExactlyTheGivenOne) {
  ASSERT_EQ(::setenv("SPOTGRID_TEST_MUST_NOT_LEAK", "leak", 1), 0);
  ProcessSpec spec = Spec("env -0 > ../env.out");
  spec.env = {{"PATH", kPath}, {"ALPHA", "1"}, {"EMPTY", ""}};
  auto process = StartOrDie(spec);
  ::unsetenv("SPOTGRID_TEST_MUST_NOT_LEAK");
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit && exit->Succeeded()) << ReadFile(dir_ / "stderr.log");

  std::map<std::string, std::string> seen;
  std::string all = ReadFile(dir_ / "env.out");
  std::istringstream entries(all);
  for (std::string entry; std::getline(entries, entry, '\0');) {
    auto eq = entry.find('=');
    ASSERT_NE(eq, std::string::npos) << entry;
    seen[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  // dash exports PWD itself; it is the only addition, and it also proves the
  // chdir.
  std::map<std::string, std::string> expected = {
      {"PATH", kPath}, {"ALPHA", "1"}, {"EMPTY", ""}, {"PWD", (dir_ / "work").string()}};
  EXPECT_EQ(seen, expected);
}

TEST_F(UnitProcessTest, HostileValuesArriveByteExact) {
  const std::vector<std::pair<std::string, std::string>> values = {
      {"QUOTES", "it's \"quoted\" `and` 'single'"},
      {"SUBST", "$(touch pwned) ${HOME} $PATH `touch pwned2`"},
      {"NEWLINES", "line1\nline2\n\nline4\n"},
      {"SPACES", "  leading and trailing  \t"},
      {"SPECIAL", "a;b|c&d>e<f*g?h[i]~j#k!l\\m=n%o"},
      {"UTF8", "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93"},
  };
  std::string command;
  for (const auto& [name, value] : values) {
    command += "printenv " + name + " > ../" + name + ".out; ";
  }
  ProcessSpec spec = Spec(command);
  spec.env.insert(spec.env.end(), values.begin(), values.end());
  auto process = StartOrDie(spec);
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit && exit->Succeeded()) << ReadFile(dir_ / "stderr.log");
  for (const auto& [name, value] : values) {
    EXPECT_EQ(ReadFile(dir_ / (name + ".out")), value + "\n") << name;
  }
  EXPECT_FALSE(fs::exists(dir_ / "work" / "pwned"));
  EXPECT_FALSE(fs::exists(dir_ / "work" / "pwned2"));
}

TEST_F(UnitProcessTest, RunsAsTheGivenUserWithItsGroupsOnly) {
  auto nobody = LookupUser("nobody");
  ASSERT_TRUE(nobody.ok()) << nobody.status().ToString();
  EXPECT_EQ(nobody->uid, 65534u);
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  ASSERT_EQ(::chown((dir_ / "work").c_str(), nobody->uid, nobody->gid), 0);

  ProcessSpec spec = Spec("id -u; id -g; id -G; touch made-by-me");
  spec.run_as = *nobody;
  auto process = StartOrDie(spec);
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit && exit->Succeeded()) << ReadFile(dir_ / "stderr.log");
  std::istringstream out(ReadFile(dir_ / "stdout.log"));
  std::string uid, gid, groups;
  std::getline(out, uid);
  std::getline(out, gid);
  std::getline(out, groups);
  EXPECT_EQ(uid, "65534");
  EXPECT_EQ(gid, std::to_string(nobody->gid));
  std::istringstream group_list(groups);
  for (std::string group; group_list >> group;) EXPECT_NE(group, "0") << "root's group kept";

  for (const char* file : {"stdout.log", "stderr.log", "work/made-by-me"}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / file).c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_uid, nobody->uid) << file;
  }
}

TEST_F(UnitProcessTest, LookupOfAMissingUserFails) {
  auto missing = LookupUser("no-such-user-spotgrid");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().category, ErrorCategory::kInvalidInput);
  EXPECT_NE(missing.error().message.find("no-such-user-spotgrid"), std::string::npos);
}

TEST_F(UnitProcessTest, MissingWorkingDirectoryFailsTheStartCleanly) {
  ProcessSpec spec = Spec("mycommand --flag value");
  spec.cwd = dir_ / "does-not-exist";
  auto process = UnitProcess::Start(spec);
  ASSERT_FALSE(process.ok());
  const Error& error = process.error();
  EXPECT_EQ(error.category, ErrorCategory::kIo);
  EXPECT_NE(error.message.find("mycommand"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("chdir"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("does-not-exist"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("No such file"), std::string::npos) << error.message;
  EXPECT_EQ(ReadFile(dir_ / "stdout.log"), "");
}

TEST_F(UnitProcessTest, WorkingDirectoryTheUserCannotEnterFailsTheStart) {
  auto nobody = LookupUser("nobody");
  ASSERT_TRUE(nobody.ok());
  fs::permissions(dir_ / "work", fs::perms::owner_all);  // root's, 0700
  ProcessSpec spec = Spec("true");
  spec.run_as = *nobody;
  auto process = UnitProcess::Start(spec);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.error().category, ErrorCategory::kIo);
  EXPECT_NE(process.error().message.find("chdir"), std::string::npos) << process.error().message;
}

TEST_F(UnitProcessTest, LogPathsThatCannotBeOpenedSafelyFailTheStart) {
  ProcessSpec missing_dir = Spec("true");
  missing_dir.stdout_path = dir_ / "no-dir" / "stdout.log";
  auto process = UnitProcess::Start(missing_dir);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.error().category, ErrorCategory::kIo);
  EXPECT_NE(process.error().message.find("no-dir"), std::string::npos);

  // A symlink planted where the log goes must not make the agent append to its
  // target.
  { std::ofstream(dir_ / "precious") << "keep\n"; }
  fs::create_symlink(dir_ / "precious", dir_ / "stdout.log");
  process = UnitProcess::Start(Spec("echo overwritten"));
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(ReadFile(dir_ / "precious"), "keep\n");
}

TEST_F(UnitProcessTest, InvalidEnvironmentEntriesAreRejected) {
  ProcessSpec with_equals = Spec("true");
  with_equals.env.emplace_back("A=B", "c");
  auto process = UnitProcess::Start(with_equals);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.error().category, ErrorCategory::kInvalidInput);

  ProcessSpec with_nul = Spec("true");
  with_nul.env.emplace_back("A", std::string("x\0y", 3));
  process = UnitProcess::Start(with_nul);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.error().category, ErrorCategory::kInvalidInput);
}

TEST_F(UnitProcessTest, WaitForTimesOutWhileRunningAndReturnsPromptlyOnExit) {
  const fs::path fifo = dir_ / "go";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto process = StartOrDie(Spec("read line < ../go; exit 3"));
  ASSERT_TRUE(process);

  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(process->WaitFor(milliseconds(100)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
  EXPECT_FALSE(process->WaitFor(milliseconds(0)));

  // Opening for write blocks until the shell has opened the FIFO for reading.
  {
    std::ofstream go(fifo);
    go << "go\n";
  }
  start = std::chrono::steady_clock::now();
  auto exit = process->WaitFor(seconds(60));
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_LT(waited, seconds(5)) << "WaitFor did not wake on exit";
  // The exit is remembered.
  auto again = process->WaitFor(milliseconds(0));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->exit_code, 3);
}

// The shell has exited but left its command running: the group is alive until that ends
// (what a drain waits for when dash forked the command and died of SIGTERM at once).
TEST_F(UnitProcessTest, GroupAliveSeesWhatTheShellLeftRunningAfterItExited) {
  auto process = StartOrDie(Spec("sleep 1000 & echo $! > ../bg.pid; exit 0"));
  ASSERT_TRUE(process);
  const pid_t pgid = process->pid();
  AwaitFile(dir_ / "bg.pid");
  std::optional<ProcessExit> exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->Succeeded());
  EXPECT_TRUE(process->GroupAlive());
  EXPECT_TRUE(process->Kill().Succeeded());  // the shell's exit, known already
  EXPECT_TRUE(WaitUntil(
      [&] {
        ReapOrphans(pgid);
        return !process->GroupAlive();
      },
      seconds(10)));
}

TEST_F(UnitProcessTest, GroupOfAShellThatExitedAloneIsNotAlive) {
  auto process = StartOrDie(Spec("exit 3"));
  ASSERT_TRUE(process);
  std::optional<ProcessExit> exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_FALSE(process->GroupAlive());  // the unreaped shell is a zombie, not a live member
}

TEST_F(UnitProcessTest, TerminateKillsTheWholeGroupIncludingABackgroundGrandchild) {
  auto process = StartOrDie(Spec("sleep 1000 & echo $! > ../bg.pid; sleep 1000; wait"));
  ASSERT_TRUE(process);
  const pid_t pgid = process->pid();
  const pid_t background = std::stoi(AwaitFile(dir_ / "bg.pid"));
  ASSERT_TRUE(WaitUntil(
      [&] { return ReadFile("/proc/" + std::to_string(background) + "/comm") == "sleep\n"; },
      seconds(10)));
  EXPECT_EQ(StatField(background, 2), std::to_string(pgid));
  ASSERT_EQ(::getpgid(pgid), pgid);

  ProcessExit exit = process->Terminate(seconds(10));
  EXPECT_EQ(exit.signal, SIGTERM);
  EXPECT_TRUE(WaitUntil([&] { return LiveMembersOfGroup(pgid).empty(); }, seconds(10)));

  process.reset();  // reaps the shell
  EXPECT_TRUE(WaitUntil(
      [&] {
        ReapOrphans(pgid);
        return GroupIsGone(pgid);
      },
      seconds(10)))
      << "left in the group: " << LiveMembersOfGroup(pgid).size();
}

TEST_F(UnitProcessTest, TerminateKillsAGrandchildThatIgnoresSigtermAfterTheShellExits) {
  // The shell dies of SIGTERM at once; only the final group SIGKILL reaches the
  // grandchild.
  auto process =
      StartOrDie(Spec("(trap '' TERM; exec sleep 1000) & echo $! > ../bg.pid; sleep 1000"));
  ASSERT_TRUE(process);
  const pid_t pgid = process->pid();
  const pid_t background = std::stoi(AwaitFile(dir_ / "bg.pid"));
  auto ignores_term = [&] {
    if (ReadFile("/proc/" + std::to_string(background) + "/comm") != "sleep\n") return false;
    std::istringstream status(ReadFile("/proc/" + std::to_string(background) + "/status"));
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("SigIgn:", 0) == 0) {
        return (std::stoull(line.substr(7), nullptr, 16) >> (SIGTERM - 1) & 1) == 1;
      }
    }
    return false;
  };
  ASSERT_TRUE(WaitUntil(ignores_term, seconds(10)));

  const auto start = std::chrono::steady_clock::now();
  ProcessExit exit = process->Terminate(seconds(30));
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10)) << "waited out the grace";
  EXPECT_EQ(exit.signal, SIGTERM);
  EXPECT_TRUE(WaitUntil([&] { return LiveMembersOfGroup(pgid).empty(); }, seconds(10)));
  process.reset();
  EXPECT_TRUE(WaitUntil(
      [&] {
        ReapOrphans(pgid);
        return GroupIsGone(pgid);
      },
      seconds(10)));
}

TEST_F(UnitProcessTest, TerminateSigkillsAShellThatTrapsSigtermAfterTheGrace) {
  // `wait` (unlike a foreground command) returns as soon as a trapped signal arrives, also
  // one that arrived while the background job was being forked.
  auto process = StartOrDie(Spec(
      "trap 'echo got-term' TERM; echo ready > ../ready; while :; do sleep 1000 & wait $!; done"));
  ASSERT_TRUE(process);
  AwaitFile(dir_ / "ready");

  constexpr auto kGrace = milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  ProcessExit exit = process->Terminate(kGrace);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(exit.signal, SIGKILL);
  EXPECT_EQ(exit.ShellStatus(), 128 + SIGKILL);
  EXPECT_GE(took, kGrace);
  EXPECT_LT(took, seconds(10));
  // The shell did get SIGTERM, and survived it.
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(dir_ / "stdout.log") == "got-term\n"; }, seconds(5)));
  const pid_t pgid = process->pid();
  EXPECT_TRUE(WaitUntil([&] { return LiveMembersOfGroup(pgid).empty(); }, seconds(10)));
}

TEST_F(UnitProcessTest, TerminateAfterExitReturnsThatExit) {
  auto process = StartOrDie(Spec("exit 5"));
  ASSERT_TRUE(process);
  ASSERT_TRUE(process->WaitFor(seconds(10)));
  ProcessExit exit = process->Terminate(seconds(10));
  EXPECT_EQ(exit.exit_code, 5);
}

TEST_F(UnitProcessTest, TerminateFromAnotherThreadWakesTheWaiter) {
  auto process = StartOrDie(Spec("sleep 1000"));
  ASSERT_TRUE(process);
  std::optional<ProcessExit> waited;
  std::chrono::steady_clock::duration took{};
  std::thread waiter([&] {
    auto start = std::chrono::steady_clock::now();
    waited = process->WaitFor(seconds(60));
    took = std::chrono::steady_clock::now() - start;
  });
  ProcessExit exit = process->Terminate(seconds(10));
  waiter.join();
  ASSERT_TRUE(waited);
  EXPECT_EQ(waited->signal, exit.signal);
  EXPECT_LT(took, seconds(10));
}

TEST_F(UnitProcessTest, DestructionKillsTheGroupAlsoAfterANormalExit) {
  // The shell exits 0 and leaves a background job behind.
  auto process = StartOrDie(Spec("sleep 1000 & echo $! > ../bg.pid; exit 0"));
  ASSERT_TRUE(process);
  const pid_t pgid = process->pid();
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit && exit->Succeeded());
  const pid_t background = std::stoi(AwaitFile(dir_ / "bg.pid"));
  ASSERT_EQ(::kill(background, 0), 0);
  process.reset();
  EXPECT_TRUE(WaitUntil(
      [&] {
        ReapOrphans(pgid);
        return GroupIsGone(pgid);
      },
      seconds(10)));
}

TEST(UnitEnvironmentTest, ReservedNamesAreRecognised) {
  for (const char* name : {"PATH",          "IFS",
                           "HOME",          "USER",
                           "LOGNAME",       "SHELL",
                           "ENV",           "BASH_ENV",
                           "CDPATH",        "PS4",
                           "PWD",           "OLDPWD",
                           "TMPDIR",        "LANG",
                           "LC_ALL",        "LC_NUMERIC",
                           "LD_PRELOAD",    "LD_LIBRARY_PATH",
                           "SPOTGRID_JOB",  "SPOTGRID_PARAM_X",
                           "GLIBC_TUNABLES", "PYTHONPATH",
                           "PYTHONSTARTUP", "PYTHONHOME",
                           "NODE_OPTIONS",  "PERL5LIB",
                           "PERL5OPT",      "RUBYOPT",
                           "JAVA_TOOL_OPTIONS", "BASH_FUNC_ls%%",
                           "MALLOC_ARENA_MAX"}) {
    EXPECT_TRUE(IsReservedEnvName(name)) << name;
  }
  for (const char* name : {"path", "Path", "ALPHA", "LEARNING_RATE", "PYTHONHASHSEED", "LDX",
                           "SPOTGRIDX", "HOMEDIR", "seed"}) {
    EXPECT_FALSE(IsReservedEnvName(name)) << name;
  }
}

TEST(UnitEnvironmentTest, ParamsWithReservedNamesAreRemappedAndInvalidNamesDropped) {
  auto env = BuildUnitEnvironment(
      {{"SPOTGRID_JOB", "job-1"}, {"SPOTGRID_UNIT", "7"}, {"TMPDIR", "/scratch/tmp"}},
      {{"PATH", "/evil"},
       {"LD_PRELOAD", "/evil.so"},
       {"SPOTGRID_JOB", "forged"},
       {"LC_ALL", "xx"},
       {"PYTHONPATH", "/evil/py"},
       {"NODE_OPTIONS", "--require /evil.js"},
       {"alpha", "1"},
       {"_under_score9", "2"},
       {"bad-name", "3"},
       {"9lives", "4"},
       {"", "5"},
       {"with space", "6"},
       {"alpha", "duplicate"}},
      "/home/runner", "runner");
  std::map<std::string, std::string> by_name;
  for (const auto& [name, value] : env) {
    EXPECT_TRUE(by_name.emplace(name, value).second) << "duplicate " << name;
  }
  std::map<std::string, std::string> expected = {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", "/home/runner"},
      {"USER", "runner"},
      {"LOGNAME", "runner"},
      {"LANG", "C.UTF-8"},
      {"TMPDIR", "/scratch/tmp"},
      {"SPOTGRID_JOB", "job-1"},
      {"SPOTGRID_UNIT", "7"},
      {"SPOTGRID_PARAM_PATH", "/evil"},
      {"SPOTGRID_PARAM_LD_PRELOAD", "/evil.so"},
      {"SPOTGRID_PARAM_SPOTGRID_JOB", "forged"},
      {"SPOTGRID_PARAM_LC_ALL", "xx"},
      {"SPOTGRID_PARAM_PYTHONPATH", "/evil/py"},
      {"SPOTGRID_PARAM_NODE_OPTIONS", "--require /evil.js"},
      {"alpha", "1"},
      {"_under_score9", "2"},
  };
  EXPECT_EQ(by_name, expected);
}

TEST_F(UnitProcessTest, RemappedParamsReachTheCommandAndCannotChangeHowItRuns) {
  ProcessSpec spec = Spec("printf '%s|%s|%s' \"$PATH\" \"$SPOTGRID_PARAM_PATH\" \"$x\"");
  spec.env = BuildUnitEnvironment({}, {{"PATH", "/nowhere"}, {"x", "$(id)"}}, "/", "root");
  auto process = StartOrDie(spec);
  ASSERT_TRUE(process);
  auto exit = process->WaitFor(seconds(10));
  ASSERT_TRUE(exit && exit->Succeeded()) << ReadFile(dir_ / "stderr.log");
  EXPECT_EQ(ReadFile(dir_ / "stdout.log"), "/usr/local/bin:/usr/bin:/bin|/nowhere|$(id)");
}

}  // namespace
}  // namespace spotgrid::agent
