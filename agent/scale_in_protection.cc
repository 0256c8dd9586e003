#include "agent/scale_in_protection.h"

#include <utility>

#include "spotgrid/core/log.h"

namespace spotgrid::agent {

ScaleInProtection::ScaleInProtection(std::shared_ptr<AutoScaling> autoscaling, std::string group,
                                     std::string instance_id)
    : autoscaling_(std::move(autoscaling)),
      group_(std::move(group)),
      instance_id_(std::move(instance_id)) {}

void ScaleInProtection::Hold() {
  std::lock_guard<std::mutex> lock(mu_);
  ++in_hand_;
}

void ScaleInProtection::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_hand_ > 0) --in_hand_;
  }
  Reconcile();
}

void ScaleInProtection::Reconcile() {
  std::lock_guard<std::mutex> calls(call_mu_);
  bool want = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    want = in_hand_ > 0;
    if (want == applied_) return;
  }
  Status set = autoscaling_->SetInstanceProtection(group_, {instance_id_}, want);
  if (!set.ok()) {
    Logger().warn("could not {} scale-in protection in group {}: {}", want ? "set" : "clear",
                  group_, set.ToString());
    return;
  }
  Logger().debug("scale-in protection {} in group {}", want ? "set" : "cleared", group_);
  std::lock_guard<std::mutex> lock(mu_);
  applied_ = want;
}

}  // namespace spotgrid::agent
