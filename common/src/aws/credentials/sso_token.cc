// The SSO token cache and its refresh (see sso_token.h).
#include "spotgrid/aws/credentials/sso_token.h"

#include <openssl/sha.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/strings.h"
#include "spotgrid/aws/credentials/identity_services.h"
#include "spotgrid/core/file_io.h"
#include "spotgrid/core/iso8601.h"
#include "spotgrid/core/log.h"

namespace spotgrid {

namespace {

std::string Sha1Hex(std::string_view data) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  std::string hex;
  char byte[3];
  for (unsigned char c : digest) {
    std::snprintf(byte, sizeof byte, "%02x", c);
    hex += byte;
  }
  return hex;
}

std::string StringField(const nlohmann::json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// CreateToken with the cached refresh token; the refreshed cache document, or an error.
Result<nlohmann::json> RefreshToken(const CredentialSourceContext& context, const SsoConfig& config,
                                    nlohmann::json cached) {
  const std::string operation = "CreateToken";
  nlohmann::json body = {{"clientId", StringField(cached, "clientId")},
                         {"clientSecret", StringField(cached, "clientSecret")},
                         {"grantType", "refresh_token"},
                         {"refreshToken", StringField(cached, "refreshToken")}};
  AwsRequest request;
  request.operation = operation;
  request.method = "POST";
  request.path = "/token";
  request.headers = {{"Content-Type", "application/json"}};
  request.body = body.dump();
  Result<HttpResponse> response =
      SendAnonymous(context.Calls(), kSsoOidcService, config.sso_region, std::move(request));
  if (!response.ok()) return response.error();
  nlohmann::json answer = nlohmann::json::parse(response->body, nullptr, false);
  auto expires_in = answer.is_object() ? answer.find("expiresIn") : answer.end();
  if (!answer.is_object() || StringField(answer, "accessToken").empty() ||
      expires_in == answer.end() || !expires_in->is_number_integer()) {
    Error e;
    e.category = ErrorCategory::kTransient;
    e.service = std::string(kSsoOidcService.name);
    e.operation = operation;
    e.http_status = response->status;
    e.code = "MalformedResponse";
    e.message = "the response lacks accessToken or expiresIn";
    return e;
  }
  cached["startUrl"] = config.start_url;
  cached["region"] = config.sso_region;
  cached["accessToken"] = StringField(answer, "accessToken");
  cached["expiresAt"] =
      FormatIso8601(context.clock.Now() + std::chrono::seconds(expires_in->get<long long>()));
  if (auto refresh = StringField(answer, "refreshToken"); !refresh.empty()) {
    cached["refreshToken"] = refresh;
  }
  return cached;
}

}  // namespace

std::optional<Result<SsoConfig>> FindSsoConfig(const ProfileFiles& profiles,
                                               const std::string& profile) {
  auto key = [&](const char* name) { return profiles.GetFor(profile, name); };
  if (!key("sso_account_id") && !key("sso_role_name")) return std::nullopt;
  SsoConfig config;
  config.profile = profile;
  std::map<std::string, std::string> resolved;
  for (const char* name : {"sso_start_url", "sso_region", "sso_account_id", "sso_role_name"}) {
    if (auto value = key(name)) resolved[name] = Trim(*value);
  }
  std::vector<std::string> required = {"sso_start_url", "sso_region", "sso_account_id",
                                       "sso_role_name"};
  if (auto session = key("sso_session")) {
    config.session_name = Trim(*session);
    auto section = profiles.sso_sessions.find(config.session_name);
    if (section == profiles.sso_sessions.end()) {
      return Result<SsoConfig>(Error::InvalidInput("the sso-session '" + config.session_name +
                                                   "' that profile '" + profile +
                                                   "' names does not exist in the config file"));
    }
    for (const auto& [name, value] : section->second) {
      auto in_profile = key(name.c_str());
      if (in_profile && Trim(*in_profile) != Trim(value)) {
        return Result<SsoConfig>(
            Error::InvalidInput("the value of " + name + " differs between profile '" + profile +
                                "' and [sso-session " + config.session_name + "]"));
      }
      resolved[name] = Trim(value);
    }
  }
  std::string missing;
  for (const auto& name : required) {
    if (resolved.count(name) == 0 || resolved[name].empty()) {
      missing += (missing.empty() ? "" : ", ") + name;
    }
  }
  if (!missing.empty()) {
    return Result<SsoConfig>(Error::InvalidInput(
        "profile '" + profile + "' is configured to use SSO but is missing " + missing));
  }
  config.start_url = resolved["sso_start_url"];
  config.sso_region = resolved["sso_region"];
  config.account_id = resolved["sso_account_id"];
  config.role_name = resolved["sso_role_name"];
  return Result<SsoConfig>(std::move(config));
}

std::string SsoTokenCachePath(const std::string& home, const std::string& key) {
  return home + "/.aws/sso/cache/" + Sha1Hex(key) + ".json";
}

Error SsoLoginRequired(const SsoConfig& config, const std::string& why) {
  Error e;
  e.category = ErrorCategory::kClient;
  e.service = std::string(kSsoService.name);
  e.operation = "GetRoleCredentials";
  e.code = "SsoLoginRequired";
  e.message = why + "; run: aws sso login --profile " + config.profile;
  return e;
}

Result<std::string> LoadSsoAccessToken(const CredentialSourceContext& context,
                                       const SsoConfig& config) {
  const bool legacy = config.session_name.empty();
  const std::string& key = legacy ? config.start_url : config.session_name;
  const std::string what =
      legacy ? "start URL " + config.start_url : "sso-session '" + config.session_name + "'";
  const std::string path = SsoTokenCachePath(context.env.GetOr("HOME", ""), key);
  Result<std::string> text = ReadFile(path, "read the SSO token cache");
  if (!text.ok()) {
    if (text.error().IsNotFound()) return SsoLoginRequired(config, "no SSO token for " + what);
    return text.error();
  }
  nlohmann::json cached = nlohmann::json::parse(*text, nullptr, false);
  if (!cached.is_object() || StringField(cached, "accessToken").empty()) {
    return SsoLoginRequired(config,
                            "the cached SSO token for " + what + " (" + path + ") is not valid");
  }
  auto expires = ParseIso8601(StringField(cached, "expiresAt"));
  if (!expires) {
    return SsoLoginRequired(config,
                            "the cached SSO token for " + what + " has no readable expiresAt");
  }
  const auto now = context.clock.Now();
  if (!legacy && *expires - now < kSsoTokenRefreshWindow) {
    auto registration_expires = ParseIso8601(StringField(cached, "registrationExpiresAt"));
    const bool refreshable = !StringField(cached, "refreshToken").empty() &&
                             !StringField(cached, "clientId").empty() &&
                             !StringField(cached, "clientSecret").empty() && registration_expires &&
                             *registration_expires > now;
    if (refreshable) {
      Result<nlohmann::json> refreshed = RefreshToken(context, config, cached);
      if (refreshed.ok()) {
        Status written = WriteFileAtomically(
            path, refreshed->dump(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
            "write the SSO token cache");
        if (!written.ok()) {
          Logger().warn("SSO token for {} refreshed but not saved: {}", what,
                        written.error().ToString());
        }
        return StringField(*refreshed, "accessToken");
      }
      Logger().warn("refreshing the SSO token for {} failed: {}", what,
                    refreshed.error().ToString());
    }
  }
  if (now >= *expires) {
    return SsoLoginRequired(config, "the SSO token for " + what + " has expired");
  }
  return StringField(cached, "accessToken");
}

}  // namespace spotgrid
