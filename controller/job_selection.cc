#include "job_selection.h"

#include <algorithm>

namespace spotgrid {

Result<StackHandle> OpenStack(const Args& args, Controller& controller) {
  std::optional<std::string> name = args.Get("stack");
  if (!name || name->empty()) {
    return Error::InvalidInput("no stack given: use --stack NAME or set SPOTGRID_STACK");
  }
  if (Status valid = ValidateStackName(*name); !valid.ok()) return valid.error();
  auto info = controller.stack(*name);
  if (!info.ok()) return info.error();
  auto ledger = controller.ledger(*name);
  if (!ledger.ok()) return ledger.error();
  return StackHandle{std::move(*info), std::move(*ledger)};
}

Result<JobRecord> SelectJob(const Args& args, Controller& controller, Ledger& ledger,
                            const StackInfo& stack, bool quiet) {
  if (std::optional<std::string> wanted = args.Get("job")) {
    auto job = ledger.GetJob(*wanted);
    if (!job.ok()) return job.error();
    if (!job->has_value()) {
      std::string known;
      if (auto jobs = ledger.ListJobs(); jobs.ok()) {
        for (std::size_t i = 0; i < jobs->size() && i < 10; ++i) {
          known += (i ? ", " : "") + (*jobs)[i].spec.id;
        }
        if (jobs->size() > 10) known += ", ...";
      }
      return Error::InvalidInput(
          "no job '" + *wanted + "' in stack '" + stack.name + "'" +
          (known.empty() ? std::string(" (it has no jobs)") : " (its jobs: " + known + ")"));
    }
    return std::move(**job);
  }
  auto jobs = ledger.ListJobs();
  if (!jobs.ok()) return jobs.error();
  if (jobs->empty()) {
    return Error::InvalidInput("stack '" + stack.name +
                               "' has no jobs yet: run `controller enqueue GRID.csv` first");
  }
  auto newest = std::max_element(jobs->begin(), jobs->end(), [](const auto& a, const auto& b) {
    if (a.spec.created_at != b.spec.created_at) return a.spec.created_at < b.spec.created_at;
    return a.spec.id < b.spec.id;
  });
  if (jobs->size() > 1 && !quiet) {
    std::fprintf(controller.err(), "job %s (the most recent of %zu jobs; choose one with --job)\n",
                 newest->spec.id.c_str(), jobs->size());
  }
  return std::move(*newest);
}

Result<UnitRecord> RequireUnit(Ledger& ledger, const std::string& job, const std::string& unit) {
  auto record = ledger.GetUnit(job, unit);
  if (!record.ok()) return record.error();
  if (!record->has_value()) {
    return Error::InvalidInput("job '" + job + "' has no unit '" + unit + "'");
  }
  return std::move(**record);
}

}  // namespace spotgrid
