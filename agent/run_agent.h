// The `agent` binary's wiring: the command line and the environment become an AgentConfig,
// the AWS clients and the systemd notifier become AgentDeps, SIGTERM and SIGINT become
// Agent::RequestStop, and Agent::Run's result becomes the exit status. main.cc only calls it;
// everything the agent does is in Agent (agent.h).
//
// Thread-safety: called once, from main. It installs process-wide signal handlers.
#pragma once

namespace spotgrid::agent {

// Exit codes: 0 stopped or drained, 1 start-up failure, 2 bad configuration, 4 a permission
// the main loop needs was denied again and again (kExitMissingPermission; systemd does not
// restart it: the instance role must change first).
int RunAgent(int argc, char** argv);

}  // namespace spotgrid::agent
