// The controller's read and repair verbs (progress, list, show, logs, results, retry, cancel,
// workers, userdata) against the emulators: the real binary runs as a child process on a
// fresh stack made with `controller init`.
//
// The agent does not exist yet, so the tests play its part: they move units to RUNNING,
// SUCCEEDED or FAILED by writing the unit items and job counters directly in DynamoDB, in the
// format docs/ledger.md documents (without the two-write intent protocol, which only matters
// for concurrent writers), put worker items through the Ledger API, and upload outputs and
// logs to S3 where the agent will.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "controller_harness.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/iso8601.h"
#include "spotgrid/ledger/ledger.h"
#include "spotgrid/ledger/types.h"
#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/s3_client.h"
#include "spotgrid/services/sqs_client.h"

namespace spotgrid {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::ChildProcess;
using testing::ChildProcessOptions;
using testing::CliMessageCount;
using testing::EmulatorValue;
using testing::ParseJson;
using testing::Ran;
using testing::RunControllerBinary;
using testing::RunProgram;
using testing::UniqueName;
using testing::UseEmulators;
using testing::WaitUntil;

// The ledger's time format (fixed width, milliseconds), so index sort keys order correctly.
std::string LedgerTime(Clock::WallTime time) {
  std::string iso = FormatIso8601(std::chrono::time_point_cast<seconds>(time));
  return iso.substr(0, iso.size() - 1) + ".000Z";
}

struct FakeAttempt {
  int n = 1;
  std::string owner;
  Clock::WallTime started_at;
  std::optional<Clock::WallTime> finished_at;
  std::optional<int> exit_code;
  std::string reason;
  std::string error;
};

class ControllerVerbsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    stack_ = UniqueName("cv");
    bucket_ = UniqueName("cv-b");
    table_ = LedgerTableName(stack_);
    dir_ = testing::MakeTempDir("verbs");
    testing::InitializedStack made;
    testing::InitStack(stack_, bucket_, made);
    ASSERT_FALSE(HasFatalFailure());
    queue_url_ = made.queue_url;
    db_ = made.db;
    s3_ = made.s3;
    sqs_ = made.sqs;
    DynamoLedgerOptions options;
    options.table = table_;
    ledger_ = MakeDynamoLedger(db_, options, Clock::System());
    auto stack = ledger_->GetStack();
    ASSERT_TRUE(stack.ok() && stack->has_value());
    stack_info_ = **stack;
  }

  void TearDown() override {
    if (sqs_) {
      for (const std::string& name : {"spotgrid-" + stack_, "spotgrid-" + stack_ + "-dlq"}) {
        if (auto url = sqs_->GetQueueUrl(name); url.ok()) (void)sqs_->DeleteQueue(*url);
      }
    }
    if (db_) (void)db_->DeleteTable(table_);
    if (!HasFailure()) fs::remove_all(dir_);
  }

  Ran Run(std::vector<std::string> args,
          const std::vector<std::pair<std::string, std::string>>& env = {}) {
    args.insert(args.end(), {"--stack", stack_});
    return RunControllerBinary(args, env);
  }

  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // Enqueues `grid` as `job` with a template over its columns.
  void Enqueue(const std::string& job, const std::string& grid, const std::string& command) {
    std::vector<std::string> args = {"enqueue", Write(job + ".csv", grid), "--job", job};
    if (!command.empty()) args.insert(args.end(), {"--command", command});
    Ran ran = Run(args);
    ASSERT_EQ(ran.code, 0) << ran.err;
  }

  // Plays the agent: rewrites the unit item in `state` and moves the job's stored counter.
  void SetUnit(const std::string& job, const std::string& unit, UnitState state,
               std::vector<FakeAttempt> attempts, json extra = json::object()) {
    const json key = {{"pk", ddb::S("JOB#" + job)}, {"sk", ddb::S("U#" + unit)}};
    auto item = db_->GetItem(table_, key, true);
    ASSERT_TRUE(item.ok() && item->has_value()) << "no unit " << unit;
    json next = **item;
    const auto old_state = ParseUnitState(*ddb::GetS(next, "state"));
    const Clock::WallTime now = Clock::System().Now();
    next["state"] = ddb::S(ToString(state));
    next["state_since"] = ddb::S(LedgerTime(now));
    next["gsi1pk"] = ddb::S(job + "#" + std::string(ToString(state)));
    next["gsi1sk"] = ddb::S(LedgerTime(now) + "#" + unit);
    next["attempt"] = ddb::N(static_cast<std::int64_t>(attempts.size()));
    json list = json::array();
    for (const FakeAttempt& a : attempts) {
      json m = {{"n", ddb::N(std::int64_t{a.n})},
                {"owner", ddb::S(a.owner)},
                {"started_at", ddb::S(LedgerTime(a.started_at))},
                {"reason", ddb::S(a.reason)},
                {"error", ddb::S(a.error)}};
      if (a.finished_at) m["finished_at"] = ddb::S(LedgerTime(*a.finished_at));
      if (a.exit_code) m["exit_code"] = ddb::N(std::int64_t{*a.exit_code});
      list.push_back(ddb::M(m));
    }
    next["attempts"] = ddb::L(list);
    if (!attempts.empty()) {
      const FakeAttempt& last = attempts.back();
      next["started_at"] = ddb::S(LedgerTime(last.started_at));
      if (state == UnitState::kRunning) {
        next["owner"] = ddb::S(last.owner);
        next["heartbeat_at"] = ddb::S(LedgerTime(now));
        next["lease_until"] = ddb::N(static_cast<std::int64_t>(
            std::chrono::duration_cast<seconds>((now + minutes(5)).time_since_epoch()).count()));
      }
      if (last.finished_at) next["finished_at"] = ddb::S(LedgerTime(*last.finished_at));
      if (last.exit_code) next["exit_code"] = ddb::N(std::int64_t{*last.exit_code});
      if (!last.error.empty()) next["error"] = ddb::S(last.error);
    }
    for (auto it = extra.begin(); it != extra.end(); ++it) next[it.key()] = it.value();
    ASSERT_TRUE(db_->PutItem(table_, next).ok());
    auto counter = [](std::optional<UnitState> s) -> std::string {
      if (s == UnitState::kSucceeded) return "succeeded";
      if (s == UnitState::kFailed) return "failed";
      if (s == UnitState::kCancelled) return "cancelled";
      return "";
    };
    for (const auto& [name, delta] : {std::pair{counter(old_state), -1}, {counter(state), 1}}) {
      if (name.empty()) continue;
      WriteOptions options;
      options.values = {{":d", ddb::N(std::int64_t{delta})}};
      ASSERT_TRUE(db_->UpdateItem(table_, {{"pk", ddb::S("JOB#" + job)}, {"sk", ddb::S("#JOB")}},
                                  "ADD " + name + " :d", options)
                      .ok());
    }
  }

  FakeAttempt Attempt(int n, const std::string& owner, std::optional<int> exit_code,
                      const std::string& reason, const std::string& error = "") {
    FakeAttempt a;
    a.n = n;
    a.owner = owner;
    a.started_at = Clock::System().Now() - minutes(3);
    if (!reason.empty()) a.finished_at = Clock::System().Now() - minutes(1);
    a.exit_code = exit_code;
    a.reason = reason;
    a.error = error;
    return a;
  }

  void Succeed(const std::string& job, const std::string& unit) {
    SetUnit(job, unit, UnitState::kSucceeded, {Attempt(1, "i-0aaa/0", 0, "succeeded")});
  }
  void Fail(const std::string& job, const std::string& unit, int code, const std::string& error) {
    SetUnit(job, unit, UnitState::kFailed, {Attempt(1, "i-0aaa/1", code, "failed", error)});
  }
  void StartRunning(const std::string& job, const std::string& unit, const std::string& owner) {
    SetUnit(job, unit, UnitState::kRunning, {Attempt(1, owner, std::nullopt, "")},
            {{"progress", ddb::S("epoch 5/10")}});
  }

  void PutObject(const std::string& key, const std::string& body) {
    auto etag = s3_->PutObject(bucket_, key, body);
    ASSERT_TRUE(etag.ok()) << etag.error().ToString();
  }

  WorkerRecord Worker(const std::string& id, const std::string& type, bool spot,
                      Clock::WallTime heartbeat) {
    WorkerRecord w;
    w.instance_id = id;
    w.instance_type = type;
    w.spot = spot;
    w.availability_zone = "us-east-1a";
    w.slots = 2;
    w.started_at = Clock::System().Now() - hours(2);
    w.last_heartbeat = heartbeat;
    w.state = WorkerState::kRunning;
    return w;
  }

  // A tenant of the EC2 fake of its own, with the given Spot prices; returns the env that
  // points the controller at it.
  std::vector<std::pair<std::string, std::string>> Ec2WithSpotPrices(const json& prices) {
    const std::string url = EmulatorValue("SPOTGRID_FAKE_AWS_URL") + "/" + UniqueName("t");
    Ran put = RunProgram({"/usr/bin/curl", "-sf", "-X", "PUT", "--data-binary",
                          json{{"spot_prices", prices}}.dump(), url + "/_fake/state"});
    EXPECT_EQ(put.code, 0) << put.err;
    return {{"AWS_ENDPOINT_URL_EC2", url}};
  }

  std::string stack_, bucket_, table_, dir_, queue_url_;
  StackInfo stack_info_;
  std::shared_ptr<DynamoDbClient> db_;
  std::shared_ptr<S3Client> s3_;
  std::shared_ptr<SqsClient> sqs_;
  std::shared_ptr<Ledger> ledger_;
};

