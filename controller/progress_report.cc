#include "progress_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "output.h"

namespace spotgrid {
namespace {

template <typename Duration>
std::chrono::seconds Seconds(Duration d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d);
}

std::string OneLine(std::string text, std::size_t max) {
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (text.size() > max) text = text.substr(0, max - 3) + "...";
  return text;
}

}  // namespace

ProgressReport BuildProgressReport(const ProgressInputs& inputs, Clock::WallTime now) {
  ProgressReport report;
  report.job = inputs.job.spec.id;
  report.counts = inputs.counts;
  report.enqueue_done = inputs.job.enqueue_state == EnqueueState::kDone;
  report.done = report.enqueue_done && inputs.counts.queued == 0 && inputs.counts.running == 0;
  report.exact = inputs.exact;
  report.repair = inputs.repair;
  report.count_check = inputs.count_check;
  report.price_error = inputs.price_error;
  report.dead_letters = inputs.dead_letters;
  report.dead_letters_error = inputs.dead_letters_error;

  // A job younger than the window is measured over its own age, so its first minutes are not
  // diluted by time before it existed.
  auto age = Seconds(now - inputs.job.spec.created_at);
  report.window = std::clamp(age, std::chrono::seconds(1), std::chrono::seconds(kRateWindow));
  report.units_per_minute = static_cast<double>(inputs.succeeded_in_window) * 60.0 /
                            static_cast<double>(report.window.count());
  std::int64_t remaining = inputs.counts.queued + inputs.counts.running;
  if (remaining == 0) {
    report.eta = report.done ? std::optional(std::chrono::seconds(0)) : std::nullopt;
  } else if (report.units_per_minute > 0) {
    report.eta = std::chrono::seconds(static_cast<long long>(
        std::ceil(static_cast<double>(remaining) * 60.0 / report.units_per_minute)));
  }

  for (const UnitRecord& unit : inputs.running) {
    RunningUnitView view;
    view.unit = unit.spec.id;
    view.owner = unit.owner;
    view.attempt = unit.attempt;
    view.elapsed = Seconds(now - unit.started_at.value_or(unit.state_since));
    if (unit.heartbeat_at) view.heartbeat_age = Seconds(now - *unit.heartbeat_at);
    view.progress = unit.progress;
    report.running.push_back(std::move(view));
  }
  for (const UnitRecord& unit : inputs.failures) {
    FailureView view;
    view.unit = unit.spec.id;
    view.attempt = unit.attempt;
    view.exit_code = unit.exit_code;
    view.error = unit.error;
    view.age = Seconds(now - unit.finished_at.value_or(unit.state_since));
    report.failures.push_back(std::move(view));
  }
  report.cost = ComputeCost(inputs.workers, inputs.job.spec.created_at, inputs.prices,
                            inputs.counts.succeeded + inputs.counts.failed, remaining);
  return report;
}

std::string RenderProgressText(const ProgressReport& report) {
  const JobCounts& c = report.counts;
  std::string out = "job " + report.job + ": " + FormatCount(c.total) + " units";
  if (!report.enqueue_done) out += " (enqueue not finished: rerun the same enqueue command)";
  if (report.done) out += ", done";
  out += report.exact ? " (recounted from the unit items)\n" : "\n";
  if (report.repair && (report.repair->intents_settled + report.repair->intents_reverted) > 0) {
    out += "settled " +
           std::to_string(report.repair->intents_settled + report.repair->intents_reverted) +
           " unfinished counter update(s): " + std::to_string(report.repair->intents_settled) +
           " kept, " + std::to_string(report.repair->intents_reverted) + " undone\n";
  }
  if (report.count_check && report.count_check->repaired) {
    const JobCounts& b = report.count_check->before;
    out += "repaired counters that had drifted from the units (succeeded " +
           FormatCount(b.succeeded) + ", failed " + FormatCount(b.failed) + ", cancelled " +
           FormatCount(b.cancelled) + " before)\n";
  }

  TextTable counts({"state", "units", "share"});
  auto add = [&](const char* name, std::int64_t n) {
    counts.AddRow({name, FormatCount(n), FormatPercent(n, c.total)});
  };
  add("QUEUED", c.queued);
  add("RUNNING", c.running);
  add("SUCCEEDED", c.succeeded);
  add("FAILED", c.failed);
  add("CANCELLED", c.cancelled);
  out += counts.Render();

  char line[256];
  std::snprintf(line, sizeof(line), "rate: %.1f units/min over the last %s",
                report.units_per_minute, FormatDuration(report.window).c_str());
  out += line;
  if (report.done) {
    out += "\n";
  } else if (report.eta) {
    out += "; ETA " + FormatDuration(*report.eta) + "\n";
  } else {
    out += "; ETA unknown (no unit finished in that window)\n";
  }

  const CostSummary& cost = report.cost;
  std::snprintf(line, sizeof(line), "instance-hours: %.2f", cost.instance_seconds / 3600.0);
  out += line;
  if (cost.instance_seconds == 0) {
    out += "; spent: $0.00 (no worker has reported yet)\n";
  } else if (cost.fully_priced()) {
    out += "; spent: " + FormatUsd(cost.spent_usd);
    if (cost.to_finish_usd) {
      out += "; to finish: about " + FormatUsd(*cost.to_finish_usd);
    } else if (!report.done) {
      out += "; to finish: unknown until a unit finishes";
    }
    out += "\n";
  } else {
    std::snprintf(line, sizeof(line), "; spent: %s on %.2f priced instance-hours",
                  FormatUsd(cost.spent_usd).c_str(), cost.priced_seconds / 3600.0);
    out += line;
    out += "; no price known for ";
    for (std::size_t i = 0; i < cost.unpriced_types.size(); ++i) {
      out += (i ? ", " : "") + cost.unpriced_types[i];
    }
    out += " (give --price TYPE=USD_PER_HOUR)\n";
  }
  if (!report.price_error.empty()) out += "spot prices unavailable: " + report.price_error + "\n";
  // The queue is the stack's: its dead letters may belong to any job.
  if (report.dead_letters && *report.dead_letters > 0) {
    out += "dead-letter queue: " + FormatCount(*report.dead_letters) +
           " message(s); the agents' sweeper marks their units FAILED (poison), and "
           "`controller retry --failed` requeues them\n";
  } else if (!report.dead_letters_error.empty()) {
    out += "dead-letter queue unreadable: " + report.dead_letters_error + "\n";
  }

  if (!report.running.empty()) {
    out += "\nrunning (newest first):\n";
    TextTable table({"unit", "worker", "attempt", "elapsed", "heartbeat", "progress"});
    for (const RunningUnitView& unit : report.running) {
      table.AddRow({unit.unit, unit.owner, std::to_string(unit.attempt),
                    FormatDuration(unit.elapsed),
                    unit.heartbeat_age ? FormatDuration(*unit.heartbeat_age) + " ago" : "-",
                    OneLine(unit.progress, 60)});
    }
    out += table.Render();
    if (c.running > static_cast<std::int64_t>(report.running.size())) {
      out += "... and " +
             FormatCount(c.running - static_cast<std::int64_t>(report.running.size())) + " more\n";
    }
  }
  if (!report.failures.empty()) {
    out += "\nlatest failures:\n";
    TextTable table({"unit", "attempt", "exit", "when", "error"});
    for (const FailureView& unit : report.failures) {
      table.AddRow({unit.unit, std::to_string(unit.attempt),
                    unit.exit_code ? std::to_string(*unit.exit_code) : "-",
                    FormatDuration(unit.age) + " ago", OneLine(unit.error, 80)});
    }
    out += table.Render();
  }
  return out;
}

