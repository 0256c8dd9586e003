// Scaffolding shared by the tests of the AWS client core and the service clients.
//
// Unit tier: FakeAwsTest, a fixture with a FakeTransport, a FakeClock and an environment that
// reads no profile files and never asks IMDS; CreateClient<X>() builds an AwsContext over them
// (static credentials, 3 attempts, jitter fixed at 0.5) and then X::Create(context, ...).
// Reading back what a recorded HttpRequest carried: JsonBody(), HeaderOf().
// Integration tier: environments and contexts aimed at the launcher's emulators, a tenant of
// one of the launcher's fakes and the fakes' control API, and ImdsFakeTest, a fixture on a
// tenant of the IMDS fake.
//
// Thread-safety: a fixture belongs to one test; the free functions are safe anywhere.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/credentials.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/http/http.h"
#include "support/fake_clock.h"
#include "support/fake_transport.h"

namespace spotgrid::testing {

// Static credentials with key id "AKIDEXAMPLE", no session token and no expiry.
std::shared_ptr<CredentialsProvider> StaticTestCredentials(const std::string& secret = "secret");

// Config and credentials files at /dev/null and IMDS disabled: a context resolved from this
// environment depends on nothing on the host.
MapEnvironment IsolatedEnvironment();

// Client::Create(context, extra...) over a context from AwsContext::Create(options): the two
// steps every client test takes, failing with whichever error came first.
template <typename Client, typename... Extra>
Result<std::shared_ptr<Client>> CreateServiceClient(AwsContextOptions options, Extra&&... extra) {
  Result<std::shared_ptr<AwsContext>> context = AwsContext::Create(std::move(options));
  if (!context.ok()) return context.error();
  return Client::Create(*context, std::forward<Extra>(extra)...);
}

// A service client over FakeTransport and FakeClock. Retries back off on the fake clock, so a
// test can assert the exact sleeps; set `region_` before CreateClient to sign for another one.
class FakeAwsTest : public ::testing::Test {
 protected:
  AwsContextOptions FakeContextOptions();

  template <typename Client, typename... Extra>
  Result<std::shared_ptr<Client>> CreateClient(Extra&&... extra) {
    return CreateServiceClient<Client>(FakeContextOptions(), std::forward<Extra>(extra)...);
  }

  std::string region_ = "us-east-1";
  MapEnvironment env_ = IsolatedEnvironment();
  FakeClock clock_;
  std::shared_ptr<FakeTransport> transport_ = std::make_shared<FakeTransport>();
};

// The JSON body of a recorded request (throws, failing the test, when it is not JSON).
nlohmann::json JsonBody(const HttpRequest& request);

// A header of a recorded request, or "<absent>" so that absence reads clearly in a failure.
std::string HeaderOf(const HttpRequest& request, std::string_view name);

// --- Integration tier (after UseEmulators()) ---

// IsolatedEnvironment() plus the launcher's region and test keys; a test adds the endpoint
// overrides it needs.
MapEnvironment EmulatorEnvironment();

// AwsContext::Create on `env` with `max_attempts` attempts and a 10 ms backoff base: real
// sleeps, kept short.
Result<std::shared_ptr<AwsContext>> CreateEmulatorContext(const MapEnvironment& env,
                                                          int max_attempts = 3);

// An isolated tenant of one of the launcher's fakes: `url` is the fake's root (the launcher's
// `root_variable`, e.g. SPOTGRID_FAKE_IMDS_URL) + "/" + `name`. Both are empty, and the test has
// failed, when the launcher did not export the variable.
struct FakeTenant {
  std::string name;
  std::string url;
};
FakeTenant NewFakeTenant(const std::string& root_variable);

// A request to a fake's control API at `tenant_url` + "/_fake/" + `path`; the test fails
// unless it answers 200. Returns the response (status 0 when none came).
HttpResponse ControlFake(HttpTransport& transport, const std::string& method,
                         const std::string& tenant_url, const std::string& path,
                         const std::string& body = "", const std::string& content_type = "");

// A test with its own tenant of the launcher's IMDS fake: `env_` points
// AWS_EC2_METADATA_SERVICE_ENDPOINT at `endpoint_` (and holds nothing else: not the process
// environment, which the launcher filled with test keys); `transport_` is a curl transport.
class ImdsFakeTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // The fake's control API for this tenant.
  HttpResponse Control(const std::string& method, const std::string& path,
                       const std::string& body = "");

  std::string tenant_;
  std::string endpoint_;
  std::shared_ptr<HttpTransport> transport_;
  MapEnvironment env_;
};

}  // namespace spotgrid::testing
