#include "support/fake_unit_leases.h"

#include <algorithm>
#include <cctype>
#include <tuple>

namespace spotgrid::testing {
namespace {

Error ConditionFailed(const std::string& operation, const std::string& message) {
  Error error;
  error.category = ErrorCategory::kConditionFailed;
  error.service = "DynamoDB";
  error.operation = operation;
  error.code = "ConditionalCheckFailedException";
  error.message = message;
  return error;
}

Error TableMissing(const std::string& operation) {
  Error error;
  error.category = ErrorCategory::kNotFound;
  error.service = "DynamoDB";
  error.operation = operation;
  error.code = "ResourceNotFoundException";
  error.message = "Requested resource not found";
  return error;
}

// The ledger stores times to the millisecond.
Clock::WallTime Millis(Clock::WallTime t) {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(t);
}

std::string LowerCase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

const char* OpName(FakeUnitLeases::Op op) {
  switch (op) {
    case FakeUnitLeases::Op::kGetStack:
      return "GetStack";
    case FakeUnitLeases::Op::kGetJob:
      return "GetJob";
    case FakeUnitLeases::Op::kClaimUnit:
      return "ClaimUnit";
    case FakeUnitLeases::Op::kRenewLease:
      return "RenewLease";
    case FakeUnitLeases::Op::kReleaseUnit:
      return "ReleaseUnit";
    case FakeUnitLeases::Op::kFinishUnit:
      return "FinishUnit";
    case FakeUnitLeases::Op::kFlushIntents:
      return "FlushIntents";
    case FakeUnitLeases::Op::kPutWorker:
      return "PutWorker";
    case FakeUnitLeases::Op::kGetUnit:
      return "GetUnit";
    case FakeUnitLeases::Op::kListActiveJobs:
      return "ListActiveJobs";
    case FakeUnitLeases::Op::kListUnitsInState:
      return "ListUnitsInState";
    case FakeUnitLeases::Op::kMarkSwept:
      return "MarkSwept";
    case FakeUnitLeases::Op::kFailPoisoned:
      return "FailPoisoned";
  }
  return "?";
}

}  // namespace

FakeUnitLeases::FakeUnitLeases(Clock& clock) : clock_(clock) {}

std::optional<Error> FakeUnitLeases::Enter(Op op) {
  ++calls_[op];
  if (table_missing_) return TableMissing(OpName(op));
  auto it = failures_.find(op);
  if (it == failures_.end() || it->second.empty()) return std::nullopt;
  Error error = it->second.front();
  it->second.erase(it->second.begin());
  return error;
}

FakeUnitLeases::StoredUnit* FakeUnitLeases::FindUnit(const std::string& job,
                                                     const std::string& unit) {
  auto j = jobs_.find(job);
  if (j == jobs_.end()) return nullptr;
  auto u = j->second.units.find(unit);
  return u == j->second.units.end() ? nullptr : &u->second;
}

const FakeUnitLeases::StoredUnit* FakeUnitLeases::FindUnit(const std::string& job,
                                                           const std::string& unit) const {
  return const_cast<FakeUnitLeases*>(this)->FindUnit(job, unit);
}

FakeUnitLeases::StoredUnit* FakeUnitLeases::Held(const LeaseRef& lease) {
  StoredUnit* unit = FindUnit(lease.job, lease.unit);
  if (unit == nullptr) return nullptr;
  const UnitRecord& r = unit->record;
  if (r.state != UnitState::kRunning || r.attempt != lease.attempt || r.owner != lease.owner) {
    return nullptr;
  }
  return unit;
}

// As the DynamoDB ledger: lease_until is whole epoch seconds, live through its last second.
bool FakeUnitLeases::LeaseLive(const UnitRecord& unit) const {
  if (!unit.lease_until) return false;
  return *unit.lease_until >= std::chrono::time_point_cast<std::chrono::seconds>(clock_.Now());
}

Clock::WallTime FakeUnitLeases::LeaseUntil(std::chrono::seconds lease) const {
  return std::chrono::time_point_cast<std::chrono::seconds>(clock_.Now() + lease);
}

void FakeUnitLeases::EndAttempt(UnitRecord& unit, const AttemptEnd& end,
                                std::string_view default_reason) const {
  while (unit.attempts.size() < static_cast<std::size_t>(end.lease.attempt)) {
    AttemptRecord filler;
    filler.n = static_cast<std::int64_t>(unit.attempts.size()) + 1;
    unit.attempts.push_back(filler);
  }
  AttemptRecord& attempt = unit.attempts[static_cast<std::size_t>(end.lease.attempt - 1)];
  attempt.finished_at = Millis(clock_.Now());
  attempt.exit_code = end.exit_code;
  attempt.reason = end.reason.empty() ? std::string(default_reason) : end.reason;
  attempt.error = ClipUtf8(end.error);
}

Result<std::optional<StackInfo>> FakeUnitLeases::GetStack() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kGetStack)) return *error;
  return stack_;
}

