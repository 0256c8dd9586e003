// Pricing a job's fleet: --price overrides, Spot prices from DescribeSpotPriceHistory, and
// the cost of workers' reported instance time, never priced with a guess.
#include "cost.h"

#include <gtest/gtest.h>

#include "spotgrid/services/ec2_client.h"
#include "support/fake_clock.h"

namespace spotgrid {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

class FakeEc2 final : public Ec2 {
 public:
  Result<std::vector<InstanceStateChange>> TerminateInstances(
      const std::vector<std::string>&) override {
    return std::vector<InstanceStateChange>{};
  }
  Status CreateTags(const std::vector<std::string>&, const std::vector<Ec2Tag>&) override {
    return Status::Ok();
  }
  Result<std::vector<SpotPrice>> DescribeSpotPriceHistory(const SpotPriceQuery& query) override {
    queries.push_back(query);
    if (fail)
      return Error{ErrorCategory::kClient,
                   "EC2",
                   "DescribeSpotPriceHistory",
                   403,
                   "UnauthorizedOperation",
                   "no",
                   "",
                   ""};
    return prices;
  }
  std::vector<SpotPriceQuery> queries;
  std::vector<SpotPrice> prices;
  bool fail = false;
};

SpotPrice MakePrice(std::string type, std::string zone, double price, Clock::WallTime at) {
  SpotPrice p;
  p.instance_type = std::move(type);
  p.availability_zone = std::move(zone);
  p.product_description = "Linux/UNIX";
  p.price = price;
  p.timestamp = at;
  return p;
}

WorkerRecord MakeWorker(std::string id, std::string type, bool spot, std::string zone,
                        Clock::WallTime started, Clock::WallTime heartbeat) {
  WorkerRecord w;
  w.instance_id = std::move(id);
  w.instance_type = std::move(type);
  w.spot = spot;
  w.availability_zone = std::move(zone);
  w.started_at = started;
  w.last_heartbeat = heartbeat;
  w.state = WorkerState::kRunning;
  return w;
}

TEST(PriceOverrides, ParsesTypeEqualsUsdPerHour) {
  auto table = ParsePriceOverrides({"c5.large=0.034", "m5.xlarge=0.192"});
  ASSERT_TRUE(table.ok()) << table.error().ToString();
  auto price = table->Lookup("m5.xlarge", "us-east-1a", false);
  ASSERT_TRUE(price.has_value());
  EXPECT_DOUBLE_EQ(price->usd_per_hour, 0.192);
  EXPECT_EQ(price->source, "--price");
}

TEST(PriceOverrides, RejectsMalformedValuesNamingThem) {
  for (const char* bad : {"c5.large", "=0.1", "c5.large=", "c5.large=cheap", "c5.large=-1",
                          "c5.large=0.1x", "c5.large=nan"}) {
    auto table = ParsePriceOverrides({bad});
    ASSERT_FALSE(table.ok()) << bad;
    EXPECT_EQ(table.error().category, ErrorCategory::kInvalidInput);
    EXPECT_NE(table.error().message.find(bad), std::string::npos) << table.error().message;
  }
}

TEST(PriceTable, OverrideWinsOverSpotPrice) {
  PriceTable table;
  table.AddSpotPrice("c5.large", "us-east-1a", 0.03, Clock::WallTime(hours(1)));
  table.SetOverride("c5.large", 0.05);
  EXPECT_DOUBLE_EQ(table.Lookup("c5.large", "us-east-1a", true)->usd_per_hour, 0.05);
}

TEST(PriceTable, SpotPriceOfTheWorkersZoneElseLatestOfAnyZone) {
  PriceTable table;
  table.AddSpotPrice("c5.large", "us-east-1a", 0.031, Clock::WallTime(hours(2)));
  table.AddSpotPrice("c5.large", "us-east-1b", 0.040, Clock::WallTime(hours(3)));
  table.AddSpotPrice("c5.large", "us-east-1c", 0.020, Clock::WallTime(hours(1)));
  EXPECT_DOUBLE_EQ(table.Lookup("c5.large", "us-east-1a", true)->usd_per_hour, 0.031);
  EXPECT_DOUBLE_EQ(table.Lookup("c5.large", "", true)->usd_per_hour, 0.040);
  EXPECT_DOUBLE_EQ(table.Lookup("c5.large", "us-east-1f", true)->usd_per_hour, 0.040);
  EXPECT_EQ(table.Lookup("c5.large", "us-east-1a", true)->source, "spot price history");
}

TEST(PriceTable, KeepsTheNewestObservationPerZone) {
  PriceTable table;
  table.AddSpotPrice("c5.large", "us-east-1a", 0.050, Clock::WallTime(hours(5)));
  table.AddSpotPrice("c5.large", "us-east-1a", 0.010, Clock::WallTime(hours(1)));
  EXPECT_DOUBLE_EQ(table.Lookup("c5.large", "us-east-1a", true)->usd_per_hour, 0.050);
}

TEST(PriceTable, OnDemandWorkersHaveNoPriceWithoutOverride) {
  PriceTable table;
  table.AddSpotPrice("c5.large", "us-east-1a", 0.03, Clock::WallTime(hours(1)));
  EXPECT_FALSE(table.Lookup("c5.large", "us-east-1a", false).has_value());
  EXPECT_FALSE(table.Lookup("m5.large", "us-east-1a", true).has_value());
}

TEST(FetchSpotPrices, AsksOnlyForTypesWithoutOverrideAndLinuxPrices) {
  FakeEc2 ec2;
  ec2.prices = {MakePrice("c5.large", "us-east-1a", 0.034, Clock::WallTime(hours(1)))};
  auto table = ParsePriceOverrides({"m5.large=0.1"});
  ASSERT_TRUE(table.ok());
  ASSERT_TRUE(FetchSpotPrices(ec2, {"c5.large", "m5.large"}, *table).ok());
  ASSERT_EQ(ec2.queries.size(), 1u);
  EXPECT_EQ(ec2.queries[0].instance_types, std::vector<std::string>{"c5.large"});
  EXPECT_EQ(ec2.queries[0].product_descriptions, std::vector<std::string>{"Linux/UNIX"});
  EXPECT_DOUBLE_EQ(table->Lookup("c5.large", "us-east-1a", true)->usd_per_hour, 0.034);
}

TEST(FetchSpotPrices, NoCallWhenEveryTypeIsOverridden) {
  FakeEc2 ec2;
  auto table = ParsePriceOverrides({"c5.large=0.1"});
  ASSERT_TRUE(table.ok());
  ASSERT_TRUE(FetchSpotPrices(ec2, {"c5.large"}, *table).ok());
  EXPECT_TRUE(ec2.queries.empty());
}

TEST(FetchSpotPrices, ReportsTheEc2Error) {
  FakeEc2 ec2;
  ec2.fail = true;
  PriceTable table;
  Status status = FetchSpotPrices(ec2, {"c5.large"}, table);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, "UnauthorizedOperation");
}

