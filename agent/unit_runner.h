// UnitRunner: one claimed unit, run in one slot from start to the end of its attempt.
//
//   fresh directories <work_dir>/slots/<slot>/<job>/<unit>/{scratch,output,checkpoint,logs}
//   -> restore the checkpoint from S3 (attempt > 1)
//   -> run the unit's rows in order, each as its own UnitProcess (a failing row ends the run)
//   -> heartbeat (message visibility + lease + progress) and periodic sync while they run
//   -> final sync -> FinishUnit / ReleaseUnit -> delete the message / make it visible later
//
// The runner writes to S3 only under a lease it has just confirmed (a RenewLease before every
// sync, unless the claim or a renewal sent less than half a heartbeat ago confirmed it), and once
// the ledger says the lease is gone it kills the process group and writes nothing more anywhere:
// the unit belongs to a newer attempt.
//
// A drain (the agent's stop source raised, its DrainPlan set) sends the checkpoint signal to the
// running row's process group at once, waits for it until G by the Clock and SIGKILLs it
// then; a last row that exits 0 within that grace finishes normally. The final sync goes
// checkpoint first, then outputs, then logs, cut off at R; the release (interrupted, not
// counted; message visible at once) happens only before D, else nothing is written and the
// lease runs out (drain_plan.h).
//
// Transfers (checkpoint restore, syncs) run on a helper thread while the slot thread keeps
// heartbeating, so a sync longer than the lease never loses it. The slot thread waits on the
// process (or the transfer) in slices of at most `poll_slice`, then looks at the clock and the
// stop flag: a stop is noticed within one slice; time decisions (heartbeat, sync, timeout)
// are made on the Clock, so tests drive them with a FakeClock.
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
  std::string receipt_handle;
  // When the claim was sent (by the Clock): the lease is known to be ours from then on until
  // it runs out. The epoch (default) means unknown.
  Clock::MonoTime claimed_at{};
};

// How the attempt ended, from the agent's side.
enum class UnitOutcome {
  kSucceeded,    // SUCCEEDED, message deleted
  kRetrying,     // released as a counted failure; message comes back after RetryBackoff
  kFailed,       // FAILED, message deleted
  kCancelled,    // CANCELLED at the controller's request, message deleted
  kInterrupted,  // agent stopping: released uncounted, message visible again at once
  kLeaseLost,    // another worker holds the unit now: killed, nothing written
  kAbandoned,    // the ledger could not be reached to end the attempt: nothing written; the
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
