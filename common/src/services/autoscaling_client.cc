#include "spotgrid/services/autoscaling_client.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

#include "spotgrid/aws/query_protocol.h"
#include "spotgrid/core/iso8601.h"

namespace spotgrid {
namespace {

// SetInstanceProtection and DescribeAutoScalingInstances take at most 50 instance ids.
constexpr size_t kMaxIdsPerCall = 50;
// A guard against a service that keeps returning NextTokens.
constexpr int kMaxPages = 1000;

Error InvalidInput(std::string_view operation, std::string message) {
  return InvalidRequestError(kAutoScalingService, operation, std::move(message));
}

Error Malformed(std::string_view operation, std::string message, const XmlElement& doc) {
  return MalformedResponseError(kAutoScalingService, operation, std::move(message), doc);
}

// The <OpResult> element of an AWS Query response (or the document if it has none, which
// real Auto Scaling only does for operations without output).
const XmlElement& ResultOf(const XmlElement& doc, std::string_view operation) {
  const XmlElement* result = doc.Find(std::string(operation) + "Result");
  return result == nullptr ? doc : *result;
}

const char* Bool(bool value) { return value ? "true" : "false"; }

std::optional<Clock::WallTime> OptionalTime(const XmlElement& parent, std::string_view name) {
  const XmlElement* element = parent.Child(name);
  if (element == nullptr || element->text.empty()) return std::nullopt;
  return ParseIso8601(element->text);
}

Status LifecycleParams(std::string_view operation, const LifecycleActionRef& action,
                       QueryParams& params) {
  if (action.auto_scaling_group_name.empty()) {
    return InvalidInput(operation, "no Auto Scaling group name given");
  }
  if (action.lifecycle_hook_name.empty()) {
    return InvalidInput(operation, "no lifecycle hook name given");
  }
  if (action.instance_id.empty() && action.lifecycle_action_token.empty()) {
    return InvalidInput(operation, "neither an instance id nor a lifecycle action token given");
  }
  params.emplace_back("AutoScalingGroupName", action.auto_scaling_group_name);
  params.emplace_back("LifecycleHookName", action.lifecycle_hook_name);
  if (!action.instance_id.empty()) params.emplace_back("InstanceId", action.instance_id);
  if (!action.lifecycle_action_token.empty()) {
    params.emplace_back("LifecycleActionToken", action.lifecycle_action_token);
  }
  return Status::Ok();
}

}  // namespace

const char* ToString(LifecycleActionResult result) {
  return result == LifecycleActionResult::kContinue ? "CONTINUE" : "ABANDON";
}

Result<std::shared_ptr<AutoScalingClient>> AutoScalingClient::Create(
    std::shared_ptr<AwsContext> context) {
  Result<std::shared_ptr<AwsClient>> client =
      AwsClient::Create(std::move(context), kAutoScalingService);
  if (!client.ok()) return client.error();
  return std::make_shared<AutoScalingClient>(std::move(client).value());
}

Result<ScalingActivity> AutoScalingClient::TerminateInstanceInAutoScalingGroup(
    const std::string& instance_id, bool should_decrement_desired_capacity) {
  constexpr std::string_view kOp = "TerminateInstanceInAutoScalingGroup";
  if (instance_id.empty()) return InvalidInput(kOp, "no instance id given");
  QueryParams params = {
      {"InstanceId", instance_id},
      {"ShouldDecrementDesiredCapacity", Bool(should_decrement_desired_capacity)}};
  Result<XmlElement> doc = CallQuery(*client_, kOp, kApiVersion, params);
  if (!doc.ok()) return doc.error();
  const XmlElement* activity = ResultOf(*doc, kOp).Child("Activity");
  if (activity == nullptr) return Malformed(kOp, "response has no Activity", *doc);
  ScalingActivity out;
  out.activity_id = activity->ChildText("ActivityId");
  out.auto_scaling_group_name = activity->ChildText("AutoScalingGroupName");
  out.description = activity->ChildText("Description");
  out.cause = activity->ChildText("Cause");
  out.status_code = activity->ChildText("StatusCode");
  out.status_message = activity->ChildText("StatusMessage");
  out.details = activity->ChildText("Details");
  std::string progress = activity->ChildText("Progress");
  std::from_chars(progress.data(), progress.data() + progress.size(), out.progress);
  out.start_time = OptionalTime(*activity, "StartTime");
  out.end_time = OptionalTime(*activity, "EndTime");
  return out;
}

Status AutoScalingClient::SetInstanceProtection(const std::string& auto_scaling_group_name,
                                                const std::vector<std::string>& instance_ids,
                                                bool protected_from_scale_in) {
  constexpr std::string_view kOp = "SetInstanceProtection";
  if (auto_scaling_group_name.empty()) return InvalidInput(kOp, "no Auto Scaling group name");
  if (instance_ids.empty()) return InvalidInput(kOp, "no instance ids given");
  for (size_t start = 0; start < instance_ids.size(); start += kMaxIdsPerCall) {
    size_t end = std::min(instance_ids.size(), start + kMaxIdsPerCall);
    QueryParams params;
    AddQueryList(params, Protocol::kQuery, "InstanceIds",
                 std::span(instance_ids).subspan(start, end - start));
    params.emplace_back("AutoScalingGroupName", auto_scaling_group_name);
    params.emplace_back("ProtectedFromScaleIn", Bool(protected_from_scale_in));
    Result<XmlElement> doc = CallQuery(*client_, kOp, kApiVersion, params);
    if (!doc.ok()) return doc.error();
  }
  return Status::Ok();
}

Result<std::vector<AutoScalingInstance>> AutoScalingClient::DescribeAutoScalingInstances(
    const std::vector<std::string>& instance_ids) {
  constexpr std::string_view kOp = "DescribeAutoScalingInstances";
  std::vector<AutoScalingInstance> instances;
  // One round per chunk of ids (a single round without ids = every instance).
  size_t rounds =
      instance_ids.empty() ? 1 : (instance_ids.size() + kMaxIdsPerCall - 1) / kMaxIdsPerCall;
  for (size_t round = 0; round < rounds; ++round) {
    size_t start = round * kMaxIdsPerCall;
    size_t end = std::min(instance_ids.size(), start + kMaxIdsPerCall);
    std::string token;
    for (int page = 1;; ++page) {
      QueryParams params;
      AddQueryList(params, Protocol::kQuery, "InstanceIds",
                   std::span(instance_ids).subspan(start, end - start));
      if (!token.empty()) params.emplace_back("NextToken", token);
      Result<XmlElement> doc = CallQuery(*client_, kOp, kApiVersion, params);
      if (!doc.ok()) return doc.error();
      const XmlElement& result = ResultOf(*doc, kOp);
      if (const XmlElement* list = result.Child("AutoScalingInstances")) {
        for (const XmlElement* member : list->Children("member")) {
          AutoScalingInstance instance;
          instance.instance_id = member->ChildText("InstanceId");
          instance.instance_type = member->ChildText("InstanceType");
          instance.auto_scaling_group_name = member->ChildText("AutoScalingGroupName");
          instance.availability_zone = member->ChildText("AvailabilityZone");
          instance.lifecycle_state = member->ChildText("LifecycleState");
          instance.health_status = member->ChildText("HealthStatus");
          instance.launch_configuration_name = member->ChildText("LaunchConfigurationName");
          if (const XmlElement* lt = member->Child("LaunchTemplate")) {
            instance.launch_template_id = lt->ChildText("LaunchTemplateId");
            instance.launch_template_name = lt->ChildText("LaunchTemplateName");
            instance.launch_template_version = lt->ChildText("Version");
          }
          instance.protected_from_scale_in = member->ChildText("ProtectedFromScaleIn") == "true";
          instance.weighted_capacity = member->ChildText("WeightedCapacity");
          instances.push_back(std::move(instance));
        }
      }
      std::string next = result.ChildText("NextToken");
      if (next.empty()) break;
      if (next == token || page >= kMaxPages) {
        return Malformed(kOp, "pagination does not end (NextToken " + next + ")", *doc);
      }
      token = std::move(next);
    }
  }
  return instances;
}

Status AutoScalingClient::CompleteLifecycleAction(const LifecycleActionRef& action,
                                                  LifecycleActionResult result) {
  constexpr std::string_view kOp = "CompleteLifecycleAction";
  QueryParams params;
  if (Status s = LifecycleParams(kOp, action, params); !s.ok()) return s;
  params.emplace_back("LifecycleActionResult", ToString(result));
  Result<XmlElement> doc = CallQuery(*client_, kOp, kApiVersion, params);
  if (!doc.ok()) return doc.error();
  return Status::Ok();
}

Status AutoScalingClient::RecordLifecycleActionHeartbeat(const LifecycleActionRef& action) {
  constexpr std::string_view kOp = "RecordLifecycleActionHeartbeat";
  QueryParams params;
  if (Status s = LifecycleParams(kOp, action, params); !s.ok()) return s;
  Result<XmlElement> doc = CallQuery(*client_, kOp, kApiVersion, params);
  if (!doc.ok()) return doc.error();
  return Status::Ok();
}

}  // namespace spotgrid
