// The ledger: the stack's DynamoDB table and the only source of truth about jobs and units.
//
// Every state change is a conditional write naming the state and attempt it expects, so a
// stale writer fails with an Error whose IsConditionFailed() is true and changes nothing.
// Counted transitions follow the two-write intent protocol of docs/ledger.md, so a unit is
// counted exactly once even when a writer dies between the writes.
//
// Thread-safety: implementations are safe to call from any number of threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "spotgrid/core/status.h"
#include "spotgrid/ledger/types.h"
#include "spotgrid/ledger/unit_leases.h"

namespace spotgrid {

class AwsMulti;
class DynamoDb;

struct PutUnitsProgress {
  std::int64_t written = 0;  // units written so far
};


// What CheckCounts found (docs/ledger.md, "Counters that drifted").
struct CountCheck {
  bool looked = false;                // it compared the counters with the units
  bool transition_in_flight = false;  // a transition's count is in, its unit not yet: no verdict
  bool repaired = false;              // the counters had drifted and were rewritten
  JobCounts before, after;            // stored and recounted, when repaired
};

// One counted transition (docs/ledger.md "Counting exactly once"): a unit moves from `from`
// (with `attempt`, and `owner` when given) to `to`, and the job counters of the states it
// leaves and enters change exactly once, even if the writer dies between the writes.
struct CountedTransitionRequest {
  std::string job;
  std::string unit;
  UnitState from = UnitState::kRunning;
  std::int64_t attempt = 0;
  std::optional<std::string> owner;  // required value of `owner` (transitions out of RUNNING)
  UnitState to = UnitState::kSucceeded;
  std::string writer;  // "<instance>/<slot>" or "controller"
  // More changes to the unit in the same write: "a = :a, #b = :b" (SET) and attribute names
  // to REMOVE; their placeholders go into names/values (prefix them with "x" to stay clear of
  // the ledger's own).
  std::string extra_set;
  std::vector<std::string> extra_remove;
  nlohmann::json names = nlohmann::json::object();
  nlohmann::json values = nlohmann::json::object();
  // Fault injection: stop after this many of the writes (1 = only the intent and count, 2 =
  // also the unit), leaving the ledger exactly as a writer that died there would; this is how
  // crash repair is proven. 0 (always, in product code) runs the protocol to the end.
  int crash_after_writes = 0;
};

// The whole ledger: the controller uses all of it, the agent only its UnitLeases part.
class Ledger : public UnitLeases {
 public:

  // --- stack -------------------------------------------------------------------------
  // Creates the table (and its index) if missing and waits until it is ACTIVE.
  virtual Status EnsureTable(std::chrono::milliseconds timeout) = 0;
  virtual Status PutStack(const StackInfo& stack) = 0;

  // --- jobs --------------------------------------------------------------------------
  // Creates the job item (enqueue_state WRITING); false if a job with this id existed.
  virtual Result<bool> CreateJob(const JobSpec& spec) = 0;
  virtual Result<std::vector<JobRecord>> ListJobs() = 0;
  // Records enqueue progress: messages sent for units [0, sent_through); `done` marks the
  // enqueue complete. Also raises `total` when a rerun added units.
  virtual Status SetEnqueueProgress(const std::string& job, std::int64_t sent_through,
                                    std::int64_t total, bool done) = 0;
  // Live counts: stored counters + the RUNNING partition size; queued derived.
  virtual Result<JobCounts> Counts(const std::string& job) = 0;

