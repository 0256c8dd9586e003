// What an agent needs from the ledger: read the stack and job, claim a unit under a lease,
// keep the lease alive, and end the attempt, plus its worker heartbeat item. The agent
// depends on this interface alone, so its loop is unit-tested against an in-memory fake
// (tests/support/fake_unit_leases.h); the Ledger over DynamoDB implements it.
//
// A lease is (job, unit, owner, attempt). Every write below is conditional on the unit still
// being RUNNING under exactly that lease, so a worker that lost its lease (another worker took
// the unit over after the lease expired, or the controller cancelled it) fails with
// IsConditionFailed() and changes nothing: a stale worker can never overwrite a newer attempt.
//
// Thread-safety: implementations are safe to call from any number of threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spotgrid/core/status.h"
#include "spotgrid/ledger/types.h"

namespace spotgrid {

// The most of a unit's progress text (and of an attempt's error text) the ledger keeps.
inline constexpr std::size_t kMaxProgressBytes = 1024;

// `text` as the ledger stores it: bytes that are not UTF-8 become U+FFFD (DynamoDB takes only
// UTF-8), and the result is cut at a character boundary to at most `max_bytes` bytes.
std::string ClipUtf8(std::string_view text, std::size_t max_bytes = kMaxProgressBytes);

struct RepairReport {
  int intents_settled = 0;   // intents whose transition had happened: count kept
  int intents_reverted = 0;  // intents whose transition never happened: count undone
  int intents_pending = 0;   // intents whose writer may still be alive: left alone
};

struct LeaseRef {
  std::string job;
  std::string unit;
  std::string owner;  // "<instance>/<slot>"
  std::int64_t attempt = 0;
};

struct ClaimRequest {
  std::string job;
  std::string unit;
  std::string owner;             // "<instance>/<slot>"
  std::chrono::seconds lease{};  // lease_until = now + lease
};

enum class ClaimOutcome {
  kClaimed,        // the unit is ours: RUNNING, attempt + 1, owner = us, `unit` holds it
  kFinished,       // SUCCEEDED, FAILED or CANCELLED: the message is spent, delete it
  kHeldElsewhere,  // RUNNING under another worker's live lease: leave the message alone
  kMissing,        // no such unit (or job): not ours to run; leave it to the dead-letter queue
};

struct ClaimResult {
  ClaimOutcome outcome = ClaimOutcome::kMissing;
  UnitRecord unit;         // the unit after the claim (kClaimed), or as found otherwise
  bool took_over = false;  // kClaimed from RUNNING with an expired lease: the old attempt
                           // is recorded as "lost" and counts as an interruption
};

struct RenewResult {
  bool cancel_requested = false;  // the controller asked this unit to stop
};

// How an attempt ended, as the agent records it on the unit and in attempts[attempt - 1].
struct AttemptEnd {
  LeaseRef lease;
  std::optional<int> exit_code;
  std::string reason;  // succeeded | failed | timeout | interrupted | cancelled
  std::string error;   // short human text, e.g. "exit code 3" or "timed out after 10s"
};

class UnitLeases {
 public:
  virtual ~UnitLeases() = default;

  // nullopt when the table exists but holds no stack item; kNotFound when no table.
  virtual Result<std::optional<StackInfo>> GetStack() = 0;
  virtual Result<std::optional<JobRecord>> GetJob(const std::string& job) = 0;

  // QUEUED, or RUNNING with lease_until in the past, becomes RUNNING with attempt + 1,
  // owner, lease_until, heartbeat_at, started_at, and a new attempts[] entry
  // {n, owner, started_at}; one conditional write that also returns the unit (rows included).
  // A live lease is kHeldElsewhere even when the caller holds it (a duplicate delivery). A
  // takeover marks the old attempt "lost", adds one interruption and keeps a pending
  // cancel_requested, which the new owner then learns from its first RenewLease.
  virtual Result<ClaimResult> ClaimUnit(const ClaimRequest& request) = 0;