const char* kGrid = "id,seed,label\nu1,1,a\nu2,2,b\nu3,3,c\nu4,4,d\nu5,5,e\nu6,6,f\n";
const char* kTemplate = "run --seed {seed} --label {label}";

// --- progress ------------------------------------------------------------------------------

TEST_F(ControllerVerbsTest, ProgressReportsCountsRateRunningFailuresAndSpotCost) {
  Enqueue("j1", kGrid, kTemplate);
  Succeed("j1", "u1");
  Succeed("j1", "u2");
  Fail("j1", "u3", 3, "boom");
  StartRunning("j1", "u4", "i-0abc/0");
  const auto now = Clock::System().Now();
  ASSERT_TRUE(ledger_->PutWorker(Worker("i-0abc", "c5.large", true, now + hours(1))).ok());
  auto env = Ec2WithSpotPrices(
      {{{"instance_type", "c5.large"}, {"availability_zone", "us-east-1a"}, {"price", "0.0360"}}});

  Ran ran = Run({"progress", "--job", "j1", "--json"}, env);
  ASSERT_EQ(ran.code, 0) << ran.err;
  json report = ParseJson(ran.out);
  ASSERT_TRUE(report.is_object()) << ran.out;
  EXPECT_EQ(report["counts"], json({{"total", 6},
                                    {"queued", 2},
                                    {"running", 1},
                                    {"succeeded", 2},
                                    {"failed", 1},
                                    {"cancelled", 0}}));
  EXPECT_GT(report["rate"]["units_per_minute"].get<double>(), 0);
  EXPECT_TRUE(report["eta_s"].is_number());
  ASSERT_EQ(report["running"].size(), 1u);
  EXPECT_EQ(report["running"][0]["unit"], "u4");
  EXPECT_EQ(report["running"][0]["worker"], "i-0abc/0");
  EXPECT_EQ(report["running"][0]["progress"], "epoch 5/10");
  EXPECT_GE(report["running"][0]["elapsed_s"].get<int>(), 170);
  ASSERT_EQ(report["failures"].size(), 1u);
  EXPECT_EQ(report["failures"][0]["unit"], "u3");
  EXPECT_EQ(report["failures"][0]["exit_code"], 3);
  EXPECT_EQ(report["failures"][0]["error"], "boom");
  // About one hour since the job was created, at $0.036 per hour.
  const double hours_used = report["cost"]["instance_hours"].get<double>();
  EXPECT_NEAR(hours_used, 1.0, 0.05);
  EXPECT_NEAR(report["cost"]["spent_usd"].get<double>(), hours_used * 0.036, 1e-9);
  EXPECT_EQ(report["cost"]["workers"][0]["price_source"], "spot price history");
  EXPECT_TRUE(report["cost"]["to_finish_usd"].is_number());

  Ran text = Run({"progress", "--job", "j1"}, env);
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("SUCCEEDED  2      33.3%"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("i-0abc/0"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("boom"), std::string::npos) << text.out;
}

TEST_F(ControllerVerbsTest, ProgressPriceOverrideAndUnpricedOnDemandWorkers) {
  Enqueue("j1", kGrid, kTemplate);
  Succeed("j1", "u1");
  const auto now = Clock::System().Now();
  ASSERT_TRUE(ledger_->PutWorker(Worker("i-0od", "m5.large", false, now + hours(1))).ok());
  auto env = Ec2WithSpotPrices(json::array());

  Ran unpriced = Run({"progress", "--job", "j1"}, env);
  ASSERT_EQ(unpriced.code, 0) << unpriced.err;
  EXPECT_NE(unpriced.out.find("no price known for m5.large (On-Demand)"), std::string::npos)
      << unpriced.out;
  EXPECT_EQ(unpriced.out.find("to finish: about"), std::string::npos) << unpriced.out;

  Ran priced = Run({"progress", "--job", "j1", "--json", "--price", "m5.large=0.5"}, env);
  ASSERT_EQ(priced.code, 0) << priced.err;
  json report = ParseJson(priced.out);
  EXPECT_TRUE(report["cost"]["fully_priced"].get<bool>());
  EXPECT_NEAR(report["cost"]["spent_usd"].get<double>(),
              report["cost"]["instance_hours"].get<double>() * 0.5, 1e-9);
  EXPECT_EQ(report["cost"]["workers"][0]["price_source"], "--price");

  Ran bad = Run({"progress", "--job", "j1", "--price", "m5.large=cheap"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("m5.large=cheap"), std::string::npos) << bad.err;
}

TEST_F(ControllerVerbsTest, ProgressRepairsCountersThatDriftedWithoutBeingAsked) {
  Enqueue("j1", kGrid, kTemplate);
  Succeed("j1", "u1");
  // A counter gone wrong (as after a bug or a manual edit).
  WriteOptions options;
  options.values = {{":d", ddb::N(std::int64_t{4})}};
  auto corrupt = [&] {
    ASSERT_TRUE(db_->UpdateItem(table_, {{"pk", ddb::S("JOB#j1")}, {"sk", ddb::S("#JOB")}},
                                "ADD succeeded :d", options)
                    .ok());
  };
  corrupt();
  Ran repaired = Run({"progress", "--job", "j1", "--json"});
  ASSERT_EQ(repaired.code, 0) << repaired.err;
  EXPECT_EQ(ParseJson(repaired.out)["counts"]["succeeded"], 1);
  EXPECT_EQ(ParseJson(repaired.out)["counts"]["queued"], 5);
  EXPECT_EQ(ParseJson(repaired.out)["counters_repaired"]["succeeded"], 5);
  EXPECT_FALSE(ParseJson(repaired.out)["exact"].get<bool>());
  Ran text = Run({"progress", "--job", "j1"});
  EXPECT_EQ(text.out.find("repaired counters"), std::string::npos) << "repaired once only";

  corrupt();
  Ran exact = Run({"progress", "--job", "j1", "--json", "--exact"});
  ASSERT_EQ(exact.code, 0) << exact.err;
  EXPECT_EQ(ParseJson(exact.out)["counts"]["succeeded"], 1);
  EXPECT_EQ(ParseJson(exact.out)["counts"]["queued"], 5);
  EXPECT_TRUE(ParseJson(exact.out)["exact"].get<bool>());

  Ran after = Run({"progress", "--job", "j1", "--json"});
  EXPECT_EQ(ParseJson(after.out)["counts"]["succeeded"], 1);  // the counters were rewritten
}

TEST_F(ControllerVerbsTest, ProgressWithoutJobTakesTheMostRecentAndSaysWhich) {
  Enqueue("older", "id,seed,label\nx,1,a\n", kTemplate);
  Enqueue("newer", kGrid, kTemplate);
  Ran ran = Run({"progress", "--json"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ParseJson(ran.out)["job"], "newer");
  EXPECT_NE(ran.err.find("most recent of 2 jobs"), std::string::npos) << ran.err;
}

TEST_F(ControllerVerbsTest, ProgressShowsTheDeadLetterQueuesDepthWithAHintOnlyWhenItHoldsAny) {
  Enqueue("j1", "id,seed,label\nx,1,a\n", kTemplate);
  Ran empty = Run({"progress", "--job", "j1", "--json"});
  ASSERT_EQ(empty.code, 0) << empty.err;
  EXPECT_EQ(ParseJson(empty.out)["dead_letters"], 0);
  Ran quiet = Run({"progress", "--job", "j1"});
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.out.find("dead-letter"), std::string::npos) << quiet.out;

  ASSERT_FALSE(stack_info_.dlq_url.empty());
  std::vector<SendEntry> entries(2);
  entries[0].body = EncodeUnitMessage("j1", "x");
  entries[1].body = "not a unit message";
  auto sent = sqs_->SendMessageBatch(stack_info_.dlq_url, entries);
  ASSERT_TRUE(sent.ok() && sent->ok());
  // SQS's counts are approximate: wait until progress sees both.
  json doc;
  ASSERT_TRUE(WaitUntil(
      [&] {
        Ran ran = Run({"progress", "--job", "j1", "--json"});
        doc = ParseJson(ran.out);
        return ran.code == 0 && doc.is_object() && doc["dead_letters"] == 2;
      },
      std::chrono::milliseconds(20000), std::chrono::milliseconds(200)))
      << doc.dump();
  Ran text = Run({"progress", "--job", "j1"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("dead-letter queue: 2 message(s); the agents' sweeper marks their units "
                          "FAILED (poison), and `controller retry --failed` requeues them"),
            std::string::npos)
      << text.out;
}

TEST_F(ControllerVerbsTest, ProgressWatchStopsWhenTheJobIsDone) {
  Enqueue("j1", "id,seed,label\nx,1,a\n", kTemplate);
  Succeed("j1", "x");
  Ran ran = Run({"progress", "--job", "j1", "--watch"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_NE(ran.out.find("done"), std::string::npos) << ran.out;
}

TEST_F(ControllerVerbsTest, UnknownJobOrStackIsAClearError) {
  Enqueue("j1", kGrid, kTemplate);
  Ran job = Run({"progress", "--job", "nope"});
  EXPECT_EQ(job.code, 2);
  EXPECT_NE(job.err.find("no job 'nope'"), std::string::npos) << job.err;
  EXPECT_NE(job.err.find("j1"), std::string::npos) << job.err;  // names the jobs there are

  Ran no_stack = RunControllerBinary({"progress"}, {{"SPOTGRID_STACK", ""}});
  EXPECT_EQ(no_stack.code, 2);
  EXPECT_NE(no_stack.err.find("--stack"), std::string::npos) << no_stack.err;

  Ran missing = RunControllerBinary({"list", "--stack", UniqueName("none")});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("controller init"), std::string::npos) << missing.err;
}

// Why progress answers in constant time: it reads the job's counters and the small RUNNING
// and recent partitions, never the units. Counted through a proxy in front of DynamoDB, a
// 100,000-unit job costs exactly as many requests as a 3-unit one. (The 200 ms wall-clock
// bound is measured in Release by bench/progress_bench.py: a sanitizer build sharing two
// cores with the rest of the suite says nothing reliable about milliseconds.)
TEST_F(ControllerVerbsTest, ProgressOnAHundredThousandUnitJobCostsTheSameRequestsAsATinyOne) {
  std::string grid = "seed\n";
  for (int i = 1; i <= 100000; ++i) grid += std::to_string(i) + "\n";
  Enqueue("big", grid, "echo {seed}");
  Succeed("big", "17");
  StartRunning("big", "99999", "i-0abc/0");
  Fail("big", "5", 2, "x");
  Enqueue("tiny", "seed\n1\n2\n3\n", "echo {seed}");
  Succeed("tiny", "1");
  StartRunning("tiny", "2", "i-0abc/1");
  Fail("tiny", "3", 2, "x");

  auto proxy = testing::FaultProxy::Start(EmulatorValue("AWS_ENDPOINT_URL_DYNAMODB"));
  ASSERT_NE(proxy, nullptr);
  auto requests_for = [&](const std::string& job, long long total, long long queued) {
    long long before = proxy->Stats()["requests"].get<long long>();
    Ran ran = Run({"progress", "--job", job, "--json"},
                  {{"AWS_ENDPOINT_URL_DYNAMODB", proxy->url()}});
    EXPECT_EQ(ran.code, 0) << ran.err;
    json counts = ParseJson(ran.out)["counts"];
    EXPECT_EQ(counts["total"], total);
    EXPECT_EQ(counts["queued"], queued);
    EXPECT_EQ(counts["running"], 1);
    EXPECT_EQ(counts["succeeded"], 1);
    EXPECT_EQ(counts["failed"], 1);
    return proxy->Stats()["requests"].get<long long>() - before;
  };
  long long tiny = requests_for("tiny", 3, 0);
  long long big = requests_for("big", 100000, 99997);
  std::printf("progress: %lld DynamoDB requests for 3 units, %lld for 100,000 units\n", tiny,
              big);
  EXPECT_GT(tiny, 0);
  // The same requests for any grid size; a job near its end (the tiny one: nothing queued)
  // adds one Query that compares the counters with the queued units (CheckCounts).
  EXPECT_LE(big, tiny);
  EXPECT_LE(tiny, big + 1);
  EXPECT_LE(big, 12);
}

// --- list ----------------------------------------------------------------------------------

TEST_F(ControllerVerbsTest, ListFailedAsCsvIsAGridEnqueueAccepts) {
  // Values that need CSV quoting: commas, quotes, a newline.
  Enqueue("j1",
          "id,seed,label\nu1,1,plain\nu2,2,\"with, comma\"\nu3,3,\"say \"\"hi\"\"\"\n"
          "u4,4,\"two\nlines\"\n",
          kTemplate);
  Fail("j1", "u2", 1, "x");
  Fail("j1", "u3", 1, "x");
  Fail("j1", "u4", 1, "x");

  Ran csv = Run({"list", "--job", "j1", "--status", "failed", "--csv"});
  ASSERT_EQ(csv.code, 0) << csv.err;
  EXPECT_EQ(csv.out,
            "id,seed,label\nu2,2,\"with, comma\"\nu3,3,\"say \"\"hi\"\"\"\nu4,4,\"two\nlines\"\n");

  const std::string again = Write("again.csv", csv.out);
  ASSERT_EQ(Run({"enqueue", again, "--job", "j2", "--command", kTemplate}).code, 0);
  for (const char* unit : {"u2", "u3", "u4"}) {
    Ran a = Run({"show", unit, "--job", "j1", "--json"});
    Ran b = Run({"show", unit, "--job", "j2", "--json"});
    ASSERT_EQ(b.code, 0) << b.err;
    EXPECT_EQ(ParseJson(a.out)["rows"][0]["params"], ParseJson(b.out)["rows"][0]["params"]);
    EXPECT_EQ(ParseJson(a.out)["rows"][0]["command"], ParseJson(b.out)["rows"][0]["command"]);
  }
  Ran j2 = Run({"list", "--job", "j2", "--json"});
  EXPECT_EQ(ParseJson(j2.out).size(), 3u);
}

TEST_F(ControllerVerbsTest, ListCsvKeepsTheCommandColumnOfAGridThatHadOne) {
  Enqueue("j1", "command,n\n\"echo 'a b'\",1\necho c,2\n", "");
  Fail("j1", "1", 2, "x");
  Ran csv = Run({"list", "--job", "j1", "--status", "FAILED", "--csv"});
  ASSERT_EQ(csv.code, 0) << csv.err;
  EXPECT_EQ(csv.out, "command,n\necho 'a b',1\n");
}

TEST_F(ControllerVerbsTest, ListByStatusAsTableAndJson) {
  Enqueue("j1", kGrid, kTemplate);
  Succeed("j1", "u2");
  StartRunning("j1", "u5", "i-0abc/1");
  Ran all = Run({"list", "--job", "j1", "--json"});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(ParseJson(all.out).size(), 6u);
  Ran running = Run({"list", "--job", "j1", "--status", "RUNNING", "--json"});
  json units = ParseJson(running.out);
  ASSERT_EQ(units.size(), 1u);
  EXPECT_EQ(units[0]["unit"], "u5");
  EXPECT_EQ(units[0]["owner"], "i-0abc/1");
  Ran table = Run({"list", "--job", "j1", "--status", "succeeded"});
  EXPECT_NE(table.out.find("u2"), std::string::npos);
  EXPECT_EQ(table.out.find("u1"), std::string::npos) << table.out;

  Ran bad = Run({"list", "--job", "j1", "--status", "DONE"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--status 'DONE'"), std::string::npos) << bad.err;
  EXPECT_EQ(Run({"list", "--json", "--csv"}).code, 2);
}

// --- show ----------------------------------------------------------------------------------

TEST_F(ControllerVerbsTest, ShowListsEveryAttemptWithItsS3Locations) {
  Enqueue("j1", kGrid, kTemplate);
  SetUnit("j1", "u2", UnitState::kFailed,
          {Attempt(1, "i-01/0", std::nullopt, "interrupted"),
           Attempt(2, "i-02/3", 137, "failed", "killed")});
  Ran ran = Run({"show", "u2", "--job", "j1", "--json"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  json unit = ParseJson(ran.out);
  EXPECT_EQ(unit["state"], "FAILED");
  ASSERT_EQ(unit["attempts"].size(), 2u);
  EXPECT_EQ(unit["attempts"][0]["reason"], "interrupted");
  EXPECT_EQ(unit["attempts"][1]["worker"], "i-02/3");
  EXPECT_EQ(unit["attempts"][1]["exit_code"], 137);
  EXPECT_EQ(unit["attempts"][1]["error"], "killed");
  const std::string base = "s3://" + bucket_ + "/" + UnitKeyPrefix(stack_info_, "j1", "u2");
  EXPECT_EQ(unit["attempts"][1]["stdout"], base + "logs/2/stdout.log");
  EXPECT_EQ(unit["output"], base + "output/");
  EXPECT_EQ(unit["checkpoint"], base + "checkpoint/");
  EXPECT_EQ(unit["rows"][0]["params"]["label"], "b");

  Ran text = Run({"show", "u2", "--job", "j1"});
  ASSERT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("interrupted"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(base + "logs/1/stderr.log"), std::string::npos) << text.out;

  Ran unknown = Run({"show", "u9", "--job", "j1"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("no unit 'u9'"), std::string::npos) << unknown.err;
  EXPECT_EQ(Run({"show", "--job", "j1"}).code, 2);  // UNIT missing
}

// --- logs ----------------------------------------------------------------------------------

TEST_F(ControllerVerbsTest, LogsPrintsTheAttemptsStdoutAndStderrSeparately) {
  Enqueue("j1", kGrid, kTemplate);
  SetUnit(
      "j1", "u1", UnitState::kSucceeded,
      {Attempt(1, "i-01/0", std::nullopt, "interrupted"), Attempt(2, "i-02/0", 0, "succeeded")});
  PutObject(LogsPrefix(stack_info_, "j1", "u1", 1) + "stdout.log", "first out\n");
  PutObject(LogsPrefix(stack_info_, "j1", "u1", 2) + "stdout.log", "second out\n");
  PutObject(LogsPrefix(stack_info_, "j1", "u1", 2) + "stderr.log", "second err\n");

  Ran latest = Run({"logs", "u1", "--job", "j1"});
  ASSERT_EQ(latest.code, 0) << latest.err;
  EXPECT_EQ(latest.out, "second out\n");
  EXPECT_EQ(latest.err, "second err\n");
  Ran first = Run({"logs", "u1", "--job", "j1", "--attempt", "1"});
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(first.out, "first out\n");
  EXPECT_NE(first.err.find("no stderr.log for attempt 1"), std::string::npos) << first.err;

  EXPECT_EQ(Run({"logs", "u1", "--job", "j1", "--attempt", "3"}).code, 2);
  Ran not_started = Run({"logs", "u2", "--job", "j1"});
  EXPECT_EQ(not_started.code, 2);
  EXPECT_NE(not_started.err.find("has not started"), std::string::npos) << not_started.err;
}

TEST_F(ControllerVerbsTest, LogsFollowPrintsNewBytesUntilTheUnitLeavesRunning) {
  Enqueue("j1", kGrid, kTemplate);
  StartRunning("j1", "u3", "i-0abc/0");
  const std::string key = LogsPrefix(stack_info_, "j1", "u3", 1) + "stdout.log";
  PutObject(key, "line 1\n");

  ChildProcessOptions options;
  options.argv = {
      testing::kControllerBinary, "logs", "u3", "--job", "j1", "--follow", "--stack", stack_};
  options.log_path = dir_ + "/follow.log";
  auto child = ChildProcess::Start(options);
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  auto& process = **child;
  ASSERT_TRUE(WaitUntil([&] { return process.ReadLog() == "line 1\n"; }, seconds(20)))
      << process.ReadLog();
  // The agent uploads the growing log again; only the new bytes must appear.
  PutObject(key, "line 1\nline 2\n");
  ASSERT_TRUE(WaitUntil([&] { return process.ReadLog() == "line 1\nline 2\n"; }, seconds(20)))
      << process.ReadLog();
  EXPECT_TRUE(process.Running());
  // Final upload, then the unit leaves RUNNING: the last bytes are printed and it exits.
  PutObject(key, "line 1\nline 2\nline 3\n");
  SetUnit("j1", "u3", UnitState::kSucceeded, {Attempt(1, "i-0abc/0", 0, "succeeded")});
  ASSERT_TRUE(process.Wait(std::chrono::seconds(20))) << process.ReadLog();
  EXPECT_EQ(process.ExitCode(), 0);
  EXPECT_EQ(process.ReadLog(), "line 1\nline 2\nline 3\n");
}

// --- results -------------------------------------------------------------------------------

TEST_F(ControllerVerbsTest, ResultsDownloadsSucceededOutputsSkipsIdenticalAndMerges) {
  Enqueue("j1", kGrid, kTemplate);
  Succeed("j1", "u1");
  Succeed("j1", "u2");
  Fail("j1", "u3", 1, "x");
  PutObject(OutputPrefix(stack_info_, "j1", "u1") + "result.csv", "loss,acc\n0.5,0.9\n");
  PutObject(OutputPrefix(stack_info_, "j1", "u1") + "plots/curve.txt", "u1 curve");
  PutObject(OutputPrefix(stack_info_, "j1", "u2") + "result.csv",
            "loss,acc\n0.4,0.8\n0.3,\"x,y\"\n");
  PutObject(OutputPrefix(stack_info_, "j1", "u3") + "result.csv", "loss,acc\n9,9\n");

  const std::string out = dir_ + "/out";
  const std::string merged = dir_ + "/merged.csv";
  Ran first = Run({"results", "--out", out, "--job", "j1", "--merge", merged, "--json"});
  ASSERT_EQ(first.code, 0) << first.err;
  json summary = ParseJson(first.out);
  EXPECT_EQ(summary["units"], 2);
  EXPECT_EQ(summary["downloaded"], 3);
  EXPECT_EQ(summary["skipped"], 0);
  EXPECT_EQ(testing::ReadWholeFile(out + "/u1/plots/curve.txt"), "u1 curve");
  EXPECT_FALSE(fs::exists(out + "/u3"));  // failed units are not downloaded
  EXPECT_EQ(testing::ReadWholeFile(merged),
            "unit,id,seed,label,loss,acc\n"
            "u1,u1,1,a,0.5,0.9\n"
            "u2,u2,2,b,0.4,0.8\n"
            "u2,u2,2,b,0.3,\"x,y\"\n");

  Ran second = Run({"results", "--out", out, "--job", "j1", "--json"});
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(ParseJson(second.out)["downloaded"], 0);
  EXPECT_EQ(ParseJson(second.out)["skipped"], 3);

  // Same size, different bytes: the MD5 tells them apart.
  std::ofstream(out + "/u1/plots/curve.txt", std::ios::binary | std::ios::trunc) << "XX curve";
  Ran third = Run({"results", "--out", out, "--job", "j1", "--json"});
  ASSERT_EQ(third.code, 0) << third.err;
  EXPECT_EQ(ParseJson(third.out)["downloaded"], 1);
  EXPECT_EQ(testing::ReadWholeFile(out + "/u1/plots/curve.txt"), "u1 curve");
}

TEST_F(ControllerVerbsTest, ResultsMergeRefusesMismatchedHeadersNamingTheUnit) {
  Enqueue("j1", kGrid, kTemplate);
  Succeed("j1", "u1");
  Succeed("j1", "u2");
  PutObject(OutputPrefix(stack_info_, "j1", "u1") + "metrics.csv", "loss\n1\n");
  PutObject(OutputPrefix(stack_info_, "j1", "u2") + "metrics.csv", "acc\n2\n");
  const std::string merged = dir_ + "/merged.csv";
  Ran ran = Run({"results", "--out", dir_ + "/out", "--job", "j1", "--merge", merged,
                 "--result-file", "metrics.csv"});
  EXPECT_NE(ran.code, 0);
  EXPECT_NE(ran.err.find("unit u2"), std::string::npos) << ran.err;
  EXPECT_FALSE(fs::exists(merged));
}

TEST_F(ControllerVerbsTest, ResultsNeverWritesThroughASymlinkOutOfTheDirectory) {
  Enqueue("j1", kGrid, kTemplate);
  Succeed("j1", "u1");
  PutObject(OutputPrefix(stack_info_, "j1", "u1") + "result.csv", "a\n1\n");
  const std::string out = dir_ + "/out";
  const std::string elsewhere = dir_ + "/elsewhere";
  fs::create_directories(out);
  fs::create_directories(elsewhere);
  fs::create_directory_symlink(elsewhere, out + "/u1");
  Ran ran = Run({"results", "--out", out, "--job", "j1"});
  EXPECT_EQ(ran.code, 2) << ran.out;
  EXPECT_NE(ran.err.find("symbolic link"), std::string::npos) << ran.err;
  EXPECT_TRUE(fs::is_empty(elsewhere));
  EXPECT_EQ(Run({"results", "--job", "j1"}).code, 2);  // --out is required
}

// --- retry and cancel ----------------------------------------------------------------------

TEST_F(ControllerVerbsTest, RetryFailedRequeuesAndSendsOneMessageEach) {
  Enqueue("j1", kGrid, kTemplate);
  Fail("j1", "u2", 1, "x");
  Fail("j1", "u5", 1, "x");
  Succeed("j1", "u6");
  ASSERT_TRUE(WaitUntil([&] { return CliMessageCount(queue_url_) == 6; }, seconds(30),
                        std::chrono::milliseconds(300)));

  Ran ran = Run({"retry", "--job", "j1", "--failed"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_NE(ran.out.find("requeued 2 unit(s)"), std::string::npos) << ran.out;
  for (const char* unit : {"u2", "u5"}) {
    auto record = ledger_->GetUnit("j1", unit);
    ASSERT_TRUE(record.ok() && record->has_value());
    EXPECT_EQ((*record)->state, UnitState::kQueued) << unit;
  }
  EXPECT_TRUE(WaitUntil([&] { return CliMessageCount(queue_url_) == 8; }, seconds(30),
                        std::chrono::milliseconds(300)));
  Ran progress = Run({"progress", "--job", "j1", "--json"});
  EXPECT_EQ(ParseJson(progress.out)["counts"]["failed"], 0);
  EXPECT_EQ(ParseJson(progress.out)["counts"]["queued"], 5);

  Ran none = Run({"retry", "--job", "j1", "--failed"});
  EXPECT_EQ(none.code, 0);
  EXPECT_NE(none.out.find("no failed units"), std::string::npos);
  Ran succeeded = Run({"retry", "--job", "j1", "--unit", "u6"});
  EXPECT_EQ(succeeded.code, 2);
  EXPECT_NE(succeeded.err.find("SUCCEEDED"), std::string::npos) << succeeded.err;
  EXPECT_EQ(Run({"retry", "--job", "j1"}).code, 2);
  EXPECT_EQ(Run({"retry", "--job", "j1", "--failed", "--unit", "u2"}).code, 2);
  EXPECT_EQ(Run({"retry", "--job", "j1", "--unit", "nope"}).code, 2);
}

TEST_F(ControllerVerbsTest, CancelCancelsQueuedUnitsAndLeavesRunningOnesToTheirAgent) {
  Enqueue("j1", kGrid, kTemplate);
  StartRunning("j1", "u1", "i-0abc/0");
  Succeed("j1", "u2");
  Ran ran = Run({"cancel", "--job", "j1"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_NE(ran.out.find("cancelled 4 queued unit(s) of job j1"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("1 running unit(s)"), std::string::npos) << ran.out;
  Ran progress = Run({"progress", "--job", "j1", "--json"});
  json counts = ParseJson(progress.out)["counts"];
  EXPECT_EQ(counts["cancelled"], 4);
  EXPECT_EQ(counts["queued"], 0);
  EXPECT_EQ(counts["running"], 1);

  // A cancelled unit comes back with retry --unit.
  ASSERT_EQ(Run({"retry", "--job", "j1", "--unit", "u3"}).code, 0);
  EXPECT_EQ(ParseJson(Run({"progress", "--job", "j1", "--json"}).out)["counts"]["queued"], 1);

  Ran no_job = Run({"cancel"});
  EXPECT_EQ(no_job.code, 2);
  EXPECT_NE(no_job.err.find("--job"), std::string::npos);
  EXPECT_EQ(Run({"cancel", "--job", "nope"}).code, 2);
}

// --- workers and userdata ------------------------------------------------------------------

TEST_F(ControllerVerbsTest, WorkersShowsLiveAgentsAndMarksStaleOnes) {
  const auto now = Clock::System().Now();
  WorkerRecord live = Worker("i-0live", "c5.large", true, now - seconds(5));
  live.units_in_hand = {"j1/u1", "j1/u2"};
  WorkerRecord stale = Worker("i-0stale", "m5.large", false, now - minutes(10));
  stale.idle_since = now - minutes(12);
  WorkerRecord ended = Worker("i-0ended", "c5.large", true, now - hours(1));
  ended.state = WorkerState::kEnded;
  ended.ended_at = now - hours(1);
  for (const WorkerRecord& w : {live, stale, ended}) ASSERT_TRUE(ledger_->PutWorker(w).ok());

  Ran ran = Run({"workers", "--json"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  json workers = ParseJson(ran.out);
  ASSERT_EQ(workers.size(), 2u) << ran.out;  // the ended one only with --all
  EXPECT_EQ(workers[0]["instance"], "i-0live");
  EXPECT_EQ(workers[0]["market"], "spot");
  EXPECT_EQ(workers[0]["units"], json({"j1/u1", "j1/u2"}));
  EXPECT_FALSE(workers[0]["stale"].get<bool>());
  EXPECT_EQ(workers[1]["instance"], "i-0stale");
  EXPECT_EQ(workers[1]["market"], "on-demand");
  EXPECT_TRUE(workers[1]["stale"].get<bool>());
  EXPECT_FALSE(workers[1]["idle_since"].is_null());

  Ran text = Run({"workers"});
  EXPECT_NE(text.out.find("STALE"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("On-Demand"), std::string::npos) << text.out;
  EXPECT_EQ(ParseJson(Run({"workers", "--json", "--all"}).out).size(), 3u);
}

TEST_F(ControllerVerbsTest, WorkersJudgeStalenessByEachWorkersOwnHeartbeatInterval) {
  const auto now = Clock::System().Now();
  // Three missed heartbeats make a worker stale, whatever its interval.
  WorkerRecord fast = Worker("i-0fast", "c5.large", true, now - seconds(20));
  fast.heartbeat_s = 5;
  WorkerRecord slow = Worker("i-0slow", "c5.large", true, now - minutes(10));
  slow.heartbeat_s = 300;
  for (const WorkerRecord& w : {fast, slow}) ASSERT_TRUE(ledger_->PutWorker(w).ok());

  Ran ran = Run({"workers", "--json"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  json workers = ParseJson(ran.out);
  ASSERT_EQ(workers.size(), 2u) << ran.out;
  EXPECT_EQ(workers[0]["instance"], "i-0fast");
  EXPECT_TRUE(workers[0]["stale"].get<bool>());
  EXPECT_EQ(workers[0]["heartbeat_s"], 5);
  EXPECT_EQ(workers[1]["instance"], "i-0slow");
  EXPECT_FALSE(workers[1]["stale"].get<bool>());
}

TEST_F(ControllerVerbsTest, UserdataIsShellcheckCleanAndConfiguresTheAgent) {
  Ran ran = Run({"userdata", "--slots", "3"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out.rfind("#!/bin/bash\n", 0), 0u);
  EXPECT_NE(ran.out.find("stack='" + stack_ + "'"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("slots='3'"), std::string::npos);
  EXPECT_NE(ran.out.find("region='us-east-1'"), std::string::npos);
  EXPECT_NE(ran.out.find("SPOTGRID_STACK=${stack}"), std::string::npos);
  EXPECT_NE(ran.out.find("/etc/spotgrid/agent.env"), std::string::npos);
  EXPECT_NE(ran.out.find("systemctl enable --now spotgrid-agent.service"), std::string::npos);
  EXPECT_NE(ran.out.find("network-online.target"), std::string::npos);
  const std::string script = Write("userdata.sh", ran.out);
  Ran check = RunProgram({"/usr/bin/shellcheck", script});
  EXPECT_EQ(check.code, 0) << check.out << check.err;

  Ran defaults = Run({"userdata"});
  ASSERT_EQ(defaults.code, 0);
  EXPECT_NE(defaults.out.find("slots=\"$(nproc)\""), std::string::npos);
  Ran check_defaults = RunProgram({"/usr/bin/shellcheck", Write("defaults.sh", defaults.out)});
  EXPECT_EQ(check_defaults.code, 0) << check_defaults.out;

  EXPECT_EQ(Run({"userdata", "--slots", "0"}).code, 2);
}

}  // namespace
}  // namespace spotgrid
