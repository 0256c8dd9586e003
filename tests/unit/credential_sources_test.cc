// The credential sources beyond static keys, each against FakeTransport and a fake clock:
// credential_process (word splitting, no shell, the JSON contract), web identity, role
// profiles (source_profile chains, cycles, options, MFA), SSO (token cache, refresh through
// SSO OIDC, login hints), their precedence inside a profile, and that no secret reaches an
// Error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/credentials/process.h"
#include "spotgrid/aws/credentials/sso_token.h"
#include "spotgrid/aws/imds_client.h"
#include "spotgrid/core/iso8601.h"
#include "support/fake_clock.h"
#include "support/fake_transport.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using testing::FakeClock;
using testing::FakeTransport;
using namespace std::chrono_literals;

void WriteText(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The form parameter `name` of a Query body ("" if absent); values are URI-encoded.
std::string FormValue(const std::string& body, const std::string& name) {
  size_t pos = ("&" + body).find("&" + name + "=");
  if (pos == std::string::npos) return "";
  size_t start = pos + name.size() + 1;
  return body.substr(start, body.find('&', start) - start);
}

TEST(SplitCommandLineTest, FollowsPythonShlexSplit) {
  // Expected values are what Python's shlex.split returns for the same input.
  auto words = SplitCommandLine(R"(/bin/tool "a b" 'c "d"' e\ f "g\"h" "i\j" k'l'm)");
  ASSERT_TRUE(words.ok());
  EXPECT_EQ(*words, (std::vector<std::string>{"/bin/tool", "a b", "c \"d\"", "e f", "g\"h", "i\\j",
                                              "klm"}));
  EXPECT_FALSE(SplitCommandLine("tool 'open").ok());
  EXPECT_FALSE(SplitCommandLine("tool \"open").ok());
  EXPECT_FALSE(SplitCommandLine("tool \\").ok());
  EXPECT_TRUE(SplitCommandLine("  ")->empty());
}

TEST(CredentialProcessTest, RunsWithoutAShellAndParsesVersionOne) {
  // A shell would expand $HOME; without one the program receives it literally.
  auto credentials = RunCredentialProcess(
      R"(/usr/bin/printf '%s' '{"Version": 1, "AccessKeyId": "$HOME", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "2030-01-01T00:00:00Z"}')",
      "p");
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "$HOME");
  EXPECT_EQ(credentials->session_token, "t");
  ASSERT_TRUE(credentials->expiration.has_value());
  EXPECT_EQ(FormatIso8601(*credentials->expiration), "2030-01-01T00:00:00Z");
}

TEST(CredentialProcessTest, FailureReportsExitStatusAndStderrButNeverStdout) {
  auto failed = RunCredentialProcess(
      R"(/bin/sh -c 'echo SECRETOUT; echo "please run my-login" >&2; exit 3')", "dev");
  ASSERT_FALSE(failed.ok());
  const std::string message = failed.error().ToString();
  EXPECT_NE(message.find("exited with status 3"), std::string::npos) << message;
  EXPECT_NE(message.find("please run my-login"), std::string::npos) << message;
  EXPECT_NE(message.find("'dev'"), std::string::npos) << message;
  EXPECT_EQ(message.find("SECRETOUT"), std::string::npos) << message;

  EXPECT_FALSE(RunCredentialProcess("/nonexistent/credential-helper", "dev").ok());
  EXPECT_FALSE(ParseCredentialProcessOutput(
                   R"({"Version": 2, "AccessKeyId": "a", "SecretAccessKey": "s"})", "p")
                   .ok());
  auto missing = ParseCredentialProcessOutput(R"({"Version": 1, "AccessKeyId": "a"})", "p");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("SecretAccessKey"), std::string::npos);
  auto no_expiry = ParseCredentialProcessOutput(
      R"({"Version": 1, "AccessKeyId": "a", "SecretAccessKey": "SECRETKEY"})", "p");
  ASSERT_TRUE(no_expiry.ok());
  EXPECT_FALSE(no_expiry->expiration.has_value());
}

