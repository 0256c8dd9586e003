// The agent's face to systemd: readiness and status notifications, the watchdog, and log
// lines in the journal with the job and unit as structured fields.
//
// Outside systemd (no NOTIFY_SOCKET, no journal) every notification is a no-op and logs go to
// stderr, so the same binary runs on a laptop and in a test.
//
// Thread-safety: Notifier methods may be called from any thread. The log context is
// per-thread (each slot thread sets the unit it works on).
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spotgrid::agent {

class Notifier {
 public:
  virtual ~Notifier() = default;
  virtual void Ready() = 0;                          // READY=1 (once connected to the stack)
  virtual void Status(const std::string& text) = 0;  // STATUS=<text>
  virtual void Stopping() = 0;                       // STOPPING=1
  virtual void Watchdog() = 0;                       // WATCHDOG=1
  // The interval at which Watchdog() must be called (half of WATCHDOG_USEC), or nullopt when
  // the service has no watchdog (or WATCHDOG_PID names another process).
  virtual std::optional<std::chrono::microseconds> WatchdogInterval() const = 0;
};

// sd_notify(3) over NOTIFY_SOCKET (libsystemd); a no-op when the variable is unset.
std::unique_ptr<Notifier> MakeSystemdNotifier();

// Scoped per-thread log context: while alive, every log line of this thread carries
// SPOTGRID_JOB, SPOTGRID_UNIT and SPOTGRID_ATTEMPT as journal fields (and "[job/unit#n]" in
// text output).
class LogContext {
 public:
  LogContext(std::string job, std::string unit, std::int64_t attempt);
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

 private:
  std::string previous_job_, previous_unit_;
  std::int64_t previous_attempt_ = 0;
};

// The agent's logger: to the journal (sd_journal_send, with the context fields) when stderr
// is connected to it (JOURNAL_STREAM matches) or `force_journal`, else to stderr.
std::shared_ptr<spdlog::logger> MakeAgentLogger(const std::string& level,
                                                bool force_journal = false);

// Pieces of the logger, exposed for tests.
// "[job/unit#attempt] " inside a LogContext of the calling thread, "" outside one.
std::string LogContextPrefix();
// The journal entry of one log line of the calling thread: MESSAGE, PRIORITY (syslog level),
// SYSLOG_IDENTIFIER=spotgrid-agent, and inside a LogContext SPOTGRID_JOB, SPOTGRID_UNIT and
// SPOTGRID_ATTEMPT; each "FIELD=value".
std::vector<std::string> JournalFields(spdlog::level::level_enum level, std::string_view message);
// Whether `journal_stream` (JOURNAL_STREAM's "<device>:<inode>") names the file `fd` is open on.
bool IsJournalStream(int fd, std::string_view journal_stream);

}  // namespace spotgrid::agent
