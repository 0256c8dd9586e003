// ImdsClient against a scripted transport: the IMDSv2 token flow, the typed
// calls, and the guarantees that matter off EC2 (disabled flag, short timeouts,
// no IMDSv1 fallback).
#include "spotgrid/aws/imds_client.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "support/fake_clock.h"
#include "support/fake_transport.h"

namespace spotgrid {
namespace {

using testing::FakeClock;
using testing::FakeTransport;

constexpr char kBase[] = "http://169.254.169.254";

// A tiny IMDSv2 in the transport's fallback: tokens are "token-<n>", data from
// `items`.
class ScriptedImds {
 public:
  explicit ScriptedImds(FakeTransport& transport) {
    transport.SetFallback([this](const HttpRequest& request) { return Handle(request); });
  }

  void Set(const std::string& path, std::string value) {
    std::lock_guard<std::mutex> lock(mu_);
    items_[path] = std::move(value);
  }
  // Forgets every token issued so far (IMDS restart): reads with them get 401.
  void ExpireTokens() {
    std::lock_guard<std::mutex> lock(mu_);
    valid_token_.clear();
  }
  int token_puts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return token_puts_;
  }

 private:
  Result<HttpResponse> Handle(const HttpRequest& request) {
    std::lock_guard<std::mutex> lock(mu_);
    HttpResponse response;
    const std::string prefix = std::string(kBase) + "/latest/";
    if (request.url.rfind(prefix, 0) != 0) {
      response.status = 404;
      return response;
    }
    std::string path = request.url.substr(prefix.size());
    if (path == "api/token") {
      if (request.method != "PUT" ||
          FindHeader(request.headers, "x-aws-ec2-metadata-token-ttl-seconds") != "21600") {
        response.status = 400;
        return response;
      }
      valid_token_ = "token-" + std::to_string(++token_puts_);
      response.status = 200;
      response.body = valid_token_;
      return response;
    }
    auto token = FindHeader(request.headers, "x-aws-ec2-metadata-token");
    if (!token || valid_token_.empty() || *token != valid_token_) {
      response.status = 401;
      return response;
    }
    const std::string meta = "meta-data/";
    auto it = items_.find(path.rfind(meta, 0) == 0 ? path.substr(meta.size()) : path);
    if (it == items_.end()) {
      response.status = 404;
      response.body = "<html>Not Found</html>";
      return response;
    }
    response.status = 200;
    response.body = it->second;
    return response;
  }

  mutable std::mutex mu_;
  std::map<std::string, std::string> items_;
  std::string valid_token_;
  int token_puts_ = 0;
};

class ImdsClientTest : public ::testing::Test {
 protected:
  ImdsClientTest() : transport_(std::make_shared<FakeTransport>()), imds_(*transport_) {}

  std::shared_ptr<ImdsClient> Client(ImdsOptions options = {}) {
    return std::make_shared<ImdsClient>(std::move(options), transport_, clock_);
  }

  std::shared_ptr<FakeTransport> transport_;
  ScriptedImds imds_;
  FakeClock clock_;
};

TEST_F(ImdsClientTest, TokenIsFetchedOnceAndSentWithEveryRead) {
  imds_.Set("instance-id", "i-0abc");
  imds_.Set("instance-type", "m5.xlarge\n");
  auto client = Client();
  EXPECT_EQ(client->InstanceId().value(), "i-0abc");
  EXPECT_EQ(client->InstanceType().value(), "m5.xlarge");
  EXPECT_EQ(imds_.token_puts(), 1);

  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].url, "http://169.254.169.254/latest/api/token");
  EXPECT_EQ(FindHeader(requests[0].headers, "X-aws-ec2-metadata-token-ttl-seconds"), "21600");
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].url, "http://169.254.169.254/latest/meta-data/instance-id");
  EXPECT_EQ(FindHeader(requests[1].headers, "X-aws-ec2-metadata-token"), "token-1");
  EXPECT_EQ(FindHeader(requests[2].headers, "X-aws-ec2-metadata-token"), "token-1");
}

TEST_F(ImdsClientTest, TokenIsRenewedBeforeItsTtlRunsOut) {
  imds_.Set("instance-id", "i-1");
  auto client = Client();
  ASSERT_TRUE(client->InstanceId().ok());
  clock_.Advance(std::chrono::hours(5));
  ASSERT_TRUE(client->InstanceId().ok());
  EXPECT_EQ(imds_.token_puts(), 1);
  clock_.Advance(std::chrono::minutes(56));  // 4 min before the 6 h TTL ends
  ASSERT_TRUE(client->InstanceId().ok());
  EXPECT_EQ(imds_.token_puts(), 2);
}

TEST_F(ImdsClientTest, UnauthorizedReadGetsNewTokenAndRetriesOnce) {
  imds_.Set("placement/region", "eu-west-3");
  auto client = Client();
  ASSERT_TRUE(client->Region().ok());
  imds_.ExpireTokens();
  auto region = client->Region();
  ASSERT_TRUE(region.ok()) << region.error().ToString();
  EXPECT_EQ(*region, "eu-west-3");
  EXPECT_EQ(imds_.token_puts(), 2);
  EXPECT_EQ(transport_->request_count(), 5u);  // PUT GET | GET(401) PUT GET
}

