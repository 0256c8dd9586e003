// The agent's loop end to end against in-memory SQS, ledger and S3, with real /bin/sh
// commands in temporary directories. Time-driven behaviour (heartbeats, timeouts, retry
// backoff, idle shutdown) runs on a FakeClock the test moves; processes run in real time.
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "agent/missing_permission.h"
#include "agent/unit_runner.h"
#include "spotgrid/core/deadline.h"
#include "spotgrid/core/log.h"
#include "support/fake_autoscaling.h"
#include "support/fake_clock.h"
#include "support/fake_instance_metadata.h"
#include "support/fake_s3.h"
#include "support/fake_sqs.h"
#include "support/fake_unit_leases.h"
#include "support/test_env.h"

namespace spotgrid::agent {
namespace {

using spotgrid::testing::FakeAutoScaling;
using spotgrid::testing::FakeClock;
using spotgrid::testing::FakeInstanceMetadata;
using spotgrid::testing::FakeS3;
using spotgrid::testing::FakeSqs;
using spotgrid::testing::FakeUnitLeases;
using spotgrid::testing::MakeTempDir;
using spotgrid::testing::WaitUntil;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Op = FakeUnitLeases::Op;

constexpr milliseconds kDeadline{20000};

class RecordingNotifier final : public Notifier {
 public:
  void Ready() override { Add("READY"); }
  void Status(const std::string& text) override { Add("STATUS=" + text); }
  void Stopping() override { Add("STOPPING"); }
  void Watchdog() override { Add("WATCHDOG"); }
  std::optional<std::chrono::microseconds> WatchdogInterval() const override {
    return watchdog_interval;
  }
  std::optional<std::chrono::microseconds> watchdog_interval;
  std::vector<std::string> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  std::string last_status() const {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
      if (it->rfind("STATUS=", 0) == 0) return it->substr(7);
    }
    return "";
  }

 private:
  void Add(std::string event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
  }
  mutable std::mutex mu_;
  std::vector<std::string> events_;
};

class FakeEc2 final : public Ec2 {
 public:
  std::vector<std::string> terminated;
  Result<std::vector<InstanceStateChange>> TerminateInstances(
      const std::vector<std::string>& ids) override {
    terminated.insert(terminated.end(), ids.begin(), ids.end());
    return std::vector<InstanceStateChange>{};
  }
  Status CreateTags(const std::vector<std::string>&, const std::vector<Ec2Tag>&) override {
    return Status::Ok();
  }
  Result<std::vector<SpotPrice>> DescribeSpotPriceHistory(const SpotPriceQuery&) override {
    return std::vector<SpotPrice>{};
  }
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// The agent's instance metadata as its interruption watch reads it: every call goes to the
// fake, and the wrapper notes which thread asked and how often that thread had read the
// FakeClock's monotonic time by then. The watch waits for its next poll by reading the clock
// between real-time slices; once it has read the clock kWaitingReads times since its last
// question to IMDS it is certainly in that wait, with its next poll due one --spot-poll after
// the poll it just made: a test may then move the clock and know the watch will see it.
class WatchedMetadata final : public InstanceMetadata {
 public:
  // More reads of the clock than the watch and the agent's notice handlers make between a
  // poll's last question to IMDS and the wait for the next poll (the notice's deadline, the
  // drain's log line, a lifecycle heartbeat's due time, the next poll's due time: under 8).
  static constexpr std::uint64_t kWaitingReads = 12;

  WatchedMetadata(std::shared_ptr<FakeInstanceMetadata> fake, const FakeClock& clock)
      : fake_(std::move(fake)), clock_(clock) {}

  // The watch has polled IMDS at least once and waits for its next poll.
  bool WatchWaiting() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (!watch_thread_) return false;
    return clock_.MonotonicReads(*watch_thread_) >= reads_at_last_poll_ + kWaitingReads;
  }
  // The fake monotonic time of the watch's latest question to IMDS.
  std::optional<Clock::MonoTime> LastPollAt() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_poll_at_;
  }

  Result<std::string> Get(std::string_view path) override { return fake_->Get(path); }
  Result<std::string> InstanceId() override { return fake_->InstanceId(); }
  Result<std::string> InstanceType() override { return fake_->InstanceType(); }
  Result<std::string> Region() override { return fake_->Region(); }
  Result<std::string> AvailabilityZone() override { return fake_->AvailabilityZone(); }
  Result<bool> IsSpot() override { return fake_->IsSpot(); }
  Result<std::optional<SpotInstanceActionNotice>> SpotInstanceAction() override {
    auto result = fake_->SpotInstanceAction();
    Polled();
    return result;
  }
  Result<std::optional<RebalanceNotice>> RebalanceRecommendation() override {
    auto result = fake_->RebalanceRecommendation();
    Polled();
    return result;
  }
  Result<std::optional<std::string>> TargetLifecycleState() override {
    auto result = fake_->TargetLifecycleState();
    Polled();
    return result;
  }
  Result<Credentials> RoleCredentials() override { return fake_->RoleCredentials(); }

 private:
  void Polled() {
    const std::thread::id self = std::this_thread::get_id();
    // Read before taking mu_: the time the poll saw, not counted as a read of the watch's.
    const std::uint64_t reads = clock_.MonotonicReads(self);
    const Clock::MonoTime now = clock_.Monotonic();
    std::lock_guard<std::mutex> lock(mu_);
    watch_thread_ = self;
    reads_at_last_poll_ = reads + 1;  // this wrapper's own read
    last_poll_at_ = now;
  }

  std::shared_ptr<FakeInstanceMetadata> fake_;
  const FakeClock& clock_;
  mutable std::mutex mu_;
  std::optional<std::thread::id> watch_thread_;
  std::uint64_t reads_at_last_poll_ = 0;
  std::optional<Clock::MonoTime> last_poll_at_;
};

// The fake queue, with ReceiveMessage answering an injected error the next `times` calls.
class ReceiveFailingSqs final : public Sqs {
 public:
  explicit ReceiveFailingSqs(std::shared_ptr<FakeSqs> fake) : fake_(std::move(fake)) {}
  void FailReceives(Error error, int times) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(error);
    times_ = times;
  }
  int receives() const {
    std::lock_guard<std::mutex> lock(mu_);
    return receives_;
  }

  Result<std::vector<SqsMessage>> ReceiveMessage(const std::string& queue_url,
                                                 const ReceiveRequest& request) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++receives_;
      if (times_ > 0) {
        --times_;
        return error_;
      }
    }
    return fake_->ReceiveMessage(queue_url, request);
  }
  Result<std::string> CreateQueue(const CreateQueueRequest& request) override {
    return fake_->CreateQueue(request);
  }
  Result<std::string> GetQueueUrl(const std::string& name) override {
    return fake_->GetQueueUrl(name);
  }
  Result<std::map<std::string, std::string>> GetQueueAttributes(
      const std::string& queue_url, const std::vector<std::string>& names) override {
    return fake_->GetQueueAttributes(queue_url, names);
  }
  Status DeleteQueue(const std::string& queue_url) override { return fake_->DeleteQueue(queue_url); }
  Result<SendMessageBatchResult> SendMessageBatch(const std::string& queue_url,
                                                  std::span<const SendEntry> entries) override {
    return fake_->SendMessageBatch(queue_url, entries);
  }
  Status DeleteMessage(const std::string& queue_url, const std::string& receipt_handle) override {
    return fake_->DeleteMessage(queue_url, receipt_handle);
  }
  Result<BatchResult> DeleteMessageBatch(const std::string& queue_url,
                                         std::span<const std::string> receipt_handles) override {
    return fake_->DeleteMessageBatch(queue_url, receipt_handles);
  }
  Status ChangeMessageVisibility(const std::string& queue_url, const std::string& receipt_handle,
                                 int visibility_timeout) override {
    return fake_->ChangeMessageVisibility(queue_url, receipt_handle, visibility_timeout);
  }
  Result<BatchResult> ChangeMessageVisibilityBatch(
      const std::string& queue_url, std::span<const VisibilityEntry> entries) override {
    return fake_->ChangeMessageVisibilityBatch(queue_url, entries);
  }
  Status PurgeQueue(const std::string& queue_url) override { return fake_->PurgeQueue(queue_url); }

 private:
  std::shared_ptr<FakeSqs> fake_;
  mutable std::mutex mu_;
  Error error_;
  int times_ = 0;
  int receives_ = 0;
};

// An AWS answer 403 as the clients report it.
Error Denied(const std::string& service, const std::string& operation, const std::string& code) {
  Error error;
  error.category = ErrorCategory::kClient;
  error.service = service;
  error.operation = operation;
  error.http_status = 403;
  error.code = code;
  error.message = "User: arn:aws:sts::123456789012:assumed-role/worker/i-test is not authorized";
  return error;
}

// Collects the process log while alive; puts a stderr logger back when destroyed.
class LogCapture {
 public:
  LogCapture() {
    logger_ = std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text_));
    logger_->set_level(spdlog::level::trace);
    logger_->set_pattern("[%l] %v");
    SetLogger(logger_);
  }
  ~LogCapture() {
    SetLogger(std::make_shared<spdlog::logger>(
        "restored", std::make_shared<spdlog::sinks::ostream_sink_mt>(std::cerr)));
  }
  // Call once every thread that logs has been joined.
  std::string text() {
    logger_->flush();
    return text_.str();
  }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> logger_;
};

// The ledger behind a black hole for lease renewals: while `hang` is set, RenewLease sends
// nothing and never answers, until the caller's deadline (ScopedDeadline, by the fake clock)
// has passed, as a connection that swallows requests would. Everything else goes through.
class BlackHoledRenewals final : public UnitLeases {
 public:
  BlackHoledRenewals(std::shared_ptr<FakeUnitLeases> inner, const Clock& clock)
      : inner_(std::move(inner)), clock_(clock) {}

  std::atomic<bool> hang{false};
  std::atomic<int> swallowed{0};  // renewals that went into the hole
  std::atomic<int> gave_up{0};    // renewals that came back out at their deadline

