// The agent's settings: flags over the environment over the environment file
// over defaults, and a message naming the source and the setting for every bad
// value.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/config.h"
#include "spotgrid/core/duration.h"
#include "support/test_env.h"

namespace spotgrid::agent {
namespace {

using namespace std::chrono_literals;

class AgentConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("agent-config");
    env_file_ = dir_ + "/agent.env";
    // Never the host's /etc/spotgrid/agent.env: every test names its own file.
    env_.Set("SPOTGRID_ENV_FILE", env_file_);
    WriteEnvFile("");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void WriteEnvFile(const std::string& text) { std::ofstream(env_file_) << text; }

  Result<AgentConfig> Load(std::vector<std::string> args) { return LoadAgentConfig(args, env_); }

  // The error message of a load that must fail with kInvalidInput.
  std::string LoadError(std::vector<std::string> args) {
    Result<AgentConfig> config = Load(std::move(args));
    if (config.ok()) {
      ADD_FAILURE() << "loaded although it should have failed";
      return "";
    }
    EXPECT_EQ(config.error().category, ErrorCategory::kInvalidInput) << config.error().ToString();
    return config.error().message;
  }

  std::string dir_;
  std::string env_file_;
  MapEnvironment env_;
};

TEST_F(AgentConfigTest, DefaultsSuitAnEc2Worker) {
  auto config = Load({"--stack", "prod"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->stack, "prod");
  EXPECT_EQ(config->slots, 1);
  EXPECT_EQ(config->work_dir, "/var/lib/spotgrid");
  EXPECT_EQ(config->sync_interval, 5min);
  EXPECT_EQ(config->heartbeat, 30s);
  EXPECT_EQ(config->lease, 90s);
  EXPECT_EQ(config->idle_shutdown, 10min);
  EXPECT_EQ(config->on_drain, DrainAction::kTerminate);
  EXPECT_EQ(config->user, "spotgrid");
  EXPECT_EQ(config->env_file, env_file_);
  EXPECT_EQ(config->kill_grace, 10s);
  EXPECT_EQ(config->poll_wait_s, 20);
  EXPECT_EQ(config->log_level, "info");
  EXPECT_FALSE(config->show_help);
  EXPECT_FALSE(config->show_version);
}

TEST_F(AgentConfigTest, EveryFlagTakesItsValueSeparatelyOrAfterEquals) {
  auto config = Load({"--stack=s1", "--slots", "4", "--work-dir=/srv/grid", "--sync-interval", "1m",
                      "--heartbeat=5s", "--idle-shutdown", "2h", "--on-drain=exit", "--user",
                      "nobody", "--kill-grace=3s", "--poll-wait", "7", "--log-level=debug"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->stack, "s1");
  EXPECT_EQ(config->slots, 4);
  EXPECT_EQ(config->work_dir, "/srv/grid");
  EXPECT_EQ(config->sync_interval, 60s);
  EXPECT_EQ(config->heartbeat, 5s);
  EXPECT_EQ(config->idle_shutdown, 2h);
  EXPECT_EQ(config->on_drain, DrainAction::kExit);
  EXPECT_EQ(config->user, "nobody");
  EXPECT_EQ(config->kill_grace, 3s);
  EXPECT_EQ(config->poll_wait_s, 7);
  EXPECT_EQ(config->log_level, "debug");
}

TEST_F(AgentConfigTest, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  WriteEnvFile(
      "SPOTGRID_STACK=from-file\n"
      "SPOTGRID_SLOTS=2\n"
      "SPOTGRID_HEARTBEAT=7s\n"
      "SPOTGRID_ON_DRAIN=stay\n");
  env_.Set("SPOTGRID_SLOTS", "3");
  env_.Set("SPOTGRID_HEARTBEAT", "8s");
  auto config = Load({"--slots", "4"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->slots, 4);                      // flag over environment and file
  EXPECT_EQ(config->heartbeat, 8s);                 // environment over file
  EXPECT_EQ(config->stack, "from-file");            // file over default
  EXPECT_EQ(config->on_drain, DrainAction::kStay);  // file over default
  EXPECT_EQ(config->sync_interval, 5min);           // default
}

TEST_F(AgentConfigTest, EnvironmentVariableNamesUseUnderscoresAndUpperCase) {
  env_.Set("SPOTGRID_STACK", "envstack");
  env_.Set("SPOTGRID_SYNC_INTERVAL", "45s");
  env_.Set("SPOTGRID_IDLE_SHUTDOWN", "1h");
  env_.Set("SPOTGRID_WORK_DIR", "/data/work");
  env_.Set("SPOTGRID_KILL_GRACE", "20s");
  env_.Set("SPOTGRID_POLL_WAIT", "5s");
  env_.Set("SPOTGRID_LOG_LEVEL", "warn");
  env_.Set("SPOTGRID_USER", "");
  auto config = Load({});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->stack, "envstack");
  EXPECT_EQ(config->sync_interval, 45s);
  EXPECT_EQ(config->idle_shutdown, 1h);
  EXPECT_EQ(config->work_dir, "/data/work");
  EXPECT_EQ(config->kill_grace, 20s);
  EXPECT_EQ(config->poll_wait_s, 5);
  EXPECT_EQ(config->log_level, "warn");
  EXPECT_EQ(config->user,
            "");  // set but empty: run units as the agent's own user
}

TEST_F(AgentConfigTest, EnvFileFollowsSystemdSyntax) {
  WriteEnvFile(
      "# written by the user-data script\n"
      "\n"
      "   ; another comment style systemd accepts\n"
      "export SPOTGRID_STACK=quoted-stack\n"
      "SPOTGRID_WORK_DIR=\"/srv/with space/work\"\n"
      "SPOTGRID_USER = 'grid.user'\n"
      "SPOTGRID_LOG_LEVEL=debug   \n"
      "SPOTGRID_ON_DRAIN=\"ex\\\n"
      "it\"\n"
      "AWS_REGION=eu-west-1\n"
      "SOMETHING_ELSE='not ours, not judged: 99 bottles'\n"
      "SPOTGRID_SLOTS=5\r\n");
  auto config = Load({});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->stack, "quoted-stack");
  EXPECT_EQ(config->work_dir, "/srv/with space/work");
  EXPECT_EQ(config->user, "grid.user");
  EXPECT_EQ(config->log_level,
            "debug");  // trailing blanks of a bare value dropped
  EXPECT_EQ(config->on_drain,
            DrainAction::kExit);  // backslash-newline joins the lines
  EXPECT_EQ(config->slots, 5);    // a CRLF file reads like an LF one
}

TEST_F(AgentConfigTest, QuotesKeepBlanksAndDoubleQuotesUnescape) {
  // Blanks inside quotes belong to the value: here they make it an invalid user
  // name, which proves they were kept.
  WriteEnvFile("SPOTGRID_STACK=s\nSPOTGRID_USER=' padded '\n");
  EXPECT_EQ(LoadError({}), env_file_ +
                               ":2: SPOTGRID_USER: expected a user name "
                               "([A-Za-z0-9._-], at most 32), got ' padded '");
  WriteEnvFile("SPOTGRID_STACK=s\nSPOTGRID_USER=\"a\\$b\"\n");
  EXPECT_EQ(LoadError({}), env_file_ +
                               ":2: SPOTGRID_USER: expected a user name "
                               "([A-Za-z0-9._-], at most 32), got 'a$b'");
}

TEST_F(AgentConfigTest, LastLineOfARepeatedKeyWins) {
  WriteEnvFile("SPOTGRID_STACK=first\nSPOTGRID_STACK=second\n");
  auto config = Load({});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->stack, "second");
}

TEST_F(AgentConfigTest, FlagOverridingABadFileLineIsAccepted) {
  WriteEnvFile("SPOTGRID_STACK=s\nSPOTGRID_SLOTS=lots\n");
  auto config = Load({"--slots", "2"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->slots, 2);
}

// `controller userdata` lets a worker ask for up to 1024 slots; the agent must accept them.
TEST_F(AgentConfigTest, SlotsUpToTheUserdataLimitAreAccepted) {
  auto config = Load({"--stack", "s", "--slots", "1024"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->slots, 1024);
}

TEST_F(AgentConfigTest, LeaseIsThreeHeartbeatsButAtLeastTenSeconds) {
  const std::vector<std::pair<std::string, std::chrono::seconds>> cases = {
      {"1s", 10s}, {"3s", 10s}, {"4s", 12s}, {"30s", 90s}, {"1m", 180s}};
  for (const auto& [heartbeat, lease] : cases) {
    auto config = Load({"--stack", "s", "--heartbeat", heartbeat});
    ASSERT_TRUE(config.ok()) << config.error().ToString();
    EXPECT_EQ(config->lease, lease) << heartbeat;
  }
}

TEST_F(AgentConfigTest, BadFlagValuesNameTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--slots", "x"}, "--slots: expected an integer 1..1024, got 'x'"},
      {{"--slots", "0"}, "--slots: expected an integer 1..1024, got '0'"},
      {{"--slots=1025"}, "--slots: expected an integer 1..1024, got '1025'"},
      {{"--work-dir", "relative/dir"}, "--work-dir: expected an absolute path, got 'relative/dir'"},
      {{"--sync-interval", "0"}, "--sync-interval: expected a duration from 1s to 365d, got '0'"},
      {{"--sync-interval", "5w"},
       "--sync-interval: expected a duration like 30s, 5m, 1h, got '5w'"},
      {{"--heartbeat", "2h"}, "--heartbeat: expected a duration from 1s to 1h, got '2h'"},
      {{"--idle-shutdown", "-1s"},
       "--idle-shutdown: expected a duration like 30s, 5m, 1h, got '-1s'"},
      {{"--on-drain", "reboot"}, "--on-drain: expected terminate, exit or stay, got 'reboot'"},
      {{"--user", "-root"},
       "--user: expected a user name ([A-Za-z0-9._-], at most 32), got "
       "'-root'"},
      {{"--kill-grace", "0s"}, "--kill-grace: expected a duration from 1s to 1h, got '0s'"},
      {{"--poll-wait", "21"}, "--poll-wait: expected a duration from 1s to 20s, got '21'"},
      {{"--poll-wait", "0"}, "--poll-wait: expected a duration from 1s to 20s, got '0'"},
      {{"--log-level", "loud"},
       "--log-level: expected trace, debug, info, warn or error, got 'loud'"},
      {{"--env-file="}, "--env-file: expected a file name, got ''"},
  };
  for (const auto& [extra, message] : cases) {
    std::vector<std::string> args = {"--stack", "s"};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_EQ(LoadError(args), message);
  }
}

TEST_F(AgentConfigTest, BadStackNameIsNamedWithItsSource) {
  std::string flag_error = LoadError({"--stack", "Bad_Stack"});
  EXPECT_EQ(flag_error.rfind("--stack: ", 0), 0u) << flag_error;
  EXPECT_NE(flag_error.find("Bad_Stack"), std::string::npos) << flag_error;

  env_.Set("SPOTGRID_STACK", "9lives");
  std::string env_error = LoadError({});
  EXPECT_EQ(env_error.rfind("environment variable SPOTGRID_STACK: ", 0), 0u) << env_error;
}

TEST_F(AgentConfigTest, BadEnvironmentValueNamesTheVariable) {
  env_.Set("SPOTGRID_SYNC_INTERVAL", "soon");
  EXPECT_EQ(LoadError({"--stack", "s"}),
            "environment variable SPOTGRID_SYNC_INTERVAL: expected a duration "
            "like 30s, 5m, 1h, "
            "got 'soon'");
}

TEST_F(AgentConfigTest, BadFileValueNamesFileLineAndKey) {
  WriteEnvFile("# comment\nSPOTGRID_STACK=s\n\nSPOTGRID_HEARTBEAT=often\n");
  EXPECT_EQ(LoadError({}), env_file_ +
                               ":4: SPOTGRID_HEARTBEAT: expected a duration like 30s, 5m, 1h, "
                               "got 'often'");
}

// The file's syntax is tested in environment_file_test.cc; here: its errors reach the caller
// unchanged, naming the file and the line.
TEST_F(AgentConfigTest, MalformedFileLineStopsTheLoadNamingFileAndLine) {
  WriteEnvFile("SPOTGRID_STACK=s\nSPOTGRID_SLOTS 4\n");
  EXPECT_EQ(LoadError({}), env_file_ + ":2: expected KEY=VALUE, got 'SPOTGRID_SLOTS 4'");
}

TEST_F(AgentConfigTest, MultiLineQuotedValueCountsItsLines) {
  // The error names the line the entry starts on, and later entries keep their
  // own numbers.
  WriteEnvFile("SPOTGRID_STACK=s\nOTHER=\"one\ntwo\"\nSPOTGRID_SLOTS=none\n");
  EXPECT_EQ(LoadError({}),
            env_file_ + ":4: SPOTGRID_SLOTS: expected an integer 1..1024, got 'none'");
}

TEST_F(AgentConfigTest, UnknownSpotgridKeyInFileIsATypo) {
  WriteEnvFile("SPOTGRID_STACK=s\nSPOTGRID_SLOT=4\n");
  EXPECT_EQ(LoadError({}), env_file_ + ":2: SPOTGRID_SLOT: unknown setting (see agent --help)");
}

TEST_F(AgentConfigTest, EnvFileCannotNameAnotherEnvFile) {
  WriteEnvFile("SPOTGRID_STACK=s\nSPOTGRID_ENV_FILE=/etc/other.env\n");
  std::string error = LoadError({});
  EXPECT_EQ(error.rfind(env_file_ + ":2: SPOTGRID_ENV_FILE: ", 0), 0u) << error;
}

TEST_F(AgentConfigTest, MissingStackSaysWhereItCanComeFrom) {
  std::string error = LoadError({});
  EXPECT_EQ(error.rfind("--stack: required", 0), 0u) << error;
  EXPECT_NE(error.find("SPOTGRID_STACK"), std::string::npos) << error;
  EXPECT_NE(error.find(env_file_), std::string::npos) << error;
}

TEST_F(AgentConfigTest, UsageErrorsNameTheArgument) {
  EXPECT_EQ(LoadError({"--stack", "s", "--bogus", "1"}),
            "unknown option --bogus (see agent --help)");
  EXPECT_EQ(LoadError({"--stack", "s", "--slots"}), "--slots: missing value (see agent --help)");
  EXPECT_EQ(LoadError({"--user", "--stack", "s"}), "--user: missing value (see agent --help)");
  EXPECT_EQ(LoadError({"--stack", "s", "extra"}),
            "unexpected argument 'extra'; settings are --flag VALUE (see agent "
            "--help)");
  EXPECT_EQ(LoadError({"--help=yes"}), "--help takes no value (see agent --help)");
}

TEST_F(AgentConfigTest, MissingDefaultEnvFileIsFine) {
  // Neither --env-file nor SPOTGRID_ENV_FILE: the default path, which a build
  // host lacks.
  ASSERT_FALSE(std::filesystem::exists("/etc/spotgrid/agent.env"))
      << "this test needs a host without /etc/spotgrid/agent.env";
  MapEnvironment bare;
  std::vector<std::string> args = {"--stack", "s"};
  auto config = LoadAgentConfig(args, bare);
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->env_file, "/etc/spotgrid/agent.env");
}

TEST_F(AgentConfigTest, MissingNamedEnvFileIsAnError) {
  const std::string missing = dir_ + "/absent.env";
  EXPECT_EQ(LoadError({"--stack", "s", "--env-file", missing}),
            "--env-file: " + missing + ": no such file");
  env_.Set("SPOTGRID_ENV_FILE", missing);
  EXPECT_EQ(LoadError({"--stack", "s"}),
            "environment variable SPOTGRID_ENV_FILE: " + missing + ": no such file");
}

TEST_F(AgentConfigTest, EnvFileFlagBeatsEnvironment) {
  const std::string other = dir_ + "/other.env";
  std::ofstream(other) << "SPOTGRID_STACK=from-other\n";
  WriteEnvFile("SPOTGRID_STACK=from-default\n");
  auto config = Load({"--env-file", other});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->stack, "from-other");
  EXPECT_EQ(config->env_file, other);
}

