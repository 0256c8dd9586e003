// The EC2 instance metadata service (IMDS), spoken as IMDSv2 only.
//
// Every read first obtains a session token (PUT /latest/api/token, TTL 6 h), caches it and
// renews it before it runs out; a 401 on a read means the token was lost (IMDS restarted,
// expired early), so the client gets a new token and retries that read once. There is
// deliberately no IMDSv1 fallback: a token PUT that fails (403, 404, 405, timeout) is an
// error and never turns into a tokenless GET, which an instance with HttpTokens=required
// refuses and which SSRF-style attacks exploit.
//
// Off EC2 nothing answers at 169.254.169.254, so timeouts are short (1 s by default) and
// AWS_EC2_METADATA_DISABLED=true makes every call fail at once without any network traffic.
//
// IMDS is not SigV4-signed, so ImdsClient talks to the HttpTransport directly.
//
// Thread-safety: all methods may be called from any thread; the token is shared.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "spotgrid/aws/credentials.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

class AwsContext;

// spot/instance-action: EC2 will interrupt this Spot instance at `time` (about 2 minutes
// after the notice appears).
struct SpotInstanceActionNotice {
  std::string action;  // "terminate" | "stop" | "hibernate"
  Clock::WallTime time;
};

// events/recommendations/rebalance: the instance is at elevated risk of interruption.
struct RebalanceNotice {
  Clock::WallTime notice_time;
};

// What product logic needs from instance metadata; agents are tested against fakes of this.
// Every call may be slow (up to the configured timeout times attempts) and returns an Error
// (service "IMDS") when IMDS can't be reached, is disabled, or answers unexpectedly.
class InstanceMetadata {
 public:
  virtual ~InstanceMetadata() = default;

  // Raw text of a metadata item. `path` is relative to /latest/meta-data/ ("instance-id",
  // "placement/region"), or absolute when it starts with "/latest/" ("/latest/dynamic/
  // instance-identity/document"). An item IMDS does not have is an Error with kNotFound.
  virtual Result<std::string> Get(std::string_view path) = 0;

  virtual Result<std::string> InstanceId() = 0;
  virtual Result<std::string> InstanceType() = 0;
  virtual Result<std::string> Region() = 0;
  virtual Result<std::string> AvailabilityZone() = 0;
  // instance-life-cycle == "spot".
  virtual Result<bool> IsSpot() = 0;

  // nullopt while no interruption is scheduled (IMDS answers 404).
  virtual Result<std::optional<SpotInstanceActionNotice>> SpotInstanceAction() = 0;
  // nullopt while no rebalance recommendation has been emitted.
  virtual Result<std::optional<RebalanceNotice>> RebalanceRecommendation() = 0;
  // Auto Scaling target lifecycle state ("InService", "Terminated", ...); nullopt when the
  // instance is not in an Auto Scaling group (or the item is absent).
  virtual Result<std::optional<std::string>> TargetLifecycleState() = 0;

  // The instance role's temporary credentials (with Expiration). Fails when no role is
  // attached or IMDS reports a Code other than "Success".
  virtual Result<Credentials> RoleCredentials() = 0;
};

struct ImdsOptions {
  // Base URL; may carry a path prefix ("http://127.0.0.1:8111/t-42").
  // AWS_EC2_METADATA_SERVICE_ENDPOINT, default http://169.254.169.254.
  std::string endpoint = "http://169.254.169.254";
  // AWS_EC2_METADATA_DISABLED=true: every call fails immediately.
  bool disabled = false;
  // Connect and total timeout of each HTTP exchange. AWS_METADATA_SERVICE_TIMEOUT (seconds).
  std::chrono::milliseconds timeout{1000};
  // Tries per request (transport errors, 5xx, 429). AWS_METADATA_SERVICE_NUM_ATTEMPTS.
  int attempts = 2;
  // Session token lifetime asked for; IMDS allows 1..21600 seconds.
  std::chrono::seconds token_ttl{21600};

  static Result<ImdsOptions> FromEnvironment(const Environment& env);
};

class ImdsClient final : public InstanceMetadata {
 public:
  // From the environment (see ImdsOptions). Fails only on malformed settings.
  static Result<std::shared_ptr<ImdsClient>> Create(const Environment& env,
                                                    std::shared_ptr<HttpTransport> transport,
                                                    Clock& clock);
  // The context's client (the one AwsContext::Create made for region and credentials).
  static Result<std::shared_ptr<ImdsClient>> Create(std::shared_ptr<AwsContext> context);

  ImdsClient(ImdsOptions options, std::shared_ptr<HttpTransport> transport, Clock& clock);

  bool disabled() const { return options_.disabled; }
  const ImdsOptions& options() const { return options_; }

  Result<std::string> Get(std::string_view path) override;
  Result<std::string> InstanceId() override;
  Result<std::string> InstanceType() override;
  Result<std::string> Region() override;
  Result<std::string> AvailabilityZone() override;
  Result<bool> IsSpot() override;
  Result<std::optional<SpotInstanceActionNotice>> SpotInstanceAction() override;
  Result<std::optional<RebalanceNotice>> RebalanceRecommendation() override;
  Result<std::optional<std::string>> TargetLifecycleState() override;
  Result<Credentials> RoleCredentials() override;

 private:
  // A valid token, fetching one if needed. `stale` is a token a read just got a 401 for.
  Result<std::string> Token(const std::string& stale = "");
  Result<std::string> FetchToken();
  // One HTTP exchange with the configured attempts for transport errors, 5xx and 429.
  Result<HttpResponse> Exchange(HttpRequest request, const std::string& operation);
  Result<std::optional<std::string>> GetOptional(std::string_view path);
  Error DisabledError(const std::string& operation) const;

  ImdsOptions options_;
  std::string base_;  // endpoint without a trailing '/'
  std::shared_ptr<HttpTransport> transport_;
  Clock& clock_;

  std::mutex token_mu_;  // held while fetching, so concurrent readers share one token PUT
  std::string token_;
  Clock::MonoTime token_renew_at_{};
};

}  // namespace spotgrid