  Result<RenewResult> RenewLease(const LeaseRef& lease, seconds duration,
                                 const std::optional<std::string>& progress) override {
    if (!hang) return inner_->RenewLease(lease, duration, progress);
    ++swallowed;
    const auto deadline = ScopedDeadline::Current();
    while (hang && (!deadline || clock_.Monotonic() < *deadline)) {
      std::this_thread::sleep_for(milliseconds(2));  // a real-time slice; the test moves time
    }
    if (!hang) return inner_->RenewLease(lease, duration, progress);
    ++gave_up;
    return DeadlineExceeded("DynamoDB", "UpdateItem");
  }

  Result<std::optional<StackInfo>> GetStack() override { return inner_->GetStack(); }
  Result<std::optional<JobRecord>> GetJob(const std::string& job) override {
    return inner_->GetJob(job);
  }
  Result<ClaimResult> ClaimUnit(const ClaimRequest& request) override {
    return inner_->ClaimUnit(request);
  }
  Status ReleaseUnit(const AttemptEnd& end, bool count_failure) override {
    return inner_->ReleaseUnit(end, count_failure);
  }
  Status FinishUnit(const AttemptEnd& end, UnitState to) override {
    return inner_->FinishUnit(end, to);
  }
  Status FlushIntents(const std::string& job, const std::string& writer) override {
    return inner_->FlushIntents(job, writer);
  }
  Status PutWorker(const WorkerRecord& worker) override { return inner_->PutWorker(worker); }
  Result<std::optional<UnitRecord>> GetUnit(const std::string& job,
                                            const std::string& unit) override {
    return inner_->GetUnit(job, unit);
  }
  Result<std::vector<JobRecord>> ListActiveJobs() override { return inner_->ListActiveJobs(); }
  Status ListUnitsInState(const std::string& job, UnitState state,
                          std::optional<Clock::WallTime> entered_before,
                          const std::function<bool(const std::vector<UnitRecord>&)>& on_page)
      override {
    return inner_->ListUnitsInState(job, state, entered_before, on_page);
  }
  Result<bool> MarkSwept(const UnitRecord& seen, seconds resend_after) override {
    return inner_->MarkSwept(seen, resend_after);
  }
  Status FailPoisoned(const UnitRecord& seen, const std::string& error) override {
    return inner_->FailPoisoned(seen, error);
  }
  Result<RepairReport> RepairJob(const std::string& job) override {
    return inner_->RepairJob(job);
  }

 private:
  std::shared_ptr<FakeUnitLeases> inner_;
  const Clock& clock_;
};

class AgentLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("agent-loop");
    queue_url_ = sqs_->AddQueue("work", 900);
    stack_.name = "s";
    stack_.bucket = "bucket";
    stack_.prefix = "p";
    stack_.queue_url = queue_url_;
    ASSERT_TRUE(s3_->CreateBucket("bucket").ok());
    ledger_->SetStack(stack_);
    config_.stack = "s";
    config_.slots = 2;
    config_.work_dir = dir_ + "/work";
    config_.heartbeat = seconds(30);
    config_.lease = seconds(90);
    config_.sync_interval = seconds(300);
    config_.idle_shutdown = seconds(600);
    config_.on_drain = DrainAction::kStay;
    config_.kill_grace = seconds(5);
    config_.poll_wait_s = 1;
    config_.user.clear();
    identity_.instance_id = "i-test";
  }

  void TearDown() override {
    if (runner_.joinable()) StopAgent();
    std::filesystem::remove_all(dir_);
  }

  void StartAgent() {
    AgentDeps deps;
    deps.sqs = agent_sqs_ ? agent_sqs_ : sqs_;
    deps.ledger = agent_ledger_ ? agent_ledger_ : ledger_;
    deps.s3 = s3_;
    deps.autoscaling = autoscaling_;
    deps.ec2 = ec2_;
    deps.imds = watched_imds_;
    deps.identity = identity_;
    deps.notifier = &notifier_;
    deps.clock = &clock_;
    deps.poll_slice = milliseconds(20);
    agent_ = std::make_unique<Agent>(config_, deps);
    runner_ = std::thread([this] {
      auto result = agent_->Run();
      std::lock_guard<std::mutex> lock(mu_);
      result_ = std::make_unique<Result<AgentExit>>(std::move(result));
    });
  }

  bool AgentReturned() {
    std::lock_guard<std::mutex> lock(mu_);
    return result_ != nullptr;
  }

  Result<AgentExit> JoinAgent() {
    runner_.join();
    std::lock_guard<std::mutex> lock(mu_);
    return *result_;
  }

  // Stops the agent and expects it to report the stop.
  void StopAgent() {
    agent_->RequestStop();
    auto exit = JoinAgent();
    ASSERT_TRUE(exit.ok()) << exit.error().ToString();
    EXPECT_EQ(*exit, AgentExit::kStopped);
  }

  // A job with one unit per command, each unit one row with the parameter i=<index>.
  void AddJob(const std::string& job, const std::vector<std::string>& commands,
              RetryRules retry = {}, std::int64_t timeout_s = 0) {
    JobSpec spec;
    spec.id = job;
    spec.retry = retry;
    spec.timeout_s = timeout_s;
    spec.columns = {"i"};
    ledger_->AddJob(spec);
    for (std::size_t i = 0; i < commands.size(); ++i) {
      UnitSpec unit;
      unit.id = "u" + std::to_string(i);
      unit.rows.push_back({static_cast<int>(i) + 2, commands[i], {{"i", std::to_string(i)}}});
      ASSERT_TRUE(ledger_->AddUnit(job, unit));
    }
  }

  std::string Send(const std::string& job, const std::string& unit) {
    return sqs_->Send(queue_url_, EncodeUnitMessage(job, unit));
  }

  UnitState StateOf(const std::string& job, const std::string& unit) {
    auto record = ledger_->Unit(job, unit);
    return record ? record->state : UnitState::kQueued;
  }

  bool WaitForState(const std::string& job, const std::string& unit, UnitState state) {
    return WaitUntil([&] { return StateOf(job, unit) == state; }, kDeadline);
  }

  bool MessageDeleted(const std::string& id) {
    auto message = sqs_->Message(queue_url_, id);
    return message && message->deleted;
  }

  // A requeue's fresh message: the newest message on the queue, unless that is `old_id`.
  std::optional<FakeSqs::MessageView> Requeued(const std::string& old_id) {
    auto messages = sqs_->Messages(queue_url_);
    if (messages.empty() || messages.back().id == old_id) return std::nullopt;
    return messages.back();
  }
  // How long after the clock's now `message` becomes visible: its delay, while the clock has
  // not moved since it was sent.
  seconds VisibleIn(const FakeSqs::MessageView& message) {
    return std::chrono::duration_cast<seconds>(message.visible_at - clock_.Monotonic());
  }

  // Waits for a command to write its pid to `file` and returns it.
  pid_t WaitForPid(const std::string& file) {
    pid_t pid = 0;
    WaitUntil(
        [&] {
          std::string text = ReadFile(file);
          if (text.empty() || text.back() != '\n') return false;
          pid = static_cast<pid_t>(std::stol(text));
          return true;
        },
        kDeadline);
    return pid;
  }

  std::string Marker(const std::string& name) const { return dir_ + "/" + name; }

  FakeClock clock_;
  std::shared_ptr<FakeSqs> sqs_ = std::make_shared<FakeSqs>(clock_);
  std::shared_ptr<Sqs> agent_sqs_;  // what the agent uses instead of sqs_, when set
  std::shared_ptr<FakeUnitLeases> ledger_ = std::make_shared<FakeUnitLeases>(clock_);
  std::shared_ptr<UnitLeases> agent_ledger_;  // what the agent uses instead of ledger_, when set
  std::shared_ptr<FakeS3> s3_ = std::make_shared<FakeS3>();
  std::shared_ptr<FakeAutoScaling> autoscaling_;
  std::shared_ptr<FakeEc2> ec2_;
  std::shared_ptr<FakeInstanceMetadata> imds_ = std::make_shared<FakeInstanceMetadata>();
  std::shared_ptr<WatchedMetadata> watched_imds_ = std::make_shared<WatchedMetadata>(imds_, clock_);
  RecordingNotifier notifier_;
  WorkerIdentity identity_;
  StackInfo stack_;
  AgentConfig config_;
  std::string dir_, queue_url_;

  std::unique_ptr<Agent> agent_;
  std::thread runner_;
  std::mutex mu_;
  std::unique_ptr<Result<AgentExit>> result_;
};

TEST_F(AgentLoopTest, UnitRunsOnceSucceedsAndItsMessageIsDeleted) {
  AddJob("j", {"echo hello; echo oops >&2; echo result > \"$SPOTGRID_OUTPUT_DIR/out.txt\"; "
               "echo \"$SPOTGRID_JOB/$SPOTGRID_UNIT/$SPOTGRID_ATTEMPT/$SPOTGRID_ROW/$i\" >> " +
               Marker("runs")});
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(id); }, kDeadline));

  EXPECT_EQ(ReadFile(Marker("runs")), "j/u0/1/0/0\n");
  auto unit = ledger_->Unit("j", "u0");
  ASSERT_TRUE(unit);
  EXPECT_EQ(unit->exit_code, 0);
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 1);
  EXPECT_EQ(ledger_->Counts("j").succeeded, 1);
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/output/out.txt"), "result\n");
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/logs/1/stdout.log"), "hello\n");
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/logs/1/stderr.log"), "oops\n");
  // A new attempt's log prefix is empty by construction: never listed.
  for (const std::string& prefix : s3_->ListedPrefixes()) {
    EXPECT_EQ(prefix.find("/logs/"), std::string::npos) << prefix;
  }

  StopAgent();
  EXPECT_EQ(ReadFile(Marker("runs")), "j/u0/1/0/0\n");
  EXPECT_FALSE(std::filesystem::exists(UnitDirectory(config_.work_dir, 0, "j", "u0")));
  auto events = notifier_.events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(std::count(events.begin(), events.end(), "READY"), 1);
  EXPECT_NE(std::find(events.begin(), events.end(), "STATUS=1/2 slots busy: j/u0"), events.end());
}

