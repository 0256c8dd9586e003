// Issue 5 end to end: real `agent` processes drained by a Spot interruption notice, by
// SIGTERM and by an Auto Scaling lifecycle transition; scale-in protection around busy
// periods; termination of a drained instance through its group; the drain deadline; and the
// rebalance recommendation. Each agent has its own IMDS tenant (where the test posts the
// notices) and, where it matters, its own tenant of the EC2 / Auto Scaling fake, which
// records every call with its arrival time. The ledger is read through the Ledger API (its
// times have milliseconds, so calls can be ordered against a unit's claim and release), S3
// through Debian's aws CLI.
//
// Agents heartbeat every second, long-poll for a second, look at IMDS every second and sync
// only at the end (--sync-interval 10m), so what reaches S3 during a drain was put there by
// the drain.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "agent_harness.h"
#include "spotgrid/core/iso8601.h"

namespace spotgrid {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::AgentOptions;
using testing::AgentProcess;
using testing::AwsFakeTenant;
using testing::CliQueueAttributes;
using testing::E2EStack;
using testing::ProcessesWithEnv;
using testing::RandomInstanceId;
using testing::UniqueName;
using testing::UseEmulators;
using testing::WaitUntil;
using WallTime = std::chrono::system_clock::time_point;

constexpr milliseconds kPoll{250};
constexpr char kJob[] = "ckpt";
constexpr char kUnit[] = "u1";

// Counts the steps it has done in its progress file; on SIGTERM it says so (a file the test
// can wait for), takes a second, saves its step into the checkpoint directory and exits 143.
// Started with a checkpoint, it writes where it resumed from into its output and succeeds.
constexpr char kCheckpointingCommand[] =
    "ck=\"$SPOTGRID_CHECKPOINT_DIR/step\"; step=0; "
    "if [ -f \"$ck\" ]; then "
    "echo \"resumed from step $(cat \"$ck\")\" > \"$SPOTGRID_OUTPUT_DIR/resume.txt\"; exit 0; fi; "
    "trap 'touch \"$SPOTGRID_OUTPUT_DIR/term-seen\"; sleep 1; echo \"$step\" > \"$ck\"; "
    "exit 143' TERM; "
    "while :; do step=$((step+1)); echo \"$step\" > \"$SPOTGRID_PROGRESS_FILE\"; sleep 0.2; done";

double Seconds(WallTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

WallTime WallNow() { return std::chrono::system_clock::now(); }

// A notice time `ahead` from now in whole seconds (IMDS writes whole seconds), and its text.
std::pair<WallTime, std::string> NoticeTime(seconds ahead) {
  const auto at = std::chrono::ceil<seconds>(WallNow() + ahead);
  return {at, FormatIso8601(at)};
}

std::string SpotNotice(const std::string& time) {
  return json{{"action", "terminate"}, {"time", time}}.dump();
}

// The arrival time of a recorded fake call or IMDS request.
double TimeOf(const json& entry) { return entry.value("time", 0.0); }

std::string Param(const json& call, const std::string& name) {
  if (!call.contains("params") || !call["params"].contains(name)) return "<absent>";
  return call["params"][name].get<std::string>();
}

// True if a file named `name` exists anywhere under `dir` (unit directories come and go
// while this looks, so errors only end the search).
bool FileNamedUnder(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  while (!ec && it != end) {
    if (it->path().filename() == name) return true;
    it.increment(ec);
  }
  return false;
}

class AgentDrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_TRUE(fs::exists(testing::kAgentBinary)) << testing::kAgentBinary << " is not built";
  }

  void TearDown() override {
    if (!HasFailure()) return;
    PrintAgentLogTails(agents_, 8000);
    for (auto* tenant : tenants_) {
      std::cerr << "---- aws fake calls of " << tenant->url() << ":\n"
                << tenant->Calls().dump(1) << "\n";
    }
  }

  // An agent on this test's stack with its own EC2-shaped identity and the fast settings of
  // this file; the caller adds what the test is about.
  AgentOptions Options() {
    AgentOptions options = stack_.Agent(1, RandomInstanceId());
    options.sync_interval = "10m";
    options.extra_args = {"--poll-wait", "1", "--spot-poll", "1s"};
    return options;
  }

  AgentProcess* StartAgent(const AgentOptions& options) {
    auto agent = AgentProcess::Start(options);
    if (agent == nullptr) return nullptr;
    agents_.push_back(std::move(agent));
    return agents_.back().get();
  }

