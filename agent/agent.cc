// Agent: the main loop (receive, claim, dispatch to the slot pool), idle shutdown, the
// worker item and watchdog ticker, and the drain triggers. The process wiring is in
// run_agent.cc, the slots in slot_pool.cc, a unit's life in unit_runner.cc.
#include "agent/agent.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "agent/interruption_watch.h"
#include "agent/missing_permission.h"
#include "agent/scale_in_protection.h"
#include "agent/slot_pool.h"
#include "agent/unit_runner.h"
#include "spotgrid/core/deadline.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/log.h"
#include "spotgrid/ledger/ledger.h"
#include "spotgrid/ledger/sweeper.h"

namespace spotgrid::agent {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A blocking step of the main loop (a long poll, a claim) that takes longer than this is
// taken for a hang: the watchdog pings stop and systemd restarts the agent. Generous, because
// the client core retries a struggling service with backoff.
constexpr seconds kHungStep{300};
constexpr milliseconds kTickerCap{1000};
constexpr seconds kReceiveBackoffFirst{1}, kReceiveBackoffCap{30};
// How often a lifecycle action is heartbeated while its drain runs: well inside the shortest
// heartbeat timeout a hook can have (30 s).
constexpr seconds kLifecycleHeartbeat{30};
// A message operation (the job read and the claim a message leads to, delete, set aside) is
// worth this long at most: a lost one costs only a redelivery that finds the unit held,
// finished or (a claim that landed unseen) lapsed and swept. It also bounds how long a drain
// that begins during the call waits for it.
constexpr seconds kMessageCallDeadline{10};
// After D, the exit's own writes (intents, the worker item, the lifecycle answer) may take
// this long; the rest of the exit margin (5 s) is the process's to end.
constexpr seconds kExitWrites{2};
// The process ends this long before the notice's time if the drain has not ended by then:
// time for the ticker to notice (it wakes at least every second) and for the exit itself on a
// loaded machine.
constexpr seconds kOverrunMargin{2};
constexpr std::int64_t kMaxVisibilitySeconds = 43200;  // SQS limit for one visibility timeout

const std::vector<std::string> kQueueDepthAttributes = {"ApproximateNumberOfMessages",
                                                        "ApproximateNumberOfMessagesNotVisible",
                                                        "ApproximateNumberOfMessagesDelayed"};

std::int64_t ToInt(const std::string& text) {
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() ? value : -1;
}

// HOME and USER for commands run as the agent's own user.
std::pair<std::string, std::string> SelfHomeAndUser() {
  std::string home = Environment::Process().GetOr("HOME", "/");
  std::string user = Environment::Process().GetOr("USER", "");
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found) {
    home = found->pw_dir;
    user = found->pw_name;
  }
  return {home, user};
}

}  // namespace

struct Agent::Impl {
  AgentConfig config;
  AgentDeps deps;
  // Raised when a drain starts: the main loop ends, every slot drains its unit.
  StopSource stop;
  // Raised when no message may be taken any more (a drain, or a rebalance recommendation
  // under stop-taking): aborts the long poll in flight.
  StopSource intake_stop;
  DrainPlan drain;
  std::atomic<bool> taking_paused{false};  // rebalance stop-taking: no new messages

  // Auto Scaling (set in Run before any thread starts): the group, "" when not in one.
  std::string group;
  std::unique_ptr<ScaleInProtection> protection;  // null outside a group
  std::unique_ptr<InterruptionWatch> watch;       // null off EC2 or without IMDS
  // A lifecycle transition to Terminated started or joined the drain: its action is
  // heartbeated while the drain runs and completed after it.
  std::atomic<bool> lifecycle_drain{false};
  std::atomic<std::int64_t> next_lifecycle_heartbeat_ns{0};  // monotonic

  StackInfo stack;
  UnitRunnerSettings runner_settings;
  std::map<std::string, JobSpec> jobs;  // main thread only

  SlotPool slots;

  std::mutex mu;  // guards everything below
  std::set<std::pair<std::string, std::string>> intents;  // (job, writer) to flush when idle
  Clock::WallTime started_at{};
  std::optional<Clock::WallTime> idle_since;
  WorkerState state = WorkerState::kRunning;
  std::string last_status;
  // A permission the main loop was denied, for the status line; "" when none.
  std::string permission_problem;

  // Idle tracking (main thread only).
  std::optional<Clock::MonoTime> idle_since_mono;
  Clock::MonoTime next_sweep{};  // main loop only
  bool waiting_for_jobs = false;  // main loop only: logged that idle shutdown waits for jobs
  std::mt19937_64 rng{std::random_device{}()};
  // Denials of the main loop's calls (main thread only); set once they were too many.
  PermissionTracker permissions;
  std::optional<std::string> gave_up_on;

