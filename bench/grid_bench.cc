// Cost of turning a grid file into units: ParseCsv and BuildUnits on a 100,000-row grid of
// the usual shape (an id, a few parameters, one quoted value with a comma), with a template,
// separately and together. `enqueue` validates the whole file before writing anything, so this
// is the time a researcher waits before the first write.
#include <benchmark/benchmark.h>

#include <string>

#include "grid.h"

namespace spotgrid {
namespace {

constexpr int kRows = 100000;
const char* const kTemplate = "python train.py --lr {lr} --seed {seed} --name {name} --data {data}";

std::string MakeGrid(int rows) {
  std::string csv = "id,lr,seed,name,data\r\n";
  for (int i = 0; i < rows; ++i) {
    csv += "run-" + std::to_string(i) + ",0.00" + std::to_string(i % 97) + "," +
           std::to_string(i * 7919 % 100003) + ",\"model " + std::to_string(i % 13) +
           ", v2\",s3://bucket/data/shard-" + std::to_string(i % 1024) + ".parquet\r\n";
  }
  return csv;
}

void BM_ParseCsv(benchmark::State& state) {
  const std::string csv = MakeGrid(kRows);
  for (auto _ : state) {
    auto table = ParseCsv(csv, "grid.csv");
    if (!table.ok()) state.SkipWithError(table.error().message.c_str());
    benchmark::DoNotOptimize(table);
  }
  state.SetItemsProcessed(state.iterations() * kRows);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(csv.size()));
}
BENCHMARK(BM_ParseCsv)->Unit(benchmark::kMillisecond);

void BM_BuildUnits(benchmark::State& state) {
  const std::string csv = MakeGrid(kRows);
  auto table = ParseCsv(csv, "grid.csv");
  if (!table.ok()) {
    state.SkipWithError(table.error().message.c_str());
    return;
  }
  const GridOptions options{kTemplate, static_cast<int>(state.range(0))};
  for (auto _ : state) {
    auto units = BuildUnits(*table, options, "grid.csv");
    if (!units.ok()) state.SkipWithError(units.error().message.c_str());
    benchmark::DoNotOptimize(units);
  }
  state.SetItemsProcessed(state.iterations() * kRows);
}
BENCHMARK(BM_BuildUnits)->Arg(1)->Arg(10)->Unit(benchmark::kMillisecond);

void BM_ParseAndBuild(benchmark::State& state) {
  const std::string csv = MakeGrid(kRows);
  for (auto _ : state) {
    auto table = ParseCsv(csv, "grid.csv");
    if (!table.ok()) {
      state.SkipWithError(table.error().message.c_str());
      break;
    }
    auto units = BuildUnits(*table, GridOptions{kTemplate, 1}, "grid.csv");
    if (!units.ok()) state.SkipWithError(units.error().message.c_str());
    benchmark::DoNotOptimize(units);
  }
  state.SetItemsProcessed(state.iterations() * kRows);
}
BENCHMARK(BM_ParseAndBuild)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace spotgrid