  // Waits until the agent has exited (true) and returns when it was seen to (an upper bound
  // of the real exit time).
  bool WaitForExit(AgentProcess& agent, milliseconds deadline, WallTime* exited_at) {
    const bool exited = WaitUntil([&] { return !agent.Running(); }, deadline, milliseconds(50));
    *exited_at = WallNow();
    return exited;
  }

  std::optional<UnitRecord> Unit(const std::string& job, const std::string& unit) {
    auto found = ledger_->GetUnit(job, unit);
    EXPECT_TRUE(found.ok()) << found.error().ToString();
    return found.ok() ? *found : std::nullopt;
  }

  bool WaitForState(const std::string& job, const std::string& unit, UnitState state,
                    milliseconds deadline) {
    return WaitUntil(
        [&] {
          auto found = Unit(job, unit);
          return found && found->state == state;
        },
        deadline, kPoll);
  }

  void InitStack() {
    stack_.Init();
    ASSERT_FALSE(HasFatalFailure());
    ledger_ = stack_.OpenLedger();
  }

  // --- the interrupted-and-resumed scenario shared by the notice, SIGTERM and lifecycle tests

  // Enqueues the checkpointing unit, starts the first agent and waits until the unit has made
  // progress (its step, reported at a heartbeat, is above 0), so a checkpoint has a step > 0.
  AgentProcess* StartCheckpointingUnit(const AgentOptions& options) {
    stack_.Enqueue(kJob, "id\n" + std::string(kUnit) + "\n", kCheckpointingCommand);
    if (HasFatalFailure()) return nullptr;
    AgentProcess* agent = StartAgent(options);
    if (agent == nullptr) return nullptr;
    const bool progressing = WaitUntil(
        [&] {
          auto unit = Unit(kJob, kUnit);
          return unit && unit->state == UnitState::kRunning &&
                 std::atoi(unit->progress.c_str()) > 0;
        },
        seconds(30), kPoll);
    EXPECT_TRUE(progressing) << "the unit never reported progress";
    return progressing ? agent : nullptr;
  }

  // After the first agent has drained (exited at `exited_at`): it exited 0; the unit is
  // QUEUED with one interruption and no failure, its attempt released as interrupted; its
  // message is visible at once; the checkpoint (the command's step, > 0) is in S3 under the
  // documented key; the worker item says "ended". Returns the checkpointed step (0 on failure).
  int ExpectInterruptedWithCheckpoint(AgentProcess& agent) {
    EXPECT_EQ(agent.child().ExitCode(), 0) << agent.Log();
    // A fresh message, visible within seconds (delayed just past the release): the claimed
    // one was deleted at the claim, and nothing is in flight.
    const json attributes = CliQueueAttributes(stack_.queue_url());
    EXPECT_EQ(std::stoi(attributes.value("ApproximateNumberOfMessages", "0")) +
                  std::stoi(attributes.value("ApproximateNumberOfMessagesDelayed", "0")),
              1)
        << attributes.dump();
    EXPECT_EQ(attributes.value("ApproximateNumberOfMessagesNotVisible", ""), "0")
        << attributes.dump();

    auto unit = Unit(kJob, kUnit);
    if (!unit) {
      ADD_FAILURE() << "no unit item";
      return 0;
    }
    EXPECT_EQ(ToString(unit->state), "QUEUED");
    EXPECT_EQ(unit->interruptions, 1);
    EXPECT_EQ(unit->failures, 0);
    EXPECT_EQ(unit->attempt, 1);
    if (unit->attempts.size() != 1u) {
      ADD_FAILURE() << unit->attempts.size() << " attempts recorded";
    } else {
      EXPECT_EQ(unit->attempts[0].reason, "interrupted");
      EXPECT_TRUE(unit->attempts[0].finished_at.has_value());
      EXPECT_EQ(unit->attempts[0].owner.rfind(agent.instance_id() + "/", 0), 0u)
          << unit->attempts[0].owner;
    }

    const auto checkpoint = stack_.GetObject(stack_.UnitKey(kJob, kUnit, "checkpoint/step"));
    EXPECT_TRUE(checkpoint.has_value())
        << "no checkpoint in S3; keys: " << ::testing::PrintToString(stack_.JobKeys(kJob));
    const int step = checkpoint ? std::atoi(checkpoint->c_str()) : 0;
    EXPECT_GT(step, 0) << "checkpoint: " << checkpoint.value_or("<none>");

    auto workers = ledger_->ListWorkers();
    EXPECT_TRUE(workers.ok()) << workers.error().ToString();
    bool ended = false;
    if (workers.ok()) {
      for (const WorkerRecord& worker : *workers) {
        if (worker.instance_id == agent.instance_id()) ended = worker.state == WorkerState::kEnded;
      }
    }
    EXPECT_TRUE(ended) << "the worker item of " << agent.instance_id() << " does not say ended";
    return step;
  }

