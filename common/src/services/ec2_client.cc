#include "spotgrid/services/ec2_client.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <string>
#include <utility>

#include "spotgrid/aws/query_protocol.h"
#include "spotgrid/core/iso8601.h"

namespace spotgrid {
namespace {

// EC2 accepts up to 1000 instance ids per TerminateInstances call.
constexpr size_t kMaxTerminateIds = 1000;

Error InvalidInput(std::string_view operation, std::string message) {
  return InvalidRequestError(kEc2Service, operation, std::move(message));
}

Error Malformed(std::string_view operation, std::string message, const XmlElement& doc) {
  return MalformedResponseError(kEc2Service, operation, std::move(message), doc);
}

int ParseInt(const std::string& text) {
  int value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

}  // namespace

Result<std::shared_ptr<Ec2Client>> Ec2Client::Create(std::shared_ptr<AwsContext> context) {
  Result<std::shared_ptr<AwsClient>> client = AwsClient::Create(std::move(context), kEc2Service);
  if (!client.ok()) return client.error();
  return std::make_shared<Ec2Client>(std::move(client).value());
}

Result<std::vector<InstanceStateChange>> Ec2Client::TerminateInstances(
    const std::vector<std::string>& instance_ids) {
  constexpr std::string_view kOp = "TerminateInstances";
  if (instance_ids.empty()) return InvalidInput(kOp, "no instance ids given");
  std::vector<InstanceStateChange> changes;
  for (size_t start = 0; start < instance_ids.size(); start += kMaxTerminateIds) {
    size_t end = std::min(instance_ids.size(), start + kMaxTerminateIds);
    QueryParams params;
    AddQueryList(params, Protocol::kEc2Query, "InstanceId",
                 std::span(instance_ids).subspan(start, end - start));
    Result<XmlElement> doc = CallQuery(*client_, kOp, kApiVersion, params);
    if (!doc.ok()) return doc.error();
    const XmlElement* set = doc->Find("instancesSet");
    if (set == nullptr) return Malformed(kOp, "response has no instancesSet", *doc);
    for (const XmlElement* item : set->Children("item")) {
      InstanceStateChange change;
      change.instance_id = item->ChildText("instanceId");
      if (const XmlElement* current = item->Child("currentState")) {
        change.current_code = ParseInt(current->ChildText("code"));
        change.current_state = current->ChildText("name");
      }
      if (const XmlElement* previous = item->Child("previousState")) {
        change.previous_code = ParseInt(previous->ChildText("code"));
        change.previous_state = previous->ChildText("name");
      }
      changes.push_back(std::move(change));
    }
  }
  return changes;
}

Status Ec2Client::CreateTags(const std::vector<std::string>& resource_ids,
                             const std::vector<Ec2Tag>& tags) {
  constexpr std::string_view kOp = "CreateTags";
  if (resource_ids.empty()) return InvalidInput(kOp, "no resource ids given");
  if (tags.empty()) return InvalidInput(kOp, "no tags given");
  QueryParams params;
  AddQueryList(params, Protocol::kEc2Query, "ResourceId", resource_ids);
  for (size_t i = 0; i < tags.size(); ++i) {
    if (tags[i].key.empty()) return InvalidInput(kOp, "tag " + std::to_string(i) + " has no key");
    std::string prefix = "Tag." + std::to_string(i + 1);
    params.emplace_back(prefix + ".Key", tags[i].key);
    params.emplace_back(prefix + ".Value", tags[i].value);
  }
  Result<XmlElement> doc = CallQuery(*client_, kOp, kApiVersion, params);
  if (!doc.ok()) return doc.error();
  // EC2 answers <return>true</return>; anything else means the tags were not applied.
  std::string returned = doc->ChildText("return");
  if (returned != "true") {
    Error e = Malformed(kOp, "EC2 returned \"" + returned + "\" instead of true", *doc);
    e.category = ErrorCategory::kClient;
    e.code = "UnexpectedReturn";
    return e;
  }
  return Status::Ok();
}

Result<SpotPricePage> Ec2Client::DescribeSpotPriceHistoryPage(const SpotPriceQuery& query,
                                                              const std::string& next_token) {
  constexpr std::string_view kOp = "DescribeSpotPriceHistory";
  QueryParams params;
  if (!query.availability_zone.empty()) {
    params.emplace_back("AvailabilityZone", query.availability_zone);
  }
  if (query.end_time) params.emplace_back("EndTime", FormatIso8601(*query.end_time));
  AddQueryList(params, Protocol::kEc2Query, "InstanceType", query.instance_types);
  if (query.max_results > 0) params.emplace_back("MaxResults", std::to_string(query.max_results));
  if (!next_token.empty()) params.emplace_back("NextToken", next_token);
  AddQueryList(params, Protocol::kEc2Query, "ProductDescription", query.product_descriptions);
  if (query.start_time) {
    params.emplace_back("StartTime", FormatIso8601(*query.start_time));
  }

  Result<XmlElement> doc = CallQuery(*client_, kOp, kApiVersion, params);
  if (!doc.ok()) return doc.error();
  SpotPricePage page;
  page.next_token = doc->ChildText("nextToken");
  if (const XmlElement* set = doc->Find("spotPriceHistorySet")) {
    for (const XmlElement* item : set->Children("item")) {
      SpotPrice price;
      price.availability_zone = item->ChildText("availabilityZone");
      price.instance_type = item->ChildText("instanceType");
      price.product_description = item->ChildText("productDescription");
      price.price_text = item->ChildText("spotPrice");
      auto [ptr, ec] = std::from_chars(
          price.price_text.data(), price.price_text.data() + price.price_text.size(), price.price);
      if (ec != std::errc() || price.price_text.empty()) {
        return Malformed(kOp, "spot price \"" + price.price_text + "\" is not a number", *doc);
      }
      std::string timestamp = item->ChildText("timestamp");
      std::optional<Clock::WallTime> parsed = ParseIso8601(timestamp);
      if (!parsed) {
        return Malformed(kOp, "spot price timestamp \"" + timestamp + "\" is not ISO 8601", *doc);
      }
      price.timestamp = *parsed;
      page.prices.push_back(std::move(price));
    }
  }
  return page;
}

Result<std::vector<SpotPrice>> Ec2Client::DescribeSpotPriceHistory(const SpotPriceQuery& query) {
  std::vector<SpotPrice> prices;
  std::string token;
  for (int page_number = 1;; ++page_number) {
    Result<SpotPricePage> page = DescribeSpotPriceHistoryPage(query, token);
    if (!page.ok()) return page.error();
    std::move(page->prices.begin(), page->prices.end(), std::back_inserter(prices));
    if (page->next_token.empty()) return prices;
    if (page->next_token == token || page_number >= query.max_pages) {
      Error e;
      e.category = ErrorCategory::kClient;
      e.service = std::string(kEc2Service.name);
      e.operation = "DescribeSpotPriceHistory";
      e.code = "TooManyPages";
      e.message = page->next_token == token
                      ? "EC2 returned the same NextToken twice"
                      : "more than " + std::to_string(query.max_pages) +
                            " pages; narrow the query (instance types, zone, start time)";
      return e;
    }
    token = std::move(page->next_token);
  }
}

}  // namespace spotgrid
