#include "spotgrid/services/dynamodb_client.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <utility>

#include "services/json_writer.h"
#include "spotgrid/aws/aws_multi.h"
#include "spotgrid/aws/json_protocol.h"
#include "spotgrid/aws/service.h"
#include "spotgrid/core/parallel_for.h"

namespace spotgrid {
namespace {

using nlohmann::json;

constexpr std::string_view kTargetPrefix = "DynamoDB_20120810";
constexpr std::size_t kMaxBatchWrite = 25;

// {"RequestItems":{"<table>":<requests>}} where append(out) writes the request list.
template <typename AppendRequests>
bool AppendBatchWrite(std::string& out, const std::string& table, AppendRequests&& append) {
  out += "{\"RequestItems\":{";
  if (!json_writer::AppendString(out, table)) return false;
  out.push_back(':');
  if (!append(out)) return false;
  out += "}}";
  return true;
}

void AddKeyAttribute(json& definitions, const KeyAttribute& key) {
  for (const json& d : definitions) {
    if (d["AttributeName"] == key.name) return;
  }
  definitions.push_back({{"AttributeName", key.name}, {"AttributeType", key.type}});
}

json KeySchema(const KeyAttribute& partition, const std::optional<KeyAttribute>& sort) {
  json schema = json::array({{{"AttributeName", partition.name}, {"KeyType", "HASH"}}});
  if (sort) schema.push_back({{"AttributeName", sort->name}, {"KeyType", "RANGE"}});
  return schema;
}

Result<TableDescription> ParseTable(std::string_view operation, const json& table) {
  if (!table.is_object())
    return MalformedResponseError(kDynamoDbService, operation, "no table description");
  TableDescription out;
  out.name = JsonString(table, "TableName");
  out.status = JsonString(table, "TableStatus");
  out.arn = JsonString(table, "TableArn");
  if (auto it = table.find("ItemCount"); it != table.end() && it->is_number()) {
    out.item_count = it->get<std::int64_t>();
  }
  if (auto it = table.find("KeySchema"); it != table.end() && it->is_array()) {
    // HASH first, then RANGE, whatever order the service lists them in.
    for (const char* type : {"HASH", "RANGE"}) {
      for (const json& k : *it) {
        if (JsonString(k, "KeyType") == type)
          out.key_names.push_back(JsonString(k, "AttributeName"));
      }
    }
  }
  if (auto it = table.find("GlobalSecondaryIndexes"); it != table.end() && it->is_array()) {
    for (const json& index : *it) {
      out.index_status[JsonString(index, "IndexName")] = JsonString(index, "IndexStatus");
    }
  }
  return out;
}

void AddExpressionMembers(json& body, const json& names, const json& values) {
  if (names.is_object() && !names.empty()) body["ExpressionAttributeNames"] = names;
  if (values.is_object() && !values.empty()) body["ExpressionAttributeValues"] = values;
}

json RequestJson(const WriteRequest& request) {
  if (request.kind == WriteRequest::Kind::kPut) {
    return {{"PutRequest", {{"Item", request.item_or_key}}}};
  }
  return {{"DeleteRequest", {{"Key", request.item_or_key}}}};
}

WriteRequest FromRequestJson(json&& entry) {
  if (auto it = entry.find("DeleteRequest"); it != entry.end()) {
    return WriteRequest::Delete(std::move((*it)["Key"]));
  }
  return WriteRequest::Put(std::move(entry["PutRequest"]["Item"]));
}

Error TimeoutError(const std::string& table, std::chrono::milliseconds timeout,
                   const std::string& status) {
  Error error;
  error.category = ErrorCategory::kTransient;
  error.service = "DynamoDB";
  error.operation = "DescribeTable";
  error.code = "Timeout";
  error.message = "table " + table + " not ACTIVE after " + std::to_string(timeout.count()) +
                  " ms (last status: " + (status.empty() ? "unknown" : status) + ")";
  return error;
}

// The members Query and Scan requests share (object members are unordered, so they may be
// added in any order).
template <typename Request>
void AddReadMembers(json& body, const Request& request) {
  if (!request.index_name.empty()) body["IndexName"] = request.index_name;
  if (!request.filter_expression.empty()) body["FilterExpression"] = request.filter_expression;
  if (!request.projection_expression.empty()) {
    body["ProjectionExpression"] = request.projection_expression;
  }
  AddExpressionMembers(body, request.names, request.values);
  if (request.limit) body["Limit"] = *request.limit;
  if (request.consistent_read) body["ConsistentRead"] = true;
  if (request.exclusive_start_key.is_object()) {
    body["ExclusiveStartKey"] = request.exclusive_start_key;
  }
}

// Runs `paginate(on_page)` with an on_page that collects every item of every page (pages may
// arrive from several threads at once).
template <typename Paginate>
Result<std::vector<json>> AllItems(Paginate&& paginate) {
  std::mutex mu;
  std::vector<json> items;
  Status status = paginate([&](Page& page) {
    std::lock_guard<std::mutex> lock(mu);
    for (json& item : page.items) items.push_back(std::move(item));
    return true;
  });
  if (!status.ok()) return status.error();
  return items;
}

}  // namespace

namespace ddb {

json S(std::string_view value) { return {{"S", std::string(value)}}; }
json N(std::int64_t value) { return {{"N", std::to_string(value)}}; }
json N(double value) {
  // Shortest text that round-trips, as nlohmann prints doubles.
  return {{"N", json(value).dump()}};
}
json Bool(bool value) { return {{"BOOL", value}}; }
json Null() { return {{"NULL", true}}; }
json M(json attribute_map) { return {{"M", std::move(attribute_map)}}; }
json L(json attribute_list) { return {{"L", std::move(attribute_list)}}; }
json SS(const std::vector<std::string>& values) { return {{"SS", values}}; }

const json* Get(const json& item, std::string_view name) {
  if (!item.is_object()) return nullptr;
  auto it = item.find(name);
  return it == item.end() ? nullptr : &*it;
}

namespace {

// The value inside attribute `name`'s {"<type>": value} wrapper, or nullptr.
const json* Typed(const json& item, std::string_view name, std::string_view type) {
  const json* value = Get(item, name);
  if (value == nullptr || !value->is_object()) return nullptr;
  auto it = value->find(type);
  return it == value->end() ? nullptr : &*it;
}

// The text of a number attribute ({"N": "..."}), or nullptr.
const std::string* NumberText(const json& item, std::string_view name) {
  const json* value = Typed(item, name, "N");
  if (value == nullptr || !value->is_string()) return nullptr;
  return &value->get_ref<const std::string&>();
}

}  // namespace

std::optional<std::string> GetS(const json& item, std::string_view name) {
  const json* value = Typed(item, name, "S");
  if (value == nullptr || !value->is_string()) return std::nullopt;
  return value->get<std::string>();
}

std::optional<std::int64_t> GetInt(const json& item, std::string_view name) {
  const std::string* s = NumberText(item, name);
  if (s == nullptr) return std::nullopt;
  std::int64_t out = 0;
  auto [ptr, ec] = std::from_chars(s->data(), s->data() + s->size(), out);
  if (ec != std::errc() || ptr != s->data() + s->size()) return std::nullopt;
  return out;
}

std::optional<double> GetDouble(const json& item, std::string_view name) {
  const std::string* s = NumberText(item, name);
  if (s == nullptr) return std::nullopt;
  char* end = nullptr;
  double out = std::strtod(s->c_str(), &end);
  if (s->empty() || end != s->c_str() + s->size()) return std::nullopt;
  return out;
}

std::optional<bool> GetBool(const json& item, std::string_view name) {
  const json* value = Typed(item, name, "BOOL");
  if (value == nullptr || !value->is_boolean()) return std::nullopt;
  return value->get<bool>();
}

}  // namespace ddb

bool TableDescription::IsActive() const {
  if (status != "ACTIVE") return false;
  for (const auto& [name, index_status] : index_status) {
    if (index_status != "ACTIVE") return false;
  }
  return true;
}

json EncodeCreateTable(const TableSpec& spec) {
  json definitions = json::array();
  AddKeyAttribute(definitions, spec.partition_key);
  if (spec.sort_key) AddKeyAttribute(definitions, *spec.sort_key);
  json body = {{"TableName", spec.name},
               {"BillingMode", "PAY_PER_REQUEST"},
               {"KeySchema", KeySchema(spec.partition_key, spec.sort_key)}};
  if (!spec.global_indexes.empty()) {
    json indexes = json::array();
    for (const GlobalSecondaryIndex& index : spec.global_indexes) {
      AddKeyAttribute(definitions, index.partition_key);
      if (index.sort_key) AddKeyAttribute(definitions, *index.sort_key);
      indexes.push_back({{"IndexName", index.name},
                         {"KeySchema", KeySchema(index.partition_key, index.sort_key)},
                         {"Projection", {{"ProjectionType", index.projection}}}});
    }
    body["GlobalSecondaryIndexes"] = std::move(indexes);
  }
  body["AttributeDefinitions"] = std::move(definitions);
  return body;
}

Result<std::string> EncodeBatchWriteItem(const std::string& table,
                                         std::span<const WriteRequest> requests) {
  std::string out;
  out.reserve(64 + requests.size() * 512);
  bool ok = AppendBatchWrite(out, table, [&](std::string& o) {
    o.push_back('[');
    for (std::size_t k = 0; k < requests.size(); ++k) {
      if (k > 0) o.push_back(',');
      const bool put = requests[k].kind == WriteRequest::Kind::kPut;
      o += put ? "{\"PutRequest\":{\"Item\":" : "{\"DeleteRequest\":{\"Key\":";
      if (!json_writer::AppendValue(o, requests[k].item_or_key)) return false;
      o += "}}";
    }
    o.push_back(']');
    return true;
  });
  if (!ok) {
    return InvalidRequestError(kDynamoDbService, "BatchWriteItem",
                               "request holds a string that is not valid UTF-8");
  }
  return out;
}

json EncodeQuery(const QueryRequest& request) {
  json body = {{"TableName", request.table},
               {"KeyConditionExpression", request.key_condition_expression}};
  AddReadMembers(body, request);
  if (!request.scan_forward) body["ScanIndexForward"] = false;
  return body;
}

json EncodeScan(const ScanRequest& request) {
  json body = {{"TableName", request.table}};
  AddReadMembers(body, request);
  if (request.segment && request.total_segments) {
    body["Segment"] = *request.segment;
    body["TotalSegments"] = *request.total_segments;
  }
  return body;
}

Result<std::shared_ptr<DynamoDbClient>> DynamoDbClient::Create(std::shared_ptr<AwsContext> context,
                                                               DynamoDbClientOptions options) {
  auto client = AwsClient::Create(std::move(context), kDynamoDbService);
  if (!client.ok()) return client.error();
  return std::make_shared<DynamoDbClient>(std::move(client.value()), options);
}

DynamoDbClient::DynamoDbClient(std::shared_ptr<AwsClient> client, DynamoDbClientOptions options)
    : client_(std::move(client)), options_(options) {}

Result<TableDescription> DynamoDbClient::CreateTable(const TableSpec& spec) {
  auto response = CallJson(*client_, kTargetPrefix, "CreateTable", EncodeCreateTable(spec));
  if (!response.ok()) return response.error();
  auto it = response->find("TableDescription");
  if (it == response->end())
    return MalformedResponseError(kDynamoDbService, "CreateTable", "no TableDescription");
  return ParseTable("CreateTable", *it);
}

Result<TableDescription> DynamoDbClient::DescribeTable(const std::string& table) {
  auto response = CallJson(*client_, kTargetPrefix, "DescribeTable", json{{"TableName", table}});
  if (!response.ok()) return response.error();
  auto it = response->find("Table");
  if (it == response->end())
    return MalformedResponseError(kDynamoDbService, "DescribeTable", "no Table");
  return ParseTable("DescribeTable", *it);
}

Status DynamoDbClient::DeleteTable(const std::string& table) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    key_names_.erase(table);
  }
  return CallJson(*client_, kTargetPrefix, "DeleteTable", json{{"TableName", table}}).status();
}

