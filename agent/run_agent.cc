#include "agent/run_agent.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/identity.h"
#include "agent/missing_permission.h"
#include "agent/systemd.h"
#include "spotgrid/aws/aws_client.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/log.h"
#include "spotgrid/ledger/ledger.h"
#include "spotgrid/services/dynamodb_client.h"

namespace spotgrid::agent {

namespace {

// Signals only write a byte to a pipe; a thread of ours reads it and does the work.
int g_signal_pipe = -1;

extern "C" void OnStopSignal(int) {
  int saved = errno;
  char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe, &byte, 1);
  errno = saved;
}

std::string ErrorText(const Error& error) {
  return error.service.empty() && error.operation.empty() ? error.message : error.ToString();
}

}  // namespace

int RunAgent(int argc, char** argv) {
  std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
  auto config = LoadAgentConfig(args, Environment::Process());
  if (!config.ok()) {
    std::fprintf(stderr, "agent: %s\n", ErrorText(config.error()).c_str());
    return 2;
  }
  if (config->show_help) {
    std::fputs(AgentUsage().c_str(), stdout);
    return 0;
  }
  if (config->show_version) {
    std::puts("agent " SPOTGRID_VERSION);
    return 0;
  }
  SetLogger(MakeAgentLogger(config->log_level));
  if (Status valid = ValidateStackName(config->stack); !valid.ok()) {
    std::fprintf(stderr, "agent: --stack: %s\n", ErrorText(valid.error()).c_str());
    return 2;
  }

  AgentDeps deps;
  if (::geteuid() == 0) {
    if (config->user.empty()) {
      std::fputs("agent: running as root needs --user NAME: commands never run as root\n", stderr);
      return 2;
    }
    auto user = LookupUser(config->user);
    if (!user.ok()) {
      std::fprintf(stderr, "agent: --user: %s\n", ErrorText(user.error()).c_str());
      return 2;
    }
    deps.run_as = *user;
  }

  // Signals first, before any thread exists: the handler only writes to the pipe.
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    std::perror("agent: pipe");
    return 1;
  }
  ::fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);
  g_signal_pipe = pipe_fds[1];
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Clock& clock = Clock::System();
  AwsContextOptions options;
  options.env = &Environment::Process();
  options.clock = &clock;
  // Logged (the journal under systemd) and printed (a terminal, or systemctl status).
  auto fail = [](const std::string& what, const Error& error) {
    std::string text = what.empty() ? ErrorText(error) : what + ": " + ErrorText(error);
    Logger().error("{}", text);
    std::fprintf(stderr, "agent: %s\n", text.c_str());
    return 1;
  };
  auto context = AwsContext::Create(std::move(options));
  if (!context.ok()) return fail("AWS configuration", context.error());
  auto sqs = SqsClient::Create(*context);
  if (!sqs.ok()) return fail("SQS client", sqs.error());
  auto db = DynamoDbClient::Create(*context);
  if (!db.ok()) return fail("DynamoDB client", db.error());
  auto s3 = S3Client::Create(*context);
  if (!s3.ok()) return fail("S3 client", s3.error());
  DynamoLedgerOptions ledger_options;
  ledger_options.table = LedgerTableName(config->stack);
  deps.sqs = *sqs;
  deps.s3 = *s3;
  deps.ledger = MakeDynamoLedger(*db, std::move(ledger_options), clock);
  deps.identity = DiscoverIdentity((*context)->imds().get());
  deps.imds = (*context)->imds();
  if (deps.identity.on_ec2) {
    if (auto autoscaling = AutoScalingClient::Create(*context); autoscaling.ok()) {
      deps.autoscaling = *autoscaling;
    }
    if (auto ec2 = Ec2Client::Create(*context); ec2.ok()) deps.ec2 = *ec2;
  }
  std::unique_ptr<Notifier> notifier = MakeSystemdNotifier();
  deps.notifier = notifier.get();
  deps.clock = &clock;
  // Past the drain's bounds the instance is about to be reclaimed: whatever call is stuck,
  // the process ends now rather than be cut off mid-write. Units not released are found by
  // the sweeper once their leases lapse.
  deps.on_drain_overrun = [] {
    spdlog::default_logger()->flush();
    ::_exit(0);
  };

  Agent agent(*config, std::move(deps));
  std::atomic<bool> finished{false};
  std::thread signals([&] {
    char byte;
    while (true) {
      ssize_t n = ::read(pipe_fds[0], &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || finished) return;
      agent.RequestStop();
    }
  });
  auto result = agent.Run();
  finished = true;
  char wake = 0;
  [[maybe_unused]] ssize_t n = ::write(pipe_fds[1], &wake, 1);
  signals.join();
  if (!result.ok()) return fail("", result.error());
  if (*result == AgentExit::kMissingPermission) {
    // Logged already; printed too, for `systemctl status` and a terminal.
    std::fputs("agent: exiting: the instance role lacks a permission the agent needs (see the "
               "log)\n",
               stderr);
    return kExitMissingPermission;
  }
  return 0;
}

}  // namespace spotgrid::agent
