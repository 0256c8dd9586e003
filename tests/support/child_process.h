// A child process owned by a test: fakes, the fault proxy, and later real agents and
// controllers in end-to-end tests.
//
// Start() forks and execs the command in its own process group, with stdout and stderr
// appended to a log file. The destructor kills exactly that process group (SIGKILL) and reaps
// the child, so a failing test never leaves processes behind and never touches anybody else's.
// When the child exits on its own, Wait() records the exit but leaves it un-reaped (a zombie)
// until destruction: its pid, and so its process-group id, cannot be reused meanwhile, which
// keeps the final group kill aimed at our own processes only.
//
// Thread-safety: one ChildProcess is used by one test thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "spotgrid/core/status.h"

namespace spotgrid::testing {

struct ChildProcessOptions {
  // argv[0] is the program: a path, or a name looked up in PATH.
  std::vector<std::string> argv;
  // Added to (or replacing in) the test process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Removed from the environment the child inherits.
  std::vector<std::string> unset_env;
  // stdout and stderr are appended here; empty = /dev/null.
  std::string log_path;
  // Working directory; empty = the test's.
  std::string working_dir;
};

class ChildProcess {
 public:
  // Starts the process. Fails (kIo) if the log can't be opened, fork fails or exec fails
  // (the exec error is reported from the child through a close-on-exec pipe).
  static Result<std::unique_ptr<ChildProcess>> Start(ChildProcessOptions options);

  // Starts `argv` with `--port 0 --port-file <dir>/<name>.port` appended, then waits up to
  // `deadline` for the port file: the usual way to start a fake or the fault proxy.
  // `log_dir` receives <name>.port and <name>.log.
  static Result<std::unique_ptr<ChildProcess>> StartServer(
      std::vector<std::string> argv, const std::string& log_dir, const std::string& name,
      std::chrono::milliseconds deadline = std::chrono::seconds(15));

  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t Pid() const { return pid_; }
  // Sends `signal` to the process itself (false if it already exited or kill failed).
  bool Signal(int signal);
  // Sends `signal` to its whole process group.
  bool SignalGroup(int signal);

  // Waits until the process exits or `deadline` passes; true if it exited.
  bool Wait(std::chrono::milliseconds deadline);
  // Non-blocking: true while the process has not exited.
  bool Running();
  // The exit status once exited normally; nullopt while running or when killed by a signal.
  std::optional<int> ExitCode() const;
  // The terminating signal once killed by one; nullopt otherwise.
  std::optional<int> TermSignal() const;

  // Waits until `path` holds a port number (written whole, e.g. by rename), the process exits,
  // or `deadline` passes. The error names the file and includes the tail of the log.
  Result<int> WaitForPortFile(const std::string& path, std::chrono::milliseconds deadline);
  // The port WaitForPortFile (or StartServer) read; 0 before that.
  int port() const { return port_; }

  // Everything the child has written to its log so far ("" without a log).
  std::string ReadLog() const;
  const std::string& log_path() const { return log_path_; }
  // "<argv joined> (pid N)" for messages.
  std::string Describe() const;

 private:
  ChildProcess(pid_t pid, std::vector<std::string> argv, std::string log_path)
      : pid_(pid), argv_(std::move(argv)), log_path_(std::move(log_path)) {}
  void Poll();

  pid_t pid_;
  std::vector<std::string> argv_;
  std::string log_path_;
  bool exited_ = false;  // exit observed (still un-reaped)
  int exit_code_ = -1;   // when exited normally
  int term_signal_ = 0;  // when killed by a signal
  int port_ = 0;
};

}  // namespace spotgrid::testing
