// A counted transition, step by step (docs/ledger.md, "Counting exactly once"), private to
// the ledger. Every write below may be applied with its reply lost, may fail for good after
// it was applied, or may never arrive; each step says what that means and how a retry or a
// repair tells "applied" from "not applied". A transition carries a random id that the unit
// item keeps as `last_intent` once moved, and that its intent in the job item is keyed by.
//
//   step                     write (conditional)                  outcome -> what it means
//   1 AddIntent   job item:  ADD counters, seq; SET inflight.u     ok -> 2
//                            if no intent for u                   condition failed, inflight.u
//                                                                   has our id -> applied (a
//                                                                   lost reply retried): 2
//                                                                 condition failed, another's
//                                                                   intent -> settle it, again
//                                                                 unknown (no reply) -> keep
//                                                                   the id for the retry; error
//   2 MoveUnit    unit:      state, attempt, owner as expected;   ok -> done (3 rides later)
//                            SET last_intent = id; refuses a      condition failed, unit carries
//                            revoked id                             our id -> applied: done
//                                                                 condition failed otherwise ->
//                                                                   never will: undo 1; stale
//                                                                 unknown -> NO undo: keep the
//                                                                   id for the retry; error
//   undo          job item:  ADD -counters, seq; REMOVE           ok or condition failed (repair
//                            inflight.u if it is still ours         settled it) -> done
//                                                                 unknown -> repair settles it
//   3 Remove      job item:  REMOVE inflight.u if ours            any -> fine: repair keeps an
//                                                                   intent whose unit carries it
//   repair        fence:     unit SET revoked_intent = id unless  the unit carries the id -> the
//   (Settle)                 it carries the id                      count stands; else revert
//
// A call that ends with an unknown outcome leaves the transition's id with this object; the
// next call for the same transition (same job, unit, from, attempt, to, writer) reuses it, so
// the retry finds its own intent and its own unit write instead of taking them for another
// writer's. A writer that never retries leaves an intent that Settle resolves: kept when the
// unit carries the id, reverted (after fencing the unit) once the writer can no longer act.
// Nothing ever reverts a count whose unit carries its transition.
//
// Uncounted transitions (between QUEUED and RUNNING) are step 2 alone, with the same id rule,
// so a retried release after a lost reply is recognised as applied too.
//
// Every counter change also adds one to the job item's `seq`, so a recount can write its
// totals only if no counted transition started while it read the units.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"
#include "spotgrid/ledger/ledger.h"
#include "spotgrid/ledger/types.h"

namespace spotgrid {

class DynamoDb;

namespace ledger_internal {

// The intent a writer has left in a job item for piggybacked removal (step 3).
struct PendingIntent {
  std::string unit;
  std::string id;
};

enum class Settled { kKept, kReverted, kPending };

// 64 random bits in hex: a transition's id, a claim's id.
std::string NewRandomId();

// The job counter of a counted state; nullptr for QUEUED and RUNNING.
const char* CounterOf(UnitState state);

class CountedTransitions {
 public:
  CountedTransitions(std::shared_ptr<DynamoDb> db, std::string table, Clock& clock,
                     std::chrono::seconds controller_intent_grace);

  // One transition; the writer's piggybacked intent is kept here, per (job, writer).
  Status Run(const CountedTransitionRequest& request);
  // The same with the caller holding the piggybacked intent (bulk controller transitions).
  Status Run(const CountedTransitionRequest& request, std::optional<PendingIntent>& pending);
  // Removes the intent `writer`'s last transition left for piggybacking.
  Status Flush(const std::string& job, const std::string& writer);

  // Repair's rule for one intent; `force` reverts an unmade transition even if its writer may
  // still be alive (it is fenced first, so it can never land).
  Result<Settled> Settle(const std::string& job, const CountIntent& intent, const std::string& id,
                         bool force);
  // Makes sure the transition `id` can no longer move the unit: true when it already had.
  Result<bool> Fence(const std::string& job, const std::string& unit, const std::string& id);
  Status RemoveIntent(const std::string& job, const PendingIntent& pending);

 private:
  Status Transition(const CountedTransitionRequest& request, const std::string& id,
                    std::optional<PendingIntent>& pending);
  Status AddIntent(const CountedTransitionRequest& request, const std::string& id,
                   const std::optional<PendingIntent>& pending);
  // Step 1 after a failed condition: "applied" when the job item holds our intent; otherwise
  // settles another writer's intent for the unit so step 1 may be tried again.
  enum class Step1Check { kOurs, kTryAgain };
  Result<Step1Check> CheckIntent(const CountedTransitionRequest& request, const std::string& id);
  struct UnitWriteResult;
  UnitWriteResult MoveUnit(const CountedTransitionRequest& request, const std::string& id);
  Status UndoIntent(const std::string& job, const std::string& unit, const std::string& id,
                    const char* minus, const char* plus);

  // The id of a transition whose last call ended unknown, or a fresh one.
  std::string IdFor(const CountedTransitionRequest& request);
  void Resolved(const CountedTransitionRequest& request);
  void Unresolved(const CountedTransitionRequest& request, const std::string& id);

  std::shared_ptr<DynamoDb> db_;
  const std::string table_;
  Clock& clock_;
  const std::chrono::seconds controller_intent_grace_;
  std::mutex mu_;
  std::map<std::string, PendingIntent> pending_;    // "<job>\n<writer>"; guarded by mu_
  std::map<std::string, std::string> unresolved_;  // transition key -> id; guarded by mu_
};

}  // namespace ledger_internal
}  // namespace spotgrid
