// AutoScalingClient against FakeTransport: exact AWS Query form bodies (lists as
// Name.member.N), parsing of the XML shapes real Auto Scaling returns, and its errors.
#include "spotgrid/services/autoscaling_client.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/client_fixture.h"

namespace spotgrid {
namespace {

constexpr char kToken[] = "bcd2f1b8-9a78-44d3-8a7a-4dd07d7cf635";

// Response documents as Auto Scaling sends them (API Reference examples).
constexpr char kTerminateResponse[] = R"(<?xml version="1.0"?>
<TerminateInstanceInAutoScalingGroupResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <TerminateInstanceInAutoScalingGroupResult>
    <Activity>
      <StatusCode>InProgress</StatusCode>
      <ActivityId>cczc44a87-7d04-dd2d-8d5c-e5f9EXAMPLE</ActivityId>
      <Progress>0</Progress>
      <StartTime>2014-01-26T14:08:30.560Z</StartTime>
      <Cause>At 2014-01-26T14:08:30Z instance i-br234123 was taken out of service in response to a user request.</Cause>
      <Details>{"Subnet ID":"subnet-5ea0c127","Availability Zone":"us-east-1b"}</Details>
      <Description>Terminating EC2 instance: i-br234123</Description>
      <AutoScalingGroupName>my-asg</AutoScalingGroupName>
    </Activity>
  </TerminateInstanceInAutoScalingGroupResult>
  <ResponseMetadata>
    <RequestId>a1f12e1d-8c2d-11e3-9bd7-2d8b4EXAMPLE</RequestId>
  </ResponseMetadata>
</TerminateInstanceInAutoScalingGroupResponse>)";

constexpr char kEmptyResult[] = R"(<?xml version="1.0"?>
<%sResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <%sResult/>
  <ResponseMetadata>
    <RequestId>9f3a5f0e-1111-2222-3333-EXAMPLE</RequestId>
  </ResponseMetadata>
</%sResponse>)";

constexpr char kDescribePage1[] = R"(<?xml version="1.0"?>
<DescribeAutoScalingInstancesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeAutoScalingInstancesResult>
    <AutoScalingInstances>
      <member>
        <HealthStatus>HEALTHY</HealthStatus>
        <AutoScalingGroupName>workers</AutoScalingGroupName>
        <AvailabilityZone>us-east-1a</AvailabilityZone>
        <InstanceId>i-0123456789abcdef0</InstanceId>
        <InstanceType>c5.large</InstanceType>
        <LaunchTemplate>
          <LaunchTemplateId>lt-0abcd1234</LaunchTemplateId>
          <LaunchTemplateName>spotgrid-worker</LaunchTemplateName>
          <Version>3</Version>
        </LaunchTemplate>
        <LifecycleState>Terminating:Wait</LifecycleState>
        <ProtectedFromScaleIn>true</ProtectedFromScaleIn>
        <WeightedCapacity>2</WeightedCapacity>
      </member>
    </AutoScalingInstances>
    <NextToken>next/page+1=</NextToken>
  </DescribeAutoScalingInstancesResult>
  <ResponseMetadata>
    <RequestId>d7f8c2a1-page1</RequestId>
  </ResponseMetadata>
</DescribeAutoScalingInstancesResponse>)";

constexpr char kDescribePage2[] = R"(<?xml version="1.0"?>
<DescribeAutoScalingInstancesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeAutoScalingInstancesResult>
    <AutoScalingInstances>
      <member>
        <HealthStatus>UNHEALTHY</HealthStatus>
        <AutoScalingGroupName>workers</AutoScalingGroupName>
        <AvailabilityZone>us-east-1b</AvailabilityZone>
        <InstanceId>i-0fedcba9876543210</InstanceId>
        <InstanceType>m5.large</InstanceType>
        <LaunchConfigurationName>old-config</LaunchConfigurationName>
        <LifecycleState>InService</LifecycleState>
        <ProtectedFromScaleIn>false</ProtectedFromScaleIn>
      </member>
    </AutoScalingInstances>
  </DescribeAutoScalingInstancesResult>
  <ResponseMetadata>
    <RequestId>d7f8c2a1-page2</RequestId>
  </ResponseMetadata>