TEST_F(AgentConfigTest, HelpAndVersionNeedNoStackAndIgnoreABrokenFile) {
  WriteEnvFile("this is not an env file\n");
  auto help = Load({"--help"});
  ASSERT_TRUE(help.ok()) << help.error().ToString();
  EXPECT_TRUE(help->show_help);
  auto short_help = Load({"-h"});
  ASSERT_TRUE(short_help.ok());
  EXPECT_TRUE(short_help->show_help);
  auto version = Load({"--version"});
  ASSERT_TRUE(version.ok()) << version.error().ToString();
  EXPECT_TRUE(version->show_version);
  EXPECT_FALSE(version->show_help);
}

TEST(AgentUsageTest, ListsEveryFlagItsVariableAndDefault) {
  const std::string usage = AgentUsage();
  EXPECT_EQ(usage.rfind("usage: agent --stack NAME [options]\n", 0), 0u);
  const std::vector<std::pair<std::string, std::string>> settings = {
      {"--stack NAME", "[SPOTGRID_STACK, no default]"},
      {"--slots N", "[SPOTGRID_SLOTS, default: 1]"},
      {"--work-dir DIR", "[SPOTGRID_WORK_DIR, default: /var/lib/spotgrid]"},
      {"--sync-interval DURATION", "[SPOTGRID_SYNC_INTERVAL, default: 5m]"},
      {"--heartbeat DURATION", "[SPOTGRID_HEARTBEAT, default: 30s]"},
      {"--idle-shutdown DURATION", "[SPOTGRID_IDLE_SHUTDOWN, default: 10m]"},
      {"--on-drain ACTION", "[SPOTGRID_ON_DRAIN, default: terminate]"},
      {"--user NAME", "[SPOTGRID_USER, default: spotgrid]"},
      {"--env-file FILE", "[SPOTGRID_ENV_FILE, default: /etc/spotgrid/agent.env]"},
      {"--kill-grace DURATION", "[SPOTGRID_KILL_GRACE, default: 10s]"},
      {"--poll-wait DURATION", "[SPOTGRID_POLL_WAIT, default: 20s]"},
      {"--log-level LEVEL", "[SPOTGRID_LOG_LEVEL, default: info]"},
      {"--checkpoint-signal SIG", "[SPOTGRID_CHECKPOINT_SIGNAL, default: TERM]"},
      {"--stop-timeout DURATION", "[SPOTGRID_STOP_TIMEOUT, default: 90s]"},
      {"--upload-reserve DURATION", "[SPOTGRID_UPLOAD_RESERVE, default: 30s]"},
      {"--rebalance POLICY", "[SPOTGRID_REBALANCE, default: stop-taking]"},
      {"--spot-poll DURATION", "[SPOTGRID_SPOT_POLL, default: 5s]"},
      {"--asg-name NAME", "[SPOTGRID_ASG_NAME, default: '' (empty)]"},
      {"--lifecycle-hook NAME", "[SPOTGRID_LIFECYCLE_HOOK, default: '' (empty)]"},
  };
  for (const auto& [flag, source] : settings) {
    std::size_t at = usage.find("  " + flag + " ");
    ASSERT_NE(at, std::string::npos) << flag << "\n" << usage;
    // The variable and default close the flag's entry, at the help column.
    std::size_t entry_end = usage.find("\n  -", at + 1);
    std::size_t found = usage.find("\n" + std::string(28, ' ') + source + "\n", at);
    EXPECT_LT(found, entry_end) << flag << "\n" << usage;
  }
  for (std::size_t start = 0, end = 0; start < usage.size(); start = end + 1) {
    end = usage.find('\n', start);
    EXPECT_LE(end - start, 96u) << usage.substr(start, end - start);
  }
  EXPECT_NE(usage.find("--help"), std::string::npos);
  EXPECT_NE(usage.find("--version"), std::string::npos);
  EXPECT_NE(usage.find("A flag beats the environment, which beats the file"), std::string::npos);
}

