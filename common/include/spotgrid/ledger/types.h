// The ledger's records: stack, job, unit, worker. Formats are documented in docs/ledger.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spotgrid/core/clock.h"

namespace spotgrid {

enum class UnitState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
inline constexpr UnitState kAllUnitStates[] = {UnitState::kQueued, UnitState::kRunning,
                                               UnitState::kSucceeded, UnitState::kFailed,
                                               UnitState::kCancelled};

// "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED".
std::string_view ToString(UnitState state);
std::optional<UnitState> ParseUnitState(std::string_view text);  // case-insensitive
bool IsTerminal(UnitState state);  // SUCCEEDED, FAILED, CANCELLED

// Where a job's enqueue stands (docs/ledger.md, "Job item"): WRITING until every unit is
// written and its message sent, then DONE.
enum class EnqueueState { kWriting, kDone };
std::string_view ToString(EnqueueState state);  // "WRITING", "DONE"
// An unknown or missing value reads as WRITING: a rerun of the enqueue then completes it.
EnqueueState ParseEnqueueState(std::string_view text);

// A worker as its item says: taking units, draining before it goes, or gone.
enum class WorkerState { kRunning, kDraining, kEnded };
std::string_view ToString(WorkerState state);  // "running", "draining", "ended"
// An unknown value reads as running (a newer agent's state is at least alive).
WorkerState ParseWorkerState(std::string_view text);

struct StackInfo {
  std::string name;
  std::string region;
  std::string table;  // "spotgrid-<name>"
  std::string bucket;
  std::string prefix;  // no leading or trailing '/'; may be empty
  std::string queue_url, queue_arn;
  std::string dlq_url, dlq_arn;
  int visibility_s = 900;  // SQS visibility timeout of the work queue
  int max_receives = 10;   // receives before SQS moves a message to the DLQ
  Clock::WallTime created_at{};
};

// Retry rules per job, as AWS Batch's evaluateOnExit: a listed fail code fails the unit at
// once; otherwise a failure is retried while failures < max_attempts (and, when
// retry_exit_codes is non-empty, only for a listed code). Interruptions never count.
struct RetryRules {
  int max_attempts = 3;
  std::vector<int> retry_exit_codes;
  std::vector<int> fail_exit_codes;
};

// One grid row as it reaches the agent: the command (template already substituted, values
// shell-quoted) and the row's values, which also become environment variables.
struct GridRow {
  int line = 0;  // line of the row's first character in the grid file (1-based)
  std::string command;
  std::vector<std::pair<std::string, std::string>> params;  // column order
};

// A unit is one or more consecutive rows (--chunk) run one after another.
struct UnitSpec {
  std::string id;
  std::vector<GridRow> rows;
  std::string content_sha256;  // over rows (commands and params), to detect a changed row
};

struct JobSpec {
  std::string id;
  std::string command_template;  // empty when the grid has a `command` column
  std::string grid_file;
  std::string grid_sha256;
  std::vector<std::string> columns;
  int chunk = 1;
  RetryRules retry;
  std::int64_t timeout_s = 0;  // per attempt; 0 = none
  std::int64_t total = 0;      // number of units
  Clock::WallTime created_at{};
};

// A counting intent left in the job item between the two writes of a counted transition.
struct CountIntent {
  std::string unit;
  UnitState from = UnitState::kRunning;
  UnitState to = UnitState::kSucceeded;
  std::int64_t attempt = 0;
  std::string writer;  // "<instance>/<slot>" or "controller"
  Clock::WallTime at{};
};

struct JobCounts {
  std::int64_t total = 0, queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
};

struct JobRecord {
  JobSpec spec;
  EnqueueState enqueue_state = EnqueueState::kWriting;
  std::int64_t sent_through = 0;
  // Stored counters (queued and running are derived: see docs/ledger.md).
  std::int64_t succeeded = 0, failed = 0, cancelled = 0;
  std::vector<CountIntent> inflight;
};

// A job the queue still serves: its enqueue is unfinished, units have not all ended, or an
// intent left in the job item counts a unit as ended before the unit has moved (repair
// settles it first). Idle agents stay and the sweeper looks at such jobs only.
bool IsActive(const JobRecord& job);

struct AttemptRecord {
  std::int64_t n = 0;
  std::string owner;
  Clock::WallTime started_at{};
  std::optional<Clock::WallTime> finished_at;
  std::optional<int> exit_code;
  std::string reason;  // succeeded | failed | timeout | interrupted | lost | cancelled
  std::string error;
};

struct UnitRecord {
  std::string job;
  UnitSpec spec;
  UnitState state = UnitState::kQueued;
  Clock::WallTime state_since{};
  std::int64_t attempt = 0;  // claims so far
  std::int64_t failures = 0;
  std::int64_t interruptions = 0;
  std::string owner;  // "<instance>/<slot>" while RUNNING
  std::optional<Clock::WallTime> lease_until;
  std::optional<Clock::WallTime> heartbeat_at;
  std::string progress;  // what the command last wrote to its progress file
  Clock::WallTime created_at{};
  std::optional<Clock::WallTime> started_at, finished_at;
  std::optional<int> exit_code;
  std::string error;
  std::vector<AttemptRecord> attempts;
};

struct WorkerRecord {
  std::string instance_id;
  std::string instance_type;
  bool spot = false;
  std::string availability_zone;
  int slots = 1;
  int heartbeat_s = 30;  // the agent's heartbeat interval: `workers` judges staleness by it
  std::vector<std::string> units_in_hand;  // "<job>/<unit>"
  Clock::WallTime started_at{};
  Clock::WallTime last_heartbeat{};
  std::optional<Clock::WallTime> idle_since;
  WorkerState state = WorkerState::kRunning;
  std::optional<Clock::WallTime> ended_at;
};

// S3 keys of a unit (docs/ledger.md): "<prefix>/<job>/<unit>/output/", ".../checkpoint/",
// ".../logs/<attempt>/". `prefix` may be empty.
std::string UnitKeyPrefix(const StackInfo& stack, std::string_view job, std::string_view unit);
std::string OutputPrefix(const StackInfo& stack, std::string_view job, std::string_view unit);
std::string CheckpointPrefix(const StackInfo& stack, std::string_view job, std::string_view unit);
std::string LogsPrefix(const StackInfo& stack, std::string_view job, std::string_view unit,
                       std::int64_t attempt);

// The SQS message body for a unit: {"v":1,"job":..,"unit":..}, and its parser.
std::string EncodeUnitMessage(std::string_view job, std::string_view unit);
std::optional<std::pair<std::string, std::string>> DecodeUnitMessage(std::string_view body);

}  // namespace spotgrid