TEST_F(AgentLoopTest, DuplicateDeliveryInOneReceiveRunsTheUnitOnce) {
  AddJob("j", {"echo run >> " + Marker("runs")});
  sqs_->DuplicateNextDelivery(queue_url_, 2);
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(id); }, kDeadline));
  StopAgent();
  EXPECT_EQ(sqs_->Message(queue_url_, id)->receive_count, 2);  // both copies arrived
  EXPECT_EQ(ReadFile(Marker("runs")), "run\n");
  EXPECT_EQ(ledger_->Calls(Op::kClaimUnit), 1);
  EXPECT_EQ(ledger_->Unit("j", "u0")->attempt, 1);
  EXPECT_EQ(ledger_->Counts("j").succeeded, 1);
}

TEST_F(AgentLoopTest, MessageOfFinishedUnitIsDeletedWithoutRunning) {
  AddJob("j", {"echo run >> " + Marker("runs")});
  UnitRecord unit = *ledger_->Unit("j", "u0");
  unit.state = UnitState::kSucceeded;
  unit.attempt = 1;
  ledger_->SetUnit(unit);
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(id); }, kDeadline));
  StopAgent();
  EXPECT_FALSE(std::filesystem::exists(Marker("runs")));
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 0);
  EXPECT_EQ(ledger_->Unit("j", "u0")->attempt, 1);
}

TEST_F(AgentLoopTest, MessageOfUnitHeldElsewhereIsSetAsideUntilItsLeaseCouldLapse) {
  AddJob("j", {"echo run >> " + Marker("runs")});
  auto other = ledger_->ClaimUnit({"j", "u0", "i-other/0", seconds(90)});
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other->outcome, ClaimOutcome::kClaimed);
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return ledger_->Calls(Op::kClaimUnit) == 2; }, kDeadline));
  // A few more rounds, so anything the agent would do to the message has happened.
  int receives = sqs_->CallCount("ReceiveMessage");
  ASSERT_TRUE(
      WaitUntil([&] { return sqs_->CallCount("ReceiveMessage") >= receives + 3; }, kDeadline));
  StopAgent();
  auto message = sqs_->Message(queue_url_, id);
  EXPECT_FALSE(message->deleted);
  EXPECT_EQ(message->receive_count, 1);
  // Back once the holder's 90 s lease could have lapsed, and a heartbeat more.
  EXPECT_EQ(sqs_->VisibilityChanges(), (std::vector<std::pair<std::string, int>>{{id, 120}}));
  auto unit = ledger_->Unit("j", "u0");
  EXPECT_EQ(unit->owner, "i-other/0");
  EXPECT_EQ(unit->attempt, 1);
  EXPECT_FALSE(std::filesystem::exists(Marker("runs")));
}

TEST_F(AgentLoopTest, MessageWhoseClaimFailedStaysHiddenForLeaseAndOneHeartbeat) {
  AddJob("j", {"true"});
  Error outage;
  outage.category = ErrorCategory::kTransient;
  outage.service = "DynamoDB";
  outage.message = "injected outage";
  ledger_->FailNext(Op::kClaimUnit, outage, 1);
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return ledger_->Calls(Op::kClaimUnit) == 1; }, kDeadline));
  clock_.Advance(seconds(119));
  EXPECT_FALSE(sqs_->Message(queue_url_, id)->visible);
  clock_.Advance(seconds(2));  // 90 s lease + 30 s heartbeat have passed
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  StopAgent();
  EXPECT_EQ(sqs_->Message(queue_url_, id)->receive_count, 2);
  EXPECT_TRUE(MessageDeleted(id));
}

TEST_F(AgentLoopTest, UnparsableMessageIsLeftForTheDeadLetterQueue) {
  std::string id = sqs_->Send(queue_url_, "this is not a unit");
  StartAgent();
  ASSERT_TRUE(
      WaitUntil([&] { return sqs_->Message(queue_url_, id)->receive_count == 1; }, kDeadline));
  int receives = sqs_->CallCount("ReceiveMessage");
  ASSERT_TRUE(
      WaitUntil([&] { return sqs_->CallCount("ReceiveMessage") >= receives + 3; }, kDeadline));
  StopAgent();
  EXPECT_FALSE(sqs_->Message(queue_url_, id)->deleted);
  EXPECT_TRUE(sqs_->VisibilityChanges().empty());
  EXPECT_EQ(ledger_->Calls(Op::kClaimUnit), 0);
  EXPECT_EQ(ledger_->Calls(Op::kGetJob), 0);
}

TEST_F(AgentLoopTest, FailingCommandIsRetriedAfterBackoffThenFailed) {
  RetryRules retry;
  retry.max_attempts = 2;
  AddJob("j", {"echo attempt $SPOTGRID_ATTEMPT >&2; exit 3"}, retry);
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto unit = ledger_->Unit("j", "u0");
        return unit && unit->state == UnitState::kQueued && unit->failures == 1;
      },
      kDeadline));
  // The claimed message went; a fresh one comes back after the backoff.
  EXPECT_TRUE(MessageDeleted(id));
  auto fresh = Requeued(id);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(VisibleIn(*fresh), seconds(10));
  EXPECT_EQ(fresh->receive_count, 0);
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/logs/1/stderr.log"), "attempt 1\n");

  clock_.Advance(seconds(11));  // the backoff passes: the fresh message is delivered
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kFailed));
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(fresh->id); }, kDeadline));
  StopAgent();
  auto unit = ledger_->Unit("j", "u0");
  EXPECT_EQ(unit->attempt, 2);
  EXPECT_EQ(unit->exit_code, 3);
  EXPECT_NE(unit->error.find("exit code 3"), std::string::npos) << unit->error;
  ASSERT_EQ(unit->attempts.size(), 2u);
  EXPECT_EQ(unit->attempts[0].reason, "failed");
  EXPECT_EQ(unit->attempts[0].exit_code, 3);
  EXPECT_EQ(ledger_->Counts("j").failed, 1);
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/logs/2/stderr.log"), "attempt 2\n");
}

TEST_F(AgentLoopTest, FailCodeFailsAtOnceWithoutRetry) {
  RetryRules retry;
  retry.max_attempts = 3;
  retry.fail_exit_codes = {4};
  AddJob("j", {"exit 4"}, retry);
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kFailed));
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(id); }, kDeadline));
  StopAgent();
  EXPECT_EQ(ledger_->Unit("j", "u0")->attempt, 1);
  EXPECT_EQ(ledger_->Unit("j", "u0")->exit_code, 4);
}

TEST_F(AgentLoopTest, RestartedAttemptFindsItsCheckpoint) {
  RetryRules retry;
  retry.max_attempts = 2;
  AddJob("j",
         {"if [ -f \"$SPOTGRID_CHECKPOINT_DIR/state\" ]; then "
          "cp \"$SPOTGRID_CHECKPOINT_DIR/state\" \"$SPOTGRID_OUTPUT_DIR/resumed\"; exit 0; fi; "
          "echo step1 > \"$SPOTGRID_CHECKPOINT_DIR/state\"; exit 1"},
         retry);
  Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return ledger_->Unit("j", "u0")->failures == 1; }, kDeadline));
  ASSERT_TRUE(WaitUntil([&] { return StateOf("j", "u0") == UnitState::kQueued; }, kDeadline));
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/checkpoint/state"), "step1\n");
  clock_.Advance(seconds(11));
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  StopAgent();
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/output/resumed"), "step1\n");
  EXPECT_EQ(ledger_->Unit("j", "u0")->attempt, 2);
}

TEST_F(AgentLoopTest, TimeoutKillsTheCommandAndFailsWithReasonTimeout) {
  RetryRules retry;
  retry.max_attempts = 1;
  AddJob("j", {"echo $$ > " + Marker("pid") + "; exec sleep 30"}, retry, /*timeout_s=*/5);
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  clock_.Advance(seconds(6));
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kFailed));
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(id); }, kDeadline));
  StopAgent();
  EXPECT_TRUE(ProcessGone(pid));
  auto unit = ledger_->Unit("j", "u0");
  ASSERT_EQ(unit->attempts.size(), 1u);
  EXPECT_EQ(unit->attempts[0].reason, "timeout");
  EXPECT_FALSE(unit->exit_code.has_value());
  EXPECT_NE(unit->error.find("timed out after 5s"), std::string::npos) << unit->error;
}

TEST_F(AgentLoopTest, CancelRequestStopsTheRunningUnit) {
  AddJob("j", {"echo $$ > " + Marker("pid") + "; exec sleep 30"});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  ledger_->SetCancelRequested("j", "u0");
  clock_.Advance(config_.heartbeat);  // the next heartbeat learns of it
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kCancelled));
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(id); }, kDeadline));
  StopAgent();
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_EQ(ledger_->Counts("j").cancelled, 1);
  EXPECT_EQ(ledger_->Unit("j", "u0")->attempts.at(0).reason, "cancelled");
}

TEST_F(AgentLoopTest, LostLeaseStopsTheUnitAndWritesNothing) {
  AddJob("j", {"echo $$ > " + Marker("pid") + "; exec sleep 30"});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  ASSERT_EQ(StateOf("j", "u0"), UnitState::kRunning);
  // Another worker takes the unit over after the lease ran out.
  ledger_->ExpireLease("j", "u0");
  auto taken = ledger_->ClaimUnit({"j", "u0", "i-other/1", seconds(90)});
  ASSERT_TRUE(taken.ok());
  ASSERT_EQ(taken->outcome, ClaimOutcome::kClaimed);
  std::size_t s3_writes = s3_->Writes().size();
  std::size_t visibility_changes = sqs_->VisibilityChanges().size();
  const std::size_t messages = sqs_->Messages(queue_url_).size();

  clock_.Advance(config_.heartbeat);
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, kDeadline));
  ASSERT_TRUE(WaitUntil([&] { return notifier_.last_status() == "0/2 slots busy"; }, kDeadline));
  StopAgent();
  EXPECT_EQ(s3_->Writes().size(), s3_writes);
  EXPECT_EQ(sqs_->VisibilityChanges().size(), visibility_changes);
  EXPECT_EQ(sqs_->Messages(queue_url_).size(), messages);  // no message sent either
  EXPECT_TRUE(MessageDeleted(id));                          // at the claim
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 0);
  EXPECT_EQ(ledger_->Calls(Op::kReleaseUnit), 0);
  auto unit = ledger_->Unit("j", "u0");
  EXPECT_EQ(unit->state, UnitState::kRunning);
  EXPECT_EQ(unit->owner, "i-other/1");
  EXPECT_EQ(unit->attempt, 2);
}

