// `controller enqueue` against the emulators. The real binary runs as a child process; what
// reached DynamoDB and SQS is checked with independent clients (Debian's aws CLI, and
// botocore to receive every message), and crashes are real: SIGKILL part way through.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "controller_harness.h"
#include "spotgrid/ledger/types.h"
#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/sqs_client.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::CliMessageCount;
using testing::CliTableItemCount;
using testing::CliUnitKeys;
using testing::EmulatorValue;
using testing::FaultProxy;
using testing::ParseJson;
using testing::Ran;
using testing::ReceiveAllBodies;
using testing::RunAws;
using testing::RunControllerBinary;
using testing::UniqueName;
using testing::UseEmulators;
using testing::WaitUntil;

// What enqueue writes between two `sent_through` checkpoints (controller/verbs/enqueue.cc):
// the most messages a rerun after a crash may send twice.
constexpr long long kCheckpointUnits = 5000;

class ControllerEnqueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    stack_ = UniqueName("ce");
    table_ = "spotgrid-" + stack_;
    dir_ = testing::MakeTempDir("enqueue");
    testing::InitializedStack made;
    testing::InitStack(stack_, UniqueName("ce-b"), made);
    ASSERT_FALSE(HasFatalFailure());
    queue_url_ = made.queue_url;
    db_ = made.db;
    sqs_ = made.sqs;
  }

  void TearDown() override {
    if (sqs_) {
      for (const std::string& name : {"spotgrid-" + stack_, "spotgrid-" + stack_ + "-dlq"}) {
        if (auto url = sqs_->GetQueueUrl(name); url.ok()) (void)sqs_->DeleteQueue(*url);
      }
    }
    if (db_) (void)db_->DeleteTable(table_);
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // A grid of `rows` rows with ids u000001.. and a seed column.
  std::string WriteGrid(const std::string& name, int rows) {
    std::string text = "id,seed\n";
    char line[64];
    for (int i = 1; i <= rows; ++i) {
      std::snprintf(line, sizeof line, "u%06d,%d\n", i, i * 7);
      text += line;
    }
    return Write(name, text);
  }

  static std::set<std::string> ExpectedKeys(int rows) {
    std::set<std::string> keys;
    char id[32];
    for (int i = 1; i <= rows; ++i) {
      std::snprintf(id, sizeof id, "U#u%06d", i);
      keys.insert(id);
    }
    return keys;
  }

  Ran Enqueue(std::vector<std::string> args,
              const std::vector<std::pair<std::string, std::string>>& env = {}) {
    args.insert(args.begin(), "enqueue");
    args.insert(args.end(), {"--stack", stack_});
    return RunControllerBinary(args, env);
  }

  // Waits until SQS counts `count` messages in the queue (the count is approximate by
  // contract, so it is polled with a deadline rather than read once).
  void ExpectMessageCount(long long count) {
    long long seen = -1;
    EXPECT_TRUE(WaitUntil([&] { return (seen = CliMessageCount(queue_url_)) == count; },
                          std::chrono::seconds(30), std::chrono::milliseconds(500)))
        << "queue holds " << seen << " messages, expected " << count;
  }

  // Receives every message and returns how often each unit of `job` was named.
  std::map<std::string, int> ReceiveUnits(const std::string& job, long long expected) {
    std::map<std::string, int> units;
    for (const std::string& body : ReceiveAllBodies(queue_url_, expected)) {
      auto decoded = DecodeUnitMessage(body);
      EXPECT_TRUE(decoded.has_value()) << body;
      if (!decoded) continue;
      EXPECT_EQ(decoded->first, job) << body;
      ++units["U#" + decoded->second];
    }
    return units;
  }

  bool LedgerHasUnits(const std::string& job) {
    QueryRequest request;
    request.table = table_;
    request.key_condition_expression = "pk = :p AND begins_with(sk, :u)";
    request.values = {{":p", ddb::S("JOB#" + job)}, {":u", ddb::S("U#")}};
    request.limit = 1;
    bool found = false;
    Status status = db_->Query(request, [&](Page& page) {
      found = !page.items.empty();
      return false;
    });
    return status.ok() && found;
  }

  std::optional<json> GetItem(const std::string& pk, const std::string& sk) {
    auto item = db_->GetItem(table_, {{"pk", ddb::S(pk)}, {"sk", ddb::S(sk)}}, true);
    EXPECT_TRUE(item.ok()) << item.error().ToString();
    return item.ok() ? *item : std::nullopt;
  }

  // A unit's command as the ledger holds it, read with the aws CLI.
  std::string CliUnitCommand(const std::string& job, const std::string& unit) {
    const json key = {{"pk", {{"S", "JOB#" + job}}}, {"sk", {{"S", "U#" + unit}}}};
    Ran ran = RunAws("AWS_ENDPOINT_URL_DYNAMODB", {"dynamodb", "get-item", "--table-name", table_,
                                                   "--key", key.dump(), "--consistent-read"});
    EXPECT_EQ(ran.code, 0) << ran.err;
    json item = ParseJson(ran.out);
    if (!item.is_object() || !item.contains("Item")) {
      ADD_FAILURE() << "no unit " << unit << ": " << ran.out;
      return "";
    }
    return item["Item"]["rows"]["L"][0]["M"]["command"]["S"];
  }

  std::string stack_, table_, dir_, queue_url_;
  std::shared_ptr<DynamoDb> db_;
  std::shared_ptr<Sqs> sqs_;
};

