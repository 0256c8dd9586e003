// Ec2Client and AutoScalingClient against tests/harness/aws_fake.py: every call reaches the
// fake with the parameters AWS expects (checked through /_fake/calls), responses parse, state
// changes as AWS would change it, and injected errors surface with code, status and request id.
//
// Each test uses its own tenant (a path prefix on the shared fake), so tests run in parallel.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/http/curl_transport.h"
#include "spotgrid/services/autoscaling_client.h"
#include "spotgrid/services/ec2_client.h"
#include "support/client_fixture.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::UseEmulators;

constexpr char kInstanceA[] = "i-0123456789abcdef0";
constexpr char kInstanceB[] = "i-0fedcba9876543210";
constexpr char kInstanceC[] = "i-0aaaabbbbccccdddd";

class Ec2AutoScalingClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    tenant_url_ = testing::NewFakeTenant("SPOTGRID_FAKE_AWS_URL").url;
    ASSERT_FALSE(tenant_url_.empty());
    env_ = testing::EmulatorEnvironment();
    env_.Set("AWS_ENDPOINT_URL_EC2", tenant_url_);
    env_.Set("AWS_ENDPOINT_URL_AUTO_SCALING", tenant_url_);
    auto context = testing::CreateEmulatorContext(env_);
    ASSERT_TRUE(context.ok()) << context.error().ToString();
    auto ec2 = Ec2Client::Create(*context);
    ASSERT_TRUE(ec2.ok()) << ec2.error().ToString();
    ec2_ = *ec2;
    auto autoscaling = AutoScalingClient::Create(*context);
    ASSERT_TRUE(autoscaling.ok()) << autoscaling.error().ToString();
    autoscaling_ = *autoscaling;
  }

  // A control request to this test's tenant of the fake; fails the test on a non-200.
  json Control(const std::string& method, const std::string& path, const json& body = nullptr) {
    HttpResponse response =
        body.is_null() ? testing::ControlFake(*control_transport_, method, tenant_url_, path)
                       : testing::ControlFake(*control_transport_, method, tenant_url_, path,
                                              body.dump(), "application/json");
    if (response.status == 0) return nullptr;  // the fake did not answer (already a failure)
    return json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  }

  json Calls() { return Control("GET", "calls"); }
  json State() { return Control("GET", "state"); }
  void PutState(const json& state) { Control("PUT", "state", state); }

  static json InGroup(const std::string& group, const std::string& lifecycle_state = "InService") {
    return {{"group", group}, {"lifecycle_state", lifecycle_state}, {"protected", false}};
  }

  MapEnvironment env_;
  std::string tenant_url_;
  std::shared_ptr<HttpTransport> control_transport_ = MakeCurlTransport();
  std::shared_ptr<Ec2Client> ec2_;
  std::shared_ptr<AutoScalingClient> autoscaling_;
};

TEST_F(Ec2AutoScalingClientTest, TerminateInstancesReachesEc2WithInstanceIdList) {
  auto changes = ec2_->TerminateInstances({kInstanceA, kInstanceB});
  ASSERT_TRUE(changes.ok()) << changes.error().ToString();
  ASSERT_EQ(changes->size(), 2u);
  EXPECT_EQ((*changes)[0].instance_id, kInstanceA);
  EXPECT_EQ((*changes)[0].previous_state, "running");
  EXPECT_EQ((*changes)[0].current_state, "shutting-down");
  EXPECT_EQ((*changes)[0].current_code, 32);
  EXPECT_EQ((*changes)[1].instance_id, kInstanceB);

  json calls = Calls();
  ASSERT_EQ(calls.size(), 1u) << calls.dump();
  EXPECT_EQ(calls[0]["service"], "ec2");
  EXPECT_EQ(calls[0]["action"], "TerminateInstances");
  EXPECT_EQ(calls[0]["params"], (json{{"Version", "2016-11-15"},
                                      {"InstanceId.1", kInstanceA},
                                      {"InstanceId.2", kInstanceB}}));
  EXPECT_EQ(State()["instances"][kInstanceA]["state"], "shutting-down");
}

