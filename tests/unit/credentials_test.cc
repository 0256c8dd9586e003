// The credentials chain (order, profiles, container, IMDS), the refresh windows
// of cached temporary credentials, thread safety, and that secrets never reach
// a log line or an Error.
#include "spotgrid/aws/credentials.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "spotgrid/aws/imds_client.h"
#include "spotgrid/core/iso8601.h"
#include "spotgrid/core/log.h"
#include "support/fake_clock.h"
#include "support/fake_transport.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using testing::FakeClock;
using testing::FakeTransport;
using namespace std::chrono_literals;

using Vars = std::map<std::string, std::string, std::less<>>;

std::string CredentialsJson(const std::string& key_id, const std::string& secret,
                            Clock::WallTime expiration, bool with_code) {
  std::string json = "{";
  if (with_code) json += R"("Code":"Success","Type":"AWS-HMAC",)";
  json += R"("AccessKeyId":")" + key_id + R"(","SecretAccessKey":")" + secret +
          R"(","Token":"token-for-)" + key_id + R"(","Expiration":")" + FormatIso8601(expiration) +
          R"("})";
  return json;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Answers container and IMDS requests the way those services would, counting
// each.
class ChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("creds");
    vars_["AWS_SHARED_CREDENTIALS_FILE"] = dir_ + "/credentials";
    vars_["AWS_CONFIG_FILE"] = dir_ + "/config";
    transport_->SetFallback([this](const HttpRequest& request) -> Result<HttpResponse> {
      HttpResponse response;
      response.status = 200;
      const auto expiration = clock_.Now() + 6h;
      if (request.url.rfind("http://169.254.170.2/", 0) == 0 ||
          request.url.rfind("http://127.0.0.1:51679/", 0) == 0) {
        ++container_requests_;
        response.body = CredentialsJson("ASIACONTAINER", "container-secret", expiration, false);
      } else if (request.url == "http://169.254.169.254/latest/api/token") {
        response.body = "imds-token";
      } else if (request.url ==
                 "http://169.254.169.254/latest/meta-data/"
                 "iam/security-credentials/") {
        response.body = "role";
      } else if (request.url ==
                 "http://169.254.169.254/latest/meta-data/"
                 "iam/security-credentials/role") {
        ++imds_credential_requests_;
        response.body = CredentialsJson("ASIAIMDS", "imds-secret", expiration, true);
      } else {
        response.status = 404;
      }
      return response;
    });
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<CredentialsProvider> Chain() {
    env_ = MapEnvironment(vars_);
    auto imds = ImdsClient::Create(env_, transport_, clock_);
    EXPECT_TRUE(imds.ok());
    return MakeDefaultCredentialsChain(env_, transport_, *imds, clock_);
  }

  void EnableAllSources() {
    vars_["AWS_ACCESS_KEY_ID"] = "AKIAENV";
    vars_["AWS_SECRET_ACCESS_KEY"] = "env-secret";
    WriteFile(dir_ + "/credentials",
              "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key "
              "= file-secret\n");
    vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/abc";
  }

  std::string dir_;
  Vars vars_;
  MapEnvironment env_;
  std::shared_ptr<FakeTransport> transport_ = std::make_shared<FakeTransport>();
  FakeClock clock_;
  int container_requests_ = 0;
  int imds_credential_requests_ = 0;
};

TEST_F(ChainTest, EnvironmentBeatsFilesContainerAndImds) {
  EnableAllSources();
  vars_["AWS_SESSION_TOKEN"] = "env-session";
  auto credentials = Chain()->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIAENV");
  EXPECT_EQ(credentials->secret_access_key, "env-secret");
  EXPECT_EQ(credentials->session_token, "env-session");
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(ChainTest, FilesBeatContainerAndImds) {
  EnableAllSources();
  vars_.erase("AWS_ACCESS_KEY_ID");
  vars_.erase("AWS_SECRET_ACCESS_KEY");
  auto credentials = Chain()->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIAFILE");
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(ChainTest, ContainerBeatsImds) {
  vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/abc";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "container-auth";
  auto credentials = Chain()->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIACONTAINER");
  EXPECT_EQ(credentials->session_token, "token-for-ASIACONTAINER");
  ASSERT_TRUE(credentials->expiration.has_value());
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].url, "http://169.254.170.2/v2/credentials/abc");
  EXPECT_EQ(FindHeader(requests[0].headers, "Authorization"), "container-auth");
  EXPECT_EQ(imds_credential_requests_, 0);
}

TEST_F(ChainTest, ImdsRoleCredentialsWhenNothingElseIsConfigured) {
  auto chain = Chain();
  auto credentials = chain->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIAIMDS");
  EXPECT_EQ(credentials->session_token, "token-for-ASIAIMDS");
  // Cached: a second call does not go back to IMDS.
  ASSERT_TRUE(chain->GetCredentials().ok());
  EXPECT_EQ(imds_credential_requests_, 1);
}

