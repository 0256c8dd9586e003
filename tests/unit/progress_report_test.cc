// `controller progress` arithmetic on a fake clock: rate over the recent window, ETA, the
// running and failed units' views, doneness, and the text and JSON renderings.
#include "progress_report.h"

#include <gtest/gtest.h>

#include "support/fake_clock.h"

namespace spotgrid {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

class ProgressReportTest : public ::testing::Test {
 protected:
  ProgressInputs Inputs(Clock::WallTime created, JobCounts counts) {
    ProgressInputs in;
    in.job.spec.id = "sweep";
    in.job.spec.created_at = created;
    in.job.enqueue_state = EnqueueState::kDone;
    in.counts = counts;
    return in;
  }
  static JobCounts Counts(std::int64_t queued, std::int64_t running, std::int64_t succeeded,
                          std::int64_t failed = 0, std::int64_t cancelled = 0) {
    JobCounts c;
    c.queued = queued;
    c.running = running;
    c.succeeded = succeeded;
    c.failed = failed;
    c.cancelled = cancelled;
    c.total = queued + running + succeeded + failed + cancelled;
    return c;
  }
  testing::FakeClock clock_;
};

TEST_F(ProgressReportTest, RateIsSuccessesOverTheLastTenMinutesAndEtaDividesWhatIsLeft) {
  const auto created = clock_.Now();
  clock_.Advance(hours(1));
  ProgressInputs in = Inputs(created, Counts(80, 10, 110));
  in.succeeded_in_window = 30;  // 3 per minute
  ProgressReport report = BuildProgressReport(in, clock_.Now());
  EXPECT_EQ(report.window, seconds(600));
  EXPECT_DOUBLE_EQ(report.units_per_minute, 3.0);
  ASSERT_TRUE(report.eta.has_value());
  EXPECT_EQ(*report.eta, minutes(30));  // 90 left at 3/min
  EXPECT_FALSE(report.done);
}

TEST_F(ProgressReportTest, YoungJobMeasuresItsRateOverItsOwnAge) {
  const auto created = clock_.Now();
  clock_.Advance(minutes(2));
  ProgressInputs in = Inputs(created, Counts(10, 0, 10));
  in.succeeded_in_window = 10;
  ProgressReport report = BuildProgressReport(in, clock_.Now());
  EXPECT_EQ(report.window, minutes(2));
  EXPECT_DOUBLE_EQ(report.units_per_minute, 5.0);
  EXPECT_EQ(*report.eta, minutes(2));
}

TEST_F(ProgressReportTest, EtaUnknownWhenNothingSucceededInTheWindow) {
  const auto created = clock_.Now();
  clock_.Advance(hours(3));
  ProgressInputs in = Inputs(created, Counts(5, 2, 3));
  ProgressReport report = BuildProgressReport(in, clock_.Now());
  EXPECT_EQ(report.units_per_minute, 0);
  EXPECT_FALSE(report.eta.has_value());
  EXPECT_NE(RenderProgressText(report).find("ETA unknown"), std::string::npos);
}

TEST_F(ProgressReportTest, DoneWhenNothingQueuedOrRunning) {
  const auto created = clock_.Now();
  clock_.Advance(hours(1));
  ProgressReport report = BuildProgressReport(Inputs(created, Counts(0, 0, 7, 2, 1)), clock_.Now());
  EXPECT_TRUE(report.done);
  EXPECT_EQ(*report.eta, seconds(0));
  EXPECT_NE(RenderProgressText(report).find(", done"), std::string::npos);
}

TEST_F(ProgressReportTest, NotDoneWhileTheEnqueueIsUnfinished) {
  const auto created = clock_.Now();
  ProgressInputs in = Inputs(created, Counts(0, 0, 7));
  in.job.enqueue_state = EnqueueState::kWriting;
  ProgressReport report = BuildProgressReport(in, clock_.Now());
  EXPECT_FALSE(report.done);
  EXPECT_NE(RenderProgressText(report).find("enqueue not finished"), std::string::npos);
}

TEST_F(ProgressReportTest, RunningUnitsShowWorkerElapsedHeartbeatAndProgress) {
  const auto created = clock_.Now();
  UnitRecord unit;
  unit.spec.id = "row-7";
  unit.owner = "i-0abc/2";
  unit.attempt = 2;
  unit.started_at = clock_.Now() + minutes(5);
  unit.heartbeat_at = clock_.Now() + minutes(9);
  unit.progress = "epoch 3/10";
  clock_.Advance(minutes(10));
  ProgressInputs in = Inputs(created, Counts(1, 1, 0));
  in.running = {unit};
  ProgressReport report = BuildProgressReport(in, clock_.Now());
  ASSERT_EQ(report.running.size(), 1u);
  EXPECT_EQ(report.running[0].unit, "row-7");
  EXPECT_EQ(report.running[0].owner, "i-0abc/2");
  EXPECT_EQ(report.running[0].elapsed, minutes(5));
  EXPECT_EQ(*report.running[0].heartbeat_age, minutes(1));
  std::string text = RenderProgressText(report);
  EXPECT_NE(text.find("i-0abc/2"), std::string::npos);
  EXPECT_NE(text.find("epoch 3/10"), std::string::npos);
  EXPECT_NE(text.find("5m 00s"), std::string::npos);
}

TEST_F(ProgressReportTest, FailuresCarryExitCodesAndErrors) {
  const auto created = clock_.Now();
  UnitRecord unit;
  unit.spec.id = "7";
  unit.state = UnitState::kFailed;
  unit.attempt = 3;
  unit.exit_code = 137;
  unit.error = "killed\nby OOM";
  unit.finished_at = clock_.Now() + seconds(30);
  clock_.Advance(minutes(1));
  ProgressInputs in = Inputs(created, Counts(0, 0, 0, 1));
  in.failures = {unit};
  ProgressReport report = BuildProgressReport(in, clock_.Now());
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(*report.failures[0].exit_code, 137);
  EXPECT_EQ(report.failures[0].age, seconds(30));
  std::string text = RenderProgressText(report);
  EXPECT_NE(text.find("137"), std::string::npos);
  EXPECT_NE(text.find("killed by OOM"), std::string::npos);  // one line per failure
  nlohmann::json j = ProgressReportJson(report);
  EXPECT_EQ(j["failures"][0]["exit_code"], 137);
}

TEST_F(ProgressReportTest, CountsAndPercentagesInTextAndJson) {
  const auto created = clock_.Now();
  ProgressReport report =
      BuildProgressReport(Inputs(created, Counts(50, 25, 20, 4, 1)), clock_.Now());
  std::string text = RenderProgressText(report);
  EXPECT_NE(text.find("QUEUED     50     50.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("SUCCEEDED  20     20.0%"), std::string::npos) << text;
  nlohmann::json j = ProgressReportJson(report);
  EXPECT_EQ(j["counts"]["total"], 100);
  EXPECT_EQ(j["counts"]["running"], 25);
  EXPECT_EQ(j["job"], "sweep");
  EXPECT_TRUE(j["eta_s"].is_null());
}

TEST_F(ProgressReportTest, CostNamesUnpricedTypesInsteadOfGuessing) {
  const auto created = clock_.Now();
  WorkerRecord worker;
  worker.instance_id = "i-1";
  worker.instance_type = "m5.large";
  worker.spot = false;
  worker.started_at = created;
  worker.last_heartbeat = created + hours(2);
  clock_.Advance(hours(2));
  ProgressInputs in = Inputs(created, Counts(5, 0, 5));
  in.workers = {worker};
  ProgressReport report = BuildProgressReport(in, clock_.Now());
  std::string text = RenderProgressText(report);
  EXPECT_NE(text.find("instance-hours: 2.00"), std::string::npos) << text;
  EXPECT_NE(text.find("no price known for m5.large (On-Demand)"), std::string::npos) << text;
  nlohmann::json j = ProgressReportJson(report);
  EXPECT_FALSE(j["cost"]["fully_priced"].get<bool>());
  EXPECT_TRUE(j["cost"]["to_finish_usd"].is_null());
}

TEST_F(ProgressReportTest, CostAndEstimateWithKnownPrice) {
  const auto created = clock_.Now();
  WorkerRecord worker;
  worker.instance_id = "i-1";
  worker.instance_type = "c5.large";
  worker.spot = true;
  worker.started_at = created;
  worker.last_heartbeat = created + hours(1);
  clock_.Advance(hours(1));
  ProgressInputs in = Inputs(created, Counts(50, 0, 50));
  in.workers = {worker};
  in.prices.SetOverride("c5.large", 0.5);
  ProgressReport report = BuildProgressReport(in, clock_.Now());
  EXPECT_NEAR(report.cost.spent_usd, 0.5, 1e-12);
  EXPECT_NEAR(*report.cost.to_finish_usd, 0.5, 1e-12);
  std::string text = RenderProgressText(report);
  EXPECT_NE(text.find("spent: $0.50; to finish: about $0.50"), std::string::npos) << text;
}

}  // namespace
}  // namespace spotgrid