Status DynamoDbClient::WaitUntilActive(const std::string& table,
                                       std::chrono::milliseconds timeout) {
  Clock& clock = client_->context().clock();
  const Clock::MonoTime deadline = clock.Monotonic() + timeout;
  std::string last_status;
  while (true) {
    auto description = DescribeTable(table);
    if (description.ok()) {
      if (description->IsActive()) return Status::Ok();
      last_status = description->status;
    } else if (!description.error().IsNotFound()) {
      // A table just created may briefly be unknown to DescribeTable; anything else is real.
      return description.error();
    }
    if (clock.Monotonic() >= deadline) return TimeoutError(table, timeout, last_status);
    clock.SleepFor(std::min<std::chrono::nanoseconds>(options_.table_poll_interval,
                                                      deadline - clock.Monotonic()));
  }
}

Status DynamoDbClient::EnsureTable(const TableSpec& spec, std::chrono::milliseconds timeout) {
  auto created = CreateTable(spec);
  if (!created.ok() && created.error().code != "ResourceInUseException") return created.error();
  return WaitUntilActive(spec.name, timeout);
}

Result<std::optional<json>> DynamoDbClient::GetItem(const std::string& table, const json& key,
                                                    bool consistent_read) {
  json body = {{"TableName", table}, {"Key", key}};
  if (consistent_read) body["ConsistentRead"] = true;
  auto response = CallJson(*client_, kTargetPrefix, "GetItem", body);
  if (!response.ok()) return response.error();
  auto it = response->find("Item");
  if (it == response->end() || !it->is_object()) return std::optional<json>();
  return std::optional<json>(std::move(*it));
}

