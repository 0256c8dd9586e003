// SSO role credentials (see sso.h).
#include "spotgrid/aws/credentials/sso.h"

#include <nlohmann/json.hpp>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/credentials/identity_services.h"
#include "spotgrid/aws/uri.h"

namespace spotgrid {

Result<Credentials> FetchSsoCredentials(const CredentialSourceContext& context,
                                        const SsoConfig& config) {
  const std::string operation = "GetRoleCredentials";
  Result<std::string> token = LoadSsoAccessToken(context, config);
  if (!token.ok()) return token.error();

  AwsRequest request;
  request.operation = operation;
  request.method = "GET";
  request.path = "/federation/credentials";
  request.query = {{"account_id", config.account_id}, {"role_name", config.role_name}};
  request.headers = {{"x-amz-sso_bearer_token", *token}, {"Accept", "application/json"}};
  Result<HttpResponse> response =
      SendAnonymous(context.Calls(), kSsoService, config.sso_region, std::move(request));
  if (!response.ok()) {
    if (response.error().code == "UnauthorizedException") {
      return SsoLoginRequired(config, "the SSO portal refused the cached SSO token");
    }
    return response.error();
  }
  auto malformed = [&](const std::string& what) {
    return MalformedResponseError(kSsoService, operation, what, *response);
  };
  nlohmann::json doc = nlohmann::json::parse(response->body, nullptr, false);
  if (!doc.is_object() || !doc.contains("roleCredentials") || !doc["roleCredentials"].is_object()) {
    return malformed("the response has no roleCredentials");
  }
  const nlohmann::json& role = doc["roleCredentials"];
  auto text = [&](const char* key) {
    auto it = role.find(key);
    return it != role.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Credentials credentials;
  credentials.access_key_id = text("accessKeyId");
  credentials.secret_access_key = text("secretAccessKey");
  credentials.session_token = text("sessionToken");
  auto expiration = role.find("expiration");
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty() ||
      expiration == role.end() || !expiration->is_number()) {
    return malformed("the roleCredentials lack a key or the expiration");
  }
  // Milliseconds since the epoch.
  credentials.expiration = Clock::WallTime(std::chrono::milliseconds(expiration->get<long long>()));
  return credentials;
}

}  // namespace spotgrid