std::string StsXml(const std::string& operation, const std::string& key,
                   Clock::WallTime expiration) {
  return "<" + operation + "Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><" +
         operation + "Result><Credentials><AccessKeyId>" + key +
         "</AccessKeyId><SecretAccessKey>secret-" + key + "</SecretAccessKey><SessionToken>token-" +
         key + "</SessionToken><Expiration>" + FormatIso8601(expiration) +
         "</Expiration></Credentials></" + operation + "Result><ResponseMetadata><RequestId>req-" +
         key + "</RequestId></ResponseMetadata></" + operation + "Response>";
}

// A temporary HOME with ~/.aws, fake endpoints for STS, SSO and SSO OIDC, and IMDS disabled.
class SourcesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = testing::MakeTempDir("sources");
    env_.Set("HOME", home_);
    env_.Set("AWS_EC2_METADATA_DISABLED", "true");
    env_.Set("AWS_ENDPOINT_URL_STS", "http://sts.fake");
    env_.Set("AWS_ENDPOINT_URL_SSO", "http://sso.fake");
    env_.Set("AWS_ENDPOINT_URL_SSO_OIDC", "http://oidc.fake");
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  void Config(const std::string& text) { WriteText(home_ + "/.aws/config", text); }
  void CredentialsFile(const std::string& text) { WriteText(home_ + "/.aws/credentials", text); }

  std::shared_ptr<CredentialsProvider> Chain(MfaPrompt prompt = {}) {
    auto imds = ImdsClient::Create(env_, transport_, clock_);
    EXPECT_TRUE(imds.ok());
    if (!prompt) {
      prompt = [](const std::string&, const std::string&) -> Result<std::string> {
        return Error::InvalidInput("no terminal in this test");
      };
    }
    return MakeDefaultCredentialsChain(env_, transport_, *imds, clock_, prompt);
  }

  HttpResponse Xml(std::string body) {
    HttpResponse response;
    response.status = 200;
    response.body = std::move(body);
    return response;
  }

  std::string home_;
  MapEnvironment env_;
  std::shared_ptr<FakeTransport> transport_ = std::make_shared<FakeTransport>();
  FakeClock clock_;
};

TEST_F(SourcesTest, WebIdentityFromEnvironmentIsUnsignedAndRereadsTheTokenFile) {
  WriteText(home_ + "/token", "jwt-one\n");
  env_.Set("AWS_WEB_IDENTITY_TOKEN_FILE", home_ + "/token");
  env_.Set("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa");
  env_.Set("AWS_ROLE_SESSION_NAME", "pod-7");
  transport_->SetFallback([&](const HttpRequest&) -> Result<HttpResponse> {
    return Xml(StsXml("AssumeRoleWithWebIdentity", "ASIAWEB", clock_.Now() + 1h));
  });
  auto chain = Chain();
  auto credentials = chain->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIAWEB");
  auto first = transport_->requests().at(0);
  EXPECT_EQ(first.url, "http://sts.fake/");
  EXPECT_FALSE(FindHeader(first.headers, "authorization").has_value());
  EXPECT_EQ(FormValue(first.body, "Action"), "AssumeRoleWithWebIdentity");
  EXPECT_EQ(FormValue(first.body, "WebIdentityToken"), "jwt-one");
  EXPECT_EQ(FormValue(first.body, "RoleSessionName"), "pod-7");

  // Cached until the refresh window, then fetched again with the rotated token.
  ASSERT_TRUE(chain->GetCredentials().ok());
  EXPECT_EQ(transport_->request_count(), 1u);
  WriteText(home_ + "/token", "jwt-two");
  clock_.Advance(50min);
  ASSERT_TRUE(chain->GetCredentials().ok());
  ASSERT_EQ(transport_->request_count(), 2u);
  EXPECT_EQ(FormValue(transport_->requests().at(1).body, "WebIdentityToken"), "jwt-two");
}