Result<std::optional<JobRecord>> FakeUnitLeases::GetJob(const std::string& job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kGetJob)) return *error;
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(it->second.record);
}

Result<ClaimResult> FakeUnitLeases::ClaimUnit(const ClaimRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kClaimUnit)) return *error;
  if (request.job.empty() || request.unit.empty() || request.owner.empty() ||
      request.lease.count() <= 0) {
    return Error::InvalidInput("ClaimUnit needs a job, a unit, an owner and a positive lease");
  }
  StoredUnit* unit = FindUnit(request.job, request.unit);
  if (unit == nullptr) return ClaimResult{ClaimOutcome::kMissing, UnitRecord{}, false};
  UnitRecord& r = unit->record;
  if (IsTerminal(r.state)) return ClaimResult{ClaimOutcome::kFinished, r, false};
  bool took_over = false;
  const Clock::WallTime now = Millis(clock_.Now());
  if (r.state == UnitState::kRunning) {
    if (LeaseLive(r)) return ClaimResult{ClaimOutcome::kHeldElsewhere, r, false};
    took_over = true;
    r.attempts.resize(static_cast<std::size_t>(std::max<std::int64_t>(0, r.attempt)));
    for (std::size_t i = 0; i < r.attempts.size(); ++i) {
      if (r.attempts[i].n == 0) r.attempts[i].n = static_cast<std::int64_t>(i) + 1;
    }
    if (!r.attempts.empty()) {
      r.attempts.back().reason = "lost";
      r.attempts.back().error = "lease expired; taken over by " + request.owner;
    }
    ++r.interruptions;
  } else {
    unit->cancel_requested = false;
  }
  r.state = UnitState::kRunning;
  r.state_since = now;
  r.attempt += 1;
  r.owner = request.owner;
  r.lease_until = LeaseUntil(request.lease);
  r.heartbeat_at = now;
  r.started_at = now;
  r.finished_at.reset();
  r.exit_code.reset();
  r.error.clear();
  AttemptRecord entry;
  entry.n = r.attempt;
  entry.owner = request.owner;
  entry.started_at = now;
  r.attempts.push_back(entry);
  return ClaimResult{ClaimOutcome::kClaimed, r, took_over};
}

Result<RenewResult> FakeUnitLeases::RenewLease(const LeaseRef& lease, std::chrono::seconds duration,
                                               const std::optional<std::string>& progress) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kRenewLease)) return *error;
  StoredUnit* unit = Held(lease);
  if (unit == nullptr) {
    return ConditionFailed("UpdateItem", "unit " + lease.unit + " is not RUNNING under attempt " +
                                             std::to_string(lease.attempt) + " of " + lease.owner);
  }
  unit->record.lease_until = LeaseUntil(duration);
  unit->record.heartbeat_at = Millis(clock_.Now());
  if (progress) unit->record.progress = ClipUtf8(*progress);
  return RenewResult{unit->cancel_requested};
}

