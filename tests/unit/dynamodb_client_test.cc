// DynamoDbClient against FakeTransport: request shapes, batching, UnprocessedItems, pagination,
// conditional failures.
#include "spotgrid/services/dynamodb_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "support/client_fixture.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::HeaderOf;
using testing::JsonBody;

HttpResponse Ok(const json& body) {
  HttpResponse response;
  response.status = 200;
  response.body = body.dump();
  return response;
}

class DynamoDbClientTest : public testing::FakeAwsTest {
 protected:
  void SetUp() override { MakeClient({}); }

  void MakeClient(DynamoDbClientOptions options) {
    auto client = CreateClient<DynamoDbClient>(options);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *client;
  }

  static json Item(int i) {
    return {{"pk", ddb::S("job")},
            {"sk", ddb::S("unit#" + std::to_string(i))},
            {"n", ddb::N(static_cast<std::int64_t>(i))}};
  }

  std::shared_ptr<DynamoDbClient> client_;
};

TEST(DdbAttributeTest, BuildsAndReadsAttributeValues) {
  json item = {{"s", ddb::S("x")},
               {"n", ddb::N(std::int64_t{-42})},
               {"d", ddb::N(1.5)},
               {"b", ddb::Bool(true)},
               {"z", ddb::Null()},
               {"m", ddb::M({{"k", ddb::S("v")}})},
               {"l", ddb::L({ddb::N(std::int64_t{1})})},
               {"ss", ddb::SS({"a", "b"})}};
  EXPECT_EQ(item["n"], json({{"N", "-42"}}));
  EXPECT_EQ(item["m"], json::parse(R"({"M":{"k":{"S":"v"}}})"));
  EXPECT_EQ(item["l"], json::parse(R"({"L":[{"N":"1"}]})"));
  EXPECT_EQ(item["ss"], json::parse(R"({"SS":["a","b"]})"));
  EXPECT_EQ(item["z"], json::parse(R"({"NULL":true})"));
  EXPECT_EQ(ddb::GetS(item, "s"), "x");
  EXPECT_EQ(ddb::GetInt(item, "n"), -42);
  EXPECT_EQ(ddb::GetDouble(item, "d"), 1.5);
  EXPECT_EQ(ddb::GetBool(item, "b"), true);
  EXPECT_EQ(ddb::GetS(item, "n"), std::nullopt);    // wrong type
  EXPECT_EQ(ddb::GetInt(item, "s"), std::nullopt);  // wrong type
  EXPECT_EQ(ddb::GetS(item, "missing"), std::nullopt);
}

TEST_F(DynamoDbClientTest, CreateTableIsOnDemandWithKeySchemaAndIndexes) {
  transport_->PushResponse(
      200, R"({"TableDescription":{"TableName":"t","TableStatus":"CREATING","KeySchema":[
             {"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}]}})");
  TableSpec spec;
  spec.name = "t";
  spec.partition_key = {"pk", "S"};
  spec.sort_key = KeyAttribute{"sk", "S"};
  spec.global_indexes.push_back({"by-state", {"state", "S"}, KeyAttribute{"sk", "S"}, "ALL"});

  auto description = client_->CreateTable(spec);

  ASSERT_TRUE(description.ok()) << description.error().ToString();
  EXPECT_EQ(description->status, "CREATING");
  EXPECT_EQ(description->key_names, (std::vector<std::string>{"pk", "sk"}));
  HttpRequest sent = transport_->requests()[0];
  EXPECT_EQ(HeaderOf(sent, "x-amz-target"), "DynamoDB_20120810.CreateTable");
  json body = JsonBody(sent);
  EXPECT_EQ(body["BillingMode"], "PAY_PER_REQUEST");
  EXPECT_FALSE(body.contains("ProvisionedThroughput"));
  EXPECT_EQ(body["KeySchema"], json::parse(R"([{"AttributeName":"pk","KeyType":"HASH"},
                                                {"AttributeName":"sk","KeyType":"RANGE"}])"));
  // Each key attribute defined once, including the GSI's.
  EXPECT_EQ(body["AttributeDefinitions"].size(), 3u);
  EXPECT_EQ(body["GlobalSecondaryIndexes"][0]["IndexName"], "by-state");
  EXPECT_EQ(body["GlobalSecondaryIndexes"][0]["Projection"]["ProjectionType"], "ALL");
  EXPECT_EQ(body["GlobalSecondaryIndexes"][0]["KeySchema"][0]["AttributeName"], "state");
}

TEST_F(DynamoDbClientTest, WaitUntilActivePollsDescribeTableOnTheInjectedClock) {
  transport_->PushResponse(200, R"({"Table":{"TableName":"t","TableStatus":"CREATING"}})");
  transport_->PushResponse(
      200,
      R"({"Table":{"TableName":"t","TableStatus":"ACTIVE","GlobalSecondaryIndexes":[{"IndexName":"g","IndexStatus":"CREATING"}]}})");
  transport_->PushResponse(
      200,
      R"({"Table":{"TableName":"t","TableStatus":"ACTIVE","GlobalSecondaryIndexes":[{"IndexName":"g","IndexStatus":"ACTIVE"}]}})");

  Status status = client_->WaitUntilActive("t", std::chrono::seconds(30));

  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(transport_->request_count(), 3u);
  EXPECT_EQ(HeaderOf(transport_->requests()[0], "x-amz-target"), "DynamoDB_20120810.DescribeTable");
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::nanoseconds>{
                                 std::chrono::milliseconds(200), std::chrono::milliseconds(200)}));
}

