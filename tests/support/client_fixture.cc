#include "support/client_fixture.h"

#include <chrono>

#include "spotgrid/http/curl_transport.h"
#include "support/test_env.h"

namespace spotgrid::testing {

std::shared_ptr<CredentialsProvider> StaticTestCredentials(const std::string& secret) {
  return MakeStaticCredentialsProvider({"AKIDEXAMPLE", secret, "", std::nullopt});
}

MapEnvironment IsolatedEnvironment() {
  return MapEnvironment({{"AWS_CONFIG_FILE", "/dev/null"},
                         {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"},
                         {"AWS_EC2_METADATA_DISABLED", "true"}});
}

AwsContextOptions FakeAwsTest::FakeContextOptions() {
  AwsContextOptions options;
  options.region = region_;
  options.transport = transport_;
  options.credentials = StaticTestCredentials();
  options.clock = &clock_;
  options.env = &env_;
  RetryOptions retry;
  retry.max_attempts = 3;
  options.retry = retry;
  options.random01 = [] { return 0.5; };
  return options;
}

nlohmann::json JsonBody(const HttpRequest& request) { return nlohmann::json::parse(request.body); }

std::string HeaderOf(const HttpRequest& request, std::string_view name) {
  return FindHeader(request.headers, name).value_or("<absent>");
}

MapEnvironment EmulatorEnvironment() {
  MapEnvironment env = IsolatedEnvironment();
  for (const char* name : {"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}) {
    env.Set(name, EmulatorValue(name));
  }
  return env;
}

Result<std::shared_ptr<AwsContext>> CreateEmulatorContext(const MapEnvironment& env,
                                                          int max_attempts) {
  AwsContextOptions options;
  options.env = &env;
  RetryOptions retry;
  retry.max_attempts = max_attempts;
  retry.base = std::chrono::milliseconds(10);
  options.retry = retry;
  return AwsContext::Create(options);
}

FakeTenant NewFakeTenant(const std::string& root_variable) {
  const std::string root = EmulatorValue(root_variable);
  if (root.empty()) {
    ADD_FAILURE() << "the launcher exported no " << root_variable;
    return {};
  }
  FakeTenant tenant;
  tenant.name = UniqueName("t");
  tenant.url = root + "/" + tenant.name;
  return tenant;
}

HttpResponse ControlFake(HttpTransport& transport, const std::string& method,
                         const std::string& tenant_url, const std::string& path,
                         const std::string& body, const std::string& content_type) {
  HttpRequest request;
  request.method = method;
  request.url = tenant_url + "/_fake/" + path;
  request.body = body;
  if (!content_type.empty()) request.headers.emplace_back("content-type", content_type);
  request.timeout = std::chrono::seconds(10);
  auto response = transport.Send(request);
  if (!response.ok()) {
    ADD_FAILURE() << method << " " << request.url << ": " << response.error().ToString();
    return {};
  }
  EXPECT_EQ(response->status, 200) << method << " " << request.url << ": " << response->body;
  return *response;
}

void ImdsFakeTest::SetUp() {
  UseEmulators();
  FakeTenant tenant = NewFakeTenant("SPOTGRID_FAKE_IMDS_URL");
  ASSERT_FALSE(tenant.url.empty());
  tenant_ = tenant.name;
  endpoint_ = tenant.url;
  transport_ = MakeCurlTransport();
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint_);
}

HttpResponse ImdsFakeTest::Control(const std::string& method, const std::string& path,
                                   const std::string& body) {
  return ControlFake(*transport_, method, endpoint_, path, body);
}

}  // namespace spotgrid::testing
