// Amazon DynamoDB over the AWS JSON 1.0 protocol.
//
// `DynamoDb` is what product logic (the ledger) depends on, so tests can substitute a fake;
// `DynamoDbClient` is the real client over the client core (signing, HTTP-level retries,
// error classification). Items and keys are `nlohmann::json` objects in the AttributeValue
// wire form, `{"pk":{"S":"job#1"},"attempt":{"N":"2"}}`, so what the ledger writes is exactly
// what goes on the wire; the `ddb` helpers below build and read attribute values.
//
// On top of the core: BatchWriteItem splits any number of requests into batches of 25, keeps
// several in flight and re-sends UnprocessedItems with the core's backoff; Query and Scan
// follow LastEvaluatedKey to the end; ParallelScan runs one thread per segment; conditional
// writes report a lost condition as Error::IsConditionFailed() together with the item as it
// now is, when asked.
//
// Thread-safety: DynamoDbClient is safe to use from any number of threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

class AwsMulti;

// Building and reading AttributeValues. The readers return nullopt when the attribute is
// absent or of another type.
namespace ddb {
nlohmann::json S(std::string_view value);
nlohmann::json N(std::int64_t value);
nlohmann::json N(double value);
nlohmann::json Bool(bool value);
nlohmann::json Null();
nlohmann::json M(nlohmann::json attribute_map);   // {"k": AttributeValue, ...}
nlohmann::json L(nlohmann::json attribute_list);  // [AttributeValue, ...]
nlohmann::json SS(const std::vector<std::string>& values);

std::optional<std::string> GetS(const nlohmann::json& item, std::string_view name);
std::optional<std::int64_t> GetInt(const nlohmann::json& item, std::string_view name);
std::optional<double> GetDouble(const nlohmann::json& item, std::string_view name);
std::optional<bool> GetBool(const nlohmann::json& item, std::string_view name);
// The AttributeValue itself ({"M": {...}} etc.), or nullptr when absent.
const nlohmann::json* Get(const nlohmann::json& item, std::string_view name);
}  // namespace ddb

struct KeyAttribute {
  std::string name;
  std::string type = "S";  // "S", "N" or "B"
};

struct GlobalSecondaryIndex {
  std::string name;
  KeyAttribute partition_key;
  std::optional<KeyAttribute> sort_key;
  std::string projection = "ALL";  // "ALL" | "KEYS_ONLY"
};

// An on-demand (PAY_PER_REQUEST) table.
struct TableSpec {
  std::string name;
  KeyAttribute partition_key;
  std::optional<KeyAttribute> sort_key;
  std::vector<GlobalSecondaryIndex> global_indexes;
};

struct TableDescription {
  std::string name;
  std::string status;  // CREATING | ACTIVE | UPDATING | DELETING ...
  std::string arn;
  std::int64_t item_count = 0;
  std::vector<std::string> key_names;               // partition key, then sort key if any
  std::map<std::string, std::string> index_status;  // GSI name -> IndexStatus
  bool IsActive() const;                            // the table and every GSI are ACTIVE
};

// Options shared by PutItem, UpdateItem and DeleteItem.
struct WriteOptions {
  std::string condition_expression;                  // empty = unconditional
  nlohmann::json names = nlohmann::json::object();   // ExpressionAttributeNames {"#s": "state"}
  nlohmann::json values = nlohmann::json::object();  // ExpressionAttributeValues {":v": AV}
  // ReturnValues: "" (= NONE), "ALL_OLD", and for UpdateItem also "UPDATED_OLD", "ALL_NEW",
  // "UPDATED_NEW".
  std::string return_values;
  // Sends ReturnValuesOnConditionCheckFailure=ALL_OLD, so a lost condition reports the item as
  // it is now (WriteResult::current_item).
  bool return_current_on_condition_failure = false;
};

// The outcome of a single-item write. A lost condition is a failed status with
// IsConditionFailed(); with WriteOptions::return_current_on_condition_failure, current_item is
// then the item as it is (nullopt if there is none). The service sends it with the error;
// where it does not, the client reads it with a strongly consistent GetItem right after the
// failure (the item may of course change again at any time).
struct WriteResult {
  Status status;
  nlohmann::json attributes = nlohmann::json::object();  // what ReturnValues asked for
  std::optional<nlohmann::json> current_item;

  bool ok() const { return status.ok(); }
  const Error& error() const { return status.error(); }
};

// One BatchWriteItem request: put an item or delete a key.
struct WriteRequest {
  enum class Kind { kPut, kDelete };
  Kind kind = Kind::kPut;
  nlohmann::json item_or_key;

