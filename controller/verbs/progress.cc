// controller progress: where a job stands. Reads the job counters (constant time for any
// grid size), the last minutes' completions, the running units, the latest failures and the
// workers' reported time, and prices that time.
#include <exception>
#include <future>
#include <memory>
#include <set>
#include <string>

#include "cost.h"
#include "job_selection.h"
#include "output.h"
#include "progress_report.h"
#include "spotgrid/services/ec2_client.h"
#include "spotgrid/services/sqs_client.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

constexpr int kRunningShown = 10;
constexpr int kFailuresShown = 5;
constexpr std::chrono::seconds kWatchInterval{2};

// Spot prices are fetched once per instance type per run: they move slowly and --watch
// would otherwise ask EC2 every two seconds.
class PriceCache {
 public:
  explicit PriceCache(PriceTable overrides) : table_(std::move(overrides)) {}

  // Fetches prices for the Spot types among `workers` not seen yet. A failure is reported in
  // `error` and the affected workers stay unpriced; progress itself still answers.
  void Refresh(Controller& controller, const std::vector<WorkerRecord>& workers) {
    std::vector<std::string> missing;
    for (const WorkerRecord& worker : workers) {
      if (!worker.spot || table_.HasOverride(worker.instance_type)) continue;
      if (fetched_.insert(worker.instance_type).second) missing.push_back(worker.instance_type);
    }
    if (missing.empty()) return;
    auto ec2 = controller.ec2();
    Status status = ec2.ok() ? FetchSpotPrices(**ec2, missing, table_) : ec2.status();
    error_ = status.ok() ? "" : status.error().ToString();
    if (!status.ok()) {
      for (const std::string& type : missing) fetched_.erase(type);  // try again next time
    }
  }
  const PriceTable& table() const { return table_; }
  const std::string& error() const { return error_; }

 private:
  PriceTable table_;
  std::set<std::string> fetched_;
  std::string error_;
};

// Messages in the dead-letter queue: one GetQueueAttributes.
Result<std::int64_t> DeadLetterDepth(Sqs& sqs, const std::string& dlq_url) {
  auto attributes = sqs.GetQueueAttributes(dlq_url, {"ApproximateNumberOfMessages"});
  if (!attributes.ok()) return attributes.error();
  auto it = attributes->find("ApproximateNumberOfMessages");
  if (it == attributes->end()) {
    return Error::Io("GetQueueAttributes", "no ApproximateNumberOfMessages for " + dlq_url);
  }
  try {
    return static_cast<std::int64_t>(std::stoll(it->second));
  } catch (const std::exception&) {
    return Error::Io("GetQueueAttributes", "unreadable ApproximateNumberOfMessages '" +
                                               it->second + "' for " + dlq_url);
  }
}

