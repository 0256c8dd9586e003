// AWS credentials and the provider chain.
//
// The chain follows the order the AWS SDKs use (documented in README "Credentials"):
//   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//   2. shared files: ~/.aws/credentials then ~/.aws/config for AWS_PROFILE (default "default"),
//      overridable with AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE
//   3. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI
//   4. IMDSv2 instance-role credentials (unless AWS_EC2_METADATA_DISABLED=true)
// The first provider that is configured answers; a provider that is configured but fails
// reports its error instead of silently falling through. Temporary credentials are cached
// and refreshed ahead of their Expiration.
//
// Secrets: Credentials deliberately has no operator<< and no ToString(). Nothing in the
// project formats a secret key or session token into a log line or an Error.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  std::optional<Clock::WallTime> expiration;
};

// Thread-safety: GetCredentials() may be called concurrently from any thread.
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  virtual Result<Credentials> GetCredentials() = 0;
};

// Fixed credentials (tests, explicit configuration).
std::shared_ptr<CredentialsProvider> MakeStaticCredentialsProvider(Credentials credentials);

class ImdsClient;

// The default chain described above. `imds` may be null (IMDS step skipped).
std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(
    const Environment& env, std::shared_ptr<HttpTransport> transport,
    std::shared_ptr<ImdsClient> imds, Clock& clock);

}  // namespace spotgrid
