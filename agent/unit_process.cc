#include "agent/unit_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

#include "spotgrid/core/clock.h"

namespace spotgrid::agent {
namespace {

using std::chrono::milliseconds;

constexpr const char* kShell = "/bin/sh";
constexpr const char* kOperation = "UnitProcess";
// The base PATH of a unit: the usual one for an unprivileged Debian user.
constexpr const char* kBasePath = "/usr/local/bin:/usr/bin:/bin";

std::string ErrnoText(int err) { return std::strerror(err); }

// What the child was doing when it failed; sent with errno through the exec pipe.
enum class ChildStep : int { kDup, kCloseFds, kSetgroups, kSetgid, kSetuid, kChdir, kExec };

struct ChildFailure {
  ChildStep step;
  int err;
};

const char* Describe(ChildStep step) {
  switch (step) {
    case ChildStep::kDup:
      return "redirect stdio";
    case ChildStep::kCloseFds:
      return "close inherited files";
    case ChildStep::kSetgroups:
      return "setgroups";
    case ChildStep::kSetgid:
      return "setgid";
    case ChildStep::kSetuid:
      return "setuid";
    case ChildStep::kChdir:
      return "chdir";
    case ChildStep::kExec:
      return "exec";
  }
  return "start";
}

// The command's first word, for messages: enough to recognise it, never the whole command
// line (which may be long, and carries the row's values).
std::string FirstWord(const std::string& command) {
  auto begin = command.find_first_not_of(" \t\n");
  if (begin == std::string::npos) return "(empty command)";
  auto end = command.find_first_of(" \t\n;|&", begin);
  std::string word = command.substr(begin, end == std::string::npos ? end : end - begin);
  if (word.size() > 80) word = word.substr(0, 80) + "...";
  return word;
}

// Owns a file descriptor in the parent.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Moves `fd` above the standard descriptors: the child dup2()s onto 0, 1 and 2, and dup2 of
// a descriptor onto itself would keep its close-on-exec flag.
Result<Fd> AboveStdio(Fd fd, const std::string& what) {
  if (fd.get() > STDERR_FILENO) return fd;
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) return Error::Io(kOperation, "dup " + what + ": " + ErrnoText(errno));
  return Fd(moved);
}

// Opens a log for append. The file may sit in a directory the unit's user can write to, so
// the (possibly root) agent refuses to follow a symlink planted there, refuses anything but a
// regular file, and only hands a file with a single link to the user: otherwise a unit could
// have the agent append to, or chown, a file elsewhere on the system.
Result<Fd> OpenLog(const std::filesystem::path& path, const std::optional<RunAs>& run_as) {
  if (path.empty()) return Error::InvalidInput("UnitProcess: empty log path");
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
               0640));
  if (fd.get() < 0) {
    return Error::Io(kOperation, "open " + path.string() + ": " + ErrnoText(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Error::Io(kOperation, "stat " + path.string() + ": " + ErrnoText(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Error::Io(kOperation, "open " + path.string() + ": not a regular file");
  }
  if (run_as && (st.st_uid != run_as->uid || st.st_gid != run_as->gid)) {
    if (st.st_nlink != 1) {
      return Error::Io(kOperation, "open " + path.string() + ": has more than one link");
    }
    if (::fchown(fd.get(), run_as->uid, run_as->gid) != 0) {
      return Error::Io(kOperation,
                       "chown " + path.string() + " to " + run_as->name + ": " + ErrnoText(errno));
    }
  }
  return AboveStdio(std::move(fd), path.string());
}

// The user's supplementary groups (as login would set them), computed before fork because
// reading /etc/group is not async-signal-safe. Falls back to the primary group alone.
std::vector<gid_t> SupplementaryGroups(const RunAs& run_as) {
  int count = 32;
  std::vector<gid_t> groups(count);
  for (int tries = 0; tries < 4; ++tries) {
    int n = count;
    if (::getgrouplist(run_as.name.c_str(), run_as.gid, groups.data(), &n) >= 0) {
      groups.resize(n);
      return groups;
    }
    count = std::max(n, count * 2);
    groups.resize(count);
  }
  return {run_as.gid};
}

// Only async-signal-safe calls from here to execve: the agent is multi-threaded, and another
// thread may have held a lock (malloc's, stdio's) at the moment of fork.
[[noreturn]] void ChildFail(int pipe_fd, ChildStep step) {
  ChildFailure failure{step, errno};
  (void)!::write(pipe_fd, &failure, sizeof failure);
  ::_exit(127);
}

struct ChildPlan {
  const char* shell;
  char* const* argv;
  char* const* envp;
  const char* cwd;
  int stdin_fd, stdout_fd, stderr_fd, pipe_fd;
  unsigned max_fd;  // fallback bound when close_range is unavailable
  bool switch_user;
  uid_t uid;
  gid_t gid;
  const gid_t* groups;
  size_t group_count;
};

[[noreturn]] void RunChild(const ChildPlan& plan) {
  ::setpgid(0, 0);
  // Signals are all blocked here (the parent blocked them around fork), so no handler of the
  // agent's can run in the child. Reset every disposition: ignored signals survive exec, and
  // a unit must not start with SIGPIPE or SIGTERM ignored because the agent ignores them.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  if (::dup2(plan.stdin_fd, STDIN_FILENO) < 0 || ::dup2(plan.stdout_fd, STDOUT_FILENO) < 0 ||
      ::dup2(plan.stderr_fd, STDERR_FILENO) < 0) {
    ChildFail(plan.pipe_fd, ChildStep::kDup);
  }
  // Close everything else the agent had open (sockets, other units' logs), except the exec
  // pipe, which is close-on-exec.
  const unsigned first = STDERR_FILENO + 1;
  const unsigned pipe_fd = static_cast<unsigned>(plan.pipe_fd);
  bool closed = (pipe_fd == first || ::close_range(first, pipe_fd - 1, 0) == 0) &&
                ::close_range(pipe_fd + 1, ~0U, 0) == 0;
  if (!closed) {
    if (errno != ENOSYS) ChildFail(plan.pipe_fd, ChildStep::kCloseFds);
    for (unsigned fd = first; fd < plan.max_fd; ++fd) {
      if (fd != pipe_fd) ::close(static_cast<int>(fd));
    }
  }
  if (plan.switch_user) {
    // Raw system calls: glibc's wrappers coordinate all threads of a process (setxid), which
    // is neither needed nor safe in a child forked from a threaded parent.
    if (::syscall(SYS_setgroups, plan.group_count, plan.groups) != 0) {
      ChildFail(plan.pipe_fd, ChildStep::kSetgroups);
    }
    if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) {
      ChildFail(plan.pipe_fd, ChildStep::kSetgid);
    }
    if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
      ChildFail(plan.pipe_fd, ChildStep::kSetuid);
    }
  }
  // After dropping privileges: a directory the user cannot enter fails the start, instead of
  // a command that cannot write its own outputs.
  if (::chdir(plan.cwd) != 0) ChildFail(plan.pipe_fd, ChildStep::kChdir);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(plan.shell, plan.argv, plan.envp);
  ChildFail(plan.pipe_fd, ChildStep::kExec);
}

