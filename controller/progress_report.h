// Where a job stands, computed from what `controller progress` read from the ledger: counts
// with percentages, the completion rate over a recent window, the ETA, running units, the
// latest failures and the cost. A pure function of its inputs and `now`, so it is tested with
// a fake clock; rendering (text and JSON) is separate from computing.
//
// Thread-safety: pure functions over plain values.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cost.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/ledger/ledger.h"
#include "spotgrid/ledger/types.h"

namespace spotgrid {

// The completion rate looks back this far: long enough to smooth out units finishing in
// bursts, short enough to follow a fleet that grows or shrinks.
inline constexpr std::chrono::minutes kRateWindow{10};

struct ProgressInputs {
  JobRecord job;
  JobCounts counts;
  std::int64_t succeeded_in_window = 0;  // units that entered SUCCEEDED in the last kRateWindow
  std::vector<UnitRecord> running;       // newest first (RecentInState RUNNING)
  std::vector<UnitRecord> failures;      // newest first (RecentInState FAILED)
  std::vector<WorkerRecord> workers;
  PriceTable prices;
  std::string price_error;             // why Spot prices could not be read ("" if they could)
  std::optional<RepairReport> repair;  // when counters were repaired on the way
  std::optional<CountCheck> count_check;  // when counters were compared with the units
  bool exact = false;                     // counts recounted from the unit items
  // Messages in the stack's dead-letter queue (ApproximateNumberOfMessages); nullopt when it
  // could not be read, with the reason in dead_letters_error.
  std::optional<std::int64_t> dead_letters;
  std::string dead_letters_error;
};

struct RunningUnitView {
  std::string unit;
  std::string owner;
  std::int64_t attempt = 0;
  std::chrono::seconds elapsed{0};
  std::optional<std::chrono::seconds> heartbeat_age;
  std::string progress;
};

struct FailureView {
  std::string unit;
  std::int64_t attempt = 0;
  std::optional<int> exit_code;
  std::string error;
  std::chrono::seconds age{0};
};

struct ProgressReport {
  std::string job;
  JobCounts counts;
  bool enqueue_done = true;
  bool done = false;               // nothing queued or running and the enqueue is complete
  std::chrono::seconds window{0};  // the window the rate was measured over
  double units_per_minute = 0;
  std::optional<std::chrono::seconds> eta;  // nullopt: no rate yet (or done)
  std::vector<RunningUnitView> running;
  std::vector<FailureView> failures;
  CostSummary cost;
  std::string price_error;
  std::optional<RepairReport> repair;
  std::optional<CountCheck> count_check;
  bool exact = false;
  std::optional<std::int64_t> dead_letters;  // as in ProgressInputs
  std::string dead_letters_error;
};

ProgressReport BuildProgressReport(const ProgressInputs& inputs, Clock::WallTime now);

std::string RenderProgressText(const ProgressReport& report);
nlohmann::json ProgressReportJson(const ProgressReport& report);

}  // namespace spotgrid
