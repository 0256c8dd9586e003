#include "cli.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <mutex>
#include <utility>

#include "spotgrid/core/duration.h"
#include "spotgrid/core/log.h"
#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/ec2_client.h"
#include "spotgrid/services/s3_client.h"
#include "spotgrid/services/sqs_client.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

// Options every verb accepts, added after the verb's own.
std::vector<OptionSpec> CommonOptions(const VerbSpec& spec) {
  std::vector<OptionSpec> out;
  auto has = [&](const std::string& name) {
    return std::any_of(spec.options.begin(), spec.options.end(),
                       [&](const OptionSpec& o) { return o.name == name; });
  };
  if (!has("stack")) {
    out.push_back({"stack", "NAME", "the stack to act on", false, "SPOTGRID_STACK"});
  }
  if (!has("verbose"))
    out.push_back({"verbose", "", "log what the AWS clients do (to stderr)", false, ""});
  if (!has("help")) out.push_back({"help", "", "show this help", false, ""});
  return out;
}

const OptionSpec* FindOption(const std::vector<OptionSpec>& own,
                             const std::vector<OptionSpec>& common, std::string_view name) {
  for (const auto* list : {&own, &common}) {
    for (const OptionSpec& option : *list) {
      if (option.name == name) return &option;
    }
  }
  return nullptr;
}

std::string UsageLine(const VerbSpec& spec) {
  std::string out = "usage: controller " + spec.name + " [options]";
  if (!spec.positionals.empty()) out += " " + spec.positionals;
  return out;
}

Error UsageError(const VerbSpec& spec, const std::string& message) {
  return Error::InvalidInput(spec.name + ": " + message + "\n" + UsageLine(spec) +
                             "  (see controller " + spec.name + " --help)");
}

std::string OptionLabel(const OptionSpec& option) {
  std::string label = "--" + option.name;
  if (option.name == "help") label = "-h, --help";
  if (option.name == "verbose") label = "-v, --verbose";
  if (!option.value_name.empty()) label += " " + option.value_name;
  return label;
}

constexpr const char* kVersion = SPOTGRID_VERSION;

std::string TopLevelHelp() {
  std::string out =
      "usage: controller VERB [options]\n"
      "\n"
      "spotgrid runs grids of shell commands on fleets of EC2 Spot workers.\n"
      "\n"
      "verbs:\n";
  for (const Verb& verb : AllVerbs()) {
    std::string name = verb.spec.name;
    name.resize(std::max<std::size_t>(name.size(), 10), ' ');
    out += "  " + name + " " + verb.spec.summary + "\n";
  }
  out +=
      "\n"
      "Every verb takes --stack NAME (default: $SPOTGRID_STACK) and --help.\n"
      "Exit status: 0 success, 2 bad usage or bad input (nothing changed), 1 failure at run "
      "time.\n"
      "\n"
      "options:\n"
      "  -h, --help     this text\n"
      "  --version      the version\n";
  return out;
}

}  // namespace

// --- Args ------------------------------------------------------------------------------------

bool Args::Has(const std::string& name) const { return values_.count(name) > 0; }

std::optional<std::string> Args::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::string Args::GetOr(const std::string& name, std::string fallback) const {
  auto value = Get(name);
  return value ? *value : std::move(fallback);
}

std::vector<std::string> Args::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

Result<std::optional<long long>> Args::GetInt(const std::string& name, long long min,
                                              long long max) const {
  auto text = Get(name);
  if (!text) return std::optional<long long>();
  long long value = 0;
  const char* begin = text->data();
  const char* end = begin + text->size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end || text->empty()) {
    return Error::InvalidInput("--" + name + ": '" + *text + "' is not a whole number");
  }
  if (value < min || value > max) {
    return Error::InvalidInput("--" + name + ": " + *text + " is out of range (" +
                               std::to_string(min) + ".." + std::to_string(max) + ")");
  }
  return std::optional<long long>(value);
}

Result<std::optional<std::chrono::seconds>> Args::GetDuration(const std::string& name) const {
  auto text = Get(name);
  if (!text) return std::optional<std::chrono::seconds>();
  std::optional<std::chrono::seconds> duration = ParseDuration(*text);
  if (!duration) {
    return Error::InvalidInput("--" + name + ": '" + *text +
                               "' is not a duration (e.g. 90s, 15m, 2h, 1d or seconds)");
  }
  return duration;
}

