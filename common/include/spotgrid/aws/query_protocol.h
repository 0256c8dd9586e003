// The form-encoded Query protocols: AWS Query (Auto Scaling, STS: lists as Name.member.N)
// and EC2 Query (lists as Name.N). Both POST Action=...&Version=... and return XML.
#pragma once

#include <span>
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

// Appends list parameter `name`, numbered from 1: "Name.1=a&Name.2=b" for Protocol::kEc2Query,
// "Name.member.1=a&Name.member.2=b" for Protocol::kQuery.
void AddQueryList(QueryParams& params, Protocol protocol, std::string_view name,
                  std::span<const std::string> values);

// The request id a response document carries: EC2's <requestId> under the root, or AWS
// Query's ResponseMetadata/RequestId; "" if none.
std::string QueryRequestId(const XmlElement& doc);

// MalformedResponseError for a 2xx document that lacks what the operation always returns,
// with the document's request id.
Error MalformedResponseError(const ServiceInfo& service, std::string_view operation,
                             std::string message, const XmlElement& doc);

}  // namespace spotgrid
