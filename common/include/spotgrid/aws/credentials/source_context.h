// What every credential source of the default chain needs, shared by the providers the chain
// builds (they may outlive the call that built them; the chain owns this through shared_ptr).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "spotgrid/aws/aws_config.h"
#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/credentials/identity_call.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

class ImdsClient;

struct CredentialSourceContext {
  const Environment& env;  // outlives the chain (MakeDefaultCredentialsChain's contract)
  std::shared_ptr<HttpTransport> transport;
  Clock& clock;
  ProfileFiles profiles;
  // The region for STS calls: AWS_REGION, AWS_DEFAULT_REGION, the selected profile's
  // `region`, else us-east-1 (botocore's global STS endpoint lives there).
  std::string sts_region;
  std::shared_ptr<ImdsClient> imds;  // may be null
  MfaPrompt mfa_prompt;

  IdentityCallContext Calls() const { return {transport, clock, env, profiles}; }
};

}  // namespace spotgrid