</DescribeAutoScalingInstancesResponse>)";

constexpr char kValidationError[] =
    R"(<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/">
  <Error>
    <Type>Sender</Type>
    <Code>ValidationError</Code>
    <Message>Instance Id not found - No managed instance found for instance ID: i-0000000000000dead</Message>
  </Error>
  <RequestId>6c2a0ef8-validation</RequestId>
</ErrorResponse>)";

constexpr char kThrottlingError[] =
    R"(<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/">
  <Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>
  <RequestId>7d3b1f09-throttled</RequestId>
</ErrorResponse>)";

std::string EmptyResult(const std::string& operation) {
  std::string out = kEmptyResult;
  for (size_t pos; (pos = out.find("%s")) != std::string::npos;) out.replace(pos, 2, operation);
  return out;
}

class AutoScalingClientTest : public testing::FakeAwsTest {
 protected:
  void SetUp() override {
    region_ = "eu-west-1";
    auto client = CreateClient<AutoScalingClient>();
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *client;
  }

  std::string Body(size_t i) const { return transport_->requests().at(i).body; }

  std::shared_ptr<AutoScalingClient> client_;
};

TEST_F(AutoScalingClientTest, TerminateInstancePostsQueryFormSignedForAutoScaling) {
  transport_->PushResponse(200, kTerminateResponse);
  auto activity = client_->TerminateInstanceInAutoScalingGroup("i-br234123", true);
  ASSERT_TRUE(activity.ok()) << activity.error().ToString();
  ASSERT_EQ(transport_->request_count(), 1u);
  const HttpRequest request = transport_->requests()[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "https://autoscaling.eu-west-1.amazonaws.com/");
  EXPECT_EQ(FindHeader(request.headers, "content-type").value_or(""),
            "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_NE(FindHeader(request.headers, "authorization")
                .value_or("")
                .find("/eu-west-1/autoscaling/aws4_request"),
            std::string::npos);
  EXPECT_EQ(request.body,
            "Action=TerminateInstanceInAutoScalingGroup&Version=2011-01-01&InstanceId=i-br234123&"
            "ShouldDecrementDesiredCapacity=true");
}

TEST_F(AutoScalingClientTest, TerminateInstanceParsesTheScalingActivity) {
  transport_->PushResponse(200, kTerminateResponse);
  auto activity = client_->TerminateInstanceInAutoScalingGroup("i-br234123", false);
  ASSERT_TRUE(activity.ok()) << activity.error().ToString();
  EXPECT_EQ(Body(0),
            "Action=TerminateInstanceInAutoScalingGroup&Version=2011-01-01&InstanceId=i-br234123&"
            "ShouldDecrementDesiredCapacity=false");
  EXPECT_EQ(activity->activity_id, "cczc44a87-7d04-dd2d-8d5c-e5f9EXAMPLE");
  EXPECT_EQ(activity->auto_scaling_group_name, "my-asg");
  EXPECT_EQ(activity->status_code, "InProgress");
  EXPECT_EQ(activity->description, "Terminating EC2 instance: i-br234123");
  EXPECT_NE(activity->cause.find("taken out of service"), std::string::npos);
  EXPECT_EQ(activity->details,
            R"({"Subnet ID":"subnet-5ea0c127","Availability Zone":"us-east-1b"})");
  EXPECT_EQ(activity->progress, 0);
  ASSERT_TRUE(activity->start_time.has_value());
  EXPECT_EQ(*activity->start_time, Clock::WallTime(std::chrono::milliseconds(1390745310560)));
  EXPECT_FALSE(activity->end_time.has_value());
}

TEST_F(AutoScalingClientTest, SetInstanceProtectionListsInstancesAsMembers) {
  transport_->PushResponse(200, EmptyResult("SetInstanceProtection"));
  Status status = client_->SetInstanceProtection("workers", {"i-1", "i-2"}, false);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Body(0),
            "Action=SetInstanceProtection&Version=2011-01-01&InstanceIds.member.1=i-1&"
            "InstanceIds.member.2=i-2&AutoScalingGroupName=workers&ProtectedFromScaleIn=false");
}