Result<std::vector<std::string>> DynamoDbClient::KeyNames(const std::string& table) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = key_names_.find(table); it != key_names_.end()) return it->second;
  }
  auto description = DescribeTable(table);
  if (!description.ok()) return description.error();
  if (description->key_names.empty())
    return MalformedResponseError(kDynamoDbService, "DescribeTable", "no KeySchema");
  std::lock_guard<std::mutex> lock(mu_);
  key_names_[table] = description->key_names;
  return description->key_names;
}

WriteResult DynamoDbClient::Write(std::string_view operation, const std::string& table, json body,
                                  const WriteOptions& options, const json* key) {
  if (!options.condition_expression.empty()) {
    body["ConditionExpression"] = options.condition_expression;
  }
  AddExpressionMembers(body, options.names, options.values);
  if (!options.return_values.empty()) body["ReturnValues"] = options.return_values;
  if (options.return_current_on_condition_failure) {
    body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD";
  }
  WriteResult result;
  auto response = CallJson(*client_, kTargetPrefix, operation, body);
  if (response.ok()) {
    if (auto it = response->find("Attributes"); it != response->end() && it->is_object()) {
      result.attributes = std::move(*it);
    }
    return result;
  }
  result.status = response.error();
  if (!response.error().IsConditionFailed() || !options.return_current_on_condition_failure) {
    return result;
  }
  // DynamoDB returns the item with the error; where an implementation predates
  // ReturnValuesOnConditionCheckFailure the error carries none, so read the item as it now is.
  if (!result.status.error().response_body.empty()) {
    json doc = json::parse(result.status.error().response_body, nullptr, false);
    if (doc.is_object()) {
      if (auto it = doc.find("Item"); it != doc.end() && it->is_object()) {
        result.current_item = std::move(*it);
        return result;
      }
    }
  }
  json derived_key;
  if (key == nullptr) {
    auto names = KeyNames(table);
    if (!names.ok()) return result;
    derived_key = json::object();
    const json& item = body["Item"];
    for (const std::string& name : *names) {
      if (const json* value = ddb::Get(item, name)) derived_key[name] = *value;
    }
    key = &derived_key;
  }
  auto current = GetItem(table, *key, /*consistent_read=*/true);
  if (current.ok()) result.current_item = std::move(current.value());
  return result;
}

