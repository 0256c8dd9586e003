// The ledger over DynamoDB (docs/ledger.md).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>

#include "ledger/counted_transition.h"
#include "ledger/item_codec.h"
#include "spotgrid/aws/aws_multi.h"
#include "spotgrid/core/parallel_for.h"
#include "spotgrid/ledger/ledger.h"
#include "spotgrid/services/dynamodb_client.h"

namespace spotgrid {
namespace {

using nlohmann::json;
namespace codec = ledger_codec;
namespace internal = ledger_internal;

// Units per BatchWriteItem call: the client splits them into requests of 25 and
// keeps several in flight; between calls we report progress.
constexpr std::size_t kUnitsPerProgressStep = 1000;
// RecountJob's tries when transitions keep changing the job while it reads the units.
constexpr int kRecountRounds = 5;
// CheckCounts compares the stored counters with the by_state index while at most this many
// units are queued (one page of keys); with more queued and nothing running it only makes
// sure that some unit really is queued (one key), so a large job waiting for workers costs
// one small read per progress, not a count of every unit.
constexpr std::int64_t kQueuedCheckLimit = 1000;

// A job or unit the ledger does not hold.
Error NotFound(std::string message) {
  Error error;
  error.category = ErrorCategory::kNotFound;
  error.service = "DynamoDB";
  error.operation = "GetItem";
  error.message = std::move(message);
  return error;
}

Error ConditionFailed(std::string operation, std::string message) {
  Error error;
  error.category = ErrorCategory::kConditionFailed;
  error.service = "DynamoDB";
  error.operation = std::move(operation);
  error.code = "ConditionalCheckFailedException";
  error.message = std::move(message);
  return error;
}

Error NotUtf8Unit(const std::string& job, const UnitSpec& unit) {
  return Error::InvalidInput("unit " + unit.id + " of job " + job +
                             " holds a string that is not valid UTF-8");
}

// What a BatchPutEncoded of `count` new units means for the writer: every item in, or the
// error (items left unprocessed after the client's retries are throttling).
Status PutOutcome(const BatchWriteResult& result, std::size_t count) {
  if (!result.status.ok()) return result.status;
  if (result.unprocessed.empty()) return Status::Ok();
  Error error;
  error.category = ErrorCategory::kThrottled;
  error.service = "DynamoDB";
  error.operation = "BatchWriteItem";
  error.message = std::to_string(result.unprocessed.size()) + " of " + std::to_string(count) +
                  " unit items were still unprocessed after retrying";
  return error;
}

std::int64_t EpochSeconds(Clock::WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

class DynamoLedger final : public Ledger {
 public:
  DynamoLedger(std::shared_ptr<DynamoDb> db, DynamoLedgerOptions options, Clock& clock)
      : db_(db),
        options_(std::move(options)),
        clock_(clock),
        transitions_(std::move(db), options_.table, clock, options_.controller_intent_grace) {}

  Status EnsureTable(std::chrono::milliseconds timeout) override {
    TableSpec spec;
    spec.name = options_.table;
    spec.partition_key = {"pk", "S"};
    spec.sort_key = KeyAttribute{"sk", "S"};
    spec.global_indexes.push_back(
        {std::string(codec::kByStateIndex), {"gsi1pk", "S"}, KeyAttribute{"gsi1sk", "S"}, "ALL"});
    return db_->EnsureTable(spec, timeout);
  }

  Status PutStack(const StackInfo& stack) override {
    return db_->PutItem(options_.table, codec::EncodeStack(stack)).status;
  }

  Result<std::optional<StackInfo>> GetStack() override {
    auto item = db_->GetItem(options_.table, codec::Key(codec::kStackKey, codec::kStackKey), true);
    if (!item.ok()) return item.error();
    if (!item->has_value()) return std::optional<StackInfo>();
    return std::optional<StackInfo>(codec::DecodeStack(**item));
  }

  Result<bool> CreateJob(const JobSpec& spec) override {
    WriteOptions options;
    options.condition_expression = "attribute_not_exists(pk)";
    WriteResult result = db_->PutItem(options_.table, codec::EncodeJob(spec), options);
    if (result.ok()) return true;
    if (result.error().IsConditionFailed()) return false;
    return result.error();
  }

  Result<std::optional<JobRecord>> GetJob(const std::string& job) override {
    auto item = db_->GetItem(options_.table, codec::JobKey(job), true);
    if (!item.ok()) return item.error();
    if (!item->has_value()) return std::optional<JobRecord>();
    JobRecord record = codec::DecodeJob(**item);
    RememberColumns(job, record.spec.columns);
    return std::optional<JobRecord>(std::move(record));
  }

  Result<std::vector<JobRecord>> ListJobs() override {
    QueryRequest request;
    request.table = options_.table;
    request.index_name = std::string(codec::kByStateIndex);
    request.key_condition_expression = "gsi1pk = :p";
    request.values = {{":p", ddb::S(codec::kJobsGsiPk)}};
    auto items = db_->QueryAll(request);
    if (!items.ok()) return items.error();
    std::vector<JobRecord> jobs;
    for (const json& item : *items) jobs.push_back(codec::DecodeJob(item));
    return jobs;
  }

  Status SetEnqueueProgress(const std::string& job, std::int64_t sent_through, std::int64_t total,
                            bool done) override {
    WriteOptions options;
    options.condition_expression = "attribute_exists(pk)";
    options.names = {{"#t", "total"}};
    options.values = {{":s", ddb::N(sent_through)},
                      {":t", ddb::N(total)},
                      {":e", ddb::S(ToString(done ? EnqueueState::kDone : EnqueueState::kWriting))},
                      {":one", ddb::N(std::int64_t{1})}};
    // `total` is a counter a recount rewrites: the change bumps `seq` like every other.
    return db_
        ->UpdateItem(options_.table, codec::JobKey(job),
                     "SET sent_through = :s, #t = :t, enqueue_state = :e ADD seq :one", options)
        .status;
  }

  Result<JobCounts> Counts(const std::string& job) override {
    auto record = GetJob(job);
    if (!record.ok()) return record.error();
    if (!record->has_value()) {
      return NotFound("no job " + job);
    }
    auto running = CountPartition(codec::StatePk(job, UnitState::kRunning), std::nullopt);
    if (!running.ok()) return running.error();
    const JobRecord& r = **record;
    JobCounts counts;
    counts.total = r.spec.total;
    counts.running = *running;
    counts.succeeded = r.succeeded;
    counts.failed = r.failed;
    counts.cancelled = r.cancelled;
    counts.queued = std::max<std::int64_t>(
        0, counts.total - counts.running - counts.succeeded - counts.failed - counts.cancelled);
    return counts;
  }

  Result<std::map<std::string, std::string>> UnitHashes(const std::string& job) override {
    QueryRequest request = UnitsQuery(job);
    request.projection_expression = "sk, content_sha256";
    std::map<std::string, std::string> hashes;
    Status status = db_->Query(request, [&](Page& page) {
      for (const json& item : page.items) {
        std::string sk = ddb::GetS(item, "sk").value_or("");
        hashes[sk.substr(codec::kUnitSkPrefix.size())] =
            ddb::GetS(item, "content_sha256").value_or("");
      }
      return true;
    });
    if (!status.ok()) return status.error();
    return hashes;
  }

  Status PutNewUnits(const std::string& job, const std::vector<UnitSpec>& units,
                     const std::function<void(std::int64_t written)>& on_progress) override {
    std::int64_t written = 0;
    std::vector<std::string> items;  // reused: each keeps its capacity from step to step
    for (std::size_t begin = 0; begin < units.size(); begin += kUnitsPerProgressStep) {
      std::size_t end = std::min(units.size(), begin + kUnitsPerProgressStep);
      const std::span<const UnitSpec> step(units.data() + begin, end - begin);
      if (Status encoded = EncodeNewUnits(job, step, items); !encoded.ok()) return encoded;
      if (Status put = PutOutcome(db_->BatchPutEncoded(options_.table, items), end - begin);
          !put.ok()) {
        return put;
      }
      written += static_cast<std::int64_t>(end - begin);
      if (on_progress) on_progress(written);
    }
    return Status::Ok();
  }

  void StartPutNewUnits(AwsMulti& multi, const std::string& job, std::span<const UnitSpec> units,
                        std::function<void(Status)> done) override {
    std::vector<std::string> items;
    if (Status encoded = EncodeNewUnits(job, units, items); !encoded.ok()) {
      multi.After(std::chrono::milliseconds(0), [done = std::move(done), encoded] { done(encoded); });
      return;
    }
    const std::size_t count = units.size();
    db_->StartBatchPutEncoded(multi, options_.table, std::move(items),
                              [done = std::move(done), count](BatchWriteResult result) {
                                done(PutOutcome(result, count));
                              });
  }

  // The items of new units as text, for BatchPutEncoded: a JSON tree per unit would cost more
  // than everything else the enqueue does. `items` is reused: each keeps its capacity.
  Status EncodeNewUnits(const std::string& job, std::span<const UnitSpec> units,
                        std::vector<std::string>& items) {
    const std::string now = codec::FormatTime(clock_.Now());
    items.resize(units.size());
    for (std::size_t i = 0; i < units.size(); ++i) {
      items[i].clear();
      if (!codec::AppendNewUnit(items[i], job, units[i], now)) return NotUtf8Unit(job, units[i]);
    }
    return Status::Ok();
  }

  Status ReplaceUnit(const std::string& job, const UnitSpec& unit) override {
    WriteOptions options;
    options.condition_expression = "#st IN (:q, :f, :c)";
    options.names = {{"#st", "state"}, {"#r", "rows"}};
    options.values = {{":q", ddb::S(ToString(UnitState::kQueued))},
                      {":f", ddb::S(ToString(UnitState::kFailed))},
                      {":c", ddb::S(ToString(UnitState::kCancelled))},
                      {":r", codec::EncodeRows(unit.rows)},
                      {":h", ddb::S(unit.content_sha256)}};
    return db_
        ->UpdateItem(options_.table, codec::UnitKey(job, unit.id),
                     "SET #r = :r, content_sha256 = :h", options)
        .status;
  }

  Result<std::optional<UnitRecord>> GetUnit(const std::string& job,
                                            const std::string& unit) override {
    auto item = db_->GetItem(options_.table, codec::UnitKey(job, unit), true);
    if (!item.ok()) return item.error();
    if (!item->has_value()) return std::optional<UnitRecord>();
    return std::optional<UnitRecord>(codec::DecodeUnit(**item, Columns(job)));
  }

  Status ListUnits(const std::string& job, std::optional<UnitState> state,
                   const std::function<bool(const std::vector<UnitRecord>&)>& on_page) override {
    QueryRequest request;
    if (state) {
      request = StateQuery(job, *state);
    } else {
      request = UnitsQuery(job);
    }
    std::vector<std::string> columns = Columns(job);
    return db_->Query(request, [&](Page& page) {
      std::vector<UnitRecord> units;
      units.reserve(page.items.size());
      for (const json& item : page.items) units.push_back(codec::DecodeUnit(item, columns));
      return on_page(units);
    });
  }

  Result<std::vector<UnitRecord>> RecentInState(const std::string& job, UnitState state,
                                                int limit) override {
    std::vector<UnitRecord> units;
    if (limit <= 0) return units;
    QueryRequest request = StateQuery(job, state);
    request.scan_forward = false;
    request.limit = limit;
    std::vector<std::string> columns = Columns(job);
    Status status = db_->Query(request, [&](Page& page) {
      for (const json& item : page.items) {
        if (static_cast<int>(units.size()) >= limit) break;
        units.push_back(codec::DecodeUnit(item, columns));
      }
      return static_cast<int>(units.size()) < limit;
    });
    if (!status.ok()) return status.error();
    return units;
  }

  Result<std::int64_t> CountEnteredSince(const std::string& job, UnitState state,
                                         Clock::WallTime since) override {
    return CountPartition(codec::StatePk(job, state), codec::FormatTime(since));
  }

  Result<std::int64_t> CancelJob(const std::string& job) override {
    // Running units first: their agents stop them; queued units are cancelled
    // here.
    std::vector<json> running;
    {
      QueryRequest request = StateQuery(job, UnitState::kRunning);
      request.projection_expression = "#u, #a";
      request.names = {{"#u", "unit"}, {"#a", "attempt"}};
      auto items = db_->QueryAll(request);
      if (!items.ok()) return items.error();
      running = std::move(*items);
    }
    Status flagged = ParallelForStatus(
        running.size(), options_.write_concurrency, OnError::kRunAll, [&](std::size_t i) -> Status {
          std::string unit = ddb::GetS(running[i], "unit").value_or("");
          WriteOptions options;
          options.condition_expression = "#st = :r";
          options.names = {{"#st", "state"}};
          options.values = {{":r", ddb::S(ToString(UnitState::kRunning))}, {":t", ddb::Bool(true)}};
          WriteResult result = db_->UpdateItem(options_.table, codec::UnitKey(job, unit),
                                               "SET cancel_requested = :t", options);
          if (!result.ok() && !result.error().IsConditionFailed()) return result.status;
          return Status::Ok();
        });
    if (!flagged.ok()) return flagged.error();

    std::vector<json> queued;
    {
      QueryRequest request = StateQuery(job, UnitState::kQueued);
      request.projection_expression = "#u, #a";
      request.names = {{"#u", "unit"}, {"#a", "attempt"}};
      auto items = db_->QueryAll(request);
      if (!items.ok()) return items.error();
      queued = std::move(*items);
    }
    std::atomic<std::int64_t> cancelled{0};
    int lanes = std::max(1, options_.write_concurrency);
    std::size_t per_lane =
        (queued.size() + static_cast<std::size_t>(lanes) - 1) / static_cast<std::size_t>(lanes);
    Status moved = ParallelForStatus(
        static_cast<std::size_t>(lanes), lanes, OnError::kRunAll, [&](std::size_t lane) -> Status {
          std::optional<internal::PendingIntent> pending;
          Status lane_status;
          std::size_t begin = lane * per_lane;
          std::size_t end = std::min(queued.size(), begin + per_lane);
          for (std::size_t i = begin; i < end; ++i) {
            CountedTransitionRequest request;
            request.job = job;
            request.unit = ddb::GetS(queued[i], "unit").value_or("");
            request.from = UnitState::kQueued;
            request.attempt = ddb::GetInt(queued[i], "attempt").value_or(0);
            request.to = UnitState::kCancelled;
            request.writer = "controller";
            request.extra_set = "finished_at = :xf";
            request.values = {{":xf", ddb::S(codec::FormatTime(clock_.Now()))}};
            Status status = transitions_.Run(request, pending);
            if (status.ok()) {
              ++cancelled;
            } else if (!status.error().IsConditionFailed()) {
              lane_status = status;
              break;
            }
          }
          if (pending) {
            Status removed = transitions_.RemoveIntent(job, *pending);
            if (lane_status.ok()) lane_status = removed;
          }
          return lane_status;
        });
    if (!moved.ok()) return moved.error();
    return cancelled.load();
  }

  Status RetryUnit(const std::string& job, const std::string& unit) override {
    auto record = GetUnit(job, unit);
    if (!record.ok()) return record.error();
    if (!record->has_value()) {
      return NotFound("no unit " + unit + " in job " + job);
    }
    UnitState state = (*record)->state;
    if (state != UnitState::kFailed && state != UnitState::kCancelled) {
      return ConditionFailed("UpdateItem", "unit " + unit + " is " + std::string(ToString(state)) +
                                               ", not FAILED or CANCELLED");
    }
    CountedTransitionRequest request;
    request.job = job;
    request.unit = unit;
    request.from = state;
    request.attempt = (*record)->attempt;
    request.to = UnitState::kQueued;
    request.writer = "controller";
    request.extra_set = "failures = :x0";
    request.extra_remove = {"owner", "lease_until", "cancel_requested"};
    request.values = {{":x0", ddb::N(std::int64_t{0})}};
    return CountedTransition(request);
  }

  Status CountedTransition(const CountedTransitionRequest& request) override {
    return transitions_.Run(request);
  }

  Status FlushIntents(const std::string& job, const std::string& writer) override {
    return transitions_.Flush(job, writer);
  }

  Result<RepairReport> RepairJob(const std::string& job) override {
    auto item = db_->GetItem(options_.table, codec::JobKey(job), true);
    if (!item.ok()) return item.error();
    RepairReport report;
    if (!item->has_value()) return report;
    const json* inflight = ddb::Get(**item, "inflight");
    if (inflight == nullptr || !inflight->contains("M")) return report;
    for (auto it = (*inflight)["M"].begin(); it != (*inflight)["M"].end(); ++it) {
      std::string id;
      CountIntent intent = codec::DecodeIntent(it.key(), it.value(), &id);
      auto outcome = transitions_.Settle(job, intent, id, /*force=*/false);
      if (!outcome.ok()) return outcome.error();
      switch (*outcome) {
        case internal::Settled::kKept:
          ++report.intents_settled;
          break;
        case internal::Settled::kReverted:
          ++report.intents_reverted;
          break;
        case internal::Settled::kPending:
          ++report.intents_pending;
          break;
      }
    }
    return report;
  }

  Result<JobCounts> RecountJob(const std::string& job) override {
    // A transition that starts while the units are read changes `seq`, and the counters are
    // written only if it did not: a few tries, then the recount is reported as raced.
    for (int round = 0; round < kRecountRounds; ++round) {
      auto snapshot = ReadJobForRecount(job);
      if (!snapshot.ok()) return snapshot.error();
      // Fence every intent first, so no transition behind one can still happen: then the
      // Query sees each unit's final word and the intents can go.
      for (const auto& [unit, id] : snapshot->intents) {
        auto fenced = transitions_.Fence(job, unit, id);
        if (!fenced.ok()) return fenced.error();
      }
      auto tally = TallyUnits(job);
      if (!tally.ok()) return tally.error();
      auto written = WriteCounts(job, *snapshot, tally->counts, /*remove_intents=*/true);
      if (!written.ok()) return written.error();
      if (*written) return tally->counts;
    }
    return Error(ConditionFailed("UpdateItem", "job " + job +
                                                   " kept changing while it was recounted; "
                                                   "try again"));
  }

  Result<CountCheck> CheckCounts(const std::string& job, const JobCounts& seen) override {
    CountCheck check;
    const bool impossible = seen.succeeded < 0 || seen.failed < 0 || seen.cancelled < 0 ||
                            seen.succeeded + seen.failed + seen.cancelled + seen.running >
                                seen.total;
    // A drift shows when the job nears its end: few units queued (or none, so a job never
    // reads as done while a unit is still queued), or nothing running while units are queued.
    const bool near_the_end = seen.queued <= kQueuedCheckLimit;
    const bool waiting = seen.running == 0;
    if (!impossible && !near_the_end && !waiting) return check;
    if (!impossible) {
      // The by_state index is eventually consistent: a match is good enough, a mismatch is
      // only a reason to read the units themselves.
      const std::optional<std::int64_t> at_most =
          near_the_end ? std::nullopt : std::optional<std::int64_t>(1);
      auto queued = CountPartition(codec::StatePk(job, UnitState::kQueued), std::nullopt, at_most);
      if (!queued.ok()) return queued.error();
      check.looked = true;
      if (near_the_end ? *queued == seen.queued : *queued > 0) return check;
    }
    check.looked = true;
    auto snapshot = ReadJobForRecount(job);
    if (!snapshot.ok()) return snapshot.error();
    auto tally = TallyUnits(job);
    if (!tally.ok()) return tally.error();
    for (const auto& [unit, id] : snapshot->intents) {
      auto carried = tally->last_intent.find(unit);
      if (carried == tally->last_intent.end() || carried->second != id) {
        check.transition_in_flight = true;  // its count is in, its unit not yet: not drift
        return check;
      }
    }
    const JobCounts& counted = tally->counts;
    if (counted.total == snapshot->stored.total &&
        counted.succeeded == snapshot->stored.succeeded &&
        counted.failed == snapshot->stored.failed &&
        counted.cancelled == snapshot->stored.cancelled) {
      return check;
    }
    auto written = WriteCounts(job, *snapshot, counted, /*remove_intents=*/false);
    if (!written.ok()) return written.error();
    check.repaired = *written;
    check.before = snapshot->stored;
    check.after = counted;
    return check;
  }

  Status PutWorker(const WorkerRecord& worker) override {
    return db_->PutItem(options_.table, codec::EncodeWorker(worker)).status;
  }

  Result<std::vector<WorkerRecord>> ListWorkers() override {
    QueryRequest request;
    request.table = options_.table;
    request.key_condition_expression = "pk = :p";
    request.values = {{":p", ddb::S(codec::kWorkerPk)}};
    auto items = db_->QueryAll(request);
    if (!items.ok()) return items.error();
    std::vector<WorkerRecord> workers;
    for (const json& item : *items) workers.push_back(codec::DecodeWorker(item));
    return workers;
  }

  // --- the agent's transitions (UnitLeases) ---------------------------------------------

  Result<ClaimResult> ClaimUnit(const ClaimRequest& request) override {
    if (request.job.empty() || request.unit.empty() || request.owner.empty() ||
        request.lease.count() <= 0) {
      return Error::InvalidInput("ClaimUnit needs a job, a unit, an owner and a positive lease");
    }
    // Most claims find a fresh unit, so the first write guesses QUEUED with attempt 0: one
    // request. A lost guess returns the unit as it is, which says what to try next; a unit
    // that keeps changing under us is being handled by someone else.
    std::optional<json> seen;
    constexpr int kRounds = 4;
    for (int round = 0; round < kRounds; ++round) {
      bool take_over = false;
      std::int64_t expected_attempt = 0;
      if (seen) {
        UnitState state =
            ParseUnitState(ddb::GetS(*seen, "state").value_or("")).value_or(UnitState::kQueued);
        expected_attempt = ddb::GetInt(*seen, "attempt").value_or(0);
        if (IsTerminal(state)) {
          return ClaimResult{ClaimOutcome::kFinished, DecodeSeen(request.job, *seen), false};
        }
        if (state == UnitState::kRunning) {
          if (LeaseLive(*seen, clock_.Now())) {
            return ClaimResult{ClaimOutcome::kHeldElsewhere, DecodeSeen(request.job, *seen), false};
          }
          take_over = true;
        }
      }
      // Random per claim write: the unit keeps it as `last_claim`, so a retry that meets it
      // knows the claim was its own.
      const std::string claim_id = internal::NewRandomId();
      WriteResult result =
          ClaimWrite(request, expected_attempt, take_over ? &*seen : nullptr, claim_id);
      if (result.ok()) {
        return ClaimResult{ClaimOutcome::kClaimed, DecodeSeen(request.job, result.attributes),
                           take_over};
      }
      if (!result.error().IsConditionFailed()) return result.error();
      if (result.current_item) {
        seen = std::move(result.current_item);
      } else {
        auto item = db_->GetItem(options_.table, codec::UnitKey(request.job, request.unit), true);
        if (!item.ok()) return item.error();
        seen = std::move(*item);
      }
      if (!seen || !ddb::GetS(*seen, "state")) {
        return ClaimResult{ClaimOutcome::kMissing, UnitRecord{}, false};
      }
      // A retry after the claim's reply was lost meets the claim itself: it is ours.
      if (ddb::GetS(*seen, "last_claim") == claim_id) {
        return ClaimResult{ClaimOutcome::kClaimed, DecodeSeen(request.job, *seen), take_over};
      }
    }
    return ClaimResult{ClaimOutcome::kHeldElsewhere, DecodeSeen(request.job, *seen), false};
  }

  Result<RenewResult> RenewLease(const LeaseRef& lease, std::chrono::seconds duration,
                                 const std::optional<std::string>& progress) override {
    Clock::WallTime now = clock_.Now();
    WriteOptions options;
    options.condition_expression = "#st = :r AND #at = :att AND #ow = :own";
    options.names = {{"#st", "state"}, {"#at", "attempt"}, {"#ow", "owner"}};
    options.values = {{":r", ddb::S(ToString(UnitState::kRunning))},
                      {":att", ddb::N(lease.attempt)},
                      {":own", ddb::S(lease.owner)},
                      {":lease", ddb::N(EpochSeconds(now + duration))},
                      {":now", ddb::S(codec::FormatTime(now))},
                      {":no", ddb::Bool(false)}};
    // Writing cancel_requested (as itself, or false) makes UPDATED_NEW return it: the
    // controller's request reaches the agent with the renewal, at no extra cost.
    std::string expression =
        "SET lease_until = :lease, heartbeat_at = :now, "
        "cancel_requested = if_not_exists(cancel_requested, :no)";
    if (progress) {
      options.values[":pg"] = ddb::S(ClipUtf8(*progress));
      expression += ", progress = :pg";
    }
    options.return_values = "UPDATED_NEW";
    WriteResult result =
        db_->UpdateItem(options_.table, codec::UnitKey(lease.job, lease.unit), expression, options);
    if (!result.ok()) return result.error();
    RenewResult renewed;
    renewed.cancel_requested = ddb::GetBool(result.attributes, "cancel_requested").value_or(false);
    return renewed;
  }

  Status ReleaseUnit(const AttemptEnd& end, bool count_failure) override {
    if (end.lease.attempt < 1) return Error::InvalidInput("ReleaseUnit needs the lease's attempt");
    CountedTransitionRequest request =
        EndRequest(end, UnitState::kQueued, count_failure ? "failed" : "interrupted");
    const char* counter = count_failure ? "failures" : "interruptions";
    request.names["#xn"] = counter;
    request.values[":x0"] = ddb::N(std::int64_t{0});
    request.values[":x1"] = ddb::N(std::int64_t{1});
    request.extra_set += ", #xn = if_not_exists(#xn, :x0) + :x1";
    request.extra_remove = {"owner", "lease_until", "cancel_requested"};
    return CountedTransition(request);
  }

  Status FinishUnit(const AttemptEnd& end, UnitState to) override {
    if (!IsTerminal(to)) {
      return Error::InvalidInput("FinishUnit ends in SUCCEEDED, FAILED or CANCELLED, not " +
                                 std::string(ToString(to)));
    }
    if (end.lease.attempt < 1) return Error::InvalidInput("FinishUnit needs the lease's attempt");
    std::string reason(ToString(to));
    std::transform(reason.begin(), reason.end(), reason.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    CountedTransitionRequest request = EndRequest(end, to, reason);
    // The unit keeps its own copy of how the last attempt ended.
    request.extra_set += ", finished_at = :xf, #xe = :xe";
    if (end.exit_code) request.extra_set += ", exit_code = :xc";
    if (to == UnitState::kFailed) {
      request.values[":x0"] = ddb::N(std::int64_t{0});
      request.values[":x1"] = ddb::N(std::int64_t{1});
      request.extra_set += ", failures = if_not_exists(failures, :x0) + :x1";
    }
    request.extra_remove = {"lease_until", "cancel_requested"};
    return CountedTransition(request);
  }

  // --- the sweeper's reads and writes (UnitLeases) --------------------------------------

  Result<std::vector<JobRecord>> ListActiveJobs() override {
    auto jobs = ListJobs();
    if (!jobs.ok()) return jobs.error();
    std::vector<JobRecord> active;
    for (JobRecord& job : *jobs) {
      if (IsActive(job)) active.push_back(std::move(job));
    }
    return active;
  }

  Status ListUnitsInState(
      const std::string& job, UnitState state, std::optional<Clock::WallTime> entered_before,
      const std::function<bool(const std::vector<UnitRecord>&)>& on_page) override {
    QueryRequest request = StateQuery(job, state);
    if (entered_before) {
      // gsi1sk is "<state_since>#<unit>": every key below "<entered_before>" entered earlier.
      request.key_condition_expression += " AND gsi1sk < :b";
      request.values[":b"] = ddb::S(codec::FormatTime(*entered_before));
    }
    // Only what judging and stamping a unit needs: the rows may be large.
    request.projection_expression = "#j, #u, #st, #at, #ow, lease_until, state_since";
    request.names = {
        {"#j", "job"}, {"#u", "unit"}, {"#st", "state"}, {"#at", "attempt"}, {"#ow", "owner"}};
    return db_->Query(request, [&](Page& page) {
      std::vector<UnitRecord> units;
      units.reserve(page.items.size());
      for (const json& item : page.items) units.push_back(codec::DecodeUnit(item));
      return on_page(units);
    });
  }

  Result<bool> MarkSwept(const UnitRecord& seen, std::chrono::seconds resend_after) override {
    const Clock::WallTime now = clock_.Now();
    const std::string since = codec::FormatTime(seen.state_since);
    WriteOptions options;
    options.names = {{"#st", "state"}, {"#at", "attempt"}};
    // `swept_for` names the state the stamp was for, so a unit that moved on and came back
    // (a new attempt's lapse, a retry) may be swept at once rather than after resend_after.
    options.values = {{":st", ddb::S(ToString(seen.state))},
                      {":att", ddb::N(seen.attempt)},
                      {":since", ddb::S(since)},
                      {":now", ddb::S(codec::FormatTime(now))},
                      {":cut", ddb::S(codec::FormatTime(now - resend_after))},
                      {":for", ddb::S(std::string(ToString(seen.state)) + "#" +
                                      std::to_string(seen.attempt) + "@" + since)}};
    options.condition_expression =
        "#st = :st AND #at = :att AND state_since = :since AND "
        "(attribute_not_exists(swept_at) OR swept_at < :cut OR swept_for <> :for)";
    if (seen.state == UnitState::kRunning) {
      if (seen.lease_until) {
        options.condition_expression += " AND lease_until = :lease";
        options.values[":lease"] = ddb::N(EpochSeconds(*seen.lease_until));
      } else {
        options.condition_expression += " AND attribute_not_exists(lease_until)";
      }
    }
    WriteResult result = db_->UpdateItem(options_.table, codec::UnitKey(seen.job, seen.spec.id),
                                         "SET swept_at = :now, swept_for = :for", options);
    if (result.ok()) return true;
    if (result.error().IsConditionFailed()) return false;
    return result.error();
  }

  Status FailPoisoned(const UnitRecord& seen, const std::string& error) override {
    if (seen.state != UnitState::kQueued && seen.state != UnitState::kRunning) {
      return Error::InvalidInput("FailPoisoned moves a QUEUED or RUNNING unit, not " +
                                 std::string(ToString(seen.state)));
    }
    CountedTransitionRequest request;
    request.job = seen.job;
    request.unit = seen.spec.id;
    request.from = seen.state;
    request.attempt = seen.attempt;
    request.to = UnitState::kFailed;
    // The sweeper holds no lease: as the controller's, its intent is left to its retry for
    // controller_intent_grace before repair may revert it (an agent's is judged by a lease).
    request.writer = "controller";
    request.names["#xe"] = "error";
    request.values[":xf"] = ddb::S(codec::FormatTime(clock_.Now()));
    request.values[":xe"] = ddb::S(ClipUtf8(error));
    request.extra_set = "finished_at = :xf, #xe = :xe";
    if (seen.state == UnitState::kRunning) {
      request.owner = seen.owner;
      if (seen.attempt >= 1) {
        const std::string slot = "attempts[" + std::to_string(seen.attempt - 1) + "]";
        request.values[":xr"] = ddb::S("poison");
        request.extra_set +=
            ", " + slot + ".finished_at = :xf, " + slot + ".reason = :xr, " + slot + ".#xe = :xe";
      }
    }
    // An exit code left from an earlier attempt would read as this end's.
    request.extra_remove = {"lease_until", "cancel_requested", "exit_code"};
    // The intent is removed at once rather than left for a piggyback: sweeps are rare and
    // may come from any process.
    std::optional<internal::PendingIntent> pending;
    Status status = transitions_.Run(request, pending);
    if (pending) (void)transitions_.RemoveIntent(request.job, *pending);  // repair keeps it
    return status;
  }

 private:
  // The job item as a recount needs it: stored counters, `seq`, and the intents (unit, id).
  struct RecountSnapshot {
    JobCounts stored;
    std::optional<std::int64_t> seq;
    std::vector<std::pair<std::string, std::string>> intents;
  };
  Result<RecountSnapshot> ReadJobForRecount(const std::string& job) {
    auto item = db_->GetItem(options_.table, codec::JobKey(job), true);
    if (!item.ok()) return item.error();
    if (!item->has_value()) return NotFound("no job " + job);
    RecountSnapshot snapshot;
    const JobRecord record = codec::DecodeJob(**item);
    snapshot.stored.total = record.spec.total;
    snapshot.stored.succeeded = record.succeeded;
    snapshot.stored.failed = record.failed;
    snapshot.stored.cancelled = record.cancelled;
    snapshot.seq = ddb::GetInt(**item, "seq");
    if (const json* inflight = ddb::Get(**item, "inflight"); inflight && inflight->contains("M")) {
      for (auto it = (*inflight)["M"].begin(); it != (*inflight)["M"].end(); ++it) {
        std::string id;
        codec::DecodeIntent(it.key(), it.value(), &id);
        snapshot.intents.emplace_back(it.key(), id);
      }
    }
    return snapshot;
  }

  // Every unit's state, read with a consistent Query of the job's partition (a table scan
  // filtered on pk would read every job), and the transition id each unit carries.
  struct Tally {
    JobCounts counts;
    std::map<std::string, std::string> last_intent;  // unit -> id, for units carrying one
  };
  Result<Tally> TallyUnits(const std::string& job) {
    QueryRequest request = UnitsQuery(job);
    request.projection_expression = "#st, #u, last_intent";
    request.names["#st"] = "state";
    request.names["#u"] = "unit";
    std::int64_t by_state[5] = {0, 0, 0, 0, 0};
    Tally tally;
    Status status = db_->Query(request, [&](Page& page) {
      for (const json& unit : page.items) {
        auto state = ParseUnitState(ddb::GetS(unit, "state").value_or(""));
        if (state) ++by_state[static_cast<int>(*state)];
        ++tally.counts.total;
        if (auto id = ddb::GetS(unit, "last_intent")) {
          tally.last_intent[ddb::GetS(unit, "unit").value_or("")] = *id;
        }
      }
      return true;
    });
    if (!status.ok()) return status.error();
    tally.counts.queued = by_state[static_cast<int>(UnitState::kQueued)];
    tally.counts.running = by_state[static_cast<int>(UnitState::kRunning)];
    tally.counts.succeeded = by_state[static_cast<int>(UnitState::kSucceeded)];
    tally.counts.failed = by_state[static_cast<int>(UnitState::kFailed)];
    tally.counts.cancelled = by_state[static_cast<int>(UnitState::kCancelled)];
    return tally;
  }

  // Writes recounted counters if no counter changed since `snapshot` was read (its `seq`).
  // false: one did; the counts are stale, nothing was written.
  Result<bool> WriteCounts(const std::string& job, const RecountSnapshot& snapshot,
                           const JobCounts& counts, bool remove_intents) {
    WriteOptions options;
    options.names = {{"#t", "total"}};
    options.values = {{":t", ddb::N(counts.total)},
                      {":s", ddb::N(counts.succeeded)},
                      {":f", ddb::N(counts.failed)},
                      {":c", ddb::N(counts.cancelled)},
                      {":one", ddb::N(std::int64_t{1})}};
    if (snapshot.seq) {
      options.condition_expression = "seq = :seq";
      options.values[":seq"] = ddb::N(*snapshot.seq);
    } else {
      options.condition_expression = "attribute_exists(pk) AND attribute_not_exists(seq)";
    }
    std::string expression = "SET #t = :t, succeeded = :s, failed = :f, cancelled = :c";
    std::string remove;
    if (remove_intents) {
      for (std::size_t i = 0; i < snapshot.intents.size(); ++i) {
        std::string u = "#i" + std::to_string(i);
        options.names[u] = snapshot.intents[i].first;
        remove += (remove.empty() ? " REMOVE " : ", ") + std::string("inflight.") + u;
      }
    }
    WriteResult result = db_->UpdateItem(options_.table, codec::JobKey(job),
                                         expression + " ADD seq :one" + remove, options);
    if (result.ok()) return true;
    if (result.error().IsConditionFailed()) return false;
    return result.error();
  }

  // The unit as a claim found or left it, rows in the job's column order.
  UnitRecord DecodeSeen(const std::string& job, const json& item) {
    return codec::DecodeUnit(item, Columns(job));
  }

  // The rule CountedTransitions::Settle applies too: a lease is live through its last second.
  static bool LeaseLive(const json& unit, Clock::WallTime now) {
    auto lease = ddb::GetInt(unit, "lease_until");
    return lease && *lease >= EpochSeconds(now);
  }

  // The claim's one conditional write: from QUEUED with `expected_attempt`, or, when `running`
  // (the unit as last read) is given, a takeover of that RUNNING attempt whose lease expired.
  WriteResult ClaimWrite(const ClaimRequest& request, std::int64_t expected_attempt,
                         const json* running, const std::string& claim_id) {
    const Clock::WallTime now = clock_.Now();
    const std::string now_text = codec::FormatTime(now);
    const std::int64_t attempt = expected_attempt + 1;
    json entry = ddb::M({{"n", ddb::N(attempt)},
                         {"owner", ddb::S(request.owner)},
                         {"started_at", ddb::S(now_text)}});
    WriteOptions options;
    options.names = {{"#st", "state"}, {"#at", "attempt"}, {"#ow", "owner"}, {"#err", "error"}};
    options.values = {{":att", ddb::N(expected_attempt)},
                      {":n", ddb::N(attempt)},
                      {":run", ddb::S(ToString(UnitState::kRunning))},
                      {":own", ddb::S(request.owner)},
                      {":lease", ddb::N(EpochSeconds(now + request.lease))},
                      {":now", ddb::S(now_text)},
                      {":gpk", ddb::S(codec::StatePk(request.job, UnitState::kRunning))},
                      {":gsk", ddb::S(codec::StateSk(now, request.unit))},
                      {":cid", ddb::S(claim_id)}};
    std::string expression =
        "SET #st = :run, state_since = :now, gsi1pk = :gpk, gsi1sk = :gsk, #at = :n, "
        "#ow = :own, lease_until = :lease, heartbeat_at = :now, started_at = :now, "
        "last_claim = :cid";
    // What described the previous attempt's end goes; attempts[] keeps it.
    std::string remove = " REMOVE finished_at, exit_code, #err";
    if (running == nullptr) {
      options.condition_expression = "#st = :q AND #at = :att";
      options.values[":q"] = ddb::S(ToString(UnitState::kQueued));
      options.values[":empty"] = ddb::L(json::array());
      options.values[":entry"] = ddb::L(json::array({entry}));
      expression += ", attempts = list_append(if_not_exists(attempts, :empty), :entry)";
      remove += ", cancel_requested";
    } else {
      // The lost attempt's mark and the new entry go in as one list: DynamoDB refuses an
      // update whose paths overlap (`attempts` and `attempts[i].reason`). The condition (still
      // RUNNING with this attempt) makes sure the list is the one we read. A cancel request
      // stays: the new owner stops the unit at its first heartbeat.
      json list = json::array();
      if (const json* attempts = ddb::Get(*running, "attempts");
          attempts != nullptr && attempts->contains("L") && (*attempts)["L"].is_array()) {
        list = (*attempts)["L"];
      }
      const auto kept = static_cast<std::size_t>(std::max<std::int64_t>(0, expected_attempt));
      if (list.size() > kept)
        list.erase(list.begin() + static_cast<std::ptrdiff_t>(kept), list.end());
      while (list.size() < kept) {
        list.push_back(ddb::M({{"n", ddb::N(static_cast<std::int64_t>(list.size() + 1))}}));
      }
      if (kept > 0) {
        json& lost = list[kept - 1];
        if (!lost.is_object() || !lost.contains("M") || !lost["M"].is_object()) {
          lost = ddb::M({{"n", ddb::N(expected_attempt)}});
        }
        lost["M"]["reason"] = ddb::S("lost");
        lost["M"]["error"] = ddb::S("lease expired; taken over by " + request.owner);
      }
      list.push_back(entry);
      options.condition_expression =
          "#st = :run AND #at = :att AND "
          "(attribute_not_exists(lease_until) OR lease_until < :nows)";
      options.values[":nows"] = ddb::N(EpochSeconds(now));
      options.values[":list"] = ddb::L(std::move(list));
      options.values[":one"] = ddb::N(std::int64_t{1});
      expression += ", attempts = :list ADD interruptions :one";
    }
    options.return_values = "ALL_NEW";
    options.return_current_on_condition_failure = true;
    return db_->UpdateItem(options_.table, codec::UnitKey(request.job, request.unit),
                           expression + remove, options);
  }

  // RUNNING -> `to` for the attempt `end` describes, with the attempt's entry filled in;
  // placeholders start with "x" (CountedTransitionRequest).
  CountedTransitionRequest EndRequest(const AttemptEnd& end, UnitState to,
                                      std::string_view default_reason) {
    CountedTransitionRequest request;
    request.job = end.lease.job;
    request.unit = end.lease.unit;
    request.from = UnitState::kRunning;
    request.attempt = end.lease.attempt;
    request.owner = end.lease.owner;
    request.to = to;
    request.writer = end.lease.owner;
    const std::string slot = "attempts[" + std::to_string(end.lease.attempt - 1) + "]";
    request.names["#xe"] = "error";
    request.values[":xf"] = ddb::S(codec::FormatTime(clock_.Now()));
    request.values[":xr"] = ddb::S(end.reason.empty() ? default_reason : end.reason);
    request.values[":xe"] = ddb::S(ClipUtf8(end.error));
    request.extra_set =
        slot + ".finished_at = :xf, " + slot + ".reason = :xr, " + slot + ".#xe = :xe";
    if (end.exit_code) {
      request.values[":xc"] = ddb::N(std::int64_t{*end.exit_code});
      request.extra_set += ", " + slot + ".exit_code = :xc";
    }
    return request;
  }

  QueryRequest UnitsQuery(const std::string& job) const {
    QueryRequest request;
    request.table = options_.table;
    request.key_condition_expression = "pk = :p AND begins_with(sk, :u)";
    request.values = {{":p", ddb::S(codec::JobPk(job))}, {":u", ddb::S(codec::kUnitSkPrefix)}};
    request.consistent_read = true;
    return request;
  }

  QueryRequest StateQuery(const std::string& job, UnitState state) const {
    QueryRequest request;
    request.table = options_.table;
    request.index_name = std::string(codec::kByStateIndex);
    request.key_condition_expression = "gsi1pk = :p";
    request.values = {{":p", ddb::S(codec::StatePk(job, state))}};
    return request;
  }

  // Items in a by_state partition (with gsi1sk >= since when given). Only keys
  // travel.
  // Keys in a by_state partition (from `since`); with `at_most`, counting stops there.
  Result<std::int64_t> CountPartition(const std::string& partition,
                                      const std::optional<std::string>& since,
                                      std::optional<std::int64_t> at_most = std::nullopt) {
    QueryRequest request;
    request.table = options_.table;
    request.index_name = std::string(codec::kByStateIndex);
    request.key_condition_expression = "gsi1pk = :p";
    request.values = {{":p", ddb::S(partition)}};
    if (since) {
      request.key_condition_expression += " AND gsi1sk >= :s";
      request.values[":s"] = ddb::S(*since);
    }
    request.projection_expression = "gsi1sk";
    if (at_most) request.limit = static_cast<int>(*at_most);
    std::int64_t count = 0;
    Status status = db_->Query(request, [&](Page& page) {
      count += static_cast<std::int64_t>(page.items.size());
      return !at_most || count < *at_most;
    });
    if (!status.ok()) return status.error();
    return count;
  }

  void RememberColumns(const std::string& job, const std::vector<std::string>& columns) {
    std::lock_guard<std::mutex> lock(mu_);
    columns_[job] = columns;
  }

  // The job's columns (immutable once created), to restore param order; empty
  // if unknown.
  std::vector<std::string> Columns(const std::string& job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = columns_.find(job);
      if (it != columns_.end()) return it->second;
    }
    auto item = db_->GetItem(options_.table, codec::JobKey(job), false);
    if (!item.ok() || !item->has_value()) return {};
    std::vector<std::string> columns = codec::DecodeJob(**item).spec.columns;
    RememberColumns(job, columns);
    return columns;
  }

  std::shared_ptr<DynamoDb> db_;
  DynamoLedgerOptions options_;
  Clock& clock_;
  internal::CountedTransitions transitions_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> columns_;  // job -> columns; guarded by mu_
};

}  // namespace

std::shared_ptr<Ledger> MakeDynamoLedger(std::shared_ptr<DynamoDb> db, DynamoLedgerOptions options,
                                         Clock& clock) {
  return std::make_shared<DynamoLedger>(std::move(db), std::move(options), clock);
}

std::string LedgerTableName(std::string_view stack) { return "spotgrid-" + std::string(stack); }

Status ValidateStackName(std::string_view stack) {
  bool ok = !stack.empty() && stack.size() <= 40 && stack[0] >= 'a' && stack[0] <= 'z';
  for (char c : stack) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) ok = false;
  }
  if (ok) return Status::Ok();
  return Error::InvalidInput("stack name \"" + std::string(stack) +
                             "\" must be 1 to 40 characters of a-z, 0-9 and '-', starting with "
                             "a letter");
}

}  // namespace spotgrid
