// Amazon EC2 Auto Scaling over the AWS Query protocol (form-encoded, Version 2011-01-01,
// lists as Name.member.N).
//
// `AutoScaling` is what spotgrid needs from a worker group: the agent protects itself from
// scale-in while it runs a unit, finds its group, answers termination lifecycle hooks
// (heartbeat while draining, then CONTINUE), and the controller terminates idle workers.
// Product logic depends on the interface, so tests substitute an in-memory fake;
// `AutoScalingClient` is the real client over the client core.
//
// Thread-safety: AutoScalingClient is safe to use from any number of threads.
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

// A scaling activity (what TerminateInstanceInAutoScalingGroup starts).
struct ScalingActivity {
  std::string activity_id;
  std::string auto_scaling_group_name;
  std::string description;
  std::string cause;
  std::string status_code;  // "InProgress", "Successful", "Failed", ...
  std::string status_message;
  int progress = 0;  // percent
  std::string details;
  std::optional<Clock::WallTime> start_time;
  std::optional<Clock::WallTime> end_time;
};

// One instance as DescribeAutoScalingInstances reports it.
struct AutoScalingInstance {
  std::string instance_id;
  std::string instance_type;
  std::string auto_scaling_group_name;
  std::string availability_zone;
  // "Pending", "Pending:Wait", "InService", "Terminating", "Terminating:Wait",
  // "Terminating:Proceed", "Terminated", "Standby", "Detaching", "Warmed:*", ...
  std::string lifecycle_state;
  std::string health_status;  // "HEALTHY" | "UNHEALTHY"
  std::string launch_configuration_name;
  std::string launch_template_id;
  std::string launch_template_name;
  std::string launch_template_version;
  bool protected_from_scale_in = false;
  std::string weighted_capacity;
};

// Names one pending lifecycle action: the group, the hook, and either the instance or the
// action token from the lifecycle notification (at least one of the two).
struct LifecycleActionRef {
  std::string auto_scaling_group_name;
  std::string lifecycle_hook_name;
  std::string instance_id;
  std::string lifecycle_action_token;
};

enum class LifecycleActionResult { kContinue, kAbandon };

class AutoScaling {
 public:
  virtual ~AutoScaling() = default;

  // Terminates the instance through its group. `should_decrement_desired_capacity` = true
  // shrinks the group; false makes it launch a replacement.
  virtual Result<ScalingActivity> TerminateInstanceInAutoScalingGroup(
      const std::string& instance_id, bool should_decrement_desired_capacity) = 0;

  // Sets scale-in protection; more than 50 instances are sent as several calls.
  virtual Status SetInstanceProtection(const std::string& auto_scaling_group_name,
                                       const std::vector<std::string>& instance_ids,
                                       bool protected_from_scale_in) = 0;

  // The given instances (all pages; more than 50 ids are sent as several calls). Instances
  // that are not in any group are simply absent. An empty list describes every instance of
  // every group in the region.
  virtual Result<std::vector<AutoScalingInstance>> DescribeAutoScalingInstances(
      const std::vector<std::string>& instance_ids) = 0;

  virtual Status CompleteLifecycleAction(const LifecycleActionRef& action,
                                         LifecycleActionResult result) = 0;

  // Restarts the hook's heartbeat timeout.
  virtual Status RecordLifecycleActionHeartbeat(const LifecycleActionRef& action) = 0;
};

class AutoScalingClient final : public AutoScaling {
 public:
  static constexpr const char* kApiVersion = "2011-01-01";

  static Result<std::shared_ptr<AutoScalingClient>> Create(std::shared_ptr<AwsContext> context);
  explicit AutoScalingClient(std::shared_ptr<AwsClient> client) : client_(std::move(client)) {}

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

  AwsClient& client() { return *client_; }

 private:
  std::shared_ptr<AwsClient> client_;
};

const char* ToString(LifecycleActionResult result);  // "CONTINUE" | "ABANDON"

}  // namespace spotgrid
