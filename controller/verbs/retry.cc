// controller retry: FAILED or CANCELLED units back to QUEUED (failures reset), then one
// message each. The ledger write comes first: a message for a unit the ledger does not hold
// as QUEUED is dropped by the agent, so the reverse order could lose the retry. If sending
// fails after the ledger write, `retry --unit U` on the now QUEUED unit sends its message
// again (a duplicate message is harmless: claiming is a conditional write).
#include <mutex>

#include "job_selection.h"
#include "output.h"
#include "spotgrid/core/parallel_for.h"
#include "spotgrid/services/sqs_client.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

constexpr int kConcurrency = 8;

int RunRetry(const Args& args, Controller& controller) {
  const bool all_failed = args.Has("failed");
  const std::vector<std::string> named = args.GetAll("unit");
  if (all_failed == !named.empty()) {
    return ReportError(controller,
                       Error::InvalidInput("give either --failed or --unit U (not both)"));
  }
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  Ledger& ledger = *stack->ledger;
  auto job = SelectJob(args, controller, ledger, stack->info, false);
  if (!job.ok()) return ReportError(controller, job.error());
  const std::string& job_id = job->spec.id;

  std::vector<std::string> candidates;
  std::vector<std::string> resend;  // already QUEUED units named with --unit
  if (all_failed) {
    Status status =
        ledger.ListUnits(job_id, UnitState::kFailed, [&](const std::vector<UnitRecord>& page) {
          for (const UnitRecord& unit : page) {
            candidates.push_back(unit.spec.id);
          }
          return true;
        });
    if (!status.ok()) return ReportError(controller, status);
    if (candidates.empty()) {
      std::fprintf(controller.out(), "job %s has no failed units\n", job_id.c_str());
      return kExitOk;
    }
  } else {
    for (const std::string& id : named) {
      auto unit = RequireUnit(ledger, job_id, id);
      if (!unit.ok()) return ReportError(controller, unit.error());
      if (unit->state == UnitState::kQueued) {
        resend.push_back(id);
      } else if (unit->state == UnitState::kFailed || unit->state == UnitState::kCancelled) {
        candidates.push_back(id);
      } else {
        return ReportError(
            controller,
            Error::InvalidInput("unit '" + id + "' is " + std::string(ToString(unit->state)) +
                                ": only FAILED or CANCELLED units can be retried"));
      }
    }
  }

  std::vector<std::string> retried;
  std::vector<std::string> moved;  // changed state meanwhile (e.g. another retry)
  std::mutex mu;
  Status retried_all = ParallelForStatus(candidates.size(), kConcurrency, OnError::kRunAll,
                                         [&](std::size_t i) -> Status {
                                           Status status = ledger.RetryUnit(job_id, candidates[i]);
                                           if (!status.ok() && !status.error().IsConditionFailed())
                                             return status;
                                           std::lock_guard<std::mutex> lock(mu);
                                           (status.ok() ? retried : moved).push_back(candidates[i]);
                                           return Status::Ok();
                                         });
  std::optional<Error> first_error;
  if (!retried_all.ok()) first_error = retried_all.error();
  // The last counting intent of this run is settled now rather than left for the next
  // `progress` to tidy up (docs/ledger.md).
  if (Status flushed = ledger.FlushIntents(job_id, "controller"); !flushed.ok() && !first_error) {
    first_error = flushed.error();
  }

  std::vector<std::string> to_send = retried;
  to_send.insert(to_send.end(), resend.begin(), resend.end());
  std::size_t unsent = 0;
  std::vector<std::string> unsent_units;
  if (!to_send.empty()) {
    auto sqs = controller.sqs();
    if (!sqs.ok()) return ReportError(controller, sqs.error());
    std::vector<SendEntry> entries;
    for (const std::string& id : to_send) {
      SendEntry entry;
      entry.body = EncodeUnitMessage(job_id, id);
      entries.push_back(std::move(entry));
    }
    auto sent = (*sqs)->SendMessageBatch(stack->info.queue_url, entries);
    if (!sent.ok()) {
      unsent_units = to_send;
      if (!first_error) first_error = sent.error();
    } else {
      for (const BatchEntryFailure& failure : sent->failed) {
        unsent_units.push_back(to_send[failure.index]);
        if (!first_error) first_error = failure.error;
      }
    }
    unsent = unsent_units.size();
  }

  std::fprintf(controller.out(), "requeued %s unit(s) of job %s",
               FormatCount(static_cast<std::int64_t>(retried.size())).c_str(), job_id.c_str());
  if (!resend.empty()) {
    std::fprintf(controller.out(), "; re-sent the message of %zu already queued unit(s)",
                 resend.size());
  }
  std::fputs("\n", controller.out());
  if (!moved.empty()) {
    std::fprintf(
        controller.err(),
        "controller: %zu unit(s) changed state meanwhile and were left alone (first: %s)\n",
        moved.size(), moved.front().c_str());
  }
  if (unsent > 0) {
    std::string list;
    for (std::size_t i = 0; i < unsent_units.size() && i < 10; ++i) {
      list += " --unit " + unsent_units[i];
    }
    std::fprintf(controller.err(),
                 "controller: %zu unit(s) are QUEUED but their message was not sent; run "
                 "`controller retry --job %s%s%s` to send it\n",
                 unsent, job_id.c_str(), list.c_str(), unsent_units.size() > 10 ? " ..." : "");
  }
  if (first_error) return ReportError(controller, *first_error);
  return kExitOk;
}

}  // namespace

Verb RetryVerb() {
  Verb verb;
  verb.spec.name = "retry";
  verb.spec.summary = "requeue failed (or cancelled) units";
  verb.spec.options = {
      JobOption(),
      FlagOption("failed", "every FAILED unit of the job"),
      ValueOption("unit", "U", "this unit (FAILED or CANCELLED)", true),
  };
  verb.spec.details =
      "A retried unit starts again with no failures counted against --max-attempts. Naming a "
      "unit that is already QUEUED sends its message again (harmless if it already has one).";
  verb.run = RunRetry;
  return verb;
}

}  // namespace spotgrid
