// An in-memory InstanceMetadata for tests of the agent's interruption handling: a test sets
// the Spot notice, the rebalance recommendation and the Auto Scaling target lifecycle state
// (nullopt = IMDS answers 404), can make reads fail, and counts the reads.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "spotgrid/aws/imds_client.h"

namespace spotgrid::testing {

class FakeInstanceMetadata final : public InstanceMetadata {
 public:
  // Test helpers --------------------------------------------------------------------------
  void SetSpotInstanceAction(std::optional<SpotInstanceActionNotice> notice);
  void SetRebalance(std::optional<RebalanceNotice> notice);
  void SetTargetLifecycleState(std::optional<std::string> state);
  // While set, every read fails with this error.
  void FailReads(std::optional<Error> error);
  // Reads per method name ("SpotInstanceAction", "RebalanceRecommendation",
  // "TargetLifecycleState", ...).
  int Reads(const std::string& method) const;

  // InstanceMetadata -----------------------------------------------------------------------
  Result<std::string> Get(std::string_view path) override;
  Result<std::string> InstanceId() override;
  Result<std::string> InstanceType() override;
  Result<std::string> Region() override;
  Result<std::string> AvailabilityZone() override;
  Result<bool> IsSpot() override;
  Result<std::optional<SpotInstanceActionNotice>> SpotInstanceAction() override;
  Result<std::optional<RebalanceNotice>> RebalanceRecommendation() override;
  Result<std::optional<std::string>> TargetLifecycleState() override;
  Result<Credentials> RoleCredentials() override;

 private:
  // Counts the read; the injected failure, if any. Requires mu_.
  std::optional<Error> Enter(const std::string& method);

  mutable std::mutex mu_;
  std::optional<SpotInstanceActionNotice> spot_;
  std::optional<RebalanceNotice> rebalance_;
  std::optional<std::string> lifecycle_;
  std::optional<Error> failure_;
  std::map<std::string, int> reads_;
};

}  // namespace spotgrid::testing
