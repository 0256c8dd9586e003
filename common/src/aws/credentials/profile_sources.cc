// A profile's own credential sources (see profile_sources.h).
#include "spotgrid/aws/credentials/profile_sources.h"

#include "spotgrid/aws/credentials/basic_sources.h"
#include "spotgrid/aws/credentials/process.h"
#include "spotgrid/aws/credentials/sso.h"
#include "spotgrid/aws/credentials/web_identity.h"

namespace spotgrid {

namespace {

using ProviderResult = Result<std::shared_ptr<CredentialsProvider>>;

std::string FileName(const Environment& env, const char* variable, const char* default_name) {
  std::string configured = env.GetOr(variable, "");
  return configured.empty() ? std::string("~/.aws/") + default_name : configured;
}

std::optional<ProviderResult> StaticKeys(const std::map<std::string, ProfileSection>& file,
                                         const std::string& profile, const std::string& where) {
  auto section = file.find(profile);
  if (section == file.end()) return std::nullopt;
  auto keys = StaticKeysFromSection(section->second, "profile '" + profile + "' in " + where);
  if (!keys) return std::nullopt;
  if (!keys->ok()) return ProviderResult(keys->error());
  return ProviderResult(MakeStaticCredentialsProvider(std::move(keys->value())));
}

}  // namespace

bool IsRoleProfile(const ProfileFiles& profiles, const std::string& profile) {
  return profiles.GetFor(profile, "role_arn").has_value() &&
         !profiles.GetFor(profile, "web_identity_token_file").has_value();
}

bool HasStaticKeys(const ProfileFiles& profiles, const std::string& profile) {
  return profiles.GetFor(profile, "aws_access_key_id").has_value() ||
         profiles.GetFor(profile, "aws_secret_access_key").has_value();
}

std::optional<ProviderResult> ResolveProfileSources(
    const std::shared_ptr<CredentialSourceContext>& context, const std::string& profile,
    bool use_env) {
  const ProfileFiles& files = context->profiles;

  if (auto web = FindWebIdentityConfig(context->env, files, profile, use_env)) {
    if (!web->ok()) return ProviderResult(web->error());
    WebIdentityConfig config = std::move(web->value());
    return ProviderResult(MakeRefreshingCredentialsProvider(
        [context, config] { return FetchWebIdentityCredentials(*context, config); }, context->clock,
        "web identity credentials"));
  }

  if (auto sso = FindSsoConfig(files, profile)) {
    if (!sso->ok()) return ProviderResult(sso->error());
    SsoConfig config = std::move(sso->value());
    return ProviderResult(MakeRefreshingCredentialsProvider(
        [context, config] { return FetchSsoCredentials(*context, config); }, context->clock,
        "SSO credentials of profile '" + profile + "'"));
  }

  if (auto keys =
          StaticKeys(files.credentials, profile,
                     FileName(context->env, "AWS_SHARED_CREDENTIALS_FILE", "credentials"))) {
    return keys;
  }

  if (auto command = files.GetFor(profile, "credential_process"); command && !command->empty()) {
    std::string line = *command;
    return ProviderResult(MakeRefreshingCredentialsProvider(
        [line, profile] { return RunCredentialProcess(line, profile); }, context->clock,
        "credential_process of profile '" + profile + "'"));
  }

  return StaticKeys(files.config, profile, FileName(context->env, "AWS_CONFIG_FILE", "config"));
}

}  // namespace spotgrid
