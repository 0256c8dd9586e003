// SSO (IAM Identity Center) role credentials: the cached access token (sso_token.h) exchanged
// with the SSO portal's GetRoleCredentials (REST-JSON, unsigned:
// GET /federation/credentials?account_id=&role_name= with header x-amz-sso_bearer_token) in
// the profile's sso_region. A token the portal refuses (UnauthorizedException) means the
// login has ended: SsoLoginRequired.
#pragma once

#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/credentials/sso_token.h"

namespace spotgrid {

Result<Credentials> FetchSsoCredentials(const CredentialSourceContext& context,
                                        const SsoConfig& config);

}  // namespace spotgrid
