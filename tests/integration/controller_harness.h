// Helpers for the controller's integration tests: run the real `controller` binary and
// Debian's aws CLI (an independent client) as child processes with their output captured,
// query the emulators through the CLI, and put a fault proxy in front of an emulator.
//
// Thread-safety: used by one test thread.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/s3_client.h"
#include "spotgrid/services/sqs_client.h"
#include "support/child_process.h"
#include "support/fault_proxy.h"
#include "support/test_env.h"

namespace spotgrid::testing {

inline const std::string kControllerBinary = SPOTGRID_BINARY_DIR "/controller/controller";
inline constexpr const char* kAwsCli = "/usr/bin/aws";

struct Ran {
  int code = -1;  // exit status; -1 when killed or timed out
  std::string out;
  std::string err;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs `argv` to completion (at most `deadline`), stdout and stderr captured separately.
inline Ran RunProgram(const std::vector<std::string>& argv,
                      const std::vector<std::pair<std::string, std::string>>& env = {},
                      std::chrono::seconds deadline = std::chrono::seconds(240)) {
  const std::string dir = MakeTempDir("run");
  const std::string out_path = dir + "/out", err_path = dir + "/err";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    for (const auto& [key, value] : env) ::setenv(key.c_str(), value.c_str(), 1);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  Ran ran;
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return ran;
  }
  int status = 0;
  const bool exited = WaitUntil([&] { return ::waitpid(pid, &status, WNOHANG) == pid; },
                                deadline, std::chrono::milliseconds(5));
  if (!exited) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ADD_FAILURE() << argv[0] << " did not finish within " << deadline.count() << " s";
  }
  if (exited && WIFEXITED(status)) ran.code = WEXITSTATUS(status);
  ran.out = ReadWholeFile(out_path);
  ran.err = ReadWholeFile(err_path);
  std::filesystem::remove_all(dir);
  return ran;
}

inline Ran RunControllerBinary(std::vector<std::string> args,
                               const std::vector<std::pair<std::string, std::string>>& env = {}) {
  args.insert(args.begin(), kControllerBinary);
  return RunProgram(args, env);
}

// `aws --endpoint-url <emulator> --output json SERVICE ARGS...`; `endpoint_var` names the
// launcher's variable for the service (the CLI 2.9 predates AWS_ENDPOINT_URL_<SVC>).
inline Ran RunAws(const std::string& endpoint_var, std::vector<std::string> args) {
  args.insert(args.begin(),
              {kAwsCli, "--endpoint-url", EmulatorValue(endpoint_var), "--output", "json"});
  return RunProgram(args);
}

