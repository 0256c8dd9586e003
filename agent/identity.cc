#include "agent/identity.h"

#include <unistd.h>

#include <climits>
#include <utility>

#include "spotgrid/core/log.h"

namespace spotgrid::agent {
namespace {

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// A fact IMDS failed to give on an instance it does answer for: logged, left
// empty, because the worker item is informational and the agent can work
// without it.
template <typename T>
T OrDefault(Result<T> result, const char* what, T fallback) {
  if (result.ok()) return std::move(*result);
  Logger().warn("instance metadata: no {}: {}", what, result.error().ToString());
  return fallback;
}

}  // namespace

WorkerIdentity DiscoverIdentity(InstanceMetadata* imds) {
  WorkerIdentity identity;
  if (imds != nullptr) {
    Result<std::string> instance_id = imds->InstanceId();
    if (instance_id.ok() && !instance_id->empty()) {
      identity.on_ec2 = true;
      identity.instance_id = *instance_id;
      identity.instance_type = OrDefault(imds->InstanceType(), "instance type", std::string());
      identity.availability_zone =
          OrDefault(imds->AvailabilityZone(), "availability zone", std::string());
      identity.region = OrDefault(imds->Region(), "region", std::string());
      identity.spot = OrDefault(imds->IsSpot(), "instance life cycle", false);
      return identity;
    }
    Logger().info(
        "not on EC2 (instance metadata: {}); naming this worker by "
        "its host name",
        instance_id.ok() ? "empty instance id" : instance_id.error().ToString());
  }
  identity.instance_id = HostName();
  return identity;
}

}  // namespace spotgrid::agent
