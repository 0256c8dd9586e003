// Integration tests of DynamoDbClient against dynalite (started by the `emulators` ctest
// fixture). Every test works on its own table (UniqueName), so tests run in parallel.
#include "spotgrid/services/dynamodb_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "support/client_fixture.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using nlohmann::json;
using testing::UniqueName;
using testing::UseEmulators;

constexpr auto kTableTimeout = std::chrono::seconds(30);

class DynamoDbClientIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UseEmulators();
    auto client = testing::CreateServiceClient<DynamoDbClient>({});
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    ddb_ = *client;
    table_ = UniqueName("ledger");
    TableSpec spec;
    spec.name = table_;
    spec.partition_key = {"pk", "S"};
    spec.sort_key = KeyAttribute{"sk", "S"};
    spec.global_indexes.push_back({"by-state", {"state", "S"}, KeyAttribute{"sk", "S"}, "ALL"});
    Status status = ddb_->EnsureTable(spec, kTableTimeout);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  void TearDown() override {
    if (ddb_ && !table_.empty()) (void)ddb_->DeleteTable(table_);
  }

  static json Key(const std::string& sk) { return {{"pk", ddb::S("job")}, {"sk", ddb::S(sk)}}; }
  static json Unit(int i, const std::string& state = "QUEUED") {
    char sk[32];
    std::snprintf(sk, sizeof sk, "unit#%08d", i);
    json item = Key(sk);
    item["state"] = ddb::S(state);
    item["attempt"] = ddb::N(std::int64_t{0});
    item["command"] = ddb::S("python3 simulate.py --seed " + std::to_string(i));
    return item;
  }

  std::shared_ptr<DynamoDbClient> ddb_;
  std::string table_;
};