TEST_F(Ec2AutoScalingClientTest, CreateTagsReachesEc2AndTagsTheInstance) {
  Status status = ec2_->CreateTags({kInstanceA}, {{"Name", "worker 1"}, {"spotgrid:grid", "g/1"}});
  ASSERT_TRUE(status.ok()) << status.ToString();
  json calls = Calls();
  ASSERT_EQ(calls.size(), 1u) << calls.dump();
  EXPECT_EQ(calls[0]["service"], "ec2");
  EXPECT_EQ(calls[0]["action"], "CreateTags");
  EXPECT_EQ(calls[0]["params"], (json{{"Version", "2016-11-15"},
                                      {"ResourceId.1", kInstanceA},
                                      {"Tag.1.Key", "Name"},
                                      {"Tag.1.Value", "worker 1"},
                                      {"Tag.2.Key", "spotgrid:grid"},
                                      {"Tag.2.Value", "g/1"}}));
  EXPECT_EQ(State()["instances"][kInstanceA]["tags"],
            (json{{"Name", "worker 1"}, {"spotgrid:grid", "g/1"}}));
}

TEST_F(Ec2AutoScalingClientTest, DescribeSpotPriceHistoryFiltersAndPagesThroughEveryPrice) {
  json prices = json::array();
  for (int i = 0; i < 7; ++i) {
    prices.push_back({{"instance_type", "c5.large"},
                      {"availability_zone", "us-east-1a"},
                      {"price", "0.03" + std::to_string(i)},
                      {"timestamp", "2024-05-01T12:0" + std::to_string(i) + ":00.000Z"}});
  }
  prices.push_back({{"instance_type", "m5.large"}, {"availability_zone", "us-east-1a"}});
  prices.push_back({{"instance_type", "c5.large"}, {"availability_zone", "us-east-1b"}});
  prices.push_back({{"instance_type", "c5.large"},
                    {"availability_zone", "us-east-1a"},
                    {"product_description", "Windows"}});
  PutState({{"spot_prices", prices}});

  SpotPriceQuery query;
  query.instance_types = {"c5.large"};
  query.product_descriptions = {"Linux/UNIX"};
  query.availability_zone = "us-east-1a";
  query.start_time = Clock::WallTime(std::chrono::seconds(1714521600));  // 2024-05-01T00:00:00Z
  query.max_results = 5;
  auto result = ec2_->DescribeSpotPriceHistory(query);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->size(), 7u);
  for (int i = 0; i < 7; ++i) {
    const SpotPrice& price = (*result)[i];
    EXPECT_EQ(price.instance_type, "c5.large");
    EXPECT_EQ(price.availability_zone, "us-east-1a");
    EXPECT_EQ(price.product_description, "Linux/UNIX");
    EXPECT_EQ(price.price_text, "0.03" + std::to_string(i));
    EXPECT_EQ(price.timestamp, Clock::WallTime(std::chrono::seconds(1714564800 + 60 * i)));
  }

  json calls = Calls();
  ASSERT_EQ(calls.size(), 2u) << calls.dump();
  json first = {{"Version", "2016-11-15"},
                {"AvailabilityZone", "us-east-1a"},
                {"InstanceType.1", "c5.large"},
                {"MaxResults", "5"},
                {"ProductDescription.1", "Linux/UNIX"},
                {"StartTime", "2024-05-01T00:00:00Z"}};
  EXPECT_EQ(calls[0]["params"], first);
  json second = first;
  second["NextToken"] = "5";
  EXPECT_EQ(calls[1]["params"], second);
}

TEST_F(Ec2AutoScalingClientTest, TerminateInstanceInAutoScalingGroupStartsAnActivity) {
  PutState({{"instances", {{kInstanceA, InGroup("workers")}}}});
  auto activity = autoscaling_->TerminateInstanceInAutoScalingGroup(kInstanceA, false);
  ASSERT_TRUE(activity.ok()) << activity.error().ToString();
  EXPECT_EQ(activity->auto_scaling_group_name, "workers");
  EXPECT_EQ(activity->status_code, "InProgress");
  EXPECT_FALSE(activity->activity_id.empty());
  EXPECT_NE(activity->description.find(kInstanceA), std::string::npos);
  EXPECT_TRUE(activity->start_time.has_value());

  json calls = Calls();
  ASSERT_EQ(calls.size(), 1u) << calls.dump();
  EXPECT_EQ(calls[0]["service"], "autoscaling");
  EXPECT_EQ(calls[0]["action"], "TerminateInstanceInAutoScalingGroup");
  EXPECT_EQ(calls[0]["params"], (json{{"Version", "2011-01-01"},
                                      {"InstanceId", kInstanceA},
                                      {"ShouldDecrementDesiredCapacity", "false"}}));
  json instance = State()["instances"][kInstanceA];
  EXPECT_EQ(instance["lifecycle_state"], "Terminating");
  EXPECT_EQ(instance["decremented_desired_capacity"], false);
}

