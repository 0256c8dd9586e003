// Who a worker is: every fact from instance metadata on EC2, the host name when
// IMDS does not answer, and the facts it does have when only some reads fail.
#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <set>
#include <string>
#include <vector>

#include "agent/identity.h"

namespace spotgrid::agent {
namespace {

Error ImdsError(const std::string& operation) {
  Error error;
  error.category = ErrorCategory::kTransient;
  error.service = "IMDS";
  error.operation = operation;
  error.code = "ConnectionFailed";
  error.message = "connection refused";
  return error;
}

// Instance metadata as the test sets it: the facts below, except those named in `failing`,
// which fail as an unreachable IMDS does. Records which facts were asked for.
class FakeMetadata final : public InstanceMetadata {
 public:
  std::string instance_id = "i-0fake";
  std::string instance_type = "m7g.medium";
  std::string region = "eu-west-2";
  std::string availability_zone = "eu-west-2b";
  bool spot = true;
  std::set<std::string> failing;
  std::vector<std::string> asked;

  Result<std::string> Get(std::string_view path) override {
    asked.emplace_back(path);
    return ImdsError("Get");
  }
  Result<std::string> InstanceId() override { return Ask("instance-id", instance_id); }
  Result<std::string> InstanceType() override { return Ask("instance-type", instance_type); }
  Result<std::string> Region() override { return Ask("region", region); }
  Result<std::string> AvailabilityZone() override { return Ask("zone", availability_zone); }
  Result<bool> IsSpot() override { return Ask("life-cycle", spot); }
  Result<std::optional<SpotInstanceActionNotice>> SpotInstanceAction() override {
    return std::optional<SpotInstanceActionNotice>();
  }
  Result<std::optional<RebalanceNotice>> RebalanceRecommendation() override {
    return std::optional<RebalanceNotice>();
  }
  Result<std::optional<std::string>> TargetLifecycleState() override {
    return std::optional<std::string>();
  }
  Result<Credentials> RoleCredentials() override { return ImdsError("RoleCredentials"); }

 private:
  template <typename T>
  Result<T> Ask(const std::string& what, const T& answer) {
    asked.push_back(what);
    if (failing.count(what) > 0) return ImdsError(what);
    return answer;
  }
};

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  EXPECT_EQ(gethostname(name, sizeof name - 1), 0);
  return name;
}

TEST(DiscoverIdentityTest, OnEc2EveryFactComesFromInstanceMetadata) {
  FakeMetadata imds;
  WorkerIdentity identity = DiscoverIdentity(&imds);
  EXPECT_TRUE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, "i-0fake");
  EXPECT_EQ(identity.instance_type, "m7g.medium");
  EXPECT_EQ(identity.availability_zone, "eu-west-2b");
  EXPECT_EQ(identity.region, "eu-west-2");
  EXPECT_TRUE(identity.spot);
}

TEST(DiscoverIdentityTest, OnDemandInstanceIsNotSpot) {
  FakeMetadata imds;
  imds.spot = false;
  EXPECT_FALSE(DiscoverIdentity(&imds).spot);
}

TEST(DiscoverIdentityTest, UnreachableImdsFallsBackToHostName) {
  FakeMetadata imds;
  imds.failing = {"instance-id"};
  WorkerIdentity identity = DiscoverIdentity(&imds);
  EXPECT_FALSE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, HostName());
  EXPECT_EQ(identity.instance_type, "");
  EXPECT_EQ(identity.availability_zone, "");
  EXPECT_EQ(identity.region, "");
  EXPECT_FALSE(identity.spot);
  // Off EC2 each further read would only wait for its own timeout.
  EXPECT_EQ(imds.asked, std::vector<std::string>{"instance-id"});
}

TEST(DiscoverIdentityTest, NoImdsAtAllUsesHostName) {
  WorkerIdentity identity = DiscoverIdentity(nullptr);
  EXPECT_FALSE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, HostName());
  EXPECT_FALSE(identity.instance_id.empty());
}

TEST(DiscoverIdentityTest, EmptyInstanceIdIsNotAnIdentity) {
  FakeMetadata imds;
  imds.instance_id = "";
  WorkerIdentity identity = DiscoverIdentity(&imds);
  EXPECT_FALSE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, HostName());
}

TEST(DiscoverIdentityTest, FactsImdsCannotGiveAreLeftEmptyOnEc2) {
  FakeMetadata imds;
  imds.failing = {"instance-type", "life-cycle"};
  WorkerIdentity identity = DiscoverIdentity(&imds);
  EXPECT_TRUE(identity.on_ec2);
  EXPECT_EQ(identity.instance_id, "i-0fake");
  EXPECT_EQ(identity.instance_type, "");
  EXPECT_EQ(identity.region, "eu-west-2");
  EXPECT_EQ(identity.availability_zone, "eu-west-2b");
  EXPECT_FALSE(identity.spot);  // unknown counts as On-Demand
}

}  // namespace
}  // namespace spotgrid::agent
