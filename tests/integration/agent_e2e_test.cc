// The agent end to end: real `agent` processes against the emulators, a stack made and driven
// by the real `controller` binary, results checked with the controller's verbs and with
// Debian's aws CLI (an independent client). Each test has its own stack, its own agents (each
// with its own work directory and instance identity) and stops only what it started.
//
// Agents heartbeat every second (so a lease lasts its minimum of 10 s) and the queue's
// visibility timeout is 5 s, so recoveries take seconds, not minutes.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent_harness.h"

namespace spotgrid {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::AgentOptions;
using testing::AgentProcess;
using testing::CliMessageCount;
using testing::E2EStack;
using testing::ParseJson;
using testing::ProcessesWithEnv;
using testing::Ran;
using testing::UniqueName;
using testing::UseEmulators;
using testing::WaitUntil;

constexpr milliseconds kPoll{250};

std::int64_t Count(const json& counts, const char* name) {
  return counts.contains(name) && counts[name].is_number() ? counts[name].get<std::int64_t>() : -1;
}

class AgentE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_TRUE(fs::exists(testing::kAgentBinary)) << testing::kAgentBinary << " is not built";
  }

  void TearDown() override {
    if (!HasFailure()) return;
    PrintAgentLogTails(agents_, 6000);
  }

  // Starts an agent on this test's stack; nullptr (and the test has failed) if it can't.
  AgentProcess* StartAgent(const AgentOptions& options) {
    auto agent = AgentProcess::Start(options);
    if (agent == nullptr) return nullptr;
    agents_.push_back(std::move(agent));
    return agents_.back().get();
  }

  // An agent with its own instance identity, "i-<name>-...".
  AgentProcess* StartAgent(int slots, const std::string& name) {
    return StartAgent(stack_.Agent(slots, UniqueName("i-" + name)));
  }

  bool WaitForState(const std::string& job, const std::string& unit, const std::string& state,
                    seconds deadline) {
    return WaitUntil([&] { return stack_.State(job, unit) == state; }, deadline, kPoll);
  }

  bool WaitForQueueEmpty() {
    return WaitUntil([&] { return CliMessageCount(stack_.queue_url()) == 0; }, seconds(30), kPoll);
  }

  // Declared first so the agents (below) are stopped before the stack is deleted.
  E2EStack stack_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

// --- the happy path at scale -------------------------------------------------------------------