TEST_F(Ec2AutoScalingClientTest, SetInstanceProtectionProtectsTheInstances) {
  PutState({{"instances", {{kInstanceA, InGroup("workers")}, {kInstanceB, InGroup("workers")}}}});
  Status status = autoscaling_->SetInstanceProtection("workers", {kInstanceA, kInstanceB}, true);
  ASSERT_TRUE(status.ok()) << status.ToString();
  json calls = Calls();
  ASSERT_EQ(calls.size(), 1u) << calls.dump();
  EXPECT_EQ(calls[0]["action"], "SetInstanceProtection");
  EXPECT_EQ(calls[0]["params"], (json{{"Version", "2011-01-01"},
                                      {"InstanceIds.member.1", kInstanceA},
                                      {"InstanceIds.member.2", kInstanceB},
                                      {"AutoScalingGroupName", "workers"},
                                      {"ProtectedFromScaleIn", "true"}}));
  json state = State();
  EXPECT_EQ(state["instances"][kInstanceA]["protected"], true);
  EXPECT_EQ(state["instances"][kInstanceB]["protected"], true);
}

TEST_F(Ec2AutoScalingClientTest, DescribeAutoScalingInstancesReportsOnlyGroupMembers) {
  json b = InGroup("workers", "Terminating:Wait");
  b["protected"] = true;
  b["availability_zone"] = "us-east-1b";
  b["instance_type"] = "m5.large";
  PutState(
      {{"instances",
        {{kInstanceA, InGroup("workers")}, {kInstanceB, b}, {kInstanceC, {{"group", nullptr}}}}}});
  auto instances = autoscaling_->DescribeAutoScalingInstances({kInstanceA, kInstanceB, kInstanceC});
  ASSERT_TRUE(instances.ok()) << instances.error().ToString();
  ASSERT_EQ(instances->size(), 2u);
  EXPECT_EQ((*instances)[0].instance_id, kInstanceA);
  EXPECT_EQ((*instances)[0].auto_scaling_group_name, "workers");
  EXPECT_EQ((*instances)[0].lifecycle_state, "InService");
  EXPECT_FALSE((*instances)[0].protected_from_scale_in);
  EXPECT_EQ((*instances)[1].instance_id, kInstanceB);
  EXPECT_EQ((*instances)[1].lifecycle_state, "Terminating:Wait");
  EXPECT_TRUE((*instances)[1].protected_from_scale_in);
  EXPECT_EQ((*instances)[1].availability_zone, "us-east-1b");
  EXPECT_EQ((*instances)[1].instance_type, "m5.large");
  EXPECT_EQ((*instances)[1].launch_template_name, "spotgrid-worker");

  json calls = Calls();
  ASSERT_EQ(calls.size(), 1u) << calls.dump();
  EXPECT_EQ(calls[0]["action"], "DescribeAutoScalingInstances");
  EXPECT_EQ(calls[0]["params"], (json{{"Version", "2011-01-01"},
                                      {"InstanceIds.member.1", kInstanceA},
                                      {"InstanceIds.member.2", kInstanceB},
                                      {"InstanceIds.member.3", kInstanceC}}));
}

TEST_F(Ec2AutoScalingClientTest, CompleteLifecycleActionLetsTheTerminationProceed) {
  PutState({{"instances", {{kInstanceA, InGroup("workers", "Terminating:Wait")}}}});
  Status status = autoscaling_->CompleteLifecycleAction({"workers", "drain", kInstanceA, ""},
                                                        LifecycleActionResult::kContinue);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(State()["instances"][kInstanceA]["lifecycle_state"], "Terminating:Proceed");

  const std::string token = "bcd2f1b8-9a78-44d3-8a7a-4dd07d7cf635";
  status = autoscaling_->CompleteLifecycleAction({"workers", "drain", "", token},
                                                 LifecycleActionResult::kAbandon);
  ASSERT_TRUE(status.ok()) << status.ToString();

  json calls = Calls();
  ASSERT_EQ(calls.size(), 2u) << calls.dump();
  EXPECT_EQ(calls[0]["action"], "CompleteLifecycleAction");
  EXPECT_EQ(calls[0]["params"], (json{{"Version", "2011-01-01"},
                                      {"AutoScalingGroupName", "workers"},
                                      {"LifecycleHookName", "drain"},
                                      {"InstanceId", kInstanceA},
                                      {"LifecycleActionResult", "CONTINUE"}}));
  EXPECT_EQ(calls[1]["params"], (json{{"Version", "2011-01-01"},
                                      {"AutoScalingGroupName", "workers"},
                                      {"LifecycleHookName", "drain"},
                                      {"LifecycleActionToken", token},
                                      {"LifecycleActionResult", "ABANDON"}}));
}

