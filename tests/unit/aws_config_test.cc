// Shared config files, region and endpoint resolution, and AwsContext::Create's
// use of them.
#include "spotgrid/aws/aws_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/imds_client.h"
#include "support/fake_clock.h"
#include "support/fake_transport.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using testing::FakeClock;
using testing::FakeTransport;

MapEnvironment Env(std::initializer_list<std::pair<const std::string, std::string>> vars) {
  return MapEnvironment(std::map<std::string, std::string, std::less<>>(vars));
}

ProfileFiles Parse(std::string_view credentials, std::string_view config,
                   std::string profile = "default") {
  ProfileFiles files;
  files.profile_name = std::move(profile);
  Status a = ProfileFiles::ParseInto(credentials, "creds", false, files);
  EXPECT_TRUE(a.ok()) << a.ToString();
  Status b = ProfileFiles::ParseInto(config, "config", true, files);
  EXPECT_TRUE(b.ok()) << b.ToString();
  return files;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

TEST(ProfileFilesTest, ParsesProfileDefaultAndServicesSectionsWithSubSections) {
  ProfileFiles files = Parse("", R"(# leading comment
[default]
region = us-west-2
; another comment

[profile dev]
Region=eu-west-1   # inline comment
services = local
s3 =
  addressing_style = path

[services local]
sqs =
  endpoint_url = http://127.0.0.1:4567/t-1
dynamodb =
    endpoint_url = http://127.0.0.1:8000
[sso-session corp]
sso_region = us-east-1
)");
  EXPECT_EQ(files.config["default"]["region"], "us-west-2");
  EXPECT_EQ(files.config["dev"]["region"], "eu-west-1");
  EXPECT_EQ(files.config["dev"]["services"], "local");
  EXPECT_EQ(files.config["dev"]["s3.addressing_style"], "path");
  EXPECT_EQ(files.services["services local"]["sqs"]["endpoint_url"], "http://127.0.0.1:4567/t-1");
  EXPECT_EQ(files.services["services local"]["dynamodb"]["endpoint_url"], "http://127.0.0.1:8000");
  EXPECT_EQ(files.config.count("sso-session corp"), 0u);
  EXPECT_EQ(files.config.count("corp"), 0u);
  EXPECT_EQ(files.sso_sessions["corp"]["sso_region"], "us-east-1");
}

TEST(ProfileFilesTest, CredentialsFileSectionsAreBareNamesAndHandleCrLf) {
  ProfileFiles files = Parse(
      "[default]\r\naws_access_key_id = AKIDDEFAULT\r\n[ci]\r\n"
      "AWS_Secret_Access_Key = s3cr3t\r\n",
      "");
  EXPECT_EQ(files.credentials["default"]["aws_access_key_id"], "AKIDDEFAULT");
  EXPECT_EQ(files.credentials["ci"]["aws_secret_access_key"], "s3cr3t");
}

TEST(ProfileFilesTest, ParseErrorsNameFileAndLine) {
  struct Case {
    std::string text;
    int line;
  };
  for (const Case& c :
       {Case{"[default]\nregion us-east-1\n", 2}, Case{"region = us-east-1\n", 1},
        Case{"[default\nregion = x\n", 1}, Case{"[default]\n  indented = orphan\n", 2},
        Case{"[default]\nregion = a\n\n[]\n", 4}, Case{"[default]\n = value\n", 2}}) {
    ProfileFiles files;
    Status status = ProfileFiles::ParseInto(c.text, "/home/u/.aws/config", true, files);
    ASSERT_FALSE(status.ok()) << c.text;
    EXPECT_NE(status.error().message.find("/home/u/.aws/config:" + std::to_string(c.line) + ":"),
              std::string::npos)
        << status.ToString();
  }
}

TEST(ProfileFilesTest, ContinuationLinesExtendAValue) {
  ProfileFiles files = Parse("", "[default]\nnote = first\n  second\n");
  EXPECT_EQ(files.config["default"]["note"], "first\nsecond");
}

TEST(ProfileFilesTest, CredentialsFileValuesWinOverConfigFileValues) {
  ProfileFiles files = Parse("[default]\nregion = from-credentials\n",
                             "[default]\nregion = from-config\noutput = json\n");
  EXPECT_EQ(files.Get("region"), "from-credentials");
  EXPECT_EQ(files.Get("output"), "json");
  EXPECT_EQ(files.Get("missing"), std::nullopt);
}

TEST(ProfileFilesTest, LoadFindsFilesFromEnvironmentAndSelectsProfile) {
  std::string dir = testing::MakeTempDir("aws-config");
  WriteFile(dir + "/creds", "[work]\naws_access_key_id = AKIDWORK\n");
  WriteFile(dir + "/config", "[profile work]\nregion = ap-south-1\n[profile other]\n");

  MapEnvironment env = Env({{"AWS_SHARED_CREDENTIALS_FILE", dir + "/creds"},
                            {"AWS_CONFIG_FILE", dir + "/config"},
                            {"AWS_DEFAULT_PROFILE", "other"},
                            {"AWS_PROFILE", "work"}});
  auto files = ProfileFiles::Load(env);
  ASSERT_TRUE(files.ok()) << files.error().ToString();
  EXPECT_EQ(files->profile_name, "work");
  EXPECT_EQ(files->Get("region"), "ap-south-1");
  EXPECT_EQ(files->Get("aws_access_key_id"), "AKIDWORK");

  MapEnvironment fallback =
      Env({{"AWS_CONFIG_FILE", dir + "/config"}, {"AWS_DEFAULT_PROFILE", "other"}});
  auto other = ProfileFiles::Load(fallback);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->profile_name, "other");
  std::filesystem::remove_all(dir);
}