  // A second agent resumes the unit from the checkpoint `step` and it succeeds, once.
  void ExpectResumedBySecondAgent(int step) {
    AgentOptions options = Options();
    AwsFakeTenant& empty = NewAwsTenant();  // in no group: makes no Auto Scaling call
    options.aws_endpoint = empty.url();
    AgentProcess* second = StartAgent(options);
    ASSERT_NE(second, nullptr);
    ASSERT_TRUE(WaitForState(kJob, kUnit, UnitState::kSucceeded, seconds(60)))
        << stack_.Show(kJob, kUnit).dump(2);
    EXPECT_EQ(stack_.GetObject(stack_.UnitKey(kJob, kUnit, "output/resume.txt")),
              "resumed from step " + std::to_string(step) + "\n");
    auto unit = Unit(kJob, kUnit);
    ASSERT_TRUE(unit.has_value());
    EXPECT_EQ(unit->attempt, 2);
    EXPECT_EQ(unit->interruptions, 1);
    EXPECT_EQ(unit->failures, 0);
    ASSERT_EQ(unit->attempts.size(), 2u);
    EXPECT_EQ(unit->attempts[1].reason, "succeeded");
    EXPECT_EQ(unit->attempts[1].owner.rfind(second->instance_id() + "/", 0), 0u);
    const json expected = {{"total", 1},     {"queued", 0}, {"running", 0},
                           {"succeeded", 1}, {"failed", 0}, {"cancelled", 0}};
    EXPECT_EQ(stack_.Counts(kJob), expected);
    EXPECT_EQ(stack_.Counts(kJob, /*exact=*/true), expected);
    EXPECT_TRUE(second->Stop());
    EXPECT_EQ(second->child().ExitCode(), 0);
  }

  AwsFakeTenant& NewAwsTenant() {
    owned_tenants_.push_back(std::make_unique<AwsFakeTenant>());
    tenants_.push_back(owned_tenants_.back().get());
    return *owned_tenants_.back();
  }