Result<ProgressReport> Collect(Controller& controller, Ledger& ledger, const StackInfo& stack,
                               JobRecord job, bool exact, PriceCache& prices) {
  ProgressInputs inputs;
  inputs.exact = exact;
  const std::string id = job.spec.id;
  if (exact) {
    auto counts = ledger.RecountJob(id);
    if (!counts.ok()) return counts.error();
  } else if (!job.inflight.empty()) {
    // Only when a writer left an intent behind: settling it costs a few reads.
    auto repair = ledger.RepairJob(id);
    if (!repair.ok()) return repair.error();
    inputs.repair = *repair;
  }
  if (exact || inputs.repair) {
    auto fresh = ledger.GetJob(id);
    if (!fresh.ok()) return fresh.error();
    if (fresh->has_value()) job = std::move(**fresh);
  }

  // The reads are independent: run them at once so the answer takes one round trip's time.
  const Clock::WallTime now = controller.clock().Now();
  auto counts = std::async(std::launch::async, [&] { return ledger.Counts(id); });
  auto window = std::async(std::launch::async, [&] {
    return ledger.CountEnteredSince(id, UnitState::kSucceeded, now - kRateWindow);
  });
  auto running = std::async(std::launch::async, [&] {
    return ledger.RecentInState(id, UnitState::kRunning, kRunningShown);
  });
  auto failures = std::async(std::launch::async, [&] {
    return ledger.RecentInState(id, UnitState::kFailed, kFailuresShown);
  });
  // The dead-letter queue's depth is shown, never a reason for progress to fail.
  std::shared_ptr<Sqs> sqs;
  std::string dead_letters_error;
  if (!stack.dlq_url.empty()) {
    auto client = controller.sqs();
    if (client.ok()) {
      sqs = *client;
    } else {
      dead_letters_error = client.error().ToString();
    }
  }
  auto dead_letters = std::async(std::launch::async, [&]() -> Result<std::int64_t> {
    if (!sqs) return Error::InvalidInput("the stack item names no dead-letter queue");
    return DeadLetterDepth(*sqs, stack.dlq_url);
  });
  auto workers = ledger.ListWorkers();
  auto counts_result = counts.get();
  auto window_result = window.get();
  auto running_result = running.get();
  auto failures_result = failures.get();
  auto dead_letters_result = dead_letters.get();
  if (dead_letters_result.ok()) {
    inputs.dead_letters = *dead_letters_result;
  } else if (sqs) {
    inputs.dead_letters_error = dead_letters_result.error().ToString();
  } else {
    inputs.dead_letters_error = dead_letters_error;
  }
  if (!counts_result.ok()) return counts_result.error();
  if (!exact) {
    // Counters that drifted from the units (a writer that failed for good between its writes)
    // are noticed here and repaired, so a job whose units all ended always reads as done.
    auto check = ledger.CheckCounts(id, *counts_result);
    if (!check.ok()) return check.error();
    if (check->repaired) {
      counts_result = ledger.Counts(id);
      if (!counts_result.ok()) return counts_result.error();
      auto fresh = ledger.GetJob(id);
      if (!fresh.ok()) return fresh.error();
      if (fresh->has_value()) job = std::move(**fresh);
    }
    if (check->looked) inputs.count_check = *check;
  }
  if (!window_result.ok()) return window_result.error();
  if (!running_result.ok()) return running_result.error();
  if (!failures_result.ok()) return failures_result.error();
  if (!workers.ok()) return workers.error();

  prices.Refresh(controller, *workers);
  inputs.job = std::move(job);
  inputs.counts = *counts_result;
  inputs.succeeded_in_window = *window_result;
  inputs.running = std::move(*running_result);
  inputs.failures = std::move(*failures_result);
  inputs.workers = std::move(*workers);
  inputs.prices = prices.table();
  inputs.price_error = prices.error();
  return BuildProgressReport(inputs, controller.clock().Now());
}

int RunProgress(const Args& args, Controller& controller) {
  auto overrides = ParsePriceOverrides(args.GetAll("price"));
  if (!overrides.ok()) return ReportError(controller, overrides.error());
  const bool json = args.Has("json");
  const bool watch = args.Has("watch");
  bool exact = args.Has("exact");
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  auto job = SelectJob(args, controller, *stack->ledger, stack->info, false);
  if (!job.ok()) return ReportError(controller, job.error());

  PriceCache prices(std::move(*overrides));
  const bool redraw = watch && controller.out_is_terminal() && !json;
  JobRecord current = std::move(*job);
  for (;;) {
    auto report = Collect(controller, *stack->ledger, stack->info, current, exact, prices);
    if (!report.ok()) return ReportError(controller, report.error());
    if (json) {
      std::fprintf(controller.out(), "%s\n", ProgressReportJson(*report).dump().c_str());
    } else {
      if (redraw) std::fputs("\x1b[H\x1b[2J", controller.out());
      std::fputs(RenderProgressText(*report).c_str(), controller.out());
      if (watch && !redraw && !report->done) std::fputs("\n", controller.out());
    }
    std::fflush(controller.out());
    if (!watch || report->done) break;
    exact = false;  // a recount is a full scan: once is enough
    controller.clock().SleepFor(kWatchInterval);
    auto fresh = stack->ledger->GetJob(current.spec.id);
    if (!fresh.ok()) return ReportError(controller, fresh.error());
    if (fresh->has_value()) current = std::move(**fresh);
  }
  return kExitOk;
}

}  // namespace

Verb ProgressVerb() {
  Verb verb;
  verb.spec.name = "progress";
  verb.spec.summary = "counts, rate, ETA and cost of a job";
  verb.spec.options = {
      JobOption(),
      FlagOption("watch", "redraw every 2 s until nothing is queued or running"),
      FlagOption("json", "one JSON object (one per redraw with --watch)"),
      FlagOption("exact", "recount every state from the unit items and repair the counters"),
      ValueOption("price", "TYPE=USD_PER_HOUR",
                  "price of an instance type, instead of the Spot price history", true),
  };
  verb.spec.details =
      "Counts come from the job's counters, so the answer takes the same time for any grid "
      "size. The rate counts units that succeeded in the last 10 minutes; the ETA divides the "
      "units left by it. Instance-hours are the workers' reported time since the job was "
      "created; Spot workers are priced from EC2's Spot price history (Linux/UNIX, the "
      "worker's zone), On-Demand workers only with --price. A worker without a known price is "
      "named, never guessed.";
  verb.run = RunProgress;
  return verb;
}

}  // namespace spotgrid