  // Extends lease_until to now + `lease`, stamps heartbeat_at and, when given, `progress`
  // (ClipUtf8: at most 1 KiB). IsConditionFailed() when the lease is no longer ours. A lease
  // that expired is still renewed as long as nobody took the unit over.
  virtual Result<RenewResult> RenewLease(const LeaseRef& lease, std::chrono::seconds duration,
                                         const std::optional<std::string>& progress) = 0;

  // RUNNING -> QUEUED, uncounted: a failure with attempts left (`count_failure`: failures + 1)
  // or an interruption (interruptions + 1). Owner and lease are removed; attempts[attempt - 1]
  // gets finished_at, exit_code, reason and error.
  virtual Status ReleaseUnit(const AttemptEnd& end, bool count_failure) = 0;

  // RUNNING -> SUCCEEDED | FAILED | CANCELLED, counted exactly once (docs/ledger.md), with
  // finished_at, exit_code, error and attempts[attempt - 1] filled in; a FAILED end also adds
  // one to failures.
  virtual Status FinishUnit(const AttemptEnd& end, UnitState to) = 0;

  // Removes the intent `writer`'s last counted transition left for piggybacking.
  virtual Status FlushIntents(const std::string& job, const std::string& writer) = 0;

  virtual Status PutWorker(const WorkerRecord& worker) = 0;

  // --- what the sweeper needs (spotgrid/ledger/sweeper.h, docs/ledger.md "Messages and the
  // sweeper") ----------------------------------------------------------------------------
  // The unit as stored (rows included); nullopt when the job or the unit does not exist.
  virtual Result<std::optional<UnitRecord>> GetUnit(const std::string& job,
                                                    const std::string& unit) = 0;

  // Jobs that may still need a message: the enqueue is not DONE, or the counters say units
  // remain (succeeded + failed + cancelled < total). Read from the JOBS partition of by_state.
  virtual Result<std::vector<JobRecord>> ListActiveJobs() = 0;

  // The units of `job` in `state` that entered it before `entered_before` (all of them when
  // nullopt), oldest first, page by page from the by_state index (eventually consistent: a
  // unit may be listed just after it moved on). Rows are not read. The callback returns false
  // to stop.
  virtual Status ListUnitsInState(
      const std::string& job, UnitState state, std::optional<Clock::WallTime> entered_before,
      const std::function<bool(const std::vector<UnitRecord>&)>& on_page) = 0;

  // Stamps `swept_at = now` on a unit about to get a fresh message, so that sweepers racing
  // each other send at most one per unit per `resend_after`. One conditional write: it lands
  // only while the unit is exactly as `seen` (state, attempt, state_since and, when RUNNING,
  // lease_until) and no sweeper stamped this same state of the unit less than `resend_after`
  // ago. true: the caller won and sends the message; false: it lost (the unit moved, or
  // another sweeper has it) and sends nothing.
  virtual Result<bool> MarkSwept(const UnitRecord& seen, std::chrono::seconds resend_after) = 0;

  // QUEUED, or RUNNING under `seen`'s attempt and owner, -> FAILED because the unit's message
  // reached the dead-letter queue: counted exactly once (docs/ledger.md) and kept with
  // `error` (ClipUtf8) as the unit's error; from RUNNING the attempt's entry is closed with
  // reason "poison". The unit's failures are not counted up: no attempt of the command failed.
  // IsConditionFailed() (nothing changed) when the unit is no longer as `seen` (state and
  // attempt). The lease is not part of the condition: the caller judges it lapsed, and the
  // ledger's counted transition names state, attempt and owner only.
  virtual Status FailPoisoned(const UnitRecord& seen, const std::string& error) = 0;

  // Settles the counting intents of `job` whose writers died between the two writes
  // (docs/ledger.md): kept when the unit carries the transition, reverted once the writer's
  // lease has lapsed (or the controller's grace passed), left alone otherwise.
  virtual Result<RepairReport> RepairJob(const std::string& job) = 0;
};

}  // namespace spotgrid