TEST_F(AgentLoopTest, StopRequestReleasesRunningUnitAsInterrupted) {
  AddJob("j", {"echo partial > \"$SPOTGRID_OUTPUT_DIR/part\"; echo $$ > " + Marker("pid") +
               "; exec sleep 30"});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  StopAgent();
  EXPECT_TRUE(ProcessGone(pid));
  auto unit = ledger_->Unit("j", "u0");
  EXPECT_EQ(unit->state, UnitState::kQueued);
  EXPECT_EQ(unit->interruptions, 1);
  EXPECT_EQ(unit->failures, 0);
  EXPECT_EQ(unit->attempts.at(0).reason, "interrupted");
  EXPECT_TRUE(MessageDeleted(id));
  auto fresh = Requeued(id);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(VisibleIn(*fresh), seconds(2));  // after the release has landed
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/output/part"), "partial\n");  // the final sync ran
  auto worker = ledger_->Worker("i-test");
  ASSERT_TRUE(worker);
  EXPECT_EQ(worker->state, WorkerState::kEnded);
  auto events = notifier_.events();
  EXPECT_NE(std::find(events.begin(), events.end(), "STOPPING"), events.end());
}

TEST_F(AgentLoopTest, HeartbeatRenewsTheLeaseWithProgressAndLeavesTheQueueAlone) {
  AddJob("j", {"echo ' 50% ' > \"$SPOTGRID_PROGRESS_FILE\"; echo $$ > " + Marker("pid") +
               "; exec sleep 30"});
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_GT(WaitForPid(Marker("pid")), 0);
  clock_.Advance(config_.heartbeat);
  ASSERT_TRUE(WaitUntil([&] { return ledger_->Unit("j", "u0")->progress == "50%"; }, kDeadline));
  // The message went at the claim: a heartbeat has nothing to extend.
  EXPECT_TRUE(MessageDeleted(id));
  EXPECT_TRUE(sqs_->VisibilityChanges().empty());
  StopAgent();
}

TEST_F(AgentLoopTest, PeriodicSyncUploadsOutputWhileTheCommandRuns) {
  config_.sync_interval = seconds(60);
  AddJob("j", {"echo early > \"$SPOTGRID_OUTPUT_DIR/early\"; echo $$ > " + Marker("pid") +
               "; exec sleep 30"});
  Send("j", "u0");
  StartAgent();
  ASSERT_GT(WaitForPid(Marker("pid")), 0);
  EXPECT_FALSE(s3_->Object("bucket", "p/j/u0/output/early"));
  int renewals = ledger_->Calls(Op::kRenewLease);
  clock_.Advance(config_.sync_interval);
  ASSERT_TRUE(WaitUntil([&] { return s3_->Object("bucket", "p/j/u0/output/early").has_value(); },
                        kDeadline));
  EXPECT_GT(ledger_->Calls(Op::kRenewLease), renewals);  // the lease was confirmed first
  EXPECT_EQ(StateOf("j", "u0"), UnitState::kRunning);
  StopAgent();
}

TEST_F(AgentLoopTest, TwoSlotsRunTwoUnitsAtOnce) {
  // A FIFO opens only when both ends are open at once, so each unit blocks until the other
  // has started: both finish only if they run together.
  const std::string fifo = Marker("rendezvous");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  AddJob("j", {"echo go > " + fifo, "read line < " + fifo});
  Send("j", "u0");
  Send("j", "u1");
  StartAgent();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  ASSERT_TRUE(WaitForState("j", "u1", UnitState::kSucceeded));
  StopAgent();
  EXPECT_EQ(ledger_->Counts("j").succeeded, 2);
}

TEST_F(AgentLoopTest, ChunkedUnitRunsItsRowsInOrderAndStopsAtTheFirstFailure) {
  JobSpec spec;
  spec.id = "j";
  spec.retry.max_attempts = 1;
  ledger_->AddJob(spec);
  UnitSpec unit;
  unit.id = "u0";
  unit.rows.push_back({2, "echo row $SPOTGRID_ROW x=$x >> " + Marker("rows"), {{"x", "a"}}});
  unit.rows.push_back(
      {3, "echo row $SPOTGRID_ROW x=$x >> " + Marker("rows") + "; exit 5", {{"x", "b"}}});
  unit.rows.push_back({4, "echo never >> " + Marker("rows"), {{"x", "c"}}});
  ASSERT_TRUE(ledger_->AddUnit("j", unit));
  Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kFailed));
  StopAgent();
  EXPECT_EQ(ReadFile(Marker("rows")), "row 0 x=a\nrow 1 x=b\n");
  EXPECT_EQ(ledger_->Unit("j", "u0")->exit_code, 5);
}

TEST_F(AgentLoopTest, WorkerItemShowsIdentityAndUnitsInHand) {
  identity_.instance_type = "c7g.large";
  identity_.spot = true;
  AddJob("j", {"echo $$ > " + Marker("pid") + "; exec sleep 30"});
  Send("j", "u0");
  StartAgent();
  ASSERT_GT(WaitForPid(Marker("pid")), 0);
  clock_.Advance(config_.heartbeat);
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto worker = ledger_->Worker("i-test");
        return worker && worker->units_in_hand == std::vector<std::string>{"j/u0"};
      },
      kDeadline));
  auto worker = ledger_->Worker("i-test");
  EXPECT_EQ(worker->instance_type, "c7g.large");
  EXPECT_TRUE(worker->spot);
  EXPECT_EQ(worker->slots, 2);
  EXPECT_EQ(worker->heartbeat_s, 30);
  EXPECT_EQ(worker->state, WorkerState::kRunning);
  StopAgent();
}

TEST_F(AgentLoopTest, IdleWithEmptyQueueExitsWhenOnDrainIsExit) {
  config_.on_drain = DrainAction::kExit;
  config_.idle_shutdown = seconds(60);
  StartAgent();
  ASSERT_TRUE(WaitUntil(
      [&] { return ledger_->Calls(Op::kPutWorker) >= 1 && sqs_->CallCount("ReceiveMessage") >= 2; },
      kDeadline));
  EXPECT_FALSE(AgentReturned());
  clock_.Advance(seconds(61));
  ASSERT_TRUE(WaitUntil([&] { return AgentReturned(); }, kDeadline));
  auto exit = JoinAgent();
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(*exit, AgentExit::kDrained);
  EXPECT_EQ(ledger_->Worker("i-test")->state, WorkerState::kEnded);
}

// The queue is empty, but another worker's unit is still RUNNING: if that worker vanishes,
// only a sweep brings the unit back. The idle agent stays, takes the unit over once the
// lease lapsed, runs it, and only then switches off.
TEST_F(AgentLoopTest, IdleAgentStaysWhileAnotherWorkersUnitMayStillLapse) {
  config_.on_drain = DrainAction::kExit;
  config_.idle_shutdown = seconds(60);
  AddJob("j", {"echo run $SPOTGRID_ATTEMPT >> " + Marker("runs")});
  auto other = ledger_->ClaimUnit({"j", "u0", "i-other/0", seconds(90)});
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other->outcome, ClaimOutcome::kClaimed);
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return sqs_->CallCount("ReceiveMessage") >= 2; }, kDeadline));
  clock_.Advance(seconds(61));  // idle long enough, queue empty: but a unit has not ended
  const int sweeps = ledger_->Calls(Op::kListActiveJobs);
  ASSERT_TRUE(
      WaitUntil([&] { return ledger_->Calls(Op::kListActiveJobs) > sweeps + 1; }, kDeadline));
  EXPECT_FALSE(AgentReturned());
  clock_.Advance(seconds(40));  // the other worker's lease lapsed (90 s) past the grace
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  EXPECT_EQ(ReadFile(Marker("runs")), "run 2\n");
  // Idle again (a round that started nothing with the slot free), then long enough.
  ASSERT_TRUE(WaitUntil([&] { return notifier_.last_status() == "0/2 slots busy"; }, kDeadline));
  const int receives = sqs_->CallCount("ReceiveMessage");
  ASSERT_TRUE(
      WaitUntil([&] { return sqs_->CallCount("ReceiveMessage") >= receives + 2; }, kDeadline));
  clock_.Advance(seconds(61));  // and nothing is left to end
  ASSERT_TRUE(WaitUntil([&] { return AgentReturned(); }, kDeadline));
  auto exit = JoinAgent();
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(*exit, AgentExit::kDrained);
}

TEST_F(AgentLoopTest, IdleDoesNotDrainWhileTheQueueHoldsMessages) {
  config_.on_drain = DrainAction::kExit;
  config_.idle_shutdown = seconds(60);
  AddJob("j", {"true"});
  auto other = ledger_->ClaimUnit({"j", "u0", "i-other/0", seconds(900)});
  ASSERT_TRUE(other.ok());
  std::string id = Send("j", "u0");  // held elsewhere: in flight after our receive
  StartAgent();
  // The round that found the unit held elsewhere made the agent idle before its next receive:
  // moving the clock earlier would start the idle time after the move.
  ASSERT_TRUE(WaitUntil(
      [&] { return ledger_->Calls(Op::kClaimUnit) == 2 && sqs_->CallCount("ReceiveMessage") >= 2; },
      kDeadline));
  clock_.Advance(seconds(61));
  int checks = sqs_->CallCount("GetQueueAttributes");
  ASSERT_TRUE(
      WaitUntil([&] { return sqs_->CallCount("GetQueueAttributes") >= checks + 2; }, kDeadline));
  EXPECT_FALSE(AgentReturned());
  StopAgent();
}