TEST_F(DynamoDbClientTest, WaitUntilActiveGivesUpAtTheDeadline) {
  transport_->SetFallback([](const HttpRequest&) -> Result<HttpResponse> {
    return Ok(json::parse(R"({"Table":{"TableName":"t","TableStatus":"CREATING"}})"));
  });

  Status status = client_->WaitUntilActive("t", std::chrono::seconds(1));

  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, "Timeout");
  EXPECT_NE(status.error().message.find("CREATING"), std::string::npos);
  EXPECT_EQ(transport_->request_count(), 6u);  // at 0, 200, ..., 1000 ms
}

TEST_F(DynamoDbClientTest, EnsureTableAcceptsAnExistingTable) {
  transport_->PushResponse(
      400,
      R"({"__type":"com.amazonaws.dynamodb.v20120810#ResourceInUseException","message":"Table already exists: t"})");
  transport_->PushResponse(200, R"({"Table":{"TableName":"t","TableStatus":"ACTIVE"}})");
  TableSpec spec;
  spec.name = "t";
  spec.partition_key = {"pk", "S"};

  Status status = client_->EnsureTable(spec, std::chrono::seconds(10));

  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(transport_->request_count(), 2u);
}

TEST_F(DynamoDbClientTest, GetItemSendsConsistentReadAndReturnsNulloptWithoutItem) {
  transport_->PushResponse(200, "{}");
  transport_->PushResponse(200, json{{"Item", Item(1)}}.dump());

  auto missing = client_->GetItem("t", {{"pk", ddb::S("job")}}, /*consistent_read=*/true);
  auto found = client_->GetItem("t", {{"pk", ddb::S("job")}}, /*consistent_read=*/false);

  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, Item(1));
  auto requests = transport_->requests();
  EXPECT_EQ(HeaderOf(requests[0], "x-amz-target"), "DynamoDB_20120810.GetItem");
  EXPECT_EQ(
      JsonBody(requests[0]),
      json({{"TableName", "t"}, {"Key", {{"pk", {{"S", "job"}}}}}, {"ConsistentRead", true}}));
  EXPECT_FALSE(JsonBody(requests[1]).contains("ConsistentRead"));
}

TEST_F(DynamoDbClientTest, UpdateItemSendsExpressionsAndReturnsAttributes) {
  transport_->PushResponse(200, R"({"Attributes":{"attempt":{"N":"2"}}})");
  WriteOptions options;
  options.condition_expression = "#s = :queued";
  options.names = {{"#s", "state"}, {"#a", "attempt"}};
  options.values = {{":queued", ddb::S("QUEUED")}, {":one", ddb::N(std::int64_t{1})}};
  options.return_values = "UPDATED_NEW";

  WriteResult result = client_->UpdateItem("t", {{"pk", ddb::S("u1")}}, "ADD #a :one", options);

  ASSERT_TRUE(result.ok()) << result.status.ToString();
  EXPECT_EQ(result.attributes, json::parse(R"({"attempt":{"N":"2"}})"));
  HttpRequest sent = transport_->requests()[0];
  EXPECT_EQ(HeaderOf(sent, "x-amz-target"), "DynamoDB_20120810.UpdateItem");
  json body = JsonBody(sent);
  EXPECT_EQ(body["TableName"], "t");
  EXPECT_EQ(body["Key"], json::parse(R"({"pk":{"S":"u1"}})"));
  EXPECT_EQ(body["UpdateExpression"], "ADD #a :one");
  EXPECT_EQ(body["ConditionExpression"], "#s = :queued");
  EXPECT_EQ(body["ExpressionAttributeNames"]["#s"], "state");
  EXPECT_EQ(body["ExpressionAttributeValues"][":queued"], json::parse(R"({"S":"QUEUED"})"));
  EXPECT_EQ(body["ReturnValues"], "UPDATED_NEW");
  EXPECT_FALSE(body.contains("ReturnValuesOnConditionCheckFailure"));
}