Result<Args> ParseArgs(const VerbSpec& spec, const std::vector<std::string>& argv,
                       const Environment& env) {
  const std::vector<OptionSpec> common = CommonOptions(spec);
  Args args;
  bool options_done = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (options_done || arg == "-" || arg.size() < 2 || arg[0] != '-') {
      args.positionals_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name;
    std::optional<std::string> inline_value;
    if (arg == "-h") {
      name = "help";
    } else if (arg == "-v") {
      name = "verbose";
    } else if (arg.rfind("--", 0) == 0) {
      name = arg.substr(2);
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
    } else {
      return UsageError(spec, "unknown option '" + arg + "'");
    }
    const OptionSpec* option = FindOption(spec.options, common, name);
    if (option == nullptr) return UsageError(spec, "unknown option '--" + name + "'");
    if (option->value_name.empty()) {
      if (inline_value) return UsageError(spec, "--" + name + " takes no value");
      args.values_[name] = {""};
      continue;
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < argv.size()) {
      value = argv[++i];
    } else {
      return UsageError(spec, "--" + name + " needs a value (" + option->value_name + ")");
    }
    auto& slot = args.values_[name];
    if (option->repeatable) {
      slot.push_back(std::move(value));
    } else {
      slot = {std::move(value)};
    }
  }
  if (args.Has("help")) return args;

  for (const auto* list : {&spec.options, &common}) {
    for (const OptionSpec& option : *list) {
      if (option.env.empty() || args.Has(option.name)) continue;
      auto value = env.Get(option.env);
      if (value && !value->empty()) args.values_[option.name] = {*value};
    }
  }
  const int count = static_cast<int>(args.positionals_.size());
  if (count < spec.min_positionals) {
    return UsageError(spec, spec.positionals.empty() ? std::string("missing argument")
                                                     : "missing " + spec.positionals);
  }
  if (count > spec.max_positionals) {
    return UsageError(spec,
                      "unexpected argument '" + args.positionals_[spec.max_positionals] + "'");
  }
  return args;
}

std::string VerbHelp(const VerbSpec& spec) {
  std::string out = UsageLine(spec) + "\n\n" + spec.summary + "\n\noptions:\n";
  const std::vector<OptionSpec> common = CommonOptions(spec);
  std::size_t width = 0;
  for (const auto* list : {&spec.options, &common}) {
    for (const OptionSpec& option : *list) width = std::max(width, OptionLabel(option).size());
  }
  for (const auto* list : {&spec.options, &common}) {
    for (const OptionSpec& option : *list) {
      std::string label = OptionLabel(option);
      label.resize(width, ' ');
      out += "  " + label + "  " + option.help;
      if (!option.env.empty()) out += " (default: $" + option.env + ")";
      if (option.repeatable) out += " (repeatable)";
      out += "\n";
    }
  }
  if (!spec.details.empty()) {
    out += "\n" + spec.details;
    if (out.back() != '\n') out += "\n";
  }
  return out;
}

// --- Controller --------------------------------------------------------------------------------

Controller::Controller(const Environment& env, Clock& clock, std::FILE* out, std::FILE* err)
    : env_(env), clock_(clock), out_(out), err_(err) {}

bool Controller::out_is_terminal() const { return ::isatty(::fileno(out_)) == 1; }
bool Controller::err_is_terminal() const { return ::isatty(::fileno(err_)) == 1; }

Result<std::shared_ptr<AwsContext>> Controller::aws() {
  if (aws_) return aws_;
  AwsContextOptions options;
  options.env = &env_;
  options.clock = &clock_;
  auto context = AwsContext::Create(std::move(options));
  if (!context.ok()) return context.error();
  aws_ = *context;
  return aws_;
}

Result<std::shared_ptr<Sqs>> Controller::sqs() {
  if (sqs_) return sqs_;
  auto context = aws();
  if (!context.ok()) return context.error();
  SqsClientOptions options;
  // Verbs that send many messages in one call (retry, cancel) keep this many batches in
  // flight; enqueue keeps its own window (kInFlightWindow in verbs/enqueue.cc).
  options.batch_concurrency = 16;
  auto client = SqsClient::Create(*context, options);
  if (!client.ok()) return client.error();
  sqs_ = *client;
  return sqs_;
}

Result<std::shared_ptr<S3>> Controller::s3() {
  if (s3_) return s3_;
  auto context = aws();
  if (!context.ok()) return context.error();
  auto client = S3Client::Create(*context);
  if (!client.ok()) return client.error();
  s3_ = *client;
  return s3_;
}

Result<std::shared_ptr<Ec2>> Controller::ec2() {
  if (ec2_) return ec2_;
  auto context = aws();
  if (!context.ok()) return context.error();
  auto client = Ec2Client::Create(*context);
  if (!client.ok()) return client.error();
  ec2_ = *client;
  return ec2_;
}

Result<std::shared_ptr<Ledger>> Controller::ledger(const std::string& stack) {
  auto it = ledgers_.find(stack);
  if (it != ledgers_.end()) return it->second;
  if (Status valid = ValidateStackName(stack); !valid.ok()) return valid.error();
  auto context = aws();
  if (!context.ok()) return context.error();
  DynamoDbClientOptions db_options;
  db_options.batch_concurrency = 16;
  auto db = DynamoDbClient::Create(*context, db_options);
  if (!db.ok()) return db.error();
  DynamoLedgerOptions options;
  options.table = LedgerTableName(stack);
  options.write_concurrency = 16;
  auto ledger = MakeDynamoLedger(*db, std::move(options), clock_);
  ledgers_[stack] = ledger;
  return ledger;
}