TEST_F(ChainTest, NothingConfiguredAndImdsDisabledIsAClearError) {
  vars_["AWS_EC2_METADATA_DISABLED"] = "true";
  auto credentials = Chain()->GetCredentials();
  ASSERT_FALSE(credentials.ok());
  EXPECT_NE(credentials.error().message.find("no AWS credentials found"), std::string::npos);
  EXPECT_NE(credentials.error().message.find("IMDS is disabled"), std::string::npos);
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(ChainTest, HalfConfiguredEnvironmentIsAnErrorNotAFallThrough) {
  EnableAllSources();
  vars_.erase("AWS_SECRET_ACCESS_KEY");
  auto missing_secret = Chain()->GetCredentials();
  ASSERT_FALSE(missing_secret.ok());
  EXPECT_NE(missing_secret.error().message.find("AWS_SECRET_ACCESS_KEY"), std::string::npos);

  vars_.erase("AWS_ACCESS_KEY_ID");
  vars_["AWS_SECRET_ACCESS_KEY"] = "env-secret";
  auto missing_key = Chain()->GetCredentials();
  ASSERT_FALSE(missing_key.ok());
  EXPECT_NE(missing_key.error().message.find("AWS_ACCESS_KEY_ID"), std::string::npos);
  EXPECT_EQ(missing_key.error().ToString().find("env-secret"), std::string::npos);
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(ChainTest, ProfileIsSelectedByAwsProfile) {
  WriteFile(dir_ + "/credentials",
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n"
            "[ci]\naws_access_key_id = AKIACI\naws_secret_access_key = s2\n"
            "aws_session_token = ci-session\n");
  auto by_default = Chain()->GetCredentials();
  ASSERT_TRUE(by_default.ok());
  EXPECT_EQ(by_default->access_key_id, "AKIADEFAULT");

  vars_["AWS_PROFILE"] = "ci";
  auto selected = Chain()->GetCredentials();
  ASSERT_TRUE(selected.ok());
  EXPECT_EQ(selected->access_key_id, "AKIACI");
  EXPECT_EQ(selected->session_token, "ci-session");
}

TEST_F(ChainTest, CredentialsFileWinsOverConfigFileForTheSameProfile) {
  WriteFile(dir_ + "/credentials",
            "[dev]\naws_access_key_id = AKIACREDFILE\naws_secret_access_key = "
            "cred-secret\n");
  WriteFile(dir_ + "/config",
            "[profile dev]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = "
            "cfg\n"
            "aws_session_token = config-session\n[profile only-config]\n"
            "aws_access_key_id = AKIAONLYCONFIG\naws_secret_access_key = cfg2\n");
  vars_["AWS_PROFILE"] = "dev";
  auto dev = Chain()->GetCredentials();
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(dev->access_key_id, "AKIACREDFILE");
  EXPECT_EQ(dev->secret_access_key, "cred-secret");
  EXPECT_EQ(dev->session_token, "") << "keys from one file are not mixed with the other's";

  vars_["AWS_PROFILE"] = "only-config";
  auto config_only = Chain()->GetCredentials();
  ASSERT_TRUE(config_only.ok());
  EXPECT_EQ(config_only->access_key_id, "AKIAONLYCONFIG");
}

TEST_F(ChainTest, MissingProfileOrRoleProfileWithoutSourceIsAnError) {
  vars_["AWS_PROFILE"] = "nowhere";
  auto missing = Chain()->GetCredentials();
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("'nowhere'"), std::string::npos);

  WriteFile(dir_ + "/config", "[profile assume]\nrole_arn = arn:aws:iam::1:role/x\n");
  vars_["AWS_PROFILE"] = "assume";
  auto sourceless = Chain()->GetCredentials();
  ASSERT_FALSE(sourceless.ok());
  EXPECT_NE(sourceless.error().message.find("neither source_profile nor credential_source"),
            std::string::npos)
      << sourceless.error().message;
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(ChainTest, ContainerAuthorizationTokenFileWinsAndIsReadOnEachRefresh) {
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://127.0.0.1:51679/creds";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "from-env";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = dir_ + "/token";
  WriteFile(dir_ + "/token", "from-file-1\n");
  auto chain = Chain();
  ASSERT_TRUE(chain->GetCredentials().ok());
  WriteFile(dir_ + "/token", "from-file-2");
  clock_.Advance(6h - 5min);  // inside the mandatory window
  ASSERT_TRUE(chain->GetCredentials().ok());
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(FindHeader(requests[0].headers, "Authorization"), "from-file-1");
  EXPECT_EQ(FindHeader(requests[1].headers, "Authorization"), "from-file-2");

  WriteFile(dir_ + "/token", "line1\nline2");
  clock_.Advance(6h);
  auto bad = chain->GetCredentials();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("line break"), std::string::npos);
  EXPECT_EQ(bad.error().ToString().find("line1"), std::string::npos);
}

TEST_F(ChainTest, ContainerFullUriOverPlainHttpOnlyToTrustedHosts) {
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://credentials.example.com/creds";
  auto rejected = Chain()->GetCredentials();
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.error().message.find("credentials.example.com"), std::string::npos);
  EXPECT_EQ(transport_->request_count(), 0u);

  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "https://credentials.example.com/creds";
  transport_->PushResponse(200, CredentialsJson("ASIAHTTPS", "x", clock_.Now() + 1h, false));
  auto https = Chain()->GetCredentials();
  ASSERT_TRUE(https.ok()) << https.error().ToString();
  EXPECT_EQ(https->access_key_id, "ASIAHTTPS");
}

