// Missing permissions: an AWS call the agent's instance role is not allowed to make.
//
// Retrying such a call never helps (IAM does not change under a running agent's feet often
// enough to wait for it), and an agent that only warns and retries looks healthy under
// systemd while it does no work. So the main loop counts consecutive denials of the calls it
// cannot work without (ReceiveMessage, the claim) and, after kMissingPermissionTries in a
// row, exits with kExitMissingPermission (4), which the systemd unit does not restart
// (RestartPreventExitStatus): the operator fixes the role and starts the agent again.
//
// Thread-safety: the free functions are pure; PermissionTracker is for one thread (the main
// loop).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "spotgrid/core/status.h"

namespace spotgrid::agent {

// Consecutive denials of one action before the agent gives up. Not 1: a role or policy just
// attached takes a few seconds to reach every IAM endpoint, and the receive backoff (1, 2, 4,
// 8 s) gives it about 15 s.
inline constexpr int kMissingPermissionTries = 5;

// The process exit status of an agent that gave up on a missing permission.
inline constexpr int kExitMissingPermission = 4;

// DynamoDB AccessDeniedException, SQS AccessDenied / AccessDeniedException (also the JSON
// protocol's "com.amazonaws.sqs#AccessDeniedException"), S3 AccessDenied. Any other error,
// throttling and 5xx included, is not a missing permission.
bool IsMissingPermission(const Error& error);

// The IAM action a denied call needs, "sqs:ReceiveMessage", from the error's service and
// operation; `fallback` when the error names neither.
std::string DeniedAction(const Error& error, std::string_view fallback);

// Counts consecutive denials per main-loop action; any success of that action starts over.
// Other errors (a 503) neither count nor reset: they say nothing about permissions.
class PermissionTracker {
 public:
  // Records the outcome of one try of `step` ("ReceiveMessage", "ClaimUnit"). Returns the
  // denied IAM action once it has been denied kMissingPermissionTries times in a row.
  std::optional<std::string> Record(std::string_view step, const Status& outcome);
  // The denied action and how many times in a row, for the status line; empty when nothing
  // is denied at the moment.
  std::string Describe() const;

 private:
  std::string step_;    // the step whose denials are being counted
  std::string action_;  // its IAM action, from the latest denial
  int denials_ = 0;
};

}  // namespace spotgrid::agent