nlohmann::json ProgressReportJson(const ProgressReport& report) {
  const JobCounts& c = report.counts;
  nlohmann::json j;
  j["job"] = report.job;
  j["done"] = report.done;
  j["enqueue_done"] = report.enqueue_done;
  j["exact"] = report.exact;
  j["counts"] = {{"total", c.total},         {"queued", c.queued}, {"running", c.running},
                 {"succeeded", c.succeeded}, {"failed", c.failed}, {"cancelled", c.cancelled}};
  j["rate"] = {{"units_per_minute", report.units_per_minute}, {"window_s", report.window.count()}};
  j["eta_s"] = report.eta ? nlohmann::json(report.eta->count()) : nlohmann::json(nullptr);
  nlohmann::json running = nlohmann::json::array();
  for (const RunningUnitView& unit : report.running) {
    running.push_back(
        {{"unit", unit.unit},
         {"worker", unit.owner},
         {"attempt", unit.attempt},
         {"elapsed_s", unit.elapsed.count()},
         {"heartbeat_age_s", unit.heartbeat_age ? nlohmann::json(unit.heartbeat_age->count())
                                                : nlohmann::json(nullptr)},
         {"progress", unit.progress}});
  }
  j["running"] = std::move(running);
  nlohmann::json failures = nlohmann::json::array();
  for (const FailureView& unit : report.failures) {
    failures.push_back(
        {{"unit", unit.unit},
         {"attempt", unit.attempt},
         {"exit_code", unit.exit_code ? nlohmann::json(*unit.exit_code) : nlohmann::json(nullptr)},
         {"error", unit.error},
         {"age_s", unit.age.count()}});
  }
  j["failures"] = std::move(failures);
  const CostSummary& cost = report.cost;
  nlohmann::json workers = nlohmann::json::array();
  for (const WorkerCost& worker : cost.workers) {
    workers.push_back(
        {{"instance", worker.instance_id},
         {"type", worker.instance_type},
         {"spot", worker.spot},
         {"seconds", worker.seconds},
         {"usd_per_hour",
          worker.price ? nlohmann::json(worker.price->usd_per_hour) : nlohmann::json(nullptr)},
         {"price_source", worker.price ? worker.price->source : ""},
         {"usd", worker.price ? nlohmann::json(worker.usd) : nlohmann::json(nullptr)}});
  }
  j["cost"] = {{"instance_hours", cost.instance_seconds / 3600.0},
               {"priced_instance_hours", cost.priced_seconds / 3600.0},
               {"spent_usd", cost.spent_usd},
               {"fully_priced", cost.fully_priced()},
               {"unpriced_types", cost.unpriced_types},
               {"to_finish_usd",
                cost.to_finish_usd ? nlohmann::json(*cost.to_finish_usd) : nlohmann::json(nullptr)},
               {"workers", std::move(workers)}};
  if (!report.price_error.empty()) j["price_error"] = report.price_error;
  j["dead_letters"] =
      report.dead_letters ? nlohmann::json(*report.dead_letters) : nlohmann::json(nullptr);
  if (!report.dead_letters_error.empty()) j["dead_letters_error"] = report.dead_letters_error;
  if (report.repair) {
    j["repair"] = {{"settled", report.repair->intents_settled},
                   {"reverted", report.repair->intents_reverted},
                   {"pending", report.repair->intents_pending}};
  }
  if (report.count_check && report.count_check->repaired) {
    const JobCounts& b = report.count_check->before;
    j["counters_repaired"] = {{"total", b.total},
                              {"succeeded", b.succeeded},
                              {"failed", b.failed},
                              {"cancelled", b.cancelled}};
  }
  return j;
}

}  // namespace spotgrid
