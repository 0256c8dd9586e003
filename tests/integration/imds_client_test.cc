// ImdsClient over the real curl transport against tests/harness/imds_fake.py. Each test uses
// its own tenant (a path prefix on the shared fake), so tests run in parallel safely.
#include "spotgrid/aws/imds_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/client_fixture.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using namespace std::chrono_literals;

class ImdsIntegrationTest : public testing::ImdsFakeTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(testing::ImdsFakeTest::SetUp());
    auto client = ImdsClient::Create(env_, transport_, Clock::System());
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *client;
  }

  nlohmann::json Requests() { return nlohmann::json::parse(Control("GET", "requests").body); }

  int CountRequests(const std::string& method, const std::string& path) {
    int count = 0;
    for (const auto& request : Requests()) {
      if (request["method"] == method && request["path"] == path) ++count;
    }
    return count;
  }

  std::shared_ptr<ImdsClient> client_;
};

TEST_F(ImdsIntegrationTest, ReadsInstanceFactsWithOneSessionToken) {
  auto id = client_->InstanceId();
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_EQ(*id, "i-0123456789abcdef0");
  EXPECT_EQ(client_->InstanceType().value(), "c5.large");
  EXPECT_EQ(client_->Region().value(), "us-east-1");
  EXPECT_EQ(client_->AvailabilityZone().value(), "us-east-1a");
  EXPECT_TRUE(client_->IsSpot().value());

  auto requests = Requests();
  ASSERT_EQ(requests.size(), 6u) << requests.dump(2);
  EXPECT_EQ(requests[0]["method"], "PUT");
  EXPECT_EQ(requests[0]["path"], "/latest/api/token");
  EXPECT_EQ(requests[0]["headers"]["x-aws-ec2-metadata-token-ttl-seconds"], "21600");
  for (size_t i = 1; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i]["method"], "GET");
    EXPECT_TRUE(requests[i]["headers"].contains("x-aws-ec2-metadata-token"));
    EXPECT_EQ(requests[i]["headers"].value("x-forwarded-for", ""), "");
  }
  EXPECT_EQ(requests[1]["path"], "/latest/meta-data/instance-id");
}

TEST_F(ImdsIntegrationTest, ChangedMetadataIsReadAndMissingItemIsNotFound) {
  Control("PUT", "meta-data/instance-life-cycle", "on-demand");
  Control("PUT", "meta-data/placement/region", "eu-west-2");
  EXPECT_FALSE(client_->IsSpot().value());
  EXPECT_EQ(client_->Region().value(), "eu-west-2");
  Control("DELETE", "meta-data/instance-type");
  auto type = client_->InstanceType();
  ASSERT_FALSE(type.ok());
  EXPECT_TRUE(type.error().IsNotFound()) << type.error().ToString();

  auto document = client_->Get("/latest/dynamic/instance-identity/document");
  ASSERT_TRUE(document.ok()) << document.error().ToString();
  auto json = nlohmann::json::parse(*document);
  EXPECT_EQ(json["instanceId"], "i-0123456789abcdef0");
  EXPECT_EQ(json["region"], "eu-west-2");
}

TEST_F(ImdsIntegrationTest, SpotInstanceActionAppearsOnceScheduled) {
  auto before = client_->SpotInstanceAction();
  ASSERT_TRUE(before.ok()) << before.error().ToString();
  EXPECT_FALSE(before->has_value());

  Control("PUT", "meta-data/spot/instance-action",
          R"({"action": "stop", "time": "2031-02-03T04:05:06Z"})");
  auto after = client_->SpotInstanceAction();
  ASSERT_TRUE(after.ok()) << after.error().ToString();
  ASSERT_TRUE(after->has_value());
  EXPECT_EQ((*after)->action, "stop");
  EXPECT_EQ((*after)->time, Clock::WallTime(std::chrono::seconds(1927857906)));
}

TEST_F(ImdsIntegrationTest, RebalanceRecommendationAndTargetLifecycleState) {
  auto no_rebalance = client_->RebalanceRecommendation();
  ASSERT_TRUE(no_rebalance.ok()) << no_rebalance.error().ToString();
  EXPECT_FALSE(no_rebalance->has_value());
  auto no_state = client_->TargetLifecycleState();
  ASSERT_TRUE(no_state.ok()) << no_state.error().ToString();
  EXPECT_FALSE(no_state->has_value());

  Control("PUT", "meta-data/events/recommendations/rebalance",
          R"({"noticeTime": "2031-02-03T04:05:06Z"})");
  Control("PUT", "meta-data/autoscaling/target-lifecycle-state", "InService");
  auto rebalance = client_->RebalanceRecommendation();
  ASSERT_TRUE(rebalance.ok());
  ASSERT_TRUE(rebalance->has_value());
  EXPECT_EQ((*rebalance)->notice_time, Clock::WallTime(std::chrono::seconds(1927857906)));
  EXPECT_EQ(client_->TargetLifecycleState()->value_or(""), "InService");

  Control("PUT", "meta-data/autoscaling/target-lifecycle-state", "Terminated");
  EXPECT_EQ(client_->TargetLifecycleState()->value_or(""), "Terminated");
}

TEST_F(ImdsIntegrationTest, RoleCredentialsCarryExpiration) {
  auto credentials = client_->RoleCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_FALSE(credentials->access_key_id.empty());
  EXPECT_FALSE(credentials->secret_access_key.empty());
  EXPECT_EQ(credentials->session_token, "FakeImdsSessionToken/" + tenant_);
  ASSERT_TRUE(credentials->expiration.has_value());
  const auto now = Clock::System().Now();
  EXPECT_GT(*credentials->expiration, now + 5h);
  EXPECT_LT(*credentials->expiration, now + 7h);

  Control("DELETE", "meta-data/iam/security-credentials/");
  auto no_role = client_->RoleCredentials();
  ASSERT_FALSE(no_role.ok());
  EXPECT_NE(no_role.error().message.find("no IAM role"), std::string::npos);
}

TEST_F(ImdsIntegrationTest, ExpiredTokenIsReplacedAndTheReadRetried) {
  ASSERT_TRUE(client_->InstanceId().ok());
  Control("POST", "expire-tokens");
  auto id = client_->InstanceId();
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_EQ(CountRequests("PUT", "/latest/api/token"), 2);
  EXPECT_EQ(CountRequests("GET", "/latest/meta-data/instance-id"), 3);  // ok, 401, ok
}

TEST_F(ImdsIntegrationTest, UnreachableImdsFailsQuickly) {
  MapEnvironment env;
  env.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1");
  auto client = ImdsClient::Create(env, transport_, Clock::System());
  ASSERT_TRUE(client.ok());
  const auto start = std::chrono::steady_clock::now();
  auto id = (*client)->InstanceId();
  ASSERT_FALSE(id.ok());
  EXPECT_TRUE(id.error().IsRetryable()) << id.error().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

}  // namespace
}  // namespace spotgrid