TEST_F(AgentE2ETest, TwoHundredUnitsOnThreeAgentsEachSucceedExactlyOnceWithOutputsAndLogs) {
  stack_.Init();
  ASSERT_FALSE(HasFatalFailure());
  constexpr int kUnits = 200;
  std::string csv = "id,n\n";
  for (int n = 1; n <= kUnits; ++n) csv += "u" + std::to_string(n) + "," + std::to_string(n) + "\n";
  // Placeholders are shell-quoted by enqueue, so they stay outside double quotes.
  stack_.Enqueue("grid", csv,
                 "echo n={n} unit=\"$SPOTGRID_UNIT\" attempt=\"$SPOTGRID_ATTEMPT\" > "
                 "\"$SPOTGRID_OUTPUT_DIR/result.txt\" && echo stdout-of-{n}");
  ASSERT_FALSE(HasFatalFailure());
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_NE(StartAgent(2, name), nullptr);
  }

  const bool done = WaitUntil(
      [&] {
        for (const auto& agent : agents_) {
          if (!agent->Running()) return true;  // an agent died: stop waiting, report below
        }
        return Count(stack_.Counts("grid"), "succeeded") >= kUnits;
      },
      seconds(180), milliseconds(1000));
  for (const auto& agent : agents_) ASSERT_TRUE(agent->Running()) << agent->instance_id();
  ASSERT_TRUE(done) << stack_.Progress("grid").dump(2);

  // Every unit item: SUCCEEDED, claimed at least once, exit code 0.
  const json units = stack_.List("grid");
  ASSERT_EQ(units.size(), static_cast<size_t>(kUnits));
  std::map<std::string, int> attempt_of;
  for (const json& unit : units) {
    attempt_of[unit["unit"].get<std::string>()] = unit["attempt"].get<int>();
    EXPECT_EQ(unit["state"], "SUCCEEDED") << unit.dump();
    EXPECT_GE(unit["attempt"].get<int>(), 1) << unit.dump();
    EXPECT_EQ(unit["exit_code"], 0) << unit.dump();
    EXPECT_EQ(unit["failures"], 0) << unit.dump();
  }
  EXPECT_EQ(attempt_of.size(), static_cast<size_t>(kUnits));

  // The counters say so, and a recount from the unit items agrees (nothing counted twice).
  const json expected = {{"total", kUnits},     {"queued", 0}, {"running", 0},
                         {"succeeded", kUnits}, {"failed", 0}, {"cancelled", 0}};
  EXPECT_EQ(stack_.Counts("grid"), expected);
  EXPECT_EQ(stack_.Counts("grid", /*exact=*/true), expected);
  EXPECT_EQ(stack_.Counts("grid"), expected);

  // Every output at its documented key, seen by the aws CLI.
  const std::vector<std::string> keys = stack_.JobKeys("grid");
  const std::set<std::string> key_set(keys.begin(), keys.end());
  for (int n = 1; n <= kUnits; ++n) {
    const std::string unit = "u" + std::to_string(n);
    EXPECT_TRUE(key_set.count(stack_.UnitKey("grid", unit, "output/result.txt")))
        << "no output for " << unit;
    const std::string attempt = std::to_string(attempt_of[unit]);
    EXPECT_TRUE(key_set.count(stack_.UnitKey("grid", unit, "logs/" + attempt + "/stdout.log")))
        << "no stdout log for " << unit;
  }
  for (int n : {1, 77, 200}) {
    const std::string unit = "u" + std::to_string(n);
    const std::string attempt = std::to_string(attempt_of[unit]);
    EXPECT_EQ(stack_.GetObject(stack_.UnitKey("grid", unit, "output/result.txt")),
              "n=" + std::to_string(n) + " unit=" + unit + " attempt=" + attempt + "\n");
    Ran logs = stack_.Controller({"logs", unit, "--job", "grid"});
    EXPECT_EQ(logs.code, 0) << logs.err;
    EXPECT_EQ(logs.out, "stdout-of-" + std::to_string(n) + "\n");
  }

  EXPECT_TRUE(WaitForQueueEmpty()) << CliMessageCount(stack_.queue_url()) << " messages left";
}

// --- failures ------------------------------------------------------------------------------------

TEST_F(AgentE2ETest, FailingCommandIsRetriedUpToTheLimitAndEndsFailedWithExitCodeAndStderr) {
  stack_.Init();
  ASSERT_FALSE(HasFatalFailure());
  stack_.Enqueue("bad", "id\nu1\n",
                 "echo \"boom on attempt $SPOTGRID_ATTEMPT\" >&2; echo some stdout; exit 3",
                 {"--max-attempts", "2"});
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_NE(StartAgent(1, "a"), nullptr);

  ASSERT_TRUE(WaitForState("bad", "u1", "FAILED", seconds(90))) << stack_.Show("bad", "u1").dump(2);
  const json unit = stack_.Show("bad", "u1");
  EXPECT_EQ(unit["exit_code"], 3);
  EXPECT_EQ(unit["attempt"], 2);
  EXPECT_EQ(unit["failures"], 2);
  ASSERT_EQ(unit["attempts"].size(), 2u) << unit.dump(2);
  for (const json& attempt : unit["attempts"]) {
    EXPECT_EQ(attempt["exit_code"], 3) << attempt.dump();
    EXPECT_EQ(attempt["reason"], "failed") << attempt.dump();
  }
  const json counts = stack_.Counts("bad", /*exact=*/true);
  EXPECT_EQ(Count(counts, "failed"), 1);
  EXPECT_EQ(Count(counts, "succeeded"), 0);
  EXPECT_EQ(Count(counts, "queued"), 0);

  // Each attempt's logs stay under their own number.
  Ran latest = stack_.Controller({"logs", "u1", "--job", "bad"});
  EXPECT_EQ(latest.code, 0) << latest.err;
  EXPECT_EQ(latest.err, "boom on attempt 2\n");
  EXPECT_EQ(latest.out, "some stdout\n");
  Ran first = stack_.Controller({"logs", "u1", "--job", "bad", "--attempt", "1"});
  EXPECT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(first.err, "boom on attempt 1\n");

  EXPECT_TRUE(WaitForQueueEmpty());
}