TEST_F(ControllerEnqueueTest, TenThousandRowsBecomeTenThousandItemsAndMessagesAndARerunAddsNone) {
  constexpr int kRows = 10000;
  const std::string grid = WriteGrid("sweep.csv", kRows);

  const auto start = std::chrono::steady_clock::now();
  Ran first = Enqueue({grid, "--command", "echo {seed}", "--json"});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(first.code, 0) << first.err;
  std::cout << "[ timing   ] enqueue of " << kRows << " rows: " << seconds << " s wall\n";
  RecordProperty("enqueue_10000_seconds", std::to_string(seconds));
  json summary = ParseJson(first.out);
  EXPECT_EQ(summary["job"], "sweep");
  EXPECT_EQ(summary["units"], kRows);
  EXPECT_EQ(summary["written"], kRows);
  EXPECT_EQ(summary["sent"], kRows);
  EXPECT_EQ(summary["already_present"], 0);

  const std::set<std::string> expected = ExpectedKeys(kRows);
  std::vector<std::string> keys = CliUnitKeys(table_, "sweep");
  EXPECT_EQ(keys.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), expected);
  ExpectMessageCount(kRows);

  Ran second = Enqueue({grid, "--command", "echo {seed}"});
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(second.out, "job sweep: nothing new to enqueue (10,000 units already enqueued)\n");
  EXPECT_EQ(CliUnitKeys(table_, "sweep").size(), expected.size());

  // Still exactly one message per unit after both runs. (Receiving them to read the bodies is
  // not possible here: local-aws-sqs refuses every ReceiveMessage with OverLimit once 10,000
  // messages are visible. The crash tests below receive and check every body.)
  ExpectMessageCount(kRows);

  auto job = GetItem("JOB#sweep", "#JOB");
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(ddb::GetS(*job, "enqueue_state"), "DONE");
  EXPECT_EQ(ddb::GetInt(*job, "sent_through"), kRows);
}

TEST_F(ControllerEnqueueTest, KilledWhileWritingUnitsARerunCompletesExactly) {
  constexpr int kRows = 6000;
  const std::string grid = WriteGrid("crash.csv", kRows);
  // Slow every unit write down so the kill lands part way through them.
  auto proxy = FaultProxy::Start(EmulatorValue("AWS_ENDPOINT_URL_DYNAMODB"));
  ASSERT_NE(proxy, nullptr);
  proxy->AddRules(
      {{{"action", "delay"}, {"count", 100000}, {"delay_ms", 250}, {"match", "BatchWriteItem"}}});
  auto child = ChildProcess::Start({.argv = {testing::kControllerBinary, "enqueue", grid,
                                             "--command", "echo {seed}", "--stack", stack_},
                                    .env = {{"AWS_ENDPOINT_URL_DYNAMODB", proxy->url()}},
                                    .unset_env = {},
                                    .log_path = dir_ + "/crash.log",
                                    .working_dir = ""});
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  ASSERT_TRUE(WaitUntil([&] { return LedgerHasUnits("crash"); }, std::chrono::seconds(60)))
      << (*child)->ReadLog();
  ASSERT_TRUE((*child)->Signal(SIGKILL));
  ASSERT_TRUE((*child)->Wait(std::chrono::seconds(10)));
  ASSERT_EQ((*child)->TermSignal(), SIGKILL) << "enqueue finished before it was killed";

  const std::size_t partial = CliUnitKeys(table_, "crash").size();
  EXPECT_GT(partial, 0u);
  EXPECT_LT(partial, static_cast<std::size_t>(kRows));
  auto job = GetItem("JOB#crash", "#JOB");
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(ddb::GetS(*job, "enqueue_state"), "WRITING");

  Ran rerun = Enqueue({grid, "--command", "echo {seed}", "--json"});
  ASSERT_EQ(rerun.code, 0) << rerun.err;
  json summary = ParseJson(rerun.out);
  EXPECT_EQ(summary["written"].get<long long>() + summary["already_present"].get<long long>(),
            kRows);
  EXPECT_GE(summary["already_present"].get<long long>(), static_cast<long long>(partial));

  const std::set<std::string> expected = ExpectedKeys(kRows);
  std::vector<std::string> keys = CliUnitKeys(table_, "crash");
  EXPECT_EQ(keys.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), expected);
  // Messages go out only after every unit is written, so the killed run sent none.
  ExpectMessageCount(kRows);
  std::map<std::string, int> units = ReceiveUnits("crash", kRows);
  EXPECT_EQ(units.size(), expected.size());
  for (const auto& [unit, count] : units) EXPECT_EQ(count, 1) << unit;
}

