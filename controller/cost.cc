#include "cost.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include "spotgrid/services/ec2_client.h"

namespace spotgrid {

void PriceTable::SetOverride(const std::string& instance_type, double usd_per_hour) {
  overrides_[instance_type] = usd_per_hour;
}

void PriceTable::AddSpotPrice(const std::string& instance_type,
                              const std::string& availability_zone, double usd_per_hour,
                              Clock::WallTime timestamp) {
  Observation& slot = spot_[instance_type][availability_zone];
  if (slot.timestamp == Clock::WallTime{} || timestamp >= slot.timestamp) {
    slot = {usd_per_hour, timestamp};
  }
}

std::optional<Price> PriceTable::Lookup(const std::string& instance_type, const std::string& zone,
                                        bool spot) const {
  if (auto it = overrides_.find(instance_type); it != overrides_.end()) {
    return Price{it->second, "--price"};
  }
  if (!spot) return std::nullopt;
  auto type_it = spot_.find(instance_type);
  if (type_it == spot_.end() || type_it->second.empty()) return std::nullopt;
  if (!zone.empty()) {
    if (auto zone_it = type_it->second.find(zone); zone_it != type_it->second.end()) {
      return Price{zone_it->second.usd_per_hour, "spot price history"};
    }
  }
  const Observation* latest = nullptr;
  for (const auto& [z, observation] : type_it->second) {
    if (latest == nullptr || observation.timestamp > latest->timestamp) latest = &observation;
  }
  return Price{latest->usd_per_hour, "spot price history"};
}

Result<PriceTable> ParsePriceOverrides(const std::vector<std::string>& values) {
  PriceTable table;
  for (const std::string& value : values) {
    auto eq = value.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == value.size()) {
      return Error::InvalidInput("--price '" + value +
                                 "': expected TYPE=USD_PER_HOUR, e.g. c5.large=0.034");
    }
    std::string type = value.substr(0, eq);
    std::string number = value.substr(eq + 1);
    char* end = nullptr;
    errno = 0;
    double price = std::strtod(number.c_str(), &end);
    if (errno != 0 || end != number.c_str() + number.size() || !std::isfinite(price) || price < 0) {
      return Error::InvalidInput("--price '" + value + "': '" + number +
                                 "' is not a price in USD per hour");
    }
    table.SetOverride(type, price);
  }
  return table;
}

Status FetchSpotPrices(Ec2& ec2, const std::vector<std::string>& instance_types,
                       PriceTable& table) {
  SpotPriceQuery query;
  for (const std::string& type : instance_types) {
    if (!table.HasOverride(type)) query.instance_types.push_back(type);
  }
  if (query.instance_types.empty()) return Status::Ok();
  query.product_descriptions = {"Linux/UNIX"};
  auto prices = ec2.DescribeSpotPriceHistory(query);
  if (!prices.ok()) return prices.status();
  for (const SpotPrice& price : *prices) {
    table.AddSpotPrice(price.instance_type, price.availability_zone, price.price, price.timestamp);
  }
  return Status::Ok();
}

CostSummary ComputeCost(const std::vector<WorkerRecord>& workers, Clock::WallTime job_created_at,
                        const PriceTable& prices, std::int64_t finished, std::int64_t remaining) {
  CostSummary summary;
  std::set<std::string> unpriced;
  for (const WorkerRecord& worker : workers) {
    Clock::WallTime from = std::max(worker.started_at, job_created_at);
    if (worker.last_heartbeat <= from) continue;  // not alive while the job existed
    WorkerCost cost;
    cost.instance_id = worker.instance_id;
    cost.instance_type = worker.instance_type;
    cost.spot = worker.spot;
    cost.seconds = std::chrono::duration<double>(worker.last_heartbeat - from).count();
    cost.price = prices.Lookup(worker.instance_type, worker.availability_zone, worker.spot);
    summary.instance_seconds += cost.seconds;
    if (cost.price) {
      cost.usd = cost.seconds * cost.price->usd_per_hour / 3600.0;
      summary.priced_seconds += cost.seconds;
      summary.spent_usd += cost.usd;
    } else {
      unpriced.insert(worker.instance_type + (worker.spot ? " (Spot)" : " (On-Demand)"));
    }
    summary.workers.push_back(std::move(cost));
  }
  summary.unpriced_types.assign(unpriced.begin(), unpriced.end());
  if (summary.fully_priced() && finished > 0) {
    summary.to_finish_usd =
        summary.spent_usd / static_cast<double>(finished) * static_cast<double>(remaining);
  }
  return summary;
}

}  // namespace spotgrid