TEST_F(AutoScalingClientTest, SetInstanceProtectionSendsAtMostFiftyInstancesPerCall) {
  std::vector<std::string> ids;
  for (int i = 1; i <= 51; ++i) ids.push_back("i-" + std::to_string(i));
  transport_->PushResponse(200, EmptyResult("SetInstanceProtection"));
  transport_->PushResponse(200, EmptyResult("SetInstanceProtection"));
  Status status = client_->SetInstanceProtection("workers", ids, true);
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(transport_->request_count(), 2u);
  EXPECT_NE(Body(0).find("InstanceIds.member.50=i-50&"), std::string::npos);
  EXPECT_EQ(Body(0).find("member.51"), std::string::npos);
  EXPECT_EQ(Body(1),
            "Action=SetInstanceProtection&Version=2011-01-01&InstanceIds.member.1=i-51&"
            "AutoScalingGroupName=workers&ProtectedFromScaleIn=true");
}

TEST_F(AutoScalingClientTest, DescribeAutoScalingInstancesParsesMembersAcrossPages) {
  transport_->PushResponse(200, kDescribePage1);
  transport_->PushResponse(200, kDescribePage2);
  auto instances =
      client_->DescribeAutoScalingInstances({"i-0123456789abcdef0", "i-0fedcba9876543210"});
  ASSERT_TRUE(instances.ok()) << instances.error().ToString();
  ASSERT_EQ(transport_->request_count(), 2u);
  const std::string ids =
      "InstanceIds.member.1=i-0123456789abcdef0&InstanceIds.member.2=i-0fedcba9876543210";
  EXPECT_EQ(Body(0), "Action=DescribeAutoScalingInstances&Version=2011-01-01&" + ids);
  EXPECT_EQ(Body(1), "Action=DescribeAutoScalingInstances&Version=2011-01-01&" + ids +
                         "&NextToken=next%2Fpage%2B1%3D");

  ASSERT_EQ(instances->size(), 2u);
  const AutoScalingInstance& a = (*instances)[0];
  EXPECT_EQ(a.instance_id, "i-0123456789abcdef0");
  EXPECT_EQ(a.instance_type, "c5.large");
  EXPECT_EQ(a.auto_scaling_group_name, "workers");
  EXPECT_EQ(a.availability_zone, "us-east-1a");
  EXPECT_EQ(a.lifecycle_state, "Terminating:Wait");
  EXPECT_EQ(a.health_status, "HEALTHY");
  EXPECT_TRUE(a.protected_from_scale_in);
  EXPECT_EQ(a.launch_template_id, "lt-0abcd1234");
  EXPECT_EQ(a.launch_template_name, "spotgrid-worker");
  EXPECT_EQ(a.launch_template_version, "3");
  EXPECT_EQ(a.weighted_capacity, "2");
  const AutoScalingInstance& b = (*instances)[1];
  EXPECT_EQ(b.instance_id, "i-0fedcba9876543210");
  EXPECT_EQ(b.lifecycle_state, "InService");
  EXPECT_EQ(b.health_status, "UNHEALTHY");
  EXPECT_FALSE(b.protected_from_scale_in);
  EXPECT_EQ(b.launch_configuration_name, "old-config");
}

TEST_F(AutoScalingClientTest, DescribeAutoScalingInstancesWithoutIdsAsksForEveryInstance) {
  transport_->PushResponse(200, EmptyResult("DescribeAutoScalingInstances"));
  auto instances = client_->DescribeAutoScalingInstances({});
  ASSERT_TRUE(instances.ok()) << instances.error().ToString();
  EXPECT_TRUE(instances->empty());
  EXPECT_EQ(Body(0), "Action=DescribeAutoScalingInstances&Version=2011-01-01");
}

