// The SSO access token that `aws sso login` leaves in ~/.aws/sso/cache, and its refresh.
//
// The cache file is $HOME/.aws/sso/cache/<sha1 hex of the key>.json, the key being the
// sso-session name (`sso_session` profiles) or the start URL (legacy profiles), with at least
// {"accessToken", "expiresAt"} and, for sso-session logins, {"refreshToken", "clientId",
// "clientSecret", "registrationExpiresAt"} as well.
//
// As botocore (tokens.py SSOTokenProvider) does:
//   - sso-session: a token with less than 15 minutes left is refreshed with SSO OIDC
//     CreateToken (grant_type refresh_token, the cached client registration) while the
//     registration is valid, and the new token is written back to the same file (atomically,
//     0600). A failed refresh keeps the cached token while it is still valid.
//   - legacy: the cached token is used as it is; it cannot be refreshed.
// A missing, unreadable or expired token is an SsoLoginRequired error whose message ends with
// "run: aws sso login --profile <profile>".
//
// Secrets: access, refresh tokens and the client secret never reach a log line or an Error.
#pragma once

#include <string>

#include "spotgrid/aws/credentials/source_context.h"

namespace spotgrid {

// One SSO-backed profile, with its sso-session resolved.
struct SsoConfig {
  std::string profile;
  std::string start_url;
  std::string sso_region;
  std::string account_id;
  std::string role_name;
  std::string session_name;  // "" for a legacy profile
};

// botocore's SSOProvider._load_sso_config: nullopt unless the profile has sso_account_id or
// sso_role_name; then every one of sso_start_url, sso_region, sso_account_id, sso_role_name
// must be found (in the profile or its [sso-session NAME]), a named sso-session must exist and
// agree with the profile on the keys both set.
std::optional<Result<SsoConfig>> FindSsoConfig(const ProfileFiles& profiles,
                                               const std::string& profile);

// The path of the cache file for `key` (session name or start URL) under `home`.
std::string SsoTokenCachePath(const std::string& home, const std::string& key);

// A valid access token for `config`, refreshed if needed (see above).
Result<std::string> LoadSsoAccessToken(const CredentialSourceContext& context,
                                       const SsoConfig& config);

// The error that tells the user to log in again.
Error SsoLoginRequired(const SsoConfig& config, const std::string& why);

inline constexpr std::chrono::minutes kSsoTokenRefreshWindow{15};

}  // namespace spotgrid