TEST_F(AgentE2ETest, UnitLongerThanItsTimeoutIsKilledWithItsProcessGroupLeavingNoOrphan) {
  stack_.Init();
  ASSERT_FALSE(HasFatalFailure());
  // The marker column reaches the command's environment, and so every process it starts.
  const std::string marker = UniqueName("timeout");
  stack_.Enqueue("slow", "id,marker\nu1," + marker + "\n", "sleep 1000 & sleep 1000",
                 {"--timeout", "2s", "--max-attempts", "1"});
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_NE(StartAgent(1, "a"), nullptr);

  // Both sleeps run (the background one is what a careless kill of the shell alone leaves).
  ASSERT_TRUE(WaitUntil([&] { return ProcessesWithEnv("marker", marker).size() >= 2; }, seconds(30),
                        milliseconds(50)))
      << stack_.Show("slow", "u1").dump(2);

  ASSERT_TRUE(WaitForState("slow", "u1", "FAILED", seconds(30)))
      << stack_.Show("slow", "u1").dump(2);
  const json unit = stack_.Show("slow", "u1");
  ASSERT_EQ(unit["attempts"].size(), 1u) << unit.dump(2);
  EXPECT_EQ(unit["attempts"][0]["reason"], "timeout") << unit.dump(2);
  // The group is gone once the agent has recorded the end (SIGKILL lands asynchronously, so
  // allow it a moment to be delivered).
  EXPECT_TRUE(WaitUntil([&] { return ProcessesWithEnv("marker", marker).empty(); }, seconds(2),
                        milliseconds(20)))
      << ProcessesWithEnv("marker", marker).size() << " processes of the unit survived";
  EXPECT_EQ(Count(stack_.Counts("slow", /*exact=*/true), "failed"), 1);
}

TEST_F(AgentE2ETest, CancellingAJobStopsItsRunningUnitWithinAFewHeartbeats) {
  stack_.Init();
  ASSERT_FALSE(HasFatalFailure());
  const std::string marker = UniqueName("cancel");
  stack_.Enqueue("long", "id,marker\nu1," + marker + "\n", "sleep 1000");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_NE(StartAgent(1, "a"), nullptr);
  ASSERT_TRUE(WaitUntil([&] { return !ProcessesWithEnv("marker", marker).empty(); }, seconds(30),
                        milliseconds(50)));
  ASSERT_EQ(stack_.State("long", "u1"), "RUNNING");

  Ran cancel = stack_.Controller({"cancel", "--job", "long"});
  ASSERT_EQ(cancel.code, 0) << cancel.err;
  const auto cancelled_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitForState("long", "u1", "CANCELLED", seconds(20)))
      << stack_.Show("long", "u1").dump(2);
  // Heartbeats are 1 s apart; the kill grace is not needed by a plain sleep.
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, seconds(10));
  EXPECT_TRUE(WaitUntil([&] { return ProcessesWithEnv("marker", marker).empty(); }, seconds(2),
                        milliseconds(20)));
  const json unit = stack_.Show("long", "u1");
  ASSERT_EQ(unit["attempts"].size(), 1u) << unit.dump(2);
  EXPECT_EQ(unit["attempts"][0]["reason"], "cancelled");
  const json counts = stack_.Counts("long", /*exact=*/true);
  EXPECT_EQ(Count(counts, "cancelled"), 1);
  EXPECT_EQ(Count(counts, "running"), 0);
  EXPECT_TRUE(WaitForQueueEmpty());
}

// --- a worker lost mid-unit ----------------------------------------------------------------------

