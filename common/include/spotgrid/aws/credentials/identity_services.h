// The services the credential providers call: STS (AssumeRole, AssumeRoleWithWebIdentity),
// the IAM Identity Center portal (SSO GetRoleCredentials) and SSO OIDC (CreateToken).
//
// Endpoints follow ResolveEndpoint (aws_config.h): AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_SSO,
// AWS_ENDPOINT_URL_SSO_OIDC (the models' serviceIds "STS", "SSO", "SSO OIDC"), else
// https://sts.<region>.amazonaws.com, https://portal.sso.<region>.amazonaws.com and
// https://oidc.<region>.amazonaws.com.
#pragma once

#include "spotgrid/aws/service.h"

namespace spotgrid {

inline constexpr ServiceInfo kStsService{"STS", "sts", "sts", "STS", "sts", Protocol::kQuery};
// SSO and SSO OIDC speak REST-JSON; the client core only needs to know that their errors are
// JSON documents, which is what kJson10 means to it. Both are called unsigned.
inline constexpr ServiceInfo kSsoService{"SSO", "awsssoportal", "portal.sso",
                                         "SSO", "sso",          Protocol::kJson10};
inline constexpr ServiceInfo kSsoOidcService{"SSO OIDC", "sso-oauth", "oidc",
                                             "SSO_OIDC", "sso_oidc",  Protocol::kJson10};

}  // namespace spotgrid
