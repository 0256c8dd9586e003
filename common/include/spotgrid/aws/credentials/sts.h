// The two STS operations the credential providers use (Query protocol, version 2011-06-15):
//   - AssumeRole, signed with the source credentials, through AwsClient (retries, clock skew,
//     errors with request id);
//   - AssumeRoleWithWebIdentity, unsigned (the model's `authtype: none`): the web identity
//     token is the proof. STS's IDPCommunicationError is retried like a transient failure.
// Both return the temporary credentials of <...Result><Credentials> with their Expiration.
#pragma once

#include <optional>
#include <string>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/credentials.h"
#include "spotgrid/aws/credentials/identity_call.h"
#include "spotgrid/aws/xml.h"

namespace spotgrid {

inline constexpr const char* kStsVersion = "2011-06-15";

struct AssumeRoleParams {
  std::string role_arn;
  std::string role_session_name;  // required by STS; callers default it
  std::string external_id;        // "" = not sent
  std::string serial_number;      // MFA device (mfa_serial); "" = not sent
  std::string token_code;         // the MFA code, with serial_number
  std::optional<int> duration_seconds;
};

Result<Credentials> StsAssumeRole(AwsClient& sts, const AssumeRoleParams& params);

struct WebIdentityParams {
  std::string role_arn;
  std::string role_session_name;
  std::string web_identity_token;  // a secret: never logged nor put into an Error
  std::optional<int> duration_seconds;
};

Result<Credentials> StsAssumeRoleWithWebIdentity(const IdentityCallContext& context,
                                                 const std::string& region,
                                                 const WebIdentityParams& params);

// <Operation>Response/<Operation>Result/Credentials of a successful STS response.
Result<Credentials> ParseStsCredentials(const XmlElement& doc, const std::string& operation);

// A session name when the configuration gives none: "spotgrid-session-<unix seconds>", as
// botocore uses "botocore-session-<unix seconds>".
std::string DefaultRoleSessionName(Clock::WallTime now);

}  // namespace spotgrid