TEST_F(AgentE2ETest, KilledAgentsUnitIsFinishedByAnotherAfterTheLeaseExpiresAndCountedOnce) {
  stack_.Init();
  ASSERT_FALSE(HasFatalFailure());
  stack_.Enqueue("lost", "id\nu1\n",
                 // Attempt 1 runs until it is killed, so the kill always lands mid-unit.
                 "if [ \"$SPOTGRID_ATTEMPT\" = 1 ]; then exec sleep 1000; fi; "
                 "echo \"finished by attempt $SPOTGRID_ATTEMPT\" > "
                 "\"$SPOTGRID_OUTPUT_DIR/result.txt\"");
  ASSERT_FALSE(HasFatalFailure());
  AgentProcess* started_a = StartAgent(1, "a");
  ASSERT_NE(started_a, nullptr);
  AgentProcess& a = *started_a;
  ASSERT_TRUE(WaitUntil([&] { return !a.UnitProcesses().empty(); }, seconds(30), milliseconds(50)))
      << a.Log();
  const json running = stack_.Show("lost", "u1");
  ASSERT_EQ(running["state"], "RUNNING");
  ASSERT_EQ(running["owner"].get<std::string>().rfind(a.instance_id() + "/", 0), 0u)
      << running.dump(2);

  // kill -9: the agent's group, then the unit it left running (in a group of its own), so
  // nothing of attempt 1 can finish or write anything.
  ASSERT_TRUE(a.child().SignalGroup(SIGKILL));
  ASSERT_TRUE(a.child().Wait(seconds(10)));
  testing::KillProcesses(a.UnitProcesses());
  ASSERT_TRUE(WaitUntil([&] { return a.UnitProcesses().empty(); }, seconds(5), milliseconds(20)));

  AgentProcess* started_b = StartAgent(1, "b");
  ASSERT_NE(started_b, nullptr);
  AgentProcess& b = *started_b;
  ASSERT_TRUE(WaitForState("lost", "u1", "SUCCEEDED", seconds(60)))
      << stack_.Show("lost", "u1").dump(2);

  const json unit = stack_.Show("lost", "u1");
  EXPECT_EQ(unit["attempt"], 2);
  EXPECT_EQ(unit["failures"], 0);
  EXPECT_EQ(unit["interruptions"], 1);
  ASSERT_EQ(unit["attempts"].size(), 2u) << unit.dump(2);
  EXPECT_EQ(unit["attempts"][0]["reason"], "lost") << unit.dump(2);
  EXPECT_EQ(unit["attempts"][0]["worker"].get<std::string>().rfind(a.instance_id() + "/", 0), 0u);
  EXPECT_EQ(unit["attempts"][1]["reason"], "succeeded") << unit.dump(2);
  EXPECT_EQ(unit["attempts"][1]["worker"].get<std::string>().rfind(b.instance_id() + "/", 0), 0u);
  EXPECT_EQ(stack_.GetObject(stack_.UnitKey("lost", "u1", "output/result.txt")),
            "finished by attempt 2\n");

  const json expected = {{"total", 1},     {"queued", 0}, {"running", 0},
                         {"succeeded", 1}, {"failed", 0}, {"cancelled", 0}};
  EXPECT_EQ(stack_.Counts("lost"), expected);
  EXPECT_EQ(stack_.Counts("lost", /*exact=*/true), expected);
  EXPECT_TRUE(WaitForQueueEmpty());
}

TEST_F(AgentE2ETest, RestartedAttemptFindsTheCheckpointTheFailedOneLeft) {
  stack_.Init();
  ASSERT_FALSE(HasFatalFailure());
  stack_.Enqueue("ckpt", "id\nu1\n",
                 "if [ -f \"$SPOTGRID_CHECKPOINT_DIR/state\" ]; then "
                 "cp \"$SPOTGRID_CHECKPOINT_DIR/state\" \"$SPOTGRID_OUTPUT_DIR/resumed.txt\"; "
                 "else echo \"saved by attempt $SPOTGRID_ATTEMPT\" > "
                 "\"$SPOTGRID_CHECKPOINT_DIR/state\"; exit 1; fi",
                 {"--max-attempts", "3"});
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_NE(StartAgent(1, "a"), nullptr);

  ASSERT_TRUE(WaitForState("ckpt", "u1", "SUCCEEDED", seconds(90)))
      << stack_.Show("ckpt", "u1").dump(2);
  const json unit = stack_.Show("ckpt", "u1");
  EXPECT_EQ(unit["attempt"], 2);
  ASSERT_EQ(unit["attempts"].size(), 2u) << unit.dump(2);
  EXPECT_EQ(unit["attempts"][0]["reason"], "failed");
  EXPECT_EQ(unit["attempts"][0]["exit_code"], 1);
  EXPECT_EQ(stack_.GetObject(stack_.UnitKey("ckpt", "u1", "checkpoint/state")),
            "saved by attempt 1\n");
  EXPECT_EQ(stack_.GetObject(stack_.UnitKey("ckpt", "u1", "output/resumed.txt")),
            "saved by attempt 1\n");
}

