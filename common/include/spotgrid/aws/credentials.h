// AWS credentials and the provider chain.
//
// The chain follows botocore's order (credentials.py create_credential_resolver; README
// "The client core", step 3):
//   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//   2. a role profile: the selected profile has role_arn (and no web_identity_token_file):
//      STS AssumeRole with the credentials of its source_profile (chains of role profiles,
//      cycles refused) or its credential_source (Environment, Ec2InstanceMetadata,
//      EcsContainer); external_id, role_session_name, duration_seconds, mfa_serial
//   3. the selected profile's own sources, in this order (credentials/profile_sources.h):
//      web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, or the profile's
//      web_identity_token_file + role_arn) -> SSO (sso_session or legacy sso_start_url, from
//      the `aws sso login` token cache) -> static keys in ~/.aws/credentials ->
//      credential_process -> static keys in ~/.aws/config
//   4. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI
//   5. IMDSv2 instance-role credentials (unless AWS_EC2_METADATA_DISABLED=true)
// The profile is AWS_PROFILE (or AWS_DEFAULT_PROFILE), else "default"; files
// ~/.aws/credentials and ~/.aws/config, or AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE.
// The first source that is configured answers; a source that is configured but fails reports
// its error instead of silently falling through. Temporary credentials are cached and
// refreshed ahead of their Expiration.
//
// Secrets: Credentials deliberately has no operator<< and no ToString(). Nothing in the
// project formats a secret key, session token, SSO token, client secret or web identity token
// into a log line or an Error.
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

// Asks the person at the terminal for the current code of MFA device `serial` (for the role
// of `profile`). Returns the code, or an error when nobody can be asked.
using MfaPrompt =
    std::function<Result<std::string>(const std::string& profile, const std::string& serial)>;

// The default prompt: writes the question to /dev/tty and reads one line from it. Without a
// controlling terminal (a daemon, CI) it fails at once with an error that says so.
Result<std::string> PromptOnTerminal(const std::string& profile, const std::string& serial);

// The default chain described above. `imds` may be null (IMDS step skipped). The source is
// chosen on the first GetCredentials() call (env and files are read then) and kept; `env`,
// `clock` and the files must outlive the chain. `mfa_prompt` asks for MFA codes (default:
// PromptOnTerminal). Details of each source: credentials/*.h.
//   - env: both keys or neither (one without the other is an error); AWS_SESSION_TOKEN
//     (legacy AWS_SECURITY_TOKEN); optional AWS_CREDENTIAL_EXPIRATION.
//   - an explicitly selected profile (AWS_PROFILE) that exists in neither file is an error,
//     before any source is tried (botocore's ProfileNotFound).
//   - container: GET http://169.254.170.2<AWS_CONTAINER_CREDENTIALS_RELATIVE_URI>, or
//     AWS_CONTAINER_CREDENTIALS_FULL_URI (https anywhere; http only to loopback or the ECS /
//     EKS Pod Identity addresses), Authorization from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
//     (re-read on every refresh) or AWS_CONTAINER_AUTHORIZATION_TOKEN.
//   - IMDS: ImdsClient::RoleCredentials().
// Every temporary source is cached and refreshed as MakeRefreshingCredentialsProvider
// describes.
std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(
    const Environment& env, std::shared_ptr<HttpTransport> transport,
    std::shared_ptr<ImdsClient> imds, Clock& clock, MfaPrompt mfa_prompt = {});

}  // namespace spotgrid
