// The controller's command-line plumbing: argument parsing, the per-run context every verb
// receives, output helpers (--json, progress bars on a terminal) and exit codes.
//
// Exit codes (every verb): 0 success, 2 bad usage or bad input (nothing was changed),
// 1 a failure at run time (AWS error, I/O error).
#pragma once

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"
#include "spotgrid/ledger/ledger.h"

namespace spotgrid {

class Sqs;
class S3;
class Ec2;

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// One option a verb accepts. Flags take no value; others take exactly one ("--job J" or
// "--job=J"); `repeatable` collects every occurrence.
struct OptionSpec {
  std::string name;         // "job" for --job
  std::string value_name;   // "J" in the help text; empty for a flag
  std::string help;
  bool repeatable = false;
  std::string env;          // environment variable that supplies a default, e.g. SPOTGRID_STACK
};

struct VerbSpec {
  std::string name;         // "enqueue"
  std::string summary;      // one line for `controller --help`
  std::string positionals;  // "GRID.csv" in the usage line; empty if none
  int min_positionals = 0;
  int max_positionals = 0;
  std::vector<OptionSpec> options;  // --stack, --verbose and --help are added to every verb
  std::string details;      // paragraphs after the options in `controller VERB --help`
};

// Parsed arguments. Unknown options, missing values and wrong positional counts are usage
// errors reported by ParseArgs with the verb's usage line.
class Args {
 public:
  bool Has(const std::string& name) const;
  std::optional<std::string> Get(const std::string& name) const;
  std::string GetOr(const std::string& name, std::string fallback) const;
  std::vector<std::string> GetAll(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

  // Typed getters: a malformed value is an InvalidInput error naming the option.
  Result<std::optional<long long>> GetInt(const std::string& name, long long min,
                                          long long max) const;
  // "90s", "15m", "2h", "1d" or plain seconds.
  Result<std::optional<std::chrono::seconds>> GetDuration(const std::string& name) const;

  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

Result<Args> ParseArgs(const VerbSpec& spec, const std::vector<std::string>& argv,
                       const Environment& env);
std::string VerbHelp(const VerbSpec& spec);

// What a verb needs, created lazily so `--help` and `--dry-run` never touch AWS.
class Controller {
 public:
  Controller(const Environment& env, Clock& clock, std::FILE* out, std::FILE* err);

  const Environment& env() const { return env_; }
  Clock& clock() { return clock_; }
  std::FILE* out() { return out_; }
  std::FILE* err() { return err_; }
  bool out_is_terminal() const;
  bool err_is_terminal() const;

  Result<std::shared_ptr<AwsContext>> aws();
  Result<std::shared_ptr<Sqs>> sqs();
  Result<std::shared_ptr<S3>> s3();
  Result<std::shared_ptr<Ec2>> ec2();
  // The ledger of `stack` (table spotgrid-<stack>).
  Result<std::shared_ptr<Ledger>> ledger(const std::string& stack);
  // The stack item; a missing table or item is an error telling the user to run init.
  Result<StackInfo> stack(const std::string& stack);

 private:
  const Environment& env_;
  Clock& clock_;
  std::FILE* out_;
  std::FILE* err_;
  std::shared_ptr<AwsContext> aws_;
  std::shared_ptr<Sqs> sqs_;
  std::shared_ptr<S3> s3_;
  std::shared_ptr<Ec2> ec2_;
  std::map<std::string, std::shared_ptr<Ledger>> ledgers_;
};

// Prints "controller: <message>" to stderr and returns the exit code for the error's
// category (kInvalidInput -> 2, anything else -> 1).
int ReportError(Controller& controller, const Error& error);
int ReportError(Controller& controller, const Status& status);

// A progress bar on a terminal ("enqueue  12,000/50,000  24%  [=====     ]  3.1 s"),
// silent when stderr is not a terminal or --json was asked. Thread-safe Update().
class ProgressBar {
 public:
  ProgressBar(Controller& controller, std::string label, std::int64_t total, bool enabled);
  ~ProgressBar();
  void Update(std::int64_t done);
  void Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A verb: its spec and its body. Bodies return an exit code.
struct Verb {
  VerbSpec spec;
  std::function<int(const Args&, Controller&)> run;
};

// Every verb, in the order `controller --help` lists them (controller/verbs/*.cc).
const std::vector<Verb>& AllVerbs();

// The whole command line: `controller VERB ARGS...`, `--help`, `--version`. `argv` holds the
// arguments after the program name. `--verbose` (every verb) raises the log level to debug.
int RunController(const std::vector<std::string>& argv, Controller& controller);

}  // namespace spotgrid
