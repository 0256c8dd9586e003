// An in-memory UnitLeases with the ledger's rules (docs/ledger.md), for unit tests of the
// agent: a claim takes a QUEUED unit or a RUNNING one whose lease expired (the old attempt
// recorded as "lost", one interruption more), every later write is conditional on state,
// attempt and owner and fails with IsConditionFailed() changing nothing, FinishUnit counts
// each unit once in its job's counters. Leases expire by the Clock given at construction
// (a FakeClock in tests) with the ledger's whole-second rule. Beyond the interface, a test
// sets up jobs and units, inspects and tampers with them, counts calls per operation and
// injects failures.
//
// Thread-safety: every method is safe to call from any number of threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "spotgrid/core/clock.h"
#include "spotgrid/ledger/unit_leases.h"

namespace spotgrid::testing {

class FakeUnitLeases final : public UnitLeases {
 public:
  enum class Op {
    kGetStack,
    kGetJob,
    kClaimUnit,
    kRenewLease,
    kReleaseUnit,
    kFinishUnit,
    kFlushIntents,
    kPutWorker,
    kGetUnit,
    kListActiveJobs,
    kListUnitsInState,
    kMarkSwept,
    kFailPoisoned,
  };

  explicit FakeUnitLeases(Clock& clock);

  // --- UnitLeases ----------------------------------------------------------------------
  Result<std::optional<StackInfo>> GetStack() override;
  Result<std::optional<JobRecord>> GetJob(const std::string& job) override;
  Result<ClaimResult> ClaimUnit(const ClaimRequest& request) override;
  Result<RenewResult> RenewLease(const LeaseRef& lease, std::chrono::seconds duration,
                                 const std::optional<std::string>& progress) override;
  Status ReleaseUnit(const AttemptEnd& end, bool count_failure) override;
  Status FinishUnit(const AttemptEnd& end, UnitState to) override;
  Status FlushIntents(const std::string& job, const std::string& writer) override;
  Status PutWorker(const WorkerRecord& worker) override;
  Result<std::optional<UnitRecord>> GetUnit(const std::string& job,
                                            const std::string& unit) override;
  Result<std::vector<JobRecord>> ListActiveJobs() override;
  // One page per call, oldest first (by state_since, then unit id, as the by_state index).
  Status ListUnitsInState(
      const std::string& job, UnitState state, std::optional<Clock::WallTime> entered_before,
      const std::function<bool(const std::vector<UnitRecord>&)>& on_page) override;
  Result<bool> MarkSwept(const UnitRecord& seen, std::chrono::seconds resend_after) override;
  Status FailPoisoned(const UnitRecord& seen, const std::string& error) override;
  // The fake counts in one step and leaves no intents: there is never anything to settle.
  Result<RepairReport> RepairJob(const std::string& job) override;

  // --- set-up --------------------------------------------------------------------------
  // The stack GetStack returns (nullopt: a table without a stack item).
  void SetStack(std::optional<StackInfo> stack);
  // GetStack (and every other call) fails with kNotFound, as when the stack's table is gone.
  void SetTableMissing(bool missing);
  // Adds (or replaces) a job with zero counters; its `total` grows with AddUnit.
  void AddJob(const JobSpec& spec);
  // Adds a QUEUED unit with attempt 0 to an existing job; false if there is no such job or
  // the job has a unit with this id already.
  bool AddUnit(const std::string& job, const UnitSpec& unit);
  // A job `job` with `units` QUEUED units "u0", "u1", ..., each one row running
  // "echo <i>" with the parameter i=<i>.
  void AddSimpleJob(const std::string& job, int units, RetryRules retry = {});
  // The job's enqueue state (AddJob makes it DONE).
  void SetEnqueueState(const std::string& job, EnqueueState state);

  // --- inspection ----------------------------------------------------------------------
  std::optional<UnitRecord> Unit(const std::string& job, const std::string& unit) const;
  bool CancelRequested(const std::string& job, const std::string& unit) const;
  // total, succeeded, failed, cancelled as counted; queued and running from the units.
  JobCounts Counts(const std::string& job) const;
  std::optional<WorkerRecord> Worker(const std::string& instance_id) const;
  // Calls of `op` so far (failed ones included).
  int Calls(Op op) const;

  // --- tampering -----------------------------------------------------------------------
  // Replaces a unit's record as a whole (no counting): any state a test needs.
  void SetUnit(const UnitRecord& unit);
  // Moves a RUNNING unit's lease into the past, as if its worker had stopped renewing.
  void ExpireLease(const std::string& job, const std::string& unit);
  void SetCancelRequested(const std::string& job, const std::string& unit, bool requested = true);
  // As Ledger::CancelJob: QUEUED units become CANCELLED (counted), RUNNING ones get
  // cancel_requested. Returns how many were cancelled.
  std::int64_t CancelJob(const std::string& job);
  // The next `times` calls of `op` fail with `error` and change nothing.
  void FailNext(Op op, Error error, int times = 1);

 private:
  struct StoredUnit {
    UnitRecord record;
    bool cancel_requested = false;
    std::optional<Clock::WallTime> swept_at;  // MarkSwept's stamp, and the state it was for
    std::string swept_for;
  };
  struct StoredJob {
    JobRecord record;
    std::map<std::string, StoredUnit> units;
  };

  // Counts the call and returns an injected failure, if one is due. Requires mu_.
  std::optional<Error> Enter(Op op);
  StoredUnit* FindUnit(const std::string& job, const std::string& unit);
  const StoredUnit* FindUnit(const std::string& job, const std::string& unit) const;
  // The unit `lease` names if it is still RUNNING under exactly that lease, else nullptr.
  StoredUnit* Held(const LeaseRef& lease);
  bool LeaseLive(const UnitRecord& unit) const;
  Clock::WallTime LeaseUntil(std::chrono::seconds lease) const;
  void EndAttempt(UnitRecord& unit, const AttemptEnd& end, std::string_view default_reason) const;

  Clock& clock_;
  mutable std::mutex mu_;
  std::optional<StackInfo> stack_;               // guarded by mu_
  bool table_missing_ = false;                   // guarded by mu_
  std::map<std::string, StoredJob> jobs_;        // guarded by mu_
  std::map<std::string, WorkerRecord> workers_;  // guarded by mu_
  std::map<Op, int> calls_;                      // guarded by mu_
  std::map<Op, std::vector<Error>> failures_;    // guarded by mu_
};

}  // namespace spotgrid::testing