TEST(ComputeCost, ChargesWorkerTimeSinceTheJobWasCreated) {
  testing::FakeClock clock;
  const auto t0 = clock.Now();
  PriceTable table;
  table.AddSpotPrice("c5.large", "us-east-1a", 0.036, t0);
  // Started an hour before the job: only the two hours since the job count.
  std::vector<WorkerRecord> workers = {
      MakeWorker("i-1", "c5.large", true, "us-east-1a", t0 - hours(1), t0 + hours(2))};
  CostSummary cost = ComputeCost(workers, t0, table, /*finished=*/40, /*remaining=*/60);
  EXPECT_DOUBLE_EQ(cost.instance_seconds, 7200);
  EXPECT_NEAR(cost.spent_usd, 0.072, 1e-12);
  ASSERT_TRUE(cost.to_finish_usd.has_value());
  EXPECT_NEAR(*cost.to_finish_usd, 0.072 / 40 * 60, 1e-12);
  EXPECT_TRUE(cost.fully_priced());
}

TEST(ComputeCost, IgnoresWorkersThatEndedBeforeTheJob) {
  testing::FakeClock clock;
  const auto t0 = clock.Now();
  PriceTable table;
  table.SetOverride("c5.large", 1.0);
  std::vector<WorkerRecord> workers = {
      MakeWorker("i-old", "c5.large", true, "", t0 - hours(3), t0 - hours(2))};
  CostSummary cost = ComputeCost(workers, t0, table, 1, 1);
  EXPECT_EQ(cost.instance_seconds, 0);
  EXPECT_TRUE(cost.workers.empty());
}

TEST(ComputeCost, UnpricedWorkersAreNamedAndNoEstimateIsMade) {
  testing::FakeClock clock;
  const auto t0 = clock.Now();
  PriceTable table;
  table.AddSpotPrice("c5.large", "us-east-1a", 0.036, t0);
  std::vector<WorkerRecord> workers = {
      MakeWorker("i-1", "c5.large", true, "us-east-1a", t0, t0 + hours(1)),
      MakeWorker("i-2", "m5.large", false, "us-east-1a", t0, t0 + hours(1))};
  CostSummary cost = ComputeCost(workers, t0, table, 10, 10);
  EXPECT_DOUBLE_EQ(cost.instance_seconds, 7200);
  EXPECT_DOUBLE_EQ(cost.priced_seconds, 3600);
  EXPECT_NEAR(cost.spent_usd, 0.036, 1e-12);
  EXPECT_EQ(cost.unpriced_types, std::vector<std::string>{"m5.large (On-Demand)"});
  EXPECT_FALSE(cost.to_finish_usd.has_value());
}

TEST(ComputeCost, NoEstimateBeforeAnyUnitFinished) {
  testing::FakeClock clock;
  const auto t0 = clock.Now();
  PriceTable table;
  table.SetOverride("c5.large", 0.1);
  std::vector<WorkerRecord> workers = {
      MakeWorker("i-1", "c5.large", true, "", t0, t0 + minutes(30))};
  CostSummary cost = ComputeCost(workers, t0, table, 0, 100);
  EXPECT_NEAR(cost.spent_usd, 0.05, 1e-12);
  EXPECT_FALSE(cost.to_finish_usd.has_value());
}

}  // namespace
}  // namespace spotgrid