  // The ticker: worker heartbeat item and watchdog pings.
  std::thread ticker;
  StopSource ticker_stop;
  std::atomic<std::int64_t> step_started_ns{0};  // monotonic, 0 = no blocking step under way

  Impl(AgentConfig c, AgentDeps d)
      : config(std::move(c)),
        deps(std::move(d)),
        drain(config.upload_reserve),
        slots(std::max(config.slots, 1)) {}

  Clock& clock() { return *deps.clock; }
  std::string Owner(int slot) const {
    return deps.identity.instance_id + "/" + std::to_string(slot);
  }

  // --- status and worker item ---------------------------------------------------------------

  // Requires mu.
  std::string StatusTextLocked(const std::vector<std::string>& in_hand) const {
    std::string units;
    for (const std::string& unit : in_hand) units += (units.empty() ? "" : ", ") + unit;
    std::string text = std::to_string(in_hand.size()) + "/" + std::to_string(slots.size()) +
                       " slots busy";
    if (!units.empty()) text += ": " + units;
    if (state != WorkerState::kRunning) text += " (" + std::string(ToString(state)) + ")";
    if (!permission_problem.empty()) text += "; " + permission_problem;
    return text;
  }

  void UpdateStatus() {
    std::string text;
    const std::vector<std::string> in_hand = slots.UnitsInHand();
    {
      std::lock_guard<std::mutex> lock(mu);
      text = StatusTextLocked(in_hand);
      if (text == last_status) return;
      last_status = text;
    }
    deps.notifier->Status(text);
  }

  WorkerRecord WorkerItem() {
    WorkerRecord worker;
    worker.instance_id = deps.identity.instance_id;
    worker.instance_type = deps.identity.instance_type;
    worker.spot = deps.identity.spot;
    worker.availability_zone = deps.identity.availability_zone;
    worker.slots = config.slots;
    worker.heartbeat_s = static_cast<int>(config.heartbeat.count());
    worker.last_heartbeat = clock().Now();
    worker.units_in_hand = slots.UnitsInHand();
    std::lock_guard<std::mutex> lock(mu);
    worker.started_at = started_at;
    worker.idle_since = idle_since;
    worker.state = state;
    if (state == WorkerState::kEnded) worker.ended_at = worker.last_heartbeat;
    return worker;
  }

  // The latest a call made now may end: `normal` from now, and while draining no later than
  // the exit bound (D and a part of the exit margin), so a black-holed endpoint cannot keep
  // the agent past a Spot reclaim.
  Clock::MonoTime CallBound(milliseconds normal) {
    Clock::MonoTime bound = clock().Monotonic() + normal;
    if (auto times = drain.Times()) bound = std::min(bound, times->deadline + kExitWrites);
    return bound;
  }

  void PutWorker() {
    ScopedDeadline deadline(CallBound(config.heartbeat));
    Status put = deps.ledger->PutWorker(WorkerItem());
    if (!put.ok()) Logger().warn("could not write the worker item: {}", put.ToString());
  }

  void SetState(WorkerState new_state) {
    {
      std::lock_guard<std::mutex> lock(mu);
      state = new_state;
    }
    UpdateStatus();
  }

  // --- permissions ---------------------------------------------------------------------------

  // Records one try of a main-loop step; a denial is logged as an error and shown in the
  // status line. True once the step was denied too often in a row: the agent must exit.
  bool RecordTry(std::string_view step, const Status& outcome) {
    std::optional<std::string> denied = permissions.Record(step, outcome);
    std::string problem = permissions.Describe();
    if (!outcome.ok() && IsMissingPermission(outcome.error())) {
      Logger().error(
          "{} was denied: the instance role lacks {} ({}); the agent exits after {} denials in a "
          "row",
          step, DeniedAction(outcome.error(), step), outcome.ToString(), kMissingPermissionTries);
    }
    if (denied) {
      gave_up_on = *denied;
      problem = "missing permission " + *denied + ": exiting";
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      permission_problem = problem;
    }
    UpdateStatus();
    return denied.has_value();
  }

  // --- ticker -------------------------------------------------------------------------------

  bool MainLoopHealthy(Clock::MonoTime now) const {
    std::int64_t started = step_started_ns.load();
    if (started == 0) return true;
    return now - Clock::MonoTime(std::chrono::nanoseconds(started)) < kHungStep;
  }

