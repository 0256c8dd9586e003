// AWS JSON 1.0 protocol (SQS, DynamoDB): POST / with X-Amz-Target, body and result as JSON.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "spotgrid/aws/aws_client.h"

namespace spotgrid {

// Sends `body` as operation `target_prefix.operation` and parses the JSON result
// ({} when the body is empty). Errors carry the `__type` code.
Result<nlohmann::json> CallJson(AwsClient& client, std::string_view target_prefix,
                                std::string_view operation, const nlohmann::json& body);

}  // namespace spotgrid
