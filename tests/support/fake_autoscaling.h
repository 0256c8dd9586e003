// An in-memory Auto Scaling for tests of the agent: instances put in groups, and a log of
// every call in order (operation and its essentials), so a test can prove exactly which calls
// the agent made, how many, and in what order. A call can be made to fail.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "spotgrid/services/autoscaling_client.h"

namespace spotgrid::testing {

class FakeAutoScaling final : public AutoScaling {
 public:
  // Test helpers --------------------------------------------------------------------------
  void AddToGroup(const std::string& instance_id, const std::string& group);

  struct Call {
    // "TerminateInstanceInAutoScalingGroup", "SetInstanceProtection",
    // "DescribeAutoScalingInstances", "CompleteLifecycleAction",
    // "RecordLifecycleActionHeartbeat"
    std::string operation;
    // The essentials, space-separated: "<instance> decrement=true", "<group> <instance>
    // protected=true", "<ids>", "<group> <hook> <instance> CONTINUE", "<group> <hook> <instance>".
    std::string detail;
    bool operator==(const Call&) const = default;
  };
  std::vector<Call> Calls() const;
  std::vector<Call> Calls(const std::string& operation) const;
  int CallCount(const std::string& operation) const;
  // The next `times` calls of `operation` fail with `error` (still logged as calls).
  void FailNext(const std::string& operation, Error error, int times = 1);

  // AutoScaling ----------------------------------------------------------------------------
  Result<ScalingActivity> TerminateInstanceInAutoScalingGroup(
      const std::string& instance_id, bool should_decrement_desired_capacity) override;
  Status SetInstanceProtection(const std::string& auto_scaling_group_name,
                               const std::vector<std::string>& instance_ids,
                               bool protected_from_scale_in) override;
  Result<std::vector<AutoScalingInstance>> DescribeAutoScalingInstances(
      const std::vector<std::string>& instance_ids) override;
  Status CompleteLifecycleAction(const LifecycleActionRef& action,
                                 LifecycleActionResult result) override;
  Status RecordLifecycleActionHeartbeat(const LifecycleActionRef& action) override;

 private:
  // Logs the call; the injected failure, if any. Requires mu_.
  std::optional<Error> Enter(const std::string& operation, std::string detail);

  mutable std::mutex mu_;
  std::map<std::string, std::string> groups_;  // instance -> group
  std::map<std::string, bool> protected_;      // instance -> protected from scale-in
  std::vector<Call> calls_;
  std::map<std::string, std::vector<Error>> failures_;
};

}  // namespace spotgrid::testing