TEST_F(DynamoDbClientTest, UnconditionalPutOmitsEmptyOptionalMembers) {
  transport_->PushResponse(200, "{}");
  WriteResult result = client_->PutItem("t", Item(1), {});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(JsonBody(transport_->requests()[0]), json({{"TableName", "t"}, {"Item", Item(1)}}));
}

TEST_F(DynamoDbClientTest, ConditionalPutFailureIsClassifiedAndCarriesTheCurrentItem) {
  transport_->PushResponse(
      400,
      R"({"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"})");
  // The error carries no item, so the client learns the key and reads the item.
  transport_->PushResponse(200, R"({"Table":{"TableName":"t","TableStatus":"ACTIVE","KeySchema":[
      {"AttributeName":"sk","KeyType":"RANGE"},{"AttributeName":"pk","KeyType":"HASH"}]}})");
  json current = Item(1);
  current["owner"] = ddb::S("worker-b");
  transport_->PushResponse(200, json{{"Item", current}}.dump());
  WriteOptions options;
  options.condition_expression = "attribute_not_exists(pk)";
  options.return_current_on_condition_failure = true;

  WriteResult result = client_->PutItem("t", Item(1), options);

  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.error().IsConditionFailed());
  EXPECT_FALSE(result.error().IsRetryable());
  ASSERT_TRUE(result.current_item.has_value());
  EXPECT_EQ(*result.current_item, current);
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 3u);  // no retry of the conditional write
  EXPECT_EQ(JsonBody(requests[0])["ReturnValuesOnConditionCheckFailure"], "ALL_OLD");
  EXPECT_EQ(HeaderOf(requests[2], "x-amz-target"), "DynamoDB_20120810.GetItem");
  EXPECT_EQ(JsonBody(requests[2])["Key"], json({{"pk", ddb::S("job")}, {"sk", ddb::S("unit#1")}}));
  EXPECT_EQ(JsonBody(requests[2])["ConsistentRead"], true);
}

TEST_F(DynamoDbClientTest, ConditionalFailureUsesTheItemReturnedWithTheErrorWithoutReading) {
  json current = Item(1);
  current["owner"] = ddb::S("worker-b");
  transport_->PushResponse(
      400, json{{"__type", "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"},
                {"message", "The conditional request failed"},
                {"Item", current}}
               .dump());
  WriteOptions options;
  options.condition_expression = "attribute_not_exists(pk)";
  options.return_current_on_condition_failure = true;

  WriteResult result = client_->PutItem("t", Item(1), options);

  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.error().IsConditionFailed());
  ASSERT_TRUE(result.current_item.has_value());
  EXPECT_EQ(*result.current_item, current);
  EXPECT_EQ(transport_->request_count(), 1u);  // the item came with the error: no GetItem
}

TEST_F(DynamoDbClientTest, ConditionalDeleteFailureWithoutAskingForItemSendsNothingElse) {
  transport_->PushResponse(
      400,
      R"({"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"})");
  WriteOptions options;
  options.condition_expression = "attribute_exists(pk)";

  WriteResult result = client_->DeleteItem("t", {{"pk", ddb::S("x")}}, options);

  EXPECT_TRUE(result.error().IsConditionFailed());
  EXPECT_FALSE(result.current_item.has_value());
  EXPECT_EQ(transport_->request_count(), 1u);
  EXPECT_EQ(HeaderOf(transport_->requests()[0], "x-amz-target"), "DynamoDB_20120810.DeleteItem");
}

TEST_F(DynamoDbClientTest, BatchWriteItemSplitsIntoBatchesOfTwentyFive) {
  std::mutex mu;
  std::multiset<std::size_t> sizes;
  std::set<std::string> keys;
  transport_->SetFallback([&](const HttpRequest& request) -> Result<HttpResponse> {
    json body = JsonBody(request);
    std::lock_guard<std::mutex> lock(mu);
    sizes.insert(body["RequestItems"]["t"].size());
    for (const json& r : body["RequestItems"]["t"]) {
      const json& item =
          r.contains("PutRequest") ? r["PutRequest"]["Item"] : r["DeleteRequest"]["Key"];
      keys.insert(item["sk"]["S"].get<std::string>());
    }
    return Ok(json{{"UnprocessedItems", json::object()}});
  });
  std::vector<WriteRequest> requests;
  for (int i = 0; i < 59; ++i) requests.push_back(WriteRequest::Put(Item(i)));
  requests.push_back(WriteRequest::Delete({{"pk", ddb::S("job")}, {"sk", ddb::S("gone")}}));

  BatchWriteResult result = client_->BatchWriteItem("t", requests);

  EXPECT_TRUE(result.ok()) << result.status.ToString();
  EXPECT_EQ(sizes, (std::multiset<std::size_t>{10, 25, 25}));
  EXPECT_EQ(keys.size(), 60u);
  EXPECT_TRUE(keys.count("gone"));
  EXPECT_EQ(HeaderOf(transport_->requests()[0], "x-amz-target"),
            "DynamoDB_20120810.BatchWriteItem");
}