TEST_F(AgentConfigTest, DrainSettingsDefaultToSystemdsStopTimeoutAndStopTaking) {
  auto config = Load({"--stack", "s"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->checkpoint_signal, SIGTERM);
  EXPECT_EQ(config->stop_timeout, 90s);
  EXPECT_EQ(config->upload_reserve, 30s);
  EXPECT_EQ(config->rebalance, RebalancePolicy::kStopTaking);
  EXPECT_EQ(config->spot_poll, 5s);
  EXPECT_EQ(config->asg_name, "");
  EXPECT_EQ(config->lifecycle_hook, "");
}

TEST_F(AgentConfigTest, DrainSettingsComeFromFlagsEnvironmentAndFile) {
  env_.Set("SPOTGRID_REBALANCE", "checkpoint");
  env_.Set("SPOTGRID_CHECKPOINT_SIGNAL", "USR1");
  WriteEnvFile(
      "SPOTGRID_ASG_NAME=workers-asg\nSPOTGRID_LIFECYCLE_HOOK=drain-hook\n"
      "SPOTGRID_SPOT_POLL=2s\n");
  auto config = Load({"--stack", "s", "--stop-timeout", "2m", "--upload-reserve=45s"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->checkpoint_signal, SIGUSR1);
  EXPECT_EQ(config->stop_timeout, 120s);
  EXPECT_EQ(config->upload_reserve, 45s);
  EXPECT_EQ(config->rebalance, RebalancePolicy::kCheckpoint);
  EXPECT_EQ(config->spot_poll, 2s);
  EXPECT_EQ(config->asg_name, "workers-asg");
  EXPECT_EQ(config->lifecycle_hook, "drain-hook");
}

TEST_F(AgentConfigTest, CheckpointSignalIsANameOrANumber) {
  const std::vector<std::pair<std::string, int>> cases = {
      {"TERM", SIGTERM},    {"INT", SIGINT},   {"HUP", SIGHUP},
      {"USR1", SIGUSR1},    {"USR2", SIGUSR2}, {"QUIT", SIGQUIT},
      {"SIGUSR2", SIGUSR2}, {"10", 10},        {"64", 64}};
  for (const auto& [text, number] : cases) {
    auto config = Load({"--stack", "s", "--checkpoint-signal", text});
    ASSERT_TRUE(config.ok()) << text << ": " << config.error().ToString();
    EXPECT_EQ(config->checkpoint_signal, number) << text;
  }
  EXPECT_EQ(SignalName(SIGUSR1), "USR1");
  EXPECT_EQ(SignalName(40), "40");
}

TEST_F(AgentConfigTest, BadDrainSettingsNameTheFlag) {
  const std::string signal_problem =
      "expected TERM, INT, HUP, USR1, USR2, QUIT or a signal number 1..64 (not KILL or STOP), got ";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--checkpoint-signal", "KILL"}, "--checkpoint-signal: " + signal_problem + "'KILL'"},
      {{"--checkpoint-signal", "9"}, "--checkpoint-signal: " + signal_problem + "'9'"},
      {{"--checkpoint-signal", "65"}, "--checkpoint-signal: " + signal_problem + "'65'"},
      {{"--checkpoint-signal", "0"}, "--checkpoint-signal: " + signal_problem + "'0'"},
      {{"--stop-timeout", "5s"}, "--stop-timeout: expected a duration from 10s to 1h, got '5s'"},
      {{"--upload-reserve", "2h"}, "--upload-reserve: expected a duration from 0s to 1h, got '2h'"},
      {{"--rebalance", "panic"},
       "--rebalance: expected ignore, stop-taking or checkpoint, got 'panic'"},
      {{"--spot-poll", "0"}, "--spot-poll: expected a duration from 1s to 1h, got '0'"},
      {{"--asg-name", "my group"},
       "--asg-name: expected a group name (1..255 characters, no blanks), got 'my group'"},
      {{"--lifecycle-hook", "a\tb"},
       "--lifecycle-hook: expected a hook name (1..255 characters, no blanks), got 'a\tb'"},
  };
  for (const auto& [extra, message] : cases) {
    std::vector<std::string> args = {"--stack", "s"};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_EQ(LoadError(args), message);
  }
}

TEST_F(AgentConfigTest, UploadReserveMustLeaveAGracePeriodWithinTheStopTimeout) {
  std::string error =
      LoadError({"--stack", "s", "--stop-timeout", "30s", "--upload-reserve", "25s"});
  EXPECT_NE(error.find("--upload-reserve 25s leaves no grace period within --stop-timeout 30s"),
            std::string::npos)
      << error;
  EXPECT_TRUE(Load({"--stack", "s", "--stop-timeout", "30s", "--upload-reserve", "24s"}).ok());
}

TEST(RebalancePolicyTest, NamesMatchTheFlagValues) {
  EXPECT_EQ(ToString(RebalancePolicy::kIgnore), "ignore");
  EXPECT_EQ(ToString(RebalancePolicy::kStopTaking), "stop-taking");
  EXPECT_EQ(ToString(RebalancePolicy::kCheckpoint), "checkpoint");
}

TEST(DrainActionTest, NamesMatchTheFlagValues) {
  EXPECT_EQ(ToString(DrainAction::kTerminate), "terminate");
  EXPECT_EQ(ToString(DrainAction::kExit), "exit");
  EXPECT_EQ(ToString(DrainAction::kStay), "stay");
}

// The one duration parser the agent and the controller share.
TEST(ParseDurationTest, AcceptsSecondsAndOneUnitSuffix) {
  EXPECT_EQ(ParseDuration("0"), 0s);
  EXPECT_EQ(ParseDuration("30"), 30s);
  EXPECT_EQ(ParseDuration("30s"), 30s);
  EXPECT_EQ(ParseDuration("5m"), 300s);
  EXPECT_EQ(ParseDuration("2h"), 7200s);
  EXPECT_EQ(ParseDuration("1d"), 86400s);
  EXPECT_EQ(ParseDuration("365d"), 365 * 86400s);
}

TEST(ParseDurationTest, RejectsMalformedNegativeAndHugeValues) {
  for (const char* bad : {"", "s", "h", "1.5h", "-3s", "+3s", "5w", " 5s", "5s ", "5ms", "1e3",
                          "366d", "99999999999999999999"}) {
    EXPECT_FALSE(ParseDuration(bad).has_value()) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace spotgrid::agent
