// controller workers: the stack's agents as their heartbeats describe them: instance, type,
// Spot or On-Demand, units in hand, last heartbeat and idle time. A worker whose heartbeat
// is older than three heartbeat intervals is marked stale: it was probably interrupted or
// lost its network, and its units will be taken over when their leases expire.
#include <algorithm>

#include "job_selection.h"
#include "output.h"
#include "spotgrid/core/iso8601.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

// Three missed heartbeats tell a dead worker from a slow DynamoDB write. Each worker records
// its own heartbeat interval; an item without one gets the agent's default.
constexpr int kMissedHeartbeatsForStale = 3;

std::chrono::seconds StaleAfter(const WorkerRecord& worker) {
  int interval = worker.heartbeat_s > 0 ? worker.heartbeat_s : WorkerRecord{}.heartbeat_s;
  return kMissedHeartbeatsForStale * std::chrono::seconds(interval);
}

bool IsStale(const WorkerRecord& worker, Clock::WallTime now) {
  return worker.state != WorkerState::kEnded && now - worker.last_heartbeat > StaleAfter(worker);
}

int RunWorkers(const Args& args, Controller& controller) {
  const bool json = args.Has("json");
  const bool all = args.Has("all");
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  auto workers = stack->ledger->ListWorkers();
  if (!workers.ok()) return ReportError(controller, workers.error());
  const Clock::WallTime now = controller.clock().Now();

  std::vector<WorkerRecord> shown;
  for (WorkerRecord& worker : *workers) {
    if (all || worker.state != WorkerState::kEnded) shown.push_back(std::move(worker));
  }
  std::sort(shown.begin(), shown.end(), [](const WorkerRecord& a, const WorkerRecord& b) {
    return a.instance_id < b.instance_id;
  });

  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const WorkerRecord& w : shown) {
      out.push_back(
          {{"instance", w.instance_id},
           {"type", w.instance_type},
           {"market", w.spot ? "spot" : "on-demand"},
           {"availability_zone", w.availability_zone},
           {"slots", w.slots},
           {"heartbeat_s", w.heartbeat_s},
           {"units", w.units_in_hand},
           {"state", ToString(w.state)},
           {"started_at", FormatIso8601(w.started_at)},
           {"last_heartbeat", FormatIso8601(w.last_heartbeat)},
           {"heartbeat_age_s",
            std::chrono::duration_cast<std::chrono::seconds>(now - w.last_heartbeat).count()},
           {"idle_since",
            w.idle_since ? nlohmann::json(FormatIso8601(*w.idle_since)) : nlohmann::json(nullptr)},
           {"ended_at",
            w.ended_at ? nlohmann::json(FormatIso8601(*w.ended_at)) : nlohmann::json(nullptr)},
           {"stale", IsStale(w, now)}});
    }
    std::fprintf(controller.out(), "%s\n", out.dump().c_str());
    return kExitOk;
  }
  if (shown.empty()) {
    std::fprintf(controller.out(), "no %sworkers in stack %s\n", all ? "" : "live ",
                 stack->info.name.c_str());
    return kExitOk;
  }
  TextTable table(
      {"instance", "type", "market", "zone", "units", "heartbeat", "idle since", "state"});
  int stale = 0;
  for (const WorkerRecord& w : shown) {
    std::string units = std::to_string(w.units_in_hand.size()) + "/" + std::to_string(w.slots);
    for (std::size_t i = 0; i < w.units_in_hand.size() && i < 3; ++i) {
      units += (i ? ", " : " ") + w.units_in_hand[i];
    }
    if (w.units_in_hand.size() > 3) units += ", ...";
    std::string state(ToString(w.state));
    if (IsStale(w, now)) {
      state += " (STALE)";
      ++stale;
    }
    table.AddRow({w.instance_id, w.instance_type, w.spot ? "Spot" : "On-Demand",
                  w.availability_zone.empty() ? "-" : w.availability_zone, units,
                  FormatAge(w.last_heartbeat, now),
                  w.idle_since ? FormatAge(*w.idle_since, now) : "-", state});
  }
  std::fputs(table.Render().c_str(), controller.out());
  if (stale > 0) {
    std::fprintf(controller.out(),
                 "%d worker(s) STALE: no heartbeat for over %d heartbeat intervals; their units "
                 "are requeued when their leases expire\n",
                 stale, kMissedHeartbeatsForStale);
  }
  return kExitOk;
}

}  // namespace

Verb WorkersVerb() {
  Verb verb;
  verb.spec.name = "workers";
  verb.spec.summary = "the stack's agents, from their heartbeats";
  verb.spec.options = {
      FlagOption("json", "a JSON array of workers"),
      FlagOption("all", "include workers that have ended"),
  };
  verb.run = RunWorkers;
  return verb;
}

}  // namespace spotgrid