  // --- units -------------------------------------------------------------------------
  // unit id -> content_sha256 of every unit of the job (paginated Query, keys + hash only).
  virtual Result<std::map<std::string, std::string>> UnitHashes(const std::string& job) = 0;
  // Writes new QUEUED unit items with BatchWriteItem (several batches in flight, unprocessed
  // items retried). Only for units that do not exist yet: BatchWriteItem overwrites.
  virtual Status PutNewUnits(const std::string& job, const std::vector<UnitSpec>& units,
                             const std::function<void(std::int64_t written)>& on_progress) = 0;
  // PutNewUnits of one BatchWriteItem's worth (at most 25 units, which outlive the call) as a
  // call of `multi`, for a writer that keeps many in flight on one thread; `done` runs there.
  virtual void StartPutNewUnits(AwsMulti& multi, const std::string& job,
                                std::span<const UnitSpec> units,
                                std::function<void(Status)> done) = 0;
  // Replaces a unit's rows while it is QUEUED, FAILED or CANCELLED (enqueue --replace);
  // a RUNNING or SUCCEEDED unit is refused (condition failure).
  virtual Status ReplaceUnit(const std::string& job, const UnitSpec& unit) = 0;
  virtual Result<std::optional<UnitRecord>> GetUnit(const std::string& job,
                                                    const std::string& unit) = 0;
  // Every unit of the job, or only those in `state` (by_state index), page by page; the
  // callback returns false to stop.
  virtual Status ListUnits(const std::string& job, std::optional<UnitState> state,
                           const std::function<bool(const std::vector<UnitRecord>&)>& on_page) = 0;
  // Newest first, at most `limit` (latest failures, running units).
  virtual Result<std::vector<UnitRecord>> RecentInState(const std::string& job, UnitState state,
                                                        int limit) = 0;
  // Units that entered `state` at or after `since` (completion rate).
  virtual Result<std::int64_t> CountEnteredSince(const std::string& job, UnitState state,
                                                 Clock::WallTime since) = 0;

  // --- transitions the controller makes (the agent's are in UnitLeases) -----------------
  // QUEUED -> CANCELLED for every queued unit; RUNNING units get `cancel_requested` so their
  // agent stops them at its next heartbeat. Returns how many were cancelled.
  virtual Result<std::int64_t> CancelJob(const std::string& job) = 0;
  // FAILED | CANCELLED -> QUEUED (failures reset to 0). kConditionFailed if in another state.
  virtual Status RetryUnit(const std::string& job, const std::string& unit) = 0;

  // A counted transition (see CountedTransitionRequest); the agent makes RUNNING ->
  // SUCCEEDED / FAILED / CANCELLED with it. A stale request fails with IsConditionFailed()
  // and leaves counters and unit as they were. A transition between two uncounted states
  // (QUEUED, RUNNING) is a single conditional write.
  virtual Status CountedTransition(const CountedTransitionRequest& request) = 0;

  // --- repair --------------------------------------------------------------------------
  // (RepairJob, which settles intents left by writers that died between the two writes, is
  // in UnitLeases: the agents' sweeper runs it too.)
  // Recounts every state from the unit items and rewrites the counters, fencing every
  // intent first (a transition still in flight is refused): `progress --exact`.
  virtual Result<JobCounts> RecountJob(const std::string& job) = 0;
  // The repair `progress` makes without being asked. When `seen` (from Counts) cannot be
  // right or may hide a drift (few units queued, or none running while some are queued), it
  // compares them with the units; counters that drifted are rewritten, but only if no
  // transition is in flight or starts meanwhile, so no live writer is disturbed.
  virtual Result<CountCheck> CheckCounts(const std::string& job, const JobCounts& seen) = 0;

  // --- workers -------------------------------------------------------------------------
  virtual Result<std::vector<WorkerRecord>> ListWorkers() = 0;
};

struct DynamoLedgerOptions {
  std::string table;          // "spotgrid-<stack>"
  int write_concurrency = 8;  // BatchWriteItem requests in flight
  int scan_segments = 4;      // parallel scan segments for RecountJob
  // How long a controller intent may stay before RepairJob reverts it.
  std::chrono::seconds controller_intent_grace{60};
};

// The ledger over DynamoDB. `clock` stamps times and judges lease expiry.
std::shared_ptr<Ledger> MakeDynamoLedger(std::shared_ptr<DynamoDb> db, DynamoLedgerOptions options,
                                         Clock& clock);

// "spotgrid-<stack>"; stack names are [a-z0-9-], 1..40, starting with a letter.
std::string LedgerTableName(std::string_view stack);
Status ValidateStackName(std::string_view stack);

}  // namespace spotgrid
