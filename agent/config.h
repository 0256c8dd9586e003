// The agent's settings and where they come from.
//
// Every setting has a flag (`--slots 4`), an environment variable (`SPOTGRID_SLOTS=4`) and a
// line in the environment file (`SPOTGRID_SLOTS=4`, the file systemd's unit reads with
// EnvironmentFile=, default /etc/spotgrid/agent.env). A flag beats the environment, which beats
// the file, which beats the default. Defaults suit an EC2 worker.
//
// Thread-safety: plain values.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"

namespace spotgrid::agent {

// What the agent does once the queue has stayed empty for idle_shutdown.
enum class DrainAction {
  kTerminate,  // terminate this instance (through its Auto Scaling group when it has one)
  kExit,       // exit 0 and leave the instance running
  kStay,       // keep polling
};

std::string_view ToString(DrainAction action);

// What a rebalance recommendation (elevated risk of a Spot interruption) makes the agent do.
enum class RebalancePolicy {
  kIgnore,      // nothing
  kStopTaking,  // take no new message; running units go on and end normally, never killed
  kCheckpoint,  // drain as for a stop signal (D = now + stop_timeout - 5 s)
};

std::string_view ToString(RebalancePolicy policy);

// The text of a checkpoint signal as the usage shows it: "TERM", "USR1", or the number.
std::string SignalName(int signal);

struct AgentConfig {
  std::string stack;  // required
  int slots = 1;      // units at once, 1..1024
  std::filesystem::path work_dir = "/var/lib/spotgrid";
  std::chrono::seconds sync_interval{300};
  std::chrono::seconds heartbeat{30};
  // A lease lasts this long past each renewal; derived: 3 heartbeats, at least 10 s. Another
  // agent may take a unit over once its lease has expired.
  std::chrono::seconds lease{90};
  std::chrono::seconds idle_shutdown{600};
  DrainAction on_drain = DrainAction::kTerminate;
  // Units run as this user when the agent runs as root; empty = as the agent's own user
  // (only allowed when the agent is not root).
  std::string user = "spotgrid";
  std::filesystem::path env_file = "/etc/spotgrid/agent.env";
  // SIGTERM to a unit's process group, then SIGKILL after this.
  std::chrono::seconds kill_grace{10};
  int poll_wait_s = 20;  // SQS long-poll wait, 1..20

  // Interruptions and drain (docs/agent.md "Interruptions and drain").
  // Sent to a running unit's process group when a drain starts, so it checkpoints.
  int checkpoint_signal = 15;  // SIGTERM
  // systemd's TimeoutStopSec for the service: a drain started by SIGTERM (or a lifecycle
  // transition) must be over 5 s before it runs out. 10s..1h.
  std::chrono::seconds stop_timeout{90};
  // Kept after the units' grace period for their uploads (checkpoint, outputs, logs); less
  // than stop_timeout - 5 s.
  std::chrono::seconds upload_reserve{30};
  RebalancePolicy rebalance = RebalancePolicy::kStopTaking;
  // How often instance metadata is asked for a Spot notice, a rebalance recommendation or a
  // lifecycle transition. 1s..1h.
  std::chrono::seconds spot_poll{5};
  // The Auto Scaling group this instance belongs to; empty: found with
  // DescribeAutoScalingInstances at start (not in a group: no Auto Scaling calls at all).
  std::string asg_name;
  // The group's termination lifecycle hook, heartbeated during a drain the group started and
  // completed (CONTINUE) after it; empty: such a drain still happens, but can't complete.
  std::string lifecycle_hook;

  std::string log_level = "info";  // trace | debug | info | warn | error
  bool show_help = false;          // --help: print AgentUsage() and exit 0
  bool show_version = false;       // --version
};

// Parses argv (without the program name) over the environment and the environment file.
// Errors (category kInvalidInput) name the source and the setting: "--slots: expected an
// integer 1..1024, got 'x'", "/etc/spotgrid/agent.env:3: SPOTGRID_HEARTBEAT: expected a
// duration like 30s, 5m, 1h". A missing environment file is fine unless --env-file named it.
// Durations are spotgrid::ParseDuration's ("30", "30s", "5m", "2h", "1d").
Result<AgentConfig> LoadAgentConfig(std::span<const std::string> args, const Environment& env);

// The usage text `agent --help` prints.
std::string AgentUsage();

}  // namespace spotgrid::agent