WriteResult DynamoDbClient::PutItem(const std::string& table, const json& item,
                                    const WriteOptions& options) {
  return Write("PutItem", table, json{{"TableName", table}, {"Item", item}}, options, nullptr);
}

WriteResult DynamoDbClient::UpdateItem(const std::string& table, const json& key,
                                       const std::string& update_expression,
                                       const WriteOptions& options) {
  return Write("UpdateItem", table,
               json{{"TableName", table}, {"Key", key}, {"UpdateExpression", update_expression}},
               options, &key);
}

WriteResult DynamoDbClient::DeleteItem(const std::string& table, const json& key,
                                       const WriteOptions& options) {
  return Write("DeleteItem", table, json{{"TableName", table}, {"Key", key}}, options, &key);
}

BatchWriteResult DynamoDbClient::BatchWriteItem(const std::string& table,
                                                std::span<const WriteRequest> requests) {
  const std::size_t batches = (requests.size() + kMaxBatchWrite - 1) / kMaxBatchWrite;
  std::mutex mu;
  BatchWriteResult result;
  ParallelFor(batches, options_.batch_concurrency, [&](std::size_t b) {
    std::span<const WriteRequest> chunk = requests.subspan(
        b * kMaxBatchWrite, std::min(kMaxBatchWrite, requests.size() - b * kMaxBatchWrite));
    auto chunk_json = [&] {
      json list = json::array();
      for (const WriteRequest& request : chunk) list.push_back(RequestJson(request));
      return list;
    };
    std::optional<Error> failure;
    json left;  // requests given up on, in wire form
    auto encoded = EncodeBatchWriteItem(table, chunk);
    if (!encoded.ok()) {
      failure = encoded.error();
      left = chunk_json();
    }
    std::string body = encoded.ok() ? std::move(encoded.value()) : std::string();
    json pending;  // what `body` holds after the first round (null: the whole chunk)
    for (int round = 0; encoded.ok(); ++round) {
      auto response = CallJsonEncoded(*client_, kTargetPrefix, "BatchWriteItem", body);
      if (!response.ok()) {
        failure = response.error();
        left = pending.is_null() ? chunk_json() : std::move(pending);
        break;
      }
      auto unprocessed = response->find("UnprocessedItems");
      if (unprocessed == response->end() || !unprocessed->is_object()) break;
      auto mine = unprocessed->find(table);
      if (mine == unprocessed->end() || !mine->is_array() || mine->empty()) break;
      if (round >= options_.max_unprocessed_retries) {
        left = std::move(*mine);
        break;
      }
      client_->context().clock().SleepFor(client_->context().retry().Backoff(round + 1));
      pending = std::move(*mine);
      body.clear();
      AppendBatchWrite(body, table,
                       [&](std::string& o) { return json_writer::AppendValue(o, pending); });
    }
    if (!left.is_array() || left.empty()) return;
    std::lock_guard<std::mutex> lock(mu);
    for (json& entry : left) result.unprocessed.push_back(FromRequestJson(std::move(entry)));
    if (failure && result.status.ok()) result.status = *failure;
  });
  return result;
}