TEST_F(DynamoDbClientTest, BatchWriteItemResendsOnlyUnprocessedItemsWithBackoff) {
  std::vector<WriteRequest> requests;
  for (int i = 0; i < 5; ++i) requests.push_back(WriteRequest::Put(Item(i)));
  json unprocessed =
      json::array({{{"PutRequest", {{"Item", Item(1)}}}}, {{"PutRequest", {{"Item", Item(3)}}}}});
  transport_->PushResponse(200, json{{"UnprocessedItems", {{"t", unprocessed}}}}.dump());
  transport_->PushResponse(200, R"({"UnprocessedItems":{}})");

  BatchWriteResult result = client_->BatchWriteItem("t", requests);

  EXPECT_TRUE(result.ok());
  auto sent = transport_->requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(JsonBody(sent[0])["RequestItems"]["t"].size(), 5u);
  EXPECT_EQ(JsonBody(sent[1])["RequestItems"]["t"], unprocessed);
  EXPECT_EQ(clock_.sleeps(),
            (std::vector<std::chrono::nanoseconds>{std::chrono::milliseconds(500)}));
}

TEST_F(DynamoDbClientTest, BatchWriteItemReportsWhatStaysUnprocessedAfterTheBudget) {
  DynamoDbClientOptions options;
  options.max_unprocessed_retries = 2;
  MakeClient(options);
  transport_->SetFallback([](const HttpRequest& request) -> Result<HttpResponse> {
    json body = JsonBody(request);
    json first = json::array({body["RequestItems"]["t"][0]});
    return Ok(json{{"UnprocessedItems", {{"t", first}}}});
  });
  std::vector<WriteRequest> requests = {WriteRequest::Put(Item(7)), WriteRequest::Put(Item(8))};

  BatchWriteResult result = client_->BatchWriteItem("t", requests);

  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(result.status.ok());  // no request failed; the budget ran out
  ASSERT_EQ(result.unprocessed.size(), 1u);
  EXPECT_EQ(result.unprocessed[0].kind, WriteRequest::Kind::kPut);
  EXPECT_EQ(result.unprocessed[0].item_or_key, Item(7));
  EXPECT_EQ(transport_->request_count(), 3u);
  EXPECT_EQ(clock_.sleeps().size(), 2u);
}

