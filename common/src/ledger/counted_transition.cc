// The counted transition's steps (counted_transition.h has the table of outcomes).
#include "ledger/counted_transition.h"

#include <cstdio>
#include <random>
#include <thread>
#include <utility>

#include "ledger/item_codec.h"
#include "spotgrid/services/dynamodb_client.h"

namespace spotgrid::ledger_internal {
namespace {

using nlohmann::json;
namespace codec = ledger_codec;

Error ConditionFailed(std::string message) {
  Error error;
  error.category = ErrorCategory::kConditionFailed;
  error.service = "DynamoDB";
  error.operation = "UpdateItem";
  error.code = "ConditionalCheckFailedException";
  error.message = std::move(message);
  return error;
}

std::int64_t EpochSeconds(Clock::WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// A write whose reply says nothing about whether it was applied: anything but success and a
// failed condition (a lost or cut reply, a timeout, a 5xx after retries, throttling).
bool Unknown(const Status& status) { return !status.ok() && !status.error().IsConditionFailed(); }

std::string TransitionKey(const CountedTransitionRequest& r) {
  return r.job + '\n' + r.unit + '\n' + std::string(ToString(r.from)) + '\n' +
         std::to_string(r.attempt) + '\n' + std::string(ToString(r.to)) + '\n' + r.writer;
}

}  // namespace

std::string NewRandomId() {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   std::hash<std::thread::id>{}(std::this_thread::get_id()));
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

const char* CounterOf(UnitState state) {
  switch (state) {
    case UnitState::kSucceeded:
      return "succeeded";
    case UnitState::kFailed:
      return "failed";
    case UnitState::kCancelled:
      return "cancelled";
    default:
      return nullptr;
  }
}

struct CountedTransitions::UnitWriteResult {
  enum class Kind { kApplied, kRefused, kUnknown } kind;
  Status status;  // the write's own, for kRefused and kUnknown
};

CountedTransitions::CountedTransitions(std::shared_ptr<DynamoDb> db, std::string table,
                                       Clock& clock, std::chrono::seconds controller_intent_grace)
    : db_(std::move(db)),
      table_(std::move(table)),
      clock_(clock),
      controller_intent_grace_(controller_intent_grace) {}

std::string CountedTransitions::IdFor(const CountedTransitionRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = unresolved_.find(TransitionKey(request));
  return it != unresolved_.end() ? it->second : NewRandomId();
}

void CountedTransitions::Resolved(const CountedTransitionRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  unresolved_.erase(TransitionKey(request));
}

void CountedTransitions::Unresolved(const CountedTransitionRequest& request,
                                    const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  unresolved_[TransitionKey(request)] = id;
}

Status CountedTransitions::Run(const CountedTransitionRequest& request) {
  const std::string slot_key = request.job + "\n" + request.writer;
  std::optional<PendingIntent> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(slot_key);
    if (it != pending_.end()) {
      pending = std::move(it->second);
      pending_.erase(it);
    }
  }
  Status status = Run(request, pending);
  if (pending) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[slot_key] = std::move(*pending);
  }
  return status;
}

Status CountedTransitions::Run(const CountedTransitionRequest& request,
                               std::optional<PendingIntent>& pending) {
  const std::string id = IdFor(request);
  Status status = Transition(request, id, pending);
  if (Unknown(status)) {
    Unresolved(request, id);
  } else {
    Resolved(request);
  }
  return status;
}

Status CountedTransitions::Flush(const std::string& job, const std::string& writer) {
  std::optional<PendingIntent> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(job + "\n" + writer);
    if (it == pending_.end()) return Status::Ok();
    pending = std::move(it->second);
    pending_.erase(it);
  }
  return RemoveIntent(job, *pending);
}

