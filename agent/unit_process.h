// One run of a unit's command: `/bin/sh -c COMMAND` in its own process group and a fresh
// scratch directory, with a chosen environment, stdout and stderr appended to files (so a
// chatty command never blocks on a pipe), optionally as another (unprivileged) user.
//
// The agent waits on it with a timeout (a pidfd, so an exit wakes the waiter at once and no
// polling loop is needed) and stops it by signalling the whole group: SIGTERM first, SIGKILL
// after a grace period, so no grandchild outlives its unit.
//
// Thread-safety: one UnitProcess is driven by one slot thread; Terminate() may be called from
// any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "spotgrid/core/status.h"

namespace spotgrid::agent {

// A user to run as: looked up once at agent start (getpwnam), so a missing user is a start-up
// error and not a failure of every unit.
struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::filesystem::path home;
};
Result<RunAs> LookupUser(const std::string& name);

struct ProcessSpec {
  std::string command;                                   // run with /bin/sh -c
  std::vector<std::pair<std::string, std::string>> env;  // the whole environment
  std::filesystem::path cwd;                             // must exist
  std::filesystem::path stdout_path, stderr_path;        // opened for append, created 0640
  std::optional<RunAs> run_as;  // setgid + setgroups + setuid in the child before exec
};

struct ProcessExit {
  std::optional<int> exit_code;  // normal exit
  std::optional<int> signal;     // killed by this signal
  bool Succeeded() const { return exit_code && *exit_code == 0; }
  // The shell convention: exit code, or 128 + signal.
  int ShellStatus() const;
};

class UnitProcess {
 public:
  // Forks and execs. Fails (kIo) when a file can't be opened, the user can't be switched to,
  // or exec fails (reported from the child through a close-on-exec pipe).
  static Result<std::unique_ptr<UnitProcess>> Start(const ProcessSpec& spec);
  ~UnitProcess();  // kills the group (SIGKILL) if still running, and reaps
  UnitProcess(const UnitProcess&) = delete;
  UnitProcess& operator=(const UnitProcess&) = delete;

  pid_t pid() const;  // also the process-group id
  // Waits up to `timeout` for the shell to exit; nullopt if it is still running.
  std::optional<ProcessExit> WaitFor(std::chrono::milliseconds timeout);
  // SIGTERM to the group, waits up to `grace` for the shell, then SIGKILL to the group; after
  // the shell is gone, SIGKILL to the group once more so no straggler survives. Returns the
  // shell's exit.
  ProcessExit Terminate(std::chrono::milliseconds grace);

 private:
  struct Impl;
  explicit UnitProcess(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Environment variable names a grid column may not set, because they would change how the
// command runs rather than what it computes: PATH, IFS, LD_*, SPOTGRID_*, ...; such a column
// reaches the command as SPOTGRID_PARAM_<NAME> instead. Names that are not valid shell
// variable names are dropped.
bool IsReservedEnvName(std::string_view name);

// The environment of a unit's command: a minimal base (PATH, HOME, USER, LANG, TMPDIR), the
// SPOTGRID_* variables, then the row's params under the rule above.
std::vector<std::pair<std::string, std::string>> BuildUnitEnvironment(
    const std::vector<std::pair<std::string, std::string>>& spotgrid_vars,
    const std::vector<std::pair<std::string, std::string>>& params, const std::string& home,
    const std::string& user);

}  // namespace spotgrid::agent
