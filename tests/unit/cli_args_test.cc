// Unit tests of the controller's command-line plumbing (controller/cli.h): argument parsing,
// help, exit codes, and the verbs' promise that validation and --dry-run never touch AWS.
// The environment is a MapEnvironment without any AWS settings, so a verb that tried to
// reach AWS would fail at run time (exit 1), never with the usage/input code 2 or success.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli.h"
#include "support/fake_clock.h"
#include "support/test_env.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

VerbSpec SampleSpec() {
  VerbSpec spec;
  spec.name = "sample";
  spec.summary = "a verb for tests";
  spec.positionals = "FILE";
  spec.min_positionals = 1;
  spec.max_positionals = 1;
  spec.options = {
      {"job", "J", "the job", false, ""},
      {"tag", "T", "a tag", true, ""},
      {"dry-run", "", "do nothing", false, ""},
      {"count", "N", "how many", false, ""},
      {"timeout", "DURATION", "how long", false, ""},
      {"color", "C", "a colour", false, "SAMPLE_COLOR"},
  };
  return spec;
}

// Captures what a Controller writes to stdout and stderr.
class Streams {
 public:
  Streams() : out_(std::tmpfile()), err_(std::tmpfile()) {}
  ~Streams() {
    std::fclose(out_);
    std::fclose(err_);
  }
  std::FILE* out() { return out_; }
  std::FILE* err() { return err_; }
  std::string Out() { return Read(out_); }
  std::string Err() { return Read(err_); }

 private:
  static std::string Read(std::FILE* file) {
    std::fflush(file);
    std::rewind(file);
    std::string text;
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
    return text;
  }
  std::FILE* out_;
  std::FILE* err_;
};

class ControllerCliTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  int Run(std::vector<std::string> argv) {
    Controller controller(env_, clock_, streams_.out(), streams_.err());
    return RunController(argv, controller);
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    if (dir_.empty()) dir_ = testing::MakeTempDir("cli-args");
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  MapEnvironment env_;
  testing::FakeClock clock_;
  Streams streams_;
  std::string dir_;
};

TEST(ParseArgsTest, AcceptsSeparateAndInlineValuesFlagsAndRepeats) {
  MapEnvironment env;
  auto args = ParseArgs(SampleSpec(),
                        {"--job", "j1", "--tag=a", "--tag", "b", "--dry-run", "grid.csv"}, env);
  ASSERT_TRUE(args.ok()) << args.error().ToString();
  EXPECT_EQ(args->Get("job"), "j1");
  EXPECT_EQ(args->GetAll("tag"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(args->Has("dry-run"));
  EXPECT_FALSE(args->Has("count"));
  EXPECT_EQ(args->positionals(), (std::vector<std::string>{"grid.csv"}));
}

TEST(ParseArgsTest, LaterValueOfASingleOptionWins) {
  MapEnvironment env;
  auto args = ParseArgs(SampleSpec(), {"--job", "a", "--job=b", "f"}, env);
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->Get("job"), "b");
}

TEST(ParseArgsTest, DoubleDashEndsOptions) {
  MapEnvironment env;
  auto args = ParseArgs(SampleSpec(), {"--", "--job"}, env);
  ASSERT_TRUE(args.ok()) << args.error().ToString();
  EXPECT_EQ(args->positionals(), (std::vector<std::string>{"--job"}));
  EXPECT_FALSE(args->Has("job"));
}

TEST(ParseArgsTest, UnknownOptionIsAUsageErrorWithTheUsageLine) {
  MapEnvironment env;
  auto args = ParseArgs(SampleSpec(), {"--nope", "f"}, env);
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.error().category, ErrorCategory::kInvalidInput);
  EXPECT_NE(args.error().message.find("unknown option '--nope'"), std::string::npos);
  EXPECT_NE(args.error().message.find("usage: controller sample"), std::string::npos);
}