BatchWriteResult DynamoDb::BatchPutEncoded(const std::string& table,
                                           std::span<const std::string> items) {
  std::vector<WriteRequest> requests;
  requests.reserve(items.size());
  for (const std::string& item : items) {
    requests.push_back(WriteRequest::Put(json::parse(item, nullptr, false)));
  }
  return BatchWriteItem(table, requests);
}

namespace {

// The rounds of one BatchWriteItem of encoded puts (at most 25): the first body holds the
// items as given; a round whose answer lists UnprocessedItems sends just those again after
// Backoff(round), up to `max_retries` times. What is left, or what a failed round held,
// ends in `result`. Shared by the blocking and the AwsMulti forms.
class PutRounds {
 public:
  PutRounds(const std::string& table, std::span<const std::string> items, int max_retries)
      : table_(table), items_(items), max_retries_(max_retries) {
    std::size_t size = 64 + table.size();
    for (const std::string& item : items) size += item.size() + 32;
    body_.reserve(size);
    AppendBatchWrite(body_, table, [&](std::string& o) {
      o.push_back('[');
      for (std::size_t k = 0; k < items.size(); ++k) {
        if (k > 0) o.push_back(',');
        o += "{\"PutRequest\":{\"Item\":";
        o += items[k];
        o += "}}";
      }
      o.push_back(']');
      return true;
    });
  }

