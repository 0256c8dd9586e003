// The client core: every AWS call in spotgrid goes through AwsClient::Send.
//
// One Send() = resolve the endpoint, get credentials, sign with SigV4 (re-signed on every
// attempt), send over the shared HttpTransport, and on failure classify the error, correct
// the clock offset if the server says we are skewed, and retry with backoff under the retry
// quota. What comes back is either the successful HTTP response or an Error naming service,
// operation, HTTP status, AWS error code, message and request id.
//
// AwsContext holds what all clients of one process share: transport (and so its connection
// pool), credentials, region, clock, the clock-skew offset and the retry quota.
//
// Thread-safety: AwsContext and AwsClient are safe to use from any number of threads.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spotgrid/aws/aws_config.h"
#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/retry.h"
#include "spotgrid/aws/service.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

class ImdsClient;

struct AwsContextOptions {
  // Overrides; empty = resolve from environment/profile/IMDS.
  std::string region;
  std::shared_ptr<HttpTransport> transport;          // default: curl
  std::shared_ptr<CredentialsProvider> credentials;  // default: the standard chain
  Clock* clock = nullptr;                            // default: Clock::System()
  std::optional<RetryOptions> retry;                 // default: from environment
  const Environment* env = nullptr;                  // default: Environment::Process()
  std::function<double()> random01;                  // default: a seeded PRNG
};

class AwsContext {
 public:
  // Resolves region, profile files, credentials chain and IMDS from the environment.
  // Fails with a clear message if no region can be found.
  static Result<std::shared_ptr<AwsContext>> Create(AwsContextOptions options = {});

  const std::string& region() const { return region_; }
  HttpTransport& transport() { return *transport_; }
  std::shared_ptr<HttpTransport> shared_transport() { return transport_; }
  CredentialsProvider& credentials() { return *credentials_; }
  Clock& clock() { return *clock_; }
  RetryPolicy& retry() { return *retry_; }
  const Environment& env() const { return *env_; }
  const ProfileFiles& profiles() const { return profiles_; }
  std::shared_ptr<ImdsClient> imds() { return imds_; }

  // The signing time: the local clock corrected by the offset learned from server Dates.
  Clock::WallTime SigningTime() const;
  // Records the server's time as seen in a response Date header; adjusts the offset only when
  // the difference is 5 minutes or more (what the SDKs do). Returns true if it changed.
  bool ObserveServerTime(Clock::WallTime server_time);
  std::chrono::milliseconds clock_offset() const {
    return std::chrono::milliseconds(offset_ms_.load());
  }

  AwsContext(std::string region, std::shared_ptr<HttpTransport> transport,
             std::shared_ptr<CredentialsProvider> credentials, Clock* clock,
             std::unique_ptr<RetryPolicy> retry, const Environment* env, ProfileFiles profiles,
             std::shared_ptr<ImdsClient> imds);

 private:
  std::string region_;
  std::shared_ptr<HttpTransport> transport_;
  std::shared_ptr<CredentialsProvider> credentials_;
  Clock* clock_;
  std::unique_ptr<RetryPolicy> retry_;
  const Environment* env_;
  ProfileFiles profiles_;
  std::shared_ptr<ImdsClient> imds_;
  std::atomic<long long> offset_ms_{0};
};

// One logical AWS request before signing. Path and query are *unencoded*; the core encodes.
struct AwsRequest {
  std::string operation;  // for errors and logs: "SendMessageBatch"
  std::string method = "POST";
  std::string path = "/";  // S3: "/<key>" (bucket is added for path style by the S3 client)
  std::vector<std::pair<std::string, std::string>> query;
  Headers headers;  // e.g. content-type, x-amz-target, range
  std::string body;
  std::optional<FileRange> body_file;  // streamed; signed as UNSIGNED-PAYLOAD on https,
                                       // hashed on http (no TLS to protect it)
  std::string response_file;           // stream a 2xx body to this file
  std::chrono::milliseconds timeout{0};
  // Raised by shutdown: the exchange in flight, or a retry backoff, ends at once with a
  // kCancelled error.
  const StopSource* stop = nullptr;
  // Override the endpoint host (S3 virtual-hosted style: "<bucket>.s3.<region>...").
  std::string host_override;
  // Sent without a signature and without asking for credentials: the identity services' token
  // calls (AssumeRoleWithWebIdentity, SSO GetRoleCredentials, SSO OIDC CreateToken), which
  // carry their own proof and are how credentials are obtained in the first place.
  bool anonymous = false;
};

