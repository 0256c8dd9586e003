// Web identity credentials (see web_identity.h).
#include "spotgrid/aws/credentials/web_identity.h"

#include "core/strings.h"
#include "spotgrid/aws/credentials/sts.h"
#include "spotgrid/core/file_io.h"

namespace spotgrid {

std::optional<Result<WebIdentityConfig>> FindWebIdentityConfig(const Environment& env,
                                                               const ProfileFiles& profiles,
                                                               const std::string& profile,
                                                               bool use_env) {
  auto setting = [&](const char* variable, const char* key) -> std::string {
    if (use_env) {
      if (auto value = env.Get(variable); value && !value->empty()) return Trim(*value);
    }
    return Trim(profiles.GetFor(profile, key).value_or(""));
  };
  WebIdentityConfig config;
  config.token_file = setting("AWS_WEB_IDENTITY_TOKEN_FILE", "web_identity_token_file");
  if (config.token_file.empty()) return std::nullopt;
  config.role_arn = setting("AWS_ROLE_ARN", "role_arn");
  if (config.role_arn.empty()) {
    return Result<WebIdentityConfig>(Error::InvalidInput(
        "web identity credentials are configured (AWS_WEB_IDENTITY_TOKEN_FILE or "
        "web_identity_token_file in profile '" +
        profile + "') but no role: set AWS_ROLE_ARN or the profile's role_arn"));
  }
  config.role_session_name = setting("AWS_ROLE_SESSION_NAME", "role_session_name");
  return Result<WebIdentityConfig>(std::move(config));
}

Result<Credentials> FetchWebIdentityCredentials(const CredentialSourceContext& context,
                                                const WebIdentityConfig& config) {
  // Re-read every time: the platform rotates the token.
  Result<std::string> token = ReadFile(config.token_file, "read the web identity token file");
  if (!token.ok()) return token.error();
  WebIdentityParams params;
  params.role_arn = config.role_arn;
  params.role_session_name = config.role_session_name.empty()
                                 ? DefaultRoleSessionName(context.clock.Now())
                                 : config.role_session_name;
  params.web_identity_token = Trim(*token);
  if (params.web_identity_token.empty()) {
    return Error::InvalidInput("the web identity token file " + config.token_file + " is empty");
  }
  return StsAssumeRoleWithWebIdentity(context.Calls(), context.sts_region, params);
}

}  // namespace spotgrid