  static WriteRequest Put(nlohmann::json item) { return {Kind::kPut, std::move(item)}; }
  static WriteRequest Delete(nlohmann::json key) { return {Kind::kDelete, std::move(key)}; }
};

struct BatchWriteResult {
  // Requests still unprocessed when the retry budget ran out, or whose batch failed as a whole
  // (then `status` carries the first such error).
  std::vector<WriteRequest> unprocessed;
  Status status;
  bool ok() const { return status.ok() && unprocessed.empty(); }
};

struct QueryRequest {
  std::string table;
  std::string index_name;
  std::string key_condition_expression;  // required
  std::string filter_expression;
  std::string projection_expression;
  nlohmann::json names = nlohmann::json::object();
  nlohmann::json values = nlohmann::json::object();
  std::optional<int> limit;  // items evaluated per page (before the filter)
  bool scan_forward = true;
  bool consistent_read = false;        // not for GSIs
  nlohmann::json exclusive_start_key;  // null = from the start
};

struct ScanRequest {
  std::string table;
  std::string index_name;
  std::string filter_expression;
  std::string projection_expression;
  nlohmann::json names = nlohmann::json::object();
  nlohmann::json values = nlohmann::json::object();
  std::optional<int> limit;  // items evaluated per page (before the filter)
  bool consistent_read = false;
  nlohmann::json exclusive_start_key;
  std::optional<int> segment;  // with total_segments: one segment of a parallel scan
  std::optional<int> total_segments;
};

// One page of a Query or Scan.
struct Page {
  std::vector<nlohmann::json> items;
  nlohmann::json last_evaluated_key;  // null on the last page
  std::int64_t scanned_count = 0;
  int segment = 0;  // the segment this page belongs to (ParallelScan)
};

// Sees each page in order; return false to stop early. The callback may move items out.
using PageCallback = std::function<bool(Page& page)>;

class DynamoDb {
 public:
  virtual ~DynamoDb() = default;

  virtual Result<TableDescription> CreateTable(const TableSpec& spec) = 0;
  virtual Result<TableDescription> DescribeTable(const std::string& table) = 0;
  virtual Status DeleteTable(const std::string& table) = 0;
  // Polls DescribeTable until the table and its indexes are ACTIVE or `timeout` passes.
  virtual Status WaitUntilActive(const std::string& table, std::chrono::milliseconds timeout) = 0;
  // Creates the table unless it exists (ResourceInUseException is fine), then waits.
  virtual Status EnsureTable(const TableSpec& spec, std::chrono::milliseconds timeout) = 0;

  // nullopt when there is no such item.
  virtual Result<std::optional<nlohmann::json>> GetItem(const std::string& table,
                                                        const nlohmann::json& key,
                                                        bool consistent_read = false) = 0;
  virtual WriteResult PutItem(const std::string& table, const nlohmann::json& item,
                              const WriteOptions& options = {}) = 0;
  virtual WriteResult UpdateItem(const std::string& table, const nlohmann::json& key,
                                 const std::string& update_expression,
                                 const WriteOptions& options = {}) = 0;
  virtual WriteResult DeleteItem(const std::string& table, const nlohmann::json& key,
                                 const WriteOptions& options = {}) = 0;

  virtual BatchWriteResult BatchWriteItem(const std::string& table,
                                          std::span<const WriteRequest> requests) = 0;
  // BatchWriteItem of puts whose items are given already encoded, each one complete item in
  // compact AttributeValue JSON (`{"pk":{"S":"a"},...}`, valid UTF-8): bulk writers encode
  // straight to text and skip a JSON tree per item. Unprocessed puts come back as
  // WriteRequests. This default parses the items and calls BatchWriteItem.
  virtual BatchWriteResult BatchPutEncoded(const std::string& table,
                                           std::span<const std::string> items);
  // BatchPutEncoded as a call of `multi`, for a caller that keeps many in flight on one
  // thread; `done` runs on that thread. This default runs BatchPutEncoded on a thread of its
  // own (AwsMulti::Offload), which is all a test double needs.
  using PutDone = std::function<void(BatchWriteResult)>;
  virtual void StartBatchPutEncoded(AwsMulti& multi, const std::string& table,
                                    std::vector<std::string> items, PutDone done);