TEST_F(ImdsClientTest, RepeatedUnauthorizedIsAnErrorAfterOneRetry) {
  auto transport = std::make_shared<FakeTransport>();
  transport->PushResponse(200, "t1");
  transport->PushResponse(401, "");
  transport->PushResponse(200, "t2");
  transport->PushResponse(401, "");
  ImdsClient client({}, transport, clock_);
  auto id = client.InstanceId();
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().http_status, 401);
  EXPECT_EQ(id.error().service, "IMDS");
  EXPECT_EQ(transport->request_count(), 4u);
}

// The IMDSv1 fallback the SDKs make on 403/404/405 must never happen here.
TEST_F(ImdsClientTest, FailedTokenPutIsAnErrorAndNeverATokenlessRead) {
  for (int status : {400, 403, 404, 405}) {
    auto transport = std::make_shared<FakeTransport>();
    transport->PushResponse(status, "");
    ImdsClient client({}, transport, clock_);
    auto id = client.InstanceId();
    ASSERT_FALSE(id.ok()) << status;
    EXPECT_EQ(id.error().http_status, status);
    EXPECT_FALSE(id.error().IsNotFound()) << "a missing token endpoint is not a missing item";
    ASSERT_EQ(transport->request_count(), 1u) << status;
    EXPECT_EQ(transport->requests()[0].method, "PUT");
  }
}

TEST_F(ImdsClientTest, DisabledFailsFastWithoutNetwork) {
  MapEnvironment env(
      std::map<std::string, std::string, std::less<>>{{"AWS_EC2_METADATA_DISABLED", "True"}});
  auto client = ImdsClient::Create(env, transport_, clock_);
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE((*client)->disabled());
  auto id = (*client)->InstanceId();
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message.find("IMDS disabled"), std::string::npos);
  EXPECT_FALSE((*client)->SpotInstanceAction().ok());
  EXPECT_FALSE((*client)->RoleCredentials().ok());
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(ImdsClientTest, EndpointFromEnvironmentKeepsBasePath) {
  MapEnvironment env(std::map<std::string, std::string, std::less<>>{
      {"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9999/t-7/"}});
  auto transport = std::make_shared<FakeTransport>();
  transport->PushResponse(200, "tok");
  transport->PushResponse(200, "c5.large");
  auto client = ImdsClient::Create(env, transport, clock_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->InstanceType().ok());
  auto requests = transport->requests();
  EXPECT_EQ(requests[0].url, "http://127.0.0.1:9999/t-7/latest/api/token");
  EXPECT_EQ(requests[1].url, "http://127.0.0.1:9999/t-7/latest/meta-data/instance-type");
}

TEST_F(ImdsClientTest, TimeoutsAreShortByDefaultAndConfigurable) {
  auto defaults = ImdsOptions::FromEnvironment(MapEnvironment());
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->timeout, std::chrono::milliseconds(1000));
  EXPECT_LE(defaults->attempts, 2);

  MapEnvironment env(std::map<std::string, std::string, std::less<>>{
      {"AWS_METADATA_SERVICE_TIMEOUT", "0.25"}, {"AWS_METADATA_SERVICE_NUM_ATTEMPTS", "3"}});
  auto options = ImdsOptions::FromEnvironment(env);
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(options->attempts, 3);

  transport_->SetFallback(
      [](const HttpRequest&) -> Result<HttpResponse> { return testing::ConnectionResetError(); });
  ImdsClient client(*options, transport_, clock_);
  auto id = client.InstanceId();
  ASSERT_FALSE(id.ok());
  EXPECT_TRUE(id.error().IsRetryable());
  EXPECT_NE(id.error().message.find("cannot reach IMDS"), std::string::npos);
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& request : requests) {
    EXPECT_EQ(request.connect_timeout, std::chrono::milliseconds(250));
    EXPECT_EQ(request.timeout, std::chrono::milliseconds(250));
  }

  MapEnvironment bad(
      std::map<std::string, std::string, std::less<>>{{"AWS_METADATA_SERVICE_TIMEOUT", "soon"}});
  EXPECT_FALSE(ImdsOptions::FromEnvironment(bad).ok());
}

TEST_F(ImdsClientTest, ServerErrorsAreRetriedWithinAttempts) {
  auto transport = std::make_shared<FakeTransport>();
  transport->PushResponse(503, "");
  transport->PushResponse(200, "tok");
  transport->PushResponse(500, "");
  transport->PushResponse(200, "i-9");
  ImdsClient client({}, transport, clock_);
  auto id = client.InstanceId();
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_EQ(*id, "i-9");
}

