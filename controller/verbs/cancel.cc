// controller cancel --job J: queued units become CANCELLED at once; running ones are marked
// so their agent stops them at its next heartbeat.
#include "job_selection.h"
#include "output.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

int RunCancel(const Args& args, Controller& controller) {
  if (!args.Has("job")) {
    // Cancelling is not undone by a typo: never guess the job.
    return ReportError(controller, Error::InvalidInput("--job J is required"));
  }
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  auto job = SelectJob(args, controller, *stack->ledger, stack->info, true);
  if (!job.ok()) return ReportError(controller, job.error());
  auto cancelled = stack->ledger->CancelJob(job->spec.id);
  if (!cancelled.ok()) return ReportError(controller, cancelled.error());
  std::fprintf(controller.out(), "cancelled %s queued unit(s) of job %s\n",
               FormatCount(*cancelled).c_str(), job->spec.id.c_str());
  auto counts = stack->ledger->Counts(job->spec.id);
  if (counts.ok() && counts->running > 0) {
    std::fprintf(controller.out(),
                 "%s running unit(s) will be stopped by their agent at its next heartbeat\n",
                 FormatCount(counts->running).c_str());
  }
  return kExitOk;
}

}  // namespace

Verb CancelVerb() {
  Verb verb;
  verb.spec.name = "cancel";
  verb.spec.summary = "cancel a job: queued units at once, running ones at their next heartbeat";
  verb.spec.options = {ValueOption("job", "J", "the job to cancel (required)")};
  verb.spec.details = "Cancelled units can be requeued with `controller retry --unit U`.";
  verb.run = RunCancel;
  return verb;
}

}  // namespace spotgrid