TEST_F(SourcesTest, RoleChainSignsEachStepWithThePreviousCredentials) {
  CredentialsFile("[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret\n");
  Config(
      "[profile one]\nrole_arn = arn:aws:iam::1:role/one\nsource_profile = base\n"
      "[profile two]\nrole_arn = arn:aws:iam::1:role/two\nsource_profile = one\n"
      "external_id = ext-9\nrole_session_name = alice\nduration_seconds = 1800\n");
  env_.Set("AWS_PROFILE", "two");
  transport_->SetFallback([&](const HttpRequest& request) -> Result<HttpResponse> {
    const bool first = FormValue(request.body, "RoleArn").find("one") != std::string::npos;
    return Xml(StsXml("AssumeRole", first ? "ASIAONE" : "ASIATWO", clock_.Now() + 1h));
  });
  auto credentials = Chain()->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIATWO");
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(FindHeader(requests[0].headers, "authorization")->find("Credential=AKIABASE/"),
            std::string::npos);
  EXPECT_NE(FindHeader(requests[1].headers, "authorization")->find("Credential=ASIAONE/"),
            std::string::npos);
  EXPECT_EQ(FindHeader(requests[1].headers, "x-amz-security-token"), "token-ASIAONE");
  EXPECT_EQ(FormValue(requests[1].body, "ExternalId"), "ext-9");
  EXPECT_EQ(FormValue(requests[1].body, "RoleSessionName"), "alice");
  EXPECT_EQ(FormValue(requests[1].body, "DurationSeconds"), "1800");
}

TEST_F(SourcesTest, RoleCycleAndMissingSourceAreErrorsBeforeAnyRequest) {
  Config(
      "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n"
      "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n"
      "[profile c]\nrole_arn = arn:aws:iam::1:role/c\nsource_profile = ghost\n"
      "[profile d]\nrole_arn = arn:aws:iam::1:role/d\nsource_profile = a\n"
      "credential_source = Environment\n");
  for (const auto& [profile, expected] : std::vector<std::pair<std::string, std::string>>{
           {"a", "loops: a -> b -> a"}, {"c", "'ghost'"}, {"d", "both source_profile"}}) {
    env_.Set("AWS_PROFILE", profile);
    auto credentials = Chain()->GetCredentials();
    ASSERT_FALSE(credentials.ok()) << profile;
    EXPECT_NE(credentials.error().message.find(expected), std::string::npos)
        << credentials.error().message;
  }
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(SourcesTest, MfaCodeIsAskedForAndSentWithTheSerial) {
  CredentialsFile("[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = s\n");
  Config(
      "[profile mfa]\nrole_arn = arn:aws:iam::1:role/m\nsource_profile = base\n"
      "mfa_serial = arn:aws:iam::1:mfa/alice\n");
  env_.Set("AWS_PROFILE", "mfa");
  transport_->SetFallback([&](const HttpRequest&) -> Result<HttpResponse> {
    return Xml(StsXml("AssumeRole", "ASIAMFA", clock_.Now() + 1h));
  });
  std::string asked_serial;
  auto credentials =
      Chain([&](const std::string&, const std::string& serial) -> Result<std::string> {
        asked_serial = serial;
        return std::string("123456\n");
      })->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(asked_serial, "arn:aws:iam::1:mfa/alice");
  auto request = transport_->requests().at(0);
  EXPECT_EQ(FormValue(request.body, "TokenCode"), "123456");
  EXPECT_EQ(FormValue(request.body, "SerialNumber"), "arn%3Aaws%3Aiam%3A%3A1%3Amfa%2Falice");

  // Nobody to ask: the prompt's error, and nothing is sent.
  auto none = Chain()->GetCredentials();
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no terminal"), std::string::npos);
  EXPECT_EQ(transport_->request_count(), 1u);
}

TEST_F(SourcesTest, StsErrorNamesServiceOperationCodeAndRequestId) {
  CredentialsFile("[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = s\n");
  Config("[profile r]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n");
  env_.Set("AWS_PROFILE", "r");
  transport_->SetFallback([&](const HttpRequest&) -> Result<HttpResponse> {
    HttpResponse response;
    response.status = 403;
    response.body =
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not "
        "authorized</Message></Error><RequestId>req-403</RequestId></ErrorResponse>";
    return response;
  });
  auto credentials = Chain()->GetCredentials();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.error().service, "STS");
  EXPECT_EQ(credentials.error().operation, "AssumeRole");
  EXPECT_EQ(credentials.error().http_status, 403);
  EXPECT_EQ(credentials.error().code, "AccessDenied");
  EXPECT_EQ(credentials.error().request_id, "req-403");
}

constexpr const char* kSsoConfig =
    "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\n"
    "sso_role_name = Researcher\n"
    "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n";

