#include "spotgrid/aws/query_protocol.h"

#include <string>

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
    Error error;
    error.category = ErrorCategory::kTransient;
    error.service = std::string(client.service().name);
    error.operation = request.operation;
    error.http_status = response->status;
    error.code = "MalformedResponse";
    error.message = "response body is not valid XML: " + doc.error().message;
    if (auto id = response->Header("x-amzn-requestid")) error.request_id = *id;
    return error;
  }
  return doc;
}

}  // namespace spotgrid