// --- systemd
// ---------------------------------------------------------------------------------------

// A datagram socket playing systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ok_ = fd_ >= 0 && path.size() < sizeof addr.sun_path &&
          ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool ok() const { return ok_; }

  // Collects the lines of every datagram that arrives until `done` holds or `deadline`.
  bool Collect(std::vector<std::string>& lines,
               const std::function<bool(const std::vector<std::string>&)>& done,
               milliseconds deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (!done(lines)) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) continue;
      std::istringstream message(std::string(buffer, static_cast<size_t>(n)));
      for (std::string line; std::getline(message, line);) lines.push_back(line);
    }
    return true;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
};

bool HasLine(const std::vector<std::string>& lines, const std::string& prefix,
             const std::string& containing = "") {
  for (const std::string& line : lines) {
    if (line.rfind(prefix, 0) == 0 && line.find(containing) != std::string::npos) return true;
  }
  return false;
}

TEST_F(AgentE2ETest, UnderSystemdTheAgentSendsReadyStatusAndWatchdogPings) {
  stack_.Init();
  ASSERT_FALSE(HasFatalFailure());
  const std::string dir = testing::MakeTempDir("notify");
  NotifySocket socket(dir + "/notify.sock");
  ASSERT_TRUE(socket.ok()) << std::strerror(errno);

  AgentOptions options = stack_.Agent(2, UniqueName("i-sd"));
  // No WATCHDOG_PID: sd_watchdog_enabled() then accepts any pid, as for a service's main pid.
  options.env = {{"NOTIFY_SOCKET", dir + "/notify.sock"}, {"WATCHDOG_USEC", "2000000"}};
  ASSERT_NE(StartAgent(options), nullptr);

  std::vector<std::string> lines;
  EXPECT_TRUE(socket.Collect(
      lines,
      [](const auto& l) {
        return HasLine(l, "READY=1") && HasLine(l, "STATUS=") && HasLine(l, "WATCHDOG=1");
      },
      seconds(30)))
      << ::testing::PrintToString(lines);

  // A unit starting changes the status, which names it.
  stack_.Enqueue("sd", "id\nu1\n", "sleep 2");
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_TRUE(socket.Collect(
      lines, [](const auto& l) { return HasLine(l, "STATUS=", "sd/u1"); }, seconds(30)))
      << ::testing::PrintToString(lines);
  // Pings keep coming at half the watchdog interval.
  const size_t pings_before = std::count(lines.begin(), lines.end(), "WATCHDOG=1");
  EXPECT_TRUE(socket.Collect(
      lines,
      [&](const auto& l) {
        return static_cast<size_t>(std::count(l.begin(), l.end(), "WATCHDOG=1")) >=
               pings_before + 2;
      },
      seconds(5)));
  if (!HasFailure()) fs::remove_all(dir);
}

// --- bad settings
// ----------------------------------------------------------------------------------

TEST_F(AgentE2ETest, BadSettingStopsTheAgentAtStartWithExitTwoNamingTheFlag) {
  stack_.Init();
  ASSERT_FALSE(HasFatalFailure());
  AgentOptions options = stack_.Agent(1);
  options.slots = 0;
  AgentProcess* started = StartAgent(options);
  ASSERT_NE(started, nullptr);
  AgentProcess& agent = *started;
  ASSERT_TRUE(agent.child().Wait(seconds(30)));
  EXPECT_EQ(agent.child().ExitCode(), 2) << agent.Log();
  EXPECT_NE(agent.Log().find("--slots"), std::string::npos) << agent.Log();
}

TEST_F(AgentE2ETest, MissingStackStopsTheAgentAtStartWithExitOneNamingTheStack) {
  AgentOptions options;
  options.stack = UniqueName("nosuchstack");
  AgentProcess* started = StartAgent(options);
  ASSERT_NE(started, nullptr);
  AgentProcess& agent = *started;
  ASSERT_TRUE(agent.child().Wait(seconds(60)));
  EXPECT_EQ(agent.child().ExitCode(), 1) << agent.Log();
  EXPECT_NE(agent.Log().find(options.stack), std::string::npos) << agent.Log();
}

}  // namespace
}  // namespace spotgrid