TEST(ParseArgsTest, MissingValueFlagWithValueAndPositionalCountsAreUsageErrors) {
  MapEnvironment env;
  auto missing_value = ParseArgs(SampleSpec(), {"f", "--job"}, env);
  ASSERT_FALSE(missing_value.ok());
  EXPECT_NE(missing_value.error().message.find("--job needs a value"), std::string::npos);

  auto flag_value = ParseArgs(SampleSpec(), {"f", "--dry-run=yes"}, env);
  ASSERT_FALSE(flag_value.ok());
  EXPECT_NE(flag_value.error().message.find("takes no value"), std::string::npos);

  auto none = ParseArgs(SampleSpec(), {}, env);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("missing FILE"), std::string::npos);

  auto extra = ParseArgs(SampleSpec(), {"a", "b"}, env);
  ASSERT_FALSE(extra.ok());
  EXPECT_NE(extra.error().message.find("unexpected argument 'b'"), std::string::npos);
}

TEST(ParseArgsTest, StackComesFromTheEnvironmentUnlessGiven) {
  MapEnvironment env;
  env.Set("SPOTGRID_STACK", "from-env");
  env.Set("SAMPLE_COLOR", "blue");
  auto defaulted = ParseArgs(SampleSpec(), {"f"}, env);
  ASSERT_TRUE(defaulted.ok());
  EXPECT_EQ(defaulted->Get("stack"), "from-env");
  EXPECT_EQ(defaulted->Get("color"), "blue");

  auto given = ParseArgs(SampleSpec(), {"f", "--stack", "explicit"}, env);
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given->Get("stack"), "explicit");

  MapEnvironment empty;
  auto unset = ParseArgs(SampleSpec(), {"f"}, empty);
  ASSERT_TRUE(unset.ok());
  EXPECT_FALSE(unset->Get("stack").has_value());
}

TEST(ParseArgsTest, HelpSkipsThePositionalCheck) {
  MapEnvironment env;
  auto args = ParseArgs(SampleSpec(), {"-h"}, env);
  ASSERT_TRUE(args.ok()) << args.error().ToString();
  EXPECT_TRUE(args->Has("help"));
}

TEST(ParseArgsTest, IntegersAreCheckedForFormAndRange) {
  MapEnvironment env;
  auto good = ParseArgs(SampleSpec(), {"f", "--count", "42"}, env);
  ASSERT_TRUE(good.ok());
  auto value = good->GetInt("count", 1, 100);
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 42);
  EXPECT_FALSE(good->GetInt("count", 1, 10).ok());
  auto absent = good->GetInt("job", 1, 10);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());

  for (const char* bad : {"4x", "", "-", "1.5", "99999999999999999999"}) {
    auto args = ParseArgs(SampleSpec(), {"f", std::string("--count=") + bad}, env);
    ASSERT_TRUE(args.ok());
    auto parsed = args->GetInt("count", 0, 1000);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().category, ErrorCategory::kInvalidInput);
    EXPECT_NE(parsed.error().message.find("--count"), std::string::npos);
  }
}

TEST(ParseArgsTest, DurationsTakeUnitsOrPlainSeconds) {
  MapEnvironment env;
  const std::vector<std::pair<std::string, long long>> cases = {
      {"90", 90}, {"90s", 90}, {"15m", 900}, {"2h", 7200}, {"1d", 86400}};
  for (const auto& [text, seconds] : cases) {
    auto args = ParseArgs(SampleSpec(), {"f", "--timeout", text}, env);
    ASSERT_TRUE(args.ok());
    auto parsed = args->GetDuration("timeout");
    ASSERT_TRUE(parsed.ok()) << text;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->count(), seconds) << text;
  }
  for (const char* bad : {"h", "5w", "-3s", "1.5h", "abc"}) {
    auto args = ParseArgs(SampleSpec(), {"f", "--timeout", bad}, env);
    ASSERT_TRUE(args.ok());
    EXPECT_FALSE(args->GetDuration("timeout").ok()) << bad;
  }
}

