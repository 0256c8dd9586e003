#include "agent/systemd.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <charconv>
#include <mutex>
#include <system_error>
#include <utility>

#include "spotgrid/core/environment.h"
#include "spotgrid/core/log.h"

namespace spotgrid::agent {
namespace {

// The unit this thread works on; empty job and unit outside any LogContext.
struct ThreadContext {
  std::string job;
  std::string unit;
  std::int64_t attempt = 0;
};

thread_local ThreadContext t_context;

bool InContext() { return !t_context.job.empty() || !t_context.unit.empty(); }

class SystemdNotifier final : public Notifier {
 public:
  void Ready() override { Send("READY=1"); }
  void Status(const std::string& text) override {
    // The protocol is newline-separated assignments: a newline would end the
    // status early and turn the rest into an assignment of its own.
    std::string line = "STATUS=" + text;
    for (char& c : line) {
      if (c == '\n') c = ' ';
    }
    Send(line);
  }
  void Stopping() override { Send("STOPPING=1"); }
  void Watchdog() override { Send("WATCHDOG=1"); }

  std::optional<std::chrono::microseconds> WatchdogInterval() const override {
    std::uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this
    // process.
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    // Half the timeout, as sd_watchdog_enabled(3) advises: one late ping is not
    // a restart.
    return std::chrono::microseconds(usec / 2);
  }

 private:
  static void Send(const std::string& state) {
    // sd_notify reads NOTIFY_SOCKET at each call and returns 0 when it is
    // unset; it opens its own socket per call, so concurrent callers need no
    // lock. A failure is not worth stopping for: systemd would only miss a
    // status line (or restart us for a lost ping).
    int rc = sd_notify(0, state.c_str());
    if (rc < 0) {
      Logger().debug("sd_notify({}) failed: {}", state, std::system_category().message(-rc));
    }
  }
};

// "%*" in a pattern: "[job/unit#n] " inside a LogContext, nothing outside one.
class ContextFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string prefix = LogContextPrefix();
    dest.append(prefix.data(), prefix.data() + prefix.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ContextFlag>();
  }
};

// Each log line as one journal entry with structured fields. Logging is
// synchronous, so the thread that logs is the one whose context the fields
// describe.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::vector<std::string> fields =
        JournalFields(msg.level, std::string_view(msg.payload.data(), msg.payload.size()));
    if (!msg.source.empty()) {
      fields.push_back(std::string("CODE_FILE=") + msg.source.filename);
      fields.push_back("CODE_LINE=" + std::to_string(msg.source.line));
      if (msg.source.funcname != nullptr) {
        fields.push_back(std::string("CODE_FUNC=") + msg.source.funcname);
      }
    }
    std::vector<iovec> vectors;
    vectors.reserve(fields.size());
    for (std::string& field : fields) vectors.push_back(iovec{field.data(), field.size()});
    // Nothing to do on failure: there is no better place to report that logging
    // failed.
    sd_journal_sendv(vectors.data(), static_cast<int>(vectors.size()));
  }
  void flush_() override {}
};

int JournalPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;  // LOG_DEBUG
    case spdlog::level::info:
      return 6;  // LOG_INFO
    case spdlog::level::warn:
      return 4;  // LOG_WARNING
    case spdlog::level::err:
      return 3;  // LOG_ERR
    case spdlog::level::critical:
      return 2;  // LOG_CRIT
    default:
      return 6;
  }
}

}  // namespace

std::unique_ptr<Notifier> MakeSystemdNotifier() { return std::make_unique<SystemdNotifier>(); }

LogContext::LogContext(std::string job, std::string unit, std::int64_t attempt)
    : previous_job_(std::move(t_context.job)),
      previous_unit_(std::move(t_context.unit)),
      previous_attempt_(t_context.attempt) {
  t_context.job = std::move(job);
  t_context.unit = std::move(unit);
  t_context.attempt = attempt;
}

LogContext::~LogContext() {
  t_context.job = std::move(previous_job_);
  t_context.unit = std::move(previous_unit_);
  t_context.attempt = previous_attempt_;
}

std::string LogContextPrefix() {
  if (!InContext()) return "";
  return "[" + t_context.job + "/" + t_context.unit + "#" + std::to_string(t_context.attempt) +
         "] ";
}

std::vector<std::string> JournalFields(spdlog::level::level_enum level, std::string_view message) {
  std::vector<std::string> fields;
  fields.reserve(6);
  fields.push_back("MESSAGE=" + std::string(message));
  fields.push_back("PRIORITY=" + std::to_string(JournalPriority(level)));
  fields.push_back("SYSLOG_IDENTIFIER=spotgrid-agent");
  if (InContext()) {
    fields.push_back("SPOTGRID_JOB=" + t_context.job);
    fields.push_back("SPOTGRID_UNIT=" + t_context.unit);
    fields.push_back("SPOTGRID_ATTEMPT=" + std::to_string(t_context.attempt));
  }
  return fields;
}

bool IsJournalStream(int fd, std::string_view journal_stream) {
  // JOURNAL_STREAM is "<device>:<inode>" of the stream systemd connected
  // stdout/stderr to (systemd.exec(5)); it survives into children whose stderr
  // was redirected elsewhere, so only a match with our own fd says the journal
  // is reading it.
  std::size_t colon = journal_stream.find(':');
  if (colon == std::string_view::npos) return false;
  unsigned long long device = 0;
  unsigned long long inode = 0;
  const char* begin = journal_stream.data();
  const char* middle = begin + colon;
  const char* end = begin + journal_stream.size();
  auto [device_end, device_ec] = std::from_chars(begin, middle, device);
  auto [inode_end, inode_ec] = std::from_chars(middle + 1, end, inode);
  if (device_ec != std::errc() || device_end != middle || colon == 0 || inode_ec != std::errc() ||
      inode_end != end || middle + 1 == end) {
    return false;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == device &&
         static_cast<unsigned long long>(st.st_ino) == inode;
}

std::shared_ptr<spdlog::logger> MakeAgentLogger(const std::string& level, bool force_journal) {
  spdlog::sink_ptr sink;
  std::optional<std::string> journal_stream = Environment::Process().Get("JOURNAL_STREAM");
  if (force_journal || (journal_stream && IsJournalStream(STDERR_FILENO, *journal_stream))) {
    sink = std::make_shared<JournalSink>();
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<ContextFlag>('*').set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %*%v");
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_formatter(std::move(formatter));
  }
  auto logger = std::make_shared<spdlog::logger>("spotgrid", std::move(sink));
  spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  // from_str answers "off" for anything it does not know; config validation
  // rejects such levels, so an unknown one here falls back to info rather than
  // silencing the agent.
  if (parsed == spdlog::level::off && level != "off") parsed = spdlog::level::info;
  logger->set_level(parsed);
  return logger;
}

}  // namespace spotgrid::agent