class AwsClient {
 public:
  // Fails only if the service's endpoint can't be resolved (e.g. a malformed
  // AWS_ENDPOINT_URL_<SERVICE>).
  static Result<std::shared_ptr<AwsClient>> Create(std::shared_ptr<AwsContext> context,
                                                   const ServiceInfo& service);
  AwsClient(std::shared_ptr<AwsContext> context, const ServiceInfo& service, Endpoint endpoint);

  // Sends with signing and retries. A non-2xx response becomes an Error (error body parsed
  // for JSON `__type`/`message` or XML `Code`/`Message`/`RequestId`).
  Result<HttpResponse> Send(const AwsRequest& request);

  // One call across its attempts: what Send() loops over, and what AwsMulti drives without a
  // thread of its own. Attempt() gives the next attempt's signed HTTP request (an error ends
  // the call: no credentials, the deadline passed); Judge() takes that attempt's outcome and
  // says whether the call has ended, and with what, or after how long to try again. The
  // deadline is the one in scope (ScopedDeadline) on the thread that made the Call.
  class Call {
   public:
    Call(AwsClient& client, const AwsRequest& request);  // `request` outlives the Call
    Result<HttpRequest> Attempt();
    struct Verdict {
      std::optional<Result<HttpResponse>> result;  // the call ended with this
      std::chrono::milliseconds retry_after{0};    // else: the next attempt, after this
      bool at_once = false;                        // ... or at once (a clock-skew retry)
    };
    Verdict Judge(Result<HttpResponse> outcome);
    // An error naming this call's service and operation.
    Error Named(Error error) const;
    const AwsRequest& request() const { return request_; }

   private:
    AwsClient& client_;
    const AwsRequest& request_;
    std::string wire_path_, query_, full_url_, authority_, payload_hash_;
    std::optional<Error> setup_error_;
    int attempt_ = 0;
    int last_retry_cost_ = 0;
    bool skew_retry_done_ = false;
    std::optional<Clock::MonoTime> deadline_;
  };

  const ServiceInfo& service() const { return service_; }
  const Endpoint& endpoint() const { return endpoint_; }
  AwsContext& context() { return *context_; }

 private:
  std::shared_ptr<AwsContext> context_;
  const ServiceInfo& service_;
  Endpoint endpoint_;
};

// Turns a non-2xx response into an Error (exposed for tests of the error parser).
Error ParseAwsError(const ServiceInfo& service, const std::string& operation,
                    const HttpResponse& response);

// The request id of a response: `x-amzn-requestid`, or S3's `x-amz-request-id`; "" if none.
std::string RequestIdOf(const HttpResponse& response);

// A request refused before anything was sent (kInvalidInput), naming service and operation
// like an error from the service itself.
Error InvalidRequestError(const ServiceInfo& service, std::string_view operation,
                          std::string message);

// A 2xx response the client cannot use, code "MalformedResponse". kTransient: a body cut short
// by a dropped connection or a proxy's page looks exactly like this, so it is worth another
// try. The overload taking the response also records its HTTP status and request id.
Error MalformedResponseError(const ServiceInfo& service, std::string_view operation,
                             std::string message);
Error MalformedResponseError(const ServiceInfo& service, std::string_view operation,
                             std::string message, const HttpResponse& response);

}  // namespace spotgrid
