// Ec2Client against FakeTransport: exact EC2 Query form bodies (lists as Name.N), parsing of
// the XML shapes real EC2 returns, pagination, and how EC2 errors surface.
#include "spotgrid/services/ec2_client.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/client_fixture.h"

namespace spotgrid {
namespace {

constexpr char kFormContentType[] = "application/x-www-form-urlencoded; charset=utf-8";

// Response documents as EC2 sends them (EC2 API Reference examples, namespaced, lowerCamel,
// list items as <item>).
constexpr char kTerminateResponse[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<TerminateInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
    <instancesSet>
        <item>
            <instanceId>i-1234567890abcdef0</instanceId>
            <currentState>
                <code>32</code>
                <name>shutting-down</name>
            </currentState>
            <previousState>
                <code>16</code>
                <name>running</name>
            </previousState>
        </item>
        <item>
            <instanceId>i-0598c7d356eba48d7</instanceId>
            <currentState>
                <code>48</code>
                <name>terminated</name>
            </currentState>
            <previousState>
                <code>48</code>
                <name>terminated</name>
            </previousState>
        </item>
    </instancesSet>
</TerminateInstancesResponse>)";

constexpr char kCreateTagsResponse[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
   <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
   <return>true</return>
</CreateTagsResponse>)";

constexpr char kSpotPage1[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
  <spotPriceHistorySet>
    <item>
      <instanceType>c5.large</instanceType>
      <productDescription>Linux/UNIX</productDescription>
      <spotPrice>0.034500</spotPrice>
      <timestamp>2024-05-01T12:34:56.000Z</timestamp>
      <availabilityZone>us-east-1a</availabilityZone>
    </item>
    <item>
      <instanceType>m5.large</instanceType>
      <productDescription>Linux/UNIX</productDescription>
      <spotPrice>0.041200</spotPrice>
      <timestamp>2024-05-01T12:30:00.000Z</timestamp>
      <availabilityZone>us-east-1a</availabilityZone>
    </item>
  </spotPriceHistorySet>
  <nextToken>page-2 token/+=</nextToken>
</DescribeSpotPriceHistoryResponse>)";

constexpr char kSpotPage2[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>6b1a2c3d-35bd-4eac-99ed-be587EXAMPLE</requestId>
  <spotPriceHistorySet>
    <item>
      <instanceType>c5.large</instanceType>
      <productDescription>Linux/UNIX</productDescription>
      <spotPrice>0.0339</spotPrice>
      <timestamp>2024-05-01T11:00:00.000Z</timestamp>
      <availabilityZone>us-east-1a</availabilityZone>
    </item>
  </spotPriceHistorySet>
  <nextToken/>
</DescribeSpotPriceHistoryResponse>)";

constexpr char kNotFoundError[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-0000000000000dead' does not exist</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>)";

constexpr char kThrottledError[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>0b7e4a2c-throttled</RequestID></Response>)";

class Ec2ClientTest : public testing::FakeAwsTest {
 protected:
  void SetUp() override {
    auto client = CreateClient<Ec2Client>();
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *client;
  }

  std::shared_ptr<Ec2Client> client_;
};

TEST_F(Ec2ClientTest, TerminateInstancesPostsEc2QueryFormSignedForEc2) {
  transport_->PushResponse(200, kTerminateResponse);
  auto changes = client_->TerminateInstances({"i-1234567890abcdef0", "i-0598c7d356eba48d7"});
  ASSERT_TRUE(changes.ok()) << changes.error().ToString();

  ASSERT_EQ(transport_->request_count(), 1u);
  const HttpRequest request = transport_->requests()[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "https://ec2.us-east-1.amazonaws.com/");
  EXPECT_EQ(FindHeader(request.headers, "content-type").value_or(""), kFormContentType);
  EXPECT_NE(
      FindHeader(request.headers, "authorization").value_or("").find("/us-east-1/ec2/aws4_request"),
      std::string::npos);
  EXPECT_EQ(request.body,
            "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-1234567890abcdef0&"
            "InstanceId.2=i-0598c7d356eba48d7");
}

TEST_F(Ec2ClientTest, TerminateInstancesParsesEveryStateChange) {
  transport_->PushResponse(200, kTerminateResponse);
  auto changes = client_->TerminateInstances({"i-1234567890abcdef0", "i-0598c7d356eba48d7"});
  ASSERT_TRUE(changes.ok()) << changes.error().ToString();
  ASSERT_EQ(changes->size(), 2u);
  EXPECT_EQ((*changes)[0].instance_id, "i-1234567890abcdef0");
  EXPECT_EQ((*changes)[0].current_code, 32);
  EXPECT_EQ((*changes)[0].current_state, "shutting-down");
  EXPECT_EQ((*changes)[0].previous_code, 16);
  EXPECT_EQ((*changes)[0].previous_state, "running");
  EXPECT_EQ((*changes)[1].instance_id, "i-0598c7d356eba48d7");
  EXPECT_EQ((*changes)[1].current_state, "terminated");
  EXPECT_EQ((*changes)[1].previous_code, 48);
}

TEST_F(Ec2ClientTest, TerminateInstancesSplitsMoreThanAThousandIdsIntoSeveralCalls) {
  std::vector<std::string> ids;
  for (int i = 0; i < 1001; ++i) ids.push_back("i-" + std::to_string(100000 + i));
  transport_->PushResponse(200, kTerminateResponse);
  transport_->PushResponse(200, kTerminateResponse);
  auto changes = client_->TerminateInstances(ids);
  ASSERT_TRUE(changes.ok()) << changes.error().ToString();
  ASSERT_EQ(transport_->request_count(), 2u);
  const std::string first = transport_->requests()[0].body;
  EXPECT_NE(first.find("&InstanceId.1000=i-100999"), std::string::npos);
  EXPECT_EQ(first.find("InstanceId.1001="), std::string::npos);
  EXPECT_EQ(transport_->requests()[1].body,
            "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-101000");
  EXPECT_EQ(changes->size(), 4u);  // two parsed items per scripted response
}

TEST_F(Ec2ClientTest, TerminateInstancesRejectsAnEmptyListWithoutSending) {
  auto changes = client_->TerminateInstances({});
  ASSERT_FALSE(changes.ok());
  EXPECT_EQ(changes.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(changes.error().operation, "TerminateInstances");
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(Ec2ClientTest, UnknownInstanceSurfacesEc2CodeStatusAndRequestIdWithoutRetry) {
  transport_->PushResponse(400, kNotFoundError);
  auto changes = client_->TerminateInstances({"i-0000000000000dead"});
  ASSERT_FALSE(changes.ok());
  const Error& e = changes.error();
  EXPECT_EQ(e.service, "EC2");
  EXPECT_EQ(e.operation, "TerminateInstances");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "InvalidInstanceID.NotFound");
  EXPECT_EQ(e.request_id, "ea966190-f9aa-478e-9ede-example");
  EXPECT_NE(e.message.find("does not exist"), std::string::npos);
  EXPECT_EQ(e.category, ErrorCategory::kClient);
  EXPECT_EQ(transport_->request_count(), 1u);
}

TEST_F(Ec2ClientTest, RequestLimitExceededIsRetriedUntilTheCallSucceeds) {
  transport_->PushResponse(503, kThrottledError);
  transport_->PushResponse(200, kTerminateResponse);
  auto changes = client_->TerminateInstances({"i-1234567890abcdef0"});
  ASSERT_TRUE(changes.ok()) << changes.error().ToString();
  EXPECT_EQ(transport_->request_count(), 2u);
  EXPECT_EQ(clock_.sleeps().size(), 1u);  // one backoff between the attempts
}

TEST_F(Ec2ClientTest, CreateTagsEncodesResourcesAndTagsAsNameN) {
  transport_->PushResponse(200, kCreateTagsResponse);
  Status status =
      client_->CreateTags({"i-1", "i-2"}, {{"Name", "worker 1"}, {"spotgrid:grid", ""}});
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(transport_->request_count(), 1u);
  EXPECT_EQ(transport_->requests()[0].body,
            "Action=CreateTags&Version=2016-11-15&ResourceId.1=i-1&ResourceId.2=i-2&"
            "Tag.1.Key=Name&Tag.1.Value=worker%201&Tag.2.Key=spotgrid%3Agrid&Tag.2.Value=");
}

TEST_F(Ec2ClientTest, CreateTagsFailsWhenEc2DoesNotReturnTrue) {
  transport_->PushResponse(200,
                           R"(<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<requestId>r-1</requestId><return>false</return></CreateTagsResponse>)");
  Status status = client_->CreateTags({"i-1"}, {{"k", "v"}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().request_id, "r-1");
  EXPECT_EQ(status.error().operation, "CreateTags");
}

TEST_F(Ec2ClientTest, CreateTagsRejectsMissingResourcesOrTags) {
  EXPECT_EQ(client_->CreateTags({}, {{"k", "v"}}).error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(client_->CreateTags({"i-1"}, {}).error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(client_->CreateTags({"i-1"}, {{"", "v"}}).error().category,
            ErrorCategory::kInvalidInput);
  EXPECT_EQ(transport_->request_count(), 0u);
}

TEST_F(Ec2ClientTest, DescribeSpotPriceHistorySendsQueryAndFollowsNextToken) {
  transport_->PushResponse(200, kSpotPage1);
  transport_->PushResponse(200, kSpotPage2);
  SpotPriceQuery query;
  query.instance_types = {"c5.large", "m5.large"};
  query.product_descriptions = {"Linux/UNIX"};
  query.availability_zone = "us-east-1a";
  query.start_time = Clock::WallTime(std::chrono::seconds(1714566600));  // 2024-05-01T12:30:00Z
  auto prices = client_->DescribeSpotPriceHistory(query);
  ASSERT_TRUE(prices.ok()) << prices.error().ToString();

  ASSERT_EQ(transport_->request_count(), 2u);
  const std::string expected_params =
      "AvailabilityZone=us-east-1a&InstanceType.1=c5.large&InstanceType.2=m5.large&";
  EXPECT_EQ(transport_->requests()[0].body,
            "Action=DescribeSpotPriceHistory&Version=2016-11-15&" + expected_params +
                "ProductDescription.1=Linux%2FUNIX&StartTime=2024-05-01T12%3A30%3A00Z");
  EXPECT_EQ(transport_->requests()[1].body,
            "Action=DescribeSpotPriceHistory&Version=2016-11-15&" + expected_params +
                "NextToken=page-2%20token%2F%2B%3D&ProductDescription.1=Linux%2FUNIX&"
                "StartTime=2024-05-01T12%3A30%3A00Z");

  ASSERT_EQ(prices->size(), 3u);
  const SpotPrice& first = (*prices)[0];
  EXPECT_EQ(first.instance_type, "c5.large");
  EXPECT_EQ(first.availability_zone, "us-east-1a");
  EXPECT_EQ(first.product_description, "Linux/UNIX");
  EXPECT_EQ(first.price_text, "0.034500");
  EXPECT_DOUBLE_EQ(first.price, 0.0345);
  EXPECT_EQ(first.timestamp, Clock::WallTime(std::chrono::seconds(1714566896)));
  EXPECT_EQ((*prices)[1].instance_type, "m5.large");
  EXPECT_DOUBLE_EQ((*prices)[2].price, 0.0339);
  EXPECT_EQ((*prices)[2].timestamp, Clock::WallTime(std::chrono::seconds(1714561200)));
}

TEST_F(Ec2ClientTest, DescribeSpotPriceHistoryPageReturnsTheTokenForTheNextPage) {
  transport_->PushResponse(200, kSpotPage1);
  SpotPriceQuery query;
  query.max_results = 100;
  query.end_time = Clock::WallTime(std::chrono::seconds(1714566600));
  auto page = client_->DescribeSpotPriceHistoryPage(query, "");
  ASSERT_TRUE(page.ok()) << page.error().ToString();
  EXPECT_EQ(page->next_token, "page-2 token/+=");
  EXPECT_EQ(page->prices.size(), 2u);
  EXPECT_EQ(transport_->requests()[0].body,
            "Action=DescribeSpotPriceHistory&Version=2016-11-15&"
            "EndTime=2024-05-01T12%3A30%3A00Z&MaxResults=100");
}

TEST_F(Ec2ClientTest, DescribeSpotPriceHistoryStopsWhenTheServiceRepeatsItsToken) {
  transport_->PushResponse(200, kSpotPage1);
  transport_->PushResponse(200, kSpotPage1);
  auto prices = client_->DescribeSpotPriceHistory({});
  ASSERT_FALSE(prices.ok());
  EXPECT_EQ(prices.error().code, "TooManyPages");
  EXPECT_EQ(transport_->request_count(), 2u);
}

TEST_F(Ec2ClientTest, DescribeSpotPriceHistoryStopsAfterMaxPages) {
  int n = 0;
  transport_->SetFallback([&n](const HttpRequest&) -> Result<HttpResponse> {
    HttpResponse response;
    response.status = 200;
    response.body = "<DescribeSpotPriceHistoryResponse><spotPriceHistorySet/><nextToken>t" +
                    std::to_string(++n) + "</nextToken></DescribeSpotPriceHistoryResponse>";
    return response;
  });
  SpotPriceQuery query;
  query.max_pages = 3;
  auto prices = client_->DescribeSpotPriceHistory(query);
  ASSERT_FALSE(prices.ok());
  EXPECT_EQ(prices.error().code, "TooManyPages");
  EXPECT_EQ(transport_->request_count(), 3u);
}

TEST_F(Ec2ClientTest, DescribeSpotPriceHistoryReportsAPriceThatIsNotANumber) {
  std::string body = kSpotPage2;
  body.replace(body.find("0.0339"), 6, "cheap");
  transport_->PushResponse(200, body);
  auto prices = client_->DescribeSpotPriceHistory({});
  ASSERT_FALSE(prices.ok());
  EXPECT_EQ(prices.error().code, "MalformedResponse");
  EXPECT_EQ(prices.error().request_id, "6b1a2c3d-35bd-4eac-99ed-be587EXAMPLE");
}

}  // namespace
}  // namespace spotgrid
