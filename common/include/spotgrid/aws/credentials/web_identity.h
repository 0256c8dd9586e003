// Web identity credentials (EKS IRSA and similar): a token file and a role.
//
// Configured by AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN [+ AWS_ROLE_SESSION_NAME], or by the
// profile keys web_identity_token_file + role_arn [+ role_session_name]; each environment
// variable wins over its profile key (botocore's AssumeRoleWithWebIdentityProvider; a source
// profile of a role chain reads only its keys). The token file is read again on every fetch
// (it is rotated) and exchanged with STS AssumeRoleWithWebIdentity.
#pragma once

#include <optional>
#include <string>

#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/credentials/source_context.h"

namespace spotgrid {

struct WebIdentityConfig {
  std::string token_file;
  std::string role_arn;
  std::string role_session_name;  // "" = DefaultRoleSessionName at each fetch
};

// nullopt when no token file is configured; an error when one is but no role is.
std::optional<Result<WebIdentityConfig>> FindWebIdentityConfig(const Environment& env,
                                                               const ProfileFiles& profiles,
                                                               const std::string& profile,
                                                               bool use_env);

Result<Credentials> FetchWebIdentityCredentials(const CredentialSourceContext& context,
                                                const WebIdentityConfig& config);

}  // namespace spotgrid
