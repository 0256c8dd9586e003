// STS AssumeRole and AssumeRoleWithWebIdentity (see sts.h).
#include "spotgrid/aws/credentials/sts.h"

#include <chrono>
#include <utility>

#include "spotgrid/aws/credentials/identity_services.h"
#include "spotgrid/aws/query_protocol.h"
#include "spotgrid/aws/uri.h"
#include "spotgrid/core/iso8601.h"

namespace spotgrid {

Result<Credentials> ParseStsCredentials(const XmlElement& doc, const std::string& operation) {
  const XmlElement* result = doc.Child(operation + "Result");
  const XmlElement* credentials = result != nullptr ? result->Child("Credentials") : nullptr;
  if (credentials == nullptr) {
    return MalformedResponseError(kStsService, operation, "the response has no Credentials", doc);
  }
  Credentials out;
  out.access_key_id = credentials->ChildText("AccessKeyId");
  out.secret_access_key = credentials->ChildText("SecretAccessKey");
  out.session_token = credentials->ChildText("SessionToken");
  if (out.access_key_id.empty() || out.secret_access_key.empty() || out.session_token.empty()) {
    return MalformedResponseError(
        kStsService, operation, "the response's Credentials lack a key or the session token", doc);
  }
  out.expiration = ParseIso8601(credentials->ChildText("Expiration"));
  if (!out.expiration) {
    return MalformedResponseError(kStsService, operation,
                                  "the response's Credentials have no readable Expiration", doc);
  }
  return out;
}

std::string DefaultRoleSessionName(Clock::WallTime now) {
  return "spotgrid-session-" +
         std::to_string(
             std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
}

Result<Credentials> StsAssumeRole(AwsClient& sts, const AssumeRoleParams& params) {
  QueryParams query = {{"RoleArn", params.role_arn}, {"RoleSessionName", params.role_session_name}};
  if (params.duration_seconds) {
    query.emplace_back("DurationSeconds", std::to_string(*params.duration_seconds));
  }
  if (!params.external_id.empty()) query.emplace_back("ExternalId", params.external_id);
  if (!params.serial_number.empty()) {
    query.emplace_back("SerialNumber", params.serial_number);
    query.emplace_back("TokenCode", params.token_code);
  }
  Result<XmlElement> doc = CallQuery(sts, "AssumeRole", kStsVersion, query);
  if (!doc.ok()) return doc.error();
  return ParseStsCredentials(*doc, "AssumeRole");
}

Result<Credentials> StsAssumeRoleWithWebIdentity(const IdentityCallContext& context,
                                                 const std::string& region,
                                                 const WebIdentityParams& params) {
  const std::string operation = "AssumeRoleWithWebIdentity";
  std::vector<std::pair<std::string, std::string>> form = {
      {"Action", operation},
      {"Version", kStsVersion},
      {"RoleArn", params.role_arn},
      {"RoleSessionName", params.role_session_name},
      {"WebIdentityToken", params.web_identity_token}};
  if (params.duration_seconds) {
    form.emplace_back("DurationSeconds", std::to_string(*params.duration_seconds));
  }
  AwsRequest request;
  request.operation = operation;
  request.method = "POST";
  request.path = "/";
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  request.body = FormEncode(form);
  Result<HttpResponse> response = SendAnonymous(context, kStsService, region, std::move(request));
  if (!response.ok()) return response.error();
  Result<XmlElement> doc = ParseXml(response->body);
  if (!doc.ok()) {
    return MalformedResponseError(kStsService, operation, "the response is not XML", *response);
  }
  return ParseStsCredentials(*doc, operation);
}

}  // namespace spotgrid