  // Declared first so the agents (below) are stopped before the stack is deleted.
  E2EStack stack_;
  std::shared_ptr<Ledger> ledger_;
  std::vector<std::unique_ptr<AwsFakeTenant>> owned_tenants_;
  std::vector<AwsFakeTenant*> tenants_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

// --- 1. Spot interruption notice -------------------------------------------------------------

TEST_F(AgentDrainTest, SpotNoticeCheckpointsRequeuesAndExitsBeforeTheNoticeTimeThenAnotherResumes) {
  InitStack();
  ASSERT_FALSE(HasFatalFailure());
  AgentOptions options = Options();
  options.aws_endpoint = NewAwsTenant().url();
  AgentProcess* first = StartCheckpointingUnit(options);
  ASSERT_NE(first, nullptr);

  const auto [notice_at, notice_text] = NoticeTime(seconds(40));
  ASSERT_TRUE(first->PutMetadata("spot/instance-action", SpotNotice(notice_text)));
  WallTime exited_at;
  ASSERT_TRUE(WaitForExit(*first, seconds(45), &exited_at)) << "still running after the notice";
  EXPECT_LT(Seconds(exited_at), Seconds(notice_at))
      << "the agent exited " << Seconds(exited_at) - Seconds(notice_at)
      << " s after the notice time";
  const int step = ExpectInterruptedWithCheckpoint(*first);
  ASSERT_FALSE(HasFailure());

  ExpectResumedBySecondAgent(step);
}

// --- 2. SIGTERM (and a second signal during the drain) -----------------------------------------

TEST_F(AgentDrainTest,
       SigtermCheckpointsRequeuesAndExitsWithinTheStopTimeoutASecondSignalChangesNothing) {
  InitStack();
  ASSERT_FALSE(HasFatalFailure());
  AgentOptions options = Options();
  options.aws_endpoint = NewAwsTenant().url();
  options.extra_args.insert(options.extra_args.end(),
                            {"--stop-timeout", "30s", "--upload-reserve", "10s"});
  AgentProcess* first = StartCheckpointingUnit(options);
  ASSERT_NE(first, nullptr);

  const WallTime signalled_at = WallNow();
  ASSERT_TRUE(first->child().Signal(SIGTERM));
  // The unit has its checkpoint signal and takes a second to save: signal the agent again
  // (SIGTERM, then SIGINT, which a person at a terminal sends) while it drains.
  ASSERT_TRUE(WaitUntil([&] { return FileNamedUnder(first->work_dir(), "term-seen"); }, seconds(20),
                        milliseconds(20)))
      << "the unit never got its checkpoint signal";
  EXPECT_TRUE(first->child().Signal(SIGTERM));
  EXPECT_TRUE(first->child().Signal(SIGINT));

  WallTime exited_at;
  ASSERT_TRUE(WaitForExit(*first, seconds(35), &exited_at)) << "still running after SIGTERM";
  EXPECT_LT(Seconds(exited_at) - Seconds(signalled_at), 30.0) << "longer than --stop-timeout";
  const int step = ExpectInterruptedWithCheckpoint(*first);
  ASSERT_FALSE(HasFailure());

  ExpectResumedBySecondAgent(step);
}

// --- 3. Auto Scaling lifecycle transition to Terminated ------------------------------------------

TEST_F(AgentDrainTest,
       LifecycleTerminatedDrainsHeartbeatsTheHookAndCompletesItOnceAfterTheRelease) {
  InitStack();
  ASSERT_FALSE(HasFatalFailure());
  AwsFakeTenant& aws = NewAwsTenant();
  AgentOptions options = Options();
  const std::string group = UniqueName("workers");
  aws.AddToGroup(options.instance_id, group);
  options.aws_endpoint = aws.url();
  options.imds_values = {{"autoscaling/target-lifecycle-state", "InService"}};
  options.extra_args.insert(
      options.extra_args.end(),
      {"--lifecycle-hook", "drain-hook", "--stop-timeout", "30s", "--upload-reserve", "10s"});
  AgentProcess* first = StartCheckpointingUnit(options);
  ASSERT_NE(first, nullptr);

  // Scale-in: Auto Scaling holds the instance in Terminating:Wait, IMDS says Terminated.
  aws.AddToGroup(options.instance_id, group, "Terminating:Wait");
  const WallTime transition_at = WallNow();
  ASSERT_TRUE(first->PutMetadata("autoscaling/target-lifecycle-state", "Terminated"));
  WallTime exited_at;
  ASSERT_TRUE(WaitForExit(*first, seconds(35), &exited_at)) << "still running after Terminated";
  EXPECT_LT(Seconds(exited_at) - Seconds(transition_at), 30.0) << "longer than --stop-timeout";
  const int step = ExpectInterruptedWithCheckpoint(*first);
  ASSERT_FALSE(HasFailure());

  auto unit = Unit(kJob, kUnit);
  ASSERT_TRUE(unit && unit->attempts.size() == 1u && unit->attempts[0].finished_at);
  const double released_at = Seconds(*unit->attempts[0].finished_at);

  const json heartbeats = aws.Calls("RecordLifecycleActionHeartbeat");
  const json completions = aws.Calls("CompleteLifecycleAction");
  ASSERT_GE(heartbeats.size(), 1u) << "no RecordLifecycleActionHeartbeat";
  ASSERT_EQ(completions.size(), 1u) << completions.dump(1);
  const json& completion = completions[0];
  EXPECT_EQ(Param(completion, "LifecycleActionResult"), "CONTINUE");
  EXPECT_EQ(Param(completion, "InstanceId"), options.instance_id);
  EXPECT_EQ(Param(completion, "LifecycleHookName"), "drain-hook");
  EXPECT_EQ(Param(completion, "AutoScalingGroupName"), group);
  EXPECT_FALSE(completion.contains("error")) << completion.dump();
  EXPECT_GE(TimeOf(completion), released_at) << "the hook was completed before the release";
  for (const json& heartbeat : heartbeats) {
    EXPECT_EQ(Param(heartbeat, "InstanceId"), options.instance_id);
    EXPECT_EQ(Param(heartbeat, "LifecycleHookName"), "drain-hook");
    EXPECT_EQ(Param(heartbeat, "AutoScalingGroupName"), group);
    EXPECT_GE(TimeOf(heartbeat), Seconds(transition_at));
    EXPECT_LE(TimeOf(heartbeat), TimeOf(completion)) << "a heartbeat after the completion";
  }
  EXPECT_EQ(aws.State()["instances"][options.instance_id]["lifecycle_state"],
            "Terminating:Proceed");
  // Auto Scaling terminates the instance itself once the hook is complete.
  EXPECT_TRUE(aws.Calls("TerminateInstanceInAutoScalingGroup").empty());
  EXPECT_TRUE(aws.Calls("TerminateInstances").empty());

  ExpectResumedBySecondAgent(step);
}

// --- 4. Scale-in protection around busy periods ------------------------------------------------

TEST_F(AgentDrainTest,
       ScaleInProtectionIsSetWhenAUnitStartsAndClearedWhenTheAgentGoesIdleEachTime) {
  InitStack();
  ASSERT_FALSE(HasFatalFailure());
  AwsFakeTenant& aws = NewAwsTenant();
  AgentOptions options = Options();
  const std::string group = UniqueName("workers");
  aws.AddToGroup(options.instance_id, group);
  options.aws_endpoint = aws.url();
  AgentProcess* agent = StartAgent(options);
  ASSERT_NE(agent, nullptr);

  auto protection_calls = [&] { return aws.Calls("SetInstanceProtection"); };
  struct Period {
    double started, finished;
  };
  std::vector<Period> periods;
  for (const std::string job : {"busy1", "busy2"}) {
    stack_.Enqueue(job, "id\nu1\n", "sleep 3");
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_TRUE(WaitForState(job, "u1", UnitState::kSucceeded, seconds(40)))
        << stack_.Show(job, "u1").dump(2);
    auto unit = Unit(job, "u1");
    ASSERT_TRUE(unit && unit->attempts.size() == 1u && unit->attempts[0].finished_at);
    periods.push_back(
        {Seconds(unit->attempts[0].started_at), Seconds(*unit->attempts[0].finished_at)});
    const size_t expected = 2 * periods.size();
    EXPECT_TRUE(
        WaitUntil([&] { return protection_calls().size() >= expected; }, seconds(15), kPoll))
        << "after busy period " << periods.size() << ": " << protection_calls().dump(1);
  }
  ASSERT_TRUE(agent->Stop());
  EXPECT_EQ(agent->child().ExitCode(), 0);

  const json calls = protection_calls();
  ASSERT_EQ(calls.size(), 4u) << calls.dump(1);
  for (size_t i = 0; i < calls.size(); ++i) {
    const json& call = calls[i];
    const Period& period = periods[i / 2];
    EXPECT_EQ(Param(call, "InstanceIds.member.1"), options.instance_id);
    EXPECT_EQ(Param(call, "AutoScalingGroupName"), group);
    EXPECT_FALSE(call.contains("error")) << call.dump();
    if (i % 2 == 0) {
      EXPECT_EQ(Param(call, "ProtectedFromScaleIn"), "true") << "call " << i;
      EXPECT_GE(TimeOf(call), period.started) << "protected before the claim";
      EXPECT_LE(TimeOf(call), period.finished) << "protected only after the unit ended";
    } else {
      EXPECT_EQ(Param(call, "ProtectedFromScaleIn"), "false") << "call " << i;
      EXPECT_GE(TimeOf(call), period.finished) << "unprotected while the unit ran";
    }
  }
  EXPECT_EQ(aws.State()["instances"][options.instance_id]["protected"], false);
}

// --- 5. A drained agent terminates its instance through the group, once, when idle ------------

TEST_F(AgentDrainTest, DrainedAgentTerminatesThroughItsGroupWithDecrementOnceAfterItsLastUnit) {
  InitStack();
  ASSERT_FALSE(HasFatalFailure());
  // Each unit outlasts the idle-shutdown period: a unit in hand is never idle time.
  stack_.Enqueue("work", "id\nu1\nu2\n", "sleep 3");
  ASSERT_FALSE(HasFatalFailure());
  AwsFakeTenant& aws = NewAwsTenant();
  AgentOptions options = Options();
  const std::string group = UniqueName("workers");
  aws.AddToGroup(options.instance_id, group);
  options.aws_endpoint = aws.url();
  options.idle_shutdown = "2s";
  options.on_drain = "terminate";
  AgentProcess* agent = StartAgent(options);
  ASSERT_NE(agent, nullptr);

  WallTime exited_at;
  ASSERT_TRUE(WaitForExit(*agent, seconds(90), &exited_at)) << "the agent never drained";
  EXPECT_EQ(agent->child().ExitCode(), 0) << agent->Log();

  double last_end = 0;
  for (const char* name : {"u1", "u2"}) {
    auto unit = Unit("work", name);
    ASSERT_TRUE(unit.has_value());
    EXPECT_EQ(ToString(unit->state), "SUCCEEDED") << name;
    ASSERT_EQ(unit->attempts.size(), 1u) << name;
    ASSERT_TRUE(unit->attempts[0].finished_at.has_value());
    last_end = std::max(last_end, Seconds(*unit->attempts[0].finished_at));
  }

  const json terminations = aws.Calls("TerminateInstanceInAutoScalingGroup");
  ASSERT_EQ(terminations.size(), 1u) << terminations.dump(1);
  const json& termination = terminations[0];
  EXPECT_EQ(Param(termination, "InstanceId"), options.instance_id);
  EXPECT_EQ(Param(termination, "ShouldDecrementDesiredCapacity"), "true");
  EXPECT_FALSE(termination.contains("error")) << termination.dump();
  EXPECT_GE(TimeOf(termination), last_end) << "terminated before the last unit ended";
  EXPECT_TRUE(aws.Calls("TerminateInstances").empty()) << "terminated outside the group";
  // Protection was cleared before (no unit in hand when it terminates).
  const json protection = aws.Calls("SetInstanceProtection");
  ASSERT_FALSE(protection.empty());
  EXPECT_EQ(Param(protection.back(), "ProtectedFromScaleIn"), "false");
  EXPECT_LE(TimeOf(protection.back()), TimeOf(termination));
  const json state = aws.State()["instances"][options.instance_id];
  EXPECT_EQ(state["lifecycle_state"], "Terminating");
  EXPECT_EQ(state["decremented_desired_capacity"], true);

  auto workers = ledger_->ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.error().ToString();
  bool ended = false;
  for (const WorkerRecord& worker : *workers) {
    if (worker.instance_id == options.instance_id) ended = worker.state == WorkerState::kEnded;
  }
  EXPECT_TRUE(ended) << "the worker item does not record the end";
}

// --- 6. The drain deadline holds against a command that ignores its signal --------------------

TEST_F(AgentDrainTest, NoticeDeadlineHoldsWhenTheCommandIgnoresItsSignalNothingOfTheUnitSurvives) {
  InitStack();
  ASSERT_FALSE(HasFatalFailure());
  const std::string marker = UniqueName("deaf");
  stack_.Enqueue(kJob, "id,marker\n" + std::string(kUnit) + "," + marker + "\n",
                 "trap '' TERM; while :; do sleep 0.2; done");
  ASSERT_FALSE(HasFatalFailure());
  AgentOptions options = Options();
  options.aws_endpoint = NewAwsTenant().url();
  constexpr int kReserve = 4;
  options.extra_args.insert(options.extra_args.end(),
                            {"--upload-reserve", std::to_string(kReserve) + "s"});
  AgentProcess* agent = StartAgent(options);
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return !ProcessesWithEnv("marker", marker).empty(); }, seconds(30),
                        milliseconds(50)));
  ASSERT_TRUE(WaitForState(kJob, kUnit, UnitState::kRunning, seconds(10)));

  const auto [notice_at, notice_text] = NoticeTime(seconds(15));
  ASSERT_TRUE(agent->PutMetadata("spot/instance-action", SpotNotice(notice_text)));
  // The drain deadline D is the notice time less 5 s; the unit keeps its grace until
  // D - upload-reserve. Until shortly before that, the window must not have been cut short.
  const double grace_end = Seconds(notice_at) - 5 - kReserve;
  WaitUntil([&] { return Seconds(WallNow()) >= grace_end - 1.5 || !agent->Running(); }, seconds(20),
            milliseconds(50));
  EXPECT_TRUE(agent->Running()) << "the agent gave up the notice window early";
  EXPECT_FALSE(ProcessesWithEnv("marker", marker).empty()) << "the grace period was cut short";

  WallTime exited_at;
  ASSERT_TRUE(WaitForExit(*agent, seconds(30), &exited_at)) << "still running after the notice";
  EXPECT_EQ(agent->child().ExitCode(), 0) << agent->Log();
  EXPECT_LT(Seconds(exited_at), Seconds(notice_at))
      << "exited " << Seconds(exited_at) - Seconds(notice_at) << " s after the notice time";
  // The design keeps 5 s: everything ends before D (1 s allowed for noticing the exit).
  EXPECT_LT(Seconds(exited_at), Seconds(notice_at) - 5 + 1)
      << "exited " << Seconds(exited_at) - (Seconds(notice_at) - 5) << " s after D";
  EXPECT_TRUE(WaitUntil([&] { return ProcessesWithEnv("marker", marker).empty(); }, seconds(2),
                        milliseconds(20)))
      << ProcessesWithEnv("marker", marker).size() << " processes of the unit survived";

  auto unit = Unit(kJob, kUnit);
  ASSERT_TRUE(unit.has_value());
  EXPECT_EQ(ToString(unit->state), "QUEUED");
  EXPECT_EQ(unit->interruptions, 1);
  EXPECT_EQ(unit->failures, 0);
  ASSERT_EQ(unit->attempts.size(), 1u);
  EXPECT_EQ(unit->attempts[0].reason, "interrupted");
  ASSERT_TRUE(unit->attempts[0].finished_at.has_value());
  EXPECT_LT(Seconds(*unit->attempts[0].finished_at), Seconds(notice_at) - 5) << "released after D";
}

