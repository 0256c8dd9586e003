// credentials_tool: resolves credentials and region the way the controller and agent do
// (MakeDefaultCredentialsChain over the process environment, ResolveRegionWithoutImds), for
// tests/wire/credentials_differential_test.py, which compares the result with botocore's.
//
// Prints one JSON line: {"access_key_id": "...", "region": "..." | null} (exit 0), or
// {"error": "<Error::ToString()>", "code": "...", "region": ...} (exit 1). Never prints the
// secret key or the session token. MFA codes are read from SPOTGRID_TEST_MFA_CODE when set
// (the test has no terminal), else asked on /dev/tty like the product.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "spotgrid/aws/aws_config.h"
#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/imds_client.h"
#include "spotgrid/http/curl_transport.h"

int main() {
  using namespace spotgrid;
  const Environment& env = Environment::Process();
  Clock& clock = Clock::System();
  nlohmann::json out;
  auto profiles = ProfileFiles::Load(env);
  if (profiles.ok()) {
    auto region = ResolveRegionWithoutImds(env, *profiles);
    out["region"] = region ? nlohmann::json(*region) : nlohmann::json(nullptr);
  } else {
    out["region"] = nullptr;
  }
  auto transport = MakeCurlTransport();
  auto imds = ImdsClient::Create(env, transport, clock);
  if (!imds.ok()) {
    out["error"] = imds.error().ToString();
    std::cout << out.dump() << std::endl;
    return 1;
  }
  MfaPrompt prompt;
  if (auto code = env.Get("SPOTGRID_TEST_MFA_CODE")) {
    prompt = [code](const std::string&, const std::string&) -> Result<std::string> {
      return *code;
    };
  }
  auto chain = MakeDefaultCredentialsChain(env, transport, *imds, clock, prompt);
  auto credentials = chain->GetCredentials();
  if (!credentials.ok()) {
    out["error"] = credentials.error().ToString();
    out["code"] = credentials.error().code;
    std::cout << out.dump() << std::endl;
    return 1;
  }
  out["access_key_id"] = credentials->access_key_id;
  out["has_session_token"] = !credentials->session_token.empty();
  std::cout << out.dump() << std::endl;
  return 0;
}
