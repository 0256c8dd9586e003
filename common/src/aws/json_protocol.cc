#include "spotgrid/aws/json_protocol.h"

#include <string>

namespace spotgrid {

Result<nlohmann::json> CallJson(AwsClient& client, std::string_view target_prefix,
                                std::string_view operation, const nlohmann::json& body) {
  AwsRequest request;
  request.operation = std::string(operation);
  request.method = "POST";
  request.path = "/";
  request.headers = {{"content-type", "application/x-amz-json-1.0"},
                     {"x-amz-target", std::string(target_prefix) + "." + std::string(operation)}};
  try {
    request.body = body.is_null() ? "{}" : body.dump();
  } catch (const nlohmann::json::exception& e) {
    // dump() throws on strings that are not valid UTF-8; the service would reject them too.
    Error error = Error::InvalidInput(std::string("request is not valid JSON: ") + e.what());
    error.service = std::string(client.service().name);
    error.operation = request.operation;
    return error;
  }

  Result<HttpResponse> response = client.Send(request);
  if (!response.ok()) return response.error();
  if (response->body.empty()) return nlohmann::json::object();
  nlohmann::json result =
      nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (result.is_discarded()) {
    Error error;
    // A body cut short by a proxy or a reset: worth another try, like no response at all.
    error.category = ErrorCategory::kTransient;
    error.service = std::string(client.service().name);
    error.operation = request.operation;
    error.http_status = response->status;
    error.code = "MalformedResponse";
    error.message =
        "response body is not valid JSON (" + std::to_string(response->body.size()) + " bytes)";
    if (auto id = response->Header("x-amzn-requestid")) error.request_id = *id;
    return error;
  }
  return result;
}

}  // namespace spotgrid