// --- Refresh windows, on a provider whose source the test controls ---

class RefreshTest : public ::testing::Test {
 protected:
  RefreshTest() {
    provider_ = MakeRefreshingCredentialsProvider(
        [this]() -> Result<Credentials> {
          ++fetches_;
          if (fail_) {
            Error e = testing::ConnectionResetError();
            e.service = "IMDS";
            return e;
          }
          Credentials c{"ASIA" + std::to_string(fetches_.load()), "secret", "token",
                        clock_.Now() + lifetime_};
          return c;
        },
        clock_, "test credentials");
  }

  FakeClock clock_;
  std::atomic<int> fetches_{0};
  std::atomic<bool> fail_{false};
  std::chrono::minutes lifetime_{60};
  std::shared_ptr<CredentialsProvider> provider_;
};

TEST_F(RefreshTest, CachedUntilTheAdvisoryWindowThenRefreshedOnce) {
  EXPECT_EQ(provider_->GetCredentials()->access_key_id, "ASIA1");
  clock_.Advance(44min);  // 16 min left
  EXPECT_EQ(provider_->GetCredentials()->access_key_id, "ASIA1");
  EXPECT_EQ(fetches_, 1);
  clock_.Advance(2min);  // 14 min left: advisory
  EXPECT_EQ(provider_->GetCredentials()->access_key_id, "ASIA2");
  EXPECT_EQ(provider_->GetCredentials()->access_key_id, "ASIA2");
  EXPECT_EQ(fetches_, 2);
}

TEST_F(RefreshTest, AdvisoryFailureKeepsCurrentCredentialsMandatoryFailureIsAnError) {
  ASSERT_TRUE(provider_->GetCredentials().ok());
  fail_ = true;
  clock_.Advance(47min);  // 13 min left
  auto kept = provider_->GetCredentials();
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->access_key_id, "ASIA1");
  EXPECT_EQ(fetches_, 2);

  clock_.Advance(4min);  // 9 min left: mandatory
  auto failed = provider_->GetCredentials();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().service, "IMDS");
  EXPECT_EQ(fetches_, 3);

  fail_ = false;
  auto recovered = provider_->GetCredentials();
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(recovered->access_key_id, "ASIA4");
}

TEST_F(RefreshTest, SourceThatOnlyHasShortLivedCredentialsIsNotAskedOnEveryCall) {
  lifetime_ = 7min;  // EC2 may still hand out the old role credentials near their end
  ASSERT_TRUE(provider_->GetCredentials().ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(provider_->GetCredentials().ok());
  EXPECT_EQ(fetches_, 1);
  clock_.Advance(61s);
  ASSERT_TRUE(provider_->GetCredentials().ok());
  EXPECT_EQ(fetches_, 2);
}

TEST_F(RefreshTest, ConcurrentCallersWithNothingCachedFetchOnce) {
  std::atomic<int> started{0};
  constexpr int kThreads = 8;
  auto provider = MakeRefreshingCredentialsProvider(
      [&]() -> Result<Credentials> {
        ++fetches_;
        // Keep the fetch in flight until every caller has arrived.
        testing::WaitUntil([&] { return started.load() == kThreads; }, 5s, 1ms);
        return Credentials{"ASIASHARED", "secret", "token", clock_.Now() + 1h};
      },
      clock_, "test credentials");
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      ++started;
      auto credentials = provider->GetCredentials();
      if (credentials.ok() && credentials->access_key_id == "ASIASHARED") ++ok;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok, kThreads);
  EXPECT_EQ(fetches_, 1);
}

