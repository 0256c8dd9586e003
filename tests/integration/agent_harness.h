// Helpers for the agent's end-to-end tests: real `agent` processes (the built binary) against
// the emulators, a stack made and driven by the real `controller` binary, and a view of the
// processes the agents' units left behind.
//
// Every agent gets its own work directory, an empty environment file (so /etc is never read),
// and, unless told otherwise, its own IMDS tenant with a distinct instance id, so several
// agents on one host own distinct leases ("<instance>/<slot>") exactly as separate EC2
// instances would. A test stops only what it started: the agent's process group, and the
// unit processes found under that agent's work directory (units run in process groups of
// their own, so killing the agent's group does not reach them).
//
// Thread-safety: used by one test thread.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "controller_harness.h"
#include "spotgrid/http/curl_transport.h"
#include "spotgrid/ledger/ledger.h"
#include "support/child_process.h"
#include "support/test_env.h"

namespace spotgrid::testing {

inline const std::string kAgentBinary = SPOTGRID_BINARY_DIR "/agent/agent";

// --- processes on this host ----------------------------------------------------------------

struct ProcInfo {
  pid_t pid = 0;
  pid_t pgid = 0;
  char state = '?';                  // from /proc/PID/stat: R, S, Z, ...
  std::string cwd;                   // "" when unreadable
  std::vector<std::string> environ;  // "KEY=VALUE" entries; empty for zombies
};

inline std::optional<ProcInfo> ReadProc(pid_t pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::string stat = ReadWholeFile(base + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 4 > stat.size()) return std::nullopt;
  ProcInfo info;
  info.pid = pid;
  info.state = stat[close + 2];
  std::istringstream rest(stat.substr(close + 4));
  pid_t ppid = 0;
  rest >> ppid >> info.pgid;
  std::error_code ec;
  auto cwd = std::filesystem::read_symlink(base + "/cwd", ec);
  if (!ec) info.cwd = cwd.string();
  const std::string environ = ReadWholeFile(base + "/environ");
  size_t start = 0;
  while (start < environ.size()) {
    size_t end = environ.find('\0', start);
    if (end == std::string::npos) end = environ.size();
    if (end > start) info.environ.push_back(environ.substr(start, end - start));
    start = end + 1;
  }
  return info;
}

// Live (not zombie) processes for which `match` holds.
inline std::vector<ProcInfo> FindProcesses(const std::function<bool(const ProcInfo&)>& match) {
  std::vector<ProcInfo> found;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) {
    ADD_FAILURE() << "cannot list /proc";
    return found;
  }
  while (dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid == ::getpid()) continue;
    auto info = ReadProc(static_cast<pid_t>(pid));
    if (!info || info->state == 'Z' || info->state == 'X') continue;
    if (match(*info)) found.push_back(std::move(*info));
  }
  ::closedir(dir);
  return found;
}

inline bool HasEnv(const ProcInfo& info, const std::string& entry) {
  for (const std::string& e : info.environ) {
    if (e == entry) return true;
  }
  return false;
}

