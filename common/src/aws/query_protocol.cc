#include "spotgrid/aws/query_protocol.h"

#include <string>
#include <utility>

#include "spotgrid/aws/uri.h"

namespace spotgrid {

Result<XmlElement> CallQuery(AwsClient& client, std::string_view operation,
                             std::string_view version, const QueryParams& params) {
  QueryParams form;
  form.reserve(params.size() + 2);
  form.emplace_back("Action", std::string(operation));
  form.emplace_back("Version", std::string(version));
  form.insert(form.end(), params.begin(), params.end());

  AwsRequest request;
  request.operation = std::string(operation);
  // method POST and path "/" are AwsRequest's defaults.
  request.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
  request.body = FormEncode(form);

  Result<HttpResponse> response = client.Send(request);
  if (!response.ok()) return response.error();
  Result<XmlElement> doc = ParseXml(response->body);
  if (!doc.ok()) {
    return MalformedResponseError(client.service(), operation,
                                  "response body is not valid XML: " + doc.error().message,
                                  *response);
  }
  return doc;
}

void AddQueryList(QueryParams& params, Protocol protocol, std::string_view name,
                  std::span<const std::string> values) {
  const std::string prefix =
      std::string(name) + (protocol == Protocol::kEc2Query ? "." : ".member.");
  for (std::size_t i = 0; i < values.size(); ++i) {
    params.emplace_back(prefix + std::to_string(i + 1), values[i]);
  }
}

std::string QueryRequestId(const XmlElement& doc) {
  std::string ec2_id = doc.ChildText("requestId");
  if (!ec2_id.empty()) return ec2_id;
  const XmlElement* id = doc.Find("RequestId");
  return id == nullptr ? std::string() : id->text;
}

Error MalformedResponseError(const ServiceInfo& service, std::string_view operation,
                             std::string message, const XmlElement& doc) {
  Error e = MalformedResponseError(service, operation, std::move(message));
  e.request_id = QueryRequestId(doc);
  return e;
}

}  // namespace spotgrid
