#include "agent/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <system_error>
#include <utility>
#include <vector>

#include "agent/environment_file.h"
#include "spotgrid/core/duration.h"
#include "spotgrid/core/file_io.h"
#include "spotgrid/ledger/ledger.h"

namespace spotgrid::agent {
namespace {

using std::chrono::seconds;

constexpr std::string_view kEnvPrefix = "SPOTGRID_";

// One setting of the agent: its flag, its variable, how it is parsed and how
// its default reads in the usage text. Every source (flag, environment, file)
// goes through `apply`, so the three accept exactly the same values.
struct Setting {
  std::string_view flag;        // "sync-interval" for --sync-interval / SPOTGRID_SYNC_INTERVAL
  std::string_view value_name;  // "DURATION" in the usage text
  std::string_view help;
  // Stores `text` into `config`; returns what is wrong with it, or "" when it
  // is fine.
  std::string (*apply)(AgentConfig& config, const std::string& text);
  // The default as the usage text shows it; "" for none.
  std::string (*show)(const AgentConfig& config);
};

std::string Quoted(const std::string& text) { return "'" + text + "'"; }

// "300" -> "5m": the largest unit that divides the value, as a person would
// write it.
std::string ShowDuration(seconds value) {
  const long long s = value.count();
  if (s != 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

std::optional<long long> ParseInt(const std::string& text) {
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// A duration in [min, max]; returns the problem, or "" after storing it in
// `out`.
std::string ApplyDuration(const std::string& text, seconds min, seconds max, seconds& out) {
  std::optional<seconds> value = ParseDuration(text);
  if (!value) return "expected a duration like 30s, 5m, 1h, got " + Quoted(text);
  if (*value < min || *value > max) {
    return "expected a duration from " + ShowDuration(min) + " to " + ShowDuration(max) + ", got " +
           Quoted(text);
  }
  out = *value;
  return "";
}

// The longest duration ParseDuration accepts: "no upper bound" for settings
// that need none.
constexpr seconds kYear{365LL * 86400};

// The signals a checkpoint is usually asked with, by name; any other by number.
constexpr std::pair<std::string_view, int> kSignalNames[] = {{"TERM", SIGTERM}, {"INT", SIGINT},
                                                             {"HUP", SIGHUP},   {"USR1", SIGUSR1},
                                                             {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}};

// An Auto Scaling group or lifecycle hook name: 1..255 printable characters, no spaces
// (what the API accepts for both).
bool IsAwsName(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return c > ' ' && c < 127; });
}

// POSIX portable user names (what useradd accepts by default), so a typo such
// as
// "--user 'spot grid'" is caught at start rather than when the first unit runs.
bool IsUserName(const std::string& name) {
  if (name.empty() || name.size() > 32 || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> settings = {
      {"stack", "NAME", "the stack whose queue and ledger this agent works for (required)",
       [](AgentConfig& c, const std::string& text) -> std::string {
         Status valid = ValidateStackName(text);
         if (!valid.ok()) return valid.error().message;
         c.stack = text;
         return "";
       },
       [](const AgentConfig&) { return std::string(); }},
      {"slots", "N", "units run at once, each in its own slot and process group (1..1024)",
       [](AgentConfig& c, const std::string& text) -> std::string {
         std::optional<long long> value = ParseInt(text);
         if (!value || *value < 1 || *value > 1024) {
           return "expected an integer 1..1024, got " + Quoted(text);
         }
         c.slots = static_cast<int>(*value);
         return "";
       },
       [](const AgentConfig& c) { return std::to_string(c.slots); }},
      {"work-dir", "DIR",
       "absolute path under which each slot gets its scratch, output and "
       "checkpoint "
       "directories",
       [](AgentConfig& c, const std::string& text) -> std::string {
         std::filesystem::path path(text);
         if (text.empty() || !path.is_absolute()) {
           return "expected an absolute path, got " + Quoted(text);
         }
         c.work_dir = path.lexically_normal();
         return "";
       },
       [](const AgentConfig& c) { return c.work_dir.string(); }},
      {"sync-interval", "DURATION",
       "how often a running unit's output and checkpoint directories are "
       "synced to S3 "
       "(they are also synced when it ends)",
       [](AgentConfig& c, const std::string& text) {
         return ApplyDuration(text, seconds(1), kYear, c.sync_interval);
       },
       [](const AgentConfig& c) { return ShowDuration(c.sync_interval); }},
      {"heartbeat", "DURATION",
       "how often a running unit's lease and message visibility are renewed "
       "and its progress "
       "reported (1s..1h); the lease lasts max(3 heartbeats, 10s), after which "
       "another agent "
       "may take the unit over",
       [](AgentConfig& c, const std::string& text) {
         // At most an hour: the message's visibility is extended by about a
         // lease each time, and SQS caps a message's total invisibility at 12
         // hours.
         return ApplyDuration(text, seconds(1), seconds(3600), c.heartbeat);
       },
       [](const AgentConfig& c) { return ShowDuration(c.heartbeat); }},
      {"idle-shutdown", "DURATION",
       "how long the queue must stay empty, with every slot free, before "
       "--on-drain applies",
       [](AgentConfig& c, const std::string& text) {
         return ApplyDuration(text, seconds(1), kYear, c.idle_shutdown);
       },
       [](const AgentConfig& c) { return ShowDuration(c.idle_shutdown); }},
      {"on-drain", "ACTION",
       "what to do once idle: terminate (this instance, through its Auto "
       "Scaling group when "
       "it has one), exit (0, leaving the instance running) or stay (keep "
       "polling)",
       [](AgentConfig& c, const std::string& text) -> std::string {
         if (text == "terminate") {
           c.on_drain = DrainAction::kTerminate;
         } else if (text == "exit") {
           c.on_drain = DrainAction::kExit;
         } else if (text == "stay") {
           c.on_drain = DrainAction::kStay;
         } else {
           return "expected terminate, exit or stay, got " + Quoted(text);
         }
         return "";
       },
       [](const AgentConfig& c) { return std::string(ToString(c.on_drain)); }},
      {"user", "NAME",
       "the user units run as when the agent runs as root; empty: the agent's "
       "own user "
       "(allowed only when the agent is not root)",
       [](AgentConfig& c, const std::string& text) -> std::string {
         if (!text.empty() && !IsUserName(text)) {
           return "expected a user name ([A-Za-z0-9._-], at most 32), got " + Quoted(text);
         }
         c.user = text;
         return "";
       },
       [](const AgentConfig& c) { return c.user; }},
      {"env-file", "FILE",
       "the environment file to read SPOTGRID_* settings from (KEY=VALUE "
       "lines, systemd "
       "EnvironmentFile= syntax; other keys are ignored); a missing default "
       "file is fine, "
       "/dev/null reads none",
       [](AgentConfig& c, const std::string& text) -> std::string {
         if (text.empty()) return "expected a file name, got ''";
         c.env_file = text;
         return "";
       },
       [](const AgentConfig& c) { return c.env_file.string(); }},
      {"kill-grace", "DURATION",
       "how long a unit's process group has between SIGTERM and SIGKILL "
       "(timeout, cancel, "
       "shutdown)",
       [](AgentConfig& c, const std::string& text) {
         return ApplyDuration(text, seconds(1), seconds(3600), c.kill_grace);
       },
       [](const AgentConfig& c) { return ShowDuration(c.kill_grace); }},
      {"poll-wait", "DURATION", "the queue's long-poll wait (1s..20s, SQS's maximum)",
       [](AgentConfig& c, const std::string& text) {
         seconds wait{};
         std::string problem = ApplyDuration(text, seconds(1), seconds(20), wait);
         if (problem.empty()) c.poll_wait_s = static_cast<int>(wait.count());
         return problem;
       },
       [](const AgentConfig& c) { return ShowDuration(seconds(c.poll_wait_s)); }},
      {"checkpoint-signal", "SIG",
       "the signal a drain sends a running unit's process group so it checkpoints: TERM, INT, "
       "HUP, USR1, USR2, QUIT or a number 1..64",
       [](AgentConfig& c, const std::string& text) -> std::string {
         std::string_view name = text;
         if (name.substr(0, 3) == "SIG") name.remove_prefix(3);
         for (const auto& [known, number] : kSignalNames) {
           if (name == known) {
             c.checkpoint_signal = number;
             return "";
           }
         }
         std::optional<long long> value = ParseInt(text);
         if (!value || *value < 1 || *value > 64 || *value == SIGKILL || *value == SIGSTOP) {
           return "expected TERM, INT, HUP, USR1, USR2, QUIT or a signal number 1..64 (not "
                  "KILL or STOP), got " +
                  Quoted(text);
         }
         c.checkpoint_signal = static_cast<int>(*value);
         return "";
       },
       [](const AgentConfig& c) { return SignalName(c.checkpoint_signal); }},
      {"stop-timeout", "DURATION",
       "what systemd allows the service to stop (TimeoutStopSec, 10s..1h): a drain started by "
       "SIGTERM or a lifecycle transition ends 5s before it",
       [](AgentConfig& c, const std::string& text) {
         return ApplyDuration(text, seconds(10), seconds(3600), c.stop_timeout);
       },
       [](const AgentConfig& c) { return ShowDuration(c.stop_timeout); }},
      {"upload-reserve", "DURATION",
       "the time a drain keeps for uploads (checkpoint, outputs, logs) after the units' grace "
       "period; less than --stop-timeout minus 5s",
       [](AgentConfig& c, const std::string& text) {
         return ApplyDuration(text, seconds(0), seconds(3600), c.upload_reserve);
       },
       [](const AgentConfig& c) { return ShowDuration(c.upload_reserve); }},
      {"rebalance", "POLICY",
       "what a rebalance recommendation does: ignore, stop-taking (no new units; running ones "
       "go on and end normally) or checkpoint (drain as for SIGTERM)",
       [](AgentConfig& c, const std::string& text) -> std::string {
         if (text == "ignore") {
           c.rebalance = RebalancePolicy::kIgnore;
         } else if (text == "stop-taking") {
           c.rebalance = RebalancePolicy::kStopTaking;
         } else if (text == "checkpoint") {
           c.rebalance = RebalancePolicy::kCheckpoint;
         } else {
           return "expected ignore, stop-taking or checkpoint, got " + Quoted(text);
         }
         return "";
       },
       [](const AgentConfig& c) { return std::string(ToString(c.rebalance)); }},
      {"spot-poll", "DURATION",
       "how often instance metadata is asked for a Spot interruption notice, a rebalance "
       "recommendation or a lifecycle transition (1s..1h)",
       [](AgentConfig& c, const std::string& text) {
         return ApplyDuration(text, seconds(1), seconds(3600), c.spot_poll);
       },
       [](const AgentConfig& c) { return ShowDuration(c.spot_poll); }},
      {"asg-name", "NAME",
       "this instance's Auto Scaling group; empty: looked up once at start "
       "(DescribeAutoScalingInstances)",
       [](AgentConfig& c, const std::string& text) -> std::string {
         if (!text.empty() && !IsAwsName(text)) {
           return "expected a group name (1..255 characters, no blanks), got " + Quoted(text);
         }
         c.asg_name = text;
         return "";
       },
       [](const AgentConfig& c) { return c.asg_name; }},
      {"lifecycle-hook", "NAME",
       "the group's termination lifecycle hook: heartbeated while a scale-in drains this "
       "worker, completed with CONTINUE after; empty: the drain happens but can't complete "
       "the action",
       [](AgentConfig& c, const std::string& text) -> std::string {
         if (!text.empty() && !IsAwsName(text)) {
           return "expected a hook name (1..255 characters, no blanks), got " + Quoted(text);
         }
         c.lifecycle_hook = text;
         return "";
       },
       [](const AgentConfig& c) { return c.lifecycle_hook; }},
      {"log-level", "LEVEL", "trace, debug, info, warn or error",
       [](AgentConfig& c, const std::string& text) -> std::string {
         for (const char* level : {"trace", "debug", "info", "warn", "error"}) {
           if (text == level) {
             c.log_level = text;
             return "";
           }
         }
         return "expected trace, debug, info, warn or error, got " + Quoted(text);
       },
       [](const AgentConfig& c) { return c.log_level; }},
  };
  return settings;
}

const Setting* FindSetting(std::string_view flag) {
  for (const Setting& setting : Settings()) {
    if (setting.flag == flag) return &setting;
  }
  return nullptr;
}

// --sync-interval -> SPOTGRID_SYNC_INTERVAL.
std::string VariableName(std::string_view flag) {
  std::string out(kEnvPrefix);
  for (char c : flag) out += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return out;
}

const Setting* FindSettingByVariable(std::string_view variable) {
  for (const Setting& setting : Settings()) {
    if (VariableName(setting.flag) == variable) return &setting;
  }
  return nullptr;
}

// A setting's text and where it came from, which prefixes any error about it:
// "--slots", "environment variable SPOTGRID_SLOTS", "/etc/spotgrid/agent.env:3:
// SPOTGRID_SLOTS".
struct Value {
  std::string text;
  std::string source;
};

Error UsageError(const std::string& message) {
  return Error::InvalidInput(message + " (see agent --help)");
}

struct ParsedFlags {
  std::map<std::string_view, Value> values;  // by flag name
  bool help = false;
  bool version = false;
};

Result<ParsedFlags> ParseFlags(std::span<const std::string> args) {
  ParsedFlags out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      continue;
    }
    if (arg == "--version") {
      out.version = true;
      continue;
    }
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      return UsageError("unexpected argument " + Quoted(arg) + "; settings are --flag VALUE");
    }
    std::string_view name = std::string_view(arg).substr(2);
    std::optional<std::string> value;
    if (std::size_t eq = name.find('='); eq != std::string_view::npos) {
      value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    if (name == "help" || name == "version") {
      return UsageError("--" + std::string(name) + " takes no value");
    }
    const Setting* setting = FindSetting(name);
    if (setting == nullptr) return UsageError("unknown option --" + std::string(name));
    if (!value) {
      // A value never starts with "--": "--user --slots 2" lost the user, not a
      // name.
      if (i + 1 >= args.size() || args[i + 1].compare(0, 2, "--") == 0) {
        return UsageError("--" + std::string(name) + ": missing value");
      }
      value = args[++i];
    }
    out.values[setting->flag] = Value{*value, "--" + std::string(setting->flag)};
  }
  return out;
}

// The SPOTGRID_* settings of the environment file, by flag name. Other keys are
// for systemd to export (AWS_REGION, ...) and are not ours to judge; an unknown
// SPOTGRID_* key is a typo that would otherwise silently fall back to a
// default.
Result<std::map<std::string_view, Value>> ReadEnvFile(const std::filesystem::path& path,
                                                      bool explicitly_named,
                                                      const std::string& named_by) {
  Result<std::string> text = ReadFile(path, "read environment file");
  std::map<std::string_view, Value> values;
  if (!text.ok()) {
    if (!text.error().IsNotFound()) return text.error();
    if (explicitly_named) {
      return Error::InvalidInput(named_by + ": " + path.string() + ": no such file");
    }
    return values;
  }
  Result<std::vector<EnvironmentFileEntry>> entries = ParseEnvironmentFile(*text, path.string());
  if (!entries.ok()) return entries.error();
  for (EnvironmentFileEntry& entry : *entries) {
    if (entry.key.compare(0, kEnvPrefix.size(), kEnvPrefix) != 0) continue;
    const std::string where = path.string() + ":" + std::to_string(entry.line) + ": " + entry.key;
    const Setting* setting = FindSettingByVariable(entry.key);
    if (setting == nullptr) return UsageError(where + ": unknown setting");
    if (setting->flag == "env-file") {
      return Error::InvalidInput(where +
                                 ": names the environment file, so it can't be set in "
                                 "one; use --env-file or the environment");
    }
    values[setting->flag] = Value{std::move(entry.value), where};
  }
  return values;
}

constexpr std::size_t kHelpColumn = 28;
constexpr std::size_t kUsageWidth = 96;

// `text` in lines of at most `width` columns, each after the first indented to `column`; ends
// with a newline.
std::string Wrap(std::string_view text, std::size_t column, std::size_t width) {
  std::string out;
  std::size_t line_length = column;
  while (!text.empty()) {
    std::size_t space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (line_length > column && line_length + 1 + word.size() > width) {
      out += "\n" + std::string(column, ' ');
      line_length = column;
    } else if (line_length > column) {
      out += ' ';
      ++line_length;
    }
    out += word;
    line_length += word.size();
  }
  return out + "\n";
}

}  // namespace

std::string_view ToString(RebalancePolicy policy) {
  switch (policy) {
    case RebalancePolicy::kIgnore:
      return "ignore";
    case RebalancePolicy::kStopTaking:
      return "stop-taking";
    case RebalancePolicy::kCheckpoint:
      return "checkpoint";
  }
  return "stop-taking";
}

std::string SignalName(int signal) {
  for (const auto& [name, number] : kSignalNames) {
    if (number == signal) return std::string(name);
  }
  return std::to_string(signal);
}

std::string_view ToString(DrainAction action) {
  switch (action) {
    case DrainAction::kTerminate:
      return "terminate";
    case DrainAction::kExit:
      return "exit";
    case DrainAction::kStay:
      return "stay";
  }
  return "terminate";
}

Result<AgentConfig> LoadAgentConfig(std::span<const std::string> args, const Environment& env) {
  Result<ParsedFlags> flags = ParseFlags(args);
  if (!flags.ok()) return flags.error();
  AgentConfig config;
  config.show_help = flags->help;
  config.show_version = flags->version;
  // --help and --version answer even when the environment or its file is
  // broken.
  if (config.show_help || config.show_version) return config;

  auto from_environment = [&](std::string_view flag) -> std::optional<Value> {
    const std::string variable = VariableName(flag);
    std::optional<std::string> text = env.Get(variable);
    if (!text) return std::nullopt;
    return Value{*text, "environment variable " + variable};
  };

  // The file first: it is named by the flag or the environment, never by
  // itself.
  const Setting& env_file_setting = *FindSetting("env-file");
  std::optional<Value> env_file_value;
  if (auto it = flags->values.find("env-file"); it != flags->values.end()) {
    env_file_value = it->second;
  } else {
    env_file_value = from_environment("env-file");
  }
  if (env_file_value) {
    std::string problem = env_file_setting.apply(config, env_file_value->text);
    if (!problem.empty()) return Error::InvalidInput(env_file_value->source + ": " + problem);
  }
  Result<std::map<std::string_view, Value>> file =
      ReadEnvFile(config.env_file, env_file_value.has_value(),
                  env_file_value ? env_file_value->source : std::string());
  if (!file.ok()) return file.error();

  // Per setting, the winning source alone is parsed: a flag that overrides a
  // bad line in the file is the operator's way around it.
  for (const Setting& setting : Settings()) {
    if (setting.flag == "env-file") continue;
    std::optional<Value> value;
    if (auto it = flags->values.find(setting.flag); it != flags->values.end()) {
      value = it->second;
    } else if (std::optional<Value> from_env = from_environment(setting.flag)) {
      value = std::move(from_env);
    } else if (auto it = file->find(setting.flag); it != file->end()) {
      value = it->second;
    }
    if (!value) continue;
    std::string problem = setting.apply(config, value->text);
    if (!problem.empty()) return Error::InvalidInput(value->source + ": " + problem);
  }

  if (config.stack.empty()) {
    return UsageError(
        "--stack: required: give --stack NAME, SPOTGRID_STACK in "
        "the environment "
        "or SPOTGRID_STACK=NAME in " +
        config.env_file.string());
  }
  // Three heartbeats ride out two lost renewals; the 10 s floor keeps a very
  // short heartbeat (a test, a demo) from losing the lease to one slow ledger
  // round trip with retries.
  config.lease = std::max<seconds>(3 * config.heartbeat, seconds(10));
  // The drain's grace period (D - upload_reserve, D = stop_timeout - 5 s away) must not be
  // gone before it starts.
  if (config.upload_reserve >= config.stop_timeout - seconds(5)) {
    return UsageError("--upload-reserve " + ShowDuration(config.upload_reserve) +
                      " leaves no grace period within --stop-timeout " +
                      ShowDuration(config.stop_timeout) +
                      " (the drain ends 5s before the stop timeout): give a smaller reserve or "
                      "a longer stop timeout");
  }
  return config;
}

std::string AgentUsage() {
  const AgentConfig defaults;
  std::string out =
      "usage: agent --stack NAME [options]\n"
      "\n"
      "The spotgrid worker daemon: long-polls the stack's queue, claims units "
      "in its ledger,\n"
      "runs each command with /bin/sh -c in a slot of its own, heartbeats, and "
      "syncs the\n"
      "unit's outputs, checkpoints and logs to S3. Usually started by systemd\n"
      "(spotgrid-agent.service), which gets READY, STATUS and WATCHDOG "
      "notifications.\n"
      "\n"
      "Every option can also be set by the environment variable "
      "SPOTGRID_<OPTION> (upper\n"
      "case, '-' as '_', e.g. SPOTGRID_SYNC_INTERVAL=1m) or by such a line in "
      "the environment\n"
      "file. A flag beats the environment, which beats the file, which beats "
      "the default.\n"
      "Durations: 30 or 30s, 5m, 2h, 1d.\n"
      "\n"
      "options:\n";
  for (const Setting& setting : Settings()) {
    std::string label = "--" + std::string(setting.flag) + " " + std::string(setting.value_name);
    label.resize(std::max<std::size_t>(label.size() + 1, kHelpColumn - 2), ' ');
    out += "  " + label + Wrap(setting.help, kHelpColumn, kUsageWidth);
    std::string source = VariableName(setting.flag);
    const std::string shown = setting.show(defaults);
    if (setting.flag == "stack") {
      source += ", no default";
    } else if (shown.empty()) {
      source += ", default: '' (empty)";
    } else {
      source += ", default: " + shown;
    }
    out += std::string(kHelpColumn, ' ') + "[" + source + "]\n";
  }
  out +=
      "  -h, --help                this text\n"
      "  --version                 the version\n"
      "\n"
      "A bad setting stops the agent at start with a message naming it and "
      "where it came\n"
      "from: the flag, the variable, or the file and line.\n";
  return out;
}

}  // namespace spotgrid::agent
