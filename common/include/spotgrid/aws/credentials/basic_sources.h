// The sources that need no other service: environment keys, static keys in a profile section,
// the container credentials endpoint and IMDS role credentials. The default chain uses them
// directly, and a role profile uses them as its credential_source (Environment, EcsContainer,
// Ec2InstanceMetadata).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "spotgrid/aws/aws_config.h"
#include "spotgrid/aws/credentials.h"

namespace spotgrid {

class ImdsClient;

// AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN or the legacy
// AWS_SECURITY_TOKEN, + AWS_CREDENTIAL_EXPIRATION). nullopt when neither key is set; one
// without the other is an error.
std::optional<Result<Credentials>> CredentialsFromEnvironment(const Environment& env);

// aws_access_key_id + aws_secret_access_key (+ aws_session_token) of one file's section for a
// profile; nullopt when the section has neither key. `where` names profile and file in errors.
std::optional<Result<Credentials>> StaticKeysFromSection(const ProfileSection& section,
                                                         const std::string& where);

// Whether AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI is set.
bool ContainerCredentialsConfigured(const Environment& env);

// The container endpoint's credentials, cached and refreshed (see credentials.h).
Result<std::shared_ptr<CredentialsProvider>> MakeContainerCredentialsProvider(
    const Environment& env, std::shared_ptr<HttpTransport> transport, Clock& clock);

// IMDS role credentials, cached and refreshed; `context` prefixes failures' messages.
std::shared_ptr<CredentialsProvider> MakeImdsCredentialsProvider(std::shared_ptr<ImdsClient> imds,
                                                                 Clock& clock, std::string context);

}  // namespace spotgrid