HttpResponse RoleCredentialsResponse(Clock::WallTime expiration) {
  HttpResponse response;
  response.status = 200;
  response.body =
      nlohmann::json{{"roleCredentials",
                      {{"accessKeyId", "ASIASSO"},
                       {"secretAccessKey", "SSOSECRET"},
                       {"sessionToken", "SSOSESSIONTOKEN"},
                       {"expiration", std::chrono::duration_cast<std::chrono::milliseconds>(
                                          expiration.time_since_epoch())
                                          .count()}}}}
          .dump();
  return response;
}

TEST_F(SourcesTest, SsoSessionWithFreshTokenCallsGetRoleCredentialsWithTheBearerToken) {
  Config(kSsoConfig);
  env_.Set("AWS_PROFILE", "dev");
  WriteText(SsoTokenCachePath(home_, "corp"),
            nlohmann::json{{"accessToken", "ACCESSTOKEN"},
                           {"expiresAt", FormatIso8601(clock_.Now() + 8h)}}
                .dump());
  transport_->SetFallback([&](const HttpRequest&) -> Result<HttpResponse> {
    return RoleCredentialsResponse(clock_.Now() + 1h);
  });
  auto credentials = Chain()->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIASSO");
  auto request = transport_->requests().at(0);
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.url,
            "http://sso.fake/federation/credentials?account_id=111122223333&role_name=Researcher");
  EXPECT_EQ(FindHeader(request.headers, "x-amz-sso_bearer_token"), "ACCESSTOKEN");
  EXPECT_FALSE(FindHeader(request.headers, "authorization").has_value());
}

