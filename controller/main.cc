// controller: the researcher's command line. Everything lives in spotgrid_controller
// (cli.h, verbs/); main only wires the process environment, the system clock and the
// standard streams to RunController.
#include <cstdio>
#include <string>
#include <vector>

#include "cli.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/environment.h"

int main(int argc, char** argv) {
  // The shared logger already writes to stderr at "warn"; --verbose raises it per run.
  spotgrid::Controller controller(spotgrid::Environment::Process(), spotgrid::Clock::System(),
                                  stdout, stderr);
  std::vector<std::string> args(argv + 1, argv + argc);
  const int code = spotgrid::RunController(args, controller);
  std::fflush(stdout);
  std::fflush(stderr);
  return code;
}