TEST(ProfileFilesTest, LoadDefaultsToHomeAndToleratesMissingFiles) {
  std::string home = testing::MakeTempDir("aws-home");
  MapEnvironment env = Env({{"HOME", home}});
  auto empty = ProfileFiles::Load(env);
  ASSERT_TRUE(empty.ok()) << empty.error().ToString();
  EXPECT_EQ(empty->profile_name, "default");
  EXPECT_TRUE(empty->config.empty());

  std::filesystem::create_directories(home + "/.aws");
  WriteFile(home + "/.aws/config", "[default]\nregion = sa-east-1\n");
  auto loaded = ProfileFiles::Load(env);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->Get("region"), "sa-east-1");

  WriteFile(home + "/.aws/credentials", "[default]\nbroken line\n");
  auto broken = ProfileFiles::Load(env);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find(home + "/.aws/credentials:2:"), std::string::npos)
      << broken.error().ToString();
  std::filesystem::remove_all(home);
}

TEST(RegionTest, EnvironmentBeatsProfileInSdkOrder) {
  ProfileFiles files = Parse("", "[default]\nregion = eu-central-1\n");
  EXPECT_EQ(ResolveRegionWithoutImds(
                Env({{"AWS_REGION", "us-east-2"}, {"AWS_DEFAULT_REGION", "us-west-1"}}), files),
            "us-east-2");
  EXPECT_EQ(ResolveRegionWithoutImds(Env({{"AWS_DEFAULT_REGION", "us-west-1"}}), files),
            "us-west-1");
  EXPECT_EQ(ResolveRegionWithoutImds(Env({{"AWS_REGION", ""}}), files), "eu-central-1");
  EXPECT_EQ(ResolveRegionWithoutImds(MapEnvironment(), ProfileFiles()), std::nullopt);
}

// The endpoint precedence table of aws_config.h, one row per source.
TEST(EndpointTest, ConfiguredEndpointPrecedence) {
  const std::string config = R"([default]
endpoint_url = http://profile:1
services = mine
[services mine]
sqs =
  endpoint_url = http://services-section:2
)";
  ProfileFiles files = Parse("", config);
  struct Row {
    std::map<std::string, std::string, std::less<>> env;
    std::string expected_host;
  };
  const std::vector<Row> rows = {
      {{{"AWS_ENDPOINT_URL_SQS", "http://service-env:3"}, {"AWS_ENDPOINT_URL", "http://global:4"}},
       "service-env"},
      {{{"AWS_ENDPOINT_URL", "http://global:4"}}, "global"},
      {{{"AWS_ENDPOINT_URL_DYNAMODB", "http://other-service:5"}}, "services-section"},
      {{}, "services-section"},
  };
  for (const Row& row : rows) {
    auto endpoint = ResolveEndpoint(kSqsService, "us-east-1", MapEnvironment(row.env), files);
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().ToString();
    EXPECT_EQ(endpoint->url.host, row.expected_host);
    EXPECT_TRUE(endpoint->configured);
  }
  // DynamoDB has no entry in [services mine]: the profile's endpoint_url
  // applies.
  auto dynamodb = ResolveEndpoint(kDynamoDbService, "us-east-1", MapEnvironment(), files);
  ASSERT_TRUE(dynamodb.ok());
  EXPECT_EQ(dynamodb->url.host, "profile");
  EXPECT_EQ(dynamodb->url.port, 1);
}

