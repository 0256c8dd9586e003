#include "agent/unit_runner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>
#include <vector>

#include "agent/dir_sync.h"
#include "agent/lease_keeper.h"
#include "agent/retry_decision.h"
#include "agent/systemd.h"
#include "spotgrid/core/deadline.h"
#include "spotgrid/core/log.h"

namespace spotgrid::agent {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// SQS limit for one message's delay.
constexpr std::int64_t kMaxMessageDelaySeconds = 900;
// A requeued unit's fresh message is delayed at least this long, so it reaches another worker
// after the release that follows it has landed.
constexpr seconds kRequeueDelayMin{2};
// Pause before trying an end write again after no verdict, growing with each try.
constexpr milliseconds kEndWritePause{500};
constexpr std::size_t kProgressReadLimit = 4096;
// Tries at confirming the lease before the final sync when the ledger does not answer. The
// client core has already retried each call; these cover a brief outage on top of that.
constexpr int kConfirmAttempts = 3;
constexpr seconds kConfirmPause{2};

// A job or unit id becomes a directory name: refuse anything that could leave the slot.
bool IsSafeComponent(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

std::string Trim(std::string text) {
  auto space = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::size_t start = 0;
  while (start < text.size() && space(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

// The command writes the file; the agent (maybe root) reads it. O_NOFOLLOW and the
// regular-file check keep a command from making the agent read another file through it.
std::optional<std::string> ReadProgressFile(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    text.resize(kProgressReadLimit);
    ssize_t n = ::read(fd, text.data(), text.size());
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  text = Trim(std::move(text));
  if (text.empty()) return std::nullopt;
  return text;
}

Status MakeDirectory(const fs::path& path, mode_t mode, const std::optional<RunAs>& owner) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return Error::Io("mkdir", path.string() + ": " + std::strerror(errno));
  }
  if (::chmod(path.c_str(), mode) != 0) {
    return Error::Io("chmod", path.string() + ": " + std::strerror(errno));
  }
  if (owner && ::lchown(path.c_str(), owner->uid, owner->gid) != 0) {
    return Error::Io("chown", path.string() + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status MakeEmptyFile(const fs::path& path, mode_t mode, const std::optional<RunAs>& owner) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Error::Io("open", path.string() + ": " + std::strerror(errno));
  int rc = owner ? ::fchown(fd, owner->uid, owner->gid) : 0;
  int saved = errno;
  ::close(fd);
  if (rc != 0) return Error::Io("chown", path.string() + ": " + std::strerror(saved));
  return Status::Ok();
}

// Hands a restored tree to the user the command runs as (never following a link).
Status ChownTree(const fs::path& root, const RunAs& owner) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (::lchown(it->path().c_str(), owner.uid, owner.gid) != 0) {
      return Error::Io("chown", it->path().string() + ": " + std::strerror(errno));
    }
  }
  if (ec) return Error::Io("chown", root.string() + ": " + ec.message());
  return Status::Ok();
}

std::string DescribeExit(const ProcessExit& exit) {
  if (exit.exit_code) return "exit code " + std::to_string(*exit.exit_code);
  if (exit.signal) return std::string("killed by signal ") + std::to_string(*exit.signal);
  return "ended";
}

}  // namespace

std::string_view ToString(UnitOutcome outcome) {
  switch (outcome) {
    case UnitOutcome::kSucceeded:
      return "succeeded";
    case UnitOutcome::kRetrying:
      return "retrying";
    case UnitOutcome::kFailed:
      return "failed";
    case UnitOutcome::kCancelled:
      return "cancelled";
    case UnitOutcome::kInterrupted:
      return "interrupted";
    case UnitOutcome::kLeaseLost:
      return "lease lost";
    case UnitOutcome::kAbandoned:
      return "abandoned";
  }
  return "unknown";
}

fs::path UnitDirectory(const fs::path& work_dir, int slot, std::string_view job,
                       std::string_view unit) {
  return work_dir / "slots" / std::to_string(slot) / std::string(job) / std::string(unit);
}

struct UnitRunner::Impl {
  // How the run part of the attempt ended.
  enum class End { kExited, kNotStarted, kTimedOut, kCancelled, kInterrupted, kLost };

  UnitRunnerDeps deps;
  UnitRunnerSettings settings;
  UnitAssignment a;
  const StopSource* agent_stop;
  LeaseRef lease;

  fs::path dir, scratch, output, checkpoint, logs, progress_file, sync_dir;

  std::atomic<bool> lost{false};
  // The lease could not be renewed in time and the unit was stopped before it could run out
  // (lost is set too: nothing more is written). The unit is then abandoned, not lost.
  std::atomic<bool> fenced{false};
  std::atomic<bool> cancel_requested{false};
  std::unique_ptr<LeaseKeeper> keeper;
  // Raised when a periodic sync in flight must stop early (cancel, timeout, stop, lost lease).
  // Only ever raised while one is in flight, so the periodic syncers stay usable for the final
  // sync unless a sync really was cut short.
  StopSource cut_periodic;
  std::atomic<bool> periodic_in_flight{false};
  StopSource lost_stop;  // raised when the lease is lost: cuts every transfer
  // Raised when the lease is lost or a drain reaches R: cuts the final sync.
  StopSource final_cut;
  // The checkpoint was restored completely (or there was none to restore). Until then the
  // local checkpoint/ is a partial copy, and a final sync of it would delete from S3 what had
  // not come down yet.
  bool restore_complete = true;

  bool timed_out = false;
  bool stopping = false;
  // The drain SIGKILLed the row at G: it may have died halfway through writing its checkpoint,
  // so the final sync leaves checkpoint/ in S3 as it is (the last good one).
  bool killed_by_drain = false;
  Clock::MonoTime next_sync{}, deadline{};
  bool has_deadline = false;
  std::future<void> periodic;  // the periodic sync in flight, if valid()

  std::unique_ptr<DirectorySync> output_sync, checkpoint_sync, logs_sync;

  Impl(UnitRunnerDeps d, UnitRunnerSettings s, UnitAssignment as, const StopSource* stop)
      : deps(std::move(d)), settings(std::move(s)), a(std::move(as)), agent_stop(stop) {
    lease = {a.unit.job, a.unit.spec.id, a.owner, a.unit.attempt};
    LeaseKeeper::Callbacks callbacks;
    callbacks.progress = [this] { return ReadProgressFile(progress_file); };
    callbacks.on_lost = [this] { MarkLost(); };
    callbacks.on_cancel = [this] {
      cancel_requested = true;
      if (periodic_in_flight) cut_periodic.Request();
    };
    callbacks.cap = [this]() -> std::optional<Clock::MonoTime> {
      auto times = DrainTimesNow();
      if (!times) return std::nullopt;
      return times->deadline;
    };
    // A claim sent at an unknown time (tests that build assignments by hand) counts from now.
    const Clock::MonoTime confirmed =
        a.claimed_at != Clock::MonoTime{} ? a.claimed_at : deps.clock->Monotonic();
    keeper = std::make_unique<LeaseKeeper>(
        deps.ledger, *deps.clock, lease,
        LeaseKeeper::Settings{settings.lease, settings.heartbeat, settings.poll_slice},
        std::move(callbacks), confirmed);
    dir = UnitDirectory(settings.work_dir, a.slot, lease.job, lease.unit);
    scratch = dir / "scratch";
    output = dir / "output";
    checkpoint = dir / "checkpoint";
    logs = dir / "logs";
    progress_file = dir / "progress";
    sync_dir = dir / "sync";
  }

  // The keeper's thread calls back into this object: it stops before any member goes.
  ~Impl() { keeper->Stop(); }

  Clock& clock() { return *deps.clock; }

  UnitOutcome LostOrFenced() const {
    return fenced ? UnitOutcome::kAbandoned : UnitOutcome::kLeaseLost;
  }

  // --- lease --------------------------------------------------------------------------------

  void MarkLost() {
    if (!lost.exchange(true)) {
      Logger().warn(
          "lease on {}/{} attempt {} lost: another worker holds the unit; stopping it "
          "and writing nothing more",
          lease.job, lease.unit, lease.attempt);
    }
    lost_stop.Request();
    cut_periodic.Request();
    final_cut.Request();
  }

  // No renewal landed in time: stop the unit before its lease can run out, so no other
  // worker ever runs it while this one does, and write nothing more (the lease lapses and the
  // unit is taken over).
  void MarkFenced() {
    if (fenced.exchange(true)) return;
    Logger().error(
        "lease on {}/{} attempt {} could not be renewed; stopping the unit {} s before the "
        "lease could run out and writing nothing more",
        lease.job, lease.unit, lease.attempt, FenceMargin(settings.heartbeat).count());
    lost = true;
    lost_stop.Request();
    cut_periodic.Request();
    final_cut.Request();
  }

  // Renews the lease now (with the progress the command reported). True while the lease is
  // ours; false when it is lost or the ledger could not be reached.
  bool Renew() { return !lost && keeper->Renew(); }

  // A lease confirmed less than half a heartbeat ago needs no new confirmation before the final
  // writes: they then start at least 2.5 heartbeats before the lease can run out (the lease is
  // three heartbeats), and the keeper goes on renewing during the transfers exactly as after a
  // confirmation. For a short unit this spares a ledger write.
  bool RecentlyConfirmed() const { return keeper->ConfirmedWithin(settings.heartbeat / 2); }

  // --- time ---------------------------------------------------------------------------------

  // Heartbeat and periodic sync when due, and notice stop and timeout. `running`: a row's
  // process is running (only then may the timeout fire or a periodic sync start).
  void Tick(bool running) {
    Clock::MonoTime now = clock().Monotonic();
    if (!lost && now >= keeper->FenceTime()) MarkFenced();
    if (!stopping && agent_stop->Requested()) {
      stopping = true;
      if (periodic_in_flight) cut_periodic.Request();
    }
    if (stopping && !final_cut.Requested()) {
      if (auto times = DrainTimesNow(); times && now >= times->release_by) {
        Logger().warn("drain: uploads cut off {} s before the drain's deadline",
                      kDrainReleaseMargin.count());
        cut_periodic.Request();
        final_cut.Request();
      }
    }
    if (running && has_deadline && !timed_out && now >= deadline) {
      timed_out = true;
      if (periodic_in_flight) cut_periodic.Request();
    }
    if (periodic.valid() && periodic.wait_for(milliseconds(0)) == std::future_status::ready) {
      periodic.get();
      periodic_in_flight = false;
      next_sync = clock().Monotonic() + settings.sync_interval;
    }
    if (running && !periodic.valid() && now >= next_sync && !Interrupted()) StartPeriodicSync();
  }

  bool Interrupted() const { return lost || cancel_requested || stopping || timed_out; }

  // The drain's times once the agent is stopping with a plan; nullopt otherwise.
  std::optional<DrainTimes> DrainTimesNow() const {
    if (deps.drain == nullptr || !agent_stop->Requested()) return std::nullopt;
    return deps.drain->Times();
  }

  // How long the next real-time wait may be: the next due time by the clock, capped by the
  // slice so that a stop (or a fake clock moved by a test) is noticed promptly. Sync and
  // timeout are due only while a row runs (`running`).
  milliseconds NextWait(bool running) const {
    Clock::MonoTime now = deps.clock->Monotonic();
    Clock::MonoTime next = lost ? Clock::MonoTime::max() : keeper->FenceTime();
    if (running && !periodic.valid()) next = std::min(next, next_sync);
    if (running && has_deadline && !timed_out) next = std::min(next, deadline);
    auto until = std::chrono::duration_cast<milliseconds>(next - now);
    return std::clamp(until, milliseconds(1), settings.poll_slice);
  }

  // --- transfers ----------------------------------------------------------------------------

  std::unique_ptr<DirectorySync> MakeSync(const std::string& prefix, const fs::path& local,
                                          const std::string& manifest, const StopSource* stop) {
    SyncOptions options;
    options.concurrency = settings.sync_concurrency;
    options.manifest_path = sync_dir / manifest;
    options.stop = stop;
    return std::make_unique<DirectorySync>(deps.s3, a.stack.bucket, prefix, local, options);
  }

  std::string LogsKeyPrefix() const {
    return LogsPrefix(a.stack, lease.job, lease.unit, lease.attempt);
  }

  void MakePeriodicSyncers() {
    output_sync = MakeSync(OutputPrefix(a.stack, lease.job, lease.unit), output, "output.manifest",
                           &cut_periodic);
    checkpoint_sync = MakeSync(CheckpointPrefix(a.stack, lease.job, lease.unit), checkpoint,
                               "checkpoint.manifest", &cut_periodic);
    logs_sync = MakeSync(LogsKeyPrefix(), logs, "logs.manifest", &cut_periodic);
  }

  // Checkpoint, outputs, logs: in the order a drain cut short at R needs them (a checkpoint
  // lets another worker resume; outputs without it are redone anyway). The first error is
  // returned, but every directory is tried unless the sync was cut short.
  static Status SyncAll(DirectorySync& out, DirectorySync& ckpt, DirectorySync& log, bool final) {
    Status first;
    for (DirectorySync* sync : {&ckpt, &out, &log}) {
      auto stats = sync->Sync(final);
      if (!stats.ok() && first.ok()) first = stats.status();
      if (!stats.ok() && stats.error().category == ErrorCategory::kCancelled) break;
    }
    return first;
  }

  // A final sync without checkpoint/ (a unit the drain killed), in SyncAll's order.
  static Status SyncOutputsAndLogs(DirectorySync& out, DirectorySync& log) {
    Status first;
    for (DirectorySync* sync : {&out, &log}) {
      auto stats = sync->Sync(true);
      if (!stats.ok() && first.ok()) first = stats.status();
      if (!stats.ok() && stats.error().category == ErrorCategory::kCancelled) break;
    }
    return first;
  }

  void StartPeriodicSync() {
    periodic_in_flight = true;
    periodic = std::async(std::launch::async, [this] {
      LogContext context(lease.job, lease.unit, lease.attempt);
      // Confirm the lease before writing: a worker cut off from the ledger never overwrites
      // a newer attempt's files.
      if (!Renew()) return;
      Status synced = SyncAll(*output_sync, *checkpoint_sync, *logs_sync, false);
      if (!synced.ok() && synced.error().category != ErrorCategory::kCancelled) {
        Logger().warn("periodic sync failed (retried at the next one): {}", synced.ToString());
      }
    });
  }

  // Waits (heartbeating) for a periodic sync in flight to end.
  void AwaitPeriodic() {
    while (periodic.valid()) {
      if (periodic.wait_for(NextWait(false)) == std::future_status::ready) {
        periodic.get();
        periodic_in_flight = false;
        break;
      }
      Tick(false);
    }
  }

  // Runs `work` on a helper thread while this thread keeps the lease alive.
  Status RunTransfer(std::function<Status()> work) {
    auto future = std::async(std::launch::async, [this, work = std::move(work)] {
      LogContext context(lease.job, lease.unit, lease.attempt);
      return work();
    });
    while (future.wait_for(NextWait(false)) != std::future_status::ready) Tick(false);
    return future.get();
  }

  // --- the attempt --------------------------------------------------------------------------

  Status PrepareDirectories() {
    if (!IsSafeComponent(lease.job) || !IsSafeComponent(lease.unit)) {
      return Error::InvalidInput("job or unit id '" + lease.job + "/" + lease.unit +
                                 "' cannot name a directory");
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) return Error::Io("remove", dir.string() + ": " + ec.message());
    fs::create_directories(dir, ec);
    if (ec) return Error::Io("mkdir", dir.string() + ": " + ec.message());
    // The unit directory, logs/ and sync/ stay the agent's: a command cannot swap the files
    // the agent opens, reads or uploads there for links. scratch/, output/ and checkpoint/
    // are the command's.
    const std::optional<RunAs> agent;
    const std::pair<const fs::path*, const std::optional<RunAs>*> layout[] = {
        {&dir, &agent},
        {&logs, &agent},
        {&sync_dir, &agent},
        {&scratch, &settings.run_as},
        {&output, &settings.run_as},
        {&checkpoint, &settings.run_as}};
    for (const auto& [path, owner] : layout) {
      if (Status s = MakeDirectory(*path, 0755, *owner); !s.ok()) return s;
    }
    for (const fs::path& file : {logs / "stdout.log", logs / "stderr.log", progress_file}) {
      if (Status s = MakeEmptyFile(file, 0640, settings.run_as); !s.ok()) return s;
    }
    return WriteEmptyManifests();
  }

  // An empty manifest (dir_sync.h's format) for a prefix known to hold nothing yet spares the
  // listing the first sync would otherwise make. logs/<attempt>/ is written by this attempt
  // alone (attempt numbers come from conditional claims), so it always starts empty. output/
  // and checkpoint/ are the unit's across attempts, but only an attempt can write them, so
  // they are empty on attempt 1 (a unit the controller retries keeps counting: attempt > 1).
  Status WriteEmptyManifests() {
    std::vector<std::pair<std::string, std::string>> empty = {{"logs.manifest", LogsKeyPrefix()}};
    if (lease.attempt == 1) {
      empty.emplace_back("output.manifest", OutputPrefix(a.stack, lease.job, lease.unit));
      empty.emplace_back("checkpoint.manifest", CheckpointPrefix(a.stack, lease.job, lease.unit));
    }
    for (const auto& [name, prefix] : empty) {
      const nlohmann::json manifest = {{"version", 1},
                                       {"bucket", a.stack.bucket},
                                       {"prefix", prefix},
                                       {"files", nlohmann::json::object()}};
      const fs::path path = sync_dir / name;
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << manifest.dump();
      out.close();
      if (!out) return Error::Io("write", path.string());
    }
    return Status::Ok();
  }

  // Like a periodic sync, a restore is cut short by a stop, a cancel or a lost lease.
  Status RestoreCheckpoint() {
    periodic_in_flight = true;
    Status restored = RunTransfer([this]() -> Status {
      auto stats = RestoreDirectory(*deps.s3, a.stack.bucket,
                                    CheckpointPrefix(a.stack, lease.job, lease.unit), checkpoint,
                                    settings.sync_concurrency, &cut_periodic);
      if (!stats.ok()) return stats.status();
      Logger().info("restored checkpoint: {} files, {} bytes", stats->files, stats->bytes);
      return Status::Ok();
    });
    periodic_in_flight = false;
    if (!restored.ok()) return restored;
    if (settings.run_as) return ChownTree(checkpoint, *settings.run_as);
    return Status::Ok();
  }

  std::vector<std::pair<std::string, std::string>> SpotgridVars(std::size_t row) const {
    return {{"SPOTGRID_JOB", lease.job},
            {"SPOTGRID_UNIT", lease.unit},
            {"SPOTGRID_ATTEMPT", std::to_string(lease.attempt)},
            {"SPOTGRID_ROW", std::to_string(row)},
            {"SPOTGRID_OUTPUT_DIR", output.string()},
            {"SPOTGRID_CHECKPOINT_DIR", checkpoint.string()},
            {"SPOTGRID_PROGRESS_FILE", progress_file.string()},
            {"SPOTGRID_SCRATCH_DIR", scratch.string()}};
  }

  // Runs the rows in order until one fails or the run is interrupted. Fills `exit` with the
  // last row's exit and `error` with a description of a failure.
  End RunRows(std::optional<ProcessExit>& exit, std::string& error) {
    const auto& rows = a.unit.spec.rows;
    if (rows.empty()) {
      error = "the unit has no rows";
      return End::kNotStarted;
    }
    Clock::MonoTime started = clock().Monotonic();
    if (a.job.timeout_s > 0) {
      has_deadline = true;
      deadline = started + seconds(a.job.timeout_s);
    }
    next_sync = started + settings.sync_interval;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (End end = InterruptionEnd(); end != End::kExited) return end;
      ProcessSpec spec;
      spec.command = rows[i].command;
      spec.env =
          BuildUnitEnvironment(SpotgridVars(i), rows[i].params, settings.home, settings.user);
      spec.cwd = scratch;
      spec.stdout_path = logs / "stdout.log";
      spec.stderr_path = logs / "stderr.log";
      spec.run_as = settings.run_as;
      auto process = UnitProcess::Start(spec);
      if (!process.ok()) {
        error = "could not start row " + std::to_string(i) + ": " + process.error().ToString();
        return End::kNotStarted;
      }
      Logger().debug("row {} of {} started (pid {})", i + 1, rows.size(), (*process)->pid());
      while (true) {
        if (auto done = (*process)->WaitFor(NextWait(true))) {
          exit = done;
          break;
        }
        Tick(true);
        if (Interrupted()) {
          // A lost unit belongs to another worker now: nothing to save, kill at once.
          if (lost) {
            exit = (*process)->Kill();
            return End::kLost;
          }
          if (stopping) {
            exit = DrainRow(**process);
            if (lost) return End::kLost;
            if (exit->Succeeded() && i + 1 == rows.size()) {
              Logger().info("drain: the command exited 0 within the grace period; finishing");
              return End::kExited;
            }
            return End::kInterrupted;
          }
          exit = (*process)->Terminate(settings.kill_grace);
          return InterruptionEnd();
        }
      }
      if (!exit->Succeeded()) {
        error = rows.size() > 1 ? "row " + std::to_string(i) + ": " + DescribeExit(*exit)
                                : DescribeExit(*exit);
        return End::kExited;
      }
    }
    return End::kExited;
  }

  // A drain's handling of the running row: the checkpoint signal at once, then wait (still
  // heartbeating) until G by the Clock, then SIGKILL. A G already past costs at most one
  // slice. Without a drain plan, G is kill_grace from now.
  ProcessExit DrainRow(UnitProcess& process) {
    const Clock::MonoTime fallback_grace_end = clock().Monotonic() + settings.kill_grace;
    auto grace_end = [&] {
      auto times = DrainTimesNow();
      return times ? times->grace_end : fallback_grace_end;
    };
    process.Signal(settings.checkpoint_signal);
    Logger().info(
        "drain: sent signal {} to the unit's process group; it has {} ms to end",
        settings.checkpoint_signal,
        std::max<std::int64_t>(
            0,
            std::chrono::duration_cast<milliseconds>(grace_end() - clock().Monotonic()).count()));
    // The unit is its process group, not the shell (UnitProcess::GroupAlive).
    std::optional<ProcessExit> shell_exit;
    while (true) {
      const auto until =
          std::chrono::duration_cast<milliseconds>(grace_end() - clock().Monotonic());
      const milliseconds wait = std::clamp(until, milliseconds(1), NextWait(false));
      if (!shell_exit) {
        shell_exit = process.WaitFor(wait);
      } else {
        // A real-time slice, like WaitFor's: waiting is for the process, and G is judged by
        // the Clock below (a sleep by the Clock would move a test's FakeClock to G at once).
        lost_stop.WaitFor(wait);
      }
      if (shell_exit && !process.GroupAlive()) return *shell_exit;
      Tick(false);
      if (lost) return process.Kill();
      if (clock().Monotonic() >= grace_end()) {
        Logger().warn(
            "drain: the command did not end within the grace period; killing it (its "
            "checkpoint is not uploaded: S3 keeps the last good one)");
        killed_by_drain = true;
        return process.Kill();
      }
    }
  }

  // Why the run was interrupted, most binding first; kExited when it was not.
  End InterruptionEnd() const {
    if (lost) return End::kLost;
    if (cancel_requested) return End::kCancelled;
    if (stopping) return End::kInterrupted;
    if (timed_out) return End::kTimedOut;
    return End::kExited;
  }

  // Confirms the lease before the final writes, retrying a ledger that does not answer.
  bool ConfirmLease() {
    if (RecentlyConfirmed()) return true;
    for (int attempt = 1; attempt <= kConfirmAttempts; ++attempt) {
      if (Renew()) return true;
      if (lost) return false;
      if (attempt < kConfirmAttempts) clock().SleepFor(kConfirmPause * attempt, &lost_stop);
    }
    return false;
  }

  Status FinalSync() {
    if (!restore_complete) {
      // Only the logs: checkpoint/ (and output/, which a command resumes into) would be
      // synced from a partial restore, deleting in S3 what had not come down yet.
      return RunTransfer([this]() -> Status {
        auto log = MakeSync(LogsKeyPrefix(), logs, "logs.manifest", &final_cut);
        auto stats = log->Sync(true);
        return stats.ok() ? Status::Ok() : stats.status();
      });
    }
    // The periodic syncers know what is in S3 already; after one was cut short, fresh ones
    // (which read the manifest or list the prefix) are the safe choice.
    const bool reuse = output_sync && !cut_periodic.Requested();
    if (killed_by_drain) {
      // No checkpoint sync at all, not merely no upload: a final sync would also delete keys
      // whose local file is gone, and a torn write may have removed or renamed one.
      return RunTransfer([this, reuse]() -> Status {
        if (reuse) return SyncOutputsAndLogs(*output_sync, *logs_sync);
        auto out = MakeSync(OutputPrefix(a.stack, lease.job, lease.unit), output,
                            "output.manifest", &final_cut);
        auto log = MakeSync(LogsKeyPrefix(), logs, "logs.manifest", &final_cut);
        return SyncOutputsAndLogs(*out, *log);
      });
    }
    return RunTransfer([this, reuse]() -> Status {
      if (reuse) return SyncAll(*output_sync, *checkpoint_sync, *logs_sync, true);
      auto out = MakeSync(OutputPrefix(a.stack, lease.job, lease.unit), output, "output.manifest",
                          &final_cut);
      auto ckpt = MakeSync(CheckpointPrefix(a.stack, lease.job, lease.unit), checkpoint,
                           "checkpoint.manifest", &final_cut);
      auto log = MakeSync(LogsKeyPrefix(), logs, "logs.manifest", &final_cut);
      return SyncAll(*out, *ckpt, *log, true);
    });
  }

  // A ledger write that ends the attempt failed: lost lease or unreachable ledger.
  UnitOutcome LedgerWriteFailed(const Status& status, std::string_view what) {
    if (status.error().IsConditionFailed()) {
      MarkLost();
      return UnitOutcome::kLeaseLost;
    }
    Logger().error(
        "could not record the end of the attempt ({}): {}; leaving the unit to "
        "expire and be taken over",
        what, status.ToString());
    return UnitOutcome::kAbandoned;
  }

  // An end write, tried again while its outcome is unknown (no reply, 5xx, throttling) until
  // `until`: the ledger reuses the transition's id, so a retry recognises its own earlier
  // write instead of taking it for another worker's. Every try is bounded by `until` too.
  Status EndWrite(const std::function<Status()>& write, Clock::MonoTime until) {
    ScopedDeadline scope(until);
    Status status;
    for (int attempt = 1;; ++attempt) {
      status = write();
      if (status.ok() || status.error().IsConditionFailed()) return status;
      const Clock::MonoTime now = clock().Monotonic();
      if (now >= until) return status;
      const auto pause = std::min<Clock::MonoTime::duration>(kEndWritePause * attempt, until - now);
      Logger().warn("ending the attempt: {} (trying again)", status.ToString());
      clock().SleepFor(pause);
    }
  }

  // A requeue sends a fresh message, visible after `delay` (the claim deleted the one the unit
  // came with), so a message's receive count grows only with deliveries whose worker crashed
  // before claiming. It goes before the release: a release that lands without its message
  // would leave a QUEUED unit that only the sweeper's empty-queue rule finds again; a message
  // that arrives while the lease still stands is set aside until the lease could lapse.
  Status SendFreshMessage(seconds delay) {
    SendEntry entry;
    entry.body = EncodeUnitMessage(lease.job, lease.unit);
    entry.delay_seconds = static_cast<int>(
        std::clamp<std::int64_t>(delay.count(), kRequeueDelayMin.count(), kMaxMessageDelaySeconds));
    auto sent = deps.sqs->SendMessageBatch(a.stack.queue_url, std::span<const SendEntry>(&entry, 1));
    if (!sent.ok()) return sent.error();
    if (!sent->ok()) return sent->failed.front().error;
    return Status::Ok();
  }

  // The requeue path of Finish: fresh message, then the release (uncounted, or a counted
  // failure).
  UnitOutcome Requeue(const AttemptEnd& attempt_end, bool count_failure, seconds delay,
                      Clock::MonoTime until, UnitOutcome outcome) {
    Status sent = EndWrite([&] { return SendFreshMessage(delay); }, until);
    if (!sent.ok()) {
      Logger().warn(
          "could not send the unit's message again ({}); releasing it anyway: the sweeper "
          "sends messages for queued units once the queue is empty",
          sent.ToString());
    }
    Status released =
        EndWrite([&] { return deps.ledger->ReleaseUnit(attempt_end, count_failure); }, until);
    if (!released.ok()) {
      return LedgerWriteFailed(released, count_failure ? "retry" : "interrupted");
    }
    return outcome;
  }

  UnitOutcome Finish(End end, const std::optional<ProcessExit>& exit, std::string error,
                     const Status& synced) {
    AttemptEnd attempt_end;
    attempt_end.lease = lease;
    if (exit && end == End::kExited) attempt_end.exit_code = exit->ShellStatus();

    // A drain writes its end only before D: after it the instance may be gone mid-write, and
    // a lease left to run out is an end every other worker understands (a takeover).
    const std::optional<DrainTimes> drain = DrainTimesNow();
    // Every end write is over before the unit's fence (the lease as last confirmed, less the
    // skew margin) and, draining, before D: past either, the write could land after another
    // worker took the unit over, or after the instance is gone.
    Clock::MonoTime until = keeper->FenceTime();
    if (drain) until = std::min(until, drain->deadline);
    if (clock().Monotonic() >= until) {
      Logger().warn(
          "{}: no time left to record the end of the attempt; leaving its lease to run out",
          drain ? "drain" : "lease");
      return UnitOutcome::kAbandoned;
    }
    auto finish = [&](UnitState to) {
      return EndWrite([&] { return deps.ledger->FinishUnit(attempt_end, to); }, until);
    };

    if (end == End::kCancelled) {
      attempt_end.reason = "cancelled";
      attempt_end.error = "cancelled";
      if (Status s = finish(UnitState::kCancelled); !s.ok()) {
        return LedgerWriteFailed(s, "cancelled");
      }
      return UnitOutcome::kCancelled;
    }
    // An interruption, or a finished command whose outputs could not all reach S3: not the
    // command's fault, so release uncounted and let a worker run it again.
    if (end == End::kInterrupted || (end == End::kExited && !error.size() && !synced.ok())) {
      attempt_end.reason = "interrupted";
      attempt_end.error =
          end == End::kInterrupted
              ? (drain ? "agent draining: " + std::string(ToString(deps.drain->StartedBy()))
                       : std::string("agent stopped"))
              : "final sync failed: " + synced.ToString();
      // Draining, this worker goes away: another one may resume the unit at once.
      const seconds delay = end == End::kInterrupted || drain ? seconds(0) : RetryBackoff(1);
      return Requeue(attempt_end, /*count_failure=*/false, delay, until,
                     UnitOutcome::kInterrupted);
    }

    const bool timeout = end == End::kTimedOut;
    if (timeout) error = "timed out after " + std::to_string(a.job.timeout_s) + "s";
    std::optional<int> code = attempt_end.exit_code;
    Verdict verdict = DecideAfterExit(a.job.retry, a.unit.failures, code, timeout);
    switch (verdict) {
      case Verdict::kSucceed: {
        attempt_end.reason = "succeeded";
        if (Status s = finish(UnitState::kSucceeded); !s.ok()) {
          return LedgerWriteFailed(s, "succeeded");
        }
        return UnitOutcome::kSucceeded;
      }
      case Verdict::kRetry: {
        attempt_end.reason = timeout ? "timeout" : "failed";
        attempt_end.error = error;
        return Requeue(attempt_end, /*count_failure=*/true, RetryBackoff(a.unit.failures + 1),
                       until, UnitOutcome::kRetrying);
      }
      case Verdict::kFail: {
        attempt_end.reason = timeout ? "timeout" : "failed";
        attempt_end.error = error;
        if (Status s = finish(UnitState::kFailed); !s.ok()) {
          return LedgerWriteFailed(s, "failed");
        }
        return UnitOutcome::kFailed;
      }
    }
    return UnitOutcome::kAbandoned;
  }

  void RemoveDirectory() {
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) Logger().warn("could not remove {}: {}", dir.string(), ec.message());
    fs::remove(dir.parent_path(), ec);  // the job's directory, once empty
  }