TEST_F(RefreshTest, AdvisoryRefreshInFlightDoesNotBlockOtherCallers) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> in_fetch{false};
  auto provider = MakeRefreshingCredentialsProvider(
      [&]() -> Result<Credentials> {
        int n = ++fetches_;
        if (n == 2) {
          in_fetch = true;
          released.wait();
        }
        return Credentials{"ASIA" + std::to_string(n), "secret", "token", clock_.Now() + 1h};
      },
      clock_, "test credentials");
  ASSERT_TRUE(provider->GetCredentials().ok());
  clock_.Advance(47min);  // advisory
  auto refresher = std::async(std::launch::async, [&] { return provider->GetCredentials(); });
  ASSERT_TRUE(testing::WaitUntil([&] { return in_fetch.load(); }, 5s));
  auto other = std::async(std::launch::async, [&] { return provider->GetCredentials(); });
  bool other_done = other.wait_for(5s) == std::future_status::ready;
  release.set_value();
  ASSERT_TRUE(other_done) << "a caller blocked behind an advisory refresh";
  EXPECT_EQ(other.get()->access_key_id, "ASIA1");
  EXPECT_EQ(refresher.get()->access_key_id, "ASIA2");
}

// --- Secrets ---

TEST(CredentialsSecretsTest, NoLogLineOrErrorContainsASecret) {
  auto stream = std::make_shared<std::ostringstream>();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*stream);
  auto logger = std::make_shared<spdlog::logger>("spotgrid", sink);
  logger->set_level(spdlog::level::trace);
  SetLogger(logger);

  const std::vector<std::string> secrets = {"SECRETKEYVALUE", "SESSIONTOKENVALUE",
                                            "AUTHTOKENVALUE"};
  std::vector<std::string> errors;
  FakeClock clock;
  auto transport = std::make_shared<FakeTransport>();

  // Half-set environment holding a secret.
  {
    MapEnvironment env(Vars{{"AWS_SECRET_ACCESS_KEY", "SECRETKEYVALUE"},
                            {"AWS_SESSION_TOKEN", "SESSIONTOKENVALUE"},
                            {"AWS_CONFIG_FILE", "/dev/null"},
                            {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"}});
    auto result = MakeDefaultCredentialsChain(env, transport, nullptr, clock)->GetCredentials();
    ASSERT_FALSE(result.ok());
    errors.push_back(result.error().ToString());
  }
  // Container endpoint answering garbage that contains secrets, then an error
  // status.
  MapEnvironment env(Vars{{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds"},
                          {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AUTHTOKENVALUE"},
                          {"AWS_CONFIG_FILE", "/dev/null"},
                          {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"}});
  auto chain = MakeDefaultCredentialsChain(env, transport, nullptr, clock);
  transport->PushResponse(200, R"({"AccessKeyId":"ASIA","SecretAccessKey":"SECRETKEYVALUE",)");
  auto malformed = chain->GetCredentials();
  ASSERT_FALSE(malformed.ok());
  errors.push_back(malformed.error().ToString());

  transport->PushResponse(200, R"({"AccessKeyId":"ASIA","SecretAccessKey":"SECRETKEYVALUE",
      "Token":"SESSIONTOKENVALUE","Expiration":"not a time SECRETKEYVALUE"})");
  auto bad_time = chain->GetCredentials();
  ASSERT_FALSE(bad_time.ok());
  errors.push_back(bad_time.error().ToString());

  // Good credentials, then an advisory refresh that fails (logged), then a
  // mandatory one.
  transport->PushResponse(200,
                          CredentialsJson("ASIAOK", "SECRETKEYVALUE", clock.Now() + 1h, false));
  auto good = chain->GetCredentials();
  ASSERT_TRUE(good.ok()) << good.error().ToString();
  clock.Advance(47min);
  for (int i = 0; i < 3; ++i) {
    transport->PushResponse(500, "SECRETKEYVALUE AUTHTOKENVALUE");
  }
  ASSERT_TRUE(chain->GetCredentials().ok());
  clock.Advance(6min);
  transport->PushResponse(403, R"({"message":"denied"})");
  auto mandatory = chain->GetCredentials();
  ASSERT_FALSE(mandatory.ok());
  errors.push_back(mandatory.error().ToString());

  logger->flush();
  const std::string log = stream->str();
  EXPECT_NE(log.find("refreshing credentials failed"), std::string::npos) << log;
  for (const auto& secret : secrets) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " in log: " << log;
    for (const auto& error : errors) {
      EXPECT_EQ(error.find(secret), std::string::npos) << secret << " in error: " << error;
    }
  }
  SetLogger(std::make_shared<spdlog::logger>("spotgrid",
                                             std::make_shared<spdlog::sinks::stderr_sink_mt>()));
}

}  // namespace
}  // namespace spotgrid
