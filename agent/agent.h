// The agent: pulls unit pointers from the work queue, claims each unit in the ledger under a
// lease, runs it in one of its slots, and ends it exactly once. docs/agent.md tells the whole
// life of a unit on a worker; the short version:
//
//   receive (long poll, as many messages as free slots) -> ClaimUnit
//     kClaimed        -> run in a free slot (UnitRunner)
//     kFinished       -> delete the message
//     kHeldElsewhere  -> leave it (it comes back after its visibility timeout)
//     kMissing / unparsable -> log, leave it to the dead-letter queue
//   a slot: restore checkpoint (attempt > 1) -> run rows -> heartbeat + periodic sync ->
//           final sync -> FinishUnit / ReleaseUnit -> delete message / make it visible later
//   no free slot and nothing received: idle; idle for idle_shutdown with an empty queue ->
//     on_drain (terminate the instance, exit, or stay)
//
// A drain (SIGTERM or SIGINT, a Spot interruption notice, a lifecycle transition to
// Terminated, a rebalance recommendation under --rebalance checkpoint) stops taking messages,
// sends every running unit's process group the checkpoint signal, syncs its checkpoint,
// outputs and logs, releases it as "interrupted" (not counted against max_attempts) and makes
// its message visible at once, all before the drain's deadline (drain_plan.h); then Run()
// returns kStopped. docs/agent.md "Interruptions and drain" has the whole story. In an Auto
// Scaling group the agent holds scale-in protection while it has units in hand.
//
// Thread-safety: Run() is called once, from one thread; RequestStop() from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "agent/config.h"
#include "agent/drain_plan.h"
#include "agent/identity.h"
#include "agent/systemd.h"
#include "agent/unit_process.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"
#include "spotgrid/ledger/unit_leases.h"
#include "spotgrid/services/autoscaling_client.h"
#include "spotgrid/services/ec2_client.h"
#include "spotgrid/services/s3_client.h"
#include "spotgrid/services/sqs_client.h"

namespace spotgrid::agent {

struct AgentDeps {
  std::shared_ptr<Sqs> sqs;
  std::shared_ptr<UnitLeases> ledger;
  std::shared_ptr<S3> s3;
  std::shared_ptr<AutoScaling> autoscaling;  // may be null off EC2
  std::shared_ptr<Ec2> ec2;                  // may be null off EC2
  // Asked for Spot notices, rebalance recommendations and lifecycle transitions when
  // identity.on_ec2; may be null off EC2.
  std::shared_ptr<InstanceMetadata> imds;
  WorkerIdentity identity;
  Notifier* notifier = nullptr;  // never null (a no-op one outside systemd)
  Clock* clock = nullptr;
  // Commands run as this user; RunAgent (run_agent.h) sets it when the agent runs as root (from --user).
  // nullopt: as the agent's own user.
  std::optional<RunAs> run_as;
  // Longest real-time wait between two looks at the clock and the stop flag (slot threads,
  // the heartbeat ticker): how promptly a stop, or a fake clock moved by a test, is noticed.
  std::chrono::milliseconds poll_slice{200};
  // Called (from the ticker) when a drain is still running at its deadline plus the exit
  // margin: some call is stuck past every bound. RunAgent ends the process there, since the
  // instance is about to go; null (tests): only logged.
  std::function<void()> on_drain_overrun;
};

// Why Run() returned.
enum class AgentExit {
  kStopped,     // a stop was requested; running units were released
  kDrained,     // the queue stayed empty for idle_shutdown and on_drain said exit
  kTerminated,  // as kDrained, and the instance's termination was requested
  // The main loop was denied a call it cannot work without (ReceiveMessage, the claim)
  // kMissingPermissionTries times in a row (missing_permission.h); units in hand were
  // drained. The binary exits with kExitMissingPermission (4).
  kMissingPermission,
};

class Agent {
 public:
  Agent(AgentConfig config, AgentDeps deps);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Reads the stack (a missing stack or table is an error naming the stack), sends READY,
  // and loops until stopped or drained. Errors only for start-up problems; failures of single
  // AWS calls during the loop are logged and retried on the next round, except a permission
  // the loop is denied again and again (kMissingPermission).
  Result<AgentExit> Run();
  // A stop signal: drains with D = now + stop_timeout - 5 s. A second call changes nothing.
  void RequestStop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spotgrid::agent
