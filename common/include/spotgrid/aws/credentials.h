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
#include <functional>
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

// Caches what `fetch` returns and fetches again ahead of Expiration (botocore's windows):
//  - more than 15 min left: the cached credentials are used as they are;
//  - 15..10 min left (advisory): one caller refreshes while the others keep using the cached
//    credentials; if the refresh fails, the cached ones stay in use (a warning is logged);
//  - under 10 min left, expired or nothing cached (mandatory): callers wait for one refresh,
//    and its failure is their error.
// If the source hands out credentials that are themselves already inside the window (EC2
// rotates role credentials only minutes before they expire), they are used for a minute
// before asking again, so the source is not queried on every call.
// Credentials without Expiration are fetched once. `name` appears in log lines and errors.
std::shared_ptr<CredentialsProvider> MakeRefreshingCredentialsProvider(
    std::function<Result<Credentials>()> fetch, Clock& clock, std::string name);

inline constexpr std::chrono::minutes kAdvisoryRefreshWindow{15};
inline constexpr std::chrono::minutes kMandatoryRefreshWindow{10};

class ImdsClient;

// The default chain described above. `imds` may be null (IMDS step skipped). The provider is
// chosen on the first GetCredentials() call (env and files are read then) and kept; `env`,
// `clock` and the files must outlive the chain.
//   - env: both keys or neither (one without the other is an error); AWS_SESSION_TOKEN
//     (legacy AWS_SECURITY_TOKEN); optional AWS_CREDENTIAL_EXPIRATION.
//   - profile: the first of the credentials file and the config file that has keys for the
//     profile supplies all of them; an explicitly selected profile (AWS_PROFILE) that exists
//     in neither file is an error, as is a profile that only names a provider spotgrid does
//     not implement (role_arn, credential_process, SSO, web identity).
//   - container: GET http://169.254.170.2<AWS_CONTAINER_CREDENTIALS_RELATIVE_URI>, or
//     AWS_CONTAINER_CREDENTIALS_FULL_URI (https anywhere; http only to loopback or the ECS /
//     EKS Pod Identity addresses), Authorization from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
//     (re-read on every refresh) or AWS_CONTAINER_AUTHORIZATION_TOKEN.
//   - IMDS: ImdsClient::RoleCredentials().
// Container and IMDS credentials are cached and refreshed as MakeRefreshingCredentialsProvider
// describes.
std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(
    const Environment& env, std::shared_ptr<HttpTransport> transport,
    std::shared_ptr<ImdsClient> imds, Clock& clock);

}  // namespace spotgrid