// --- 7. Rebalance recommendation, default policy stop-taking --------------------------------

TEST_F(AgentDrainTest, RebalanceRecommendationLetsTheRunningUnitSucceedAndTakesNoNewUnit) {
  InitStack();
  ASSERT_FALSE(HasFatalFailure());
  const std::string marker = UniqueName("rebalance");
  stack_.Enqueue("first", "id,marker\nu1," + marker + "\n", "sleep 10");
  ASSERT_FALSE(HasFatalFailure());
  AgentOptions options = Options();
  options.aws_endpoint = NewAwsTenant().url();
  AgentProcess* agent = StartAgent(options);
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return !ProcessesWithEnv("marker", marker).empty(); }, seconds(30),
                        milliseconds(50)));

  const double posted_at = Seconds(WallNow());
  ASSERT_TRUE(agent->PutMetadata("events/recommendations/rebalance",
                                 json{{"noticeTime", FormatIso8601(WallNow())}}.dump()));
  // The agent has read the recommendation once it asked IMDS for it after it was posted.
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const json& request : agent->ImdsRequests()) {
          if (request.value("path", "").find("events/recommendations/rebalance") !=
                  std::string::npos &&
              TimeOf(request) > posted_at) {
            return true;
          }
        }
        return false;
      },
      seconds(15), kPoll))
      << "the agent never looked at events/recommendations/rebalance";
  stack_.Enqueue("second", "id\nu1\n", "echo taken");
  ASSERT_FALSE(HasFatalFailure());

  ASSERT_TRUE(WaitForState("first", "u1", UnitState::kSucceeded, seconds(30)))
      << stack_.Show("first", "u1").dump(2);
  auto first = Unit("first", "u1");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->interruptions, 0);
  EXPECT_EQ(first->attempt, 1);
  EXPECT_EQ(first->exit_code, 0);

  // Several long polls with a free slot: the second unit stays untouched while the agent lives.
  const bool taken = WaitUntil(
      [&] {
        auto second = Unit("second", "u1");
        return !agent->Running() || !second || second->attempt != 0 ||
               second->state != UnitState::kQueued;
      },
      seconds(6), kPoll);
  auto second = Unit("second", "u1");
  ASSERT_TRUE(second.has_value());
  EXPECT_FALSE(taken && agent->Running()) << "the agent took a unit after the recommendation";
  EXPECT_EQ(ToString(second->state), "QUEUED");
  EXPECT_EQ(second->attempt, 0);
  if (agent->Running()) {
    EXPECT_TRUE(agent->Stop());
  }
  EXPECT_EQ(agent->child().ExitCode(), 0) << agent->Log();
  second = Unit("second", "u1");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->attempt, 0) << "taken while the agent stopped";

  // The unit was there to take: an agent without a recommendation runs it.
  AgentOptions other = Options();
  other.aws_endpoint = NewAwsTenant().url();
  ASSERT_NE(StartAgent(other), nullptr);
  EXPECT_TRUE(WaitForState("second", "u1", UnitState::kSucceeded, seconds(40)))
      << stack_.Show("second", "u1").dump(2);
}

}  // namespace
}  // namespace spotgrid