  UnitOutcome Run() {
    LogContext context(lease.job, lease.unit, lease.attempt);
    Logger().info("attempt {} started in slot {} ({} rows)", lease.attempt, a.slot,
                  a.unit.spec.rows.size());
    keeper->Start();
    next_sync = clock().Monotonic() + settings.sync_interval;

    std::optional<ProcessExit> exit;
    std::string error;
    End end = End::kNotStarted;
    if (Status prepared = PrepareDirectories(); !prepared.ok()) {
      error = "could not prepare the unit's directories: " + prepared.ToString();
    } else {
      MakePeriodicSyncers();
      Status restored = lease.attempt > 1 ? RestoreCheckpoint() : Status::Ok();
      restore_complete = restored.ok();
      if (!restored.ok()) {
        error = "could not restore the checkpoint: " + restored.ToString();
        if (Interrupted()) end = InterruptionEnd();
      } else {
        end = RunRows(exit, error);
      }
    }
    if (lost) end = End::kLost;
    if (end != End::kLost && end != End::kExited && end != End::kNotStarted) {
      end = InterruptionEnd();
    }
    AwaitPeriodic();
    if (end == End::kLost || lost) {
      keeper->Stop();
      RemoveDirectory();
      return LostOrFenced();
    }
    if (end == End::kNotStarted && exit == std::nullopt && error.empty()) error = "not started";

    // The final writes, each under a lease confirmed just before.
    if (!ConfirmLease()) {
      keeper->Stop();
      UnitOutcome outcome = lost ? LostOrFenced() : UnitOutcome::kAbandoned;
      if (!lost)
        Logger().error("could not confirm the lease before the final sync; leaving the unit");
      RemoveDirectory();
      return outcome;
    }
    Status synced = output_sync ? FinalSync() : Status::Ok();
    // The keeper renews through the final sync; the end writes then run against the fence its
    // last renewal set (a renewal racing the unit's own end write would find the unit gone).
    keeper->Stop();
    if (lost) {
      RemoveDirectory();
      return LostOrFenced();
    }
    if (!synced.ok()) Logger().warn("final sync failed: {}", synced.ToString());
    // A not-started attempt is a failure without an exit code.
    End verdict_end = end == End::kNotStarted ? End::kExited : end;
    if (end == End::kNotStarted) exit.reset();
    UnitOutcome outcome =
        Finish(verdict_end, exit, error, end == End::kNotStarted ? Status::Ok() : synced);
    Logger().info("attempt {} ended: {}{}{}", lease.attempt, ToString(outcome),
                  error.empty() ? "" : ": ", error);
    RemoveDirectory();
    return outcome;
  }
};

UnitRunner::UnitRunner(UnitRunnerDeps deps, UnitRunnerSettings settings, UnitAssignment assignment,
                       const StopSource* agent_stop)
    : impl_(std::make_unique<Impl>(std::move(deps), std::move(settings), std::move(assignment),
                                   agent_stop)) {}

UnitRunner::~UnitRunner() = default;

UnitOutcome UnitRunner::Run() { return impl_->Run(); }

}  // namespace spotgrid::agent
