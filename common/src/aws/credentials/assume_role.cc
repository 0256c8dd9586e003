// Role profiles (see assume_role.h) and the terminal MFA prompt.
#include "spotgrid/aws/credentials/assume_role.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/strings.h"
#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/credentials/basic_sources.h"
#include "spotgrid/aws/credentials/identity_services.h"
#include "spotgrid/aws/credentials/profile_sources.h"
#include "spotgrid/aws/credentials/sts.h"
#include "spotgrid/aws/imds_client.h"

namespace spotgrid {

namespace {

using ProviderResult = Result<std::shared_ptr<CredentialsProvider>>;

Error RoleConfigError(std::string message) {
  Error e = Error::InvalidInput(std::move(message));
  e.operation = "AssumeRole";
  e.code = "InvalidCredentialsConfig";
  return e;
}

std::string ChainText(const std::vector<std::string>& visited, const std::string& next) {
  std::string text;
  for (const auto& name : visited) text += name + " -> ";
  return text + next;
}

ProviderResult FromCredentialSource(const std::shared_ptr<CredentialSourceContext>& context,
                                    const std::string& profile, const std::string& source) {
  const std::string none = "no credentials found in credential_source " + source +
                           " referenced in profile '" + profile + "'";
  if (source == "Environment") {
    auto env = CredentialsFromEnvironment(context->env);
    if (!env) return RoleConfigError(none);
    if (!env->ok()) return env->error();
    return MakeStaticCredentialsProvider(std::move(env->value()));
  }
  if (source == "EcsContainer") {
    if (!ContainerCredentialsConfigured(context->env)) return RoleConfigError(none);
    return MakeContainerCredentialsProvider(context->env, context->transport, context->clock);
  }
  if (source == "Ec2InstanceMetadata") {
    if (context->imds == nullptr || context->imds->disabled()) {
      return RoleConfigError(none + " (IMDS is disabled)");
    }
    return MakeImdsCredentialsProvider(context->imds, context->clock, none + ": ");
  }
  return RoleConfigError("the credential_source '" + source + "' of profile '" + profile +
                         "' is not valid; use Environment, Ec2InstanceMetadata or EcsContainer");
}

ProviderResult MakeRole(const std::shared_ptr<CredentialSourceContext>& context,
                        const std::string& profile, std::vector<std::string>& visited);

// botocore's _resolve_credentials_from_profile.
ProviderResult FromSourceProfile(const std::shared_ptr<CredentialSourceContext>& context,
                                 const std::string& source, std::vector<std::string>& visited) {
  const ProfileFiles& files = context->profiles;
  if (HasStaticKeys(files, source) || !IsRoleProfile(files, source)) {
    auto found = ResolveProfileSources(context, source, /*use_env=*/false);
    if (!found) {
      return RoleConfigError("the source profile '" + source + "' must have credentials");
    }
    return *found;
  }
  return MakeRole(context, source, visited);
}

class AssumeRoleFetcher {
 public:
  AssumeRoleFetcher(std::shared_ptr<CredentialSourceContext> context, std::string profile,
                    AssumeRoleParams params, std::shared_ptr<AwsClient> sts)
      : context_(std::move(context)),
        profile_(std::move(profile)),
        params_(std::move(params)),
        sts_(std::move(sts)) {}

  Result<Credentials> Fetch() {
    AssumeRoleParams params = params_;
    if (params.role_session_name.empty()) {
      params.role_session_name = DefaultRoleSessionName(context_->clock.Now());
    }
    if (!params.serial_number.empty()) {
      auto code = context_->mfa_prompt(profile_, params.serial_number);
      if (!code.ok()) return code.error();
      params.token_code = Trim(*code);
    }
    return StsAssumeRole(*sts_, params);
  }