  virtual Status Query(const QueryRequest& request, const PageCallback& on_page) = 0;
  virtual Result<std::vector<nlohmann::json>> QueryAll(const QueryRequest& request) = 0;
  virtual Status Scan(const ScanRequest& request, const PageCallback& on_page) = 0;
  virtual Result<std::vector<nlohmann::json>> ScanAll(const ScanRequest& request) = 0;
  // Scans with TotalSegments = `segments`, one thread per segment. `on_page` is called from
  // those threads concurrently (Page::segment says which); the first error stops every
  // segment and is returned.
  virtual Status ParallelScan(const ScanRequest& request, int segments,
                              const PageCallback& on_page) = 0;
  virtual Result<std::vector<nlohmann::json>> ParallelScanAll(const ScanRequest& request,
                                                              int segments) = 0;
};

struct DynamoDbClientOptions {
  // BatchWriteItem batches in flight at once (each on its own thread); 1 = sequential.
  int batch_concurrency = 8;
  // Rounds of re-sending UnprocessedItems per batch (each after Backoff(round)) before the
  // rest is reported in BatchWriteResult::unprocessed.
  int max_unprocessed_retries = 8;
  // How often WaitUntilActive polls DescribeTable.
  std::chrono::milliseconds table_poll_interval{200};
};

class DynamoDbClient final : public DynamoDb {
 public:
  static Result<std::shared_ptr<DynamoDbClient>> Create(std::shared_ptr<AwsContext> context,
                                                        DynamoDbClientOptions options = {});
  DynamoDbClient(std::shared_ptr<AwsClient> client, DynamoDbClientOptions options);

  Result<TableDescription> CreateTable(const TableSpec& spec) override;
  Result<TableDescription> DescribeTable(const std::string& table) override;
  Status DeleteTable(const std::string& table) override;
  Status WaitUntilActive(const std::string& table, std::chrono::milliseconds timeout) override;
  Status EnsureTable(const TableSpec& spec, std::chrono::milliseconds timeout) override;
  Result<std::optional<nlohmann::json>> GetItem(const std::string& table, const nlohmann::json& key,
                                                bool consistent_read = false) override;
  WriteResult PutItem(const std::string& table, const nlohmann::json& item,
                      const WriteOptions& options = {}) override;
  WriteResult UpdateItem(const std::string& table, const nlohmann::json& key,
                         const std::string& update_expression,
                         const WriteOptions& options = {}) override;
  WriteResult DeleteItem(const std::string& table, const nlohmann::json& key,
                         const WriteOptions& options = {}) override;
  BatchWriteResult BatchWriteItem(const std::string& table,
                                  std::span<const WriteRequest> requests) override;
  // Writes the encoded items straight into the request bodies.
  BatchWriteResult BatchPutEncoded(const std::string& table,
                                   std::span<const std::string> items) override;
  // One BatchWriteItem call (with its rounds for unprocessed items) on `multi`, without a
  // thread, for up to 25 items; more go through the default.
  void StartBatchPutEncoded(AwsMulti& multi, const std::string& table,
                            std::vector<std::string> items, PutDone done) override;
  Status Query(const QueryRequest& request, const PageCallback& on_page) override;
  Result<std::vector<nlohmann::json>> QueryAll(const QueryRequest& request) override;
  Status Scan(const ScanRequest& request, const PageCallback& on_page) override;
  Result<std::vector<nlohmann::json>> ScanAll(const ScanRequest& request) override;
  Status ParallelScan(const ScanRequest& request, int segments,
                      const PageCallback& on_page) override;
  Result<std::vector<nlohmann::json>> ParallelScanAll(const ScanRequest& request,
                                                      int segments) override;

 private:
  // Runs one conditional write and, on a lost condition, fills current_item.
  WriteResult Write(std::string_view operation, const std::string& table, nlohmann::json body,
                    const WriteOptions& options, const nlohmann::json* key);
  // The table's key attribute names, from DescribeTable once per table.
  Result<std::vector<std::string>> KeyNames(const std::string& table);
  Status Paginate(std::string_view operation, nlohmann::json body, int segment,
                  const PageCallback& on_page, const std::atomic<bool>* stop);

  std::shared_ptr<AwsClient> client_;
  DynamoDbClientOptions options_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> key_names_;  // guarded by mu_
};

// Request encoders, exposed for tests and the benchmark.
nlohmann::json EncodeCreateTable(const TableSpec& spec);
// At most 25 requests for one table. Writes the wire body directly (no intermediate JSON
// tree); fails only on a string that is not valid UTF-8.
Result<std::string> EncodeBatchWriteItem(const std::string& table,
                                         std::span<const WriteRequest> requests);
nlohmann::json EncodeQuery(const QueryRequest& request);
nlohmann::json EncodeScan(const ScanRequest& request);

}  // namespace spotgrid