TEST_F(AgentLoopTest, IdleTerminatesThroughTheAutoScalingGroup) {
  config_.on_drain = DrainAction::kTerminate;
  config_.idle_shutdown = seconds(60);
  identity_.on_ec2 = true;
  autoscaling_ = std::make_shared<FakeAutoScaling>();
  autoscaling_->AddToGroup("i-test", "workers");
  ec2_ = std::make_shared<FakeEc2>();
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return sqs_->CallCount("ReceiveMessage") >= 2; }, kDeadline));
  clock_.Advance(seconds(61));
  ASSERT_TRUE(WaitUntil([&] { return AgentReturned(); }, kDeadline));
  EXPECT_EQ(*JoinAgent(), AgentExit::kTerminated);
  // The group is looked up once at start; the drained agent terminates through it once,
  // shrinking it.
  EXPECT_EQ(autoscaling_->Calls(),
            (std::vector<FakeAutoScaling::Call>{
                {"DescribeAutoScalingInstances", "i-test"},
                {"TerminateInstanceInAutoScalingGroup", "i-test decrement=true"}}));
  EXPECT_TRUE(ec2_->terminated.empty());
}

TEST_F(AgentLoopTest, IdleTerminatesDirectlyOutsideAnAutoScalingGroup) {
  config_.on_drain = DrainAction::kTerminate;
  config_.idle_shutdown = seconds(60);
  identity_.on_ec2 = true;
  autoscaling_ = std::make_shared<FakeAutoScaling>();
  ec2_ = std::make_shared<FakeEc2>();
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return sqs_->CallCount("ReceiveMessage") >= 2; }, kDeadline));
  clock_.Advance(seconds(61));
  ASSERT_TRUE(WaitUntil([&] { return AgentReturned(); }, kDeadline));
  EXPECT_EQ(*JoinAgent(), AgentExit::kTerminated);
  EXPECT_EQ(ec2_->terminated, std::vector<std::string>{"i-test"});
  // Outside a group, the start-up lookup is the only Auto Scaling call.
  EXPECT_EQ(autoscaling_->Calls(),
            (std::vector<FakeAutoScaling::Call>{{"DescribeAutoScalingInstances", "i-test"}}));
}

TEST_F(AgentLoopTest, MissingStackTableIsNamedAtStart) {
  ledger_->SetTableMissing(true);
  StartAgent();
  auto exit = JoinAgent();
  ASSERT_FALSE(exit.ok());
  EXPECT_EQ(exit.error().message, "stack 's' does not exist (no ledger table spotgrid-s)");
  EXPECT_EQ(sqs_->CallCount("ReceiveMessage"), 0);
}

TEST_F(AgentLoopTest, MissingStackItemIsNamedAtStart) {
  ledger_->SetStack(std::nullopt);
  StartAgent();
  auto exit = JoinAgent();
  ASSERT_FALSE(exit.ok());
  EXPECT_EQ(exit.error().message,
            "stack 's' does not exist (no stack item in ledger table spotgrid-s)");
  auto events = notifier_.events();
  EXPECT_EQ(std::find(events.begin(), events.end(), "READY"), events.end());
}

TEST_F(AgentLoopTest, SucceededCommandWhoseOutputsCannotReachS3IsReleasedUncounted) {
  AddJob("j", {"echo data > \"$SPOTGRID_OUTPUT_DIR/out\""});
  s3_->FailWrites(true);
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto unit = ledger_->Unit("j", "u0");
        return unit && unit->state == UnitState::kQueued && unit->interruptions == 1;
      },
      kDeadline));
  StopAgent();
  auto unit = ledger_->Unit("j", "u0");
  EXPECT_EQ(unit->failures, 0);
  EXPECT_EQ(unit->attempts.at(0).reason, "interrupted");
  EXPECT_NE(unit->attempts.at(0).error.find("final sync failed"), std::string::npos);
  auto fresh = Requeued(id);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(VisibleIn(*fresh), seconds(10));
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 0);
}

TEST_F(AgentLoopTest, UnreachableLedgerAtTheEndWritesNothingAndLeavesTheUnitToItsLease) {
  // The command ends only once the claim is more than half a heartbeat old, so the lease must
  // be confirmed again before the final writes.
  AddJob("j", {"echo $$ > " + Marker("pid") + "; while [ ! -e " + Marker("go") +
               " ]; do sleep 0.01; done; echo data > \"$SPOTGRID_OUTPUT_DIR/out\""});
  Error outage;
  outage.category = ErrorCategory::kTransient;
  outage.service = "DynamoDB";
  outage.message = "injected outage";
  ledger_->FailNext(Op::kRenewLease, outage, 3);
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_GT(WaitForPid(Marker("pid")), 0);
  clock_.Advance(config_.heartbeat * 2 / 3);  // past half a heartbeat, before the next one
  std::ofstream(Marker("go")).close();
  ASSERT_TRUE(WaitUntil([&] { return ledger_->Calls(Op::kRenewLease) == 3; }, kDeadline));
  ASSERT_TRUE(WaitUntil([&] { return notifier_.last_status() == "0/2 slots busy"; }, kDeadline));
  StopAgent();
  EXPECT_TRUE(s3_->Writes().empty());
  EXPECT_TRUE(sqs_->VisibilityChanges().empty());
  EXPECT_EQ(sqs_->Messages(queue_url_).size(), 1u);  // nothing sent: the sweeper finds the
                                                     // unit once its lease has lapsed
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 0);
  EXPECT_EQ(ledger_->Calls(Op::kReleaseUnit), 0);
  EXPECT_EQ(StateOf("j", "u0"), UnitState::kRunning);  // until its lease runs out
}

// The claim itself confirms the lease: a unit that ends moments after it needs no RenewLease
// before its final writes (one ledger write less per short unit).
TEST_F(AgentLoopTest, ShortUnitIsFinishedWithoutRenewingItsFreshLease) {
  AddJob("j", {"echo data > \"$SPOTGRID_OUTPUT_DIR/out\""});
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(id); }, kDeadline));
  StopAgent();
  EXPECT_EQ(ledger_->Calls(Op::kRenewLease), 0);
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 1);
  EXPECT_FALSE(s3_->Writes().empty());
}

// A black-holed renewal must not let the lease lapse under a running command: the keeper
// gives each renewal one heartbeat, and once no renewal has landed for the lease less the fence
// margin (90 - 15 s), the unit is killed, before any other worker may take it over, and
// nothing more is written.
TEST_F(AgentLoopTest, BlackHoledRenewalsStopTheUnitBeforeItsLeaseCouldRunOut) {
  auto hole = std::make_shared<BlackHoledRenewals>(ledger_, clock_);
  agent_ledger_ = hole;
  AddJob("j", {"echo $$ > " + Marker("pid") + "; exec sleep 300"});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  const Clock::MonoTime claimed = clock_.Monotonic();
  const std::size_t messages = sqs_->Messages(queue_url_).size();
  hole->hang = true;
  struct Unhang {
    BlackHoledRenewals& hole;
    ~Unhang() { hole.hang = false; }  // a failed assertion must not leave the agent stuck
  } unhang{*hole};
  clock_.Advance(seconds(30));  // the first heartbeat goes into the hole
  ASSERT_TRUE(WaitUntil([&] { return hole->swallowed >= 1; }, kDeadline));
  clock_.Advance(seconds(31));  // 61 s: its deadline (a heartbeat) passed; tried again at once
  ASSERT_TRUE(WaitUntil([&] { return hole->gave_up >= 1 && hole->swallowed >= 2; }, kDeadline));
  clock_.Advance(seconds(8));  // 69 s
  EXPECT_FALSE(ProcessGone(pid));  // still within the fence
  clock_.Advance(seconds(7));  // 76 s: past the fence (75 s), before the lease ends (90 s)
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, kDeadline));
  EXPECT_LT(clock_.Monotonic() - claimed, seconds(90));
  ASSERT_TRUE(WaitUntil([&] { return notifier_.last_status() == "0/2 slots busy"; }, kDeadline));
  hole->hang = false;
  StopAgent();
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 0);
  EXPECT_EQ(ledger_->Calls(Op::kReleaseUnit), 0);
  EXPECT_EQ(sqs_->Messages(queue_url_).size(), messages);
  EXPECT_TRUE(s3_->Writes().empty());
  EXPECT_EQ(StateOf("j", "u0"), UnitState::kRunning);  // its lease lapses; the sweeper sends it
}

// An end write whose outcome is unknown (no reply) is tried again within the lease: the
// attempt's success is never given up for a lost reply.
TEST_F(AgentLoopTest, FinishWithoutAVerdictIsTriedAgainAndTheSuccessKept) {
  AddJob("j", {"echo data > \"$SPOTGRID_OUTPUT_DIR/out\""});
  Error no_reply;
  no_reply.category = ErrorCategory::kTransient;
  no_reply.service = "DynamoDB";
  no_reply.code = "ConnectionFailed";
  no_reply.message = "injected: connection closed before the response";
  ledger_->FailNext(Op::kFinishUnit, no_reply, 2);
  Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  StopAgent();
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 3);
  EXPECT_EQ(ledger_->Counts("j").succeeded, 1);
  EXPECT_EQ(ledger_->Unit("j", "u0")->attempt, 1);
}

// Every requeue sends a fresh message and the claim deletes it, so no message is ever
// received twice: a unit retried 15 times never comes near a dead-letter queue's
// maxReceiveCount of 10.
TEST_F(AgentLoopTest, UnitRequeuedFifteenTimesStillSucceedsAndNoMessageIsReceivedTwice) {
  RetryRules retry;
  retry.max_attempts = 20;
  AddJob("j", {"[ \"$SPOTGRID_ATTEMPT\" -ge 16 ]"}, retry);
  Send("j", "u0");
  StartAgent();
  for (int failures = 1; failures <= 15; ++failures) {
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto unit = ledger_->Unit("j", "u0");
          return unit && unit->state == UnitState::kQueued && unit->failures == failures &&
                 sqs_->Messages(queue_url_).size() == static_cast<std::size_t>(failures + 1);
        },
        kDeadline))
        << "failure " << failures;
    clock_.Advance(seconds(901));  // past any backoff (at most 15 minutes)
  }
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  StopAgent();
  EXPECT_EQ(ledger_->Unit("j", "u0")->attempt, 16);
  auto messages = sqs_->Messages(queue_url_);
  EXPECT_EQ(messages.size(), 16u);
  for (const auto& message : messages) {
    EXPECT_EQ(message.receive_count, 1) << message.id;
    EXPECT_TRUE(message.deleted) << message.id;
  }
}

