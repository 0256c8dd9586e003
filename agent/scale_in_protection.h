// Scale-in protection of this instance in its Auto Scaling group, following the units in
// hand: protected while busy, so a scale-in never picks a worker in the middle of a unit, and
// unprotected once idle, so the group can shrink by this worker.
//
// Hold() counts a unit in hand before its slot starts (cheap, no call); Reconcile() then
// makes the group agree (one SetInstanceProtection when the wanted state changed). Release()
// counts a unit out and reconciles. Calls are serialised and always send the state wanted at
// the moment of the call, so a unit that starts while another ends never leaves a stale
// state behind, and a unit that ended before Reconcile ran costs no call at all. A failed call
// is logged and tried again at the next change; it is never fatal.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "spotgrid/services/autoscaling_client.h"

namespace spotgrid::agent {

class ScaleInProtection {
 public:
  ScaleInProtection(std::shared_ptr<AutoScaling> autoscaling, std::string group,
                    std::string instance_id);

  void Hold();       // a unit is about to start
  void Release();    // a unit has ended (and reconciles)
  void Reconcile();  // SetInstanceProtection(in hand > 0) unless the group already agrees

 private:
  std::shared_ptr<AutoScaling> autoscaling_;
  const std::string group_, instance_id_;
  std::mutex call_mu_;  // held across a call: calls go out one at a time, in order
  std::mutex mu_;       // guards the two below
  int in_hand_ = 0;
  bool applied_ = false;  // what the group was last told successfully (initially unprotected)
};

}  // namespace spotgrid::agent