inline bool HasEnvPrefix(const ProcInfo& info, const std::string& prefix) {
  for (const std::string& e : info.environ) {
    if (e.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// Processes carrying `name=value` in their environment: a grid column becomes an environment
// variable of the unit's command, inherited by everything it starts.
inline std::vector<ProcInfo> ProcessesWithEnv(const std::string& name, const std::string& value) {
  return FindProcesses([&](const ProcInfo& p) { return HasEnv(p, name + "=" + value); });
}

// Unit processes an agent started: their working directory or their output directory lies
// under the agent's work directory.
inline std::vector<ProcInfo> ProcessesUnder(const std::string& work_dir) {
  const std::string dir = work_dir + "/";
  return FindProcesses([&](const ProcInfo& p) {
    return p.cwd.rfind(dir, 0) == 0 || HasEnvPrefix(p, "SPOTGRID_OUTPUT_DIR=" + dir);
  });
}

inline int KillProcesses(const std::vector<ProcInfo>& processes) {
  int killed = 0;
  for (const ProcInfo& p : processes) {
    if (::kill(p.pid, SIGKILL) == 0) ++killed;
  }
  return killed;
}

// --- agents ----------------------------------------------------------------------------------

struct AgentOptions {
  std::string stack;
  int slots = 1;
  std::string heartbeat = "1s";
  std::string sync_interval = "2s";
  std::string idle_shutdown = "10m";
  std::string on_drain = "exit";
  std::string user = "nobody";  // the tests run as root; units must not
  // The agent's EC2 identity through a private IMDS tenant; empty = IMDS disabled (the agent
  // then names itself after the host, as it does off EC2).
  std::string instance_id;
  std::vector<std::string> extra_args;
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> unset_env;
  // More metadata for the agent's IMDS tenant, set before the agent starts: (path under
  // meta-data/, value), e.g. {"autoscaling/target-lifecycle-state", "InService"}.
  std::vector<std::pair<std::string, std::string>> imds_values;
  // A tenant of the EC2 / Auto Scaling fake (AwsFakeTenant::url()) the agent's EC2 and Auto
  // Scaling calls go to; empty = the launcher's default tenant.
  std::string aws_endpoint;
};

// A control request to one of the launcher's fakes (`url` = a tenant's root + "/_fake/...");
// the parsed JSON answer, or null (and the test has failed) unless it answered 200.
inline nlohmann::json FakeControl(const std::string& method, const std::string& url,
                                  const std::string& body = "") {
  auto transport = MakeCurlTransport();
  HttpRequest request;
  request.method = method;
  request.url = url;
  request.body = body;
  request.timeout = std::chrono::seconds(10);
  auto response = transport->Send(request);
  if (!response.ok() || response->status != 200) {
    ADD_FAILURE() << method << " " << url << ": "
                  << (response.ok() ? std::to_string(response->status) + " " + response->body
                                    : response.error().ToString());
    return nullptr;
  }
  return nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
}

// An EC2-shaped instance id ("i-" and 17 hex digits) no other test uses: the EC2 / Auto
// Scaling fake, like AWS, refuses malformed ones.
inline std::string RandomInstanceId() {
  const std::string unique = UniqueName("i");
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a of a unique name: distinct ids
  for (char c : unique) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  char id[24];
  std::snprintf(id, sizeof id, "i-0%016llx", static_cast<unsigned long long>(hash));
  return id;
}

// A private tenant of the EC2 / Auto Scaling fake: its state (instances and their groups) and
// the calls it recorded, each with its arrival time (Unix seconds).
class AwsFakeTenant {
 public:
  AwsFakeTenant() {
    const std::string base = EmulatorValue("SPOTGRID_FAKE_AWS_URL");
    EXPECT_FALSE(base.empty()) << "no SPOTGRID_FAKE_AWS_URL in the emulator env";
    url_ = base + "/" + UniqueName("aws");
  }
  const std::string& url() const { return url_; }

  // Puts `instance` into Auto Scaling group `group` (lifecycle state InService).
  void AddToGroup(const std::string& instance, const std::string& group,
                  const std::string& lifecycle_state = "InService") {
    PutState(
        {{"instances", {{instance, {{"group", group}, {"lifecycle_state", lifecycle_state}}}}}});
  }
  nlohmann::json PutState(const nlohmann::json& doc) {
    return FakeControl("PUT", url_ + "/_fake/state", doc.dump());
  }
  nlohmann::json State() { return FakeControl("GET", url_ + "/_fake/state"); }
  // Every recorded call ({service, action, params, time[, error]}), oldest first.
  nlohmann::json Calls() {
    nlohmann::json calls = FakeControl("GET", url_ + "/_fake/calls");
    return calls.is_array() ? calls : nlohmann::json::array();
  }
  // The recorded calls of one action.
  nlohmann::json Calls(const std::string& action) {
    nlohmann::json found = nlohmann::json::array();
    for (const auto& call : Calls()) {
      if (call.value("action", "") == action) found.push_back(call);
    }
    return found;
  }

 private:
  std::string url_;
};

// Points a fresh tenant of the IMDS fake at `instance_id`; returns the tenant's endpoint.
inline std::string MakeImdsTenant(const std::string& instance_id) {
  const std::string base = EmulatorValue("SPOTGRID_FAKE_IMDS_URL");
  EXPECT_FALSE(base.empty()) << "no SPOTGRID_FAKE_IMDS_URL in the emulator env";
  const std::string endpoint = base + "/" + UniqueName("imds");
  auto transport = MakeCurlTransport();
  HttpRequest request;
  request.method = "PUT";
  request.url = endpoint + "/_fake/meta-data/instance-id";
  request.body = instance_id;
  request.timeout = std::chrono::seconds(10);
  auto response = transport->Send(request);
  EXPECT_TRUE(response.ok() && response->status == 200)
      << "IMDS fake: " << (response.ok() ? response->body : response.error().ToString());
  return endpoint;
}

class AgentProcess {
 public:
  // nullptr (and the test has failed) when the agent could not be started.
  static std::unique_ptr<AgentProcess> Start(const AgentOptions& options) {
    auto agent = std::unique_ptr<AgentProcess>(new AgentProcess());
    agent->dir_ = MakeTempDir("agent-e2e");
    if (agent->dir_.empty()) return nullptr;
    // The unit's user must be able to reach its directories below the work directory.
    ::chmod(agent->dir_.c_str(), 0755);
    agent->work_dir_ = agent->dir_ + "/work";
    std::filesystem::create_directories(agent->work_dir_);
    ::chmod(agent->work_dir_.c_str(), 0755);
    const std::string env_file = agent->dir_ + "/agent.env";
    std::ofstream(env_file).flush();
    agent->instance_id_ = options.instance_id;

    ChildProcessOptions child;
    child.argv = {kAgentBinary,
                  "--stack",
                  options.stack,
                  "--slots",
                  std::to_string(options.slots),
                  "--work-dir",
                  agent->work_dir_,
                  "--heartbeat",
                  options.heartbeat,
                  "--sync-interval",
                  options.sync_interval,
                  "--idle-shutdown",
                  options.idle_shutdown,
                  "--on-drain",
                  options.on_drain,
                  "--user",
                  options.user,
                  "--env-file",
                  env_file};
    child.argv.insert(child.argv.end(), options.extra_args.begin(), options.extra_args.end());
    // Nothing of the test runner's own service manager leaks in (a test that wants the
    // notification socket passes its own through `env`).
    child.unset_env = {"NOTIFY_SOCKET",  "WATCHDOG_USEC", "WATCHDOG_PID",
                       "JOURNAL_STREAM", "INVOCATION_ID", "SPOTGRID_STACK"};
    if (options.instance_id.empty()) {
      child.env.push_back({"AWS_EC2_METADATA_DISABLED", "true"});
    } else {
      agent->imds_endpoint_ = MakeImdsTenant(options.instance_id);
      for (const auto& [path, value] : options.imds_values) {
        if (!agent->PutMetadata(path, value)) return nullptr;
      }
      child.env.push_back({"AWS_EC2_METADATA_SERVICE_ENDPOINT", agent->imds_endpoint_});
      child.env.push_back({"AWS_EC2_METADATA_DISABLED", "false"});
    }
    if (!options.aws_endpoint.empty()) {
      child.env.push_back({"AWS_ENDPOINT_URL_EC2", options.aws_endpoint});
      child.env.push_back({"AWS_ENDPOINT_URL_AUTO_SCALING", options.aws_endpoint});
    }
    for (const auto& kv : options.env) child.env.push_back(kv);
    for (const auto& name : options.unset_env) child.unset_env.push_back(name);
    child.log_path = agent->dir_ + "/agent.log";
    auto started = ChildProcess::Start(std::move(child));
    if (!started.ok()) {
      ADD_FAILURE() << "agent did not start: " << started.error().ToString();
      return nullptr;
    }
    agent->child_ = std::move(started).value();
    return agent;
  }

  ~AgentProcess() {
    Kill();
    if (!::testing::Test::HasFailure()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  ChildProcess& child() { return *child_; }
  pid_t pid() const { return child_->Pid(); }
  const std::string& work_dir() const { return work_dir_; }
  const std::string& instance_id() const { return instance_id_; }
  std::string Log() const { return child_ ? child_->ReadLog() : ""; }
  bool Running() { return child_ && child_->Running(); }

  // The unit processes this agent started that are still alive.
  std::vector<ProcInfo> UnitProcesses() const { return ProcessesUnder(work_dir_); }

  // The agent's IMDS tenant ("" with IMDS disabled).
  const std::string& imds_endpoint() const { return imds_endpoint_; }
  // Sets (a Spot notice, a lifecycle state) or removes an item under meta-data/ of the
  // agent's IMDS tenant; false (and the test has failed) if the fake refused.
  bool PutMetadata(const std::string& path, const std::string& value) {
    return !FakeControl("PUT", imds_endpoint_ + "/_fake/meta-data/" + path, value).is_null();
  }
  bool DeleteMetadata(const std::string& path) {
    return !FakeControl("DELETE", imds_endpoint_ + "/_fake/meta-data/" + path).is_null();
  }
  // The IMDS requests the agent made ({method, path, headers, time}), oldest first.
  nlohmann::json ImdsRequests() const {
    nlohmann::json requests = FakeControl("GET", imds_endpoint_ + "/_fake/requests");
    return requests.is_array() ? requests : nlohmann::json::array();
  }

  // SIGTERM (the agent releases its units), up to `deadline` to exit; true if it exited.
  bool Stop(std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
    if (!child_) return true;
    child_->Signal(SIGTERM);
    return child_->Wait(deadline);
  }

  // SIGKILL to the agent's process group and to every unit process it left.
  void Kill() {
    if (child_) {
      child_->SignalGroup(SIGKILL);
      child_->Wait(std::chrono::seconds(10));
    }
    KillProcesses(UnitProcesses());
  }

 private:
  AgentProcess() = default;
  std::string dir_, work_dir_, instance_id_, imds_endpoint_;
  std::unique_ptr<ChildProcess> child_;
};

// --- the stack, through the controller ----------------------------------------------------------

struct StackOptions {
  int visibility_s = 5;  // short, so a lost message comes back quickly
  int max_receives = 100;
  std::string prefix = "runs";
};

// A fresh stack (UniqueName) made by `controller init`, and the controller verbs the tests
// drive it with. The destructor deletes the queues and the table.
class E2EStack {
 public:
  void Init(const StackOptions& options = {}) {
    name_ = UniqueName("e2e");
    bucket_ = UniqueName("e2e-b");
    prefix_ = options.prefix;
    dir_ = MakeTempDir("e2e-stack");
    std::vector<std::string> args = {"init",
                                     "--stack",
                                     name_,
                                     "--bucket",
                                     bucket_,
                                     "--visibility",
                                     std::to_string(options.visibility_s),
                                     "--max-receives",
                                     std::to_string(options.max_receives),
                                     "--json"};
    if (!prefix_.empty()) args.insert(args.end(), {"--prefix", prefix_});
    Ran init = RunControllerBinary(args);
    ASSERT_EQ(init.code, 0) << init.err;
    auto doc = ParseJson(init.out);
    ASSERT_TRUE(doc.is_object() && doc.contains("queue_url")) << init.out;
    queue_url_ = doc["queue_url"].get<std::string>();
    auto context = AwsContext::Create();
    ASSERT_TRUE(context.ok()) << context.error().ToString();
    auto db = DynamoDbClient::Create(*context);
    ASSERT_TRUE(db.ok());
    db_ = *db;
    auto sqs = SqsClient::Create(*context);
    ASSERT_TRUE(sqs.ok());
    sqs_ = *sqs;
  }

  ~E2EStack() {
    if (sqs_) {
      for (const std::string& q : {"spotgrid-" + name_, "spotgrid-" + name_ + "-dlq"}) {
        if (auto url = sqs_->GetQueueUrl(q); url.ok()) (void)sqs_->DeleteQueue(*url);
      }
    }
    if (db_) (void)db_->DeleteTable(LedgerTableName(name_));
    if (!dir_.empty() && !::testing::Test::HasFailure()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  const std::string& name() const { return name_; }
  const std::string& bucket() const { return bucket_; }
  const std::string& queue_url() const { return queue_url_; }
  // The stack's ledger, for what `controller show` prints only to the second (attempt times).
  std::shared_ptr<Ledger> OpenLedger() const {
    DynamoLedgerOptions options;
    options.table = LedgerTableName(name_);
    return MakeDynamoLedger(db_, std::move(options), Clock::System());
  }

  AgentOptions Agent(int slots = 1, const std::string& instance_id = "") const {
    AgentOptions options;
    options.stack = name_;
    options.slots = slots;
    options.instance_id = instance_id;
    return options;
  }

  // `controller ARGS --stack NAME`.
  Ran Controller(std::vector<std::string> args) const {
    args.insert(args.end(), {"--stack", name_});
    return RunControllerBinary(args);
  }

  // Writes `csv` and enqueues it as `job`; extra flags (--timeout, --max-attempts) follow.
  void Enqueue(const std::string& job, const std::string& csv, const std::string& command,
               std::vector<std::string> flags = {}) {
    const std::string path = dir_ + "/" + job + ".csv";
    std::ofstream(path, std::ios::binary) << csv;
    std::vector<std::string> args = {"enqueue", path, "--job", job, "--command", command};
    args.insert(args.end(), flags.begin(), flags.end());
    Ran ran = Controller(args);
    ASSERT_EQ(ran.code, 0) << ran.err;
  }

  // `controller progress --json` (with --exact when asked); {} on failure (test failed).
  nlohmann::json Progress(const std::string& job, bool exact = false) const {
    std::vector<std::string> args = {"progress", "--job", job, "--json"};
    if (exact) args.push_back("--exact");
    Ran ran = Controller(args);
    EXPECT_EQ(ran.code, 0) << ran.err;
    auto doc = ParseJson(ran.out);
    return doc.is_object() ? doc : nlohmann::json::object();
  }

  nlohmann::json Counts(const std::string& job, bool exact = false) const {
    auto doc = Progress(job, exact);
    return doc.contains("counts") ? doc["counts"] : nlohmann::json::object();
  }

  // `controller show UNIT --json`; {} on failure.
  nlohmann::json Show(const std::string& job, const std::string& unit) const {
    Ran ran = Controller({"show", unit, "--job", job, "--json"});
    EXPECT_EQ(ran.code, 0) << ran.err;
    auto doc = ParseJson(ran.out);
    return doc.is_object() ? doc : nlohmann::json::object();
  }

  std::string State(const std::string& job, const std::string& unit) const {
    auto doc = Show(job, unit);
    return doc.contains("state") ? doc["state"].get<std::string>() : "";
  }

  // `controller list --json`; [] on failure.
  nlohmann::json List(const std::string& job) const {
    Ran ran = Controller({"list", "--job", job, "--json"});
    EXPECT_EQ(ran.code, 0) << ran.err;
    auto doc = ParseJson(ran.out);
    return doc.is_array() ? doc : nlohmann::json::array();
  }

  // Every key under s3://bucket/<prefix>/<job>/ (the CLI follows continuation tokens).
  std::vector<std::string> JobKeys(const std::string& job) const {
    const std::string key_prefix = (prefix_.empty() ? "" : prefix_ + "/") + job + "/";
    Ran ran = RunAws("AWS_ENDPOINT_URL_S3",
                     {"s3api", "list-objects-v2", "--bucket", bucket_, "--prefix", key_prefix});
    EXPECT_EQ(ran.code, 0) << ran.err;
    std::vector<std::string> keys;
    auto doc = ParseJson(ran.out);
    if (!doc.is_object() || !doc.contains("Contents")) return keys;
    for (const auto& object : doc["Contents"]) keys.push_back(object["Key"].get<std::string>());
    return keys;
  }

  // The key of a unit's file: "<prefix>/<job>/<unit>/<rest>".
  std::string UnitKey(const std::string& job, const std::string& unit,
                      const std::string& rest) const {
    return (prefix_.empty() ? "" : prefix_ + "/") + job + "/" + unit + "/" + rest;
  }

  // An object's body through the CLI; nullopt when it cannot be read.
  std::optional<std::string> GetObject(const std::string& key) const {
    const std::string path = dir_ + "/object-" + UniqueName("get");
    Ran ran = RunAws("AWS_ENDPOINT_URL_S3",
                     {"s3api", "get-object", "--bucket", bucket_, "--key", key, path});
    if (ran.code != 0) return std::nullopt;
    std::string body = ReadWholeFile(path);
    std::filesystem::remove(path);
    return body;
  }

 private:
  std::string name_, bucket_, prefix_, dir_, queue_url_;
  std::shared_ptr<DynamoDbClient> db_;
  std::shared_ptr<SqsClient> sqs_;
};

// Prints the tail of every agent's log to stderr: what a failed test needs to be read.
inline void PrintAgentLogTails(const std::vector<std::unique_ptr<AgentProcess>>& agents,
                               std::size_t max_bytes) {
  for (const auto& agent : agents) {
    std::string log = agent->Log();
    if (log.size() > max_bytes) log = "..." + log.substr(log.size() - max_bytes);
    std::cerr << "---- agent " << agent->instance_id() << " (pid " << agent->pid()
              << ") log tail:\n"
              << log << "\n";
  }
}

}  // namespace spotgrid::testing