TEST(VerbHelpTest, ListsOwnAndCommonOptionsWithEnvironmentDefaults) {
  const std::string help = VerbHelp(SampleSpec());
  EXPECT_NE(help.find("usage: controller sample [options] FILE"), std::string::npos);
  EXPECT_NE(help.find("--job J"), std::string::npos);
  EXPECT_NE(help.find("--stack NAME"), std::string::npos);
  EXPECT_NE(help.find("$SPOTGRID_STACK"), std::string::npos);
  EXPECT_NE(help.find("-h, --help"), std::string::npos);
}

TEST_F(ControllerCliTest, TopLevelHelpListsEveryVerbInOrder) {
  EXPECT_EQ(Run({"--help"}), kExitOk);
  const std::string out = streams_.Out();
  std::size_t last = 0;
  for (const Verb& verb : AllVerbs()) {
    const std::size_t at = out.find("  " + verb.spec.name + " ");
    ASSERT_NE(at, std::string::npos) << verb.spec.name;
    EXPECT_GT(at, last) << verb.spec.name;
    last = at;
  }
  EXPECT_EQ(AllVerbs().size(), 11u);
}

TEST_F(ControllerCliTest, NoArgumentsPrintsHelpToStderrAndExits2) {
  EXPECT_EQ(Run({}), kExitUsage);
  EXPECT_NE(streams_.Err().find("usage: controller VERB"), std::string::npos);
}

TEST_F(ControllerCliTest, VersionPrintsTheVersion) {
  EXPECT_EQ(Run({"--version"}), kExitOk);
  EXPECT_EQ(streams_.Out(), std::string("controller ") + SPOTGRID_VERSION + "\n");
}

TEST_F(ControllerCliTest, UnknownVerbExits2) {
  EXPECT_EQ(Run({"frobnicate"}), kExitUsage);
  EXPECT_NE(streams_.Err().find("controller: unknown verb 'frobnicate'"), std::string::npos);
}

TEST_F(ControllerCliTest, EveryVerbAnswersHelpWithoutTouchingAws) {
  for (const Verb& verb : AllVerbs()) {
    Streams streams;
    Controller controller(env_, clock_, streams.out(), streams.err());
    EXPECT_EQ(RunController({verb.spec.name, "--help"}, controller), kExitOk) << verb.spec.name;
    const std::string out = streams.Out();
    EXPECT_NE(out.find("usage: controller " + verb.spec.name), std::string::npos) << out;
    EXPECT_NE(out.find("--stack NAME"), std::string::npos) << verb.spec.name;
    EXPECT_EQ(streams.Err(), "") << verb.spec.name;
  }
}

TEST_F(ControllerCliTest, UsageErrorsExit2WithControllerPrefix) {
  EXPECT_EQ(Run({"enqueue", "--bogus", "x.csv"}), kExitUsage);
  const std::string err = streams_.Err();
  EXPECT_EQ(err.rfind("controller: enqueue: unknown option '--bogus'", 0), 0u) << err;
}

TEST_F(ControllerCliTest, ReportErrorMapsInvalidInputTo2AndOthersTo1) {
  Controller controller(env_, clock_, streams_.out(), streams_.err());
  EXPECT_EQ(ReportError(controller, Error::InvalidInput("bad")), kExitUsage);
  Error runtime;
  runtime.category = ErrorCategory::kTransient;
  runtime.service = "SQS";
  runtime.operation = "SendMessageBatch";
  runtime.message = "connection reset";
  EXPECT_EQ(ReportError(controller, runtime), kExitFailure);
  EXPECT_EQ(ReportError(controller, Status::Ok()), kExitOk);
  EXPECT_EQ(streams_.Err(),
            "controller: bad\ncontroller: SQS SendMessageBatch failed: connection reset\n");
}

TEST_F(ControllerCliTest, ProgressBarIsSilentWhenStderrIsNotATerminal) {
  Controller controller(env_, clock_, streams_.out(), streams_.err());
  {
    ProgressBar bar(controller, "send", 10, true);
    bar.Update(5);
    clock_.Advance(std::chrono::seconds(1));
    bar.Update(10);
    bar.Finish();
  }
  EXPECT_EQ(streams_.Err(), "");
}