TEST_F(ControllerEnqueueTest, KilledWhileSendingMessagesARerunSendsEveryUnitWithFewDuplicates) {
  // Above kCheckpointUnits so a checkpoint is recorded, and small enough that the queue stays
  // below local-aws-sqs's 10,000 visible messages, past which it refuses every receive.
  constexpr int kRows = 6500;
  const std::string grid = WriteGrid("resend.csv", kRows);
  auto proxy = FaultProxy::Start(EmulatorValue("AWS_ENDPOINT_URL_SQS"));
  ASSERT_NE(proxy, nullptr);
  proxy->AddRules(
      {{{"action", "delay"}, {"count", 100000}, {"delay_ms", 100}, {"match", "SendMessageBatch"}}});
  auto child = ChildProcess::Start({.argv = {testing::kControllerBinary, "enqueue", grid,
                                             "--command", "echo {seed}", "--stack", stack_},
                                    .env = {{"AWS_ENDPOINT_URL_SQS", proxy->url()}},
                                    .unset_env = {},
                                    .log_path = dir_ + "/resend.log",
                                    .working_dir = ""});
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  // Kill once the first checkpoint is recorded: some messages are sent, not all.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto job = GetItem("JOB#resend", "#JOB");
        return job && ddb::GetInt(*job, "sent_through").value_or(0) > 0;
      },
      std::chrono::seconds(90)))
      << (*child)->ReadLog();
  ASSERT_TRUE((*child)->Signal(SIGKILL));
  ASSERT_TRUE((*child)->Wait(std::chrono::seconds(10)));
  ASSERT_EQ((*child)->TermSignal(), SIGKILL) << "enqueue finished before it was killed";
  const long long sent_before = CliMessageCount(queue_url_);
  EXPECT_GT(sent_before, 0);
  EXPECT_LT(sent_before, kRows);

  Ran rerun = Enqueue({grid, "--command", "echo {seed}", "--json"});
  ASSERT_EQ(rerun.code, 0) << rerun.err;
  json summary = ParseJson(rerun.out);
  EXPECT_EQ(summary["written"], 0);
  EXPECT_EQ(summary["already_present"], kRows);

  const std::set<std::string> expected = ExpectedKeys(kRows);
  EXPECT_EQ(CliUnitKeys(table_, "resend").size(), expected.size());
  const long long messages = CliMessageCount(queue_url_);
  std::map<std::string, int> units = ReceiveUnits("resend", messages);
  EXPECT_EQ(units.size(), expected.size());
  long long total = 0;
  for (const auto& [unit, count] : units) total += count;
  // Resent are at most the messages sent after the last checkpoint the killed run recorded.
  EXPECT_GE(total, kRows);
  EXPECT_LE(total, kRows + kCheckpointUnits);
  std::cout << "[ resend   ] killed run sent " << sent_before
            << "; duplicates after rerun: " << (total - kRows) << "\n";
}