bool IsValidEnvName(std::string_view name) {
  if (name.empty()) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!alpha(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

}  // namespace

Result<RunAs> LookupUser(const std::string& name) {
  if (name.empty()) return Error::InvalidInput("user name is empty");
  long size_hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size_hint > 0 ? static_cast<size_t>(size_hint) : 4096);
  struct passwd pwd {};
  struct passwd* found = nullptr;
  int rc;
  while ((rc = ::getpwnam_r(name.c_str(), &pwd, buffer.data(), buffer.size(), &found)) == ERANGE &&
         buffer.size() < (1u << 20)) {
    buffer.resize(buffer.size() * 2);
  }
  if (rc != 0) return Error::Io("LookupUser", "look up user " + name + ": " + ErrnoText(rc));
  if (found == nullptr) return Error::InvalidInput("no such user: " + name);
  RunAs run_as;
  run_as.uid = pwd.pw_uid;
  run_as.gid = pwd.pw_gid;
  run_as.name = pwd.pw_name;
  run_as.home = pwd.pw_dir != nullptr ? pwd.pw_dir : "/";
  return run_as;
}

int ProcessExit::ShellStatus() const {
  if (exit_code) return *exit_code;
  if (signal) return 128 + *signal;
  return -1;
}

struct UnitProcess::Impl {
  pid_t pid = -1;
  Fd pidfd;  // -1 when the kernel has no pidfd_open (before 5.3)

