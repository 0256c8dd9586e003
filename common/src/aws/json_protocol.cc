#include "spotgrid/aws/json_protocol.h"

#include <string>
#include <utility>

namespace spotgrid {

Result<nlohmann::json> CallJson(AwsClient& client, std::string_view target_prefix,
                                std::string_view operation, const nlohmann::json& body,
                                std::chrono::milliseconds timeout, const StopSource* stop) {
  std::string encoded;
  try {
    encoded = body.is_null() ? "{}" : body.dump();
  } catch (const nlohmann::json::exception& e) {
    // dump() throws on strings that are not valid UTF-8; the service would reject them too.
    return InvalidRequestError(client.service(), operation,
                               std::string("request is not valid JSON: ") + e.what());
  }
  return CallJsonEncoded(client, target_prefix, operation, std::move(encoded), timeout, stop);
}

AwsRequest JsonRequest(std::string_view target_prefix, std::string_view operation,
                       std::string body) {
  AwsRequest request;
  request.operation = std::string(operation);
  // method POST and path "/" are AwsRequest's defaults.
  std::string target;
  target.reserve(target_prefix.size() + 1 + operation.size());
  target.append(target_prefix).append(".").append(operation);
  request.headers = {{"content-type", "application/x-amz-json-1.0"},
                     {"x-amz-target", std::move(target)}};
  request.body = std::move(body);
  return request;
}

Result<HttpResponse> SendJsonEncoded(AwsClient& client, std::string_view target_prefix,
                                     std::string_view operation, std::string body,
                                     std::chrono::milliseconds timeout, const StopSource* stop) {
  AwsRequest request = JsonRequest(target_prefix, operation, std::move(body));
  request.timeout = timeout;
  request.stop = stop;
  return client.Send(request);
}

Error NotJsonObjectError(const ServiceInfo& service, std::string_view operation,
                         const HttpResponse& response) {
  return MalformedResponseError(
      service, operation,
      "response body is not a JSON object (" + std::to_string(response.body.size()) + " bytes)",
      response);
}

Result<nlohmann::json> JsonResult(const ServiceInfo& service, std::string_view operation,
                                  const Result<HttpResponse>& response) {
  if (!response.ok()) return response.error();
  if (response->body.empty()) return nlohmann::json::object();
  nlohmann::json result =
      nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  // Every JSON 1.0 answer is an object; anything else would make the callers' lookups throw.
  if (!result.is_object()) return NotJsonObjectError(service, operation, *response);
  return result;
}

Result<nlohmann::json> CallJsonEncoded(AwsClient& client, std::string_view target_prefix,
                                       std::string_view operation, std::string body,
                                       std::chrono::milliseconds timeout, const StopSource* stop) {
  return JsonResult(client.service(), operation,
                    SendJsonEncoded(client, target_prefix, operation, std::move(body), timeout,
                                    stop));
}

std::string JsonString(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

}  // namespace spotgrid