TEST(EndpointTest, DefaultsToRegionalAwsEndpoint) {
  auto sqs = ResolveEndpoint(kSqsService, "eu-west-1", MapEnvironment(), ProfileFiles());
  ASSERT_TRUE(sqs.ok());
  EXPECT_EQ(sqs->url.scheme, "https");
  EXPECT_EQ(sqs->url.host, "sqs.eu-west-1.amazonaws.com");
  EXPECT_FALSE(sqs->configured);
  EXPECT_FALSE(sqs->s3_path_style);
  auto autoscaling =
      ResolveEndpoint(kAutoScalingService, "cn-north-1", MapEnvironment(), ProfileFiles());
  ASSERT_TRUE(autoscaling.ok());
  EXPECT_EQ(autoscaling->url.host, "autoscaling.cn-north-1.amazonaws.com.cn");
}

TEST(EndpointTest, IgnoreConfiguredEndpointUrlsFromEnvironmentOrProfile) {
  ProfileFiles files = Parse("", "[default]\nendpoint_url = http://profile:1\n");
  MapEnvironment env = Env({{"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9"},
                            {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"}});
  auto ignored = ResolveEndpoint(kS3Service, "us-east-1", env, files);
  ASSERT_TRUE(ignored.ok());
  EXPECT_EQ(ignored->url.host, "s3.us-east-1.amazonaws.com");
  EXPECT_FALSE(ignored->configured);

  ProfileFiles ignoring = Parse("",
                                "[default]\nendpoint_url = "
                                "http://profile:1\nignore_configured_endpoint_urls = true\n");
  auto from_profile = ResolveEndpoint(kS3Service, "us-east-1", MapEnvironment(), ignoring);
  ASSERT_TRUE(from_profile.ok());
  EXPECT_FALSE(from_profile->configured);
  // The environment variable overrides the profile setting either way.
  auto overridden = ResolveEndpoint(
      kS3Service, "us-east-1", Env({{"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false"}}), ignoring);
  ASSERT_TRUE(overridden.ok());
  EXPECT_EQ(overridden->url.host, "profile");
}

TEST(EndpointTest, ConfiguredEndpointKeepsBasePathAndUsesS3PathStyle) {
  MapEnvironment env = Env({{"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4568/t-42/"}});
  auto endpoint = ResolveEndpoint(kS3Service, "us-east-1", env, ProfileFiles());
  ASSERT_TRUE(endpoint.ok()) << endpoint.error().ToString();
  EXPECT_EQ(endpoint->url.host, "127.0.0.1");
  EXPECT_EQ(endpoint->url.port, 4568);
  EXPECT_EQ(endpoint->url.path, "/t-42");
  EXPECT_TRUE(endpoint->s3_path_style);

  auto root = ResolveEndpoint(kS3Service, "us-east-1",
                              Env({{"AWS_ENDPOINT_URL", "http://localhost:1/"}}), ProfileFiles());
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->url.path, "");
}

TEST(EndpointTest, MalformedEndpointNamesItsSource) {
  auto endpoint = ResolveEndpoint(kEc2Service, "us-east-1",
                                  Env({{"AWS_ENDPOINT_URL_EC2", "ftp://x"}}), ProfileFiles());
  ASSERT_FALSE(endpoint.ok());
  EXPECT_NE(endpoint.error().message.find("AWS_ENDPOINT_URL_EC2"), std::string::npos)
      << endpoint.error().ToString();
}

TEST(EndpointTest, RejectsRegionThatIsNotAHostLabel) {
  auto endpoint =
      ResolveEndpoint(kSqsService, "us-east-1.evil.com/", MapEnvironment(), ProfileFiles());
  ASSERT_FALSE(endpoint.ok());
  EXPECT_NE(endpoint.error().message.find("AWS_REGION"), std::string::npos);
}

// --- AwsContext::Create: region resolution including the IMDS fallback ---

AwsContextOptions Options(const MapEnvironment& env, std::shared_ptr<FakeTransport> transport,
                          FakeClock& clock) {
  AwsContextOptions options;
  options.env = &env;
  options.transport = std::move(transport);
  options.clock = &clock;
  options.credentials = MakeStaticCredentialsProvider({"AKID", "SECRET", "", std::nullopt});
  return options;
}

TEST(AwsContextTest, RegionFromEnvironmentNeedsNoImds) {
  MapEnvironment env = Env({{"AWS_REGION", "eu-north-1"},
                            {"AWS_CONFIG_FILE", "/dev/null"},
                            {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"}});
  auto transport = std::make_shared<FakeTransport>();
  FakeClock clock;
  auto context = AwsContext::Create(Options(env, transport, clock));
  ASSERT_TRUE(context.ok()) << context.error().ToString();
  EXPECT_EQ((*context)->region(), "eu-north-1");
  EXPECT_EQ(transport->request_count(), 0u);
  ASSERT_NE((*context)->imds(), nullptr);
}

TEST(AwsContextTest, RegionFallsBackToImdsPlacementRegion) {
  MapEnvironment env = Env({{"AWS_CONFIG_FILE", "/dev/null"},
                            {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"},
                            {"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://imds.test:80/t-1"}});
  auto transport = std::make_shared<FakeTransport>();
  transport->PushResponse(200, "TOKEN");
  transport->PushResponse(200, "ap-northeast-1");
  FakeClock clock;
  auto context = AwsContext::Create(Options(env, transport, clock));
  ASSERT_TRUE(context.ok()) << context.error().ToString();
  EXPECT_EQ((*context)->region(), "ap-northeast-1");
  auto requests = transport->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].url, "http://imds.test:80/t-1/latest/meta-data/placement/region");
}

TEST(AwsContextTest, NoRegionAnywhereTellsUserToSetAwsRegion) {
  MapEnvironment env = Env({{"AWS_CONFIG_FILE", "/dev/null"},
                            {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"},
                            {"AWS_EC2_METADATA_DISABLED", "true"}});
  auto transport = std::make_shared<FakeTransport>();
  FakeClock clock;
  auto context = AwsContext::Create(Options(env, transport, clock));
  ASSERT_FALSE(context.ok());
  EXPECT_NE(context.error().message.find("set AWS_REGION"), std::string::npos)
      << context.error().ToString();
  EXPECT_EQ(transport->request_count(), 0u);

  // IMDS enabled but unreachable: still the same advice, plus why IMDS did not
  // help.
  MapEnvironment off_ec2 =
      Env({{"AWS_CONFIG_FILE", "/dev/null"}, {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"}});
  transport->SetFallback(
      [](const HttpRequest&) -> Result<HttpResponse> { return testing::ConnectionResetError(); });
  auto unreachable = AwsContext::Create(Options(off_ec2, transport, clock));
  ASSERT_FALSE(unreachable.ok());
  EXPECT_NE(unreachable.error().message.find("set AWS_REGION"), std::string::npos);
  EXPECT_NE(unreachable.error().message.find("IMDS"), std::string::npos);
}

TEST(AwsContextTest, ServerTimeAdjustsSigningTimeOnlyWhenSkewIsFiveMinutesOrMore) {
  MapEnvironment env = Env({{"AWS_REGION", "us-east-1"},
                            {"AWS_CONFIG_FILE", "/dev/null"},
                            {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"}});
  FakeClock clock;
  auto context = AwsContext::Create(Options(env, std::make_shared<FakeTransport>(), clock));
  ASSERT_TRUE(context.ok());
  AwsContext& ctx = **context;
  EXPECT_EQ(ctx.SigningTime(), clock.Now());
  EXPECT_FALSE(ctx.ObserveServerTime(clock.Now() + std::chrono::minutes(4)));
  EXPECT_EQ(ctx.SigningTime(), clock.Now());
  EXPECT_TRUE(ctx.ObserveServerTime(clock.Now() - std::chrono::minutes(7)));
  EXPECT_EQ(ctx.clock_offset(), std::chrono::minutes(-7));
  EXPECT_EQ(ctx.SigningTime(), clock.Now() - std::chrono::minutes(7));
  // Measured against the corrected time: a server 1 min from it changes
  // nothing.
  EXPECT_FALSE(ctx.ObserveServerTime(clock.Now() - std::chrono::minutes(8)));
}

}  // namespace
}  // namespace spotgrid