Status FakeUnitLeases::ReleaseUnit(const AttemptEnd& end, bool count_failure) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kReleaseUnit)) return *error;
  if (end.lease.attempt < 1) return Error::InvalidInput("ReleaseUnit needs the lease's attempt");
  StoredUnit* unit = Held(end.lease);
  if (unit == nullptr) {
    return ConditionFailed("UpdateItem",
                           "unit " + end.lease.unit + " is not held by " + end.lease.owner);
  }
  UnitRecord& r = unit->record;
  EndAttempt(r, end, count_failure ? "failed" : "interrupted");
  r.state = UnitState::kQueued;
  r.state_since = Millis(clock_.Now());
  r.owner.clear();
  r.lease_until.reset();
  unit->cancel_requested = false;
  if (count_failure) {
    ++r.failures;
  } else {
    ++r.interruptions;
  }
  return Status::Ok();
}

Status FakeUnitLeases::FinishUnit(const AttemptEnd& end, UnitState to) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kFinishUnit)) return *error;
  if (!IsTerminal(to)) {
    return Error::InvalidInput("FinishUnit ends in SUCCEEDED, FAILED or CANCELLED, not " +
                               std::string(ToString(to)));
  }
  if (end.lease.attempt < 1) return Error::InvalidInput("FinishUnit needs the lease's attempt");
  StoredUnit* unit = Held(end.lease);
  if (unit == nullptr) {
    return ConditionFailed("UpdateItem",
                           "unit " + end.lease.unit + " is not held by " + end.lease.owner);
  }
  UnitRecord& r = unit->record;
  EndAttempt(r, end, LowerCase(ToString(to)));
  const Clock::WallTime now = Millis(clock_.Now());
  r.state = to;
  r.state_since = now;
  r.finished_at = now;
  if (end.exit_code) r.exit_code = end.exit_code;
  r.error = ClipUtf8(end.error);
  r.lease_until.reset();
  unit->cancel_requested = false;
  JobRecord& job = jobs_[end.lease.job].record;
  switch (to) {
    case UnitState::kSucceeded:
      ++job.succeeded;
      break;
    case UnitState::kFailed:
      ++job.failed;
      ++r.failures;
      break;
    default:
      ++job.cancelled;
      break;
  }
  return Status::Ok();
}

Status FakeUnitLeases::FlushIntents(const std::string&, const std::string&) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kFlushIntents)) return *error;
  return Status::Ok();  // counting here is a single step: nothing is ever left over
}

Status FakeUnitLeases::PutWorker(const WorkerRecord& worker) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kPutWorker)) return *error;
  workers_[worker.instance_id] = worker;
  return Status::Ok();
}

Result<std::optional<UnitRecord>> FakeUnitLeases::GetUnit(const std::string& job,
                                                         const std::string& unit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kGetUnit)) return *error;
  const StoredUnit* stored = FindUnit(job, unit);
  if (stored == nullptr) return std::optional<UnitRecord>();
  return std::optional<UnitRecord>(stored->record);
}

Result<RepairReport> FakeUnitLeases::RepairJob(const std::string&) { return RepairReport{}; }

Result<std::vector<JobRecord>> FakeUnitLeases::ListActiveJobs() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kListActiveJobs)) return *error;
  std::vector<JobRecord> active;
  for (const auto& [id, job] : jobs_) {
    if (IsActive(job.record)) active.push_back(job.record);
  }
  return active;
}

Status FakeUnitLeases::ListUnitsInState(
    const std::string& job, UnitState state, std::optional<Clock::WallTime> entered_before,
    const std::function<bool(const std::vector<UnitRecord>&)>& on_page) {
  std::vector<UnitRecord> units;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto error = Enter(Op::kListUnitsInState)) return *error;
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return Status::Ok();
    for (const auto& [id, unit] : it->second.units) {
      const UnitRecord& r = unit.record;
      if (r.state != state) continue;
      if (entered_before && !(r.state_since < *entered_before)) continue;
      UnitRecord listed = r;
      listed.spec.rows.clear();  // as the ledger: rows are not read
      units.push_back(std::move(listed));
    }
  }
  std::sort(units.begin(), units.end(), [](const UnitRecord& a, const UnitRecord& b) {
    return std::tie(a.state_since, a.spec.id) < std::tie(b.state_since, b.spec.id);
  });
  if (!units.empty()) (void)on_page(units);  // outside the lock: the callback may call back
  return Status::Ok();
}