  std::mutex mu;
  std::optional<ProcessExit> exit;  // guarded by mu

  // Non-blocking. WNOWAIT leaves the shell a zombie until the destructor reaps it: while it
  // exists its pid, and so the process-group id, cannot be reused, which keeps every later
  // kill(-pid, ...) aimed at this unit's processes only.
  std::optional<ProcessExit> Poll() {
    std::lock_guard lock(mu);
    if (exit) return exit;
    siginfo_t info{};
    int rc;
    do {
      rc = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      // ECHILD: somebody else reaped it (SIGCHLD ignored, or a waitpid(-1) elsewhere). It is
      // gone, but how it ended is lost.
      exit = ProcessExit{};
      return exit;
    }
    if (info.si_pid == 0) return std::nullopt;
    ProcessExit e;
    if (info.si_code == CLD_EXITED) {
      e.exit_code = info.si_status;
    } else {
      e.signal = info.si_status;
    }
    exit = e;
    return exit;
  }

  std::optional<ProcessExit> WaitFor(milliseconds timeout) {
    if (auto e = Poll()) return e;
    if (timeout <= milliseconds(0)) return std::nullopt;
    Clock& clock = Clock::System();
    const auto deadline = clock.Monotonic() + timeout;
    auto remaining = [&] { return std::chrono::ceil<milliseconds>(deadline - clock.Monotonic()); };
    if (pidfd.get() >= 0) {
      for (auto left = remaining(); left > milliseconds(0); left = remaining()) {
        pollfd p{pidfd.get(), POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT_MAX)));
        if (rc < 0 && errno == EINTR) continue;
        if (auto e = Poll()) return e;
        if (rc != 0) break;  // readable yet not exited, or a poll error: use the slow path
      }
      if (remaining() <= milliseconds(0)) return Poll();
    }
    // Without a pidfd nothing wakes us on exit: poll waitid with a backoff capped at 50 ms,
    // so an exit is noticed promptly without spinning.
    auto step = milliseconds(1);
    for (auto left = remaining(); left > milliseconds(0); left = remaining()) {
      clock.SleepFor(std::min(step, left));
      if (auto e = Poll()) return e;
      step = std::min(step * 2, milliseconds(50));
    }
    return Poll();
  }
};

