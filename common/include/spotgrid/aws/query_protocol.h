// The form-encoded Query protocols: AWS Query (Auto Scaling, STS: lists as Name.member.N)
// and EC2 Query (lists as Name.N). Both POST Action=...&Version=... and return XML.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/xml.h"

namespace spotgrid {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Sends Action=operation&Version=version&params and returns the parsed response document.
Result<XmlElement> CallQuery(AwsClient& client, std::string_view operation,
                             std::string_view version, const QueryParams& params);

}  // namespace spotgrid
