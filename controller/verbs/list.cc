// controller list: a job's units, all or in one state, as a table, JSON lines of objects in
// one array, or CSV. `--csv` writes the units' rows back out as a grid `enqueue` accepts, so
// `list --status FAILED --csv > again.csv` is how a researcher reruns what failed.
#include <algorithm>

#include "grid.h"
#include "job_selection.h"
#include "output.h"
#include "spotgrid/core/iso8601.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

std::string ValueOf(const GridRow& row, const std::string& column) {
  for (const auto& [name, value] : row.params) {
    if (name == column) return value;
  }
  // A grid's `command` column may be kept as the row's command rather than as a parameter.
  if (column == "command") return row.command;
  return "";
}

nlohmann::json UnitSummaryJson(const UnitRecord& unit) {
  nlohmann::json j = {{"unit", unit.spec.id},
                      {"state", std::string(ToString(unit.state))},
                      {"state_since", FormatIso8601(unit.state_since)},
                      {"attempt", unit.attempt},
                      {"failures", unit.failures},
                      {"interruptions", unit.interruptions}};
  j["owner"] = unit.owner.empty() ? nlohmann::json(nullptr) : nlohmann::json(unit.owner);
  j["exit_code"] = unit.exit_code ? nlohmann::json(*unit.exit_code) : nlohmann::json(nullptr);
  if (!unit.error.empty()) j["error"] = unit.error;
  if (!unit.progress.empty()) j["progress"] = unit.progress;
  nlohmann::json rows = nlohmann::json::array();
  for (const GridRow& row : unit.spec.rows) {
    nlohmann::json params = nlohmann::json::object();
    for (const auto& [name, value] : row.params) params[name] = value;
    rows.push_back({{"line", row.line}, {"command", row.command}, {"params", params}});
  }
  j["rows"] = std::move(rows);
  return j;
}

int RunList(const Args& args, Controller& controller) {
  const bool json = args.Has("json");
  const bool csv = args.Has("csv");
  if (json && csv) {
    return ReportError(controller, Error::InvalidInput("--json and --csv exclude each other"));
  }
  std::optional<UnitState> state;
  if (auto status = args.Get("status")) {
    state = ParseUnitState(*status);
    if (!state) {
      return ReportError(controller,
                         Error::InvalidInput("--status '" + *status +
                                             "': expected QUEUED, RUNNING, SUCCEEDED, FAILED "
                                             "or CANCELLED"));
    }
  }
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  auto job = SelectJob(args, controller, *stack->ledger, stack->info, false);
  if (!job.ok()) return ReportError(controller, job.error());

  std::FILE* out = controller.out();
  // The job's columns, as the grid had them. `command` stays only if the grid had that column
  // (then the job has no template); otherwise enqueue would take it for the command.
  std::vector<std::string> columns;
  const bool grid_had_command = job->spec.command_template.empty();
  for (const std::string& column : job->spec.columns) {
    if (column == "command" && !grid_had_command) continue;
    columns.push_back(column);
  }
  if (grid_had_command && std::find(columns.begin(), columns.end(), "command") == columns.end()) {
    columns.push_back("command");
  }
  if (csv) {
    std::string line;
    for (std::size_t i = 0; i < columns.size(); ++i) line += (i ? "," : "") + CsvEscape(columns[i]);
    std::fprintf(out, "%s\n", line.c_str());
  }

  const Clock::WallTime now = controller.clock().Now();
  TextTable table({"unit", "state", "since", "attempt", "exit", "worker"});
  std::int64_t listed = 0;
  bool first_json = true;
  if (json) std::fputs("[", out);
  Status status =
      stack->ledger->ListUnits(job->spec.id, state, [&](const std::vector<UnitRecord>& page) {
        for (const UnitRecord& unit : page) {
          ++listed;
          if (csv) {
            for (const GridRow& row : unit.spec.rows) {
              std::string line;
              for (std::size_t i = 0; i < columns.size(); ++i) {
                line += (i ? "," : "") + CsvEscape(ValueOf(row, columns[i]));
              }
              line += '\n';
              std::fputs(line.c_str(), out);
            }
          } else if (json) {
            std::fprintf(out, "%s\n%s", first_json ? "" : ",",
                         UnitSummaryJson(unit).dump().c_str());
            first_json = false;
          } else {
            table.AddRow({unit.spec.id, std::string(ToString(unit.state)),
                          FormatAge(unit.state_since, now), std::to_string(unit.attempt),
                          unit.exit_code ? std::to_string(*unit.exit_code) : "-",
                          unit.owner.empty() ? "-" : unit.owner});
          }
        }
        return true;
      });
  if (!status.ok()) {
    if (json) std::fputs("]\n", out);
    return ReportError(controller, status);
  }
  if (json) std::fputs("\n]\n", out);
  if (!json && !csv) {
    if (listed == 0) {
      std::fprintf(out, "job %s has no %sunits\n", job->spec.id.c_str(),
                   state ? (std::string(ToString(*state)) + " ").c_str() : "");
    } else {
      std::fputs(table.Render().c_str(), out);
    }
  }
  return kExitOk;
}

}  // namespace

Verb ListVerb() {
  Verb verb;
  verb.spec.name = "list";
  verb.spec.summary = "list a job's units (all, or in one state)";
  verb.spec.options = {
      JobOption(),
      ValueOption("status", "STATE",
                  "only units in STATE: QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED"),
      FlagOption("json", "a JSON array of units"),
      FlagOption("csv", "the units' rows as a grid that `controller enqueue` accepts"),
  };
  verb.spec.details =
      "`controller list --status FAILED --csv > retry.csv` writes the failed rows back out "
      "with the job's columns, ready to enqueue as a new job.";
  verb.run = RunList;
  return verb;
}

}  // namespace spotgrid
