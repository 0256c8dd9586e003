// UnitRunner: one claimed unit, run in one slot from start to the end of its attempt.
//
//   fresh directories <work_dir>/slots/<slot>/<job>/<unit>/{scratch,output,checkpoint,logs}
//   -> restore the checkpoint from S3 (attempt > 1)
//   -> run the unit's rows in order, each as its own UnitProcess (a failing row ends the run)
//   -> lease renewals (LeaseKeeper, its own thread) and periodic syncs while they run
//   -> final sync -> FinishUnit, or a fresh message and ReleaseUnit for a requeue
//
// The unit's message was deleted when the agent claimed it: a requeue (retry, interruption)
// sends a fresh one, delayed by the backoff, and a unit whose worker vanished is found by the
// sweeper once its lease lapses.
//
// The runner writes to S3 only under a lease it has just confirmed (a RenewLease before every
// sync, unless the claim or a renewal sent less than half a heartbeat ago confirmed it), and once
// the ledger says the lease is gone it kills the process group and writes nothing more anywhere:
// the unit belongs to a newer attempt. When no renewal lands in time, the unit is killed at the
// fence time (the lease as last confirmed, less a skew margin), before anyone may take it over,
// and again nothing more is written. Every end write is bounded by that fence and, draining, by
// the drain's deadline D, and is tried again while its outcome is unknown.
//
// A drain (the agent's stop source raised, its DrainPlan set) sends the checkpoint signal to the
// running row's process group at once, waits for it until G by the Clock and SIGKILLs it
// then; a last row that exits 0 within that grace finishes normally. The final sync goes
// checkpoint first, then outputs, then logs, cut off at R; a row SIGKILLed at G has no
// checkpoint sync at all (it may have died mid-write: S3 keeps the last good checkpoint). The
// release (interrupted, not counted) happens only before D, else nothing is written and the
// lease runs out (drain_plan.h).
//
// Transfers (checkpoint restore, syncs) run on a helper thread while the slot thread keeps
// watching the process, the clock and the stop flag in slices of at most `poll_slice`: a stop
// is noticed within one slice; time decisions (fence, sync, timeout) are made on the Clock, so
// tests drive them with a FakeClock.
//
// Thread-safety: Run() is called once, on the slot thread. Everything else it needs arrives
// in the constructor; the agent stops it through the StopSource it passed in.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/drain_plan.h"
#include "agent/unit_process.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/ledger/types.h"
#include "spotgrid/ledger/unit_leases.h"
#include "spotgrid/services/s3_client.h"
#include "spotgrid/services/sqs_client.h"

namespace spotgrid::agent {

struct UnitRunnerDeps {
  std::shared_ptr<Sqs> sqs;
  std::shared_ptr<UnitLeases> ledger;
  std::shared_ptr<S3> s3;
  Clock* clock = nullptr;
  // The agent's drain deadline, read whenever the stop source is raised; null: a stop kills
  // after kill_grace and releases without deadlines.
  const DrainPlan* drain = nullptr;
};

// How the agent is configured to run units (from AgentConfig and the start-up checks).
struct UnitRunnerSettings {
  std::filesystem::path work_dir;
  std::chrono::seconds heartbeat{30};
  std::chrono::seconds lease{90};
  std::chrono::seconds sync_interval{300};
  std::chrono::seconds kill_grace{10};
  std::optional<RunAs> run_as;  // set when the agent is root: commands run as this user
  std::string home, user;       // HOME and USER of the commands
  // Longest real-time wait between two looks at the clock and the stop flag.
  std::chrono::milliseconds poll_slice{200};
  int sync_concurrency = 8;
  int checkpoint_signal = 15;  // SIGTERM: what a drain sends the process group
};

// One claimed unit: what the claim returned and where its message is.
struct UnitAssignment {
  StackInfo stack;
  JobSpec job;        // retry rules and timeout
  UnitRecord unit;    // as ClaimUnit returned it: rows, attempt (this one), failures before it
  std::string owner;  // "<instance>/<slot>", the lease owner
  int slot = 0;
  // When the claim was sent (by the Clock): the lease is known to be ours from then on until
  // it runs out. The epoch (default) means unknown.
  Clock::MonoTime claimed_at{};
};

// How the attempt ended, from the agent's side.
enum class UnitOutcome {
  kSucceeded,    // SUCCEEDED
  kRetrying,     // released as a counted failure; a fresh message comes after RetryBackoff
  kFailed,       // FAILED
  kCancelled,    // CANCELLED at the controller's request
  kInterrupted,  // agent stopping: released uncounted, a fresh message visible at once
  kLeaseLost,    // another worker holds the unit now: killed, nothing written
  kAbandoned,    // the ledger could not be reached to renew the lease (the unit was killed at
                 // its fence) or to end the attempt: nothing written; the
                 // lease runs out and another worker takes the unit over
};
std::string_view ToString(UnitOutcome outcome);

// The per-attempt directory of a unit in a slot.
std::filesystem::path UnitDirectory(const std::filesystem::path& work_dir, int slot,
                                    std::string_view job, std::string_view unit);

class UnitRunner {
 public:
  // `agent_stop` (not null) is raised when the agent shuts down.
  UnitRunner(UnitRunnerDeps deps, UnitRunnerSettings settings, UnitAssignment assignment,
             const StopSource* agent_stop);
  ~UnitRunner();
  UnitRunner(const UnitRunner&) = delete;
  UnitRunner& operator=(const UnitRunner&) = delete;

  UnitOutcome Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spotgrid::agent
