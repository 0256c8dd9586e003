#include "support/fake_autoscaling.h"

namespace spotgrid::testing {

namespace {

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace

void FakeAutoScaling::AddToGroup(const std::string& instance_id, const std::string& group) {
  std::lock_guard<std::mutex> lock(mu_);
  groups_[instance_id] = group;
}

std::vector<FakeAutoScaling::Call> FakeAutoScaling::Calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

std::vector<FakeAutoScaling::Call> FakeAutoScaling::Calls(const std::string& operation) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Call> out;
  for (const Call& call : calls_) {
    if (call.operation == operation) out.push_back(call);
  }
  return out;
}

int FakeAutoScaling::CallCount(const std::string& operation) const {
  return static_cast<int>(Calls(operation).size());
}

void FakeAutoScaling::FailNext(const std::string& operation, Error error, int times) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < times; ++i) failures_[operation].push_back(error);
}

std::optional<Error> FakeAutoScaling::Enter(const std::string& operation, std::string detail) {
  calls_.push_back({operation, std::move(detail)});
  auto it = failures_.find(operation);
  if (it == failures_.end() || it->second.empty()) return std::nullopt;
  Error error = it->second.front();
  it->second.erase(it->second.begin());
  return error;
}

Result<ScalingActivity> FakeAutoScaling::TerminateInstanceInAutoScalingGroup(
    const std::string& instance_id, bool should_decrement_desired_capacity) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter(
          "TerminateInstanceInAutoScalingGroup",
          instance_id + " decrement=" + (should_decrement_desired_capacity ? "true" : "false"))) {
    return *failure;
  }
  ScalingActivity activity;
  activity.activity_id = "activity-" + std::to_string(calls_.size());
  activity.auto_scaling_group_name = groups_[instance_id];
  activity.status_code = "InProgress";
  return activity;
}

Status FakeAutoScaling::SetInstanceProtection(const std::string& auto_scaling_group_name,
                                              const std::vector<std::string>& instance_ids,
                                              bool protected_from_scale_in) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("SetInstanceProtection",
                           auto_scaling_group_name + " " + Join(instance_ids) +
                               " protected=" + (protected_from_scale_in ? "true" : "false"))) {
    return *failure;
  }
  for (const std::string& id : instance_ids) protected_[id] = protected_from_scale_in;
  return Status::Ok();
}

Result<std::vector<AutoScalingInstance>> FakeAutoScaling::DescribeAutoScalingInstances(
    const std::vector<std::string>& instance_ids) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("DescribeAutoScalingInstances", Join(instance_ids))) return *failure;
  std::vector<AutoScalingInstance> out;
  for (const std::string& id : instance_ids) {
    auto it = groups_.find(id);
    if (it == groups_.end()) continue;
    AutoScalingInstance instance;
    instance.instance_id = id;
    instance.auto_scaling_group_name = it->second;
    instance.lifecycle_state = "InService";
    instance.health_status = "HEALTHY";
    instance.protected_from_scale_in = protected_[id];
    out.push_back(instance);
  }
  return out;
}

Status FakeAutoScaling::CompleteLifecycleAction(const LifecycleActionRef& action,
                                                LifecycleActionResult result) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("CompleteLifecycleAction",
                           action.auto_scaling_group_name + " " + action.lifecycle_hook_name + " " +
                               action.instance_id + " " + ToString(result))) {
    return *failure;
  }
  return Status::Ok();
}

Status FakeAutoScaling::RecordLifecycleActionHeartbeat(const LifecycleActionRef& action) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto failure = Enter("RecordLifecycleActionHeartbeat", action.auto_scaling_group_name + " " +
                                                                 action.lifecycle_hook_name + " " +
                                                                 action.instance_id)) {
    return *failure;
  }
  return Status::Ok();
}

}  // namespace spotgrid::testing
