// What a job's fleet costs: instance-seconds reported by the agents (worker items) times a
// price per instance type.
//
// Prices come from `--price TYPE=USD_PER_HOUR` overrides first, then, for Spot workers, from
// EC2 DescribeSpotPriceHistory (the latest Linux/UNIX price of the type, in the worker's
// availability zone when known, else the latest in any zone). On-Demand workers have no
// price source here, so they need an override. A worker whose price is unknown is reported
// as such: its seconds are counted but never priced with a made-up number.
//
// Thread-safety: plain values and pure functions; FetchSpotPrices calls the given Ec2.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"
#include "spotgrid/ledger/types.h"

namespace spotgrid {

class Ec2;

struct Price {
  double usd_per_hour = 0;
  std::string source;  // "--price" | "spot price history"
};

class PriceTable {
 public:
  void SetOverride(const std::string& instance_type, double usd_per_hour);
  // Keeps the newest observation per (type, zone).
  void AddSpotPrice(const std::string& instance_type, const std::string& availability_zone,
                    double usd_per_hour, Clock::WallTime timestamp);

  // The override for the type, else (Spot only) the zone's latest spot price, else the
  // type's latest spot price in any zone.
  std::optional<Price> Lookup(const std::string& instance_type, const std::string& zone,
                              bool spot) const;
  bool HasOverride(const std::string& instance_type) const {
    return overrides_.count(instance_type) > 0;
  }

 private:
  struct Observation {
    double usd_per_hour = 0;
    Clock::WallTime timestamp{};
  };
  std::map<std::string, double> overrides_;
  std::map<std::string, std::map<std::string, Observation>> spot_;  // type -> zone -> latest
};

// Parses "--price" values ("c5.large=0.034"); a malformed one is an InvalidInput error.
Result<PriceTable> ParsePriceOverrides(const std::vector<std::string>& values);

// Adds the current Spot prices of `instance_types` (those without an override) to `table`.
Status FetchSpotPrices(Ec2& ec2, const std::vector<std::string>& instance_types, PriceTable& table);

// One worker's share of a job's cost.
struct WorkerCost {
  std::string instance_id;
  std::string instance_type;
  bool spot = false;
  double seconds = 0;  // instance-seconds counted for the job
  std::optional<Price> price;
  double usd = 0;  // seconds x price (0 when unpriced)
};

struct CostSummary {
  double instance_seconds = 0;
  double priced_seconds = 0;
  double spent_usd = 0;                     // over the priced seconds only
  std::vector<std::string> unpriced_types;  // sorted, unique ("m5.large (On-Demand)")
  // Spent per finished unit x units left; nullopt when any worker is unpriced or nothing
  // finished yet.
  std::optional<double> to_finish_usd;
  std::vector<WorkerCost> workers;
  bool fully_priced() const { return unpriced_types.empty(); }
};

// Instance-seconds of each worker from max(started_at, job_created_at) to its last heartbeat
// (workers serve the whole stack, so a job is charged the fleet time since it was created),
// priced from `prices`. `finished` and `remaining` are unit counts for the to-finish estimate.
CostSummary ComputeCost(const std::vector<WorkerRecord>& workers, Clock::WallTime job_created_at,
                        const PriceTable& prices, std::int64_t finished, std::int64_t remaining);

}  // namespace spotgrid