TEST_F(AutoScalingClientTest, CompleteLifecycleActionByInstanceIdSendsContinue) {
  transport_->PushResponse(200, EmptyResult("CompleteLifecycleAction"));
  Status status = client_->CompleteLifecycleAction(
      {"workers", "drain-hook", "i-0123456789abcdef0", ""}, LifecycleActionResult::kContinue);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Body(0),
            "Action=CompleteLifecycleAction&Version=2011-01-01&AutoScalingGroupName=workers&"
            "LifecycleHookName=drain-hook&InstanceId=i-0123456789abcdef0&"
            "LifecycleActionResult=CONTINUE");
}

TEST_F(AutoScalingClientTest, CompleteLifecycleActionByTokenSendsAbandon) {
  transport_->PushResponse(200, EmptyResult("CompleteLifecycleAction"));
  Status status = client_->CompleteLifecycleAction({"workers", "drain-hook", "", kToken},
                                                   LifecycleActionResult::kAbandon);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Body(0),
            "Action=CompleteLifecycleAction&Version=2011-01-01&AutoScalingGroupName=workers&"
            "LifecycleHookName=drain-hook&LifecycleActionToken=" +
                std::string(kToken) + "&LifecycleActionResult=ABANDON");
}

TEST_F(AutoScalingClientTest, RecordLifecycleActionHeartbeatNamesTheAction) {
  transport_->PushResponse(200, EmptyResult("RecordLifecycleActionHeartbeat"));
  Status status =
      client_->RecordLifecycleActionHeartbeat({"workers", "drain-hook", "i-0123456789abcdef0", ""});
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Body(0),
            "Action=RecordLifecycleActionHeartbeat&Version=2011-01-01&AutoScalingGroupName=workers&"
            "LifecycleHookName=drain-hook&InstanceId=i-0123456789abcdef0");
}

TEST_F(AutoScalingClientTest, LifecycleCallsNeedAnInstanceIdOrAToken) {
  Status complete = client_->CompleteLifecycleAction({"workers", "drain-hook", "", ""},
                                                     LifecycleActionResult::kContinue);
  Status heartbeat = client_->RecordLifecycleActionHeartbeat({"workers", "", "i-1", ""});
  Status no_group = client_->RecordLifecycleActionHeartbeat({"", "drain-hook", "i-1", ""});
  EXPECT_EQ(complete.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(complete.error().operation, "CompleteLifecycleAction");
  EXPECT_EQ(heartbeat.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(no_group.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(AutoScalingClientTest, ValidationErrorSurfacesCodeStatusAndRequestIdWithoutRetry) {
  transport_->PushResponse(400, kValidationError);
  auto activity = client_->TerminateInstanceInAutoScalingGroup("i-0000000000000dead", true);
  ASSERT_FALSE(activity.ok());
  const Error& e = activity.error();
  EXPECT_EQ(e.service, "AutoScaling");
  EXPECT_EQ(e.operation, "TerminateInstanceInAutoScalingGroup");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "ValidationError");
  EXPECT_EQ(e.request_id, "6c2a0ef8-validation");
  EXPECT_NE(e.message.find("No managed instance"), std::string::npos);
  EXPECT_EQ(e.category, ErrorCategory::kClient);
  EXPECT_EQ(transport_->request_count(), 1u);
}

TEST_F(AutoScalingClientTest, ThrottlingIsRetriedUntilTheCallSucceeds) {
  transport_->PushResponse(400, kThrottlingError);
  transport_->PushResponse(400, kThrottlingError);
  transport_->PushResponse(200, EmptyResult("RecordLifecycleActionHeartbeat"));
  Status status = client_->RecordLifecycleActionHeartbeat({"workers", "drain-hook", "", kToken});
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(transport_->request_count(), 3u);
}

TEST_F(AutoScalingClientTest, ThrottlingBeyondTheAttemptBudgetFailsWithThrottledError) {
  for (int i = 0; i < 3; ++i) transport_->PushResponse(400, kThrottlingError);
  Status status = client_->SetInstanceProtection("workers", {"i-1"}, true);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, "Throttling");
  EXPECT_EQ(status.error().category, ErrorCategory::kThrottled);
  EXPECT_EQ(status.error().request_id, "7d3b1f09-throttled");
  EXPECT_EQ(transport_->request_count(), 3u);
}

}  // namespace
}  // namespace spotgrid
