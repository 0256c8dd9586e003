// The default credentials chain and AwsContext::Create against tests/harness/imds_fake.py:
// with no keys in the (map) environment and no profile files, credentials and region come
// from the instance metadata service.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/imds_client.h"
#include "support/client_fixture.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using namespace std::chrono_literals;

class CredentialsChainIntegrationTest : public testing::ImdsFakeTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(testing::ImdsFakeTest::SetUp());
    env_.Set("AWS_CONFIG_FILE", "/dev/null");
    env_.Set("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
  }

  int CredentialReads() {
    int count = 0;
    for (const auto& request : nlohmann::json::parse(Control("GET", "requests").body)) {
      if (request["path"] == "/latest/meta-data/iam/security-credentials/spotgrid-worker") {
        ++count;
      }
    }
    return count;
  }
};

TEST_F(CredentialsChainIntegrationTest, WithoutEnvironmentKeysTheChainUsesImdsRoleCredentials) {
  auto imds = ImdsClient::Create(env_, transport_, Clock::System());
  ASSERT_TRUE(imds.ok());
  auto chain = MakeDefaultCredentialsChain(env_, transport_, *imds, Clock::System());
  auto credentials = chain->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->session_token, "FakeImdsSessionToken/" + tenant_);
  ASSERT_TRUE(credentials->expiration.has_value());
  EXPECT_GT(*credentials->expiration, Clock::System().Now() + 5h);

  // Cached until the refresh window: IMDS is not asked again.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(chain->GetCredentials().ok());
  EXPECT_EQ(CredentialReads(), 1);
}

TEST_F(CredentialsChainIntegrationTest, InstanceWithoutRoleGivesAnErrorNamingEverySource) {
  Control("DELETE", "meta-data/iam/security-credentials/");
  auto imds = ImdsClient::Create(env_, transport_, Clock::System());
  ASSERT_TRUE(imds.ok());
  auto credentials =
      MakeDefaultCredentialsChain(env_, transport_, *imds, Clock::System())->GetCredentials();
  ASSERT_FALSE(credentials.ok());
  const std::string message = credentials.error().message;
  EXPECT_NE(message.find("AWS_ACCESS_KEY_ID"), std::string::npos) << message;
  EXPECT_NE(message.find("no IAM role"), std::string::npos) << message;
}

TEST_F(CredentialsChainIntegrationTest, ContextTakesRegionAndCredentialsFromImds) {
  Control("PUT", "meta-data/placement/region", "ap-southeast-2");
  AwsContextOptions options;
  options.env = &env_;
  options.transport = transport_;
  auto context = AwsContext::Create(options);
  ASSERT_TRUE(context.ok()) << context.error().ToString();
  EXPECT_EQ((*context)->region(), "ap-southeast-2");
  auto credentials = (*context)->credentials().GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->session_token, "FakeImdsSessionToken/" + tenant_);
}

}  // namespace
}  // namespace spotgrid
