#include "support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace spotgrid::testing {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Resolves a bare program name against PATH in the parent, so the child only needs execve.
std::string ResolveProgram(const std::string& program, const std::string& path_var) {
  if (program.find('/') != std::string::npos) return program;
  std::stringstream dirs(path_var.empty() ? "/usr/local/bin:/usr/bin:/bin" : path_var);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return program;  // execve fails with ENOENT, reported through the exec pipe
}

std::string Tail(const std::string& text, size_t max_chars = 4000) {
  return text.size() <= max_chars ? text : "..." + text.substr(text.size() - max_chars);
}

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(ChildProcessOptions options) {
  if (options.argv.empty()) return Error::InvalidInput("ChildProcess: empty argv");

  // Everything the child needs is prepared before fork: after fork in a threaded process the
  // child may only call async-signal-safe functions.
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) env_map[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& name : options.unset_env) env_map.erase(name);
  for (const auto& [name, value] : options.env) env_map[name] = value;
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : env_map) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::vector<std::string> argv_strings = options.argv;
  std::string program = ResolveProgram(argv_strings[0], env_map["PATH"]);
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  const std::string log_target = options.log_path.empty() ? "/dev/null" : options.log_path;
  int log_fd = ::open(log_target.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Error::Io("ChildProcess", Errno("open " + log_target));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(log_fd);
    return Error::Io("ChildProcess", Errno("open /dev/null"));
  }
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    ::close(log_fd);
    ::close(null_fd);
    return Error::Io("ChildProcess", Errno("pipe2"));
  }

  pid_t pid = ::fork();
  if (pid < 0) {
    int saved = errno;
    ::close(log_fd);
    ::close(null_fd);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    errno = saved;
    return Error::Io("ChildProcess", Errno("fork"));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) {
      ::sigaction(sig, &dfl, nullptr);
    }
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    if (!options.working_dir.empty() && ::chdir(options.working_dir.c_str()) != 0) {
      int err = errno;
      (void)!::write(exec_pipe[1], &err, sizeof err);
      ::_exit(127);
    }
    ::execve(program.c_str(), argv.data(), envp.data());
    int err = errno;
    (void)!::write(exec_pipe[1], &err, sizeof err);
    ::_exit(127);
  }

  // Also set the group from the parent: whichever runs first wins, so the group exists
  // before anyone may signal it. EACCES after the child's exec is harmless.
  ::setpgid(pid, pid);
  ::close(log_fd);
  ::close(null_fd);
  ::close(exec_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n > 0) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    errno = child_errno;
    return Error::Io("ChildProcess", Errno("exec " + program));
  }
  return std::unique_ptr<ChildProcess>(
      new ChildProcess(pid, std::move(options.argv), options.log_path));
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::StartServer(
    std::vector<std::string> argv, const std::string& log_dir, const std::string& name,
    std::chrono::milliseconds deadline) {
  std::string port_file = log_dir + "/" + name + ".port";
  ::unlink(port_file.c_str());
  argv.insert(argv.end(), {"--port", "0", "--port-file", port_file});
  ChildProcessOptions options;
  options.argv = std::move(argv);
  options.log_path = log_dir + "/" + name + ".log";
  auto child = Start(std::move(options));
  if (!child.ok()) return child.error();
  auto port = (*child)->WaitForPortFile(port_file, deadline);
  if (!port.ok()) return port.error();
  return child;
}

ChildProcess::~ChildProcess() {
  // The pid is still ours (running or an un-reaped zombie), so the group id is too.
  ::kill(-pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool ChildProcess::Signal(int signal) {
  Poll();
  if (exited_) return false;
  return ::kill(pid_, signal) == 0;
}

bool ChildProcess::SignalGroup(int signal) { return ::kill(-pid_, signal) == 0; }

void ChildProcess::Poll() {
  if (exited_) return;
  siginfo_t info{};
  // WNOWAIT: observe the exit but leave the zombie, keeping pid and group id reserved.
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return;
  if (info.si_pid == 0) return;
  exited_ = true;
  if (info.si_code == CLD_EXITED) {
    exit_code_ = info.si_status;
  } else {
    term_signal_ = info.si_status;
  }
}

bool ChildProcess::Running() {
  Poll();
  return !exited_;
}

bool ChildProcess::Wait(std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    Poll();
    if (exited_) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a condition
  }
}

std::optional<int> ChildProcess::ExitCode() const {
  if (!exited_ || term_signal_ != 0) return std::nullopt;
  return exit_code_;
}

std::optional<int> ChildProcess::TermSignal() const {
  if (!exited_ || term_signal_ == 0) return std::nullopt;
  return term_signal_;
}

Result<int> ChildProcess::WaitForPortFile(const std::string& path,
                                          std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    std::ifstream in(path);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!content.empty() && (content.back() == '\n' || content.back() == ' ')) {
      content.pop_back();
    }
    if (!content.empty() && content.find_first_not_of("0123456789") == std::string::npos &&
        content.size() <= 5) {
      int port = std::stoi(content);
      if (port > 0 && port < 65536) {
        port_ = port;
        return port;
      }
    }
    Poll();
    if (exited_) {
      return Error::Io("ChildProcess", Describe() + " exited before writing " + path + "; log:\n" +
                                           Tail(ReadLog()));
    }
    if (std::chrono::steady_clock::now() >= end) {
      return Error::Io("ChildProcess", Describe() + " did not write " + path + " within " +
                                           std::to_string(deadline.count()) + " ms; log:\n" +
                                           Tail(ReadLog()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition
  }
}

std::string ChildProcess::ReadLog() const {
  if (log_path_.empty()) return {};
  std::ifstream in(log_path_);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string ChildProcess::Describe() const {
  std::string out;
  for (const auto& arg : argv_) {
    if (!out.empty()) out += ' ';
    out += arg;
  }
  return out + " (pid " + std::to_string(pid_) + ")";
}

}  // namespace spotgrid::testing
