// The credential sources one profile can name by itself, in botocore's order
// (ProfileProviderBuilder.providers):
//   1. web identity (web_identity.h): the profile's web_identity_token_file + role_arn, or
//      (`use_env`) AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, which win over the profile;
//   2. SSO (sso.h): sso_account_id / sso_role_name with sso_session or legacy sso_start_url;
//   3. static keys in the credentials file's [profile];
//   4. credential_process (process.h);
//   5. static keys in the config file's [profile NAME].
// Role profiles (assume_role.h) come before all of these in the chain, and a role chain uses
// this list (without the environment) for a source profile that is not itself a role.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/credentials/source_context.h"

namespace spotgrid {

// role_arn without web_identity_token_file: the profile assumes a role with STS AssumeRole
// (botocore's AssumeRoleProvider._has_assume_role_config_vars).
bool IsRoleProfile(const ProfileFiles& profiles, const std::string& profile);

// aws_access_key_id or aws_secret_access_key in either file.
bool HasStaticKeys(const ProfileFiles& profiles, const std::string& profile);

// The first configured source above as a (cached, refreshing) provider; nullopt when the
// profile configures none; an error when one is configured wrongly.
std::optional<Result<std::shared_ptr<CredentialsProvider>>> ResolveProfileSources(
    const std::shared_ptr<CredentialSourceContext>& context, const std::string& profile,
    bool use_env);

}  // namespace spotgrid