// SQS caps a message's visibility at 12 hours: the unit must not need its message that long.
// The claim deletes it, and the lease alone carries a 13-hour unit to its end.
TEST_F(AgentLoopTest, UnitOutlivingTheTwelveHourVisibilityCapFinishesWithoutItsMessage) {
  config_.heartbeat = std::chrono::minutes(10);
  config_.lease = std::chrono::minutes(30);
  config_.sync_interval = std::chrono::hours(24);
  AddJob("j", {"echo $$ > " + Marker("pid") + "; while [ ! -e " + Marker("go") +
               " ]; do sleep 0.01; done; echo done > \"$SPOTGRID_OUTPUT_DIR/out\""});
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_GT(WaitForPid(Marker("pid")), 0);
  ASSERT_TRUE(WaitUntil([&] { return MessageDeleted(id); }, kDeadline));
  for (int heartbeat = 1; heartbeat <= 78; ++heartbeat) {  // 13 hours
    clock_.Advance(config_.heartbeat);
    // Landed (the lease runs from now), not merely sent.
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto unit = ledger_->Unit("j", "u0");
          // The ledger keeps lease_until in whole seconds.
          return unit && unit->lease_until &&
                 *unit->lease_until > clock_.Now() + config_.lease - seconds(1);
        },
        kDeadline))
        << "heartbeat " << heartbeat;
  }
  std::ofstream(Marker("go")).close();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  StopAgent();
  EXPECT_EQ(ledger_->Unit("j", "u0")->attempt, 1);
  EXPECT_TRUE(sqs_->VisibilityChanges().empty());
  EXPECT_EQ(sqs_->Messages(queue_url_).size(), 1u);
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/output/out"), "done\n");
}

// A unit whose worker vanished (kill -9, a reclaimed instance) has no message: the claim
// deleted it. Another agent's sweep finds the lapsed lease and sends one, and the claim
// takes the unit over.
TEST_F(AgentLoopTest, SweepSendsALapsedUnitAgainAndTheAgentTakesItOver) {
  AddJob("j", {"echo run $SPOTGRID_ATTEMPT >> " + Marker("runs")});
  auto dead = ledger_->ClaimUnit({"j", "u0", "i-dead/0", seconds(90)});
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->outcome, ClaimOutcome::kClaimed);
  ledger_->ExpireLease("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return sqs_->CallCount("ReceiveMessage") >= 1; }, kDeadline));
  EXPECT_TRUE(sqs_->Messages(queue_url_).empty());  // nothing before the first sweep is due
  clock_.Advance(config_.lease * 6 / 5 + seconds(1));  // past the jittered sweep interval
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  StopAgent();
  EXPECT_EQ(ReadFile(Marker("runs")), "run 2\n");
  auto unit = ledger_->Unit("j", "u0");
  EXPECT_EQ(unit->attempt, 2);
  EXPECT_EQ(unit->attempts.at(0).reason, "lost");
  EXPECT_EQ(sqs_->Messages(queue_url_).size(), 1u);
}

TEST_F(AgentLoopTest, WatchdogIsPingedWhenSystemdAsksForIt) {
  notifier_.watchdog_interval = std::chrono::microseconds(10);
  StartAgent();
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto events = notifier_.events();
        return std::count(events.begin(), events.end(), "WATCHDOG") >= 3;
      },
      kDeadline));
  StopAgent();
}

TEST_F(AgentLoopTest, StopIsNoticedWhileAllSlotsAreBusy) {
  config_.slots = 1;
  AddJob("j", {"echo $$ > " + Marker("pid") + "; exec sleep 30"});
  Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  StopAgent();  // the main loop waits for a free slot, not on the queue
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_EQ(StateOf("j", "u0"), UnitState::kQueued);
}

// --- missing permissions ---------------------------------------------------------------------

bool AnyStatusContains(const RecordingNotifier& notifier, const std::string& text) {
  for (const std::string& event : notifier.events()) {
    if (event.rfind("STATUS=", 0) == 0 && event.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST_F(AgentLoopTest, DeniedReceiveIsLoggedShownInTheStatusAndEndsTheAgentAfterBoundedTries) {
  auto sqs = std::make_shared<ReceiveFailingSqs>(sqs_);
  sqs->FailReceives(Denied("SQS", "ReceiveMessage", "AccessDenied"), 1000);
  agent_sqs_ = sqs;
  LogCapture log;
  StartAgent();
  auto exit = JoinAgent();  // returns by itself
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_EQ(*exit, AgentExit::kMissingPermission);
  EXPECT_EQ(sqs->receives(), kMissingPermissionTries);
  EXPECT_TRUE(AnyStatusContains(notifier_, "missing permission sqs:ReceiveMessage (denied 1 of 5"));
  EXPECT_NE(notifier_.last_status().find("missing permission sqs:ReceiveMessage: exiting"),
            std::string::npos)
      << notifier_.last_status();
  const std::string text = log.text();
  EXPECT_NE(text.find("[error] ReceiveMessage was denied: the instance role lacks "
                      "sqs:ReceiveMessage"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("[error] missing permission sqs:ReceiveMessage: denied 5 times in a row; "
                      "exiting with status 4"),
            std::string::npos)
      << text;
  EXPECT_EQ(ledger_->Worker("i-test")->state, WorkerState::kEnded);
}

TEST_F(AgentLoopTest, DeniedClaimEndsTheAgentAfterBoundedTries) {
  AddJob("j", {"true", "true", "true", "true", "true", "true"});
  for (int i = 0; i < 6; ++i) Send("j", "u" + std::to_string(i));
  ledger_->FailNext(Op::kClaimUnit, Denied("DynamoDB", "UpdateItem", "AccessDeniedException"),
                    1000);
  StartAgent();
  auto exit = JoinAgent();
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_EQ(*exit, AgentExit::kMissingPermission);
  EXPECT_EQ(ledger_->Calls(Op::kClaimUnit), kMissingPermissionTries);
  EXPECT_TRUE(AnyStatusContains(notifier_, "missing permission dynamodb:UpdateItem"));
}

// A struggling service is not a missing permission: the agent backs off and goes on, however
// many times in a row it fails.
TEST_F(AgentLoopTest, TransientReceiveErrorsNeverEndTheAgent) {
  auto sqs = std::make_shared<ReceiveFailingSqs>(sqs_);
  Error unavailable;
  unavailable.category = ErrorCategory::kTransient;
  unavailable.service = "SQS";
  unavailable.operation = "ReceiveMessage";
  unavailable.http_status = 503;
  unavailable.code = "ServiceUnavailable";
  const int failures = 3 * kMissingPermissionTries;
  sqs->FailReceives(unavailable, failures);
  agent_sqs_ = sqs;
  StartAgent();
  // A denial-like count would have ended the agent at the 5th failure, before this receive.
  ASSERT_TRUE(WaitUntil([&] { return sqs->receives() > failures + 1; }, kDeadline));
  EXPECT_FALSE(AgentReturned());
  EXPECT_FALSE(AnyStatusContains(notifier_, "missing permission"));
  StopAgent();
}

// Denials count only in a row: a receive that works in between starts the count over.
TEST(PermissionTrackerTest, OnlyConsecutiveDenialsOfOneStepEndTheAgent) {
  PermissionTracker tracker;
  const Status denied = Denied("SQS", "ReceiveMessage", "AccessDenied");
  for (int i = 1; i < kMissingPermissionTries; ++i) {
    EXPECT_FALSE(tracker.Record("ReceiveMessage", denied));
  }
  EXPECT_FALSE(tracker.Record("ReceiveMessage", Status::Ok()));
  EXPECT_EQ(tracker.Describe(), "");
  for (int i = 1; i < kMissingPermissionTries; ++i) {
    EXPECT_FALSE(tracker.Record("ReceiveMessage", denied));
  }
  Error throttled = Denied("SQS", "ReceiveMessage", "ThrottlingException");
  throttled.category = ErrorCategory::kThrottled;
  EXPECT_FALSE(tracker.Record("ReceiveMessage", throttled));  // neither counts nor resets
  EXPECT_EQ(tracker.Record("ReceiveMessage", denied), std::optional<std::string>("sqs:ReceiveMessage"));
}

TEST(PermissionTrackerTest, AccessDeniedCodesOfEveryServiceAreMissingPermissions) {
  EXPECT_TRUE(IsMissingPermission(Denied("DynamoDB", "UpdateItem", "AccessDeniedException")));
  EXPECT_TRUE(IsMissingPermission(Denied("SQS", "ReceiveMessage", "AccessDenied")));
  EXPECT_TRUE(IsMissingPermission(
      Denied("SQS", "ReceiveMessage", "com.amazonaws.sqs#AccessDeniedException")));
  EXPECT_TRUE(IsMissingPermission(Denied("S3", "PutObject", "AccessDenied")));
  EXPECT_FALSE(IsMissingPermission(Denied("SQS", "ReceiveMessage", "InvalidClientTokenId")));
  EXPECT_FALSE(IsMissingPermission(Denied("S3", "PutObject", "SignatureDoesNotMatch")));
  EXPECT_EQ(DeniedAction(Denied("DynamoDB", "UpdateItem", "AccessDeniedException"), "ClaimUnit"),
            "dynamodb:UpdateItem");
  EXPECT_EQ(DeniedAction(Error{}, "ClaimUnit"), "ClaimUnit");
}

// --- interruptions and drain ---------------------------------------------------------------

// A Spot worker whose instance metadata the test controls. The fake clock moves only when the
// test moves it, so every deadline below is exact: the agent's Run() must return, with its
// units released, before the clock reaches D.
class AgentDrainTest : public AgentLoopTest {
 protected:
  void SetUp() override {
    AgentLoopTest::SetUp();
    identity_.on_ec2 = true;
    identity_.spot = true;
    config_.spot_poll = seconds(5);
    config_.stop_timeout = seconds(90);
    config_.upload_reserve = seconds(30);
  }

  // A notice for `in` from now, seen at the next poll (one spot-poll from now); returns D.
  Clock::MonoTime NoticeIn(seconds in) {
    WaitForWatchToWait();
    imds_->SetSpotInstanceAction(SpotInstanceActionNotice{"terminate", clock_.Now() + in});
    const Clock::MonoTime deadline = clock_.Monotonic() + in - seconds(5);
    clock_.Advance(config_.spot_poll);
    return deadline;
  }

  // The watch asks at once on start and then waits one --spot-poll by the clock. Waiting until
  // it waits (not merely until it asked) keeps a notice the test sets from being seen before
  // the clock moves, and the test's next Advance from being made before the watch computed
  // its next poll's due time (which would absorb the Advance: the next poll would never come).
  void WaitForWatchToWait() {
    ASSERT_TRUE(WaitUntil([&] { return watched_imds_->WatchWaiting(); }, kDeadline));
  }

  // Moves the clock to the watch's next poll and waits until that poll, with whatever its
  // notices started, is over and the watch waits again.
  void NextWatchRound() {
    WaitForWatchToWait();
    clock_.Advance(config_.spot_poll);
    const Clock::MonoTime now = clock_.Monotonic();
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto polled = watched_imds_->LastPollAt();
          return polled && *polled >= now && watched_imds_->WatchWaiting();
        },
        kDeadline));
  }

  bool Draining() {
    auto events = notifier_.events();
    return std::find(events.begin(), events.end(), "STOPPING") != events.end();
  }

  // Run() returned kStopped; the caller checks when.
  void ExpectStopped() {
    ASSERT_TRUE(WaitUntil([&] { return AgentReturned(); }, kDeadline));
    auto exit = JoinAgent();
    ASSERT_TRUE(exit.ok()) << exit.error().ToString();
    EXPECT_EQ(*exit, AgentExit::kStopped);
  }

  void ExpectReleasedInterrupted(const std::string& message_id) {
    auto unit = ledger_->Unit("j", "u0");
    ASSERT_TRUE(unit);
    EXPECT_EQ(unit->state, UnitState::kQueued);
    EXPECT_EQ(unit->interruptions, 1);
    EXPECT_EQ(unit->failures, 0);
    EXPECT_EQ(unit->attempts.at(0).reason, "interrupted");
    EXPECT_TRUE(MessageDeleted(message_id));  // at the claim
    auto fresh = Requeued(message_id);
    ASSERT_TRUE(fresh);
    EXPECT_LE(VisibleIn(*fresh), seconds(2));  // another worker resumes it at once
  }

  // The index in FakeS3's write log of the first write under `prefix`; -1 if none.
  int FirstWrite(const std::string& prefix) {
    auto writes = s3_->Writes();
    for (std::size_t i = 0; i < writes.size(); ++i) {
      if (writes[i].key.rfind(prefix, 0) == 0) return static_cast<int>(i);
    }
    return -1;
  }

  // A command that checkpoints on SIGTERM and exits 143, as a well-behaved unit does.
  std::string CheckpointingCommand() const {
    return "trap 'echo step7 > \"$SPOTGRID_CHECKPOINT_DIR/state\"; exit 143' TERM; "
           "echo out > \"$SPOTGRID_OUTPUT_DIR/partial\"; echo $$ > " +
           Marker("pid") + "; while :; do sleep 0.05; done";
  }
  // A command that checkpoints on SIGTERM the safe way, a temporary file renamed over the
  // checkpoint, once the test lets it (Marker("go")), and exits 143.
  std::string RenamingCheckpointCommand() const {
    return "trap 'touch " + Marker("term-seen") + "; while [ ! -e " + Marker("go") +
           " ]; do sleep 0.01; done; echo step7 > \"$SPOTGRID_CHECKPOINT_DIR/state.tmp\"; "
           "mv \"$SPOTGRID_CHECKPOINT_DIR/state.tmp\" \"$SPOTGRID_CHECKPOINT_DIR/state\"; "
           "exit 143' TERM; echo $$ > " +
           Marker("pid") + "; while :; do sleep 0.05; done";
  }
  // A command that notes every SIGTERM and goes on.
  std::string StubbornCommand() const {
    return "trap 'echo term >> " + Marker("signals") + "' TERM; echo $$ > " + Marker("pid") +
           "; while :; do sleep 0.05; done";
  }
};

TEST_F(AgentDrainTest, SpotNoticeMidUnitCheckpointsReleasesUncountedAndEndsBeforeTheDeadline) {
  AddJob("j", {CheckpointingCommand()});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  const Clock::MonoTime deadline = NoticeIn(seconds(120));
  ExpectStopped();
  EXPECT_LT(clock_.Monotonic(), deadline);
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/checkpoint/state"), "step7\n");
  ExpectReleasedInterrupted(id);
  EXPECT_NE(ledger_->Unit("j", "u0")->attempts.at(0).error.find("Spot interruption notice"),
            std::string::npos);
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 0);
  EXPECT_EQ(ledger_->Worker("i-test")->state, WorkerState::kEnded);
}