TEST_F(Ec2AutoScalingClientTest, RecordLifecycleActionHeartbeatIsCountedPerInstance) {
  PutState({{"instances", {{kInstanceA, InGroup("workers", "Terminating:Wait")}}}});
  for (int i = 0; i < 2; ++i) {
    Status status =
        autoscaling_->RecordLifecycleActionHeartbeat({"workers", "drain", kInstanceA, ""});
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  EXPECT_EQ(State()["heartbeats"][kInstanceA], 2);
  json calls = Calls();
  ASSERT_EQ(calls.size(), 2u) << calls.dump();
  EXPECT_EQ(calls[1]["action"], "RecordLifecycleActionHeartbeat");
  EXPECT_EQ(calls[1]["params"], (json{{"Version", "2011-01-01"},
                                      {"AutoScalingGroupName", "workers"},
                                      {"LifecycleHookName", "drain"},
                                      {"InstanceId", kInstanceA}}));
}

TEST_F(Ec2AutoScalingClientTest, InjectedEc2ErrorSurfacesWithCodeStatusAndRequestId) {
  Control("POST", "fail",
          {{"action", "CreateTags"},
           {"count", 1},
           {"status", 403},
           {"code", "UnauthorizedOperation"},
           {"message", "You are not authorized to perform this operation."}});
  Status status = ec2_->CreateTags({kInstanceA}, {{"k", "v"}});
  ASSERT_FALSE(status.ok());
  const Error& e = status.error();
  EXPECT_EQ(e.service, "EC2");
  EXPECT_EQ(e.operation, "CreateTags");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_EQ(e.code, "UnauthorizedOperation");
  EXPECT_EQ(e.message, "You are not authorized to perform this operation.");
  EXPECT_EQ(e.category, ErrorCategory::kClient);
  EXPECT_FALSE(e.request_id.empty());
  json calls = Calls();
  ASSERT_EQ(calls.size(), 1u) << "a client error must not be retried: " << calls.dump();
  EXPECT_EQ(calls[0]["error"], "UnauthorizedOperation");
}

TEST_F(Ec2AutoScalingClientTest, InjectedAutoScalingServerErrorsBeyondTheBudgetFail) {
  PutState({{"instances", {{kInstanceA, InGroup("workers")}}}});
  Control("POST", "fail",
          {{"action", "SetInstanceProtection"},
           {"count", 5},
           {"status", 500},
           {"code", "ResourceContention"},
           {"message", "You already have a pending update to an Auto Scaling resource."}});
  Status status = autoscaling_->SetInstanceProtection("workers", {kInstanceA}, true);
  ASSERT_FALSE(status.ok());
  const Error& e = status.error();
  EXPECT_EQ(e.service, "AutoScaling");
  EXPECT_EQ(e.operation, "SetInstanceProtection");
  EXPECT_EQ(e.http_status, 500);
  EXPECT_EQ(e.code, "ResourceContention");
  EXPECT_EQ(e.category, ErrorCategory::kTransient);
  EXPECT_FALSE(e.request_id.empty());
  EXPECT_EQ(Calls().size(), 3u) << "three attempts, then the error";
  EXPECT_EQ(State()["instances"][kInstanceA]["protected"], false);
}

TEST_F(Ec2AutoScalingClientTest, InjectedThrottlingIsRetriedUntilTheCallSucceeds) {
  Control("POST", "fail",
          {{"action", "TerminateInstances"},
           {"count", 2},
           {"status", 503},
           {"code", "RequestLimitExceeded"}});
  auto changes = ec2_->TerminateInstances({kInstanceA});
  ASSERT_TRUE(changes.ok()) << changes.error().ToString();
  json calls = Calls();
  ASSERT_EQ(calls.size(), 3u) << calls.dump();
  EXPECT_EQ(calls[0]["error"], "RequestLimitExceeded");
  EXPECT_EQ(calls[1]["error"], "RequestLimitExceeded");
  EXPECT_FALSE(calls[2].contains("error"));
}

TEST_F(Ec2AutoScalingClientTest, InstanceOutsideAnyGroupIsAValidationError) {
  auto activity = autoscaling_->TerminateInstanceInAutoScalingGroup(kInstanceC, true);
  ASSERT_FALSE(activity.ok());
  EXPECT_EQ(activity.error().code, "ValidationError");
  EXPECT_EQ(activity.error().http_status, 400);
  EXPECT_FALSE(activity.error().request_id.empty());
  EXPECT_NE(activity.error().message.find(kInstanceC), std::string::npos);
}

}  // namespace
}  // namespace spotgrid
