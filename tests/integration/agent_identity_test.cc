// DiscoverIdentity over the real ImdsClient and curl transport against the IMDS
// fake (a tenant of its own per test).
#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <nlohmann/json.hpp>

#include "agent/identity.h"
#include "spotgrid/core/clock.h"
#include "support/client_fixture.h"

namespace spotgrid::agent {
namespace {

class AgentIdentityTest : public testing::ImdsFakeTest {
 protected:
  std::shared_ptr<ImdsClient> Client() {
    auto client = ImdsClient::Create(env_, transport_, Clock::System());
    EXPECT_TRUE(client.ok()) << client.error().ToString();
    return client.ok() ? *client : nullptr;
  }
};

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  EXPECT_EQ(gethostname(name, sizeof name - 1), 0);
  return name;
}

TEST_F(AgentIdentityTest, SpotInstanceIsDescribedByInstanceMetadata) {
  auto client = Client();
  ASSERT_NE(client, nullptr);
  WorkerIdentity identity = DiscoverIdentity(client.get());
  EXPECT_TRUE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, "i-0123456789abcdef0");
  EXPECT_EQ(identity.instance_type, "c5.large");
  EXPECT_EQ(identity.availability_zone, "us-east-1a");
  EXPECT_EQ(identity.region, "us-east-1");
  EXPECT_TRUE(identity.spot);
}

TEST_F(AgentIdentityTest, OnDemandInstanceInAnotherRegion) {
  Control("PUT", "meta-data/instance-life-cycle", "on-demand");
  Control("PUT", "meta-data/instance-id", "i-0feedfacecafe0001");
  Control("PUT", "meta-data/placement/region", "ap-south-1");
  Control("PUT", "meta-data/placement/availability-zone", "ap-south-1c");
  auto client = Client();
  ASSERT_NE(client, nullptr);
  WorkerIdentity identity = DiscoverIdentity(client.get());
  EXPECT_TRUE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, "i-0feedfacecafe0001");
  EXPECT_EQ(identity.region, "ap-south-1");
  EXPECT_EQ(identity.availability_zone, "ap-south-1c");
  EXPECT_FALSE(identity.spot);
}

TEST_F(AgentIdentityTest, MissingInstanceIdFallsBackToHostName) {
  Control("DELETE", "meta-data/instance-id");
  auto client = Client();
  ASSERT_NE(client, nullptr);
  WorkerIdentity identity = DiscoverIdentity(client.get());
  EXPECT_FALSE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, HostName());
  EXPECT_EQ(identity.instance_type, "");
}

TEST_F(AgentIdentityTest, DisabledMetadataFallsBackToHostName) {
  env_.Set("AWS_EC2_METADATA_DISABLED", "true");
  auto client = Client();
  ASSERT_NE(client, nullptr);
  WorkerIdentity identity = DiscoverIdentity(client.get());
  EXPECT_FALSE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, HostName());
  // Disabled means no traffic at all, not even the token request.
  auto requests = nlohmann::json::parse(Control("GET", "requests").body, nullptr, false);
  ASSERT_TRUE(requests.is_array());
  EXPECT_TRUE(requests.empty()) << requests.dump(2);
}

}  // namespace
}  // namespace spotgrid::agent