TEST_F(AgentDrainTest, DrainUploadsCheckpointBeforeOutputsBeforeLogs) {
  AddJob("j", {"echo started; " + CheckpointingCommand()});
  Send("j", "u0");
  StartAgent();
  ASSERT_GT(WaitForPid(Marker("pid")), 0);
  ASSERT_TRUE(s3_->Writes().empty());  // no periodic sync yet: the drain's sync is the first
  agent_->RequestStop();
  ExpectStopped();
  const int checkpoint = FirstWrite("p/j/u0/checkpoint/");
  const int output = FirstWrite("p/j/u0/output/");
  const int logs = FirstWrite("p/j/u0/logs/");
  ASSERT_GE(checkpoint, 0);
  EXPECT_LT(checkpoint, output);
  EXPECT_LT(output, logs);
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/output/partial"), "out\n");
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/logs/1/stdout.log"), "started\n");
}

TEST_F(AgentDrainTest, CommandIgnoringTheSignalIsKilledAtGraceEndAndStillReleasedBeforeD) {
  AddJob("j", {StubbornCommand()});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  // The notice is seen at +5 s (S) with D = +55 s, R = D - 3 s = +52 s: a 47 s window up to
  // R, shared evenly since 23.5 s is less than the 27 s the reserve would keep: G = +28.5 s.
  const Clock::MonoTime deadline = NoticeIn(seconds(60));
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(Marker("signals")) == "term\n"; }, kDeadline));
  clock_.Advance(seconds(23));  // +28 s
  EXPECT_FALSE(WaitUntil([&] { return ProcessGone(pid); }, milliseconds(200)));
  EXPECT_FALSE(AgentReturned());
  clock_.Advance(seconds(1));  // +29 s: past G
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, kDeadline));
  ExpectStopped();
  EXPECT_LT(clock_.Monotonic(), deadline);
  EXPECT_EQ(ReadFile(Marker("signals")), "term\n");  // one checkpoint signal, then SIGKILL
  ExpectReleasedInterrupted(id);
}

// The reported bug: a notice due in 20 s gave the unit 0 ms of grace (the 30 s upload reserve
// ate the window). The window is shared now: seen 20 s before the notice's time, D is 15 s
// away, R 12 s, and the unit has until G = 6 s, by the clock, which stands still here however
// long the unit takes in real time.
TEST_F(AgentDrainTest, ShortNoticeStillGivesTheUnitAGraceToCheckpointByRename) {
  AddJob("j", {RenamingCheckpointCommand()});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  const Clock::MonoTime deadline = NoticeIn(seconds(25));  // seen when 20 s are left
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(Marker("term-seen")); }, kDeadline));
  EXPECT_FALSE(ProcessGone(pid));  // not killed at once
  std::ofstream(Marker("go")).close();
  ExpectStopped();
  EXPECT_LT(clock_.Monotonic(), deadline);
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/checkpoint/state"), "step7\n");
  EXPECT_FALSE(s3_->Object("bucket", "p/j/u0/checkpoint/state.tmp").has_value());
  ExpectReleasedInterrupted(id);
}

// A unit killed at G may have died halfway through its checkpoint: the drain uploads its
// outputs and logs but leaves checkpoint/ in S3 alone, so the last good checkpoint survives
// byte for byte (and the next attempt resumes from it).
TEST_F(AgentDrainTest, UnitKilledMidCheckpointLeavesTheLastGoodCheckpointInS3) {
  config_.sync_interval = seconds(20);  // less than a heartbeat: no renewal before the sync
  // Writes a good checkpoint by rename, then, once told (Marker("torn")), ignores SIGTERM and
  // keeps rewriting its checkpoint in place, as a program killed mid-write would leave it.
  const std::string ck = "\"$SPOTGRID_CHECKPOINT_DIR/state\"";
  AddJob("j", {"trap '' TERM; echo started; echo good > " + ck + ".tmp; mv " + ck + ".tmp " + ck +
               "; echo out > \"$SPOTGRID_OUTPUT_DIR/partial\"; echo $$ > " + Marker("pid") +
               "; while [ ! -e " + Marker("torn") + " ]; do sleep 0.01; done; : > " + ck +
               "; while :; do echo torn >> " + ck + "; touch " + Marker("writing") +
               "; sleep 0.01; done"});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  clock_.Advance(config_.sync_interval);  // the periodic sync uploads the good checkpoint
  ASSERT_TRUE(WaitUntil(
      [&] { return s3_->Object("bucket", "p/j/u0/checkpoint/state") == std::string("good\n"); },
      kDeadline));
  const auto checkpoint_writes = [&] {
    int count = 0;
    for (const auto& write : s3_->Writes()) count += write.key.rfind("p/j/u0/checkpoint/", 0) == 0;
    return count;
  };
  ASSERT_EQ(checkpoint_writes(), 1);
  const Clock::MonoTime deadline = NoticeIn(seconds(25));  // G = S + 6 s, as above
  ASSERT_TRUE(WaitUntil([&] { return Draining(); }, kDeadline));
  std::ofstream(Marker("torn")).close();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(Marker("writing")); }, kDeadline));
  clock_.Advance(seconds(7));  // past G
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, kDeadline));
  ExpectStopped();
  EXPECT_LT(clock_.Monotonic(), deadline);
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/checkpoint/state"), "good\n");
  EXPECT_EQ(checkpoint_writes(), 1);  // nothing written or deleted under checkpoint/ since
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/output/partial"), "out\n");
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/logs/1/stdout.log"), "started\n");
  ExpectReleasedInterrupted(id);
}

