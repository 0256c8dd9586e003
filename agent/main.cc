// agent: the worker daemon. Everything lives in the spotgrid_agent library (agent/agent.h,
// wired up in agent/run_agent.h); this only hands it the command line.
#include "agent/run_agent.h"

int main(int argc, char** argv) { return spotgrid::agent::RunAgent(argc, argv); }