TEST_F(DynamoDbClientIntegrationTest, EnsuredTableIsActiveAndEnsuringAgainIsFine) {
  auto description = ddb_->DescribeTable(table_);
  ASSERT_TRUE(description.ok()) << description.error().ToString();
  EXPECT_TRUE(description->IsActive());
  EXPECT_EQ(description->key_names, (std::vector<std::string>{"pk", "sk"}));
  EXPECT_EQ(description->index_status.count("by-state"), 1u);

  TableSpec spec;
  spec.name = table_;
  spec.partition_key = {"pk", "S"};
  spec.sort_key = KeyAttribute{"sk", "S"};
  Status again = ddb_->EnsureTable(spec, kTableTimeout);
  EXPECT_TRUE(again.ok()) << again.ToString();

  auto missing = ddb_->DescribeTable(UniqueName("missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error().IsNotFound()) << missing.error().ToString();
}

TEST_F(DynamoDbClientIntegrationTest, GetItemReadsWhatPutItemWrote) {
  auto missing = ddb_->GetItem(table_, Key("unit#nothing"), /*consistent_read=*/true);
  ASSERT_TRUE(missing.ok()) << missing.error().ToString();
  EXPECT_FALSE(missing->has_value());

  ASSERT_TRUE(ddb_->PutItem(table_, Unit(1), {}).ok());
  auto found = ddb_->GetItem(table_, Key("unit#00000001"), /*consistent_read=*/true);
  ASSERT_TRUE(found.ok()) << found.error().ToString();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, Unit(1));
}

TEST_F(DynamoDbClientIntegrationTest, ConditionalPutFailsCleanlyWithTheCurrentItem) {
  WriteOptions create_only;
  create_only.condition_expression = "attribute_not_exists(pk)";
  create_only.return_current_on_condition_failure = true;
  json first = Unit(7);
  first["owner"] = ddb::S("worker-a");
  WriteResult created = ddb_->PutItem(table_, first, create_only);
  ASSERT_TRUE(created.ok()) << created.status.ToString();

  json second = Unit(7);
  second["owner"] = ddb::S("worker-b");
  WriteResult lost = ddb_->PutItem(table_, second, create_only);

  ASSERT_FALSE(lost.ok());
  EXPECT_TRUE(lost.error().IsConditionFailed()) << lost.error().ToString();
  EXPECT_EQ(lost.error().code, "ConditionalCheckFailedException");
  ASSERT_TRUE(lost.current_item.has_value());
  EXPECT_EQ(ddb::GetS(*lost.current_item, "owner"), "worker-a");
  auto stored = ddb_->GetItem(table_, Key("unit#00000007"), true);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ(ddb::GetS(**stored, "owner"), "worker-a");
}

TEST_F(DynamoDbClientIntegrationTest, ConditionalUpdateFailsWithTheCurrentItemAndThenSucceeds) {
  ASSERT_TRUE(ddb_->PutItem(table_, Unit(3, "RUNNING"), {}).ok());
  WriteOptions claim;
  claim.condition_expression = "#s = :queued";
  claim.names = {{"#s", "state"}, {"#a", "attempt"}};
  claim.values = {{":queued", ddb::S("QUEUED")},
                  {":running", ddb::S("RUNNING")},
                  {":one", ddb::N(std::int64_t{1})}};
  claim.return_values = "ALL_NEW";
  claim.return_current_on_condition_failure = true;
  const std::string update = "SET #s = :running ADD #a :one";

  WriteResult lost = ddb_->UpdateItem(table_, Key("unit#00000003"), update, claim);

  ASSERT_FALSE(lost.ok());
  EXPECT_TRUE(lost.error().IsConditionFailed()) << lost.error().ToString();
  ASSERT_TRUE(lost.current_item.has_value());
  EXPECT_EQ(ddb::GetS(*lost.current_item, "state"), "RUNNING");
  EXPECT_EQ(ddb::GetInt(*lost.current_item, "attempt"), 0);

  // Same claim on a queued unit wins and returns the new item.
  ASSERT_TRUE(ddb_->PutItem(table_, Unit(4, "QUEUED"), {}).ok());
  WriteResult won = ddb_->UpdateItem(table_, Key("unit#00000004"), update, claim);
  ASSERT_TRUE(won.ok()) << won.status.ToString();
  EXPECT_FALSE(won.current_item.has_value());
  EXPECT_EQ(ddb::GetS(won.attributes, "state"), "RUNNING");
  EXPECT_EQ(ddb::GetInt(won.attributes, "attempt"), 1);
  EXPECT_EQ(ddb::GetS(won.attributes, "command"), "python3 simulate.py --seed 4");
}

TEST_F(DynamoDbClientIntegrationTest, ConditionalDeleteOfMissingItemReportsNoCurrentItem) {
  WriteOptions must_exist;
  must_exist.condition_expression = "attribute_exists(pk)";
  must_exist.return_current_on_condition_failure = true;
  WriteResult lost = ddb_->DeleteItem(table_, Key("unit#none"), must_exist);
  ASSERT_FALSE(lost.ok());
  EXPECT_TRUE(lost.error().IsConditionFailed());
  EXPECT_FALSE(lost.current_item.has_value());
}

TEST_F(DynamoDbClientIntegrationTest, ReturnValuesGiveOldAndNewAttributes) {
  ASSERT_TRUE(ddb_->PutItem(table_, Unit(9), {}).ok());

  WriteOptions all_old;
  all_old.return_values = "ALL_OLD";
  WriteResult replaced = ddb_->PutItem(table_, Unit(9, "DONE"), all_old);
  ASSERT_TRUE(replaced.ok()) << replaced.status.ToString();
  EXPECT_EQ(replaced.attributes, Unit(9));

  WriteOptions counter;
  counter.names = {{"#a", "attempt"}};
  counter.values = {{":one", ddb::N(std::int64_t{1})}};
  counter.return_values = "UPDATED_OLD";
  WriteResult old_value = ddb_->UpdateItem(table_, Key("unit#00000009"), "ADD #a :one", counter);
  ASSERT_TRUE(old_value.ok()) << old_value.status.ToString();
  EXPECT_EQ(old_value.attributes, json({{"attempt", ddb::N(std::int64_t{0})}}));
  counter.return_values = "UPDATED_NEW";
  WriteResult new_value = ddb_->UpdateItem(table_, Key("unit#00000009"), "ADD #a :one", counter);
  ASSERT_TRUE(new_value.ok());
  EXPECT_EQ(new_value.attributes, json({{"attempt", ddb::N(std::int64_t{2})}}));

  WriteResult none = ddb_->UpdateItem(table_, Key("unit#00000009"), "ADD #a :one",
                                      WriteOptions{"", counter.names, counter.values, "", false});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none.attributes.empty());

  WriteResult deleted = ddb_->DeleteItem(table_, Key("unit#00000009"), all_old);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(ddb::GetS(deleted.attributes, "state"), "DONE");
  EXPECT_EQ(ddb::GetInt(deleted.attributes, "attempt"), 3);
  auto gone = ddb_->GetItem(table_, Key("unit#00000009"), true);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

TEST_F(DynamoDbClientIntegrationTest, ThousandBatchWrittenItemsAreSeenByQueryScanAndParallelScan) {
  std::vector<WriteRequest> requests;
  for (int i = 0; i < 1000; ++i) {
    requests.push_back(WriteRequest::Put(Unit(i, i % 4 == 0 ? "DONE" : "QUEUED")));
  }

  BatchWriteResult written = ddb_->BatchWriteItem(table_, requests);

  ASSERT_TRUE(written.ok()) << written.status.ToString() << " unprocessed "
                            << written.unprocessed.size();

  QueryRequest query;
  query.table = table_;
  query.key_condition_expression = "pk = :p";
  query.values = {{":p", ddb::S("job")}};
  query.limit = 150;  // forces several pages
  int pages = 0;
  std::set<std::string> queried;
  Status status = ddb_->Query(query, [&](Page& page) {
    ++pages;
    for (const json& item : page.items) queried.insert(*ddb::GetS(item, "sk"));
    return true;
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(queried.size(), 1000u);
  EXPECT_GE(pages, 7);

  ScanRequest scan;
  scan.table = table_;
  scan.limit = 200;
  auto scanned = ddb_->ScanAll(scan);
  ASSERT_TRUE(scanned.ok()) << scanned.error().ToString();
  EXPECT_EQ(scanned->size(), 1000u);

  std::atomic<int> segment_mask{0};
  std::mutex mu;
  std::set<std::string> parallel;
  status = ddb_->ParallelScan(scan, 4, [&](Page& page) {
    segment_mask |= 1 << page.segment;
    std::lock_guard<std::mutex> lock(mu);
    for (const json& item : page.items) parallel.insert(*ddb::GetS(item, "sk"));
    return true;
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(parallel.size(), 1000u);
  EXPECT_EQ(segment_mask.load(), 0b1111);

  auto collected = ddb_->ParallelScanAll(scan, 3);
  ASSERT_TRUE(collected.ok());
  EXPECT_EQ(collected->size(), 1000u);

  // The GSI sees the 250 DONE units; a filter on the base table agrees.
  QueryRequest done;
  done.table = table_;
  done.index_name = "by-state";
  done.key_condition_expression = "#s = :done";
  done.names = {{"#s", "state"}};
  done.values = {{":done", ddb::S("DONE")}};
  auto done_items = ddb_->QueryAll(done);
  ASSERT_TRUE(done_items.ok()) << done_items.error().ToString();
  EXPECT_EQ(done_items->size(), 250u);
  ScanRequest filtered = scan;
  filtered.filter_expression = "#s = :done";
  filtered.names = done.names;
  filtered.values = done.values;
  auto filtered_items = ddb_->ScanAll(filtered);
  ASSERT_TRUE(filtered_items.ok()) << filtered_items.error().ToString();
  EXPECT_EQ(filtered_items->size(), 250u);
}

TEST_F(DynamoDbClientIntegrationTest, BatchWriteItemDeletesAndPutsTogether) {
  std::vector<WriteRequest> puts;
  for (int i = 0; i < 60; ++i) puts.push_back(WriteRequest::Put(Unit(i)));
  ASSERT_TRUE(ddb_->BatchWriteItem(table_, puts).ok());

  std::vector<WriteRequest> mixed;
  for (int i = 0; i < 30; ++i)
    mixed.push_back(WriteRequest::Delete(Key(*ddb::GetS(Unit(i), "sk"))));
  for (int i = 60; i < 70; ++i) mixed.push_back(WriteRequest::Put(Unit(i)));
  BatchWriteResult result = ddb_->BatchWriteItem(table_, mixed);
  ASSERT_TRUE(result.ok()) << result.status.ToString();

  ScanRequest scan;
  scan.table = table_;
  scan.consistent_read = true;
  auto items = ddb_->ScanAll(scan);
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 40u);
}

}  // namespace
}  // namespace spotgrid