TEST_F(ImdsClientTest, SpotInstanceActionIsAbsentUntilScheduled) {
  auto client = Client();
  auto none = client->SpotInstanceAction();
  ASSERT_TRUE(none.ok()) << none.error().ToString();
  EXPECT_FALSE(none->has_value());

  imds_.Set("spot/instance-action", R"({"action": "terminate", "time": "2017-09-18T08:22:00Z"})");
  auto action = client->SpotInstanceAction();
  ASSERT_TRUE(action.ok()) << action.error().ToString();
  ASSERT_TRUE(action->has_value());
  EXPECT_EQ((*action)->action, "terminate");
  EXPECT_EQ((*action)->time, Clock::WallTime(std::chrono::seconds(1505722920)));

  imds_.Set("spot/instance-action", "not json");
  EXPECT_FALSE(client->SpotInstanceAction().ok());
}

TEST_F(ImdsClientTest, RebalanceAndTargetLifecycleState) {
  auto client = Client();
  auto no_rebalance = client->RebalanceRecommendation();
  ASSERT_TRUE(no_rebalance.ok());
  EXPECT_FALSE(no_rebalance->has_value());
  auto no_state = client->TargetLifecycleState();
  ASSERT_TRUE(no_state.ok());
  EXPECT_FALSE(no_state->has_value());

  imds_.Set("events/recommendations/rebalance", R"({"noticeTime": "2020-10-27T08:22:00Z"})");
  imds_.Set("autoscaling/target-lifecycle-state", "Terminated");
  auto rebalance = client->RebalanceRecommendation();
  ASSERT_TRUE(rebalance.ok());
  ASSERT_TRUE(rebalance->has_value());
  EXPECT_EQ((*rebalance)->notice_time, Clock::WallTime(std::chrono::seconds(1603786920)));
  auto state = client->TargetLifecycleState();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->value_or(""), "Terminated");
}

TEST_F(ImdsClientTest, PlacementAndLifeCycle) {
  imds_.Set("placement/availability-zone", "us-east-1c");
  imds_.Set("instance-life-cycle", "on-demand");
  auto client = Client();
  EXPECT_EQ(client->AvailabilityZone().value(), "us-east-1c");
  EXPECT_FALSE(client->IsSpot().value());
  imds_.Set("instance-life-cycle", "spot");
  EXPECT_TRUE(client->IsSpot().value());
  auto missing = client->Get("placement/availability-zone-id");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error().IsNotFound());
}

TEST_F(ImdsClientTest, AbsolutePathsReachDynamicData) {
  auto transport = std::make_shared<FakeTransport>();
  transport->PushResponse(200, "tok");
  transport->PushResponse(200, R"({"region":"us-east-1"})");
  ImdsClient client({}, transport, clock_);
  ASSERT_TRUE(client.Get("/latest/dynamic/instance-identity/document").ok());
  EXPECT_EQ(transport->requests()[1].url,
            "http://169.254.169.254/latest/dynamic/instance-identity/document");
}

TEST_F(ImdsClientTest, RoleCredentialsCarryExpiration) {
  imds_.Set("iam/security-credentials/", "worker-role\n");
  imds_.Set("iam/security-credentials/worker-role",
            R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAROLE",
                "SecretAccessKey":"role-secret-value","Token":"role-session-token",
                "Expiration":"2030-01-01T00:00:00Z","LastUpdated":"2029-12-31T18:00:00Z"})");
  auto credentials = Client()->RoleCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIAROLE");
  EXPECT_EQ(credentials->secret_access_key, "role-secret-value");
  EXPECT_EQ(credentials->session_token, "role-session-token");
  ASSERT_TRUE(credentials->expiration.has_value());
  EXPECT_EQ(*credentials->expiration, Clock::WallTime(std::chrono::seconds(1893456000)));
}

TEST_F(ImdsClientTest, RoleCredentialsFailWithoutRoleOrWithoutSuccess) {
  auto client = Client();
  auto no_role = client->RoleCredentials();
  ASSERT_FALSE(no_role.ok());
  EXPECT_NE(no_role.error().message.find("no IAM role"), std::string::npos);

  imds_.Set("iam/security-credentials/", "worker-role");
  imds_.Set("iam/security-credentials/worker-role",
            R"({"Code":"AssumeRoleUnauthorizedAccess","Message":"EC2 cannot assume the role",
                "AccessKeyId":"ASIAX","SecretAccessKey":"must-not-leak"})");
  auto failed = client->RoleCredentials();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, "AssumeRoleUnauthorizedAccess");
  EXPECT_EQ(failed.error().ToString().find("must-not-leak"), std::string::npos);

  imds_.Set("iam/security-credentials/worker-role",
            R"({"Code":"Success","AccessKeyId":"ASIAX","SecretAccessKey":"must-not-leak",)");
  auto malformed = client->RoleCredentials();
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.error().ToString().find("must-not-leak"), std::string::npos);
}

TEST_F(ImdsClientTest, ErrorsNeverQuoteTheSessionToken) {
  auto transport = std::make_shared<FakeTransport>();
  transport->PushResponse(200, "secret-session-token-value");
  transport->PushResponse(403, "denied secret-session-token-value");
  ImdsClient client({}, transport, clock_);
  auto id = client.InstanceId();
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().ToString().find("secret-session-token-value"), std::string::npos);
}

}  // namespace
}  // namespace spotgrid