TEST_F(ControllerEnqueueTest, EveryKindOfBadGridExits2WithFileAndLineAndWritesNothing) {
  struct Case {
    std::string name, content, line;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases = {
      {"ragged", "id,command\na,echo a\nb,echo b,extra\n", "3", {}},
      {"placeholder", "id,x\na,1\n", "1", {"--command", "echo {y}"}},
      {"empty-command", "id,command\na,echo a\nb,\n", "3", {}},
      {"duplicate-id", "id,command\na,echo 1\nb,echo 2\na,echo 3\n", "4", {}},
      {"unsafe-id", "id,command\nok,echo 1\n../etc,echo 2\n", "3", {}},
      {"not-utf8", "id,command\na,echo 1\nb,echo \xff\xfe\n", "3", {}},
  };
  for (const Case& c : cases) {
    const std::string path = Write(c.name + ".csv", c.content);
    std::vector<std::string> args = {path};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    Ran ran = Enqueue(args);
    EXPECT_EQ(ran.code, 2) << c.name << ": " << ran.err;
    EXPECT_EQ(ran.err.rfind("controller: " + path + ":" + c.line + ":", 0), 0u)
        << c.name << ": " << ran.err;
    EXPECT_EQ(ran.out, "") << c.name;
  }
  EXPECT_EQ(CliTableItemCount(table_), 1);  // the stack item only
  EXPECT_EQ(CliMessageCount(queue_url_), 0);
}

TEST_F(ControllerEnqueueTest, DryRunPrintsTheUnitsAndTouchesNothing) {
  const std::string grid = Write("dry.csv", "id,n\nx1,1\nx2,2\nx3,3\n");
  // Every AWS endpoint points at a closed port: any request would fail the run.
  Ran ran = Enqueue({grid, "--command", "echo {n}", "--dry-run"},
                    {{"AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9"},
                     {"AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9"},
                     {"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9"}});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out, "x1\techo '1'\nx2\techo '2'\nx3\techo '3'\n");
  EXPECT_EQ(CliTableItemCount(table_), 1);
  EXPECT_EQ(CliMessageCount(queue_url_), 0);
}

TEST_F(ControllerEnqueueTest, QuotedValuesReachTheCommandUnchangedAndUnexecuted) {
  const std::string marker = dir_ + "/executed";
  const std::map<std::string, std::string> values = {
      {"spaces", "hello   world"},
      {"quotes", "say \"hi\" and 'bye'"},
      {"subshell", "$(touch " + marker + ")"},
      {"backticks", "`touch " + marker + "`"},
      {"shell", "a,b;c|d&e>f<g *"},
      {"newline", "line one\nline two"},
      {"dollar", "$HOME ${PATH} \\n"},
  };
  std::string text = "id,value\n";
  for (const auto& [id, value] : values) {
    std::string quoted;
    for (char c : value) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    text += id + ",\"" + quoted + "\"\r\n";
  }
  const std::string grid = Write("quoting.csv", text);
  Ran ran = Enqueue({grid, "--command", "printf '%s' {value}"});
  ASSERT_EQ(ran.code, 0) << ran.err;

  for (const auto& [id, value] : values) {
    const std::string command = CliUnitCommand("quoting", id);
    Ran shell = testing::RunProgram({"/bin/sh", "-c", command});
    EXPECT_EQ(shell.code, 0) << id << ": " << command << ": " << shell.err;
    EXPECT_EQ(shell.out, value) << id << ": " << command;
  }
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(ControllerEnqueueTest, AChangedRowIsRefusedUnlessReplacedAndNewRowsAreAdded) {
  const std::string grid = Write("change.csv", "id,command\na,echo 1\nb,echo 2\n");
  ASSERT_EQ(Enqueue({grid}).code, 0);
  ExpectMessageCount(2);

  Write("change.csv", "id,command\na,echo 1\nb,echo 20\nc,echo 3\n");
  Ran refused = Enqueue({grid});
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("1 unit(s) already enqueued with other content: b"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("--replace"), std::string::npos);
  EXPECT_EQ(CliUnitKeys(table_, "change").size(), 2u);
  EXPECT_EQ(CliUnitCommand("change", "b"), "echo 2");

  Ran replaced = Enqueue({grid, "--replace", "--json"});
  ASSERT_EQ(replaced.code, 0) << replaced.err;
  json summary = ParseJson(replaced.out);
  EXPECT_EQ(summary["written"], 1);
  EXPECT_EQ(summary["replaced"], 1);
  EXPECT_EQ(summary["already_present"], 1);
  EXPECT_EQ(summary["sent"], 2);  // the new unit c and the replaced unit b
  EXPECT_EQ(CliUnitCommand("change", "b"), "echo 20");
  EXPECT_EQ(CliUnitKeys(table_, "change").size(), 3u);
  ExpectMessageCount(4);

  Ran again = Enqueue({grid});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("nothing new to enqueue"), std::string::npos) << again.out;
  EXPECT_EQ(CliMessageCount(queue_url_), 4);
}

TEST_F(ControllerEnqueueTest, OtherSettingsForAnExistingJobAreRefused) {
  const std::string grid = Write("settings.csv", "command\necho 1\n");
  ASSERT_EQ(Enqueue({grid, "--max-attempts", "3"}).code, 0);
  Ran ran = Enqueue({grid, "--max-attempts", "5"});
  EXPECT_EQ(ran.code, 2);
  EXPECT_NE(ran.err.find("job settings already exists with other settings: --max-attempts 3"),
            std::string::npos)
      << ran.err;
}

}  // namespace
}  // namespace spotgrid