TEST_F(ControllerCliTest, EnqueueDryRunPrintsUnitsAndNeedsNoAws) {
  const std::string grid = WriteFile("sweep.csv", "id,alpha\na1,0.1\na2,\"x y\"\n");
  EXPECT_EQ(Run({"enqueue", grid, "--dry-run", "--command", "train --alpha {alpha}"}), kExitOk)
      << streams_.Err();
  EXPECT_EQ(streams_.Out(), "a1\ttrain --alpha '0.1'\na2\ttrain --alpha 'x y'\n");
  EXPECT_NE(streams_.Err().find("nothing was enqueued"), std::string::npos);
}

TEST_F(ControllerCliTest, EnqueueRejectsABadGridWithFileAndLineBeforeAnyAwsCall) {
  const std::string grid = WriteFile("ragged.csv", "id,command\na,echo a\nb,echo b,extra\n");
  EXPECT_EQ(Run({"enqueue", grid, "--stack", "demo"}), kExitUsage);
  EXPECT_NE(streams_.Err().find("controller: " + grid + ":3"), std::string::npos) << streams_.Err();
}

TEST_F(ControllerCliTest, EnqueueValidatesItsOptionsBeforeReadingTheGrid) {
  const std::string grid = WriteFile("ok.csv", "command\necho hi\n");
  EXPECT_EQ(Run({"enqueue", grid, "--stack", "demo", "--retry-exit-codes", "1,x"}), kExitUsage);
  EXPECT_EQ(Run({"enqueue", grid, "--stack", "demo", "--job", "bad/job"}), kExitUsage);
  EXPECT_EQ(Run({"enqueue", grid, "--stack", "demo", "--timeout", "soon"}), kExitUsage);
  EXPECT_EQ(Run({"enqueue", grid, "--retry-exit-codes", "3", "--fail-exit-codes", "3", "--stack",
                 "demo"}),
            kExitUsage);
  EXPECT_EQ(Run({"enqueue", grid}), kExitUsage);  // no --stack and no SPOTGRID_STACK
  const std::string err = streams_.Err();
  EXPECT_NE(err.find("--retry-exit-codes: 'x'"), std::string::npos) << err;
  EXPECT_NE(err.find("invalid job id 'bad/job'"), std::string::npos) << err;
  EXPECT_NE(err.find("--timeout"), std::string::npos) << err;
  EXPECT_NE(err.find("in both --retry-exit-codes and --fail-exit-codes"), std::string::npos) << err;
  EXPECT_NE(err.find("--stack is required"), std::string::npos) << err;
}

TEST_F(ControllerCliTest, EnqueueOfAMissingFileExits2) {
  EXPECT_EQ(Run({"enqueue", "/nonexistent/grid.csv", "--stack", "demo"}), kExitUsage);
  EXPECT_NE(streams_.Err().find("cannot read /nonexistent/grid.csv"), std::string::npos);
}

TEST_F(ControllerCliTest, InitRejectsBadNamesBeforeAnyAwsCall) {
  EXPECT_EQ(Run({"init", "--stack", "Bad_Stack", "--bucket", "b-1"}), kExitUsage);
  EXPECT_EQ(Run({"init", "--stack", "ok", "--bucket", "No_Such"}), kExitUsage);
  EXPECT_EQ(Run({"init", "--stack", "ok", "--bucket", "bucket-1", "--prefix", "a/../b"}),
            kExitUsage);
  EXPECT_EQ(Run({"init", "--stack", "ok", "--bucket", "bucket-1", "--visibility", "-1"}),
            kExitUsage);
  EXPECT_EQ(Run({"init", "--bucket", "bucket-1"}), kExitUsage);
  const std::string err = streams_.Err();
  EXPECT_NE(err.find("invalid bucket name 'No_Such'"), std::string::npos) << err;
  EXPECT_NE(err.find("--prefix"), std::string::npos) << err;
  EXPECT_NE(err.find("--stack is required"), std::string::npos) << err;
}

}  // namespace
}  // namespace spotgrid
