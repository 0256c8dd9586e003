// What a batch costs us to encode: the request bodies the controller sends most (50,000 units
// = 5,000 SendMessageBatch + 2,000 BatchWriteItem calls), from typed entries to the body
// string, measured the same way bench/peers/botocore_peer.py measures botocore's serialisers.
// "per_entry" is the time per message / item.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "spotgrid/services/dynamodb_client.h"
#include "spotgrid/services/sqs_client.h"

namespace spotgrid {
namespace {

using nlohmann::json;

const std::string kQueueUrl = "https://sqs.us-east-1.amazonaws.com/123456789012/spotgrid-work";

// The same item as botocore_peer.py's unit_item(i): 10 attributes, one of them a map.
json UnitItem(int i) {
  char sk[32], alpha[32], command[96];
  std::snprintf(sk, sizeof sk, "unit#%08d", i);
  std::snprintf(alpha, sizeof alpha, "%.2f", i * 0.01);
  std::snprintf(command, sizeof command, "python3 simulate.py --alpha %s --beta 3 --seed %d", alpha,
                i);
  return {{"pk", ddb::S("job#sweep-42")},
          {"sk", ddb::S(sk)},
          {"state", ddb::S("QUEUED")},
          {"attempt", ddb::N(std::int64_t{0})},
          {"interruptions", ddb::N(std::int64_t{0})},
          {"command", ddb::S(command)},
          {"params", ddb::M({{"alpha", ddb::S(alpha)}, {"beta", ddb::S("3")}})},
          {"created_at", ddb::N(std::int64_t{1763700000})},
          {"max_attempts", ddb::N(std::int64_t{3})},
          {"timeout_s", ddb::N(std::int64_t{3600})}};
}

void SetPerEntry(benchmark::State& state, int entries) {
  state.SetItemsProcessed(state.iterations() * entries);
  state.counters["per_entry"] = benchmark::Counter(
      static_cast<double>(entries),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_EncodeSendMessageBatch(benchmark::State& state) {
  std::vector<SendEntry> entries;
  for (int i = 0; i < 10; ++i) {
    char body[64];
    std::snprintf(body, sizeof body, R"({"job": "sweep-42", "unit": "%08d"})", i);
    entries.push_back({body, std::nullopt, "", ""});
  }
  for (auto _ : state) {
    std::string wire = EncodeSendMessageBatch(kQueueUrl, entries).value();
    benchmark::DoNotOptimize(wire);
  }
  SetPerEntry(state, 10);
}
BENCHMARK(BM_EncodeSendMessageBatch);

void BM_EncodeBatchWriteItem(benchmark::State& state) {
  std::vector<WriteRequest> requests;
  for (int i = 0; i < 25; ++i) requests.push_back(WriteRequest::Put(UnitItem(i)));
  for (auto _ : state) {
    std::string wire = EncodeBatchWriteItem("spotgrid-ledger", requests).value();
    benchmark::DoNotOptimize(wire);
  }
  SetPerEntry(state, 25);
}
BENCHMARK(BM_EncodeBatchWriteItem);

// The same body through an nlohmann::json tree and dump(), the straightforward way, for
// comparison with the direct writer above.
void BM_EncodeBatchWriteItemViaJsonTree(benchmark::State& state) {
  std::vector<WriteRequest> requests;
  for (int i = 0; i < 25; ++i) requests.push_back(WriteRequest::Put(UnitItem(i)));
  for (auto _ : state) {
    json list = json::array();
    for (const WriteRequest& r : requests)
      list.push_back({{"PutRequest", {{"Item", r.item_or_key}}}});
    std::string wire = json{{"RequestItems", {{"spotgrid-ledger", std::move(list)}}}}.dump();
    benchmark::DoNotOptimize(wire);
  }
  SetPerEntry(state, 25);
}
BENCHMARK(BM_EncodeBatchWriteItemViaJsonTree);

}  // namespace
}  // namespace spotgrid