  // The body of the round to send now.
  std::string TakeBody() { return std::move(body_); }

  // Reads a round's answer; true when another round is due after Backoff(round()).
  bool Take(Result<json> response) {
    if (!response.ok()) {
      if (pending_.is_null()) {
        for (const std::string& item : items_) {
          result_.unprocessed.push_back(WriteRequest::Put(json::parse(item, nullptr, false)));
        }
      } else {
        for (json& entry : pending_) result_.unprocessed.push_back(FromRequestJson(std::move(entry)));
      }
      result_.status = response.error();
      return false;
    }
    auto unprocessed = response->find("UnprocessedItems");
    if (unprocessed == response->end() || !unprocessed->is_object()) return false;
    auto mine = unprocessed->find(table_);
    if (mine == unprocessed->end() || !mine->is_array() || mine->empty()) return false;
    if (round_ >= max_retries_) {
      for (json& entry : *mine) result_.unprocessed.push_back(FromRequestJson(std::move(entry)));
      return false;
    }
    ++round_;
    pending_ = std::move(*mine);
    body_.clear();
    AppendBatchWrite(body_, table_,
                     [&](std::string& o) { return json_writer::AppendValue(o, pending_); });
    return true;
  }

  int round() const { return round_; }
  BatchWriteResult& result() { return result_; }

 private:
  const std::string& table_;
  std::span<const std::string> items_;
  int max_retries_;
  std::string body_;
  json pending_;  // what `body_` holds after the first round (null: the items as given)
  int round_ = 0;
  BatchWriteResult result_;
};

// One BatchWriteItem of encoded puts on an AwsMulti, round after round (PutRounds).
struct PutCall : std::enable_shared_from_this<PutCall> {
  PutCall(AwsMulti& multi, AwsClient& client, std::string table, std::vector<std::string> items,
          DynamoDb::PutDone done, int max_retries)
      : multi(multi),
        client(client),
        table(std::move(table)),
        items(std::move(items)),
        rounds(this->table, this->items, max_retries),
        done(std::move(done)) {}

  void Round() {
    multi.Start(client, JsonRequest(kTargetPrefix, "BatchWriteItem", rounds.TakeBody()),
                [self = shared_from_this()](Result<HttpResponse> response) {
                  self->Answered(response);
                });
  }

  void Answered(const Result<HttpResponse>& response) {
    if (!rounds.Take(JsonResult(client.service(), "BatchWriteItem", response))) {
      done(std::move(rounds.result()));
      return;
    }
    multi.After(client.context().retry().Backoff(rounds.round()),
                [self = shared_from_this()] { self->Round(); });
  }

  AwsMulti& multi;
  AwsClient& client;
  std::string table;
  std::vector<std::string> items;
  PutRounds rounds;
  DynamoDb::PutDone done;
};

}  // namespace

BatchWriteResult DynamoDbClient::BatchPutEncoded(const std::string& table,
                                                 std::span<const std::string> items) {
  const std::size_t batches = (items.size() + kMaxBatchWrite - 1) / kMaxBatchWrite;
  std::mutex mu;
  BatchWriteResult result;
  ParallelFor(batches, options_.batch_concurrency, [&](std::size_t b) {
    std::span<const std::string> chunk = items.subspan(
        b * kMaxBatchWrite, std::min(kMaxBatchWrite, items.size() - b * kMaxBatchWrite));
    PutRounds rounds(table, chunk, options_.max_unprocessed_retries);
    while (rounds.Take(CallJsonEncoded(*client_, kTargetPrefix, "BatchWriteItem",
                                       rounds.TakeBody()))) {
      client_->context().clock().SleepFor(client_->context().retry().Backoff(rounds.round()));
    }
    BatchWriteResult& mine = rounds.result();
    if (mine.unprocessed.empty()) return;
    std::lock_guard<std::mutex> lock(mu);
    for (WriteRequest& request : mine.unprocessed) result.unprocessed.push_back(std::move(request));
    if (!mine.status.ok() && result.status.ok()) result.status = mine.status;
  });
  return result;
}

