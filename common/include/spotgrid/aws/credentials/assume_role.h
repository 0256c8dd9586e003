// Role profiles: role_arn with source_profile or credential_source, exchanged with STS
// AssumeRole (signed with the source's credentials, through AwsClient), as botocore's
// AssumeRoleProvider does:
//   - exactly one of source_profile and credential_source (both, or neither, is an error);
//   - credential_source is Environment, Ec2InstanceMetadata or EcsContainer;
//   - a source_profile must exist; one with static keys, or that is not itself a role
//     profile, supplies credentials through its own sources (profile_sources.h, without the
//     environment); a role source profile is assumed first (a chain). A profile seen twice in
//     a chain is a cycle and an error, except a profile naming itself that has static keys;
//   - role_session_name (default DefaultRoleSessionName), external_id, duration_seconds (an
//     integer; anything else is ignored, as botocore ignores it) and mfa_serial, whose code
//     the MfaPrompt asks for at every fetch.
// Configuration errors are reported when the chain is built; STS errors at fetch time.
#pragma once

#include <memory>
#include <string>

#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/credentials/source_context.h"

namespace spotgrid {

Result<std::shared_ptr<CredentialsProvider>> MakeAssumeRoleProvider(
    const std::shared_ptr<CredentialSourceContext>& context, const std::string& profile);

}  // namespace spotgrid
