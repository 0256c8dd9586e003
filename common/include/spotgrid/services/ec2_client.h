// Amazon EC2 over the EC2 Query protocol (form-encoded, Version 2016-11-15, lists as Name.N).
//
// `Ec2` is the small part of EC2 spotgrid uses: the controller terminates and tags workers and
// reads Spot prices to choose instance types. Product logic depends on the interface, so tests
// substitute an in-memory fake; `Ec2Client` is the real client over the client core (signing,
// HTTP-level retries, error classification all happen in AwsClient).
//
// Thread-safety: Ec2Client is safe to use from any number of threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

// One instance's state change as TerminateInstances reports it.
struct InstanceStateChange {
  std::string instance_id;
  int current_code = 0;       // 16 running, 32 shutting-down, 48 terminated, ...
  std::string current_state;  // "shutting-down"
  int previous_code = 0;
  std::string previous_state;  // "running"
};

struct Ec2Tag {
  std::string key;
  std::string value;
};

struct SpotPriceQuery {
  std::vector<std::string> instance_types;        // empty = all types
  std::vector<std::string> product_descriptions;  // e.g. "Linux/UNIX"; empty = all
  std::string availability_zone;                  // empty = every zone of the region
  std::optional<Clock::WallTime> start_time;      // absent = only the current prices
  std::optional<Clock::WallTime> end_time;
  int max_results = 0;  // per page, 5..1000; 0 = the service default (1000)
  // The all-pages call stops with an error after this many pages rather than loop forever on
  // a service that keeps returning tokens.
  int max_pages = 100;
};

struct SpotPrice {
  std::string availability_zone;
  std::string instance_type;
  std::string product_description;
  std::string price_text;  // as sent, e.g. "0.034500" (USD per hour)
  double price = 0;
  Clock::WallTime timestamp;
};

struct SpotPricePage {
  std::vector<SpotPrice> prices;
  std::string next_token;  // "" on the last page
};

class Ec2 {
 public:
  virtual ~Ec2() = default;

  // Terminates the instances; idempotent (terminating a terminated instance succeeds). If any
  // id in a call is unknown, EC2 terminates none of them (InvalidInstanceID.NotFound). More
  // than 1000 ids are sent as several calls of at most 1000.
  virtual Result<std::vector<InstanceStateChange>> TerminateInstances(
      const std::vector<std::string>& instance_ids) = 0;

  // Adds or overwrites tags on the resources.
  virtual Status CreateTags(const std::vector<std::string>& resource_ids,
                            const std::vector<Ec2Tag>& tags) = 0;

  // Every page of the price history matching the query, in the order EC2 returns them.
  virtual Result<std::vector<SpotPrice>> DescribeSpotPriceHistory(const SpotPriceQuery& query) = 0;
};

class Ec2Client final : public Ec2 {
 public:
  static constexpr const char* kApiVersion = "2016-11-15";

  static Result<std::shared_ptr<Ec2Client>> Create(std::shared_ptr<AwsContext> context);
  explicit Ec2Client(std::shared_ptr<AwsClient> client) : client_(std::move(client)) {}

  Result<std::vector<InstanceStateChange>> TerminateInstances(
      const std::vector<std::string>& instance_ids) override;
  Status CreateTags(const std::vector<std::string>& resource_ids,
                    const std::vector<Ec2Tag>& tags) override;
  Result<std::vector<SpotPrice>> DescribeSpotPriceHistory(const SpotPriceQuery& query) override;

  // One page: `next_token` from the previous page, "" for the first.
  Result<SpotPricePage> DescribeSpotPriceHistoryPage(const SpotPriceQuery& query,
                                                     const std::string& next_token);

  AwsClient& client() { return *client_; }

 private:
  std::shared_ptr<AwsClient> client_;
};

}  // namespace spotgrid