 private:
  std::shared_ptr<CredentialSourceContext> context_;
  std::string profile_;
  AssumeRoleParams params_;
  std::shared_ptr<AwsClient> sts_;
};

ProviderResult MakeRole(const std::shared_ptr<CredentialSourceContext>& context,
                        const std::string& profile, std::vector<std::string>& visited) {
  const ProfileFiles& files = context->profiles;
  auto get = [&](const char* key) -> std::optional<std::string> {
    auto value = files.GetFor(profile, key);
    if (value) *value = Trim(*value);
    return value;
  };
  auto source_profile = get("source_profile");
  auto credential_source = get("credential_source");
  if (source_profile && credential_source) {
    return RoleConfigError("profile '" + profile +
                           "' has both source_profile and credential_source; keep one");
  }
  if (!source_profile && !credential_source) {
    return RoleConfigError("profile '" + profile +
                           "' has role_arn but neither source_profile nor credential_source");
  }

  ProviderResult source = Error();
  if (credential_source) {
    source = FromCredentialSource(context, profile, *credential_source);
  } else {
    const std::string& name = *source_profile;
    if (!files.HasProfile(name)) {
      return RoleConfigError("the source_profile '" + name + "' of profile '" + profile +
                             "' does not exist");
    }
    if (std::find(visited.begin(), visited.end(), name) != visited.end() &&
        (name != profile || !HasStaticKeys(files, name))) {
      return RoleConfigError("the source_profile chain loops: " + ChainText(visited, name));
    }
    visited.push_back(name);
    source = FromSourceProfile(context, name, visited);
  }
  if (!source.ok()) return source.error();

  AssumeRoleParams params;
  params.role_arn = get("role_arn").value_or("");
  params.role_session_name = get("role_session_name").value_or("");
  params.external_id = get("external_id").value_or("");
  params.serial_number = get("mfa_serial").value_or("");
  if (auto duration = get("duration_seconds")) {
    // botocore ignores a value int() refuses.
    char* end = nullptr;
    errno = 0;
    long value = std::strtol(duration->c_str(), &end, 10);
    if (!duration->empty() && *end == '\0' && errno == 0 && value > 0 && value < (1L << 31)) {
      params.duration_seconds = static_cast<int>(value);
    }
  }

  // STS is signed with the source's credentials; everything else is this process's setup.
  auto sts_context = std::make_shared<AwsContext>(
      context->sts_region, context->transport, std::move(*source), &context->clock,
      std::make_unique<RetryPolicy>(RetryOptions::FromEnvironment(context->env)), &context->env,
      context->profiles, context->imds);
  auto sts = AwsClient::Create(sts_context, kStsService);
  if (!sts.ok()) return sts.error();
  auto fetcher =
      std::make_shared<AssumeRoleFetcher>(context, profile, std::move(params), std::move(*sts));
  return MakeRefreshingCredentialsProvider([fetcher] { return fetcher->Fetch(); }, context->clock,
                                           "role credentials of profile '" + profile + "'");
}

}  // namespace

ProviderResult MakeAssumeRoleProvider(const std::shared_ptr<CredentialSourceContext>& context,
                                      const std::string& profile) {
  std::vector<std::string> visited = {profile};
  return MakeRole(context, profile, visited);
}

Result<std::string> PromptOnTerminal(const std::string& profile, const std::string& serial) {
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    Error e = Error::InvalidInput(
        "profile '" + profile + "' needs an MFA code for " + serial +
        ", but there is no terminal to ask for it on (/dev/tty: " + std::strerror(errno) +
        "); run from a terminal, or use credentials that need no MFA");
    e.operation = "AssumeRole";
    e.code = "MfaCodeUnavailable";
    return e;
  }
  const std::string question = "Enter MFA code for " + serial + ": ";
  (void)!::write(fd, question.data(), question.size());
  std::string line;
  char c;
  while (true) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    line += c;
  }
  ::close(fd);
  line = Trim(line);
  if (line.empty()) {
    Error e = Error::InvalidInput("no MFA code was entered for " + serial);
    e.operation = "AssumeRole";
    e.code = "MfaCodeUnavailable";
    return e;
  }
  return line;
}

}  // namespace spotgrid
