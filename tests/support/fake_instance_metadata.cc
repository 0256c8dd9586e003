#include "support/fake_instance_metadata.h"

namespace spotgrid::testing {

void FakeInstanceMetadata::SetSpotInstanceAction(std::optional<SpotInstanceActionNotice> notice) {
  std::lock_guard<std::mutex> lock(mu_);
  spot_ = std::move(notice);
}

void FakeInstanceMetadata::SetRebalance(std::optional<RebalanceNotice> notice) {
  std::lock_guard<std::mutex> lock(mu_);
  rebalance_ = notice;
}

void FakeInstanceMetadata::SetTargetLifecycleState(std::optional<std::string> state) {
  std::lock_guard<std::mutex> lock(mu_);
  lifecycle_ = std::move(state);
}

void FakeInstanceMetadata::FailReads(std::optional<Error> error) {
  std::lock_guard<std::mutex> lock(mu_);
  failure_ = std::move(error);
}

int FakeInstanceMetadata::Reads(const std::string& method) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reads_.find(method);
  return it == reads_.end() ? 0 : it->second;
}

std::optional<Error> FakeInstanceMetadata::Enter(const std::string& method) {
  ++reads_[method];
  return failure_;
}

Result<std::string> FakeInstanceMetadata::Get(std::string_view path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("Get")) return *failure;
  Error missing;
  missing.category = ErrorCategory::kNotFound;
  missing.service = "IMDS";
  missing.message = "no item " + std::string(path);
  return missing;
}

Result<std::string> FakeInstanceMetadata::InstanceId() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("InstanceId")) return *failure;
  return std::string("i-fake");
}

Result<std::string> FakeInstanceMetadata::InstanceType() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("InstanceType")) return *failure;
  return std::string("c5.large");
}

Result<std::string> FakeInstanceMetadata::Region() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("Region")) return *failure;
  return std::string("us-east-1");
}

Result<std::string> FakeInstanceMetadata::AvailabilityZone() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("AvailabilityZone")) return *failure;
  return std::string("us-east-1a");
}

Result<bool> FakeInstanceMetadata::IsSpot() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("IsSpot")) return *failure;
  return true;
}

Result<std::optional<SpotInstanceActionNotice>> FakeInstanceMetadata::SpotInstanceAction() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("SpotInstanceAction")) return *failure;
  return spot_;
}

Result<std::optional<RebalanceNotice>> FakeInstanceMetadata::RebalanceRecommendation() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("RebalanceRecommendation")) return *failure;
  return rebalance_;
}

Result<std::optional<std::string>> FakeInstanceMetadata::TargetLifecycleState() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("TargetLifecycleState")) return *failure;
  return lifecycle_;
}

Result<Credentials> FakeInstanceMetadata::RoleCredentials() {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("RoleCredentials")) return *failure;
  return Error::InvalidInput("FakeInstanceMetadata has no role");
}

}  // namespace spotgrid::testing