inline nlohmann::json ParseJson(const std::string& text) {
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// A stack made by the real `controller init`, and clients onto the same emulators for checking
// (and, before the agent exists, playing) what the controller wrote.
struct InitializedStack {
  std::string queue_url;
  std::shared_ptr<DynamoDbClient> db;
  std::shared_ptr<SqsClient> sqs;
  std::shared_ptr<S3Client> s3;
};

// Runs `controller init --stack STACK --bucket BUCKET` and fills `out`; fails the test (the
// caller checks HasFatalFailure) when anything is missing.
inline void InitStack(const std::string& stack, const std::string& bucket, InitializedStack& out) {
  Ran init = RunControllerBinary({"init", "--stack", stack, "--bucket", bucket, "--json"});
  ASSERT_EQ(init.code, 0) << init.err;
  out.queue_url = ParseJson(init.out)["queue_url"];
  auto context = AwsContext::Create();
  ASSERT_TRUE(context.ok()) << context.error().ToString();
  auto db = DynamoDbClient::Create(*context);
  ASSERT_TRUE(db.ok());
  out.db = *db;
  auto sqs = SqsClient::Create(*context);
  ASSERT_TRUE(sqs.ok());
  out.sqs = *sqs;
  auto s3 = S3Client::Create(*context);
  ASSERT_TRUE(s3.ok());
  out.s3 = *s3;
}

// Queue attributes through the CLI ({} on failure, with a test failure).
inline nlohmann::json CliQueueAttributes(const std::string& queue_url) {
  Ran ran = RunAws("AWS_ENDPOINT_URL_SQS", {"sqs", "get-queue-attributes", "--queue-url", queue_url,
                                            "--attribute-names", "All"});
  EXPECT_EQ(ran.code, 0) << ran.err;
  auto doc = ParseJson(ran.out);
  if (!doc.is_object() || !doc.contains("Attributes")) return nlohmann::json::object();
  return doc["Attributes"];
}

// Visible + in-flight + delayed messages, as SQS (approximately) counts them.
inline long long CliMessageCount(const std::string& queue_url) {
  auto attributes = CliQueueAttributes(queue_url);
  long long total = 0;
  for (const char* name : {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                           "ApproximateNumberOfMessagesDelayed"}) {
    if (attributes.contains(name)) total += std::atoll(attributes[name].get<std::string>().c_str());
  }
  return total;
}

// Every unit item's sort key ("U#<unit>") of a job, through the CLI (which follows
// LastEvaluatedKey itself).
inline std::vector<std::string> CliUnitKeys(const std::string& table, const std::string& job) {
  const nlohmann::json values = {{":p", {{"S", "JOB#" + job}}}, {":u", {{"S", "U#"}}}};
  Ran ran = RunAws("AWS_ENDPOINT_URL_DYNAMODB",
                   {"dynamodb", "query", "--table-name", table, "--key-condition-expression",
                    "pk = :p AND begins_with(sk, :u)", "--expression-attribute-values",
                    values.dump(), "--projection-expression", "sk"});
  EXPECT_EQ(ran.code, 0) << ran.err;
  std::vector<std::string> keys;
  auto doc = ParseJson(ran.out);
  if (!doc.is_object() || !doc.contains("Items")) return keys;
  for (const auto& item : doc["Items"]) keys.push_back(item["sk"]["S"].get<std::string>());
  return keys;
}

// Items in the whole table, through the CLI (Count summed over pages).
inline long long CliTableItemCount(const std::string& table) {
  Ran ran = RunAws("AWS_ENDPOINT_URL_DYNAMODB",
                   {"dynamodb", "scan", "--table-name", table, "--select", "COUNT"});
  EXPECT_EQ(ran.code, 0) << ran.err;
  auto doc = ParseJson(ran.out);
  return doc.is_object() && doc.contains("Count") ? doc["Count"].get<long long>() : -1;
}

// Receives every message of a queue with botocore (Debian's python: an independent client),
// keeping them in flight so none is seen twice, until `expected` messages arrived and a
// further receive finds nothing. Returns the message bodies.
inline std::vector<std::string> ReceiveAllBodies(const std::string& queue_url, long long expected) {
  static const char* kScript = R"PY(
import json, os, sys, time, botocore.session
url, expected = sys.argv[1], int(sys.argv[2])
client = botocore.session.get_session().create_client(
    "sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL_SQS"], region_name=os.environ["AWS_REGION"])
bodies, empty, deadline = [], 0, time.time() + 120
while time.time() < deadline:
    got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                 VisibilityTimeout=900).get("Messages", [])
    bodies += [m["Body"] for m in got]
    empty = 0 if got else empty + 1
    if len(bodies) >= expected and empty >= 2:
        break
json.dump(bodies, sys.stdout)
)PY";
  Ran ran = RunProgram({"/usr/bin/python3", "-c", kScript, queue_url, std::to_string(expected)});
  EXPECT_EQ(ran.code, 0) << ran.err;
  std::vector<std::string> bodies;
  auto doc = ParseJson(ran.out);
  if (!doc.is_array()) return bodies;
  for (const auto& body : doc) bodies.push_back(body.get<std::string>());
  return bodies;
}

}  // namespace spotgrid::testing
