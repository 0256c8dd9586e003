// One run of a unit's command: `/bin/sh -c COMMAND` in its own process group and a fresh
// scratch directory, with a chosen environment, stdout and stderr appended to files (so a
// chatty command never blocks on a pipe), optionally as another (unprivileged) user.
//
// The agent waits on it with a timeout (a pidfd, so an exit wakes the waiter at once and no
// polling loop is needed) and stops it by signalling the whole group: SIGTERM first, SIGKILL
// after a grace period, so no grandchild outlives its unit. The shell is left un-reaped (a
// zombie) until destruction: while it exists its pid, and so the group id, cannot be reused,
// which keeps every group signal aimed at this unit's processes only. A process that leaves
// the group on purpose (setsid, setpgid) escapes the group kill; only a cgroup (systemd's
// KillMode=control-group, on agent stop) catches those.
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
#include <string_view>
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
  // Opened for append by the agent, created 0640 and owned by run_as; a symlink, a non-regular
  // file or (with run_as) a hard-linked file is refused, since the directory may be the user's.
  std::filesystem::path stdout_path, stderr_path;
  std::optional<RunAs> run_as;  // setgid + setgroups + setuid in the child before exec
};

// Both fields are empty only when the exit status was lost: the shell was reaped behind our
// back (SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere in the agent).
struct ProcessExit {
  std::optional<int> exit_code;  // normal exit
  std::optional<int> signal;     // killed by this signal
  bool Succeeded() const { return exit_code && *exit_code == 0; }
  // The shell convention: exit code, or 128 + signal; -1 when the status was lost.
  int ShellStatus() const;
};

class UnitProcess {
 public:
  // Forks and execs. stdin is /dev/null; no other descriptor of the agent is inherited; signal
  // mask and dispositions start at their defaults; the user is switched (with its
  // supplementary groups) before chdir, so a cwd the user cannot enter fails here. Fails (kIo)
  // when a file can't be opened, the user can't be switched to, chdir or exec fails (reported
  // from the child through a close-on-exec pipe); kInvalidInput for a NUL byte or an '=' in a
  // variable name, or a NUL in the command or a value.
  static Result<std::unique_ptr<UnitProcess>> Start(const ProcessSpec& spec);
  // SIGKILLs the group (the shell if still running, and any background process it left behind,
  // also after a normal exit), then reaps the shell. May block until the shell is gone.
  ~UnitProcess();
  UnitProcess(const UnitProcess&) = delete;
  UnitProcess& operator=(const UnitProcess&) = delete;

  pid_t pid() const;  // also the process-group id
  // Waits up to `timeout` for the shell to exit; nullopt if it is still running.
  std::optional<ProcessExit> WaitFor(std::chrono::milliseconds timeout);
  // SIGTERM to the group, waits up to `grace` for the shell, then SIGKILL to the group; after
  // the shell is gone, SIGKILL to the group once more so no straggler survives. Returns the
  // shell's exit.
  ProcessExit Terminate(std::chrono::milliseconds grace);
  // Sends `signal` (and SIGCONT, so a stopped process acts on it) to the group, unless the
  // shell has exited; does not wait. A drain asks a unit to checkpoint this way and waits on
  // its own clock (WaitFor) before Kill().
  void Signal(int signal);
  // SIGKILL to the group, waits for the shell, and returns its exit.
  ProcessExit Kill();
  // True while a process of the group other than the exited shell is alive. A shell that
  // forks its command (Debian's dash does, even for `sh -c 'python3 sim.py'`) dies of a
  // drain's SIGTERM at once while the program it started still writes its checkpoint: the
  // unit is the group, not the shell. Reads /proc (the agent must be able to see its units'
  // processes there); false when it cannot.
  bool GroupAlive() const;

 private:
  struct Impl;
  explicit UnitProcess(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Environment variable names a grid column may not set, because they would change how the
// command runs rather than what it computes; such a column reaches the command as
// SPOTGRID_PARAM_<NAME> instead. Names that are not valid shell variable names
// ([A-Za-z_][A-Za-z0-9_]*) are dropped. Reserved (case-sensitive):
//   the base environment and the shell's own: PATH HOME USER LOGNAME SHELL PWD OLDPWD TMPDIR
//     IFS ENV BASH_ENV CDPATH PS4 PROMPT_COMMAND SHELLOPTS BASHOPTS BASH_FUNC_*
//   locale: LANG LANGUAGE LC_* NLSPATH
//   the dynamic loader, libc and the resolver: LD_* GCONV_PATH GLIBC_TUNABLES MALLOC_*
//     HOSTALIASES LOCALDOMAIN RES_OPTIONS
//   what interpreters load or run as they start: PYTHONPATH PYTHONHOME PYTHONSTARTUP
//     PYTHONINSPECT PYTHONBREAKPOINT PYTHONUSERBASE PYTHONPLATLIBDIR NODE_OPTIONS NODE_PATH
//     PERL5LIB PERLLIB PERL5OPT PERL5DB RUBYOPT RUBYLIB JAVA_TOOL_OPTIONS _JAVA_OPTIONS
//     JDK_JAVA_OPTIONS CLASSPATH R_PROFILE R_PROFILE_USER R_ENVIRON R_ENVIRON_USER R_LIBS
//     R_LIBS_USER JULIA_LOAD_PATH JULIA_DEPOT_PATH LUA_INIT LUA_PATH LUA_CPATH TCLLIBPATH
//   the agent's own: SPOTGRID_*
// A unit that wants one of these set from the grid reads SPOTGRID_PARAM_<NAME> and sets it
// itself (`PYTHONPATH="$SPOTGRID_PARAM_PYTHONPATH" python3 ...`): a deliberate act, not a
// column that happens to share the name.
bool IsReservedEnvName(std::string_view name);

// The environment of a unit's command: a minimal base (PATH=/usr/local/bin:/usr/bin:/bin,
// HOME, USER, LOGNAME, LANG=C.UTF-8, TMPDIR=/tmp), the SPOTGRID_* variables, then the row's
// params under the rule above. Each name appears once: an entry of `spotgrid_vars` replaces a
// base value of the same name (e.g. TMPDIR inside the scratch directory); of params with the
// same name the first wins.
std::vector<std::pair<std::string, std::string>> BuildUnitEnvironment(
    const std::vector<std::pair<std::string, std::string>>& spotgrid_vars,
    const std::vector<std::pair<std::string, std::string>>& params, const std::string& home,
    const std::string& user);

}  // namespace spotgrid::agent