TEST_F(SourcesTest, ExpiredSsoSessionTokenIsRefreshedAndWrittenBack) {
  Config(kSsoConfig);
  env_.Set("AWS_PROFILE", "dev");
  const std::string cache = SsoTokenCachePath(home_, "corp");
  WriteText(cache, nlohmann::json{{"accessToken", "OLDTOKEN"},
                                  {"expiresAt", FormatIso8601(clock_.Now() - 1h)},
                                  {"refreshToken", "REFRESHTOKEN"},
                                  {"clientId", "client-1"},
                                  {"clientSecret", "CLIENTSECRET"},
                                  {"registrationExpiresAt", FormatIso8601(clock_.Now() + 24h)}}
                       .dump());
  transport_->SetFallback([&](const HttpRequest& request) -> Result<HttpResponse> {
    if (request.url == "http://oidc.fake/token") {
      HttpResponse response;
      response.status = 200;
      response.body = R"({"accessToken":"NEWTOKEN","tokenType":"Bearer","expiresIn":28800,)"
                      R"("refreshToken":"NEWREFRESH"})";
      return response;
    }
    return RoleCredentialsResponse(clock_.Now() + 1h);
  });
  auto credentials = Chain()->GetCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.error().ToString();
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  auto body = nlohmann::json::parse(requests[0].body);
  EXPECT_EQ(body["grantType"], "refresh_token");
  EXPECT_EQ(body["refreshToken"], "REFRESHTOKEN");
  EXPECT_EQ(body["clientId"], "client-1");
  EXPECT_EQ(body["clientSecret"], "CLIENTSECRET");
  EXPECT_EQ(FindHeader(requests[1].headers, "x-amz-sso_bearer_token"), "NEWTOKEN");
  auto saved = nlohmann::json::parse(ReadText(cache));
  EXPECT_EQ(saved["accessToken"], "NEWTOKEN");
  EXPECT_EQ(saved["refreshToken"], "NEWREFRESH");
  EXPECT_EQ(saved["expiresAt"], FormatIso8601(clock_.Now() + 8h));
  EXPECT_EQ(saved["clientSecret"], "CLIENTSECRET");
  EXPECT_EQ(std::filesystem::status(cache).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST_F(SourcesTest, LoginNeededIsOneHintAndNoTokenLeaks) {
  Config(kSsoConfig);
  env_.Set("AWS_PROFILE", "dev");
  // No cache file at all.
  auto missing = Chain()->GetCredentials();
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("run: aws sso login --profile dev"), std::string::npos)
      << missing.error().message;
  EXPECT_EQ(transport_->request_count(), 0u);

  // Expired, and the refresh is refused: the hint again, without any token in it.
  WriteText(SsoTokenCachePath(home_, "corp"),
            nlohmann::json{{"accessToken", "OLDTOKEN"},
                           {"expiresAt", FormatIso8601(clock_.Now() - 1min)},
                           {"refreshToken", "REFRESHTOKEN"},
                           {"clientId", "client-1"},
                           {"clientSecret", "CLIENTSECRET"},
                           {"registrationExpiresAt", FormatIso8601(clock_.Now() + 24h)}}
                .dump());
  transport_->PushResponse(400, R"({"error":"invalid_grant"})",
                           {{"x-amzn-ErrorType", "InvalidGrantException"}});
  auto refused = Chain()->GetCredentials();
  ASSERT_FALSE(refused.ok());
  const std::string text = refused.error().ToString();
  EXPECT_NE(text.find("run: aws sso login --profile dev"), std::string::npos) << text;
  for (const char* secret : {"OLDTOKEN", "REFRESHTOKEN", "CLIENTSECRET"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << text;
  }

  // The portal refusing a token that looked valid: the same hint.
  WriteText(
      SsoTokenCachePath(home_, "corp"),
      nlohmann::json{{"accessToken", "REVOKED"}, {"expiresAt", FormatIso8601(clock_.Now() + 8h)}}
          .dump());
  transport_->PushResponse(401, R"({"message":"Session token not found or invalid"})",
                           {{"x-amzn-ErrorType", "UnauthorizedException"}});
  auto revoked = Chain()->GetCredentials();
  ASSERT_FALSE(revoked.ok());
  EXPECT_NE(revoked.error().message.find("run: aws sso login --profile dev"), std::string::npos);
}

TEST_F(SourcesTest, LegacySsoProfileReadsTheCacheKeyedByStartUrlAndIsNeverRefreshed) {
  Config(
      "[profile old]\nsso_start_url = https://old.awsapps.com/start\nsso_region = us-east-2\n"
      "sso_account_id = 1\nsso_role_name = Admin\n");
  env_.Set("AWS_PROFILE", "old");
  WriteText(SsoTokenCachePath(home_, "https://old.awsapps.com/start"),
            nlohmann::json{{"accessToken", "LEGACY"},
                           {"expiresAt", FormatIso8601(clock_.Now() - 1s)},
                           {"refreshToken", "R"},
                           {"clientId", "c"},
                           {"clientSecret", "S"},
                           {"registrationExpiresAt", FormatIso8601(clock_.Now() + 24h)}}
                .dump());
  auto expired = Chain()->GetCredentials();
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.error().message.find("run: aws sso login --profile old"), std::string::npos);
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(SourcesTest, PrecedenceInsideAProfileFollowsBotocore) {
  // Role profile before web identity from the environment.
  CredentialsFile("[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = s\n");
  Config(
      "[profile role]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n"
      "[profile proc]\ncredential_process = /usr/bin/printf '%s' "
      "'{\"Version\":1,\"AccessKeyId\":\"AKIAPROC\",\"SecretAccessKey\":\"s\"}'\n"
      "aws_access_key_id = AKIACONFIG\naws_secret_access_key = s\n");
  WriteText(home_ + "/token", "jwt");
  env_.Set("AWS_WEB_IDENTITY_TOKEN_FILE", home_ + "/token");
  env_.Set("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa");
  env_.Set("AWS_PROFILE", "role");
  transport_->SetFallback([&](const HttpRequest& request) -> Result<HttpResponse> {
    const std::string action = FormValue(request.body, "Action");
    return Xml(StsXml(action, action == "AssumeRole" ? "ASIAROLE" : "ASIAWEB", clock_.Now() + 1h));
  });
  auto role = Chain()->GetCredentials();
  ASSERT_TRUE(role.ok()) << role.error().ToString();
  EXPECT_EQ(role->access_key_id, "ASIAROLE");

  // credential_process before the config file's static keys; web identity before both.
  env_.Set("AWS_PROFILE", "proc");
  auto web = Chain()->GetCredentials();
  ASSERT_TRUE(web.ok()) << web.error().ToString();
  EXPECT_EQ(web->access_key_id, "ASIAWEB");
  env_.Set("AWS_WEB_IDENTITY_TOKEN_FILE", "");
  auto process = Chain()->GetCredentials();
  ASSERT_TRUE(process.ok()) << process.error().ToString();
  EXPECT_EQ(process->access_key_id, "AKIAPROC");
}

}  // namespace
}  // namespace spotgrid