  // Writes the worker item every heartbeat (by the Clock) and pings the watchdog. The
  // watchdog is systemd's real-time deadline, so it is pinged on every wake-up, and the
  // wake-ups come at least every watchdog interval of real time.
  void TickerLoop() {
    std::optional<std::chrono::microseconds> watchdog = deps.notifier->WatchdogInterval();
    milliseconds cap =
        std::min<milliseconds>(kTickerCap, std::max(deps.poll_slice, milliseconds(1)) * 5);
    if (watchdog) {
      cap = std::min(
          cap, std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(*watchdog)));
    }
    Clock::MonoTime next_worker = clock().Monotonic() + config.heartbeat;
    while (true) {
      auto until = std::chrono::duration_cast<milliseconds>(next_worker - clock().Monotonic());
      if (ticker_stop.WaitFor(std::clamp(until, milliseconds(1), cap))) return;
      Clock::MonoTime now = clock().Monotonic();
      if (watchdog) {
        if (MainLoopHealthy(now)) {
          deps.notifier->Watchdog();
        } else {
          Logger().error("main loop stuck for more than {}s; withholding the watchdog ping",
                         kHungStep.count());
        }
      }
      if (now >= next_worker) {
        PutWorker();
        next_worker = now + config.heartbeat;
      }
      // The drain must be over by its exit bound, whatever is still in flight: a second before
      // the notice's time (or the stop timeout), the process ends.
      if (auto times = drain.Times();
          times && deps.on_drain_overrun &&
          clock().Monotonic() >= times->deadline + kDrainExitMargin - kOverrunMargin) {
        Logger().error("drain: still running just before the instance goes; exiting now");
        deps.on_drain_overrun();
      }
      if (lifecycle_drain && CanAnswerLifecycle() &&
          now.time_since_epoch().count() >= next_lifecycle_heartbeat_ns.load()) {
        LifecycleHeartbeat();
      }
    }
  }

  // --- slots --------------------------------------------------------------------------------

  void StartSlot(int slot, UnitAssignment assignment) {
    UnitRunnerDeps runner_deps{deps.sqs, deps.ledger, deps.s3, deps.clock, &drain};
    slots.Start(
        slot,
        [this, runner_deps = std::move(runner_deps), assignment = std::move(assignment)]() mutable {
          std::string job = assignment.unit.job;
          std::string owner = assignment.owner;
          UnitRunner runner(std::move(runner_deps), runner_settings, std::move(assignment), &stop);
          NoteOutcome(job, owner, runner.Run());
        },
        [this] { SlotFreed(); });
  }

  // On the slot thread, before its slot is freed: a counted end leaves an intent in the job
  // item until this writer's next counted end (or FlushIntents when the agent goes idle).
  void NoteOutcome(const std::string& job, const std::string& owner, UnitOutcome outcome) {
    if (outcome == UnitOutcome::kSucceeded || outcome == UnitOutcome::kFailed ||
        outcome == UnitOutcome::kCancelled) {
      std::lock_guard<std::mutex> lock(mu);
      intents.insert({job, owner});
    }
  }

  // On the slot thread, once its slot is free.
  void SlotFreed() {
    UpdateStatus();
    if (protection) protection->Release();
  }

  // --- messages -----------------------------------------------------------------------------

  Result<std::optional<JobSpec>> Job(const std::string& id) {
    if (auto it = jobs.find(id); it != jobs.end()) return std::optional<JobSpec>(it->second);
    ScopedDeadline deadline(CallBound(kMessageCallDeadline));
    auto job = deps.ledger->GetJob(id);
    if (!job.ok()) return job.error();
    if (!*job) return std::optional<JobSpec>();
    jobs[id] = (*job)->spec;
    return std::optional<JobSpec>((*job)->spec);
  }

  void DeleteMessage(const SqsMessage& message) {
    ScopedDeadline deadline(clock().Monotonic() + kMessageCallDeadline);
    Status deleted = deps.sqs->DeleteMessage(stack.queue_url, message.receipt_handle);
    if (!deleted.ok())
      Logger().warn("could not delete message {}: {}", message.id, deleted.ToString());
  }

  // A message for a unit another worker holds (a duplicate delivery, or a requeue's fresh
  // message that overtook its release) comes back once the holder's lease could have lapsed:
  // then the unit is QUEUED, finished, or ready to be taken over.
  void SetAside(const SqsMessage& message, const UnitRecord& unit) {
    std::int64_t hide_s = (config.lease + config.heartbeat).count();
    if (unit.lease_until) {
      const auto left = std::chrono::duration_cast<seconds>(*unit.lease_until - clock().Now());
      hide_s = std::max<std::int64_t>(0, left.count()) + config.heartbeat.count();
    }
    ScopedDeadline deadline(clock().Monotonic() + kMessageCallDeadline);
    Status hidden = deps.sqs->ChangeMessageVisibility(
        stack.queue_url, message.receipt_handle,
        static_cast<int>(std::min<std::int64_t>(hide_s, kMaxVisibilitySeconds)));
    if (!hidden.ok()) Logger().warn("could not set message {} aside: {}", message.id, hidden.ToString());
  }

  // Hands messages received but not claimed back to the queue at once.
  void ReturnMessages(const std::vector<SqsMessage>& messages) {
    if (messages.empty()) return;
    std::vector<VisibilityEntry> entries;
    for (const SqsMessage& message : messages) entries.push_back({message.receipt_handle, 0});
    auto returned = deps.sqs->ChangeMessageVisibilityBatch(stack.queue_url, entries);
    if (!returned.ok()) Logger().warn("could not return messages: {}", returned.error().ToString());
  }

  // Claims and starts what the messages point at; returns how many units it started.
  int Dispatch(const std::vector<SqsMessage>& messages) {
    std::set<std::pair<std::string, std::string>> seen;
    std::vector<SqsMessage> unclaimed;
    int started = 0;
    for (const SqsMessage& message : messages) {
      auto decoded = DecodeUnitMessage(message.body);
      if (!decoded) {
        Logger().warn("message {} is not a unit message; leaving it for the dead-letter queue",
                      message.id);
        continue;
      }
      const auto& [job_id, unit_id] = *decoded;
      if (!seen.insert(*decoded).second) {
        // The unit's first message of this receive is the one its runner tends; this copy
        // comes back later and finds the unit held or finished.
        Logger().info("duplicate delivery of {}/{} in one receive; ignoring the copy", job_id,
                      unit_id);
        continue;
      }
      if (intake_stop.Requested()) {
        unclaimed.push_back(message);
        continue;
      }
      auto job = Job(job_id);
      if (!job.ok()) {
        Logger().warn("could not read job {}: {}", job_id, job.error().ToString());
        continue;
      }
      if (!*job) {
        Logger().warn("message {} names job {}, which the ledger does not hold; leaving it",
                      message.id, job_id);
        continue;
      }
      int slot = slots.Reserve(job_id, unit_id);
      if (slot < 0) {
        unclaimed.push_back(message);
        continue;
      }
      ClaimRequest request{job_id, unit_id, Owner(slot), config.lease};
      const Clock::MonoTime claim_sent = clock().Monotonic();
      step_started_ns = claim_sent.time_since_epoch().count();
      std::optional<ScopedDeadline> claim_deadline(std::in_place, CallBound(kMessageCallDeadline));
      auto claim = deps.ledger->ClaimUnit(request);
      claim_deadline.reset();
      step_started_ns = 0;
      const bool give_up = RecordTry("ClaimUnit", claim.ok() ? Status::Ok() : claim.error());
      if (!claim.ok()) {
        slots.Unreserve(slot);
        if (give_up) break;
        if (!IsMissingPermission(claim.error())) {
          Logger().warn("could not claim {}/{}: {}", job_id, unit_id, claim.error().ToString());
        }
        continue;
      }
      switch (claim->outcome) {
        case ClaimOutcome::kClaimed: {
          UnitAssignment assignment;
          assignment.stack = stack;
          assignment.job = **job;
          assignment.unit = std::move(claim->unit);
          assignment.owner = request.owner;
          assignment.slot = slot;
          assignment.claimed_at = claim_sent;
          if (claim->took_over) {
            Logger().info("took over {}/{} from an expired lease", job_id, unit_id);
          }
          // Counted in hand before the slot can end it; the call goes out after the unit
          // has started, so it never delays the unit.
          if (protection) protection->Hold();
          StartSlot(slot, std::move(assignment));
          ++started;
          UpdateStatus();
          if (protection) protection->Reconcile();
          // The lease is the unit's claim now: the message goes, so it is never needed past
          // SQS's 12-hour visibility cap, and its receive count only ever counts deliveries
          // whose worker died before claiming. A requeue sends a fresh one; a unit whose
          // worker vanishes is found by the sweeper once its lease lapses. (After the unit
          // started: the call never delays it.)
          DeleteMessage(message);
          break;
        }
        case ClaimOutcome::kFinished:
          slots.Unreserve(slot);
          Logger().debug("{}/{} has ended already; deleting its message", job_id, unit_id);
          DeleteMessage(message);
          break;
        case ClaimOutcome::kHeldElsewhere:
          slots.Unreserve(slot);
          Logger().debug("{}/{} is held by {}; its message waits until the lease could lapse",
                         job_id, unit_id, claim->unit.owner);
          SetAside(message, claim->unit);
          break;
        case ClaimOutcome::kMissing:
          slots.Unreserve(slot);
          Logger().warn("message {} names unit {}/{}, which the ledger does not hold; leaving it",
                        message.id, job_id, unit_id);
          break;
      }
    }
    ReturnMessages(unclaimed);
    return started;
  }

  // --- idle ---------------------------------------------------------------------------------

  void FlushIntents() {
    std::set<std::pair<std::string, std::string>> pending;
    {
      std::lock_guard<std::mutex> lock(mu);
      pending.swap(intents);
    }
    ScopedDeadline deadline(CallBound(kMessageCallDeadline));
    for (const auto& [job, writer] : pending) {
      Status flushed = deps.ledger->FlushIntents(job, writer);
      if (!flushed.ok()) {
        Logger().warn("could not flush the counting intent of {} in job {}: {}", writer, job,
                      flushed.ToString());
        std::lock_guard<std::mutex> lock(mu);
        intents.insert({job, writer});
      }
    }
  }

  void SetIdle(bool idle) {
    if (idle == idle_since_mono.has_value()) return;
    if (idle) {
      idle_since_mono = clock().Monotonic();
      std::lock_guard<std::mutex> lock(mu);
      idle_since = clock().Now();
    } else {
      idle_since_mono.reset();
      std::lock_guard<std::mutex> lock(mu);
      idle_since.reset();
    }
  }

  // True when the queue holds no message at all, visible, in flight or delayed.
  bool QueueEmpty() {
    auto attributes = deps.sqs->GetQueueAttributes(stack.queue_url, kQueueDepthAttributes);
    if (!attributes.ok()) {
      Logger().warn("could not read the queue's depth: {}", attributes.error().ToString());
      return false;
    }
    for (const std::string& name : kQueueDepthAttributes) {
      auto it = attributes->find(name);
      if (it != attributes->end() && ToInt(it->second) != 0) return false;
    }
    return true;
  }

  // Terminates this instance: through its Auto Scaling group (shrinking it, so no
  // replacement comes up) when it has one, else directly. False if it could not be asked.
  bool TerminateSelf() {
    const std::string& id = deps.identity.instance_id;
    if (!group.empty()) {
      auto terminated = deps.autoscaling->TerminateInstanceInAutoScalingGroup(id, true);
      if (!terminated.ok()) {
        Logger().warn("could not terminate through the Auto Scaling group: {}",
                      terminated.error().ToString());
        return false;
      }
      Logger().info("terminating {} through Auto Scaling group {}", id, group);
      return true;
    }
    auto terminated = deps.ec2->TerminateInstances({id});
    if (!terminated.ok()) {
      Logger().warn("could not terminate {}: {}", id, terminated.error().ToString());
      return false;
    }
    Logger().info("terminating {}", id);
    return true;
  }

  // --- sweeping -----------------------------------------------------------------------------

  // Sends messages again for units that need one and have none (a lapsed lease, an orphan of
  // a purged queue) and settles dead letters (ledger/sweeper.h). Every agent sweeps now and
  // then, at a jittered interval, so units of a worker that vanished are back soon whoever is
  // left; the conditional stamps keep many sweepers from sending twice.
  struct SweepOutcome {
    bool complete = false;  // every step of the sweep went through
    bool sent = false;      // it sent a message for some unit
    int active_jobs = 0;    // jobs with units not ended (or an unfinished enqueue)
  };
  SweepOutcome Sweep() {
    next_sweep = clock().Monotonic() + SweepInterval();
    // A sweep makes a few calls in a row, each retried: a lease's worth of time for all.
    ScopedDeadline deadline(CallBound(config.lease));
    Sweeper sweeper(*deps.ledger, *deps.sqs, clock());
    auto report = sweeper.Sweep(SweepScope::ForStack(stack));
    SweepOutcome outcome;
    if (!report.ok()) {
      Logger().warn("sweep failed: {}", report.error().ToString());
      return outcome;
    }
    if (!report->first_error.ok()) Logger().warn("sweep: {}", report->first_error.ToString());
    outcome.complete = report->first_error.ok();
    outcome.active_jobs = report->jobs;
    const int resent = report->lapsed_resent + report->orphans_resent;
    outcome.sent = resent > 0;
    if (resent > 0 || report->poisoned > 0) {
      Logger().info(
          "sweep: sent {} unit(s) again ({} with a lapsed lease, {} without a message); {} "
          "failed as poison from the dead-letter queue",
          resent, report->lapsed_resent, report->orphans_resent, report->poisoned);
    }
    return outcome;
  }

  // About one lease apart (a vanished worker's unit waits at most a lease and this), jittered
  // by up to a fifth so a fleet started at once does not sweep in step.
  Clock::MonoTime::duration SweepInterval() {
    const auto lease = std::chrono::duration_cast<milliseconds>(config.lease);
    std::uniform_int_distribution<std::int64_t> jitter(0, lease.count() / 5);
    return lease + milliseconds(jitter(rng));
  }

  void MaybeSweep() {
    if (clock().Monotonic() >= next_sweep) Sweep();
  }

  // Called after a round that started nothing while no unit is in hand.
  std::optional<AgentExit> IdleRound() {
    if (!idle_since_mono) {
      SetIdle(true);
      Logger().info("idle: no work in hand");
      FlushIntents();
      return std::nullopt;
    }
    if (config.on_drain == DrainAction::kStay) return std::nullopt;
    if (clock().Monotonic() - *idle_since_mono < config.idle_shutdown) return std::nullopt;
    if (!QueueEmpty()) return std::nullopt;
    // The last worker must not leave a unit that will need a message and have none: it stays
    // while any job has units not ended (one RUNNING on another worker may yet lapse, a
    // young QUEUED one may have lost its message), and goes only after a complete sweep.
    const SweepOutcome swept = Sweep();
    if (!swept.complete || swept.sent) return std::nullopt;
    if (swept.active_jobs > 0) {
      if (!waiting_for_jobs) {
        Logger().info(
            "queue empty, but {} job(s) have units not ended yet: staying to sweep them if "
            "their workers vanish",
            swept.active_jobs);
      }
      waiting_for_jobs = true;
      return std::nullopt;
    }
    // Never with a unit in hand (and so no upload unfinished): a slot ends its unit, uploads
    // included, before it frees itself.
    if (!slots.NoUnitsInHand()) return std::nullopt;
    FlushIntents();
    if (config.on_drain == DrainAction::kExit) {
      Logger().info("queue empty and idle for {}s: exiting", config.idle_shutdown.count());
      return AgentExit::kDrained;
    }
    if (!deps.identity.on_ec2 || !deps.ec2) {
      Logger().warn(
          "queue empty and idle for {}s, but not on EC2: exiting instead of "
          "terminating",
          config.idle_shutdown.count());
      return AgentExit::kDrained;
    }
    SetState(WorkerState::kDraining);
    if (TerminateSelf()) return AgentExit::kTerminated;
    SetState(WorkerState::kRunning);
    return std::nullopt;  // tried again after the next empty round
  }

  // --- the loop -----------------------------------------------------------------------------

  AgentExit Loop() {
    int failures = 0;
    while (!stop.Requested()) {
      slots.ReapFinished();
      if (taking_paused) {
        // Rebalance stop-taking: the running units end by themselves; a drain (a notice, a
        // signal) ends the wait.
        stop.WaitFor(kTickerCap);
        continue;
      }
      const int free =
          slots.WaitForFreeSlot([&] { return stop.Requested() || taking_paused.load(); });
      if (stop.Requested()) break;
      if (taking_paused) continue;
      ReceiveRequest request;
      request.max_messages = std::min(free, 10);
      request.wait_seconds = config.poll_wait_s;
      // Hidden for a lease and a heartbeat, not the queue's default: if this agent dies
      // between the receive and the claim's message deletion, the message comes back soon
      // after a lease it might have taken could have run out.
      request.visibility_timeout = static_cast<int>(
          std::min<std::int64_t>((config.lease + config.heartbeat).count(), kMaxVisibilitySeconds));
      request.stop = &intake_stop;
      step_started_ns = clock().Monotonic().time_since_epoch().count();
      auto received = deps.sqs->ReceiveMessage(stack.queue_url, request);
      step_started_ns = 0;
      if (!received.ok() && intake_stop.Requested()) continue;  // aborted: drain or pause
      if (RecordTry("ReceiveMessage", received.ok() ? Status::Ok() : received.error())) {
        return GiveUp();
      }
      if (!received.ok()) {
        ++failures;
        seconds pause = std::min<seconds>(kReceiveBackoffFirst * (1 << std::min(failures - 1, 5)),
                                          kReceiveBackoffCap);
        Logger().warn("receive failed ({}); trying again in {}s", received.error().ToString(),
                      pause.count());
        clock().SleepFor(pause, &stop);
        continue;
      }
      failures = 0;
      if (intake_stop.Requested()) {
        ReturnMessages(*received);
        continue;
      }
      int started = Dispatch(*received);
      if (gave_up_on) return GiveUp();
      MaybeSweep();
      if (started == 0 && slots.NoUnitsInHand()) {
        if (auto exit = IdleRound()) return *exit;
      } else {
        SetIdle(false);
      }
    }
    return AgentExit::kStopped;
  }

  // The main loop was denied one of its calls too often. Units in hand are drained as for a
  // stop signal (released, not left to their lease), then Run() returns.
  AgentExit GiveUp() {
    Logger().error(
        "missing permission {}: denied {} times in a row; exiting with status {} (give the "
        "instance role the permission and start the agent again)",
        gave_up_on.value_or("?"), kMissingPermissionTries, kExitMissingPermission);
    if (!slots.NoUnitsInHand()) RequestStop();
    return AgentExit::kMissingPermission;
  }

  Result<AgentExit> Run() {
    auto found = deps.ledger->GetStack();
    const std::string table = LedgerTableName(config.stack);
    if (!found.ok()) {
      if (!found.error().IsNotFound()) return found.error();
      Error error = found.error();
      error.service.clear();
      error.operation.clear();
      error.http_status = 0;
      error.code.clear();
      error.message = "stack '" + config.stack + "' does not exist (no ledger table " + table + ")";
      return error;
    }
    if (!*found) {
      Error error;
      error.category = ErrorCategory::kNotFound;
      error.message = "stack '" + config.stack +
                      "' does not exist (no stack item in ledger table " + table + ")";
      return error;
    }
    stack = **found;
    if (stack.queue_url.empty()) {
      return Error::InvalidInput("the stack item of '" + config.stack + "' in " + table +
                                 " names no work queue; run `controller init` again");
    }

    runner_settings.work_dir = config.work_dir;
    runner_settings.heartbeat = config.heartbeat;
    runner_settings.lease = config.lease;
    runner_settings.sync_interval = config.sync_interval;
    runner_settings.kill_grace = config.kill_grace;
    runner_settings.run_as = deps.run_as;
    runner_settings.poll_slice = deps.poll_slice;
    runner_settings.checkpoint_signal = config.checkpoint_signal;
    if (deps.run_as) {
      runner_settings.home = deps.run_as->home.string();
      runner_settings.user = deps.run_as->name;
    } else {
      std::tie(runner_settings.home, runner_settings.user) = SelfHomeAndUser();
    }

    {
      std::lock_guard<std::mutex> lock(mu);
      started_at = clock().Now();
    }
    FindGroup();
    next_sweep = clock().Monotonic() + SweepInterval();
    PutWorker();
    Logger().info("agent {} ready: stack {}, {} slots, queue {}", deps.identity.instance_id,
                  config.stack, slots.size(), stack.queue_url);
    deps.notifier->Ready();
    UpdateStatus();
    ticker = std::thread([this] { TickerLoop(); });
    StartWatch();

    AgentExit exit = Loop();

    slots.JoinAll();  // each runner has seen the stop and released its unit
    if (watch) watch->Stop();
    ticker_stop.Request();
    ticker.join();
    FlushIntents();
    SetState(WorkerState::kEnded);
    PutWorker();
    if (lifecycle_drain) CompleteLifecycle();
    Logger().info("agent stopped ({})", exit == AgentExit::kStopped   ? "stop requested"
                                        : exit == AgentExit::kDrained ? "drained"
                                        : exit == AgentExit::kMissingPermission
                                            ? "missing permission"
                                            : "terminating");
    return exit;
  }

  // --- interruptions and drain ---------------------------------------------------------------

  // The Auto Scaling group, from --asg-name or asked once; outside a group (or off EC2) no
  // Auto Scaling call is ever made.
  void FindGroup() {
    if (!deps.autoscaling || !deps.identity.on_ec2) return;
    if (!config.asg_name.empty()) {
      group = config.asg_name;
    } else {
      auto described = deps.autoscaling->DescribeAutoScalingInstances({deps.identity.instance_id});
      if (!described.ok()) {
        Logger().warn(
            "could not look up this instance's Auto Scaling group ({}); acting as outside one "
            "(give --asg-name to skip the lookup)",
            described.error().ToString());
        return;
      }
      if (described->empty()) {
        Logger().info("not in an Auto Scaling group");
        return;
      }
      group = (*described)[0].auto_scaling_group_name;
    }
    Logger().info("in Auto Scaling group {}", group);
    protection =
        std::make_unique<ScaleInProtection>(deps.autoscaling, group, deps.identity.instance_id);
  }

  void StartWatch() {
    if (!deps.imds || !deps.identity.on_ec2) return;
    InterruptionWatchOptions options;
    options.poll = config.spot_poll;
    options.stop_timeout = config.stop_timeout;
    options.spot = deps.identity.spot;
    options.rebalance = deps.identity.spot && config.rebalance != RebalancePolicy::kIgnore;
    options.lifecycle = true;  // an instance outside a group simply has no such item
    options.slice = deps.poll_slice;
    watch = std::make_unique<InterruptionWatch>(
        *deps.imds, clock(), options,
        [this](const InterruptionNotice& notice) { OnNotice(notice); });
    watch->Start();
  }

  void OnNotice(const InterruptionNotice& notice) {
    using Kind = InterruptionNotice::Kind;
    switch (notice.kind) {
      case Kind::kSpotInterruption:
        Logger().warn("Spot interruption notice ({})", notice.detail);
        BeginDrain(DrainTrigger::kSpotInterruption, notice.deadline);
        return;
      case Kind::kLifecycleTerminated:
        Logger().warn("Auto Scaling is terminating this instance (target lifecycle state {})",
                      notice.detail);
        lifecycle_drain = true;
        BeginDrain(DrainTrigger::kLifecycleTerminated, notice.deadline);
        if (CanAnswerLifecycle()) {
          LifecycleHeartbeat();
        } else {
          Logger().warn(
              "no {} known: the lifecycle action can't be heartbeated or completed; the group "
              "goes on after the hook's timeout",
              group.empty() ? "Auto Scaling group" : "--lifecycle-hook");
        }
        return;
      case Kind::kRebalance:
        switch (config.rebalance) {
          case RebalancePolicy::kIgnore:
            return;
          case RebalancePolicy::kStopTaking:
            PauseTaking();
            return;
          case RebalancePolicy::kCheckpoint:
            Logger().warn("rebalance recommendation: checkpointing and draining");
            BeginDrain(DrainTrigger::kRebalance, notice.deadline);
            return;
        }
        return;
    }
  }

  void PauseTaking() {
    if (taking_paused.exchange(true)) return;
    Logger().warn(
        "rebalance recommendation: taking no new units; the running ones go on and end "
        "normally");
    intake_stop.Request();
    slots.Wake();
  }

  // Starts the drain, or moves its deadline earlier; never restarts it.
  void BeginDrain(DrainTrigger trigger, Clock::MonoTime deadline) {
    const auto left_ms = [&] {
      return std::chrono::duration_cast<milliseconds>(deadline - clock().Monotonic()).count();
    };
    switch (drain.Propose(trigger, deadline, clock().Monotonic())) {
      case DrainPlan::Offer::kUnchanged:
        Logger().info("{} during the drain: nothing changes", ToString(trigger));
        return;
      case DrainPlan::Offer::kMovedEarlier:
        Logger().warn("{} during the drain: its deadline moves earlier, to {} ms from now",
                      ToString(trigger), left_ms());
        return;
      case DrainPlan::Offer::kStarted:
        break;
    }
    Logger().info("{}: draining; everything ends within {} ms", ToString(trigger), left_ms());
    deps.notifier->Stopping();
    {
      std::lock_guard<std::mutex> lock(mu);
      if (state == WorkerState::kRunning) state = WorkerState::kDraining;
    }
    intake_stop.Request();
    stop.Request();
    slots.Wake();
    UpdateStatus();
  }

  bool CanAnswerLifecycle() const { return !group.empty() && !config.lifecycle_hook.empty(); }

  LifecycleActionRef LifecycleAction() const {
    LifecycleActionRef action;
    action.auto_scaling_group_name = group;
    action.lifecycle_hook_name = config.lifecycle_hook;
    action.instance_id = deps.identity.instance_id;
    return action;
  }

  // From the watch thread (the first) and the ticker (the later ones); the atomic due time
  // keeps the two from sending the same one twice.
  void LifecycleHeartbeat() {
    const std::int64_t due = next_lifecycle_heartbeat_ns.load();
    const Clock::MonoTime now = clock().Monotonic();
    if (now.time_since_epoch().count() < due) return;
    const std::int64_t next = (now + kLifecycleHeartbeat).time_since_epoch().count();
    std::int64_t expected = due;
    if (!next_lifecycle_heartbeat_ns.compare_exchange_strong(expected, next)) return;
    ScopedDeadline deadline(CallBound(kLifecycleHeartbeat));
    Status sent = deps.autoscaling->RecordLifecycleActionHeartbeat(LifecycleAction());
    if (!sent.ok()) Logger().warn("lifecycle action heartbeat failed: {}", sent.ToString());
  }

  void CompleteLifecycle() {
    if (!CanAnswerLifecycle()) return;
    ScopedDeadline deadline(CallBound(kLifecycleHeartbeat));
    Status done = deps.autoscaling->CompleteLifecycleAction(LifecycleAction(),
                                                            LifecycleActionResult::kContinue);
    if (!done.ok()) {
      Logger().error("could not complete the lifecycle action: {}", done.ToString());
      return;
    }
    Logger().info("lifecycle action {} completed (CONTINUE)", config.lifecycle_hook);
  }

  void RequestStop() {
    BeginDrain(DrainTrigger::kStopSignal, StopDeadline(clock().Monotonic(), config.stop_timeout));
  }
};

Agent::Agent(AgentConfig config, AgentDeps deps)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(deps))) {}

Agent::~Agent() {
  // Run() joins its threads; this covers an Agent destroyed while Run() never ran.
  if (impl_->watch) impl_->watch->Stop();
  impl_->slots.JoinAll();
}

Result<AgentExit> Agent::Run() { return impl_->Run(); }

void Agent::RequestStop() { impl_->RequestStop(); }

}  // namespace spotgrid::agent
