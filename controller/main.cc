// controller: the researcher's command line. Until the verbs land (see the issues), it only
// answers --help and --version.
#include <cstdio>
#include <cstring>

namespace {

constexpr const char* kUsage = R"(usage: controller <verb> [options]

spotgrid runs grids of shell commands on fleets of EC2 Spot workers.

verbs:
  init       create the stack: SQS work queue + dead-letter queue, DynamoDB ledger, S3 bucket
  enqueue    turn every row of a grid.csv into a work unit
  progress   counts, rate, ETA and cost of a job
  list, show, logs, results, retry, cancel, workers, userdata

options:
  --stack NAME   the stack to act on (or SPOTGRID_STACK)
  --help         this text
  --version      the version
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::puts("controller " SPOTGRID_VERSION);
    return 0;
  }
  std::fprintf(stderr, "controller: unknown verb '%s' (try --help)\n", argv[1]);
  return 2;
}