Status CountedTransitions::Transition(const CountedTransitionRequest& request,
                                      const std::string& id,
                                      std::optional<PendingIntent>& pending) {
  const char* minus = CounterOf(request.from);
  const char* plus = CounterOf(request.to);
  if (minus == nullptr && plus == nullptr) {
    UnitWriteResult moved = MoveUnit(request, id);
    return moved.kind == UnitWriteResult::Kind::kApplied ? Status::Ok() : moved.status;
  }
  if (pending && pending->unit == request.unit) {
    // The same path cannot be removed and set in one expression.
    Status status = RemoveIntent(request.job, *pending);
    if (!status.ok()) return status;
    pending.reset();
  }

  // Step 1: the intent and the count.
  bool added = false;
  for (int round = 0; round < 3 && !added; ++round) {
    Status step1 = AddIntent(request, id, pending);
    if (step1.ok()) {
      added = true;
      break;
    }
    if (!step1.error().IsConditionFailed()) return step1;  // unknown: the retry reuses the id
    pending.reset();  // whatever it was, it is no longer ours to piggyback
    auto check = CheckIntent(request, id);
    if (!check.ok()) return check.error();
    if (*check == Step1Check::kOurs) added = true;
  }
  if (!added) {
    return ConditionFailed("unit " + request.unit + " of job " + request.job +
                           " keeps changing under concurrent transitions");
  }
  pending.reset();
  if (request.crash_after_writes == 1) return Status::Ok();

  // Step 2: the unit.
  UnitWriteResult moved = MoveUnit(request, id);
  switch (moved.kind) {
    case UnitWriteResult::Kind::kApplied:
      break;
    case UnitWriteResult::Kind::kUnknown:
      // It may have landed: undoing now could revert a count whose unit carries it. The
      // intent stays for the retry (same id) or for repair to settle.
      return moved.status;
    case UnitWriteResult::Kind::kRefused: {
      Status undo = UndoIntent(request.job, request.unit, id, minus, plus);
      // An undo whose reply was lost leaves the intent to repair, which reverts it (the unit
      // never carried it); the transition did not happen either way.
      (void)undo;
      return moved.status;
    }
  }
  if (request.crash_after_writes == 2) return Status::Ok();
  // Step 3 rides on this writer's next step 1.
  pending = PendingIntent{request.unit, id};
  return Status::Ok();
}

Status CountedTransitions::AddIntent(const CountedTransitionRequest& request,
                                     const std::string& id,
                                     const std::optional<PendingIntent>& pending) {
  CountIntent intent;
  intent.unit = request.unit;
  intent.from = request.from;
  intent.to = request.to;
  intent.attempt = request.attempt;
  intent.writer = request.writer;
  intent.at = clock_.Now();
  const char* minus = CounterOf(request.from);
  const char* plus = CounterOf(request.to);
  WriteOptions options;
  options.names = {{"#u", intent.unit}};
  options.values = {{":intent", codec::EncodeIntent(intent, id)}, {":one", ddb::N(std::int64_t{1})}};
  options.condition_expression = "attribute_exists(pk) AND attribute_not_exists(inflight.#u)";
  std::string expression = "SET inflight.#u = :intent ADD seq :one";
  if (minus != nullptr) {
    options.names["#cm"] = minus;
    options.values[":m"] = ddb::N(std::int64_t{-1});
    expression += ", #cm :m";
  }
  if (plus != nullptr) {
    options.names["#cp"] = plus;
    expression += ", #cp :one";
  }
  if (pending) {
    options.names["#pu"] = pending->unit;
    options.names["#id"] = "id";
    options.values[":pid"] = ddb::S(pending->id);
    expression += " REMOVE inflight.#pu";
    options.condition_expression +=
        " AND (attribute_not_exists(inflight.#pu) OR inflight.#pu.#id = :pid)";
  }
  return db_->UpdateItem(table_, codec::JobKey(request.job), expression, options).status;
}