Result<bool> FakeUnitLeases::MarkSwept(const UnitRecord& seen, std::chrono::seconds resend_after) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto error = Enter(Op::kMarkSwept)) return *error;
  StoredUnit* unit = FindUnit(seen.job, seen.spec.id);
  if (unit == nullptr) return false;
  const UnitRecord& r = unit->record;
  if (r.state != seen.state || r.attempt != seen.attempt ||
      Millis(r.state_since) != Millis(seen.state_since)) {
    return false;
  }
  if (r.state == UnitState::kRunning && r.lease_until != seen.lease_until) return false;
  const Clock::WallTime now = Millis(clock_.Now());
  const std::string swept_for = std::string(ToString(r.state)) + "#" +
                                std::to_string(r.attempt) + "@" +
                                std::to_string(Millis(r.state_since).time_since_epoch().count());
  if (unit->swept_at && !(*unit->swept_at < now - resend_after) && unit->swept_for == swept_for) {
    return false;
  }
  unit->swept_at = now;
  unit->swept_for = swept_for;
  return true;
}

Status FakeUnitLeases::FailPoisoned(const UnitRecord& seen, const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto injected = Enter(Op::kFailPoisoned)) return *injected;
  if (seen.state != UnitState::kQueued && seen.state != UnitState::kRunning) {
    return Error::InvalidInput("FailPoisoned moves a QUEUED or RUNNING unit, not " +
                               std::string(ToString(seen.state)));
  }
  StoredUnit* unit = FindUnit(seen.job, seen.spec.id);
  if (unit == nullptr || unit->record.state != seen.state ||
      unit->record.attempt != seen.attempt ||
      (seen.state == UnitState::kRunning && unit->record.owner != seen.owner)) {
    return ConditionFailed("UpdateItem", "unit " + seen.spec.id + " is no longer " +
                                             std::string(ToString(seen.state)) + " at attempt " +
                                             std::to_string(seen.attempt));
  }
  UnitRecord& r = unit->record;
  const Clock::WallTime now = Millis(clock_.Now());
  if (r.state == UnitState::kRunning && r.attempt >= 1 &&
      r.attempts.size() >= static_cast<std::size_t>(r.attempt)) {
    AttemptRecord& attempt = r.attempts[static_cast<std::size_t>(r.attempt - 1)];
    attempt.finished_at = now;
    attempt.reason = "poison";
    attempt.error = ClipUtf8(error);
  }
  r.state = UnitState::kFailed;
  r.state_since = now;
  r.finished_at = now;
  r.error = ClipUtf8(error);
  r.exit_code.reset();
  r.lease_until.reset();
  unit->cancel_requested = false;
  ++jobs_[seen.job].record.failed;
  return Status::Ok();
}

void FakeUnitLeases::SetEnqueueState(const std::string& job, EnqueueState state) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job);
  if (it != jobs_.end()) it->second.record.enqueue_state = state;
}

void FakeUnitLeases::SetStack(std::optional<StackInfo> stack) {
  std::lock_guard<std::mutex> lock(mu_);
  stack_ = std::move(stack);
}

void FakeUnitLeases::SetTableMissing(bool missing) {
  std::lock_guard<std::mutex> lock(mu_);
  table_missing_ = missing;
}

void FakeUnitLeases::AddJob(const JobSpec& spec) {
  std::lock_guard<std::mutex> lock(mu_);
  StoredJob& job = jobs_[spec.id];
  job.record = JobRecord{};
  job.record.spec = spec;
  job.record.spec.total = static_cast<std::int64_t>(job.units.size());
  job.record.enqueue_state = EnqueueState::kDone;
}

bool FakeUnitLeases::AddUnit(const std::string& job, const UnitSpec& unit) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return false;
  StoredUnit stored;
  stored.record.job = job;
  stored.record.spec = unit;
  stored.record.state = UnitState::kQueued;
  stored.record.created_at = Millis(clock_.Now());
  stored.record.state_since = stored.record.created_at;
  bool added = it->second.units.emplace(unit.id, std::move(stored)).second;
  if (added) {
    ++it->second.record.spec.total;
    it->second.record.sent_through = it->second.record.spec.total;
  }
  return added;
}

