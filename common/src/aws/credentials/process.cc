// credential_process (see process.h).
#include "spotgrid/aws/credentials/process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/strings.h"
#include "spotgrid/core/iso8601.h"

extern char** environ;

namespace spotgrid {

namespace {

constexpr const char* kOperation = "CredentialProcess";
constexpr size_t kStderrLimit = 1024;
// What a credentials document can reasonably weigh; anything bigger is not one.
constexpr size_t kStdoutLimit = 1 << 20;

Error ProcessError(std::string message) {
  Error e;
  e.category = ErrorCategory::kInvalidInput;
  e.operation = kOperation;
  e.code = "CredentialProcessFailed";
  e.message = std::move(message);
  return e;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

}  // namespace

Result<std::vector<std::string>> SplitCommandLine(std::string_view command) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];
    if (IsAsciiSpace(c)) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '\\') {
      if (i + 1 >= command.size()) return Error::InvalidInput("no escaped character");
      word += command[++i];
      in_word = true;
    } else if (c == '\'') {
      size_t close = command.find('\'', i + 1);
      if (close == std::string_view::npos) return Error::InvalidInput("no closing quotation");
      word.append(command.substr(i + 1, close - i - 1));
      i = close;
      in_word = true;
    } else if (c == '"') {
      size_t j = i + 1;
      for (;; ++j) {
        if (j >= command.size()) return Error::InvalidInput("no closing quotation");
        if (command[j] == '"') break;
        if (command[j] == '\\' && j + 1 < command.size() &&
            (command[j + 1] == '"' || command[j + 1] == '\\')) {
          ++j;
        }
        word += command[j];
      }
      i = j;
      in_word = true;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

Result<Credentials> ParseCredentialProcessOutput(std::string_view output,
                                                 const std::string& where) {
  nlohmann::json doc = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return ProcessError(where + ": the output is not a JSON object");
  auto version = doc.find("Version");
  if (version == doc.end() || !version->is_number_integer() || version->get<long>() != 1) {
    return ProcessError(where + ": unsupported Version (only Version 1 is supported)");
  }
  auto text = [&](const char* key) -> std::optional<std::string> {
    auto it = doc.find(key);
    if (it == doc.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  Credentials credentials;
  auto access_key = text("AccessKeyId");
  auto secret_key = text("SecretAccessKey");
  if (!access_key || !secret_key) {
    return ProcessError(where + ": the output lacks " +
                        std::string(!access_key ? "AccessKeyId" : "SecretAccessKey"));
  }
  credentials.access_key_id = std::move(*access_key);
  credentials.secret_access_key = std::move(*secret_key);
  if (auto token = text("SessionToken")) credentials.session_token = std::move(*token);
  if (auto expiration = text("Expiration")) {
    credentials.expiration = ParseIso8601(*expiration);
    if (!credentials.expiration) {
      return ProcessError(where + ": Expiration is not an ISO 8601 time");
    }
  }
  return credentials;
}

Result<Credentials> RunCredentialProcess(const std::string& command, const std::string& profile) {
  const std::string where = "credential_process of profile '" + profile + "'";
  auto argv_words = SplitCommandLine(command);
  if (!argv_words.ok()) {
    return ProcessError(where + " cannot be split into words: " + argv_words.error().message);
  }
  if (argv_words->empty()) return ProcessError(where + " is empty");
  const std::string program = argv_words->front();

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Error::Io(kOperation, "pipe: " + std::string(std::strerror(errno)));
  }
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return Error::Io(kOperation, "pipe: " + std::string(std::strerror(errno)));
  }
  Fd err_read(err_pipe[0]), err_write(err_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
  std::vector<char*> argv;
  for (auto& word : *argv_words) argv.push_back(word.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int spawned =
      ::posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  out_write.Close();
  err_write.Close();
  if (spawned != 0) {
    return ProcessError(where + ": cannot run '" + program + "': " + std::strerror(spawned));
  }

  std::string out, err;
  std::array<pollfd, 2> fds{pollfd{out_read.get(), POLLIN, 0}, pollfd{err_read.get(), POLLIN, 0}};
  int open_fds = 2;
  char buffer[4096];
  while (open_fds > 0) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      std::string& sink = i == 0 ? out : err;
      const size_t limit = i == 0 ? kStdoutLimit : kStderrLimit;
      sink.append(buffer,
                  std::min<size_t>(static_cast<size_t>(n), limit - std::min(limit, sink.size())));
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string how = WIFEXITED(status)
                          ? "exited with status " + std::to_string(WEXITSTATUS(status))
                          : "was killed by signal " + std::to_string(WTERMSIG(status));
    std::string message = where + ": '" + program + "' " + how;
    if (std::string reason = Trim(err); !reason.empty()) message += ": " + reason;
    return ProcessError(message);
  }
  return ParseCredentialProcessOutput(out, where);
}

}  // namespace spotgrid