Result<CountedTransitions::Step1Check> CountedTransitions::CheckIntent(
    const CountedTransitionRequest& request, const std::string& id) {
  auto job_item = db_->GetItem(table_, codec::JobKey(request.job), true);
  if (!job_item.ok()) return job_item.error();
  if (!job_item->has_value()) return Error(ConditionFailed("no job " + request.job));
  const json* inflight = ddb::Get(**job_item, "inflight");
  if (inflight == nullptr || !inflight->contains("M") || !(*inflight)["M"].contains(request.unit)) {
    return Step1Check::kTryAgain;  // the piggybacked removal's condition failed, or a race
  }
  std::string other_id;
  CountIntent other = codec::DecodeIntent(request.unit, (*inflight)["M"][request.unit], &other_id);
  if (other_id == id) return Step1Check::kOurs;  // our own step 1, its reply lost
  auto settled = Settle(request.job, other, other_id, /*force=*/false);
  if (!settled.ok()) return settled.error();
  if (*settled == Settled::kPending) {
    return Error(ConditionFailed("unit " + request.unit + " has a transition in flight by " +
                                 other.writer));
  }
  return Step1Check::kTryAgain;
}

CountedTransitions::UnitWriteResult CountedTransitions::MoveUnit(
    const CountedTransitionRequest& request, const std::string& id) {
  Clock::WallTime now = clock_.Now();
  WriteOptions options;
  options.names = request.names;
  options.values = request.values;
  options.names["#st"] = "state";
  options.names["#at"] = "attempt";
  options.values[":from"] = ddb::S(ToString(request.from));
  options.values[":to"] = ddb::S(ToString(request.to));
  options.values[":att"] = ddb::N(request.attempt);
  options.values[":now"] = ddb::S(codec::FormatTime(now));
  options.values[":gpk"] = ddb::S(codec::StatePk(request.job, request.to));
  options.values[":gsk"] = ddb::S(codec::StateSk(now, request.unit));
  options.values[":iid"] = ddb::S(id);
  // The unit carries the id of the transition that moved it and refuses one that repair has
  // revoked: together they make "did step 2 happen?" decidable.
  options.condition_expression =
      "#st = :from AND #at = :att AND "
      "(attribute_not_exists(revoked_intent) OR revoked_intent <> :iid)";
  if (request.owner) {
    options.names["#ow"] = "owner";
    options.values[":own"] = ddb::S(*request.owner);
    options.condition_expression += " AND #ow = :own";
  }
  std::string expression =
      "SET #st = :to, state_since = :now, gsi1pk = :gpk, gsi1sk = :gsk, last_intent = :iid";
  if (!request.extra_set.empty()) expression += ", " + request.extra_set;
  for (std::size_t i = 0; i < request.extra_remove.size(); ++i) {
    std::string name = "#rm" + std::to_string(i);
    options.names[name] = request.extra_remove[i];
    expression += (i == 0 ? " REMOVE " : ", ") + name;
  }
  options.return_current_on_condition_failure = true;
  WriteResult result =
      db_->UpdateItem(table_, codec::UnitKey(request.job, request.unit), expression, options);
  if (result.ok()) return {UnitWriteResult::Kind::kApplied, Status::Ok()};
  if (!result.error().IsConditionFailed()) return {UnitWriteResult::Kind::kUnknown, result.status};
  // A failed condition after a lost reply: the retry met our own write.
  std::optional<json> current = std::move(result.current_item);
  if (!current) {
    // Not every DynamoDB returns the item with the failure: read it.
    auto item = db_->GetItem(table_, codec::UnitKey(request.job, request.unit), true);
    if (!item.ok()) return {UnitWriteResult::Kind::kUnknown, item.status()};
    current = std::move(*item);
  }
  if (current && ddb::GetS(*current, "last_intent") == id) {
    return {UnitWriteResult::Kind::kApplied, Status::Ok()};
  }
  return {UnitWriteResult::Kind::kRefused, result.status};
}