void FakeUnitLeases::AddSimpleJob(const std::string& job, int units, RetryRules retry) {
  JobSpec spec;
  spec.id = job;
  spec.command_template = "echo {i}";
  spec.columns = {"i"};
  spec.retry = std::move(retry);
  spec.created_at = Millis(clock_.Now());
  AddJob(spec);
  for (int i = 0; i < units; ++i) {
    UnitSpec unit;
    unit.id = "u" + std::to_string(i);
    GridRow row;
    row.line = i + 2;
    row.command = "echo " + std::to_string(i);
    row.params = {{"i", std::to_string(i)}};
    unit.rows.push_back(row);
    unit.content_sha256 = "sha-" + std::to_string(i);
    AddUnit(job, unit);
  }
}

std::optional<UnitRecord> FakeUnitLeases::Unit(const std::string& job,
                                               const std::string& unit) const {
  std::lock_guard<std::mutex> lock(mu_);
  const StoredUnit* stored = FindUnit(job, unit);
  if (stored == nullptr) return std::nullopt;
  return stored->record;
}

bool FakeUnitLeases::CancelRequested(const std::string& job, const std::string& unit) const {
  std::lock_guard<std::mutex> lock(mu_);
  const StoredUnit* stored = FindUnit(job, unit);
  return stored != nullptr && stored->cancel_requested;
}

JobCounts FakeUnitLeases::Counts(const std::string& job) const {
  std::lock_guard<std::mutex> lock(mu_);
  JobCounts counts;
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return counts;
  const JobRecord& r = it->second.record;
  counts.total = r.spec.total;
  counts.succeeded = r.succeeded;
  counts.failed = r.failed;
  counts.cancelled = r.cancelled;
  for (const auto& [id, unit] : it->second.units) {
    if (unit.record.state == UnitState::kRunning) ++counts.running;
  }
  counts.queued = std::max<std::int64_t>(
      0, counts.total - counts.running - counts.succeeded - counts.failed - counts.cancelled);
  return counts;
}

std::optional<WorkerRecord> FakeUnitLeases::Worker(const std::string& instance_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(instance_id);
  if (it == workers_.end()) return std::nullopt;
  return it->second;
}

int FakeUnitLeases::Calls(Op op) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

void FakeUnitLeases::SetUnit(const UnitRecord& unit) {
  std::lock_guard<std::mutex> lock(mu_);
  StoredUnit& stored = jobs_[unit.job].units[unit.spec.id];
  stored.record = unit;
}

void FakeUnitLeases::ExpireLease(const std::string& job, const std::string& unit) {
  std::lock_guard<std::mutex> lock(mu_);
  StoredUnit* stored = FindUnit(job, unit);
  if (stored == nullptr || stored->record.state != UnitState::kRunning) return;
  stored->record.lease_until =
      std::chrono::time_point_cast<std::chrono::seconds>(clock_.Now()) - std::chrono::seconds(1);
}

void FakeUnitLeases::SetCancelRequested(const std::string& job, const std::string& unit,
                                        bool requested) {
  std::lock_guard<std::mutex> lock(mu_);
  if (StoredUnit* stored = FindUnit(job, unit)) stored->cancel_requested = requested;
}

std::int64_t FakeUnitLeases::CancelJob(const std::string& job) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return 0;
  std::int64_t cancelled = 0;
  const Clock::WallTime now = Millis(clock_.Now());
  for (auto& [id, unit] : it->second.units) {
    if (unit.record.state == UnitState::kRunning) {
      unit.cancel_requested = true;
    } else if (unit.record.state == UnitState::kQueued) {
      unit.record.state = UnitState::kCancelled;
      unit.record.state_since = now;
      unit.record.finished_at = now;
      ++it->second.record.cancelled;
      ++cancelled;
    }
  }
  return cancelled;
}

void FakeUnitLeases::FailNext(Op op, Error error, int times) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < times; ++i) failures_[op].push_back(error);
}

}  // namespace spotgrid::testing