UnitProcess::UnitProcess(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UnitProcess::~UnitProcess() {
  if (!impl_) return;
  // Also after a normal exit: a background job the command left behind must not outlive its
  // unit. The un-reaped shell still holds the group id, so this reaches only our processes.
  ::kill(-impl_->pid, SIGKILL);
  int status;
  while (::waitpid(impl_->pid, &status, 0) < 0 && errno == EINTR) {
  }
}

pid_t UnitProcess::pid() const { return impl_->pid; }

std::optional<ProcessExit> UnitProcess::WaitFor(std::chrono::milliseconds timeout) {
  return impl_->WaitFor(timeout);
}

ProcessExit UnitProcess::Terminate(std::chrono::milliseconds grace) {
  const pid_t group = impl_->pid;
  std::optional<ProcessExit> exit = impl_->Poll();
  if (!exit) {
    ::kill(-group, SIGTERM);
    ::kill(-group, SIGCONT);  // a stopped process acts on SIGTERM only once continued
    exit = impl_->WaitFor(grace);
    if (!exit) {
      ::kill(-group, SIGKILL);
      // SIGKILL cannot be caught; only a process stuck in the kernel (uninterruptible I/O)
      // takes long, and returning before it is gone would let its unit be reported finished.
      while (!(exit = impl_->WaitFor(std::chrono::hours(1)))) {
      }
    }
  }
  // The shell is gone but still un-reaped, so the group id is still ours: kill whatever it
  // left behind (a background job, a child that ignored SIGTERM). ESRCH means none.
  ::kill(-group, SIGKILL);
  return *exit;
}

void UnitProcess::Signal(int signal) {
  if (impl_->Poll()) return;
  // The un-reaped shell keeps the group id ours, so the signal reaches this unit only.
  ::kill(-impl_->pid, signal);
  if (signal != SIGCONT) ::kill(-impl_->pid, SIGCONT);
}

ProcessExit UnitProcess::Kill() {
  ::kill(-impl_->pid, SIGKILL);
  std::optional<ProcessExit> exit;
  // See Terminate: SIGKILL cannot be caught, so only a process stuck in the kernel takes long.
  while (!(exit = impl_->WaitFor(std::chrono::hours(1)))) {
  }
  ::kill(-impl_->pid, SIGKILL);
  return *exit;
}

bool UnitProcess::GroupAlive() const {
  // kill(-pgid, 0) would count the shell, which stays an unreaped zombie in the group so the
  // group id stays ours; /proc tells a zombie from a live process.
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return false;
  bool alive = false;
  char stat[512];
  while (dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const std::string path = std::string("/proc/") + entry->d_name + "/stat";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // gone meanwhile
    ssize_t n = ::read(fd, stat, sizeof stat - 1);
    ::close(fd);
    if (n <= 0) continue;
    stat[n] = '\0';
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so parse after
    // the last ')'.
    const char* rest = std::strrchr(stat, ')');
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (rest == nullptr || std::sscanf(rest + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3) {
      continue;
    }
    if (pgrp == impl_->pid && state != 'Z' && state != 'X') {
      alive = true;
      break;
    }
  }
  ::closedir(proc);
  return alive;
}

Result<std::unique_ptr<UnitProcess>> UnitProcess::Start(const ProcessSpec& spec) {
  const std::string what = "start `" + FirstWord(spec.command) + "`";
  if (spec.command.find('\0') != std::string::npos) {
    return Error::InvalidInput(what + ": command contains a NUL byte");
  }
  if (spec.cwd.empty()) return Error::InvalidInput(what + ": no working directory");

  // Everything the child needs is built before fork (see RunChild).
  std::vector<std::string> env_strings;
  env_strings.reserve(spec.env.size());
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
      return Error::InvalidInput(what + ": environment variable name or value is invalid: " +
                                 name.substr(0, std::min<size_t>(name.find('\0'), 64)));
    }
    env_strings.push_back(name + "=" + value);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = "sh", arg1 = "-c", arg2 = spec.command;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  std::string cwd = spec.cwd.string();
  std::vector<gid_t> groups;
  if (spec.run_as) groups = SupplementaryGroups(*spec.run_as);

  Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0)
    return Error::Io(kOperation, what + ": open /dev/null: " + ErrnoText(errno));
  auto stdin_fd = AboveStdio(std::move(null_fd), "/dev/null");
  if (!stdin_fd.ok()) return stdin_fd.error();
  auto stdout_fd = OpenLog(spec.stdout_path, spec.run_as);
  if (!stdout_fd.ok()) return stdout_fd.error();
  auto stderr_fd = OpenLog(spec.stderr_path, spec.run_as);
  if (!stderr_fd.ok()) return stderr_fd.error();
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Error::Io(kOperation, what + ": pipe: " + ErrnoText(errno));
  }
  Fd pipe_read(pipe_fds[0]);
  auto pipe_write = AboveStdio(Fd(pipe_fds[1]), "pipe");
  if (!pipe_write.ok()) return pipe_write.error();

  long open_max = ::sysconf(_SC_OPEN_MAX);
  ChildPlan plan{};
  plan.shell = kShell;
  plan.argv = argv;
  plan.envp = envp.data();
  plan.cwd = cwd.c_str();
  plan.stdin_fd = stdin_fd->get();
  plan.stdout_fd = stdout_fd->get();
  plan.stderr_fd = stderr_fd->get();
  plan.pipe_fd = pipe_write->get();
  plan.max_fd = open_max > 0 ? static_cast<unsigned>(std::min<long>(open_max, 1 << 20)) : 1024;
  plan.switch_user = spec.run_as.has_value();
  if (spec.run_as) {
    plan.uid = spec.run_as->uid;
    plan.gid = spec.run_as->gid;
    plan.groups = groups.data();
    plan.group_count = groups.size();
  }

  // Block every signal across fork, so none of the agent's handlers runs in the child before
  // it has reset them.
  sigset_t all, saved;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &saved);
  pid_t pid = ::fork();
  if (pid == 0) RunChild(plan);
  int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) return Error::Io(kOperation, what + ": fork: " + ErrnoText(fork_errno));

  // Also from the parent, so the group exists before anyone signals it, whichever of the two
  // runs first. EACCES once the child has exec'd is harmless.
  ::setpgid(pid, pid);
  auto impl = std::make_unique<Impl>();
  impl->pid = pid;
  // The child is ours and un-reaped, so the pid cannot have been reused.
  impl->pidfd = Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (impl->pidfd.get() < 0 && errno != ENOSYS) {
    int err = errno;
    ::kill(-pid, SIGKILL);
    std::unique_ptr<UnitProcess> reaped_on_return(new UnitProcess(std::move(impl)));
    return Error::Io(kOperation, what + ": pidfd_open: " + ErrnoText(err));
  }
  pipe_write->Reset();

  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(pipe_read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  std::unique_ptr<UnitProcess> process(new UnitProcess(std::move(impl)));
  if (n == static_cast<ssize_t>(sizeof failure)) {
    std::string detail = Describe(failure.step);
    if (failure.step == ChildStep::kChdir) detail += " " + cwd;
    if (failure.step == ChildStep::kSetuid && spec.run_as) detail += " " + spec.run_as->name;
    if (failure.step == ChildStep::kExec) detail += " " + std::string(kShell);
    return Error::Io(kOperation, what + ": " + detail + ": " + ErrnoText(failure.err));
    // `process` reaps the failed child here.
  }
  return process;
}

