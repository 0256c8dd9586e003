// The sweeper: sends a unit's message again when the unit needs one and has none, and acts on
// the messages that reached the dead-letter queue (docs/ledger.md, "Messages and the sweeper").
//
// An agent deletes a unit's message as soon as it holds the unit's lease, and a requeue sends
// a fresh one; so a RUNNING unit has no message, and nothing would ever bring back a unit
// whose agent died (kill -9, a reclaimed instance) or whose QUEUED message was lost (a purge).
// One Sweep, for the stack's active jobs (UnitLeases::ListActiveJobs, or the one job of the
// scope), in this order:
//
//   1. Dead letters: up to `dead_letter_rounds` short-poll receives of 10 from the dead-letter
//      queue. Per message:
//        body unreadable, job or unit missing          -> deleted
//        unit QUEUED, or RUNNING with a lapsed lease   -> FAILED (poison), counted once
//                                                         (UnitLeases::FailPoisoned); deleted
//        unit RUNNING under a live lease, or finished  -> deleted
//      A unit that moved while being failed (a claim won the race) is left as it is and its
//      dead letter deleted. A message whose handling met an error stays in the queue and
//      comes back after `dead_letter_visibility` for the next sweep.
//      This runs first, so a poisoned unit is not sent again by the steps below.
//   2. Lapsed leases: RUNNING units whose lease_until is more than `lease_grace` in the past
//      (the grace absorbs clock skew between workers). The claim path takes such a unit over
//      (ClaimUnit), so a fresh message is all it needs.
//   3. Orphans: only when the work queue holds no message at all (ApproximateNumberOfMessages,
//      ...NotVisible and ...Delayed all 0) and only for jobs whose enqueue is DONE (an enqueue
//      still writing sends the messages itself): QUEUED units that entered QUEUED more than
//      `orphan_grace` ago (a requeue writes the ledger before it sends the message).
//   For 2 and 3 each unit is first stamped with UnitLeases::MarkSwept (one conditional write:
//   the unit unchanged since it was read, and not stamped for this same state within
//   `resend_after`), and only a stamp that landed sends `{"v":1,"job":..,"unit":..}` to the
//   work queue (SendMessageBatch). So sweepers of many agents racing each other send at most
//   one message per unit per `resend_after`; a send that fails after its stamp is tried
//   again by a sweep after `resend_after`.
//
// Every write is conditional and safe to repeat. A failure of one unit's step does not stop
// the others: the report counts what was done and keeps the first error. Sweep returns an
// error only when it could not find out which jobs to look at.
//
// Thread-safety: Sweep may be called from any number of threads at once, and by any number
// of processes on the same stack: the conditional stamps and transitions decide who acts.
// The Sweeper holds no mutable state; `leases`, `sqs` and `clock` must outlive it.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"
#include "spotgrid/ledger/types.h"
#include "spotgrid/ledger/unit_leases.h"
#include "spotgrid/services/sqs_client.h"

namespace spotgrid {

struct SweepOptions {
  // A lease counts as lapsed only this long after its lease_until.
  std::chrono::seconds lease_grace{5};
  // A QUEUED unit is an orphan candidate only this long after it entered QUEUED.
  std::chrono::seconds orphan_grace{60};
  // At most one message per unit (per state it is in) within this long, whoever sweeps.
  // (A minute: a message lost after its stamp costs the unit that long, and a duplicate
  // costs one delivery.)
  std::chrono::seconds resend_after{60};
  // The most orphans one sweep stamps: a purge of a large job is refilled over several sweeps
  // (the queue is then no longer empty until those messages are taken).
  int max_orphans_per_sweep = 1000;
  // Short-poll receives of up to 10 dead letters per sweep.
  int dead_letter_rounds = 5;
  // How long a dead letter this sweep could not settle stays hidden from the next.
  std::chrono::seconds dead_letter_visibility{60};
  // Conditional writes in flight at once.
  int write_concurrency = 8;
};

struct SweepScope {
  std::string queue_url;        // the work queue
  std::string dead_letter_url;  // the dead-letter queue; empty: dead letters are not looked at
  int max_receives = 10;        // the redrive policy's, for the poison error text
  std::optional<std::string> job;  // only this job; every active job when nullopt

  // The stack's work queue and dead-letter queue, every active job.
  static SweepScope ForStack(const StackInfo& stack);
};

struct SweepReport {
  int jobs = 0;               // active jobs looked at
  int lapsed_resent = 0;      // RUNNING units with a lapsed lease: a fresh message sent
  bool queue_empty = false;   // the work queue held no message, so orphans were looked for
  int orphans_resent = 0;     // QUEUED units without a message: a fresh message sent
  int already_swept = 0;      // candidates another sweeper had (or that moved): nothing sent
  int dead_letters = 0;       // dead letters received
  int poisoned = 0;           // units marked FAILED (poison) because of one
  int dead_letters_deleted = 0;
  Status first_error;  // the first step that failed (Ok when none); the others went on
};

class Sweeper {
 public:
  Sweeper(UnitLeases& leases, Sqs& sqs, Clock& clock, SweepOptions options = {});

  Result<SweepReport> Sweep(const SweepScope& scope) const;

 private:
  UnitLeases& leases_;
  Sqs& sqs_;
  Clock& clock_;
  SweepOptions options_;
};

// The error text a poisoned unit keeps.
std::string PoisonError(int max_receives);

}  // namespace spotgrid
