// controller userdata: the EC2 user-data script that turns an instance of the agent's image
// (packer/) into a worker of this stack. The script writes /etc/spotgrid/agent.env, waits for
// the network and starts spotgrid-agent.service.
//
// The script is a block of settings (shell assignments, the only part that differs between
// stacks) followed by a body that is the same for every stack. deploy/fleet.yaml embeds the
// same body after a settings block filled from its parameters; tests/packaging compares the
// two, so the body below and the template's must change together.
//
// SPOTGRID_ROOT=/tmp/x bash script.sh writes under /tmp/x and leaves systemd alone: a way to
// see what a worker would get, and how the tests run it.
#include <algorithm>
#include <string_view>
#include <utility>
#include <vector>

#include "grid.h"
#include "job_selection.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

// The part of the script after the settings. It reads: stack, region, slots (empty: one
// per vCPU), asg_name, lifecycle_hook (empty: left out) and extra (KEY=VALUE settings).
constexpr std::string_view kUserdataBody = R"BODY(
root="${SPOTGRID_ROOT:-}"
if [[ -z "${slots}" ]]; then
  slots="$(nproc)"
fi

# One line of a systemd EnvironmentFile= from KEY=VALUE: the value double-quoted, with the
# four characters that are special there (\ " ` $) escaped, so any value reads back as is.
env_line() {
  local key="${1%%=*}" value="${1#*=}" escaped="" char i
  for ((i = 0; i < ${#value}; i++)); do
    char="${value:i:1}"
    case "${char}" in
      \\ | \" | \` | \$) escaped+="\\${char}" ;;
      *) escaped+="${char}" ;;
    esac
  done
  printf '%s="%s"\n' "${key}" "${escaped}"
}

# The agent's first calls go to AWS. cloud-init runs user data after network-online.target
# already; on images where it does not, starting the target waits for it (systemd's own
# wait-online services decide when the network is up), but not forever.
if [[ -z "${root}" ]]; then
  if ! timeout 300 systemctl start network-online.target; then
    echo "spotgrid: network-online.target not reached within 300 s; starting anyway" >&2
  fi
fi

# Written next to the target and renamed over it, so the agent never reads half a file.
install -d -m 0755 "${root}/etc/spotgrid"
tmp="$(mktemp "${root}/etc/spotgrid/.agent.env.XXXXXX")"
{
  echo "# Written at first boot by the instance's user data (controller userdata)."
  env_line "SPOTGRID_STACK=${stack}"
  env_line "AWS_REGION=${region}"
  env_line "SPOTGRID_SLOTS=${slots}"
  if [[ -n "${asg_name}" ]]; then
    env_line "SPOTGRID_ASG_NAME=${asg_name}"
  fi
  if [[ -n "${lifecycle_hook}" ]]; then
    env_line "SPOTGRID_LIFECYCLE_HOOK=${lifecycle_hook}"
  fi
  for setting in "${extra[@]}"; do
    env_line "${setting}"
  done
} >"${tmp}"
chmod 0644 "${tmp}"
mv -f "${tmp}" "${root}/etc/spotgrid/agent.env"

if [[ -n "${root}" ]]; then
  echo "spotgrid: wrote ${root}/etc/spotgrid/agent.env; SPOTGRID_ROOT is set, systemd left alone"
  exit 0
fi
# --no-block: cloud-init (running this script) need not wait for the agent to reach AWS;
# the service's own restart policy covers a slow start.
systemctl enable --now spotgrid-agent.service --no-block
)BODY";

// The settings `controller userdata` passes through to the agent besides the stack, slots
// and group: flag (as the agent spells it) and the agent's variable.
struct PassThrough {
  const char* flag;
  const char* variable;
  const char* value_name;
  const char* help;
};

constexpr PassThrough kPassThrough[] = {
    {"idle-shutdown", "SPOTGRID_IDLE_SHUTDOWN", "DURATION",
     "how long the queue stays empty before a worker drains (agent default 10m)"},
    {"on-drain", "SPOTGRID_ON_DRAIN", "ACTION",
     "terminate, exit or stay (agent default terminate)"},
    {"rebalance", "SPOTGRID_REBALANCE", "POLICY",
     "ignore, stop-taking or checkpoint on a rebalance recommendation"},
    {"checkpoint-signal", "SPOTGRID_CHECKPOINT_SIGNAL", "SIG",
     "the signal a drain sends running units so they checkpoint (TERM, USR1, ...)"},
    {"upload-reserve", "SPOTGRID_UPLOAD_RESERVE", "DURATION",
     "time a drain keeps for uploads after the units' grace period"},
};

// Values go into the script single-quoted and into the env file escaped, so any printable
// character is safe; what is refused is what the agent would refuse anyway (blanks, control
// characters), caught here rather than on every worker at boot.
bool IsPrintableWord(const std::string& value) {
  return !value.empty() && value.size() <= 255 &&
         std::all_of(value.begin(), value.end(), [](char c) { return c > ' ' && c < 127; });
}

// Stack and region go into comments and file names too: plain characters only.
bool IsPlainValue(const std::string& value) {
  if (value.empty()) return false;
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

struct UserdataSettings {
  std::string stack;
  std::string region;
  std::optional<long long> slots;
  std::string asg_name;
  std::string lifecycle_hook;
  std::vector<std::string> extra;  // KEY=VALUE
};

std::string UserDataScript(const UserdataSettings& s) {
  std::string script =
      "#!/bin/bash\n"
      "# spotgrid worker for stack " +
      s.stack +
      " (generated by `controller userdata`): writes the agent's settings to\n"
      "# /etc/spotgrid/agent.env, waits for the network and starts spotgrid-agent.service.\n"
      "# The image must hold the spotgrid package (packer/). To see what a worker would get:\n"
      "#   SPOTGRID_ROOT=/tmp/preview bash THIS_SCRIPT   (writes under /tmp/preview only)\n"
      "set -euo pipefail\n"
      "\n"
      "# --- settings ---\n"
      "# Literal values: nothing in them expands.\n"
      "# shellcheck disable=SC1003,SC2016\n"
      "{\n"
      "  stack=" +
      ShellQuote(s.stack) + "\n  region=" + ShellQuote(s.region) + "\n";
  if (s.slots) {
    script += "  slots=" + ShellQuote(std::to_string(*s.slots)) + "\n";
  } else {
    script += "  slots=''  # one per vCPU\n";
  }
  script += "  asg_name=" + ShellQuote(s.asg_name) + "\n";
  script += "  lifecycle_hook=" + ShellQuote(s.lifecycle_hook) + "\n";
  script += "  extra=(";
  for (std::size_t i = 0; i < s.extra.size(); ++i) {
    if (i > 0) script += ' ';
    script += ShellQuote(s.extra[i]);
  }
  script += ")\n}\n# --- end of settings ---\n";
  script += kUserdataBody;
  return script;
}

int RunUserdata(const Args& args, Controller& controller) {
  auto slots = args.GetInt("slots", 1, 1024);
  if (!slots.ok()) return ReportError(controller, slots.error());
  UserdataSettings settings;
  settings.slots = *slots;
  for (auto [flag, field] : {std::pair{"asg-name", &settings.asg_name},
                             std::pair{"lifecycle-hook", &settings.lifecycle_hook}}) {
    if (auto value = args.Get(flag)) {
      if (!IsPrintableWord(*value)) {
        return ReportError(controller,
                           Error::InvalidInput(std::string("--") + flag +
                                               ": expected 1..255 printable characters without "
                                               "blanks, got '" +
                                               *value + "'"));
      }
      *field = *value;
    }
  }
  for (const PassThrough& setting : kPassThrough) {
    if (auto value = args.Get(setting.flag)) {
      if (!IsPrintableWord(*value)) {
        return ReportError(controller, Error::InvalidInput(std::string("--") + setting.flag +
                                                           ": expected a value without blanks, "
                                                           "got '" +
                                                           *value + "'"));
      }
      settings.extra.push_back(std::string(setting.variable) + "=" + *value);
    }
  }
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  settings.stack = stack->info.name;
  settings.region = stack->info.region;
  if (settings.region.empty()) settings.region = controller.env().GetOr("AWS_REGION", "");
  if (!IsPlainValue(settings.region) || !IsPlainValue(settings.stack)) {
    return ReportError(
        controller, Error::InvalidInput("stack '" + settings.stack + "' has no usable region ('" +
                                        settings.region + "'): rerun `controller init`"));
  }
  std::fputs(UserDataScript(settings).c_str(), controller.out());
  return kExitOk;
}

}  // namespace

Verb UserdataVerb() {
  Verb verb;
  verb.spec.name = "userdata";
  verb.spec.summary = "print the instance user-data script that starts the agent";
  verb.spec.options = {
      ValueOption("slots", "N", "units each worker runs at once (default: one per vCPU)"),
      ValueOption("asg-name", "NAME",
                  "the workers' Auto Scaling group (default: the agent looks it up)"),
      ValueOption("lifecycle-hook", "NAME",
                  "the group's termination lifecycle hook the agent completes after a drain"),
  };
  for (const PassThrough& setting : kPassThrough) {
    verb.spec.options.push_back(ValueOption(setting.flag, setting.value_name, setting.help));
  }
  verb.spec.details =
      "Use the output as the launch template's user data (deploy/fleet.yaml embeds the same "
      "script). It writes /etc/spotgrid/agent.env with the stack, its region and the settings "
      "given here, waits for network-online.target and runs `systemctl enable --now "
      "spotgrid-agent.service`. With SPOTGRID_ROOT=DIR in its environment it writes under DIR "
      "and leaves systemd alone.";
  verb.run = RunUserdata;
  return verb;
}

}  // namespace spotgrid