void DynamoDb::StartBatchPutEncoded(AwsMulti& multi, const std::string& table,
                                    std::vector<std::string> items, PutDone done) {
  multi.Offload([this, table, items = std::move(items)] { return BatchPutEncoded(table, items); },
                std::move(done));
}

void DynamoDbClient::StartBatchPutEncoded(AwsMulti& multi, const std::string& table,
                                          std::vector<std::string> items, PutDone done) {
  if (items.size() > kMaxBatchWrite) {
    DynamoDb::StartBatchPutEncoded(multi, table, std::move(items), std::move(done));
    return;
  }
  auto call = std::make_shared<PutCall>(multi, *client_, table, std::move(items), std::move(done),
                                        options_.max_unprocessed_retries);
  call->Round();
}

Status DynamoDbClient::Paginate(std::string_view operation, json body, int segment,
                                const PageCallback& on_page, const std::atomic<bool>* stop) {
  while (true) {
    if (stop != nullptr && stop->load()) return Status::Ok();
    auto response = CallJson(*client_, kTargetPrefix, operation, body);
    if (!response.ok()) return response.error();
    Page page;
    page.segment = segment;
    if (auto it = response->find("Items"); it != response->end() && it->is_array()) {
      page.items = std::move(it->get_ref<json::array_t&>());
    }
    if (auto it = response->find("ScannedCount"); it != response->end() && it->is_number()) {
      page.scanned_count = it->get<std::int64_t>();
    }
    auto last = response->find("LastEvaluatedKey");
    bool more = last != response->end() && last->is_object() && !last->empty();
    if (more) page.last_evaluated_key = *last;
    if (!on_page(page) || !more) return Status::Ok();
    body["ExclusiveStartKey"] = std::move(*last);
  }
}

Status DynamoDbClient::Query(const QueryRequest& request, const PageCallback& on_page) {
  return Paginate("Query", EncodeQuery(request), 0, on_page, nullptr);
}

Result<std::vector<json>> DynamoDbClient::QueryAll(const QueryRequest& request) {
  return AllItems([&](const PageCallback& on_page) { return Query(request, on_page); });
}

Status DynamoDbClient::Scan(const ScanRequest& request, const PageCallback& on_page) {
  return Paginate("Scan", EncodeScan(request), request.segment.value_or(0), on_page, nullptr);
}

Result<std::vector<json>> DynamoDbClient::ScanAll(const ScanRequest& request) {
  return AllItems([&](const PageCallback& on_page) { return Scan(request, on_page); });
}

Status DynamoDbClient::ParallelScan(const ScanRequest& request, int segments,
                                    const PageCallback& on_page) {
  if (segments < 1) return Error::InvalidInput("ParallelScan needs at least one segment");
  std::atomic<bool> stop{false};
  return ParallelForStatus(static_cast<std::size_t>(segments), segments, OnError::kRunAll,
                           [&](std::size_t i) -> Status {
                             ScanRequest segment_request = request;
                             segment_request.segment = static_cast<int>(i);
                             segment_request.total_segments = segments;
                             Status status = Paginate(
                                 "Scan", EncodeScan(segment_request), static_cast<int>(i),
                                 [&](Page& page) {
                                   if (on_page(page)) return true;
                                   stop.store(true);
                                   return false;
                                 },
                                 &stop);
                             if (!status.ok())
                               stop.store(true);  // the other segments end their pagination too
                             return status;
                           });
}

Result<std::vector<json>> DynamoDbClient::ParallelScanAll(const ScanRequest& request,
                                                          int segments) {
  return AllItems(
      [&](const PageCallback& on_page) { return ParallelScan(request, segments, on_page); });
}

}  // namespace spotgrid