Result<StackInfo> Controller::stack(const std::string& stack) {
  auto ledger = this->ledger(stack);
  if (!ledger.ok()) return ledger.error();
  auto info = (*ledger)->GetStack();
  const std::string hint = "stack '" + stack + "' does not exist (no " +
                           (info.ok() ? std::string("stack item in table ") : "table ") +
                           LedgerTableName(stack) + "): run `controller init --stack " + stack +
                           " --bucket BUCKET` first";
  if (!info.ok()) {
    if (!info.error().IsNotFound()) return info.error();
    Error error = info.error();
    error.message = hint;
    error.service.clear();
    error.operation.clear();
    error.code.clear();
    error.http_status = 0;
    error.request_id.clear();
    return error;
  }
  if (!info->has_value()) {
    Error error;
    error.category = ErrorCategory::kNotFound;
    error.message = hint;
    return error;
  }
  return **info;
}

// --- errors ------------------------------------------------------------------------------------

int ReportError(Controller& controller, const Error& error) {
  std::fprintf(controller.err(), "controller: %s\n", error.ToString().c_str());
  std::fflush(controller.err());
  return error.category == ErrorCategory::kInvalidInput ? kExitUsage : kExitFailure;
}

int ReportError(Controller& controller, const Status& status) {
  if (status.ok()) return kExitOk;
  return ReportError(controller, status.error());
}

// --- ProgressBar ---------------------------------------------------------------------------------

struct ProgressBar::Impl {
  Controller& controller;
  std::string label;
  std::int64_t total = 0;
  bool enabled = false;
  std::mutex mu;
  Clock::MonoTime start;
  Clock::MonoTime last_draw{};
  std::int64_t done = 0;
  bool finished = false;

  void Draw(bool final_line) {
    const double seconds =
        std::chrono::duration<double>(controller.clock().Monotonic() - start).count();
    const double fraction =
        total > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total)) : 1.0;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '=');
    bar.resize(kWidth, ' ');
    std::fprintf(controller.err(), "\r%-8s %s/%s %3d%% [%s] %.1f s%s", label.c_str(),
                 FormatCount(done).c_str(), FormatCount(total).c_str(),
                 static_cast<int>(fraction * 100), bar.c_str(), seconds, final_line ? "\n" : "");
    std::fflush(controller.err());
  }

  static std::string FormatCount(std::int64_t n) {
    std::string digits = std::to_string(n < 0 ? -n : n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return n < 0 ? "-" + out : out;
  }
};

ProgressBar::ProgressBar(Controller& controller, std::string label, std::int64_t total,
                         bool enabled)
    : impl_(std::make_unique<Impl>(controller)) {
  impl_->label = std::move(label);
  impl_->total = total;
  impl_->enabled = enabled && controller.err_is_terminal();
  impl_->start = controller.clock().Monotonic();
}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Update(std::int64_t done) {
  if (!impl_->enabled) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->finished) return;
  impl_->done = std::max(impl_->done, done);
  const Clock::MonoTime now = impl_->controller.clock().Monotonic();
  if (now - impl_->last_draw < std::chrono::milliseconds(100)) return;
  impl_->last_draw = now;
  impl_->Draw(false);
}

void ProgressBar::Finish() {
  if (!impl_->enabled) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->finished) return;
  impl_->finished = true;
  impl_->Draw(true);
}

// --- verbs -------------------------------------------------------------------------------------

const std::vector<Verb>& AllVerbs() {
  static const std::vector<Verb> verbs = {
      InitVerb(),    EnqueueVerb(), ProgressVerb(), ListVerb(),    ShowVerb(),     LogsVerb(),
      ResultsVerb(), RetryVerb(),   CancelVerb(),   WorkersVerb(), UserdataVerb(),
  };
  return verbs;
}

int RunController(const std::vector<std::string>& argv, Controller& controller) {
  if (argv.empty()) {
    std::fputs(TopLevelHelp().c_str(), controller.err());
    return kExitUsage;
  }
  const std::string& first = argv.front();
  if (first == "--help" || first == "-h" || first == "help") {
    if (first == "help" && argv.size() > 1) {
      return RunController({argv[1], "--help"}, controller);
    }
    std::fputs(TopLevelHelp().c_str(), controller.out());
    return kExitOk;
  }
  if (first == "--version") {
    std::fprintf(controller.out(), "controller %s\n", kVersion);
    return kExitOk;
  }
  const auto& verbs = AllVerbs();
  auto verb =
      std::find_if(verbs.begin(), verbs.end(), [&](const Verb& v) { return v.spec.name == first; });
  if (verb == verbs.end()) {
    std::fprintf(controller.err(), "controller: unknown verb '%s' (try controller --help)\n",
                 first.c_str());
    return kExitUsage;
  }
  auto args = ParseArgs(verb->spec, std::vector<std::string>(argv.begin() + 1, argv.end()),
                        controller.env());
  if (!args.ok()) return ReportError(controller, args.error());
  if (args->Has("help")) {
    std::fputs(VerbHelp(verb->spec).c_str(), controller.out());
    return kExitOk;
  }
  if (args->Has("verbose")) Logger().set_level(spdlog::level::debug);
  int code = verb->run(*args, controller);
  std::fflush(controller.out());
  return code;
}

}  // namespace spotgrid
