// Who this worker is: what `controller workers` shows and what the lease owner names.
//
// On EC2 the answers come from instance metadata (IMDSv2); off EC2 (a laptop, a test) the
// instance id is the host name and the rest is unknown, so the agent still runs anywhere.
//
// Thread-safety: plain values; DiscoverIdentity may block for the IMDS timeout.
#pragma once

#include <string>

#include "spotgrid/aws/imds_client.h"

namespace spotgrid::agent {

struct WorkerIdentity {
  std::string instance_id;    // "i-0abc..." or the host name
  std::string instance_type;  // "c7g.large", or "" off EC2
  std::string availability_zone;
  std::string region;
  bool spot = false;
  bool on_ec2 = false;
};

// Asks IMDS (`imds` may be null: off EC2); falls back to the host name when IMDS can't be
// reached. Never fails.
WorkerIdentity DiscoverIdentity(InstanceMetadata* imds);

}  // namespace spotgrid::agent
