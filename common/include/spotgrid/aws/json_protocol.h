// AWS JSON 1.0 protocol (SQS, DynamoDB): POST / with X-Amz-Target, body and result as JSON.
//
// Thread-safety: stateless functions over a thread-safe AwsClient.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "spotgrid/aws/aws_client.h"

namespace spotgrid {

// Sends `body` as operation `target_prefix.operation` and parses the JSON result
// ({} when the body is empty). Errors carry the `__type` code. Never throws: a body holding a
// string that is not valid UTF-8 cannot be serialised and fails as kInvalidInput naming service
// and operation; a 2xx whose body is not a JSON object is a MalformedResponseError.
// `timeout` overrides the transport's default when non-zero (a long poll needs one above its
// wait); `stop` cancels the call (AwsRequest::stop).
Result<nlohmann::json> CallJson(AwsClient& client, std::string_view target_prefix,
                                std::string_view operation, const nlohmann::json& body,
                                std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                                const StopSource* stop = nullptr);

// The string member `key` of a response object; "" when absent or not a string.
std::string JsonString(const nlohmann::json& object, std::string_view key);

// CallJson for a body that is already encoded (the batch paths write theirs directly).
Result<nlohmann::json> CallJsonEncoded(
    AwsClient& client, std::string_view target_prefix, std::string_view operation, std::string body,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
    const StopSource* stop = nullptr);

// The AwsRequest of a JSON 1.0 call with an encoded body (what SendJsonEncoded sends; callers
// of AwsMulti start it themselves).
AwsRequest JsonRequest(std::string_view target_prefix, std::string_view operation,
                       std::string body);

// CallJsonEncoded without the parse, for callers that read the answer with their own SAX
// handler (a DOM of a large batch answer costs more than the call): the 2xx response, whose
// body is "" or JSON text still to be checked.
Result<HttpResponse> SendJsonEncoded(
    AwsClient& client, std::string_view target_prefix, std::string_view operation, std::string body,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
    const StopSource* stop = nullptr);

// What CallJsonEncoded makes of a response: its JSON object ({} for an empty body), or the
// call's error, or a MalformedResponseError when the body is not a JSON object.
Result<nlohmann::json> JsonResult(const ServiceInfo& service, std::string_view operation,
                                  const Result<HttpResponse>& response);

// The MalformedResponseError CallJsonEncoded returns for a 2xx body that is not a JSON object.
Error NotJsonObjectError(const ServiceInfo& service, std::string_view operation,
                         const HttpResponse& response);

}  // namespace spotgrid