TEST_F(AgentDrainTest, CommandExitingZeroWithinTheGraceFinishesSucceeded) {
  AddJob("j", {"trap 'echo final > \"$SPOTGRID_OUTPUT_DIR/result\"; exit 0' TERM; echo $$ > " +
               Marker("pid") + "; while :; do sleep 0.05; done"});
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_GT(WaitForPid(Marker("pid")), 0);
  agent_->RequestStop();
  ExpectStopped();
  EXPECT_EQ(StateOf("j", "u0"), UnitState::kSucceeded);
  EXPECT_TRUE(MessageDeleted(id));
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/output/result"), "final\n");
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 1);
  EXPECT_EQ(ledger_->Calls(Op::kReleaseUnit), 0);
  EXPECT_EQ(ledger_->Counts("j").succeeded, 1);
}

TEST_F(AgentDrainTest, SecondStopRequestNeitherRestartsTheDrainNorMovesItsDeadline) {
  AddJob("j", {StubbornCommand()});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  agent_->RequestStop();  // D = +85 s, G = +55 s
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(Marker("signals")) == "term\n"; }, kDeadline));
  clock_.Advance(seconds(10));
  agent_->RequestStop();  // would give G = +65 s if it counted
  clock_.Advance(seconds(46));
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, kDeadline));
  ExpectStopped();
  EXPECT_EQ(ReadFile(Marker("signals")), "term\n");
  auto events = notifier_.events();
  EXPECT_EQ(std::count(events.begin(), events.end(), "STOPPING"), 1);
  ExpectReleasedInterrupted(id);
}

TEST_F(AgentDrainTest, NoticeSeenAfterItsDeadlineWritesNothingAndLeavesTheLease) {
  AddJob("j", {StubbornCommand()});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  NoticeIn(seconds(4));  // seen 1 s after its time: D lies 6 s in the past
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, kDeadline));
  ExpectStopped();
  EXPECT_EQ(ledger_->Calls(Op::kReleaseUnit), 0);
  EXPECT_EQ(ledger_->Calls(Op::kFinishUnit), 0);
  EXPECT_TRUE(sqs_->VisibilityChanges().empty());
  EXPECT_EQ(sqs_->Messages(queue_url_).size(), 1u);  // no fresh message either
  EXPECT_EQ(StateOf("j", "u0"), UnitState::kRunning);  // until its lease runs out
}

TEST_F(AgentDrainTest, RebalanceStopTakingKeepsTheRunningUnitAndTakesNoNewMessage) {
  AddJob("j", {"echo $$ > " + Marker("pid") + "; while [ ! -e " + Marker("go") +
                   " ]; do sleep 0.01; done",
               "echo ran >> " + Marker("u1-runs")});
  Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  WaitForWatchToWait();
  imds_->SetRebalance(RebalanceNotice{clock_.Now()});
  NextWatchRound();  // over once the recommendation was acted on
  ASSERT_EQ(imds_->Reads("RebalanceRecommendation"), 2);
  Send("j", "u1");
  EXPECT_FALSE(WaitUntil([&] { return ProcessGone(pid); }, milliseconds(200)));
  std::ofstream(Marker("go")).close();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  EXPECT_FALSE(WaitUntil([&] { return ledger_->Calls(Op::kClaimUnit) > 1; }, milliseconds(300)));
  EXPECT_FALSE(std::filesystem::exists(Marker("u1-runs")));
  EXPECT_FALSE(AgentReturned());
  EXPECT_FALSE(Draining());
  StopAgent();
  EXPECT_EQ(ledger_->Calls(Op::kClaimUnit), 1);
  EXPECT_EQ(ledger_->Unit("j", "u0")->interruptions, 0);
}

TEST_F(AgentDrainTest, RebalanceCheckpointDrainsAsForAStop) {
  config_.rebalance = RebalancePolicy::kCheckpoint;
  AddJob("j", {CheckpointingCommand()});
  std::string id = Send("j", "u0");
  StartAgent();
  ASSERT_GT(WaitForPid(Marker("pid")), 0);
  WaitForWatchToWait();
  imds_->SetRebalance(RebalanceNotice{clock_.Now()});
  clock_.Advance(config_.spot_poll);
  ExpectStopped();
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/checkpoint/state"), "step7\n");
  ExpectReleasedInterrupted(id);
}

TEST_F(AgentDrainTest, ScaleInProtectionIsSetWhenBusyAndClearedWhenIdle) {
  autoscaling_ = std::make_shared<FakeAutoScaling>();
  autoscaling_->AddToGroup("i-test", "workers");
  auto wait_for_go = [&](const std::string& go) {
    return "echo $$ > " + Marker("pid-" + go) + "; while [ ! -e " + Marker(go) +
           " ]; do sleep 0.01; done";
  };
  AddJob("j", {wait_for_go("go1"), wait_for_go("go1"), wait_for_go("go2")});
  Send("j", "u0");
  Send("j", "u1");
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return ledger_->Calls(Op::kClaimUnit) == 2; }, kDeadline));
  ASSERT_TRUE(
      WaitUntil([&] { return autoscaling_->CallCount("SetInstanceProtection") == 1; }, kDeadline));
  std::ofstream(Marker("go1")).close();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  ASSERT_TRUE(WaitForState("j", "u1", UnitState::kSucceeded));
  ASSERT_TRUE(
      WaitUntil([&] { return autoscaling_->CallCount("SetInstanceProtection") == 2; }, kDeadline));
  Send("j", "u2");
  ASSERT_GT(WaitForPid(Marker("pid-go2")), 0);
  ASSERT_TRUE(
      WaitUntil([&] { return autoscaling_->CallCount("SetInstanceProtection") == 3; }, kDeadline));
  std::ofstream(Marker("go2")).close();
  ASSERT_TRUE(WaitForState("j", "u2", UnitState::kSucceeded));
  ASSERT_TRUE(
      WaitUntil([&] { return autoscaling_->CallCount("SetInstanceProtection") == 4; }, kDeadline));
  StopAgent();
  EXPECT_EQ(autoscaling_->Calls(),
            (std::vector<FakeAutoScaling::Call>{
                {"DescribeAutoScalingInstances", "i-test"},
                {"SetInstanceProtection", "workers i-test protected=true"},
                {"SetInstanceProtection", "workers i-test protected=false"},
                {"SetInstanceProtection", "workers i-test protected=true"},
                {"SetInstanceProtection", "workers i-test protected=false"}}));
}

TEST_F(AgentDrainTest, FailedProtectionCallIsLoggedAndTheUnitStillRuns) {
  autoscaling_ = std::make_shared<FakeAutoScaling>();
  autoscaling_->AddToGroup("i-test", "workers");
  Error throttled;
  throttled.category = ErrorCategory::kThrottled;
  throttled.service = "AutoScaling";
  throttled.message = "Rate exceeded";
  autoscaling_->FailNext("SetInstanceProtection", throttled);
  AddJob("j", {"echo data > \"$SPOTGRID_OUTPUT_DIR/out\""});
  Send("j", "u0");
  StartAgent();
  ASSERT_TRUE(WaitForState("j", "u0", UnitState::kSucceeded));
  StopAgent();
  EXPECT_EQ(s3_->Object("bucket", "p/j/u0/output/out"), "data\n");
}

TEST_F(AgentDrainTest, LifecycleTerminationHeartbeatsWhileDrainingThenCompletesWithContinue) {
  identity_.spot = false;  // an On-Demand worker in a group is scaled in the same way
  config_.lifecycle_hook = "drain-hook";
  autoscaling_ = std::make_shared<FakeAutoScaling>();
  autoscaling_->AddToGroup("i-test", "workers");
  AddJob("j", {StubbornCommand()});
  std::string id = Send("j", "u0");
  StartAgent();
  pid_t pid = WaitForPid(Marker("pid"));
  ASSERT_GT(pid, 0);
  WaitForWatchToWait();
  imds_->SetTargetLifecycleState("Terminated");
  clock_.Advance(config_.spot_poll);  // D = +85 s, G = +55 s from here
  ASSERT_TRUE(WaitUntil(
      [&] { return autoscaling_->CallCount("RecordLifecycleActionHeartbeat") == 1; }, kDeadline));
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(Marker("signals")) == "term\n"; }, kDeadline));
  clock_.Advance(seconds(30));
  ASSERT_TRUE(WaitUntil(
      [&] { return autoscaling_->CallCount("RecordLifecycleActionHeartbeat") == 2; }, kDeadline));
  EXPECT_EQ(autoscaling_->CallCount("CompleteLifecycleAction"), 0);
  clock_.Advance(seconds(26));  // past G
  ExpectStopped();
  EXPECT_TRUE(ProcessGone(pid));
  ExpectReleasedInterrupted(id);
  auto calls = autoscaling_->Calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), (FakeAutoScaling::Call{"CompleteLifecycleAction",
                                                 "workers drain-hook i-test CONTINUE"}));
  EXPECT_EQ(autoscaling_->CallCount("CompleteLifecycleAction"), 1);
  EXPECT_EQ(autoscaling_->Calls("RecordLifecycleActionHeartbeat").front().detail,
            "workers drain-hook i-test");
  EXPECT_EQ(ledger_->Worker("i-test")->state, WorkerState::kEnded);
}

TEST_F(AgentDrainTest, LifecycleTerminationWithoutAHookDrainsWithoutLifecycleCalls) {
  autoscaling_ = std::make_shared<FakeAutoScaling>();
  config_.asg_name = "workers";  // named: no lookup
  imds_->SetTargetLifecycleState("Terminated");
  StartAgent();
  ExpectStopped();
  EXPECT_TRUE(autoscaling_->Calls().empty());
}

TEST_F(AgentDrainTest, OffEc2NoInstanceMetadataIsAsked) {
  identity_.on_ec2 = false;
  StartAgent();
  ASSERT_TRUE(WaitUntil([&] { return sqs_->CallCount("ReceiveMessage") >= 2; }, kDeadline));
  StopAgent();
  EXPECT_EQ(imds_->Reads("SpotInstanceAction"), 0);
  EXPECT_EQ(imds_->Reads("TargetLifecycleState"), 0);
}

}  // namespace
}  // namespace spotgrid::agent