TEST_F(DynamoDbClientTest, BatchWriteItemReportsPendingItemsWhenARetryFails) {
  std::vector<WriteRequest> requests = {WriteRequest::Put(Item(1)), WriteRequest::Put(Item(2))};
  transport_->PushResponse(
      200, json{{"UnprocessedItems", {{"t", {{{"PutRequest", {{"Item", Item(2)}}}}}}}}}.dump());
  transport_->PushResponse(
      400, R"({"__type":"com.amazon.coral.validate#ValidationException","message":"bad request"})");

  BatchWriteResult result = client_->BatchWriteItem("t", requests);

  EXPECT_FALSE(result.ok());
  ASSERT_FALSE(result.status.ok());
  EXPECT_EQ(result.status.error().code, "ValidationException");
  ASSERT_EQ(result.unprocessed.size(), 1u);
  EXPECT_EQ(result.unprocessed[0].item_or_key, Item(2));
}

TEST_F(DynamoDbClientTest, BatchWriteItemBodyMatchesTheWireShape) {
  std::vector<WriteRequest> requests = {WriteRequest::Put(Item(1)),
                                        WriteRequest::Delete({{"pk", ddb::S("a\"b")}})};
  auto body = EncodeBatchWriteItem("t\u00e9", requests);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(json::parse(*body),
            json({{"RequestItems",
                   {{"t\u00e9",
                     {{{"PutRequest", {{"Item", Item(1)}}}},
                      {{"DeleteRequest", {{"Key", {{"pk", ddb::S("a\"b")}}}}}}}}}}}));
  EXPECT_FALSE(EncodeBatchWriteItem(
                   "t", std::vector<WriteRequest>{WriteRequest::Put({{"pk", ddb::S("\xff")}})})
                   .ok());
}

TEST_F(DynamoDbClientTest, QueryFollowsLastEvaluatedKeyToTheEnd) {
  json key1 = {{"pk", ddb::S("job")}, {"sk", ddb::S("unit#1")}};
  json key2 = {{"pk", ddb::S("job")}, {"sk", ddb::S("unit#2")}};
  transport_->PushResponse(200, json{{"Items", {Item(0), Item(1)}},
                                     {"Count", 2},
                                     {"ScannedCount", 2},
                                     {"LastEvaluatedKey", key1}}
                                    .dump());
  // An empty page can still have a LastEvaluatedKey.
  transport_->PushResponse(
      200, json{{"Items", json::array()}, {"Count", 0}, {"LastEvaluatedKey", key2}}.dump());
  transport_->PushResponse(200, json{{"Items", {Item(3)}}, {"Count", 1}}.dump());
  QueryRequest request;
  request.table = "t";
  request.key_condition_expression = "pk = :p";
  request.values = {{":p", ddb::S("job")}};
  request.limit = 2;

  auto items = client_->QueryAll(request);

  ASSERT_TRUE(items.ok()) << items.error().ToString();
  EXPECT_EQ(*items, (std::vector<json>{Item(0), Item(1), Item(3)}));
  auto sent = transport_->requests();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(HeaderOf(sent[0], "x-amz-target"), "DynamoDB_20120810.Query");
  EXPECT_FALSE(JsonBody(sent[0]).contains("ExclusiveStartKey"));
  EXPECT_EQ(JsonBody(sent[0])["KeyConditionExpression"], "pk = :p");
  EXPECT_EQ(JsonBody(sent[0])["Limit"], 2);
  EXPECT_EQ(JsonBody(sent[1])["ExclusiveStartKey"], key1);
  EXPECT_EQ(JsonBody(sent[2])["ExclusiveStartKey"], key2);
}

TEST_F(DynamoDbClientTest, QueryStopsWhenTheCallbackSaysSo) {
  transport_->PushResponse(
      200, json{{"Items", {Item(0)}}, {"LastEvaluatedKey", {{"pk", ddb::S("a")}}}}.dump());
  QueryRequest request;
  request.table = "t";
  request.key_condition_expression = "pk = :p";
  int pages = 0;
  Status status = client_->Query(request, [&](Page&) {
    ++pages;
    return false;
  });
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(pages, 1);
  EXPECT_EQ(transport_->request_count(), 1u);
}

TEST_F(DynamoDbClientTest, ParallelScanPagesEverySegment) {
  // Segment s has two pages: items s*10 and s*10+1.
  transport_->SetFallback([](const HttpRequest& request) -> Result<HttpResponse> {
    json body = JsonBody(request);
    int segment = body["Segment"];
    if (body["TotalSegments"] != 4) return Ok(json::object());
    if (!body.contains("ExclusiveStartKey")) {
      return Ok(json{{"Items", {Item(segment * 10)}},
                     {"LastEvaluatedKey", {{"pk", ddb::S("s" + std::to_string(segment))}}}});
    }
    EXPECT_EQ(body["ExclusiveStartKey"]["pk"]["S"], "s" + std::to_string(segment));
    return Ok(json{{"Items", {Item(segment * 10 + 1)}}});
  });
  ScanRequest request;
  request.table = "t";

  auto items = client_->ParallelScanAll(request, 4);

  ASSERT_TRUE(items.ok()) << items.error().ToString();
  std::set<std::int64_t> seen;
  for (const json& item : *items) seen.insert(*ddb::GetInt(item, "n"));
  EXPECT_EQ(seen, (std::set<std::int64_t>{0, 1, 10, 11, 20, 21, 30, 31}));
  EXPECT_EQ(transport_->request_count(), 8u);
  EXPECT_EQ(HeaderOf(transport_->requests()[0], "x-amz-target"), "DynamoDB_20120810.Scan");
}

TEST_F(DynamoDbClientTest, ParallelScanReturnsTheFirstError) {
  transport_->SetFallback([](const HttpRequest& request) -> Result<HttpResponse> {
    json body = JsonBody(request);
    HttpResponse response;
    if (body["Segment"] == 1) {
      response.status = 400;
      response.body =
          R"({"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"})";
      return response;
    }
    return Ok(json{{"Items", json::array()}});
  });
  ScanRequest request;
  request.table = "t";

  auto items = client_->ParallelScanAll(request, 3);

  ASSERT_FALSE(items.ok());
  EXPECT_TRUE(items.error().IsNotFound());
}

}  // namespace
}  // namespace spotgrid
