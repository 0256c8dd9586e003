// controller show UNIT: one unit in full: its rows, state, and every attempt with worker,
// times, exit code, reason and error, and where its outputs, checkpoint and logs are in S3.
#include "grid.h"
#include "job_selection.h"
#include "output.h"
#include "spotgrid/core/iso8601.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

nlohmann::json OptionalTime(const std::optional<Clock::WallTime>& time) {
  return time ? nlohmann::json(FormatIso8601(*time)) : nlohmann::json(nullptr);
}

nlohmann::json OptionalInt(const std::optional<int>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

std::string TimeText(const std::optional<Clock::WallTime>& time) {
  return time ? FormatIso8601(*time) : "-";
}

int RunShow(const Args& args, Controller& controller) {
  const std::string unit_id = args.positionals().at(0);
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  auto job = SelectJob(args, controller, *stack->ledger, stack->info, args.Has("json"));
  if (!job.ok()) return ReportError(controller, job.error());
  auto unit = RequireUnit(*stack->ledger, job->spec.id, unit_id);
  if (!unit.ok()) return ReportError(controller, unit.error());

  const StackInfo& s = stack->info;
  const std::string& j = job->spec.id;
  const std::string output = S3Url(s.bucket, OutputPrefix(s, j, unit_id));
  const std::string checkpoint = S3Url(s.bucket, CheckpointPrefix(s, j, unit_id));
  auto logs_of = [&](std::int64_t attempt) {
    return S3Url(s.bucket, LogsPrefix(s, j, unit_id, attempt));
  };

  if (args.Has("json")) {
    nlohmann::json out = {{"job", j},
                          {"unit", unit->spec.id},
                          {"state", std::string(ToString(unit->state))},
                          {"state_since", FormatIso8601(unit->state_since)},
                          {"attempt", unit->attempt},
                          {"failures", unit->failures},
                          {"interruptions", unit->interruptions},
                          {"owner", unit->owner},
                          {"lease_until", OptionalTime(unit->lease_until)},
                          {"heartbeat_at", OptionalTime(unit->heartbeat_at)},
                          {"progress", unit->progress},
                          {"created_at", FormatIso8601(unit->created_at)},
                          {"started_at", OptionalTime(unit->started_at)},
                          {"finished_at", OptionalTime(unit->finished_at)},
                          {"exit_code", OptionalInt(unit->exit_code)},
                          {"error", unit->error},
                          {"output", output},
                          {"checkpoint", checkpoint}};
    nlohmann::json rows = nlohmann::json::array();
    for (const GridRow& row : unit->spec.rows) {
      nlohmann::json params = nlohmann::json::object();
      for (const auto& [name, value] : row.params) params[name] = value;
      rows.push_back({{"line", row.line}, {"command", row.command}, {"params", params}});
    }
    out["rows"] = std::move(rows);
    nlohmann::json attempts = nlohmann::json::array();
    for (const AttemptRecord& a : unit->attempts) {
      attempts.push_back({{"n", a.n},
                          {"worker", a.owner},
                          {"started_at", FormatIso8601(a.started_at)},
                          {"finished_at", OptionalTime(a.finished_at)},
                          {"exit_code", OptionalInt(a.exit_code)},
                          {"reason", a.reason},
                          {"error", a.error},
                          {"logs", logs_of(a.n)},
                          {"stdout", logs_of(a.n) + "stdout.log"},
                          {"stderr", logs_of(a.n) + "stderr.log"}});
    }
    out["attempts"] = std::move(attempts);
    std::fprintf(controller.out(), "%s\n", out.dump(2).c_str());
    return kExitOk;
  }

  std::string text = "unit " + unit->spec.id + " of job " + j + "\n";
  text += "state:       " + std::string(ToString(unit->state)) + " since " +
          FormatIso8601(unit->state_since) + "\n";
  text += "attempts:    " + std::to_string(unit->attempt) + " (failures " +
          std::to_string(unit->failures) + ", interruptions " +
          std::to_string(unit->interruptions) + ")\n";
  if (!unit->owner.empty()) text += "worker:      " + unit->owner + "\n";
  if (unit->heartbeat_at) text += "heartbeat:   " + FormatIso8601(*unit->heartbeat_at) + "\n";
  if (!unit->progress.empty()) text += "progress:    " + unit->progress + "\n";
  if (unit->exit_code) text += "exit code:   " + std::to_string(*unit->exit_code) + "\n";
  if (!unit->error.empty()) text += "error:       " + unit->error + "\n";
  text += "output:      " + output + "\n";
  text += "checkpoint:  " + checkpoint + "\n";
  for (const GridRow& row : unit->spec.rows) {
    text += "row (line " + std::to_string(row.line) + "): " + row.command + "\n";
    for (const auto& [name, value] : row.params) text += "  " + name + "=" + value + "\n";
  }
  if (unit->attempts.empty()) {
    text += "no attempt yet\n";
  } else {
    text += "\n";
    TextTable table({"#", "worker", "started", "finished", "exit", "reason", "error"});
    for (const AttemptRecord& a : unit->attempts) {
      table.AddRow({std::to_string(a.n), a.owner.empty() ? "-" : a.owner,
                    FormatIso8601(a.started_at), TimeText(a.finished_at),
                    a.exit_code ? std::to_string(*a.exit_code) : "-",
                    a.reason.empty() ? "-" : a.reason, a.error.empty() ? "-" : a.error});
    }
    text += table.Render();
    text += "\nlogs:\n";
    for (const AttemptRecord& a : unit->attempts) {
      text += "  #" + std::to_string(a.n) + "  " + logs_of(a.n) + "stdout.log  " + logs_of(a.n) +
              "stderr.log\n";
    }
  }
  std::fputs(text.c_str(), controller.out());
  return kExitOk;
}

}  // namespace

Verb ShowVerb() {
  Verb verb;
  verb.spec.name = "show";
  verb.spec.summary = "one unit: its rows, state, every attempt and its S3 locations";
  verb.spec.positionals = "UNIT";
  verb.spec.min_positionals = 1;
  verb.spec.max_positionals = 1;
  verb.spec.options = {
      JobOption(),
      FlagOption("json", "one JSON object"),
  };
  verb.run = RunShow;
  return verb;
}

}  // namespace spotgrid