Status CountedTransitions::UndoIntent(const std::string& job, const std::string& unit,
                                      const std::string& id, const char* minus,
                                      const char* plus) {
  WriteOptions options;
  options.names = {{"#u", unit}, {"#id", "id"}};
  options.values = {{":id", ddb::S(id)}, {":one", ddb::N(std::int64_t{1})}};
  options.condition_expression = "inflight.#u.#id = :id";
  std::string add = "seq :one";
  if (minus != nullptr) {
    options.names["#cm"] = minus;
    add += ", #cm :one";
  }
  if (plus != nullptr) {
    options.names["#cp"] = plus;
    options.values[":m"] = ddb::N(std::int64_t{-1});
    add += ", #cp :m";
  }
  WriteResult result =
      db_->UpdateItem(table_, codec::JobKey(job), "ADD " + add + " REMOVE inflight.#u", options);
  if (!result.ok() && !result.error().IsConditionFailed()) return result.status;
  return Status::Ok();
}

Status CountedTransitions::RemoveIntent(const std::string& job, const PendingIntent& pending) {
  WriteOptions options;
  options.condition_expression = "inflight.#u.#id = :id";
  options.names = {{"#u", pending.unit}, {"#id", "id"}};
  options.values = {{":id", ddb::S(pending.id)}};
  WriteResult result = db_->UpdateItem(table_, codec::JobKey(job), "REMOVE inflight.#u", options);
  if (!result.ok() && !result.error().IsConditionFailed()) return result.status;
  return Status::Ok();
}

Result<bool> CountedTransitions::Fence(const std::string& job, const std::string& unit,
                                       const std::string& id) {
  WriteOptions options;
  options.condition_expression =
      "attribute_exists(pk) AND (attribute_not_exists(last_intent) OR last_intent <> :id)";
  options.values = {{":id", ddb::S(id)}};
  options.return_current_on_condition_failure = true;
  WriteResult result =
      db_->UpdateItem(table_, codec::UnitKey(job, unit), "SET revoked_intent = :id", options);
  if (result.ok()) return false;
  if (!result.error().IsConditionFailed()) return result.error();
  std::optional<json> current = std::move(result.current_item);
  if (!current) {
    auto item = db_->GetItem(table_, codec::UnitKey(job, unit), true);
    if (!item.ok()) return item.error();
    current = std::move(*item);
  }
  return current && ddb::GetS(*current, "last_intent") == id;  // no unit: nothing can happen
}

Result<Settled> CountedTransitions::Settle(const std::string& job, const CountIntent& intent,
                                           const std::string& id, bool force) {
  auto unit_item = db_->GetItem(table_, codec::UnitKey(job, intent.unit), true);
  if (!unit_item.ok()) return unit_item.error();
  bool happened = unit_item->has_value() && ddb::GetS(**unit_item, "last_intent") == id;
  if (!happened && !force && unit_item->has_value()) {
    const json& unit = **unit_item;
    bool could_still_happen = ddb::GetS(unit, "state") == std::string(ToString(intent.from)) &&
                              ddb::GetInt(unit, "attempt").value_or(-1) == intent.attempt;
    if (could_still_happen) {
      Clock::WallTime now = clock_.Now();
      bool writer_gone;
      if (intent.writer == "controller") {
        writer_gone = now - intent.at > controller_intent_grace_;
      } else {
        auto lease = ddb::GetInt(unit, "lease_until");
        writer_gone = !lease || *lease < EpochSeconds(now);
      }
      if (!writer_gone) return Settled::kPending;
    }
  }
  if (!happened) {
    auto fenced = Fence(job, intent.unit, id);
    if (!fenced.ok()) return fenced.error();
    happened = *fenced;
  }
  if (happened) {
    Status status = RemoveIntent(job, PendingIntent{intent.unit, id});
    if (!status.ok()) return status.error();
    return Settled::kKept;
  }
  Status status = UndoIntent(job, intent.unit, id, CounterOf(intent.from), CounterOf(intent.to));
  if (!status.ok()) return status.error();
  return Settled::kReverted;
}

}  // namespace spotgrid::ledger_internal