bool IsReservedEnvName(std::string_view name) {
  // The list and its reasons: unit_process.h.
  static const std::set<std::string_view, std::less<>> kExact = {
      "PATH", "IFS", "HOME", "USER", "LOGNAME", "SHELL", "ENV", "BASH_ENV", "CDPATH", "PS4",
      "PROMPT_COMMAND", "PWD", "OLDPWD", "TMPDIR", "LANG", "LANGUAGE", "NLSPATH", "GCONV_PATH",
      "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "SHELLOPTS", "BASHOPTS",
      "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONBREAKPOINT",
      "PYTHONUSERBASE", "PYTHONPLATLIBDIR", "NODE_OPTIONS", "NODE_PATH", "PERL5LIB", "PERLLIB",
      "PERL5OPT", "PERL5DB", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
      "JDK_JAVA_OPTIONS", "CLASSPATH", "R_PROFILE", "R_PROFILE_USER", "R_ENVIRON",
      "R_ENVIRON_USER", "R_LIBS", "R_LIBS_USER", "JULIA_LOAD_PATH", "JULIA_DEPOT_PATH",
      "LUA_INIT", "LUA_PATH", "LUA_CPATH", "TCLLIBPATH"};
  if (kExact.count(name) != 0) return true;
  for (std::string_view prefix : {"LD_", "LC_", "SPOTGRID_", "BASH_FUNC_", "MALLOC_"}) {
    if (name.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> BuildUnitEnvironment(
    const std::vector<std::pair<std::string, std::string>>& spotgrid_vars,
    const std::vector<std::pair<std::string, std::string>>& params, const std::string& home,
    const std::string& user) {
  std::vector<std::pair<std::string, std::string>> env = {
      {"PATH", kBasePath}, {"HOME", home.empty() ? "/" : home},
      {"USER", user},      {"LOGNAME", user},
      {"LANG", "C.UTF-8"}, {"TMPDIR", "/tmp"},
  };
  // One value per name, the first one winning, except that the agent's own variables may
  // replace a base value (e.g. TMPDIR pointing into the unit's scratch directory).
  auto set = [&env](const std::string& name, const std::string& value, bool replace) {
    for (auto& entry : env) {
      if (entry.first == name) {
        if (replace) entry.second = value;
        return;
      }
    }
    env.emplace_back(name, value);
  };
  for (const auto& [name, value] : spotgrid_vars) {
    if (IsValidEnvName(name)) set(name, value, /*replace=*/true);
  }
  for (const auto& [name, value] : params) {
    if (!IsValidEnvName(name)) continue;
    set(IsReservedEnvName(name) ? "SPOTGRID_PARAM_" + name : name, value, /*replace=*/false);
  }
  return env;
}

}  // namespace spotgrid::agent
